"""The exact flow map as a flow-map model (`genmath.analytic.ExactFlowMap`): closed form for
Gaussian data, the exact mixture velocity integrated for Gaussian mixtures; held to the
Gaussian map's formula (D-flow-map; the closed form is `GaussianMarginal.flow_map`'s,
D-gaussian-flow-map) and to an independent scipy DOP853
integration (C-mixture-flow-map)."""

import sympy as sp

from ._engine import Binding, Check, Uniform
from ._registry import register
from .flow_maps import FLOW, m, q, s, t, x

_CODE = "genmath.analytic.ExactFlowMap.__call__"
_TESTS = ("tests/core/test_flow_map_oracles.py",)
_LAW = {m: sp.Rational(7, 10), q: sp.Rational(13, 10)}


def _marginal(components: int):
    import torch

    from ..analytic import Gaussian, GaussianMixture
    from ..core.path import GaussianPath
    from ..core.schedules import CondOT

    path = GaussianPath(CondOT())
    mean = torch.tensor([[0.7]], dtype=torch.float64)
    cov = torch.tensor([[[1.3**2]]], dtype=torch.float64)
    if components == 0:
        return Gaussian(mean[0], cov[0]).marginal(path)
    # a one-component mixture: the integrated branch, whose exact answer is the Gaussian map
    return GaussianMixture(torch.ones(1, dtype=torch.float64), mean, cov).marginal(path)


def _exact_by_code(points):
    from ..analytic import ExactFlowMap

    start = points[x].reshape(-1, 1)
    closed = ExactFlowMap(_marginal(0))(start, points[s], points[t])
    integrated = ExactFlowMap(_marginal(1))(start, points[s], points[t])
    return closed[:, 0], integrated[:, 0]


register(
    Binding(
        derivation="D-flow-map",
        code=(_CODE, "genmath.core.flow_map.flow_map"),
        expression=(FLOW, FLOW),
        where=_LAW,
        evaluate=_exact_by_code,
        domain={x: Uniform(-3, 3), s: Uniform(0, 1, ends=True), t: Uniform(0, 1, ends=True)},
        samples=16,
        tolerance=1e-8,
        description=(
            "ExactFlowMap of N(0.7, 1.3^2) on CondOT, closed form and as a one-component "
            "mixture (192 RK4 steps of the exact velocity, by flow_map), per-sample s and t"
        ),
    )
)


def mixture_case():
    """A 2-d two-component mixture with unequal, correlated covariances (the tests' too)."""
    import torch

    d = torch.float64
    from ..analytic import GaussianMixture

    return GaussianMixture(
        torch.tensor([0.35, 0.65], dtype=d),
        torch.tensor([[-1.0, 0.5], [1.2, -0.4]], dtype=d),
        torch.stack([0.15 * torch.eye(2, dtype=d),
                     torch.tensor([[0.3, 0.1], [0.1, 0.12]], dtype=d)]),
    )


def _check_mixture_flow_map() -> float:
    import numpy as np
    import torch
    from scipy.integrate import solve_ivp

    from ..analytic import ExactFlowMap
    from ..core.path import GaussianPath
    from ..core.schedules import VP, CondOT

    worst = 0.0
    gen = torch.Generator().manual_seed(11)
    intervals = ((1.0, 0.0), (0.9, 0.2), (0.1, 0.8))
    for schedule in (CondOT(), VP()):
        marginal = mixture_case().marginal(GaussianPath(schedule))
        points = torch.randn(6, 2, generator=gen, dtype=torch.float64) * 1.5
        # the three intervals as one batch of per-sample times: ExactFlowMap integrates each
        # row on its own normalised grid (as for a scalar interval), and scipy integrates the
        # same rows in the normalised time tau, x' = (t - s) v(x, s + tau (t - s)), in one
        # solve rather than three (a third of the velocity calls)
        start = points.repeat(len(intervals), 1)
        s0, t0 = (
            torch.tensor([ends[k] for ends in intervals], dtype=torch.float64)
            .repeat_interleave(points.shape[0])
            for k in (0, 1)
        )

        def field(tau, y, marginal=marginal, s0=s0, t0=t0, shape=start.shape):
            state = torch.tensor(y.reshape(shape))
            rate = (t0 - s0)[:, None] * marginal.velocity(state, s0 + tau * (t0 - s0))
            return rate.numpy().ravel()

        sol = solve_ivp(field, (0.0, 1.0), start.numpy().ravel(), method="DOP853",
                        rtol=1e-12, atol=1e-12)
        got = ExactFlowMap(marginal)(start, s0, t0).numpy()
        worst = max(worst, float(np.max(np.abs(got - sol.y[:, -1].reshape(start.shape)))))
    return worst


register(
    Check(
        id="C-mixture-flow-map",
        title="Mixture oracle: ExactFlowMap (192 RK4 steps) equals scipy DOP853 at rtol 1e-12",
        function=_check_mixture_flow_map,
        tolerance=5e-8,
        code=(_CODE,),
        tests=_TESTS,
        derivation="D-flow-map",
    )
)
