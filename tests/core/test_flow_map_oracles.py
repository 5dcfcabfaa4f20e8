"""The exact flow map as a flow-map model (`genmath.analytic.ExactFlowMap`) and the identity
residuals of `genmath.core.flow_map` (D-flow-map-identities,
D-flow-map-eulerian-average-velocity): zero at the exact map of Gaussian and mixture data,
measurably non-zero at a perturbed one."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.integrate import solve_ivp

import genmath
from genmath.analytic import ExactFlowMap, Gaussian
from genmath.core.path import GaussianPath
from genmath.derivations.flow_map_oracles import mixture_case
from genmath.schedules import CondOT
from genmath.testing import assert_close

DTYPE = torch.float64


def _gaussian():
    law = Gaussian(torch.tensor([1.0, -0.5], dtype=DTYPE),
                   torch.tensor([[1.5, 0.6], [0.6, 0.5]], dtype=DTYPE))
    return law.marginal(GaussianPath(CondOT()))


def _mixture():
    return mixture_case().marginal(GaussianPath(CondOT()))


def _draw(n, seed):
    gen = torch.Generator().manual_seed(seed)
    x = 1.5 * torch.randn(n, 2, generator=gen, dtype=DTYPE)
    s, u, t = (torch.rand(n, generator=gen, dtype=DTYPE) for _ in range(3))
    return x, s, u, t


def test_mixture_map_agrees_with_an_independent_dop853_integration():
    marginal = _mixture()
    x, s, _, t = _draw(6, 0)
    got = ExactFlowMap(marginal)(x, s, t)
    for i in range(x.shape[0]):
        def field(time, y):
            return marginal.velocity(torch.tensor(y).reshape(1, 2), time).numpy().ravel()

        sol = solve_ivp(field, (float(s[i]), float(t[i])), x[i].numpy(), method="DOP853",
                        rtol=1e-12, atol=1e-12)
        assert np.max(np.abs(got[i].numpy() - sol.y[:, -1])) < 5e-8


def test_gaussian_exact_map_is_the_closed_form_and_conversions_agree():
    marginal = _gaussian()
    exact = ExactFlowMap(marginal)
    x, s, _, t = _draw(16, 1)
    assert_close(exact(x, s, t), marginal.flow_map(x, s, t), atol=0.0)
    assert_close(exact.consistency_function(x, t), marginal.flow_map(x, t, 0.0), atol=1e-14)
    s[0] = t[0]
    u = exact.average_velocity(x, s, t)
    assert_close(u[0], marginal.velocity(x, s)[0], atol=1e-14)
    assert_close(x[1:] + (t - s)[1:, None] * u[1:], marginal.flow_map(x, s, t)[1:], atol=1e-12)


@pytest.mark.parametrize("law", ["gaussian", "mixture"])
def test_identity_residuals_vanish_at_the_exact_map_and_not_at_a_perturbed_one(law):
    marginal = _gaussian() if law == "gaussian" else _mixture()
    # 96 RK4 steps: the exact map's residuals are then about 9e-8 on the mixture (1e-8 at
    # 192), far below the 2e-6 bound, at half the cost of the JVPs through the integration
    exact = ExactFlowMap(marginal, steps=96)
    x, s, u, t = _draw(12, 2)

    def perturbed(y, a, b):  # the exact map plus a smooth drift: no longer a flow
        return exact(y, a, b) + 0.05 * ((b - a) ** 2)[:, None] * torch.tanh(y)

    zero = 1e-9 if law == "gaussian" else 2e-6
    for flow, holds in ((exact, True), (perturbed, False)):
        residuals = (
            genmath.semigroup_residual(flow, x, s, u, t),
            genmath.lagrangian_residual(flow, marginal.velocity, x, s, t),
            genmath.eulerian_residual(flow, marginal.velocity, x, s, t),
        )
        for residual in residuals:
            worst = float(residual.abs().max())
            assert (worst < zero) if holds else (worst > 1e-3), worst


def test_meanflow_identity_is_the_eulerian_equation_in_the_average_velocity():
    marginal = _gaussian()
    exact = ExactFlowMap(marginal)
    x, s, _, t = _draw(16, 3)
    rebuilt = genmath.map_from_average_velocity(exact.average_velocity)
    assert float(genmath.eulerian_residual(rebuilt, marginal.velocity, x, s, t).abs().max()) < 1e-10

    def wrong_u(y, a, b):
        return exact.average_velocity(y, a, b) + 0.1 * (b - a)[:, None]

    wrong = genmath.map_from_average_velocity(wrong_u)
    residual = genmath.eulerian_residual(wrong, marginal.velocity, x, s, t)
    # X = x + (t - s)(u + 0.1 (t - s)): d/ds adds -0.2 (t - s) exactly
    assert_close(residual, (-0.2 * (t - s))[:, None].expand_as(x), atol=1e-10)


def test_bad_input_is_refused_by_name():
    marginal = _gaussian()
    exact = ExactFlowMap(marginal)
    x = torch.zeros(3, 2, dtype=DTYPE)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        genmath.lagrangian_residual(exact, marginal.velocity, x, 0.2, 1.5)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        genmath.semigroup_residual(exact, x, -0.1, 0.5, 0.2)
    with pytest.raises(ValueError, match="flow-map model"):
        genmath.eulerian_residual(lambda y, a: y, marginal.velocity, x, 0.2, 0.5)
    with pytest.raises(ValueError, match="shape of x"):
        genmath.lagrangian_residual(lambda y, a, b: y[:, :1], marginal.velocity, x, 0.2, 0.5)
    with pytest.raises(ValueError, match="shape of x"):
        genmath.semigroup_residual(lambda y, a, b: y.sum(), x, 0.2, 0.3, 0.5)
    with pytest.raises(TypeError, match="marginal"):
        ExactFlowMap(object())
    with pytest.raises(ValueError, match="method"):
        ExactFlowMap(marginal, method="euler")
