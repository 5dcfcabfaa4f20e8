"""The forward SDE with the marginals of a Gaussian path, from its Fokker–Planck equation, and
the probability-flow ODE.

Both are bound to the code of every built-in schedule (and a user schedule): the derivations'
expressions, with $\\alpha_t, \\sigma_t$ the schedule's own sympy definition, against the
compiled coefficients of `genmath.schedules` and `GaussianPath`.
"""

import sympy as sp

from ._engine import Binding, Derivation, Step, Uniform
from ._path_cases import (
    SCHEDULES,
    T,
    expand_or_together,
    point,
    scales,
    schedule_case,
    shared_path,
    shared_schedule,
)
from ._registry import register

x = sp.Symbol("x", real=True)
t = T  # the schedules' time symbol, so that their definitions substitute directly
mu = sp.Symbol("mu", real=True)
s = sp.Symbol("s", positive=True)  # data standard deviation
score = sp.Symbol("s_t", real=True)  # a value of the score nabla log p_t(x)
alpha = sp.Function("alpha", positive=True)(t)
sigma = sp.Function("sigma", positive=True)(t)
m_f = sp.Function("m", real=True)(t)
v_f = sp.Function("v", positive=True)(t)
f_f = sp.Function("f", real=True)(t)
g_f = sp.Function("g", positive=True)(t)
density_f = sp.Function("p", positive=True)


def _gauss(mean, var):
    return sp.exp(-((x - mean) ** 2) / (2 * var)) / sp.sqrt(2 * sp.pi * var)


def _fokker_planck_over_p(p, f, g2):
    """$(\\partial_t p + \\partial_x(f x p) - \\tfrac{g^2}{2}\\partial_x^2 p)/p$."""
    return (sp.Derivative(p, t) + sp.Derivative(f * x * p, x) - g2 / 2 * sp.Derivative(p, x, 2)) / p


def _moment_form(mean, var, f, g2):
    """The residual of a Gaussian $\\mathcal N(m, v)$ in terms of the moment equations."""
    y = x - mean
    return y / var * (sp.diff(mean, t) - f * mean) + (sp.diff(var, t) - 2 * f * var - g2) * (
        y**2 - var
    ) / (2 * var**2)


# the path's coefficients (D-forward-sde), with sympy's diff: the derivatives of alpha(t),
# sigma(t) stay unknown functions' derivatives, which a binding replaces by a schedule's
f = sp.diff(alpha, t) / alpha
g2 = sp.diff(sigma**2, t) - 2 * f * sigma**2
log_snr = 2 * sp.log(alpha) - 2 * sp.log(sigma)
d_log_snr = sp.diff(log_snr, t)
mean_t = alpha * mu
var_t = alpha**2 * s**2 + sigma**2

register(
    Derivation(
        id="D-forward-sde",
        title="Forward SDE with the marginals of a Gaussian path, from its Fokker–Planck equation",
        statement=(
            r"A Gaussian $\mathcal N(m_t, v_t)$ solves the Fokker–Planck equation "
            r"$\partial_t p = -\partial_x(f x p) + \frac{g^2}{2}\partial_x^2 p$ of the linear SDE "
            r"$dx = f(t)\,x\,dt + g(t)\,dW$ exactly when its moments solve $\dot m = f m$ and "
            r"$\dot v = 2 f v + g^2$. With $f = \dot\alpha/\alpha$ and "
            r"$g^2 = \frac{d\sigma^2}{dt} - 2f\sigma^2 = -\sigma^2\dot\lambda_t$ "
            r"($\lambda = \log(\alpha^2/\sigma^2)$, the log-SNR) the path's marginal "
            r"$\mathcal N(\alpha_t\mu, \alpha_t^2 s^2 + \sigma_t^2)$ solves both for every data "
            r"mean $\mu$ and variance $s^2$, so the SDE has the path's marginals given $x_0$ and "
            r"from any data (Gaussian data shown; a mixture of point masses is the limit "
            r"$s \to 0$). For VP this is $f = -\beta/2$, $g^2 = \beta$ (D-schedule-vp)."
        ),
        start=sp.ImmutableMatrix(
            [
                _fokker_planck_over_p(_gauss(m_f, v_f), f_f, g_f**2),
                _fokker_planck_over_p(_gauss(mean_t, var_t), f, g2),
                g2,
                sp.Derivative(log_snr, t),
            ]
        ),
        steps=[
            Step(
                rhs=sp.ImmutableMatrix(
                    [
                        _moment_form(m_f, v_f, f_f, g_f**2),
                        _moment_form(mean_t, var_t, f, g2),
                        -(sigma**2) * d_log_snr,
                        d_log_snr,
                    ]
                ),
                reason=(
                    r"For $p = \mathcal N(m, v)$ and $y = x - m$, $\partial_t\log p$, "
                    r"$\partial_x\log p = -y/v$ and $\partial_x^2 p/p = (y^2 - v)/v^2$ make the "
                    r"residual $\frac{y}{v}(\dot m - fm) + (\dot v - 2fv - g^2)\frac{y^2 - v}{2v^2}$: "
                    "first for unknown $m, v, f, g$, then for the path's. Third entry: "
                    r"$g^2 = 2\sigma\dot\sigma - 2\sigma^2\dot\alpha/\alpha = -\sigma^2\dot\lambda$; "
                    r"fourth: $\dot\lambda = 2\dot\alpha/\alpha - 2\dot\sigma/\sigma$."
                ),
                method=expand_or_together,
            ),
            Step(
                rhs=sp.ImmutableMatrix(
                    [_moment_form(m_f, v_f, f_f, g_f**2), 0, -(sigma**2) * d_log_snr, d_log_snr]
                ),
                reason=(
                    r"The path's moments solve both moment equations: $\dot m = \dot\alpha\mu = fm$, "
                    r"and $\dot v = 2\alpha\dot\alpha s^2 + \frac{d\sigma^2}{dt} = 2fv + g^2$ for every "
                    r"$s$ — the $s^2$ terms match through $f$ alone. So the residual vanishes."
                ),
                method=expand_or_together,
            ),
        ],
        symbols=(x, t, mu, s),
        references=("song2021score", "sarkka2019applied", "risken1996fokker"),
        code=(
            "genmath.core.path.GaussianPath.drift_coefficient",
            "genmath.core.path.GaussianPath.drift",
            "genmath.core.path.GaussianPath.diffusion",
            "genmath.schedules.Schedule.diffusion_squared",
            "genmath.schedules.Schedule.d_log_snr",
        ),
        tests=("tests/core/test_path.py", "tests/core/test_dynamics.py"),
    )
)


def schedule_where(case):
    """``where`` putting schedule ``case`` into expressions of ``alpha(t)``, ``sigma(t)`` and
    their derivatives."""
    a_, s_, da_, ds_ = case.at(t)
    return {sp.Derivative(alpha, t): da_, sp.Derivative(sigma, t): ds_, alpha: a_, sigma: s_}


def _finite_at_ends(expressions, where, low, high) -> bool:
    """Whether every expression (with the schedule in) is finite at both ends."""
    import mpmath

    for end in (low, high):
        for e in expressions:
            fn = sp.lambdify([t], e.subs(where, simultaneous=True), "mpmath")
            try:
                value = complex(fn(mpmath.mpf(end)))
            except (ZeroDivisionError, ValueError, TypeError):
                return False
            if not (mpmath.isfinite(value.real) and abs(value.imag) < 1e-20):
                return False
    return True


_SAMPLES = 16


def _coefficients_by_code(label):
    def evaluate(points):
        schedule = shared_schedule(label)
        path = shared_path(label)
        tt, xx = point(points, t, _SAMPLES), point(points, x, _SAMPLES)
        return (
            path.alpha(tt),
            path.sigma(tt),
            path.d_alpha(tt),
            path.d_sigma(tt),
            path.drift_coefficient(tt),
            path.drift(xx[:, None], tt)[:, 0],
            schedule.diffusion_squared(tt),
            path.diffusion(tt) ** 2,
            path.log_snr(tt),
        )

    return evaluate


def _log_snr_rate_by_code(label):
    def evaluate(points):
        return shared_schedule(label).d_log_snr(point(points, t, 12))

    return evaluate


_coefficient_expressions = (
    alpha, sigma, sp.Derivative(alpha, t), sp.Derivative(sigma, t), f, f * x, g2, g2, log_snr,
)


def _register_coefficient_bindings():
    for case in SCHEDULES:
        where = schedule_where(case)
        low, high = case.finite
        ends = _finite_at_ends(_coefficient_expressions[:-1], where, low, high)
        register(
            Binding(
                derivation="D-forward-sde",
                code=(
                    "genmath.core.path.GaussianPath.drift",
                    "genmath.core.path.GaussianPath.diffusion",
                    "genmath.schedules.Schedule.drift_coefficient",
                    "genmath.schedules.Schedule.diffusion_squared",
                ),
                expression=_coefficient_expressions,
                where=where,
                evaluate=_coefficients_by_code(case.label),
                domain={t: Uniform(low, high, ends=ends), x: Uniform(-4, 4)},
                samples=_SAMPLES,
                description=(
                    f"{case.label}: alpha, sigma, their derivatives, f, the drift f x, g^2 "
                    "(diffusion_squared and diffusion**2) and the log-SNR"
                ),
            )
        )
        register(
            Binding(
                derivation="D-forward-sde",
                code=("genmath.schedules.Schedule.d_log_snr",),
                expression=d_log_snr,
                where=where,
                evaluate=_log_snr_rate_by_code(case.label),
                domain={t: Uniform(max(low, 1e-6), min(high, 1 - 1e-6))},
                samples=12,
                description=f"{case.label}: the log-SNR's rate d lambda/dt",
            )
        )


_register_coefficient_bindings()

# ---------------------------------------------------------------- the probability-flow ODE
_generic_p = density_f(x, t)
p_t = _gauss(mean_t, var_t)
score_t = -(x - mean_t) / var_t
# E[x0 | x_t = x] and E[eps | x_t = x]: Gaussian conditioning
x0_hat = mu + alpha * s**2 * (x - mean_t) / var_t
eps_hat = sigma * (x - mean_t) / var_t
marginal_velocity = sp.diff(alpha, t) * x0_hat + sp.diff(sigma, t) * eps_hat
_pf_velocity = f * x - g2 / 2 * sp.Derivative(sp.log(p_t), x)

register(
    Derivation(
        id="D-probability-flow-ode",
        title="The probability-flow ODE of the forward SDE equals the marginal velocity",
        statement=(
            r"The Fokker–Planck equation of $dx = f x\,dt + g\,dW$ is a continuity equation with "
            r"velocity $f x - \frac{g^2}{2}\nabla\log p_t$, so the ODE $dx/dt = f x - "
            r"\frac{g^2}{2}\nabla\log p_t(x)$ has the same marginals (Song et al. 2021). For a "
            r"Gaussian path this velocity is the path's marginal velocity "
            r"$\mathbb E[\dot\alpha_t x_0 + \dot\sigma_t\varepsilon \mid x_t = x]$: by Tweedie "
            r"($\mathbb E[x_0 \mid x] = (x + \sigma^2 s)/\alpha$, $\mathbb E[\varepsilon\mid x] = "
            r"-\sigma s$, $s = \nabla\log p_t$) for any data, and explicitly for data "
            r"$\mathcal N(\mu, s^2)$."
        ),
        start=sp.ImmutableMatrix(
            [
                -sp.Derivative(f * x * _generic_p, x) + g2 / 2 * sp.Derivative(_generic_p, x, 2),
                sp.diff(alpha, t) * (x + sigma**2 * score) / alpha - sp.diff(sigma, t) * sigma * score,
                _pf_velocity,
            ]
        ),
        steps=[
            Step(
                rhs=sp.ImmutableMatrix(
                    [
                        -sp.Derivative(
                            _generic_p * (f * x - g2 / 2 * sp.Derivative(sp.log(_generic_p), x)), x
                        ),
                        f * x - g2 / 2 * score,
                        f * x - g2 / 2 * score_t,
                    ]
                ),
                reason=(
                    r"For any positive density $p$: $\frac{g^2}{2}\partial_x^2 p = "
                    r"\partial_x\big(p\,\frac{g^2}{2}\partial_x\log p\big)$, so the right side of "
                    r"Fokker–Planck is $-\partial_x(p\,u)$ with $u = f x - \frac{g^2}{2}\partial_x"
                    r"\log p$. Second entry: the marginal velocity with Tweedie's posterior means is "
                    r"$u$ at the score $s$. Third: Gaussian data, whose score is "
                    r"$-(x - \alpha\mu)/(\alpha^2 s^2 + \sigma^2)$."
                ),
                method=expand_or_together,
            ),
            Step(
                rhs=sp.ImmutableMatrix(
                    [
                        -sp.Derivative(
                            _generic_p * (f * x - g2 / 2 * sp.Derivative(sp.log(_generic_p), x)), x
                        ),
                        f * x - g2 / 2 * score,
                        marginal_velocity,
                    ]
                ),
                reason=(
                    "For Gaussian data it equals the marginal velocity "
                    r"$\dot\alpha_t\,\mathbb E[x_0\mid x] + \dot\sigma_t\,\mathbb E[\varepsilon"
                    r"\mid x]$, with the Gaussian conditional means "
                    r"$\mathbb E[x_0\mid x] = \mu + \alpha_t s^2(x - \alpha_t\mu)/v_t$ and "
                    r"$\mathbb E[\varepsilon\mid x] = \sigma_t(x - \alpha_t\mu)/v_t$."
                ),
                method=expand_or_together,
            ),
        ],
        symbols=(x, t, mu, s, score),
        references=("song2021score", "lipman2023flow", "kingma2021variational", "efron2011tweedie"),
        code=(
            "genmath.core.dynamics.ProbabilityFlowODE",
            "genmath.core.dynamics.probability_flow_ode",
            "genmath.core.dynamics.ReverseSDE.probability_flow",
            "genmath.core.path.GaussianPath.convert",
        ),
        tests=("tests/core/test_dynamics.py", "tests/analytic/test_gaussian.py"),
    )
)


def gaussian_prediction(label, name, data_mean, data_std):
    """``model(x, t)``: the exact ``name``-prediction for data N(data_mean, data_std^2) on
    schedule ``label`` (``x`` of shape (B, 1), ``t`` a (B,) tensor; the data parameters (B,)
    tensors), from the Gaussian posterior mean and D-parameterizations' table."""
    from .samplers import _table

    _, from_x0 = _table()

    def model(state, time):
        a_, s_, da_, ds_ = (v.reshape(-1, 1) for v in scales(label, time.reshape(-1)))
        m_, sd_ = data_mean.reshape(-1, 1), data_std.reshape(-1, 1)
        clean = m_ + a_ * sd_**2 * (state - a_ * m_) / (a_**2 * sd_**2 + s_**2)
        return from_x0[name](state, clean, a_, s_, da_, ds_)

    return model


_CONSTRUCTORS = ("ProbabilityFlowODE", "probability_flow_ode", "ReverseSDE.probability_flow")


def _pf_velocity_by_code(label):
    """Point j: the model in parameterization j mod 5, the ODE built by constructor
    (j // 5) mod 3, its velocity at (x_j, t_j)."""

    def evaluate(points):
        import torch

        from ..core import dynamics
        from .samplers import _PARAMETERIZATIONS

        path = shared_path(label)
        n = points[t].shape[0]
        out = torch.empty(n, dtype=torch.float64)
        for j in range(n):
            name = _PARAMETERIZATIONS[j % 5]
            index = torch.tensor([j])
            model = gaussian_prediction(label, name, points[mu][index], points[s][index])
            constructor = _CONSTRUCTORS[(j // 5) % 3]
            if constructor == "ProbabilityFlowODE":
                ode = dynamics.ProbabilityFlowODE(path, model, name)
            elif constructor == "probability_flow_ode":
                ode = dynamics.probability_flow_ode(path, model, name)
            else:
                ode = dynamics.ReverseSDE(path, model, name, noise=0.5).probability_flow()
            out[j] = ode.velocity(points[x][index][:, None], points[t][index])[0, 0]
        return out

    return evaluate


def _register_pf_bindings():
    for label in ("VP()", "CondOT()", "VE()", "CosineVP()"):
        case = schedule_case(label)
        lo, hi = case.build().safe_interval
        register(
            Binding(
                derivation="D-probability-flow-ode",
                code=(
                    "genmath.core.dynamics.ProbabilityFlowODE",
                    "genmath.core.dynamics.probability_flow_ode",
                    "genmath.core.dynamics.ReverseSDE.probability_flow",
                    "genmath.core.path.GaussianPath.convert",
                ),
                expression=marginal_velocity,
                where=schedule_where(case),
                evaluate=_pf_velocity_by_code(label),
                domain={t: Uniform(lo, hi), x: Uniform(-4, 4), mu: Uniform(-2, 2), s: Uniform(0.2, 3)},
                samples=15,
                description=(
                    f"the probability-flow ODE's velocity on GaussianPath({label}) for Gaussian data, "
                    "point j's model in parameterization j mod 5"
                ),
            )
        )


_register_pf_bindings()
