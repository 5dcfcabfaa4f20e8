r"""The SNR-focused time grid of `snr_focused_grid`: uniform in $\arctan((\lambda - c)/w)$.

Its times are mapped from log-SNRs through the schedule's inverse log-SNR
(D-schedule-log-snr-inverse), as the other grids are (D-time-grids); shown on CondOT, whose
inverse has a closed form, with the ends of its safe interval (D-schedule-safe-interval).
"""

import sympy as sp

from ..core.schedules import CondOT
from ._engine import NUMERIC, Binding, Derivation, Integers, LogUniform, Step, Uniform
from ._registry import register

t = sp.Symbol("t", nonnegative=True)
lam = sp.Symbol("lambda", real=True)
i = sp.Symbol("i", integer=True, nonnegative=True)
N = sp.Symbol("N", integer=True, positive=True)
m = sp.Symbol("m", positive=True)  # min_scale: CondOT's safe interval is (m, 1 - m)
c = sp.Symbol("c", real=True)  # the centre of the focus (a log-SNR)
w = sp.Symbol("w", positive=True)  # its width, in nats of log-SNR
lam_hi, lam_lo = sp.symbols("lambda_hi lambda_lo", real=True)  # log-SNRs at t_hi, t_lo
theta = sp.Symbol("theta", real=True)  # the angle arctan((lambda - c)/w) of a grid point

_alpha, _sigma, _inverse = CondOT.definition(t, lam)
_log_snr = 2 * sp.log(_alpha) - 2 * sp.log(_sigma)

_angle_hi, _angle_lo = sp.atan((lam_hi - c) / w), sp.atan((lam_lo - c) / w)
ANGLE = _angle_hi + i / N * (_angle_lo - _angle_hi)  # equally spaced in the angle
FOCUSED = _inverse.subs(lam, c + w * sp.tan(theta))  # the time at angle theta
DENSITY = 1 / (1 + ((lam - c) / w) ** 2)


def _log_snr_of_inverse(v):
    """Combine each logarithm's argument into one fraction and expand logarithms and powers:
    CondOT's log-SNR of its inverse at a level is that level (the engine checks numerically
    that this keeps the value where the symbols live)."""
    v = v.replace(sp.log, lambda a: sp.log(sp.cancel(sp.together(a))))
    return sp.expand(
        sp.powsimp(sp.expand_log(sp.powdenest(sp.cancel(v), force=True), force=True), force=True)
    )


register(
    Derivation(
        id="D-snr-focused-grid",
        title="The SNR-focused grid: equally spaced in arctan((lambda - c)/w)",
        statement=(
            r"With $N$ steps from $t_{hi}$ (noise) to $t_{lo}$ and log-SNRs $\lambda_{hi} < "
            r"\lambda_{lo}$ there, `snr_focused_grid` takes the times "
            r"$t_i = \lambda^{-1}\big(c + w\tan\theta_i\big)$, "
            r"$\theta_i = \theta_{hi} + \frac iN(\theta_{lo} - \theta_{hi})$, "
            r"$\theta = \arctan((\lambda - c)/w)$. Their log-SNRs are equally spaced in "
            r"$\theta$, so the steps have density $\propto d\theta/d\lambda = "
            r"\frac{1}{w}\big(1 + ((\lambda - c)/w)^2\big)^{-1}$ in $\lambda$: densest at the "
            r"centre $c$, with $w$ setting the reach. The ends are the safe interval's: "
            r"$\theta_0 = \theta_{hi}$ and $\theta_N = \theta_{lo}$ give $\lambda_{hi}$ and "
            r"$\lambda_{lo}$. Shown for CondOT with `min_scale` $m$ "
            r"($\lambda^{-1}(\lambda) = 1/(1 + e^{\lambda/2})$)."
        ),
        start=sp.ImmutableMatrix(
            [sp.atan((sp.Subs(_log_snr, t, FOCUSED) - c) / w), sp.diff(sp.atan((lam - c) / w), lam)]
        ),
        steps=[
            Step(
                rhs=sp.ImmutableMatrix([sp.atan(sp.tan(theta)), DENSITY / w]),
                reason=(
                    r"Through CondOT's closed-form inverse the log-SNR of the time at angle "
                    r"$\theta$ is the level $c + w\tan\theta$ it was mapped from; the "
                    r"derivative of the arctan is $\frac1w(1 + ((\lambda - c)/w)^2)^{-1}$."
                ),
                method=_log_snr_of_inverse,
            ),
            Step(
                rhs=sp.ImmutableMatrix([theta, DENSITY / w]),
                reason=(
                    r"An angle $\theta_i$ lies between $\theta_{hi}$ and $\theta_{lo}$, both "
                    r"arctangents, so inside $(-\pi/2, \pi/2)$, where $\arctan(\tan\theta) = "
                    r"\theta$: the grid's angles are the equally spaced $\theta_i$ it was built from."
                ),
                tag=NUMERIC,
            ),
        ],
        symbols=(theta, c, w, lam),
        references=("lu2022dpm",),
        code=("genmath.core.grids.snr_focused_grid",),
        tests=("tests/core/test_samplers.py",),
        domain={theta: (-1.5, 1.5), c: (-6.0, 6.0), w: LogUniform(0.1, 100.0), lam: (-20.0, 20.0)},
    )
)

# CondOT(min_scale=m): the i-th angle, between the log-SNRs at the ends of its safe interval
# (m, 1 - m)
_condot_angle = {
    theta: ANGLE.subs(
        {lam_hi: _log_snr.subs(t, 1 - m), lam_lo: _log_snr.subs(t, m)}, simultaneous=True
    )
}


def _focused_by_code(points):
    import torch

    from ..core import grids
    from ..core.schedules import CondOT as _CondOT

    values = []
    for j in range(points[i].shape[0]):
        schedule = _CondOT(min_scale=float(points[m][j]))
        grid = grids.snr_focused_grid(
            int(points[N][j]),
            schedule,
            center=float(points[c][j]),
            width=float(points[w][j]),
            dtype=torch.float64,
        )
        values.append(grid[int(points[i][j])])
    return torch.stack(values)


register(
    Binding(
        derivation="D-snr-focused-grid",
        code=("genmath.core.grids.snr_focused_grid",),
        expression=FOCUSED,
        where=_condot_angle,
        evaluate=_focused_by_code,
        domain={
            i: Integers(0, 8),
            N: Integers(8, 16),
            m: LogUniform(1e-6, 0.2),
            c: Uniform(-8.0, 8.0),
            w: LogUniform(0.1, 100.0),
        },
        samples=16,
        description=(
            "the i-th time of snr_focused_grid on CondOT(min_scale=m), from i = 0 (the noisy "
            "end), for centres inside and outside the safe log-SNRs and widths 0.1 to 100"
        ),
    )
)
