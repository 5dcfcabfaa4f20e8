"""The reverse-time SDE family, derived from the Fokker–Planck equation: for every noise level
nu_t, one drift makes a process run backwards in time keep the marginals of the forward SDE;
nu = 0 is the probability-flow ODE, nu = g Anderson's reverse SDE."""

import sympy as sp

from ._engine import Binding, Derivation, Step, Uniform
from ._path_cases import expand_or_together, schedule_case, shared_path, shared_schedule
from ._registry import register
from .forward_sde import g2 as _path_g2
from .forward_sde import gaussian_prediction
from .forward_sde import schedule_where as _schedule_where
from .forward_sde import t as _t

x, tau = sp.symbols("x tau", real=True)
t = _t  # forward time; the reversed process runs in tau = 1 - t
p = sp.Function("p", positive=True)
nu = sp.Function("nu", real=True)
f = sp.Function("f", real=True)
g = sp.Function("g", positive=True)


def family_drift(time):
    """The reverse family's drift $f x - \\frac{g^2 + \\nu^2}{2}\\partial_x \\log p$ at ``time``,
    in forward-time convention (what `ReverseSDE.drift` returns)."""
    return f(time) * x - (g(time) ** 2 + nu(time) ** 2) / 2 * sp.Derivative(p(x, time), x) / p(x, time)


def _forward_residual(time):
    """Forward Fokker–Planck residual $\\partial_t p + \\partial_x(f x p) - \\frac{g^2}{2}
    \\partial_x^2 p$ at ``time``."""
    return (
        sp.Derivative(p(x, t), t)
        + sp.Derivative(f(t) * x * p(x, t), x)
        - g(t) ** 2 / 2 * sp.Derivative(p(x, t), x, 2)
    ).subs(t, time)


def _reverse_residual(drift_at, time):
    """$\\partial_t p + \\partial_x(b p) + \\frac{\\nu^2}{2}\\partial_x^2 p$ at ``time``: the
    Fokker–Planck equation of $dx = b\\,dt + \\nu\\,d\\bar W$ run backwards in time."""
    return (
        sp.Derivative(p(x, t), t)
        + sp.Derivative(drift_at(t) * p(x, t), x)
        + nu(t) ** 2 / 2 * sp.Derivative(p(x, t), x, 2)
    ).subs(t, time)


_back = 1 - tau  # forward time at reversed time tau
_q = p(x, _back)  # the density of y_tau = x_{1 - tau}
_reversed_fokker_planck = (
    sp.Derivative(_q, tau)
    - sp.Derivative(family_drift(_back) * _q, x)
    - nu(_back) ** 2 / 2 * sp.Derivative(_q, x, 2)
)
DRIFT = family_drift(_back)  # what the bindings hold ReverseSDE.drift to, at t = 1 - tau

register(
    Derivation(
        id="D-reverse-sde-marginals",
        title="The reverse-time SDE family, from the Fokker–Planck equation: every noise level keeps the marginals",
        statement=(
            r"Let $p_t$ be the marginals of the forward SDE $dx = f x\,dt + g\,dW$ (D-forward-sde). "
            r"Run a process backwards in time, from $t = 1$ to $0$: $dx = b\,dt + \nu_t\,d\bar W$ "
            r"(forward-time drift $b$, Brownian increments of reversed time). In reversed time "
            r"$\tau = 1 - t$ the process $y_\tau = x_{1-\tau}$ is an ordinary forward SDE with "
            r"drift $-b$ and diffusion $\nu$, so its density $q(x, \tau) = p(x, 1 - \tau)$ solves "
            r"that SDE's Fokker–Planck equation, which in $t$ reads "
            r"$\partial_t p + \partial_x(b p) + \frac{\nu^2}{2}\partial_x^2 p = 0$. With "
            r"$b = f x - \frac{g^2 + \nu^2}{2}\nabla\log p_t = v_t - \frac{\nu^2}{2}\nabla\log p_t$ "
            r"($v_t = f x - \frac{g^2}{2}\nabla\log p_t$ the probability-flow velocity, "
            r"D-probability-flow-ode) this residual is the forward Fokker–Planck residual, for "
            r"every $\nu_t \ge 0$ and every density: the path's marginals solve one exactly when "
            r"they solve the other, so the family keeps them. $\nu = 0$ is the probability-flow "
            r"ODE, $\nu = g$ the reverse SDE $dx = (f x - g^2\nabla\log p_t)dt + g\,d\bar W$ of "
            r"Anderson (1982) and Song et al. (2021), and EDM's churn another $\nu$."
        ),
        start=_reversed_fokker_planck,
        steps=[
            Step(
                rhs=-_reverse_residual(family_drift, _back),
                reason=(
                    r"The Fokker–Planck equation of $y_\tau$, $\partial_\tau q = -\partial_x(-b\,q) + "
                    r"\frac{\nu^2}{2}\partial_x^2 q$, written for $p$: the chain rule gives "
                    r"$\partial_\tau q = -\partial_t p$ at $t = 1 - \tau$ (sympy, with $p$, $f$, $g$, "
                    r"$\nu$ unknown functions)."
                ),
            ),
            Step(
                rhs=-_forward_residual(_back),
                reason=(
                    r"Insert the family's drift: $\partial_x\big(p\,\partial_x \log p\big) = "
                    r"\partial_x^2 p$, so the $-\frac{\nu^2}{2}\nabla\log p$ part of $b$ cancels the "
                    r"$+\frac{\nu^2}{2}\partial_x^2 p$ of reversed time, and the $-\frac{g^2}{2}"
                    r"\nabla\log p$ part turns $+\frac{g^2}{2}\partial_x^2 p$ into the forward "
                    r"equation's $-\frac{g^2}{2}\partial_x^2 p$: what is left is minus the forward "
                    r"residual, whatever $\nu$."
                ),
                method=expand_or_together,
            ),
        ],
        symbols=(x, tau),
        references=(
            "anderson1982reverse",
            "song2021score",
            "risken1996fokker",
            "karras2022elucidating",
        ),
        code=(
            "genmath.core.dynamics.ReverseSDE",
            "genmath.core.dynamics.ReverseSDE.drift",
            "genmath.core.dynamics.ReverseSDE.sample",
        ),
        tests=("tests/core/test_dynamics.py",),
    )
)

# --- bindings: ReverseSDE's drift for Gaussian data, every parameterization, both noises ---
mu = sp.Symbol("mu", real=True)
s = sp.Symbol("s", positive=True)
c = sp.Symbol("c", nonnegative=True)  # nu = c g


def _where(label):
    """The family's drift at t = 1 - tau for data N(mu, s^2) on schedule ``label``, nu = c g."""
    from .forward_sde import alpha, sigma

    at_t = _schedule_where(schedule_case(label))
    a_, s_ = (e.subs(at_t, simultaneous=True) for e in (alpha, sigma))
    var = a_**2 * s**2 + s_**2
    density = sp.exp(-((x - a_ * mu) ** 2) / (2 * var)) / sp.sqrt(2 * sp.pi * var)
    g_t = sp.sqrt(_path_g2.subs(at_t, simultaneous=True))
    f_t = (sp.Derivative(alpha, t) / alpha).subs(at_t, simultaneous=True)
    back = {t: _back}
    return {
        sp.Derivative(p(x, _back), x): sp.diff(density, x).subs(back),
        p(x, _back): density.subs(back),
        f(_back): f_t.subs(back),
        g(_back): g_t.subs(back),
        nu(_back): c * g_t.subs(back),
    }


def _drift_by_code(label):
    """Point j: parameterization j mod 5; even j a number noise = c, odd j a callable
    noise(t) = c g(t)."""

    def evaluate(points):
        import torch

        from ..core.dynamics import ReverseSDE
        from .samplers import _PARAMETERIZATIONS

        path = shared_path(label)
        n = points[tau].shape[0]
        out = torch.empty(n, dtype=torch.float64)
        for j in range(n):
            index = torch.tensor([j])
            name = _PARAMETERIZATIONS[j % 5]
            model = gaussian_prediction(label, name, points[mu][index], points[s][index])
            scale = float(points[c][j])
            noise = scale if j % 2 == 0 else (lambda time, k=scale: k * path.diffusion(time))
            sde = ReverseSDE(path, model, name, noise=noise)
            time = 1 - points[tau][index]
            out[j] = sde.drift(points[x][index][:, None], time)[0, 0]
        return out

    return evaluate


def _register_bindings():
    for label in ("VP()", "CondOT()", "VE()", "CosineVP()"):
        lo, hi = shared_schedule(label).safe_interval
        register(
            Binding(
                derivation="D-reverse-sde-marginals",
                code=("genmath.core.dynamics.ReverseSDE", "genmath.core.dynamics.ReverseSDE.drift"),
                expression=DRIFT,
                where=_where(label),
                evaluate=_drift_by_code(label),
                domain={
                    tau: Uniform(1 - hi, 1 - lo), x: Uniform(-4, 4), mu: Uniform(-2, 2),
                    s: Uniform(0.2, 3), c: Uniform(0, 2, ends=True),
                },
                samples=20,
                description=(
                    f"ReverseSDE(GaussianPath({label}), model, p, noise).drift for Gaussian data: "
                    "point j's model in parameterization j mod 5, noise a number c (even j) or "
                    "t -> c g(t) (odd j); c = 0 is the probability-flow ODE"
                ),
            )
        )


_register_bindings()
