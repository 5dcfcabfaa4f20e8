"""The noise schedules of Gaussian paths: VP from its SDE, the cosine schedule's variance,
the closed-form inverses of the log-SNR, and the forward SDE that has a path's marginals.

The expressions verified here are the very ones `genmath.core.schedules` compiles to torch
(each built-in schedule's ``definition``); the checks at the end tie the compiled functions
to the sympy definitions at 30-digit precision.
"""

import sympy as sp
import torch

from ..core.schedules import VE, VP, CondOT, CosineVP
from ._engine import NUMERIC, Check, Derivation, Step
from ._registry import register

t = sp.Symbol("t", nonnegative=True)
u = sp.Symbol("u", nonnegative=True)
lam = sp.Symbol("lambda", real=True)
b_min, b_max = sp.symbols("beta_min beta_max", positive=True)
s_min, s_max = sp.symbols("sigma_min sigma_max", positive=True)
s = sp.Symbol("s", positive=True)
x0 = sp.Symbol("x_0", real=True)
alpha_f, sigma_f = sp.Function("alpha"), sp.Function("sigma")


def _log_snr(alpha, sigma):
    return sp.log(alpha**2 / sigma**2)


# ------------------------------------------------------------------------ VP from its SDE
_vp_alpha, _vp_sigma, _vp_inverse = VP.definition(t, lam, b_min, b_max)
_beta = b_min + t * (b_max - b_min)

register(
    Derivation(
        id="D-schedule-vp",
        title="The VP schedule from its SDE: alpha = exp(-1/2 int beta), sigma^2 = 1 - alpha^2",
        statement=(
            r"The forward SDE $dx = -\tfrac12\beta(t)\,x\,dt + \sqrt{\beta(t)}\,dW$ with "
            r"$\beta(t) = \beta_{min} + t(\beta_{max} - \beta_{min})$ started at $x_0$ has "
            r"$x_t \mid x_0 \sim \mathcal N(\alpha_t x_0, \sigma_t^2 I)$ with "
            r"$\alpha_t = e^{-\frac12\int_0^t\beta}$ and $\sigma_t^2 = 1 - \alpha_t^2$: the mean "
            r"solves $\dot m = -\tfrac12\beta m$ and the variance $\dot v = -\beta v + \beta$, "
            r"$v(0) = 0$. These are `genmath.schedules.VP`'s expressions."
        ),
        start=sp.exp(-sp.Integral(b_min + u * (b_max - b_min), (u, 0, t)) / 2),
        steps=[
            Step(
                rhs=_vp_alpha,
                reason=r"Integrate the linear $\beta$: $\int_0^t \beta = \beta_{min}t + \tfrac12(\beta_{max}-\beta_{min})t^2$.",
            ),
            Step(
                lhs=sp.diff(_vp_alpha, t) + _beta * _vp_alpha / 2,
                rhs=sp.Integer(0),
                reason=r"$\alpha_t$ solves the mean equation $\dot m = -\tfrac12\beta m$ (with $\alpha_0 = 1$).",
            ),
            Step(
                lhs=sp.diff(_vp_sigma**2, t) + _beta * _vp_sigma**2 - _beta,
                rhs=sp.Integer(0),
                reason=r"$\sigma_t^2$ solves the variance equation $\dot v = -\beta v + \beta$ of the SDE.",
            ),
            Step(
                lhs=_vp_sigma.subs(t, 0),
                rhs=sp.Integer(0),
                reason=r"and starts from $v(0) = 0$, so it is the solution: $\sigma_t^2 = 1 - \alpha_t^2$.",
            ),
        ],
        symbols=(t, b_min, b_max),
        references=("song2021score", "ho2020denoising"),
        code=("genmath.schedules.VP",),
        tests=("tests/core/test_schedules.py",),
    )
)

# ------------------------------------------------------------------------ cosine schedule
_cos_alpha, _cos_sigma, _cos_inverse = CosineVP.definition(t, lam, s)

register(
    Derivation(
        id="D-schedule-cosine",
        title="The cosine schedule is variance preserving, in the form accurate near t = 0",
        statement=(
            r"With $\phi_t = \frac{\pi}{2}\frac{t+s}{1+s}$, Nichol & Dhariwal's "
            r"$\bar\alpha_t = \cos^2\phi_t/\cos^2\phi_0$ gives $\alpha_t = \cos\phi_t/\cos\phi_0$ and "
            r"$\sigma_t^2 = 1 - \alpha_t^2 = \sin(\phi_t - \phi_0)\sin(\phi_t + \phi_0)/\cos^2\phi_0$; "
            r"the product form has no cancellation where $\sigma_t \to 0$. These are "
            "`genmath.schedules.CosineVP`'s expressions."
        ),
        start=_cos_alpha**2 + _cos_sigma**2,
        steps=[
            Step(
                rhs=sp.Integer(1),
                reason=r"$\sin(a-b)\sin(a+b) = \cos^2 b - \cos^2 a$ (product-to-sum).",
                method=lambda e: sp.simplify(sp.expand_trig(e)),
            ),
        ],
        symbols=(t, s),
        references=("nichol2021improved",),
        code=("genmath.schedules.CosineVP",),
        tests=("tests/core/test_schedules.py",),
        domain={s: (0.001, 0.2), t: (0.0, 1.0)},
    )
)

# ------------------------------------------------------------------------ log-SNR inverses
_ot_alpha, _ot_sigma, _ot_inverse = CondOT.definition(t, lam)
_ve_alpha, _ve_sigma, _ve_inverse = VE.definition(t, lam, s_min, s_max)


def _composed(alpha, sigma, inverse):
    return _log_snr(alpha, sigma).subs(t, inverse)


register(
    Derivation(
        id="D-schedule-log-snr-inverse",
        title="Closed-form inverses of the log-SNR of the built-in schedules",
        statement=(
            r"For each built-in schedule the log-SNR $\lambda_t = \log(\alpha_t^2/\sigma_t^2)$ is "
            r"strictly decreasing, so $\lambda \mapsto t$ is a bijection; substituting the stated "
            r"$t(\lambda)$ back gives $\lambda$. CondOT: $t = 1/(1 + e^{\lambda/2})$. VP: "
            r"$t = 2L/(\beta_{min} + \sqrt{\beta_{min}^2 + 2(\beta_{max}-\beta_{min})L})$ with "
            r"$L = \log(1 + e^{-\lambda})$ (the stable root of $\int_0^t\beta = L$). Cosine: "
            r"$t = (1+s)\frac{2}{\pi}\arccos(\cos\phi_0/\sqrt{1 + e^{-\lambda}}) - s$. VE: "
            r"$t = (-\lambda/2 - \log\sigma_{min})/\log(\sigma_{max}/\sigma_{min})$."
        ),
        start=_composed(_ot_alpha, _ot_sigma, _ot_inverse),
        steps=[
            Step(
                rhs=lam,
                reason=r"CondOT: $(1-t)/t = e^{\lambda/2}$ at $t = 1/(1+e^{\lambda/2})$.",
                method=lambda e: sp.expand_log(sp.simplify(e), force=True),
            ),
            Step(
                lhs=_vp_alpha.subs(t, _vp_inverse) ** 2 / _vp_sigma.subs(t, _vp_inverse) ** 2,
                rhs=sp.exp(lam),
                reason=(
                    r"VP: $\alpha^2/\sigma^2 = 1/(e^{B(t)} - 1)$ and the root solves "
                    r"$B(t) = \log(1 + e^{-\lambda})$, so the ratio is $e^{\lambda}$ "
                    r"(checked at sampled parameters: the nested root resists simplification)."
                ),
                tag=NUMERIC,
                tolerance=1e-15,
            ),
            Step(
                lhs=_cos_alpha.subs(t, _cos_inverse) ** 2 / _cos_sigma.subs(t, _cos_inverse) ** 2,
                rhs=sp.exp(lam),
                reason=(
                    r"Cosine: $\alpha^2 = \cos^2\phi_0/(1 + e^{-\lambda}) / \cos^2\phi_0$ is the "
                    r"sigmoid of $\lambda$, and $\sigma^2 = 1 - \alpha^2$, so the ratio is $e^\lambda$."
                ),
                tag=NUMERIC,
                tolerance=1e-15,
            ),
            Step(
                lhs=_composed(_ve_alpha, _ve_sigma, _ve_inverse),
                rhs=lam,
                reason=r"VE: $\lambda_t = -2\log\sigma_t$ is affine in $t$.",
                method=lambda e: sp.simplify(sp.expand_log(e, force=True)),
            ),
        ],
        symbols=(lam, b_min, b_max, s, s_min, s_max),
        references=("kingma2021variational", "song2021score", "nichol2021improved"),
        code=(
            "genmath.schedules.Schedule.inverse_log_snr",
            "genmath.schedules.CondOT",
            "genmath.schedules.VP",
            "genmath.schedules.CosineVP",
            "genmath.schedules.VE",
        ),
        tests=("tests/core/test_schedules.py",),
        domain={
            lam: (-6.0, 6.0),
            b_min: (0.05, 1.0),
            b_max: (5.0, 25.0),
            s: (0.001, 0.2),
        },
    )
)

# ------------------------------------------------------------------------ exact-numeric checks
def _builtins():
    return [CondOT(), VP(0.1, 20.0), CosineVP(0.008), CosineVP(0.0), VE(0.01, 50.0)]


_METHODS = (
    "alpha",
    "sigma",
    "d_alpha",
    "d_sigma",
    "log_snr",
    "d_log_snr",
    "drift_coefficient",
    "diffusion_squared",
)


def _compiled_against_sympy() -> float:
    """Largest relative error of the compiled torch functions against the sympy definitions
    (differentiated again here, evaluated with 30 digits), on interior times."""
    grid = [0.003, 0.02, 0.1, 0.25, 0.5, 0.75, 0.9, 0.98, 0.997]
    worst = 0.0
    for schedule in _builtins():
        sym = schedule.t_symbol
        alpha, sigma = schedule.alpha_expr, schedule.sigma_expr
        reference = {
            "alpha": alpha,
            "sigma": sigma,
            "d_alpha": sp.diff(alpha, sym),
            "d_sigma": sp.diff(sigma, sym),
            "log_snr": sp.log(alpha**2 / sigma**2),
            "d_log_snr": sp.diff(sp.log(alpha**2 / sigma**2), sym),
            "drift_coefficient": sp.diff(alpha, sym) / alpha,
            "diffusion_squared": sp.diff(sigma**2, sym)
            - 2 * sp.diff(alpha, sym) / alpha * sigma**2,
        }
        times = torch.tensor(grid, dtype=torch.float64)
        for name in _METHODS:
            got = getattr(schedule, name)(times)
            for i, tv in enumerate(grid):
                exact = float(sp.N(reference[name].subs(sym, sp.Rational(str(tv))), 30))
                worst = max(worst, abs(float(got[i]) - exact) / (1e-300 + max(1.0, abs(exact))))
    return worst


def _inverse_round_trip() -> float:
    """Largest |t(lambda(t)) - t| of the built-in closed-form inverses over [0.001, 0.999]."""
    times = torch.linspace(0.001, 0.999, 199, dtype=torch.float64)
    worst = 0.0
    for schedule in _builtins():
        back = schedule.inverse_log_snr(schedule.log_snr(times))
        worst = max(worst, float((back - times).abs().max()))
    return worst


register(
    Check(
        id="C-schedules-compiled",
        title="Compiled schedule functions equal their sympy definitions (30-digit reference)",
        function=_compiled_against_sympy,
        tolerance=1e-12,
        code=("genmath.schedules.Schedule",),
        tests=("tests/core/test_schedules.py",),
        derivation="D-forward-sde",
    )
)

register(
    Check(
        id="C-schedules-log-snr-inverse",
        title="Built-in log-SNR inverses round-trip to float64 precision",
        function=_inverse_round_trip,
        tolerance=1e-10,
        code=("genmath.schedules.Schedule.inverse_log_snr",),
        tests=("tests/core/test_schedules.py",),
        derivation="D-schedule-log-snr-inverse",
    )
)
