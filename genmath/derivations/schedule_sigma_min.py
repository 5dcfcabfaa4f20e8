"""Lipman et al.'s optimal-transport path with sigma_min as a genmath schedule,
``CondOT(sigma_min=...)``: the path in genmath's time and the closed-form inverse of its
log-SNR, both bound to the compiled schedule."""

import sympy as sp

from ..core.schedules import CondOT
from ._engine import SYMBOLIC, Binding, Derivation, Step, Uniform
from ._registry import register

t = sp.Symbol("t", nonnegative=True)
t_paper = sp.Symbol("t_L", nonnegative=True)
lam = sp.Symbol("lambda", real=True)
s_min = sp.Symbol("sigma_min", positive=True)

_alpha, _sigma, _inverse = CondOT.definition(t, lam, s_min)
# Lipman et al. (2023, sec. 4.1, example II): mu_t(x_1) = t x_1, sigma_t = 1 - (1 - sigma_min) t,
# data x_1 at t = 1; genmath's time is t = 1 - t_L
_lipman_mean, _lipman_std = t_paper, 1 - (1 - s_min) * t_paper
_log_snr = 2 * sp.log(_alpha) - 2 * sp.log(_sigma)


def _expand_log_ratio(expr):
    return sp.simplify(sp.expand_log(expr, force=True))


register(
    Derivation(
        id="D-schedule-condot-sigma-min",
        title="Lipman's OT path with sigma_min is CondOT(sigma_min): alpha = 1 - t, sigma = sigma_min + (1 - sigma_min) t",
        statement=(
            r"Lipman et al.'s conditional OT path $x = \mu_{t_L} + \sigma_{t_L}\varepsilon$ with "
            r"$\mu_{t_L} = t_L x_1$ and $\sigma_{t_L} = 1 - (1 - \sigma_{min}) t_L$ (data $x_1$ at "
            r"$t_L = 1$) is, in genmath's time $t = 1 - t_L$, the Gaussian path with "
            r"$\alpha_t = 1 - t$ and $\sigma_t = \sigma_{min} + (1 - \sigma_{min}) t$; its log-SNR "
            r"$\lambda_t = 2\log\frac{1-t}{\sigma_t}$ is inverted by "
            r"$t = \frac{1 - \sigma_{min} r}{1 + (1 - \sigma_{min}) r}$, $r = e^{\lambda/2}$. These "
            "are `genmath.schedules.CondOT(sigma_min=...)`'s expressions; $\\sigma_{min} = 0$ is "
            "`CondOT()`."
        ),
        start=_lipman_std.subs(t_paper, 1 - t),
        steps=[
            Step(
                rhs=_sigma,
                reason=r"Substitute $t_L = 1 - t$: $1 - (1 - \sigma_{min})(1 - t) = \sigma_{min} + (1 - \sigma_{min})t$.",
                tag=SYMBOLIC,
            ),
            Step(
                lhs=_lipman_mean.subs(t_paper, 1 - t),
                rhs=_alpha,
                reason=r"The data coefficient $t_L$ is $1 - t$.",
                tag=SYMBOLIC,
            ),
            Step(
                lhs=_log_snr.subs(t, _inverse),
                rhs=lam,
                reason=(
                    r"At $t(\lambda)$: $1 - t = r/(1 + (1 - \sigma_{min})r)$ and "
                    r"$\sigma_t = 1/(1 + (1 - \sigma_{min})r)$, so $(1-t)/\sigma_t = r = e^{\lambda/2}$."
                ),
                tag=SYMBOLIC,
                method=_expand_log_ratio,
            ),
        ],
        symbols=(t, lam, s_min),
        references=("lipman2023flow",),
        code=("genmath.schedules.CondOT",),
        tests=("tests/core/test_schedules.py",),
        domain={t: (0.0, 1.0), s_min: (1e-4, 0.5), lam: (-10.0, 2.0)},
    )
)


def _by_code(points):
    import torch

    rows = []
    for sigma_min, tv, lv in zip(points[s_min], points[t], points[lam], strict=True):
        schedule = CondOT(sigma_min=float(sigma_min))  # one schedule per sampled sigma_min
        # the code's log-SNR at the code's inverse: lambda_t(t(lambda)), the chain's last lhs
        round_trip = schedule.log_snr(schedule.inverse_log_snr(lv))
        rows.append((schedule.alpha(tv), schedule.sigma(tv), round_trip))
    return tuple(torch.stack(column) for column in zip(*rows, strict=True))


register(
    Binding(
        derivation="D-schedule-condot-sigma-min",
        code=(
            "genmath.schedules.CondOT.alpha",
            "genmath.schedules.CondOT.sigma",
            "genmath.schedules.CondOT.inverse_log_snr",
            "genmath.schedules.CondOT.log_snr",
        ),
        expression=(_alpha, _sigma, _log_snr.subs(t, _inverse)),
        evaluate=_by_code,
        # lambda up to just below lambda_0 = 2 log(1 / sigma_min) >= 2 log 2, the top of its range
        domain={
            t: Uniform(0.0, 1.0, ends=True),
            lam: Uniform(-10.0, 1.3),
            s_min: Uniform(1e-4, 0.5),
        },
        samples=3,
        generated=True,
        description=(
            "alpha and sigma of CondOT(sigma_min) (ends included) and its log-SNR at its own "
            "inverse, at sampled sigma_min (each sample builds its schedule)"
        ),
    )
)
