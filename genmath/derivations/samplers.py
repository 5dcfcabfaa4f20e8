"""The samplers' step maps: DDIM and DPM-Solver++(2M) as exponential integrators of the
probability-flow ODE (the Runge–Kutta methods are in ``runge_kutta.py``, Euler–Maruyama and
the Langevin corrector in ``sde_samplers.py``).

Every step map is bound to `sample_ode` / `sample_sde` on random, non-uniform grids and, for
a Gaussian path, in each of the five parameterizations: the binding feeds the sampler a model
whose prediction (in that parameterization) is a known field, built from the schedule's sympy
definition, and compares the sampler's state with the step map of that field.
"""


import sympy as sp

from ._engine import (
    NUMERIC,
    Binding,
    Check,
    Derivation,
    From,
    Step,
    Uniform,
    sound_rewrite,
)
from ._path_cases import (
    schedule_case,
    shared_path,
    shared_schedule,
)
from ._registry import register
from .elbo_gap import _Integral  # an integral sympy's integrator never touches
from .runge_kutta import _PARAMETERIZATIONS, _prediction, _table, lam  # noqa: F401  (forward_sde imports _table from here)

# ====================================================================== exponential integrators

t = sp.Symbol("t", real=True)
alpha_f, sigma_f = sp.Function("alpha", positive=True), sp.Function("sigma", positive=True)
state_f = sp.Function("x", real=True)
tk, tk1 = sp.symbols("t_k t_{k+1}", real=True)
x0_hat, xk = sp.symbols(r"\hat{x}_0 x_k", real=True)
a0, a1, sg0, sg1 = sp.symbols(r"alpha_k alpha_{k+1} sigma_k sigma_{k+1}", positive=True)
_alpha, _sigma, _state = alpha_f(t), sigma_f(t), state_f(t)
_eps_hat = (_state - _alpha * x0_hat) / _sigma
_pf_velocity = sp.diff(_alpha, t) * x0_hat + sp.diff(_sigma, t) * _eps_hat
_dy_dt = sp.diff(_state / _sigma, t).subs(sp.Derivative(_state, t), _pf_velocity)


@sound_rewrite(
    "linearity of the integral over common limits; each integrand is rewritten by sympy "
    "(doit, cancel), which keeps its value"
)
def _combine_integrands(expr):
    """Integrals over the same variable and limits are merged into one, whose integrand is
    simplified; an integrand that vanishes identically leaves nothing."""
    integrands: dict = {}
    rest = sp.Integer(0)
    for term in sp.Add.make_args(sp.expand(expr)):
        coefficient, body = term.as_independent(sp.Integral, as_Add=False)
        if isinstance(body, sp.Integral):
            key = (type(body), body.limits)
            integrands[key] = integrands.get(key, 0) + coefficient * body.function
        else:
            rest += term
    for (kind, limits), integrand in integrands.items():
        integrand = sp.cancel(sp.expand(sp.sympify(integrand).doit()))
        if integrand != 0:
            rest += kind(integrand, *limits)
    return sp.expand(rest)


@sound_rewrite(
    "the fundamental theorem of calculus: the integral of c * dg/dt from a to b, c free of t, "
    "is c (g(b) - g(a))"
)
def _fundamental_theorem(expr):
    def evaluate(integral):
        (var, lo, hi), = integral.limits
        coefficient, derivative = integral.function.as_independent(var, as_Add=False)
        if not (isinstance(derivative, sp.Derivative) and derivative.variables == (var,)):
            return integral
        g = derivative.expr
        return coefficient * (g.subs(var, hi) - g.subs(var, lo))

    return sp.expand(sp.sympify(expr).replace(lambda e: isinstance(e, sp.Integral), evaluate))


_ak, _ak1, _sk, _sk1 = alpha_f(tk), alpha_f(tk1), sigma_f(tk), sigma_f(tk1)
DDIM_STEP_AT_GRID = (_sk1 / _sk) * xk + (_ak1 - _ak * _sk1 / _sk) * x0_hat
_grid_symbols = {_ak: a0, _ak1: a1, _sk: sg0, _sk1: sg1}
DDIM_STEP = DDIM_STEP_AT_GRID.subs(_grid_symbols, simultaneous=True)

register(
    Derivation(
        id="D-ddim-exponential-integrator",
        title="DDIM is the exact exponential-integrator step of the probability-flow ODE",
        statement=(
            r"In the variables $y = x/\sigma_t$ and $\rho = \alpha_t/\sigma_t$ the probability-flow "
            r"ODE $\dot x = \dot\alpha_t\hat x_0 + \dot\sigma_t\hat\varepsilon$ reads "
            r"$dy/dt = \frac{d\rho}{dt}\,\hat x_0(x_t, t)$. Holding the denoiser $\hat x_0$ fixed over "
            r"a step and integrating exactly gives DDIM ($\eta = 0$): "
            r"$x_{k+1} = \alpha_{k+1}\hat x_0 + \sigma_{k+1}\hat\varepsilon$, "
            r"$\hat\varepsilon = (x_k - \alpha_k \hat x_0)/\sigma_k$. The step is exact when the "
            r"denoiser is constant along the trajectory (point-mass data) and first order "
            r"otherwise (e.g. Gaussian data)."
        ),
        start=sigma_f(tk1) * (xk / sigma_f(tk) + _Integral(_dy_dt, (t, tk, tk1))),
        steps=[
            Step(
                rhs=sigma_f(tk1)
                * (xk / sigma_f(tk) + _Integral(x0_hat * sp.Derivative(_alpha / _sigma, t), (t, tk, tk1))),
                reason=(
                    r"The exact solution in $y$: $x_{k+1} = \sigma_{k+1}(y_k + \int_{t_k}^{t_{k+1}}\dot y\,dt)$. "
                    r"Substitute $\dot x = \dot\alpha\hat x_0 + \dot\sigma\hat\varepsilon$ with "
                    r"$\hat\varepsilon = (x - \alpha\hat x_0)/\sigma$ into $\dot y = \dot x/\sigma - "
                    r"x\dot\sigma/\sigma^2$: the terms in $x$ cancel, leaving "
                    r"$\dot y = \frac{d}{dt}(\alpha/\sigma)\,\hat x_0$."
                ),
                method=_combine_integrands,
            ),
            Step(
                rhs=sigma_f(tk1)
                * (xk / sigma_f(tk) + x0_hat * (alpha_f(tk1) / sigma_f(tk1) - alpha_f(tk) / sigma_f(tk))),
                reason=r"With $\hat x_0$ held fixed over the step, integrate $d\rho$ exactly.",
                method=_fundamental_theorem,
            ),
            Step(
                rhs=_ak1 * x0_hat + _sk1 * (xk - _ak * x0_hat) / _sk,
                reason=(
                    r"This is the DDIM update $\alpha_{k+1}\hat x_0 + \sigma_{k+1}\hat\varepsilon$ "
                    r"with $\hat\varepsilon = (x_k - \alpha_k\hat x_0)/\sigma_k$."
                ),
            ),
            Step(
                rhs=DDIM_STEP_AT_GRID,
                reason=(
                    r"The same update as a linear combination of the state and the denoiser: "
                    r"the form `sample_ode(method='ddim')` evaluates (with "
                    r"$\alpha_{k+1} - \alpha_k\sigma_{k+1}/\sigma_k = -\alpha_{k+1}(e^{-h}-1)$, "
                    r"$h = \lambda_{k+1} - \lambda_k$, $\lambda = \log(\alpha/\sigma)$)."
                ),
            ),
        ],
        symbols=(t, tk, tk1, x0_hat, xk),
        references=("song2021denoising", "lu2022dpm"),
        code=("genmath.core.dynamics.sample_ode", "genmath.core._solvers.integrate_exponential"),
        tests=("tests/core/test_samplers.py",),
    )
)

# --- D-dpm-solver-pp-2m ------------------------------------------------------------------
lam_k = sp.Symbol(r"lambda_k", real=True)
hk = sp.Symbol("h", positive=True)
r = sp.Symbol("r", positive=True)
d1, d2 = sp.symbols(r"D_{k} D_{k-1}", real=True)
slope = sp.Symbol("D'", real=True)
_phi2_gap = (hk - 1 + sp.exp(-hk)) - hk * (1 - sp.exp(-hk)) / 2
TWO_M_STEP = (sg1 / sg0) * xk - a1 * (sp.exp(-hk) - 1) * ((1 + 1 / (2 * r)) * d1 - d2 / (2 * r))

# genmath's schedule of steps on a three-step grid t_0 > t_1 > t_2 > t_3 (D a denoiser
# affine in the state, as the bindings use): DDIM, then 2M, then DDIM (lower order at the end)
X0 = sp.Symbol("x", real=True)
A = sp.symbols("alpha_0:4", positive=True)
S = sp.symbols("sigma_0:4", positive=True)
TT = sp.symbols("t_0:4", real=True)
dd = sp.symbols("d_0:4", real=True)


def denoiser(state, time):
    """The bindings' denoiser $\\hat x_0(x, t) = (d_0 + d_1 t)x + d_2 + d_3 t$."""
    return (dd[0] + dd[1] * time) * state + dd[2] + dd[3] * time


def _half_lambda_gap(k):
    return sp.log(A[k + 1] / S[k + 1]) - sp.log(A[k] / S[k])


def _ddim(state, k):
    return DDIM_STEP.subs(
        {xk: state, x0_hat: denoiser(state, TT[k]), a0: A[k], a1: A[k + 1], sg0: S[k], sg1: S[k + 1]},
        simultaneous=True,
    )


def _two_m(state, previous_state, k):
    return TWO_M_STEP.subs(
        {
            xk: state, d1: denoiser(state, TT[k]), d2: denoiser(previous_state, TT[k - 1]),
            a1: A[k + 1], sg0: S[k], sg1: S[k + 1], hk: _half_lambda_gap(k),
            r: _half_lambda_gap(k - 1) / _half_lambda_gap(k),
        },
        simultaneous=True,
    )


_X1 = _ddim(X0, 0)
_X2 = _two_m(_X1, X0, 1)


def _code_form(state, k, data):
    """The step as `integrate_exponential` writes it: sigma ratio and -alpha expm1(-h)."""
    return S[k + 1] / S[k] * state - A[k + 1] * (sp.exp(-_half_lambda_gap(k)) - 1) * data


_Y1 = _code_form(X0, 0, denoiser(X0, TT[0]))
_Y2 = _code_form(
    _Y1, 1,
    (1 + _half_lambda_gap(1) / (2 * _half_lambda_gap(0))) * denoiser(_Y1, TT[1])
    - _half_lambda_gap(1) / (2 * _half_lambda_gap(0)) * denoiser(X0, TT[0]),
)
THREE_STEPS = _code_form(_Y2, 2, denoiser(_Y2, TT[2]))

register(
    Derivation(
        id="D-dpm-solver-pp-2m",
        title="DPM-Solver++(2M): a second-order multistep exponential integrator in log-SNR",
        statement=(
            r"With $\lambda = \log(\alpha/\sigma)$ (half the log-SNR) and $h = \lambda_{k+1} - \lambda_k$, "
            r"the probability-flow ODE has the exact solution $x_{k+1} = \tfrac{\sigma_{k+1}}{\sigma_k}x_k "
            r"+ \sigma_{k+1}\int_{\lambda_k}^{\lambda_{k+1}} e^{\lambda}\hat x_0\,d\lambda$. "
            r"Extrapolating $\hat x_0$ linearly in $\lambda$ from the two latest denoiser outputs "
            r"($D_k$, $D_{k-1}$, with step ratio $r = h_{k-1}/h_k$) and replacing the weight "
            r"$\varphi_2$ by its leading term gives the 2M update "
            r"$x_{k+1} = \tfrac{\sigma_{k+1}}{\sigma_k}x_k - \alpha_{k+1}(e^{-h}-1)"
            r"\big[(1 + \tfrac{1}{2r})D_k - \tfrac{1}{2r}D_{k-1}\big]$, whose local error is "
            r"$O(h^3)$ — a second-order method. genmath takes a DDIM step first (no previous "
            r"output) and last (the long final $\lambda$-step of grids ending near the data); "
            r"single first-order steps leave the global order at 2. The last step composes the "
            "three on a grid of three steps, as `sample_ode(method='dpm++2m')` runs them."
        ),
        start=sp.ImmutableMatrix(
            [
                sp.Integral(sp.exp(lam) * (d1 + (lam - lam_k) * slope), (lam, lam_k, lam_k + hk)),
                *(sp.Subs(sp.Derivative(_phi2_gap, hk, n), hk, 0) for n in range(1, 4)),
                (sg1 / sg0) * xk
                + a1 * (1 - sp.exp(-hk)) * d1
                + a1 * hk * (1 - sp.exp(-hk)) / 2 * (d1 - d2) / (r * hk),
            ]
        ),
        steps=[
            Step(
                rhs=sp.ImmutableMatrix(
                    [
                        sp.exp(lam_k + hk) * ((1 - sp.exp(-hk)) * d1 + (hk - 1 + sp.exp(-hk)) * slope),
                        0,
                        0,
                        sp.Rational(1, 2),
                        TWO_M_STEP,
                    ]
                ),
                reason=(
                    r"First entry: integrate $e^{\lambda}$ times the linear extrapolation "
                    r"$D_k + (\lambda - \lambda_k)D'$ exactly. Entries 2–4: the slope weight "
                    r"$h - 1 + e^{-h}$ and its replacement $h(1 - e^{-h})/2$ differ by "
                    r"$h^3/12 + O(h^4)$ (the gap and its first two derivatives vanish at $h = 0$, "
                    r"its third is $1/2$): times $D' = O(1)$ a local error $O(h^3)$, the order of the "
                    r"method's own truncation error. Last entry: multiply by "
                    r"$\sigma_{k+1}e^{\lambda_{k+1}} = \alpha_{k+1}$ and use the finite difference "
                    r"$D' \approx (D_k - D_{k-1})/(r h)$: the DPM-Solver++(2M) update of Lu et al. "
                    "(2022, Algorithm 2)."
                ),
            ),
            Step(
                lhs=From(
                    "D-ddim-exponential-integrator",
                    {xk: _X2, x0_hat: denoiser(_X2, TT[2]), _ak: A[2], _ak1: A[3], _sk: S[2], _sk1: S[3]},
                    step=4,
                ),
                rhs=THREE_STEPS,
                reason=(
                    r"On a grid $t_0 > t_1 > t_2 > t_3$ with scales $\alpha_i, \sigma_i$ and a denoiser "
                    r"$\hat x_0(x, t) = (d_0 + d_1 t)x + d_2 + d_3 t$: a DDIM step, the 2M step with "
                    r"$r = h_0/h_1$, and a final DDIM step, composed; on the right, the same three "
                    r"steps as the code writes them, $x \mapsto \frac{\sigma_{i+1}}{\sigma_i}x - "
                    r"\alpha_{i+1}(e^{-h_i} - 1)D$, $h_i = \log\frac{\alpha_{i+1}}{\sigma_{i+1}} - "
                    r"\log\frac{\alpha_i}{\sigma_i}$, with $\frac{1}{2r} = \frac{h_1}{2h_0}$."
                ),
                tag=NUMERIC,
                tolerance=1e-12,
                samples=6,
            ),
        ],
        symbols=(lam, lam_k, hk, r, d1, d2, slope, a1, sg0, sg1, xk),
        references=("lu2022dpmpp", "lu2022dpm"),
        code=("genmath.core.dynamics.sample_ode", "genmath.core._solvers.integrate_exponential"),
        tests=("tests/core/test_samplers.py",),
        domain={hk: (0.05, 2.0), r: (0.2, 5.0)},
    )
)


def _bands(label, n, *, ends=False):
    """Domains of ``n + 1`` grid times ``TT[0] > ... > TT[n]`` in the safe interval of
    schedule ``label``: disjoint, so the grid is strictly decreasing, each time drawn in its
    own band, so the steps (and their ratios) are not uniform."""
    lo, hi = shared_schedule(label).safe_interval
    edges = [hi - (hi - lo) * i / (n + 1) for i in range(n + 2)]
    return {
        TT[i]: Uniform(edges[i + 1], edges[i], ends=ends and i == 0) for i in range(n + 1)
    }


def _scales_where(label, n):
    case = schedule_case(label)
    where = {}
    for i in range(n + 1):
        a_, s_, _, _ = case.at(TT[i])
        where.update({A[i]: a_, S[i]: s_})
    return where


def _exponential_on_path(label, method, n, state):
    """``method`` on the ``n``-step grid ``TT`` of schedule ``label``; point j's model predicts
    parameterization j mod 5, which implies the denoiser `denoiser`."""

    def evaluate(points):
        import torch

        from ..core.dynamics import sample_ode

        path = shared_path(label)
        times = torch.stack([points[TT[i]] for i in range(n + 1)], dim=1)
        k = [points[d] for d in dd]
        values = []
        for j in range(times.shape[0]):
            name = _PARAMETERIZATIONS[j % len(_PARAMETERIZATIONS)]
            clean = lambda s, tt, j=j: (k[0][j] + k[1][j] * tt) * s + k[2][j] + k[3][j] * tt  # noqa: E731
            model = _prediction(label, name, denoiser=clean)
            result = sample_ode(
                model, points[state][j].reshape(1, 1), grid=times[j], method=method,
                path=path, parameterization=name,
            )
            values.append(result.x[0, 0])
        return torch.stack(values)

    return evaluate


def _register_exponential_bindings():
    for label in ("VP()", "CondOT()", "VE()"):
        scale = _scales_where(label, 1)
        register(
            Binding(
                derivation="D-ddim-exponential-integrator",
                code=("genmath.core.dynamics.sample_ode", "genmath.core._solvers.integrate_exponential"),
                expression=DDIM_STEP_AT_GRID,
                where={
                    _ak: scale[A[0]], _ak1: scale[A[1]], _sk: scale[S[0]], _sk1: scale[S[1]],
                    x0_hat: denoiser(xk, TT[0]),
                },
                evaluate=_exponential_on_path(label, "ddim", 1, xk),
                domain={xk: Uniform(-3, 3), **_bands(label, 1, ends=True), **{d: Uniform(-2, 2) for d in dd}},
                samples=10,
                description=(
                    f"one DDIM step on GaussianPath({label}), point j's model in parameterization j mod 5"
                ),
            )
        )
    for label in ("VP()", "CondOT()"):
        register(
            Binding(
                derivation="D-dpm-solver-pp-2m",
                code=("genmath.core.dynamics.sample_ode", "genmath.core._solvers.integrate_exponential"),
                expression=THREE_STEPS,
                where=_scales_where(label, 3),
                evaluate=_exponential_on_path(label, "dpm++2m", 3, X0),
                domain={X0: Uniform(-3, 3), **_bands(label, 3), **{d: Uniform(-2, 2) for d in dd}},
                samples=10,
                description=(
                    f"sample_ode(method='dpm++2m') on a random three-step grid of GaussianPath({label}), "
                    "point j's model in parameterization j mod 5"
                ),
            )
        )


_register_exponential_bindings()


def _point_mass_error() -> float:
    """DDIM and DPM-Solver++(2M) on point-mass data (a constant denoiser) against the exact
    probability-flow map $x_{t'} = \\alpha_{t'} c + \\sigma_{t'}(x_t - \\alpha_t c)/\\sigma_t$."""
    import torch

    from genmath.core.dynamics import sample_ode
    from genmath.core.path import GaussianPath
    from genmath.schedules import VP

    path = GaussianPath(VP())
    generator = torch.Generator().manual_seed(0)
    centre = torch.tensor([1.5, -0.7, 0.3], dtype=torch.float64)
    x1 = torch.randn(4, 3, generator=generator, dtype=torch.float64)
    worst = 0.0
    for method in ("ddim", "dpm++2m"):
        result = sample_ode(
            lambda x, t: centre.expand_as(x),
            x1,
            steps=7,
            grid="karras",
            method=method,
            path=path,
            parameterization="x0",
        )
        t_start, t_end = result.grid[0], result.grid[-1]
        exact = path.alpha(t_end) * centre + path.sigma(t_end) * (
            x1 - path.alpha(t_start) * centre
        ) / path.sigma(t_start)
        worst = max(worst, float((result.x - exact).abs().max()))
    return worst


register(
    Check(
        id="C-exponential-integrators-point-mass",
        title="DDIM and DPM-Solver++(2M) are exact for point-mass data",
        function=_point_mass_error,
        tolerance=1e-12,
        code=("genmath.core.dynamics.sample_ode",),
        tests=("tests/core/test_samplers.py",),
        derivation="D-ddim-exponential-integrator",
    )
)
