"""DDPM's discrete schedule: the betas, their cumulative products and the times they take on
a Gaussian path, bound to `DiscreteSchedule` (`from_betas`, `from_path`, the cosine
betas). The bound and sampling of DDPM are in ``families_diffusion.py``.
"""


import sympy as sp

from ._engine import (
    Binding,
    Derivation,
    Integers,
    LogUniform,
    Step,
    Uniform,
)
from ._registry import register
from .families_diffusion import _cosine_path

# --- D-ddpm-discrete-schedule ---------------------------------------------------------------
a_1, a_2 = sp.symbols("alpha_1 alpha_2", positive=True)  # 1 - beta_1, 1 - beta_2
_abar_2 = a_1 * a_2

register(
    Derivation(
        id="D-ddpm-discrete-schedule",
        title="DDPM's forward steps compose to the path's marginal: abar_i = prod (1 - beta_j)",
        statement=(
            r"The forward kernels $q(x_j \mid x_{j-1}) = \mathcal N(\sqrt{\alpha_j}\,x_{j-1}, "
            r"1 - \alpha_j)$, $\alpha_j = 1 - \beta_j$, compose to $q(x_i \mid x_0) = \mathcal "
            r"N(\sqrt{\bar\alpha_i}\,x_0, 1 - \bar\alpha_i)$ with $\bar\alpha_i = \prod_{j \le i}"
            r"\alpha_j$ (shown for two steps; the same holds step by step): a variance-preserving "
            r"Gaussian path observed at times with $\alpha_{t_i}^2 = \bar\alpha_i$, whose "
            r"signal-to-noise ratio is $\bar\alpha_i/(1 - \bar\alpha_i)$ and whose time $t_i$ is "
            r"where the path's log-SNR equals its logarithm. Conversely $\beta_i = 1 - "
            r"\bar\alpha_i/\bar\alpha_{i-1}$ (Ho et al. 2020, sec. 2). Nichol & Dhariwal's cosine "
            r"schedule takes $\bar\alpha_i = \alpha^2_{\cos}(i/T)$ and clips $\beta_i$ at "
            r"$\beta_{max} = 0.999$."
        ),
        start=sp.ImmutableMatrix(
            [
                sp.sqrt(a_2) * sp.sqrt(a_1),
                a_2 * (1 - a_1) + (1 - a_2),
                a_2 * a_1 / (a_2 * (1 - a_1) + (1 - a_2)),
            ]
        ),
        steps=[
            Step(
                rhs=sp.ImmutableMatrix([sp.sqrt(_abar_2), 1 - _abar_2, _abar_2 / (1 - _abar_2)]),
                reason=(
                    r"$x_2 = \sqrt{\alpha_2}(\sqrt{\alpha_1}x_0 + \sqrt{1-\alpha_1}\varepsilon_1) + "
                    r"\sqrt{1-\alpha_2}\,\varepsilon_2$: mean coefficient, variance and "
                    r"signal-to-noise ratio of $x_2 \mid x_0$ in terms of $\bar\alpha_2 = "
                    r"\alpha_1\alpha_2$."
                ),
            ),
        ],
        symbols=(a_1, a_2),
        references=("ho2020denoising", "nichol2021improved"),
        code=(
            "genmath.families.diffusion.DiscreteSchedule.from_betas",
            "genmath.families.diffusion.DiscreteSchedule.from_times",
            "genmath.families.diffusion.DiscreteSchedule.betas",
            "genmath.families.diffusion.DiscreteSchedule.snr",
            "genmath.families.diffusion.cosine_betas",
        ),
        tests=("tests/families/test_diffusion.py",),
        domain={a_1: (0.05, 0.999), a_2: (0.05, 0.999)},
    )
)


def _from_betas(points):
    import torch

    out = []
    for j in range(points[a_1].numel()):
        one, two = points[a_1][j], points[a_2][j]
        schedule_path = _cosine_path()
        from ..families.diffusion import DiscreteSchedule

        schedule = DiscreteSchedule.from_betas(torch.stack([1 - one, 1 - two]), schedule_path)
        at = schedule_path.alpha(schedule.times[2])
        out.append(
            torch.stack(
                [schedule.alphas_cumprod[2], schedule.betas[1], schedule.snr[2], at**2]
            )
        )
    return tuple(torch.stack(out).T)


register(
    Binding(
        derivation="D-ddpm-discrete-schedule",
        code=(
            "genmath.families.diffusion.DiscreteSchedule.from_betas",
            "genmath.families.diffusion.DiscreteSchedule.betas",
            "genmath.families.diffusion.DiscreteSchedule.snr",
        ),
        expression=(_abar_2, 1 - a_2, _abar_2 / (1 - _abar_2), _abar_2),
        evaluate=_from_betas,
        domain={a_1: LogUniform(1e-3, 1 - 1e-6), a_2: LogUniform(1e-3, 1 - 1e-6)},
        samples=16,
        tolerance=1e-8,
        description=(
            "DiscreteSchedule.from_betas: abar_2, beta_2 back, SNR_2, and the path's alpha^2 at "
            "the time it assigns to step 2"
        ),
    )
)

_tau = sp.Symbol("tau", nonnegative=True)
_lam_symbol = sp.Symbol("lambda", real=True)
_t1, _t2 = sp.symbols("t_1 t_2", positive=True)


def _vp_alpha():
    from ..core.schedules import VP

    return VP.definition(_tau, _lam_symbol, sp.Rational(1, 10), 20)[0]


def _from_times(points):
    import torch

    from ..core.path import GaussianPath
    from ..core.schedules import VP
    from ..families.diffusion import DiscreteSchedule

    first, second = points[_t1], points[_t1] + (1 - points[_t1]) * points[_t2]
    times, order = torch.sort(torch.cat([first, second]))
    schedule = DiscreteSchedule.from_times(
        GaussianPath(VP()), torch.cat([times.new_zeros(1), times])
    )
    values = torch.empty_like(times)
    values[order] = schedule.alphas_cumprod[1:]
    return values[first.numel():]


_alpha_vp = _vp_alpha()
register(
    Binding(
        derivation="D-ddpm-discrete-schedule",
        code=("genmath.families.diffusion.DiscreteSchedule.from_times",),
        expression=_abar_2,
        where={
            a_1: _alpha_vp.subs(_tau, _t1) ** 2,
            a_2: _alpha_vp.subs(_tau, _t1 + (1 - _t1) * _t2) ** 2 / _alpha_vp.subs(_tau, _t1) ** 2,
        },
        evaluate=_from_times,
        domain={_t1: Uniform(1e-3, 0.99), _t2: Uniform(0.01, 0.99)},
        samples=16,
        description=(
            "DiscreteSchedule.from_times on VP(): abar at the later of two sampled times"
        ),
    )
)


_i = sp.Symbol("i", integer=True, positive=True)


def _cosine_betas(steps):
    def evaluate(points):
        import torch

        from ..families.diffusion import cosine_betas

        # cosine_betas works in the default dtype: float64 here
        default = torch.get_default_dtype()
        torch.set_default_dtype(torch.float64)
        try:
            return cosine_betas(steps)[points[_i] - 1]
        finally:
            torch.set_default_dtype(default)

    return evaluate


def _cosine_alpha():
    from ..core.schedules import CosineVP

    return CosineVP.definition(_tau, _lam_symbol, sp.Rational(8, 1000))[0]


_alpha_cos = _cosine_alpha()
for _steps in (10, 1000):
    register(
        Binding(
            derivation="D-ddpm-discrete-schedule",
            code=("genmath.families.diffusion.cosine_betas",),
            expression=1 - a_2,
            where={a_2: _alpha_cos.subs(_tau, _i / _steps) ** 2
                   / _alpha_cos.subs(_tau, (_i - 1) / _steps) ** 2},
            evaluate=_cosine_betas(_steps),
            # the last step is clipped at max_beta (its alpha_T is 0); every other is exact
            domain={_i: Integers(1, _steps - 1)},
            samples=16,
            description=f"cosine_betas({_steps}): beta_i = 1 - abar_i / abar_(i-1) of CosineVP()",
        )
    )
