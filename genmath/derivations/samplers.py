"""The samplers' step maps: the four Runge–Kutta methods, DDIM and DPM-Solver++(2M) as
exponential integrators of the probability-flow ODE, Euler–Maruyama and the Langevin
corrector of the predictor–corrector sampler.

Every step map is bound to `sample_ode` / `sample_sde` on random, non-uniform grids and, for
a Gaussian path, in each of the five parameterizations: the binding feeds the sampler a model
whose prediction (in that parameterization) is a known field, built from the schedule's sympy
definition, and compares the sampler's state with the step map of that field.
"""

import functools

import sympy as sp

from ._engine import (
    NUMERIC,
    Binding,
    Check,
    Derivation,
    From,
    LogUniform,
    Step,
    Uniform,
    sound_rewrite,
)
from ._path_cases import (
    gaussian_moments,
    prescribed_noise,
    scales,
    schedule_case,
    shared_path,
    shared_schedule,
)
from ._path_cases import standard_normal_density as _phi
from ._registry import register

# ====================================================================== Runge–Kutta steps
x, t0, t1, lam = sp.symbols("x t_0 t_1 lambda", real=True)
c0, c1, c2, c3 = sp.symbols("c_0:4", real=True)
h = t1 - t0


def _field(state, time):
    """The test field $F(x, t) = (c_0 + c_1 t)\\,x + c_2 + c_3 t$: affine in the state,
    time-dependent, so every stage's state and time enter a step."""
    return (c0 + c1 * time) * state + c2 + c3 * time


def _euler(f):
    return x + h * f(x, t0)


def _midpoint(f):
    k1 = f(x, t0)
    return x + h * f(x + h / 2 * k1, t0 + h / 2)


def _heun(f):
    k1 = f(x, t0)
    k2 = f(x + h * k1, t1)
    return x + h / 2 * (k1 + k2)


def _rk4(f):
    k1 = f(x, t0)
    k2 = f(x + h / 2 * k1, t0 + h / 2)
    k3 = f(x + h / 2 * k2, t0 + h / 2)
    k4 = f(x + h * k3, t1)
    return x + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)


RK_METHODS = {"euler": (_euler, 1), "midpoint": (_midpoint, 2), "heun": (_heun, 2), "rk4": (_rk4, 4)}
_rk_maps = {name: step(_field) for name, (step, _) in RK_METHODS.items()}


def _linear(state, time):
    return lam * state


_z = lam * h
_linear_maps = [step(_linear) for step, _ in RK_METHODS.values()]
_taylor = [x * sum(_z**k / sp.factorial(k) for k in range(order + 1)) for _, order in RK_METHODS.values()]

register(
    Derivation(
        id="D-runge-kutta-steps",
        title="The fixed-step ODE methods' step maps and their orders on linear fields",
        statement=(
            r"One step of $\dot x = F(x, t)$ from $t_0$ to $t_1$, $h = t_1 - t_0$ (negative when "
            r"sampling from noise to data): Euler $x + hF(x, t_0)$; midpoint "
            r"$x + hF(x + \frac h2 k_1, t_0 + \frac h2)$; Heun (trapezoidal, EDM's second-order "
            r"step) $x + \frac h2(k_1 + F(x + hk_1, t_1))$; classical RK4 "
            r"$x + \frac h6(k_1 + 2k_2 + 2k_3 + k_4)$, with $k_1 = F(x, t_0)$ (Hairer et al. "
            r"1993, II.1). The maps are shown for the time-dependent affine field "
            r"$F = (c_0 + c_1 t)x + c_2 + c_3 t$, the field the bindings integrate. On "
            r"$F = \lambda x$ they are the Taylor polynomials of $e^{h\lambda}$ of degree 1, 2, 2 "
            "and 4: the methods' orders."
        ),
        start=sp.ImmutableMatrix([*_rk_maps.values(), *_linear_maps]),
        steps=[
            Step(
                rhs=sp.ImmutableMatrix([*_rk_maps.values(), *_taylor]),
                reason=(
                    r"The first four entries are the step maps themselves. On the linear field "
                    r"$F = \lambda x$ every stage is $x$ times a polynomial in $z = h\lambda$, and the "
                    r"step is $x\sum_{k \le p} z^k/k!$: Euler and the two second-order methods "
                    r"match $e^{z}$ to $O(z^{p+1})$ with $p = 1, 2, 2$, RK4 with $p = 4$."
                ),
            ),
        ],
        symbols=(x, t0, t1, lam, c0, c1, c2, c3),
        references=("hairer1993solving", "karras2022elucidating"),
        code=("genmath.core.dynamics.sample_ode", "genmath.core._solvers.integrate_fixed"),
        tests=("tests/core/test_samplers.py",),
    )
)

# ------------------------------------------------------------- the five parameterizations
# A model predicting `name` whose implied velocity (or denoiser) is a given field: built
# from D-parameterizations' table with the schedule's scales from its sympy definition.
_PARAMETERIZATIONS = ("x0", "eps", "score", "velocity", "v")


@functools.cache
def _table():
    from .parameterizations import _from_x0, _to_x0, a, da, ds, pred, s, x0, x_t

    args = (x_t, pred, a, s, da, ds)
    to_x0 = {n: sp.lambdify(args, _to_x0[n](pred), "math") for n in _PARAMETERIZATIONS}
    from_x0 = {
        n: sp.lambdify((x_t, x0, a, s, da, ds), _from_x0[n](x0), "math")
        for n in _PARAMETERIZATIONS
    }
    return to_x0, from_x0


def _prediction(label, name, *, velocity=None, denoiser=None):
    """``model(x, t)`` predicting ``name`` on schedule ``label`` for a velocity field
    ``velocity(x, t)`` (or a denoiser ``denoiser(x, t)``)."""
    to_x0, from_x0 = _table()

    def model(state, time):
        a_, s_, da_, ds_ = scales(label, time.reshape(1))
        if denoiser is not None:
            clean = denoiser(state, time)
        else:
            clean = to_x0["velocity"](state, velocity(state, time), a_, s_, da_, ds_)
        return from_x0[name](state, clean, a_, s_, da_, ds_)

    return model


def _torch_field(points, coefficients):
    k0, k1, k2, k3 = (points[c] for c in coefficients)

    def field(j):
        return lambda state, time: (k0[j] + k1[j] * time) * state + k2[j] + k3[j] * time

    return field


def _rk_on_path(label, method):
    """``method`` in each parameterization on the path of schedule ``label``: one step on
    the 2-point grid (t_0, t_1) inside the safe interval, in either direction. (The
    parameterization enters a fixed-step method only through the velocity it implies, the
    same conversion for every method.)"""

    def evaluate(points):
        import torch

        from ..core.dynamics import sample_ode

        path = shared_path(label)
        field = _torch_field(points, (c0, c1, c2, c3))
        out = []
        for name in _PARAMETERIZATIONS:
            values = []
            for j in range(points[x].shape[0]):
                grid = torch.stack([points[t0][j], points[t1][j]])
                model = _prediction(label, name, velocity=field(j))
                result = sample_ode(
                    model, points[x][j].reshape(1, 1), grid=grid, method=method,
                    path=path, parameterization=name,
                )
                values.append(result.x[0, 0])
            out.append(torch.stack(values))
        return tuple(out)

    return evaluate


def _rk_without_path(points):
    import torch

    from ..core.dynamics import sample_ode

    field = _torch_field(points, (c0, c1, c2, c3))
    out = []
    for method in RK_METHODS:
        values = []
        for j in range(points[x].shape[0]):
            grid = torch.stack([points[t0][j], points[t1][j]])
            result = sample_ode(field(j), points[x][j].reshape(1, 1), grid=grid, method=method)
            values.append(result.x[0, 0])
        out.append(torch.stack(values))
    return tuple(out)


_coefficient_domain = {c: Uniform(-2.0, 2.0) for c in (c0, c1, c2, c3)}

register(
    Binding(
        derivation="D-runge-kutta-steps",
        code=("genmath.core.dynamics.sample_ode", "genmath.core._solvers.integrate_fixed"),
        expression=tuple(_rk_maps.values()),
        evaluate=_rk_without_path,
        domain={x: Uniform(-3, 3), t0: Uniform(0, 1, ends=True), t1: Uniform(0, 1), **_coefficient_domain},
        samples=16,
        description="one step of sample_ode (euler, midpoint, heun, rk4) of a velocity field, no path, t in [0, 1] either way",
    )
)


def _safe(label):
    lo, hi = shared_schedule(label).safe_interval
    return Uniform(lo, hi)


register(
    Binding(
        derivation="D-runge-kutta-steps",
        code=("genmath.core.dynamics.sample_ode", "genmath.core.dynamics.reparameterize"),
        expression=tuple(_rk_maps["heun"] for _ in _PARAMETERIZATIONS),
        evaluate=_rk_on_path("VP()", "heun"),
        domain={x: Uniform(-3, 3), t0: _safe("VP()"), t1: _safe("VP()"), **_coefficient_domain},
        samples=12,
        description="one heun step on GaussianPath(VP()), the model in each of the five parameterizations",
    )
)


# ====================================================================== exponential integrators
from .elbo_gap import _Integral  # noqa: E402  (an integral sympy's integrator never touches)

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


# ====================================================================== SDE steps
h_em = sp.Symbol("h", real=True)  # t_next - t: negative when sampling from noise to data
b_em = sp.Symbol("b", real=True)  # the drift at (x, t)
nu_em = sp.Symbol("nu", nonnegative=True)  # the diffusion coefficient at t
z_em = sp.Symbol("z", real=True)
EM_STEP = X0 + h_em * b_em + nu_em * sp.sqrt(sp.Abs(h_em)) * z_em
_mean_em = X0 + h_em * b_em


def _against_normal(integrand):
    return _Integral(integrand * _phi(z_em), (z_em, -sp.oo, sp.oo))


register(
    Derivation(
        id="D-euler-maruyama",
        title="Euler–Maruyama: the one-step transition is N(x + h b, nu^2 |h|)",
        statement=(
            r"Freezing the drift $b$ and the diffusion $\nu$ of $dx = b(x, t)\,dt + \nu(t)\,dW$ over "
            r"$[t, t + h]$ gives $x_{t+h} = x + h\,b(x, t) + \nu(t)(W_{t+h} - W_t)$, and the Brownian "
            r"increment is $\sqrt{|h|}\,z$, $z \sim \mathcal N(0, 1)$, in either direction of time "
            r"(on a decreasing grid the increments are those of reverse time, $d\bar W$). So the "
            r"one-step transition is Gaussian with mean $x + h b$ and variance $\nu^2|h|$ per "
            r"coordinate (Kloeden & Platen 1992, §9.1): the step `sample_sde` takes."
        ),
        start=sp.ImmutableMatrix(
            [EM_STEP, _against_normal(EM_STEP), _against_normal((EM_STEP - _mean_em) ** 2)]
        ),
        steps=[
            Step(
                rhs=sp.ImmutableMatrix([EM_STEP, _mean_em, nu_em**2 * sp.Abs(h_em)]),
                reason=(
                    r"The step itself, then its mean and variance over $z$: $\mathbb E z = 0$, "
                    r"$\mathbb E z^2 = 1$."
                ),
                method=gaussian_moments,
            ),
        ],
        symbols=(X0, h_em, b_em, nu_em, z_em),
        references=("kloeden1992numerical", "song2021score"),
        code=("genmath.core.dynamics.sample_sde", "genmath.core._solvers.integrate_sde"),
        tests=("tests/core/test_samplers.py",),
    )
)

pp = sp.symbols("p_0:3", real=True)
nn = sp.symbols("n_0:2", nonnegative=True)


def _drift(state, time):
    return (pp[0] + pp[1] * time) * state + pp[2]


def _diffusion(time):
    return nn[0] + nn[1] * time


def _sde_coefficients(points, j):
    """Point j's drift ``b(x, t) = (p_0 + p_1 t) x + p_2`` and diffusion ``n_0 + n_1 t``."""
    p0_, p1_, p2_ = (points[p][j] for p in pp)
    n0_, n1_ = (points[n][j] for n in nn)
    return (lambda s, tt: (p0_ + p1_ * tt) * s + p2_), (lambda tt: n0_ + n1_ * tt)


def _em_by_code(points):
    import torch

    from ..core.dynamics import sample_sde

    values = []
    for j in range(points[X0].shape[0]):
        drift, diffusion = _sde_coefficients(points, j)
        grid = torch.stack([points[t0][j], points[t1][j]])
        with prescribed_noise([points[z_em][j].reshape(1, 1)]):
            result = sample_sde(drift, diffusion, points[X0][j].reshape(1, 1), grid=grid)
        values.append(result.x[0, 0])
    return torch.stack(values)


register(
    Binding(
        derivation="D-euler-maruyama",
        code=("genmath.core.dynamics.sample_sde", "genmath.core._solvers.integrate_sde"),
        expression=EM_STEP,
        where={h_em: t1 - t0, b_em: _drift(X0, t0), nu_em: _diffusion(t0)},
        evaluate=_em_by_code,
        domain={
            X0: Uniform(-3, 3), z_em: Uniform(-3, 3), t0: Uniform(0, 1, ends=True), t1: Uniform(0, 1),
            **{p: Uniform(-2, 2) for p in pp}, **{n: Uniform(0, 2) for n in nn},
        },
        samples=16,
        description=(
            "one Euler–Maruyama step of sample_sde at a prescribed Gaussian draw, grids in either "
            "direction"
        ),
    )
)

# --- the Langevin corrector of the predictor–corrector sampler ------------------------------
snr = sp.Symbol("r", positive=True)
eps_c = sp.Symbol("epsilon", positive=True)
Y = sp.symbols("y_0:4", real=True)  # the predictor's state: samples (y_0, y_1), (y_2, y_3)
SC = sp.symbols("S_0:4", real=True)  # the score there
ZETA = sp.symbols("zeta_0:4", real=True)  # the corrector's Gaussian draws


def _norm(first, second):
    return sp.sqrt(first**2 + second**2)


def _batch_mean_norm(v):
    return (_norm(v[0], v[1]) + _norm(v[2], v[3])) / 2


STEP_SIZE = 2 * (snr * _batch_mean_norm(ZETA) / _batch_mean_norm(SC)) ** 2
_snr_ratio = _batch_mean_norm([eps_c * s_ for s_ in SC]) / _batch_mean_norm(
    [sp.sqrt(2 * eps_c) * z_ for z_ in ZETA]
)


def _corrector_at(i):
    return From(
        "D-euler-maruyama",
        {X0: Y[i], h_em: STEP_SIZE, b_em: SC[i], nu_em: sp.sqrt(2), z_em: ZETA[i]},
        step=1,
    )


def _corrector_rhs(i):
    return sp.ImmutableMatrix(
        [Y[i] + STEP_SIZE * SC[i] + sp.sqrt(2 * STEP_SIZE) * ZETA[i], Y[i] + STEP_SIZE * SC[i], 2 * STEP_SIZE]
    )


register(
    Derivation(
        id="D-langevin-corrector",
        title="The Langevin corrector: an Euler–Maruyama step of the Langevin SDE with a signal-to-noise step size",
        statement=(
            r"The corrector of the predictor–corrector sampler (Song et al. 2021, Algorithm 4) is an "
            r"Euler–Maruyama step (D-euler-maruyama) of the Langevin SDE "
            r"$dx = \nabla\log p_t(x)\,dt + \sqrt 2\,dW$, whose stationary law is $p_t$, with step "
            r"$\epsilon = 2\big(r\,\overline{\lVert\zeta\rVert}/\overline{\lVert s\rVert}\big)^2$: "
            r"$x \mapsto x + \epsilon s(x) + \sqrt{2\epsilon}\,\zeta$, $\zeta \sim \mathcal N(0, I)$, "
            r"norms averaged over the batch. The rule makes the batch's mean drift displacement "
            r"$r$ times its mean noise displacement. Shown for a batch of two samples in two "
            "dimensions, the case the binding runs."
        ),
        start=_snr_ratio.subs(eps_c, STEP_SIZE),
        steps=[
            Step(
                rhs=snr,
                reason=(
                    r"The ratio of mean displacements $\overline{\lVert\epsilon s\rVert}/"
                    r"\overline{\lVert\sqrt{2\epsilon}\,\zeta\rVert} = \sqrt{\epsilon/2}\,"
                    r"\overline{\lVert s\rVert}/\overline{\lVert\zeta\rVert}$ is $r$ at the rule's $\epsilon$."
                ),
            ),
            Step(
                lhs=_corrector_at(0),
                rhs=_corrector_rhs(0),
                reason=(
                    r"Euler–Maruyama of the Langevin SDE with $h = \epsilon > 0$, $b = s$, $\nu = \sqrt 2$: "
                    r"the step and its conditional mean $x + \epsilon s$ and variance $2\epsilon$ "
                    "(first coordinate of the first sample)..."
                ),
            ),
            Step(
                lhs=_corrector_at(3),
                rhs=_corrector_rhs(3),
                reason="...and the second coordinate of the second sample, with the same step size.",
            ),
        ],
        symbols=(snr, *Y, *SC, *ZETA),
        references=("song2021score", "kloeden1992numerical"),
        code=("genmath.core.dynamics.sample_sde", "genmath.core._solvers.integrate_sde"),
        tests=("tests/core/test_samplers.py",),
    )
)

XB = sp.symbols("x_0:4", real=True)  # the state before the predictor
ZB = sp.symbols("z_0:4", real=True)  # the predictor's Gaussian draws
mean_s, var_s = sp.Symbol("m", real=True), sp.Symbol("v", positive=True)


def _score(state, time):
    """The bindings' score model $s(x, t) = -(x - m)/(v + t)$."""
    return -(state - mean_s) / (var_s + time)


_predicted = [
    EM_STEP.subs({X0: XB[i], h_em: t1 - t0, b_em: _drift(XB[i], t0), nu_em: _diffusion(t0), z_em: ZB[i]},
                 simultaneous=True)
    for i in range(4)
]
_pc_where = {
    **{Y[i]: _predicted[i] for i in range(4)},
    **{SC[i]: _score(_predicted[i], t1) for i in range(4)},
}


def _pc_by_code(points):
    import torch

    from ..core.dynamics import sample_sde

    def score_model(j):
        m_, v_ = points[mean_s][j], points[var_s][j]
        return lambda s, tt: -(s - m_) / (v_ + tt)

    first, last = [], []
    for j in range(points[t0].shape[0]):
        drift, diffusion = _sde_coefficients(points, j)
        state = torch.stack([points[s_][j] for s_ in XB]).reshape(2, 2)
        draws = [torch.stack([points[s_][j] for s_ in group]).reshape(2, 2) for group in (ZB, ZETA)]
        with prescribed_noise(draws):
            result = sample_sde(
                drift,
                diffusion,
                state,
                grid=torch.stack([points[t0][j], points[t1][j]]),
                method="pc",
                score=score_model(j),
                snr=float(points[snr][j]),
            )
        first.append(result.x[0, 0])
        last.append(result.x[1, 1])
    return torch.stack(first), torch.stack(last)


register(
    Binding(
        derivation="D-langevin-corrector",
        code=("genmath.core.dynamics.sample_sde", "genmath.core._solvers.integrate_sde"),
        expression=(_corrector_rhs(0)[0], _corrector_rhs(3)[0]),
        where=_pc_where,
        evaluate=_pc_by_code,
        domain={
            **{s_: Uniform(-2, 2) for s_ in (*XB, *ZB, *ZETA)},
            t0: Uniform(0, 1, ends=True), t1: Uniform(0, 1),
            **{p: Uniform(-2, 2) for p in pp}, **{n: Uniform(0, 2) for n in nn},
            mean_s: Uniform(-2, 2), var_s: LogUniform(0.05, 5.0), snr: LogUniform(0.01, 1.0),
        },
        samples=12,
        description=(
            "one predictor–corrector step of sample_sde(method='pc') on a batch of two 2-d samples "
            "at prescribed Gaussian draws: entries (0, 0) and (1, 1)"
        ),
    )
)
