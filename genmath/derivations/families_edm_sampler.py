"""EDM's samplers (Karras et al. 2022, Algorithms 1–2): the probability-flow ODE in the scaled
state and noise level, $d\\tilde x/ds = (\\tilde x - D(\\tilde x; s))/s$, its Heun step, EDM's
noise label, and the stochastic churn that raises the noise level along the forward process.

The bindings run `edm_sample` for two Heun steps on the $\\rho$-grid of two paths (VE, where
$\\tilde x = x$, and VP, where $\\tilde x = x/\\alpha_t$) with a denoiser affine in the state
whose coefficients vary with the noise level, in every parameterization, with and without
churn; and `EDM.noise_level`, `EDM.time_of` and the noise label of `edm_preconditioning`.
"""


import functools

import sympy as sp

from ._engine import Binding, Derivation, LogUniform, Step, Uniform
from ._registry import register
from .parameterizations import _from_x0, a, da, ds, s, x_t

PARAMETERIZATIONS = ("x0", "eps", "score", "velocity", "v")

# --- the scaled ODE ---------------------------------------------------------------------------
D = sp.Symbol("D", real=True)  # the denoiser's value, the x0 prediction
_velocity = _from_x0["velocity"](D)  # the probability-flow velocity of an x0 prediction
_dx_scaled = (_velocity * a - da * x_t) / a**2  # d(x/alpha)/dt
_d_level = (ds * a - s * da) / a**2  # d(sigma/alpha)/dt
_noise_label = sp.log(s / a) / 4

# --- the Heun step of an affine denoiser D = a_k x + b_k at the two levels --------------------
xs = sp.Symbol(r"\tilde{x}", real=True)
s0, s1 = sp.symbols("s_0 s_1", positive=True)
a0, b0, a1, b1 = sp.symbols("a_0 b_0 a_1 b_1", real=True)


def _slope(state, level, gain, offset):
    """(x - D(x; s)) / s, the derived slope, for D = gain x + offset."""
    return (state - (gain * state + offset)) / level


_predictor = xs + (s1 - s0) * _slope(xs, s0, a0, b0)
heun = xs + (s1 - s0) / 2 * (_slope(xs, s0, a0, b0) + _slope(_predictor, s1, a1, b1))
_h = s1 - s0
_gain = 1 + _h * (1 - a0) / (2 * s0) + _h * (1 - a1) * (1 + _h * (1 - a0) / s0) / (2 * s1)
_offset = -_h * b0 / (2 * s0) - _h * ((1 - a1) * _h * b0 / s0 + b1) / (2 * s1)

register(
    Derivation(
        id="D-edm-sampler",
        title="EDM's ODE in the scaled state, d x~/ds = (x~ - D)/s, and its Heun step",
        statement=(
            r"On a Gaussian path take the noise level $s = \sigma_t/\alpha_t$ and the scaled state "
            r"$\tilde x = x_t/\alpha_t$. Along the probability-flow ODE, whose velocity for an "
            r"$x_0$-prediction $D$ is $\dot\alpha_t D + \dot\sigma_t(x - \alpha_t D)/\sigma_t$ "
            r"(D-parameterizations), $d\tilde x/ds = (\tilde x - D(\tilde x; s))/s$ whatever the "
            r"schedule (Karras et al. 2022, eq. 4): EDM samples every path in the same coordinates. "
            r"Heun's step from $s_0$ to $s_1$ averages the slope at $s_0$ and at the Euler "
            r"predictor; for a denoiser affine in the state, $D = a_k\tilde x + b_k$ at level "
            r"$s_k$, it is the affine map below. EDM's noise label $c_\mathrm{noise} = \tfrac14"
            r"\ln s$ is $-\lambda_t/8$, the path's log-SNR rescaled."
        ),
        start=_dx_scaled / _d_level,
        steps=[
            Step(
                rhs=(x_t / a - D) / (s / a),
                reason=(
                    r"$d\tilde x/dt = (v - \dot\alpha\tilde x)/\alpha$ and $ds/dt = (\dot\sigma\alpha "
                    r"- \sigma\dot\alpha)/\alpha^2$; their ratio is $(\tilde x - D)/s$ (the terms in "
                    r"$\dot\alpha$ and $\dot\sigma$ cancel)."
                ),
            ),
            Step(
                lhs=_noise_label,
                rhs=-(2 * sp.log(a) - 2 * sp.log(s)) / 8,
                reason=r"$\tfrac14\ln(\sigma/\alpha) = -\lambda/8$ with $\lambda = 2\ln(\alpha/\sigma)$.",
            ),
            Step(
                lhs=heun,
                rhs=_gain * xs + _offset,
                reason=(
                    r"Heun's step $\tilde x + \tfrac{h}{2}(d_0 + d_1)$, $h = s_1 - s_0$, with the "
                    r"slope $d_0 = (\tilde x - D(\tilde x; s_0))/s_0$ of the first line and $d_1$ at "
                    r"the Euler predictor $\tilde x + h d_0$: for an affine denoiser, an affine map "
                    "of the state."
                ),
            ),
        ],
        symbols=(a, s, da, ds, x_t, D, xs, s0, s1, a0, b0, a1, b1),
        references=("karras2022elucidating", "song2021score"),
        code=(
            "genmath.families.diffusion.edm_sample",
            "genmath.families.diffusion.EDM.noise_level",
            "genmath.families.diffusion.EDM.time_of",
            "genmath.families.diffusion.edm_preconditioning",
        ),
        tests=("tests/families/test_diffusion.py",),
    )
)

# --- bindings ---------------------------------------------------------------------------------
_tau, _lam = sp.Symbol("tau", nonnegative=True), sp.Symbol("lambda", real=True)
_t = sp.Symbol("t", positive=True)


def _vp_scales():
    from ..core.schedules import VP

    alpha, sigma, _ = VP.definition(_tau, _lam, sp.Rational(1, 10), 20)
    return {a: alpha.subs(_tau, _t), s: sigma.subs(_tau, _t)}


def _noise_levels(points):
    from ..core.path import GaussianPath
    from ..core.schedules import VP
    from ..families.diffusion import EDM

    edm = EDM(lambda x, c: x, path=GaussianPath(VP()))
    level = edm.noise_level(points[_t])
    return level, edm.noise_level(edm.time_of(level))


register(
    Binding(
        derivation="D-edm-sampler",
        code=("genmath.families.diffusion.EDM.noise_level", "genmath.families.diffusion.EDM.time_of"),
        expression=(s / a, s / a),
        where=_vp_scales(),
        evaluate=_noise_levels,
        domain={_t: Uniform(1e-3, 1.0, ends=True)},
        samples=16,
        tolerance=1e-8,
        description=(
            "EDM(path=VP()).noise_level(t) = sigma_t / alpha_t, and noise_level(time_of(level)) "
            "returns the level"
        ),
    )
)


def _noise_labels(points):
    from ..families.diffusion import edm_preconditioning

    return edm_preconditioning(points[s])[3]


register(
    Binding(
        derivation="D-edm-sampler",
        code=("genmath.families.diffusion.edm_preconditioning",),
        expression=_noise_label,
        where={a: 1},
        evaluate=_noise_labels,
        domain={s: LogUniform(1e-3, 1e3)},
        samples=16,
        description="edm_preconditioning's noise label c_noise at noise level s (alpha = 1)",
    )
)

# A denoiser whose coefficients vary with the level: D = q a*(s) x + r s / (1 + s), with
# a*(s) = sigma_d^2 / (sigma_d^2 + s^2) the ideal Gaussian gain, sigma_d = 1/2.
q, r, rho = sp.symbols("q r rho", real=True)
x_start = sp.Symbol(r"\tilde{x}_0", real=True)


def _gain_at(level):
    return q / (1 + 4 * level**2)


def _offset_at(level):
    return r * level / (1 + level)


@functools.cache
def _path(name):
    """EDM's default VE(0.002, 80) path, or VP(); built once (compiling a schedule is slow)."""
    from ..core import schedules
    from ..core.path import GaussianPath

    return GaussianPath(schedules.VE(0.002, 80.0) if name == "VE" else schedules.VP())


def _schedule_case(name):
    """(path name, s_max, s_min) at the ends of the safe interval (the Karras grid's)."""
    import torch

    path = _path(name)
    ends = torch.tensor(path.schedule.safe_interval[::-1], dtype=torch.float64)
    levels = path.sigma(ends) / path.alpha(ends)
    return name, sp.Float(float(levels[0]), 17), sp.Float(float(levels[1]), 17)


def _middle(top, bottom):
    return ((top ** (1 / rho) + bottom ** (1 / rho)) / 2) ** rho


def _two_heun_steps(top, bottom):
    middle = _middle(top, bottom)

    def step(state, start, end):
        return heun.subs(
            {xs: state, s0: start, s1: end, a0: _gain_at(start), b0: _offset_at(start),
             a1: _gain_at(end), b1: _offset_at(end)},
            simultaneous=True,
        )

    inner = step(x_start, top, middle)
    return {xs: inner, s0: middle, s1: bottom, a0: _gain_at(middle), b0: _offset_at(middle),
            a1: _gain_at(bottom), b1: _offset_at(bottom)}


def _affine_model(path, gain, offset, name):
    def model(x, t):
        alpha, sigma = path.alpha(t), path.sigma(t)
        level = sigma / alpha
        denoised = gain * (x / alpha) / (1 + 4 * level**2) + offset * level / (1 + level)
        return path.convert(denoised, x, t, "x0", name)

    return model


def _edm_heun(path_name):
    def evaluate(points):
        import torch

        from ..families.diffusion import edm_sample

        path = _path(path_name)
        out = []
        for j in range(points[q].numel()):
            name = PARAMETERIZATIONS[j % len(PARAMETERIZATIONS)]
            model = _affine_model(path, points[q][j], points[r][j], name)
            top = torch.tensor(path.schedule.safe_interval[1], dtype=torch.float64)
            start = (path.alpha(top) * points[x_start][j]).reshape(1, 1)
            result = edm_sample(model, start, path, steps=2, parameterization=name,
                                rho=float(points[rho][j]))
            out.append((result.x / path.alpha(result.grid[-1]))[0, 0])
        return torch.stack(out)

    return evaluate


def _register_heun_bindings():
    for name in ("VE", "VP"):
        factory, top, bottom = _schedule_case(name)
        register(
            Binding(
                derivation="D-edm-sampler",
                code=("genmath.families.diffusion.edm_sample",),
                expression=heun,
                where=_two_heun_steps(top, bottom),
                evaluate=_edm_heun(factory),
                domain={
                    x_start: Uniform(-3, 3),
                    q: Uniform(-1, 2),
                    r: Uniform(-2, 2),
                    rho: LogUniform(0.5, 12.0),
                },
                samples=6,
                tolerance=1e-8,
                description=(
                    f"edm_sample on {name}: two Heun steps on the rho-grid (the scaled state), a "
                    "level-dependent affine denoiser, every parameterization"
                ),
            )
        )


_register_heun_bindings()


# --- D-edm-churn ----------------------------------------------------------------------------
s_now, s_hat, s_noise = sp.symbols(r"s \hat{s} S_{noise}", positive=True)
churn, gamma = sp.symbols(r"S_{churn} gamma", nonnegative=True)
_added = (s_hat**2 - s_now**2) * s_noise**2

register(
    Derivation(
        id="D-edm-churn",
        title="EDM's stochastic churn raises the noise level along the forward process",
        statement=(
            r"Before a Heun step from level $s$, EDM's stochastic sampler raises the level to "
            r"$\hat s = s(1 + \gamma)$, $\gamma = \min(S_\mathrm{churn}/N, \sqrt2 - 1)$, by adding "
            r"$\sqrt{\hat s^2 - s^2}\,S_\mathrm{noise}\,z$ to the scaled state (Karras et al. 2022, "
            r"Algorithm 2). A state at level $s$ given the data has variance $s^2$; after the "
            r"addition it is $\hat s^2$ plus $(S_\mathrm{noise}^2 - 1)(\hat s^2 - s^2)$: with "
            r"$S_\mathrm{noise} = 1$ exactly the path's state at level $\hat s$ (a step along the "
            r"forward process), slightly above it for their $S_\mathrm{noise} = 1.007$. The cap "
            r"$\gamma \le \sqrt2 - 1$ keeps the added variance at most the existing one "
            r"($\hat s^2 \le 2s^2$)."
        ),
        start=s_now**2 + _added,
        steps=[
            Step(
                rhs=s_hat**2 + (s_noise**2 - 1) * (s_hat**2 - s_now**2),
                reason=r"Independent noise adds variances.",
            ),
        ],
        symbols=(s_now, s_hat, s_noise, churn, gamma),
        references=("karras2022elucidating",),
        code=("genmath.families.diffusion.edm_sample",),
        tests=("tests/families/test_diffusion.py",),
    )
)


def _edm_churn(path_name):
    """edm_sample, two steps, with the ideal-at-every-level identity denoiser D = x~: the Heun
    steps keep the state, so the output is the start plus the churn noise of step 2 (step 1
    starts at the top of the grid, where s_hat is capped at s). Read at two seeds."""

    def evaluate(points):
        import torch

        from ..families.diffusion import edm_sample

        path = _path(path_name)
        out = []
        for j in range(points[churn].numel()):
            name = PARAMETERIZATIONS[j % len(PARAMETERIZATIONS)]

            def model(x, t, name=name):
                return path.convert(x / path.alpha(t), x, t, "x0", name)

            top = torch.tensor(path.schedule.safe_interval[1], dtype=torch.float64)
            start = path.alpha(top) * torch.linspace(-1, 1, 4, dtype=torch.float64)[None]
            options = dict(steps=2, parameterization=name, rho=float(points[rho][j]),
                           churn=float(points[churn][j]), s_noise=float(points[s_noise][j]))
            states, draws = [], []
            for seed in (2 * j, 2 * j + 1):
                generator = torch.Generator().manual_seed(seed)
                result = edm_sample(model, start, path, generator=generator, **options)
                states.append(result.x / path.alpha(result.grid[-1]))
                replay = torch.Generator().manual_seed(seed)
                torch.randn(start.shape, generator=replay, dtype=start.dtype)  # step 1's draw
                draws.append(torch.randn(start.shape, generator=replay, dtype=start.dtype))
            dz, dx = draws[0] - draws[1], states[0] - states[1]
            out.append(((dx * dz).sum() / (dz * dz).sum()) ** 2)
        return torch.stack(out)

    return evaluate


def _register_churn_bindings():
    for name in ("VE", "VP"):
        factory, top, bottom = _schedule_case(name)
        middle = _middle(top, bottom)
        raised = sp.Min(middle * (1 + sp.Min(churn / 2, sp.sqrt(2) - 1)), top)
        register(
            Binding(
                derivation="D-edm-churn",
                code=("genmath.families.diffusion.edm_sample",),
                expression=_added,
                where={s_now: middle, s_hat: raised},
                evaluate=_edm_churn(factory),
                domain={
                    churn: Uniform(0, 4, ends=True),
                    s_noise: Uniform(0.5, 1.5),
                    rho: LogUniform(0.5, 12.0),
                },
                samples=6,
                tolerance=1e-8,
                description=(
                    f"edm_sample on {name} with churn: the variance of the noise added before the "
                    "second Heun step, (s_hat^2 - s^2) S_noise^2"
                ),
            )
        )


_register_churn_bindings()

