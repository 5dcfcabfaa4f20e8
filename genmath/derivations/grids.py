"""The samplers' time grids: equally spaced in t, in EDM's rho-spaced noise level, and in
log-SNR, mapped to times through the schedule's inverse log-SNR (D-schedule-log-snr-inverse)
and bounded by its safe interval (D-schedule-safe-interval)."""

import sympy as sp

from ..core.schedules import CondOT
from ._engine import Binding, Derivation, Integers, LogUniform, Step, Uniform
from ._registry import register

t = sp.Symbol("t", nonnegative=True)
lam = sp.Symbol("lambda", real=True)
i = sp.Symbol("i", integer=True, nonnegative=True)
N = sp.Symbol("N", integer=True, positive=True)
rho = sp.Symbol("rho", positive=True)
m = sp.Symbol("m", positive=True)  # min_scale: CondOT's safe interval is (m, 1 - m)
start, end = sp.symbols("t_start t_end", nonnegative=True)

s_max, s_min = sp.symbols("s_max s_min", positive=True)  # noise levels at t_hi, t_lo
lam_hi, lam_lo = sp.symbols("lambda_hi lambda_lo", real=True)  # log-SNRs at t_hi, t_lo

_alpha, _sigma, _inverse = CondOT.definition(t, lam)
_log_snr = 2 * sp.log(_alpha) - 2 * sp.log(_sigma)
t_lo, t_hi = m, 1 - m
_level = _sigma / _alpha  # EDM's noise level s = sigma/alpha = exp(-lambda/2)


def _karras_level(index):
    return (s_max ** (1 / rho) + index / N * (s_min ** (1 / rho) - s_max ** (1 / rho))) ** rho


def _log_snr_level(index):
    return lam_hi + index / N * (lam_lo - lam_hi)


def _exponentials_and_logs(v):
    """Combine each logarithm's argument into one fraction, then expand logarithms and powers
    (the engine checks numerically that this keeps the value where the symbols live)."""
    v = v.replace(sp.log, lambda a: sp.log(sp.cancel(sp.together(a))))
    return sp.expand(
        sp.powsimp(sp.expand_log(sp.powdenest(sp.cancel(v), force=True), force=True), force=True)
    )


KARRAS = _inverse.subs(lam, -2 * sp.log(_karras_level(i)))
LOG_SNR = _inverse.subs(lam, _log_snr_level(i))
UNIFORM = start + i / N * (end - start)

register(
    Derivation(
        id="D-time-grids",
        title="Sampler time grids: uniform in t, EDM's rho-grid in noise level, uniform in log-SNR",
        statement=(
            r"With $N$ steps over the safe interval $[t_{lo}, t_{hi}]$, traversed from $t_{hi}$ "
            r"(noise) to $t_{lo}$: `uniform_grid` $t_i = t_{hi} + \frac iN(t_{lo} - t_{hi})$; "
            r"`karras_grid` (Karras et al. 2022, eq. 5) the times whose noise level "
            r"$s = \sigma_t/\alpha_t = e^{-\lambda_t/2}$ is $s_i = \big(s_{max}^{1/\rho} + "
            r"\frac iN(s_{min}^{1/\rho} - s_{max}^{1/\rho})\big)^\rho$, i.e. "
            r"$t_i = \lambda^{-1}(-2\log s_i)$; `log_snr_grid` (Lu et al. 2022) the times of "
            r"equally spaced log-SNR, $t_i = \lambda^{-1}(\lambda_{hi} + \frac iN(\lambda_{lo} - "
            r"\lambda_{hi}))$. Shown for CondOT with `min_scale` $m$: $t_{lo} = m$, "
            r"$t_{hi} = 1 - m$ (D-schedule-safe-interval), so $s_{max} = (1-m)/m = 1/s_{min}$, "
            r"and $\lambda^{-1}(\lambda) = 1/(1 + e^{\lambda/2})$: the grids reach the noise "
            "levels and log-SNRs they are designed to."
        ),
        start=sp.ImmutableMatrix([sp.Subs(_level, t, KARRAS), sp.Subs(_log_snr, t, LOG_SNR), UNIFORM]),
        steps=[
            Step(
                rhs=sp.ImmutableMatrix(
                    [_karras_level(i), _log_snr_level(i), (1 - i / N) * start + i / N * end]
                ),
                reason=(
                    r"Through the closed-form inverse the Karras times have noise levels $s_i$ "
                    r"(equally spaced in $s^{1/\rho}$) and the log-SNR times log-SNRs equally "
                    r"spaced from $\lambda_{hi}$ to $\lambda_{lo}$; the uniform grid is the convex "
                    "combination of its ends."
                ),
                method=_exponentials_and_logs,
            ),
        ],
        symbols=(i, N, rho, s_max, s_min, lam_hi, lam_lo, start, end),
        references=("karras2022elucidating", "lu2022dpm"),
        code=(
            "genmath.core.grids.uniform_grid",
            "genmath.core.grids.karras_grid",
            "genmath.core.grids.log_snr_grid",
        ),
        tests=("tests/core/test_samplers.py",),
        domain={i: Integers(0, 8), N: Integers(8, 16), rho: (1.0, 10.0)},
    )
)

# CondOT(min_scale=m): the ends of its safe interval and their noise levels and log-SNRs
_condot_ends = {
    s_max: _level.subs(t, t_hi), s_min: _level.subs(t, t_lo),
    lam_hi: _log_snr.subs(t, t_hi), lam_lo: _log_snr.subs(t, t_lo),
    start: t_hi, end: t_lo,
}


def _grids_by_code(points):
    import torch

    from ..core import grids
    from ..core.schedules import CondOT as _CondOT

    karras, log_snr, uniform = [], [], []
    for j in range(points[i].shape[0]):
        schedule = _CondOT(min_scale=float(points[m][j]))
        steps, index = int(points[N][j]), int(points[i][j])
        options = {"dtype": torch.float64}
        karras.append(grids.karras_grid(steps, schedule, rho=float(points[rho][j]), **options)[index])
        log_snr.append(grids.log_snr_grid(steps, schedule, **options)[index])
        uniform.append(grids.uniform_grid(steps, schedule, **options)[index])
    return tuple(torch.stack(v) for v in (karras, log_snr, uniform))


def _explicit_uniform_by_code(points):
    import torch

    from ..core import grids

    values = [
        grids.uniform_grid(
            int(points[N][j]), start=float(points[start][j]), end=float(points[end][j]),
            dtype=torch.float64,
        )[int(points[i][j])]
        for j in range(points[i].shape[0])
    ]
    return torch.stack(values)


_indices = {i: Integers(0, 8), N: Integers(8, 16)}

register(
    Binding(
        derivation="D-time-grids",
        code=(
            "genmath.core.grids.uniform_grid",
            "genmath.core.grids.karras_grid",
            "genmath.core.grids.log_snr_grid",
        ),
        expression=(KARRAS, LOG_SNR, UNIFORM),
        where=_condot_ends,
        evaluate=_grids_by_code,
        domain={**_indices, m: LogUniform(1e-6, 0.2), rho: Uniform(1.0, 10.0)},
        samples=16,
        description=(
            "the i-th time of karras_grid, log_snr_grid and uniform_grid on CondOT(min_scale=m), "
            "whose safe interval is (m, 1 - m)"
        ),
    )
)

register(
    Binding(
        derivation="D-time-grids",
        code=("genmath.core.grids.uniform_grid",),
        expression=UNIFORM,
        evaluate=_explicit_uniform_by_code,
        domain={**_indices, start: Uniform(0.0, 0.45, ends=True), end: Uniform(0.55, 1.0)},
        samples=12,
        description="the i-th time of uniform_grid between explicit ends, no schedule (increasing)",
    )
)
