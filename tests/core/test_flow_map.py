"""`genmath.flow_map` and its conversions against the exact Gaussian flow map
(D-gaussian-flow-map), and the identities a flow map satisfies (D-flow-map-identities)."""

from __future__ import annotations

import pytest
import torch

import genmath
from genmath.analytic import Gaussian
from genmath.core.path import GaussianPath
from genmath.schedules import VP, CondOT
from genmath.testing import assert_close

DTYPE = torch.float64


@pytest.fixture
def oracle():
    # a rotated 2-d Gaussian with unequal variances: the map is affine but not diagonal
    law = Gaussian(
        torch.tensor([1.0, -0.5], dtype=DTYPE),
        torch.tensor([[1.5, 0.6], [0.6, 0.5]], dtype=DTYPE),
    )
    return law.marginal(GaussianPath(CondOT()))


def test_flow_map_of_the_exact_velocity_is_the_oracle_with_per_sample_times(oracle):
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(64, 2, generator=gen, dtype=DTYPE)
    s = torch.rand(64, generator=gen, dtype=DTYPE)
    t = torch.rand(64, generator=gen, dtype=DTYPE)  # forwards and backwards in one batch
    s[:4] = t[:4]  # empty intervals return x
    mapped = genmath.flow_map(oracle.velocity, x, s, t, steps=64)
    assert_close(mapped, oracle.flow_map(x, s, t), atol=1e-7, rtol=1e-7)
    assert_close(mapped[:4], x[:4], atol=0.0)
    # scalar times and an adaptive solver
    adaptive = genmath.flow_map(oracle.velocity, x, 0.9, 0.1, method="dopri5", rtol=1e-10, atol=1e-10)
    assert_close(adaptive, oracle.flow_map(x, 0.9, 0.1), atol=1e-7, rtol=1e-7)


def test_flow_map_keeps_any_event_shape():
    # v(x, t) = -x: X(x, s, t) = x exp(-(t - s)) for every entry of a (B, 2, 3) event
    x = torch.randn(5, 2, 3, generator=torch.Generator().manual_seed(1), dtype=DTYPE)
    s = torch.linspace(0.0, 1.0, 5, dtype=DTYPE)
    mapped = genmath.flow_map(lambda y, time: -y, x, s, 0.3, steps=64)
    assert_close(mapped, x * torch.exp(-(0.3 - s)).reshape(-1, 1, 1), atol=1e-9, rtol=1e-9)


def test_identities_hold_for_the_exact_map_and_fail_for_a_perturbed_one(oracle):
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(32, 2, generator=gen, dtype=DTYPE)
    s, u, t = (0.2 + 0.6 * torch.rand(32, generator=gen, dtype=DTYPE) for _ in range(3))

    def perturbed(y, a, b):  # the exact map plus a small drift: not a flow of anything
        return oracle.flow_map(y, a, b) + 0.05 * (b - a)[:, None] ** 2

    h = 1e-5
    for flow, holds in ((oracle.flow_map, True), (perturbed, False)):
        semigroup = flow(flow(x, s, u), u, t) - flow(x, s, t)
        # Lagrangian: d/dt X(x, s, t) = v(X, t); Eulerian: d/ds X + (grad_x X) v(x, s) = 0
        d_t = (flow(x, s, t + h) - flow(x, s, t - h)) / (2 * h)
        lagrangian = d_t - oracle.velocity(flow(x, s, t), t)
        d_s = (flow(x, s + h, t) - flow(x, s - h, t)) / (2 * h)
        v = oracle.velocity(x, s)
        along = (flow(x + h * v, s, t) - flow(x - h * v, s, t)) / (2 * h)
        eulerian = d_s + along
        worst = max(float(e.abs().max()) for e in (semigroup, lagrangian, eulerian))
        if holds:
            assert worst < 1e-7
        else:
            assert worst > 1e-3


def test_conversions_between_map_average_velocity_and_consistency_function(oracle):
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(16, 2, generator=gen, dtype=DTYPE)
    s = torch.rand(16, generator=gen, dtype=DTYPE)
    t = torch.rand(16, generator=gen, dtype=DTYPE)
    s[0] = t[0]
    u = genmath.average_velocity_from_map(oracle.flow_map, oracle.velocity)
    assert_close(u(x, s, s), oracle.velocity(x, s), atol=1e-12)
    assert_close(genmath.map_from_average_velocity(u)(x, s, t), oracle.flow_map(x, s, t), atol=1e-12)
    # MeanFlow's u(z, r, t) is the average velocity of the jump from t back to r
    from genmath.families.meanflow import average_velocity_from_flow_map

    meanflow_u = average_velocity_from_flow_map(oracle.flow_map, oracle.velocity)
    low, high = torch.minimum(s, t), torch.maximum(s, t)
    assert_close(meanflow_u(x, low, high), u(x, high, low), atol=1e-12)
    f = genmath.consistency_function_from_map(oracle.flow_map)
    assert_close(f(x, t), oracle.flow_map(x, t, torch.zeros_like(t)), atol=1e-12)


def test_vp_path_flow_map_matches_the_oracle():
    law = Gaussian(torch.tensor([0.5], dtype=DTYPE), torch.tensor([[0.3]], dtype=DTYPE))
    marginal = law.marginal(GaussianPath(VP()))
    x = torch.linspace(-2, 2, 9, dtype=DTYPE).reshape(-1, 1)
    mapped = genmath.flow_map(marginal.velocity, x, 0.95, 0.05, steps=128)
    assert_close(mapped, marginal.flow_map(x, 0.95, 0.05), atol=1e-7, rtol=1e-7)


def test_bad_input_is_rejected(oracle):
    x = torch.zeros(3, 2, dtype=DTYPE)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        genmath.flow_map(oracle.velocity, x, 0.2, 1.5)
    with pytest.raises(ValueError, match="shape"):
        genmath.flow_map(oracle.velocity, x, torch.zeros(2, dtype=DTYPE), 0.5)
    with pytest.raises(ValueError, match="shape of x"):
        genmath.flow_map(lambda y, time: y[:, :1], x, 0.2, 0.5)
    with pytest.raises(ValueError, match="velocity"):
        genmath.average_velocity_from_map(oracle.flow_map)(x, 0.3, 0.3)
    with pytest.raises(TypeError):
        genmath.flow_map(oracle.velocity, [[0.0, 0.0]], 0.2, 0.5)
