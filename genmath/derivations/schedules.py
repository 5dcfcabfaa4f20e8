"""The noise schedules of Gaussian paths: VP from its SDE, the cosine schedule's variance,
the closed-form inverses of the log-SNR, and the forward SDE that has a path's marginals.

The expressions verified here are the very ones `genmath.core.schedules` compiles to torch
(each built-in schedule's ``definition``); the checks at the end tie the compiled functions
to the sympy definitions at 30-digit precision.
"""

import sympy as sp
import torch

from ..core.schedules import VE, VP, CondOT, CosineVP
from ._engine import NUMERIC, Binding, Check, Derivation, LogUniform, Step, Uniform
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
_vp_f = sp.Derivative(_vp_alpha, t) / _vp_alpha
_vp_g2 = sp.Derivative(_vp_sigma**2, t) - 2 * _vp_f * _vp_sigma**2

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
            r"$v(0) = 0$. Conversely the forward SDE of this path (D-forward-sde) has "
            r"$f = \dot\alpha/\alpha = -\beta/2$ and $g^2 = \frac{d\sigma^2}{dt} - 2f\sigma^2 = \beta$. "
            "These are `genmath.schedules.VP`'s expressions."
        ),
        start=sp.ImmutableMatrix(
            [
                sp.exp(-sp.Integral(b_min + u * (b_max - b_min), (u, 0, t)) / 2),
                sp.Derivative(_vp_alpha, t) + _beta * _vp_alpha / 2,
                sp.Derivative(_vp_sigma**2, t) + _beta * _vp_sigma**2 - _beta,
                sp.Subs(_vp_sigma, t, 0),
                _vp_f,
                _vp_g2,
            ]
        ),
        steps=[
            Step(
                rhs=sp.ImmutableMatrix([_vp_alpha, 0, 0, 0, -_beta / 2, _beta]),
                reason=(
                    r"Integrate the linear $\beta$: $\int_0^t \beta = \beta_{min}t + "
                    r"\tfrac12(\beta_{max}-\beta_{min})t^2$. Then $\alpha_t$ solves the mean equation "
                    r"$\dot m = -\tfrac12\beta m$ (with $\alpha_0 = 1$), $\sigma_t^2$ the variance "
                    r"equation $\dot v = -\beta v + \beta$ and starts from $v(0) = 0$, so it is its "
                    r"solution; last, the path's drift and squared diffusion are $-\beta/2$ and $\beta$."
                ),
            ),
        ],
        symbols=(t, b_min, b_max),
        references=("song2021score", "ho2020denoising"),
        code=("genmath.schedules.VP", "genmath.core.schedules.VP.definition"),
        tests=("tests/core/test_schedules.py",),
    )
)


def _vp_by_code(points):
    from ..core.schedules import VP as _VP

    schedule = _VP()
    tt = points[t]
    return (
        schedule.alpha(tt),
        schedule.sigma(tt),
        schedule.drift_coefficient(tt),
        schedule.diffusion_squared(tt),
    )


register(
    Binding(
        derivation="D-schedule-vp",
        code=("genmath.core.schedules.VP.definition", "genmath.schedules.Schedule.diffusion_squared"),
        expression=(_vp_alpha, _vp_sigma, -_beta / 2, _beta),
        where={b_min: sp.Rational(1, 10), b_max: sp.Integer(20)},
        evaluate=_vp_by_code,
        domain={t: Uniform(0, 1, ends=True)},
        samples=16,
        generated=True,
        description="VP()'s compiled alpha, sigma, f and g^2 against the derived expressions",
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
            r"`genmath.schedules.CosineVP`'s expressions (for $s = 0$ the code writes "
            r"$\sigma_t = \sin\phi_t$, the same value on $[0, 1]$)."
        ),
        start=_cos_alpha**2 + _cos_sigma**2,
        steps=[
            Step(
                rhs=sp.Integer(1),
                reason=r"$\sin(a-b)\sin(a+b) = \cos^2 b - \cos^2 a$ (product-to-sum).",
                method=sp.fu,
            ),
        ],
        symbols=(t, s),
        references=("nichol2021improved",),
        code=("genmath.schedules.CosineVP", "genmath.core.schedules.CosineVP.definition"),
        tests=("tests/core/test_schedules.py",),
        domain={s: (0.001, 0.2), t: (0.0, 1.0)},
    )
)


def _cosine_by_code(offset):
    def evaluate(points):
        from ..core.schedules import CosineVP as _CosineVP

        schedule = _CosineVP(offset)
        return schedule.alpha(points[t]), schedule.sigma(points[t])

    return evaluate


for _offset in (0.008, 0.0):
    register(
        Binding(
            derivation="D-schedule-cosine",
            code=("genmath.core.schedules.CosineVP.definition",),
            expression=(_cos_alpha, _cos_sigma),
            where={s: sp.nsimplify(_offset)},
            evaluate=_cosine_by_code(_offset),
            domain={t: Uniform(0, 1, ends=True)},
            samples=16,
            generated=True,
            description=f"CosineVP({_offset})'s compiled alpha and sigma",
        )
    )

# ------------------------------------------------------------------------ log-SNR inverses
_ot_alpha, _ot_sigma, _ot_inverse = CondOT.definition(t, lam)
_ve_alpha, _ve_sigma, _ve_inverse = VE.definition(t, lam, s_min, s_max)


def _composed(alpha, sigma, inverse):
    # Subs keeps t(lambda) visible as the point it is evaluated at (what the bindings bind)
    return sp.Subs(_log_snr(alpha, sigma), t, inverse)


def _ratio_at_inverse(alpha, sigma, inverse):
    return sp.Subs(alpha**2 / sigma**2, t, inverse)


_inverse_claims = (
    _composed(_ot_alpha, _ot_sigma, _ot_inverse),
    _composed(_ve_alpha, _ve_sigma, _ve_inverse),
    _ratio_at_inverse(_vp_alpha, _vp_sigma, _vp_inverse),
    _ratio_at_inverse(_cos_alpha, _cos_sigma, _cos_inverse),
)

register(
    Derivation(
        id="D-schedule-log-snr-inverse",
        title="Closed-form inverses of the log-SNR of the built-in schedules",
        statement=(
            r"For each built-in schedule the log-SNR $\lambda_t = \log(\alpha_t^2/\sigma_t^2)$ is "
            r"strictly decreasing, so $\lambda \mapsto t$ is a bijection; substituting the stated "
            r"$t(\lambda)$ back gives $\lambda$. CondOT: $t = 1/(1 + e^{\lambda/2})$. VE: "
            r"$t = (-\lambda/2 - \log\sigma_{min})/\log(\sigma_{max}/\sigma_{min})$. VP: "
            r"$t = 2L/(\beta_{min} + \sqrt{\beta_{min}^2 + 2(\beta_{max}-\beta_{min})L})$ with "
            r"$L = \log(1 + e^{-\lambda})$ (the stable root of $\int_0^t\beta = L$). Cosine: "
            r"$t = (1+s)\frac{2}{\pi}\arccos(\cos\phi_0/\sqrt{1 + e^{-\lambda}}) - s$. A schedule "
            "without a closed form is inverted by bisection on the monotone log-SNR."
        ),
        start=sp.ImmutableMatrix(_inverse_claims),
        steps=[
            Step(
                rhs=sp.ImmutableMatrix([lam, lam, *_inverse_claims[2:]]),
                reason=(
                    r"CondOT: $(1-t)/t = e^{\lambda/2}$ at $t = 1/(1+e^{\lambda/2})$. VE: "
                    r"$\lambda_t = -2\log\sigma_t$ is affine in $t$."
                ),
                method=lambda v: sp.expand_log(sp.simplify(v), force=True),
            ),
            Step(
                rhs=sp.ImmutableMatrix([lam, lam, sp.exp(lam), sp.exp(lam)]),
                reason=(
                    r"VP: $\alpha^2/\sigma^2 = 1/(e^{B(t)} - 1)$ and the root solves "
                    r"$B(t) = \log(1 + e^{-\lambda})$; cosine: $\alpha^2$ is the sigmoid of $\lambda$ "
                    r"and $\sigma^2 = 1 - \alpha^2$: both ratios are $e^{\lambda}$ (checked at "
                    "sampled parameters: the nested roots resist simplification)."
                ),
                tag=NUMERIC,
                tolerance=1e-9,
            ),
        ],
        symbols=(lam, b_min, b_max, s, s_min, s_max),
        references=("kingma2021variational", "song2021score", "nichol2021improved"),
        code=(
            "genmath.schedules.Schedule.inverse_log_snr",
            "genmath.core.schedules.CondOT.definition",
            "genmath.core.schedules.VP.definition",
            "genmath.core.schedules.CosineVP.definition",
            "genmath.core.schedules.VE.definition",
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


def _inverse_by_code(build):
    def evaluate(points):
        return build().inverse_log_snr(points[lam])

    return evaluate


def _bisected_condot():
    from ..core.schedules import Schedule

    # CondOT given only by its expressions: the inverse is the bisection
    return Schedule(_ot_alpha, _ot_sigma, t, name="CondOT by bisection")


def _register_inverse_bindings():
    from ..core import schedules as sch

    cases = (
        ("CondOT()", sch.CondOT, _ot_inverse, {}, (-30.0, 30.0), False),
        ("VP()", sch.VP, _vp_inverse, {b_min: sp.Rational(1, 10), b_max: 20}, None, True),
        ("CosineVP()", sch.CosineVP, _cos_inverse, {s: sp.Rational(8, 1000)}, None, True),
        ("CosineVP(0.0)", lambda: sch.CosineVP(0.0), _cos_inverse, {s: 0}, None, True),
        ("VE()", sch.VE, _ve_inverse, {s_min: sp.Rational(1, 100), s_max: 50}, None, True),
        ("CondOT by bisection", _bisected_condot, _ot_inverse, {}, (-30.0, 30.0), False),
    )
    for label, build, inverse, where, span, ends in cases:
        if span is None:  # the schedule's log-SNR range, an infinite end cut at +-30
            low, high = build()._log_snr_range
            span = (max(low, -30.0), min(high, 30.0))
        register(
            Binding(
                derivation="D-schedule-log-snr-inverse",
                code=("genmath.schedules.Schedule.inverse_log_snr",),
                expression=inverse,
                where=where,
                evaluate=_inverse_by_code(build),
                domain={lam: Uniform(*span, ends=ends)},
                samples=16,
                description=f"{label}.inverse_log_snr over its log-SNR range",
            )
        )


_register_inverse_bindings()

# ------------------------------------------------------------------------ the safe interval
m = sp.Symbol("m", positive=True)  # min_scale


def _vp_time_of_level(level):
    """The VP time with integrated beta B(t) = level (the stable root)."""
    return 2 * level / (b_min + sp.sqrt(b_min**2 + 2 * (b_max - b_min) * level))


_vp_low = _vp_time_of_level(-sp.log(1 - m**2))  # sigma_t = m
_vp_high = _vp_time_of_level(-2 * sp.log(m))  # alpha_t = m
_phi0 = sp.pi / 2 * s / (1 + s)
_cos_low = (1 + s) * 2 / sp.pi * sp.acos(sp.cos(_phi0) * sp.sqrt(1 - m**2)) - s
_cos_high = (1 + s) * 2 / sp.pi * sp.acos(m * sp.cos(_phi0)) - s
_ve_low = sp.log(m / s_min) / sp.log(s_max / s_min)
_ends = (m, 1 - m, _vp_low, _vp_high, _cos_low, _cos_high, _ve_low)

register(
    Derivation(
        id="D-schedule-safe-interval",
        title="The safe interval of the built-in schedules: where sigma and alpha reach min_scale",
        statement=(
            r"genmath's boundary rule (`Schedule.safe_interval`): $t_{lo}$ is where $\sigma_t$ "
            r"rises to `min_scale` $= m$ (0 if $\sigma_0 \ge m$) and $t_{hi}$ where $\alpha_t$ "
            r"falls to $m$ (1 if $\alpha_1 \ge m$). The code finds them by bisection; in closed "
            r"form: CondOT $(m, 1 - m)$; VP $t_{lo}$ with $B(t_{lo}) = -\log(1 - m^2)$ and, when "
            r"$\alpha_1 < m$, $t_{hi}$ with $B(t_{hi}) = -2\log m$; cosine "
            r"$\cos\phi_{t_{lo}} = \cos\phi_0\sqrt{1 - m^2}$ and $\cos\phi_{t_{hi}} = m\cos\phi_0$; "
            r"VE $t_{lo} = \log(m/\sigma_{min})/\log(\sigma_{max}/\sigma_{min})$ when "
            r"$\sigma_{min} < m$ (and $t_{hi} = 1$)."
        ),
        start=sp.ImmutableMatrix(
            [
                sp.Subs(scale, t, end)
                for scale, end in zip(
                    (_ot_sigma, _ot_alpha, _vp_sigma**2, _vp_alpha, _cos_sigma**2, _cos_alpha, _ve_sigma),
                    _ends,
                    strict=True,
                )
            ]
        ),
        steps=[
            Step(
                rhs=sp.ImmutableMatrix([m, m, m**2, m, m**2, m, m]),
                reason=(
                    r"Each closed-form end puts the schedule's scale at $m$: VP's root solves "
                    r"$\beta_{min}t + \tfrac12(\beta_{max} - \beta_{min})t^2 = L$, the cosine's "
                    r"$\sigma^2 = 1 - \alpha^2$ and $\alpha = \cos\phi_t/\cos\phi_0$, VE's "
                    r"$\sigma_t = \sigma_{min}(\sigma_{max}/\sigma_{min})^t$ (checked at sampled "
                    "parameters: the roots resist simplification)."
                ),
                tag=NUMERIC,
                tolerance=1e-14,
            ),
        ],
        symbols=(m, b_min, b_max, s, s_min, s_max),
        references=("song2021score", "nichol2021improved", "karras2022elucidating"),
        code=("genmath.core.schedules.Schedule.safe_interval",),
        tests=("tests/core/test_schedules.py",),
        domain={m: LogUniform(1e-6, 0.3), b_min: (0.05, 1.0), b_max: (5.0, 25.0), s: (0.001, 0.2),
                s_min: (0.001, 0.01), s_max: (1.0, 80.0)},
    )
)


def _safe_interval_by_code(build, *, which):
    """``which``: for each bound expression, the end it is (0: t_lo, 1: t_hi; -1: 1 - t_lo,
    CondOT's t_lo = m being compared as 1 - m, an expression the derivation writes)."""

    def evaluate(points):
        import torch

        ends = [build(float(v)).safe_interval for v in points[m]]
        return tuple(
            torch.tensor([1 - e[0] if i == -1 else e[i] for e in ends], dtype=torch.float64)
            for i in which
        )

    return evaluate


def _register_safe_interval_bindings():
    from ..core import schedules as sch

    vp = {b_min: sp.Rational(1, 10), b_max: 20}
    cases = (
        ("CondOT", lambda v: sch.CondOT(min_scale=v), (1 - m, 1 - m), {}, LogUniform(1e-8, 0.45), (-1, 1)),
        # alpha_1 = exp(-B(1)/2) = 0.00657: below that min_scale t_hi = 1, above it a root
        ("VP(), t_hi = 1", lambda v: sch.VP(min_scale=v), (_vp_low,), vp, LogUniform(1e-8, 6e-3), (0,)),
        ("VP(), t_hi < 1", lambda v: sch.VP(min_scale=v), (_vp_low, _vp_high), vp, Uniform(7e-3, 0.5), (0, 1)),
        ("CosineVP()", lambda v: sch.CosineVP(min_scale=v), (_cos_low, _cos_high),
         {s: sp.Rational(8, 1000)}, LogUniform(1e-8, 0.5), (0, 1)),
        ("VE(), sigma_min < m", lambda v: sch.VE(min_scale=v), (_ve_low,),
         {s_min: sp.Rational(1, 100), s_max: 50}, LogUniform(0.0101, 0.9), (0,)),
    )
    for label, build, expressions, where, spec, which in cases:
        register(
            Binding(
                derivation="D-schedule-safe-interval",
                code=("genmath.core.schedules.Schedule.safe_interval.func",),
                expression=expressions,
                where=where,
                evaluate=_safe_interval_by_code(build, which=which),
                domain={m: spec},
                samples=12,
                description=f"{label}: safe_interval's bisection against the closed-form ends",
            )
        )


_register_safe_interval_bindings()

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
