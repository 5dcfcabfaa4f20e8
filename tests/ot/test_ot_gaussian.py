"""Gaussian OT: the Bures W2 against independent routes (the 1-D quantile formula, the 2x2
closed-form square root, samples + exact discrete OT), and the Monge map's pushforward."""

import math

import pytest
import torch

from genmath import ot
from genmath.families import schrodinger_bridge

F64 = torch.float64


def _spd(d, seed, shift=0.3):
    g = torch.Generator().manual_seed(seed)
    A = torch.randn(d, d, generator=g, dtype=F64)
    return A @ A.T + shift * torch.eye(d, dtype=F64)


def test_one_dimensional_w2_is_the_quantile_formula():
    # W2^2 = int_0^1 (F0^-1(u) - F1^-1(u))^2 du in 1-D, by adaptive quadrature of scipy's quantiles
    from scipy.integrate import quad
    from scipy.stats import norm

    m0, s0, m1, s1 = 0.3, 1.7, -1.1, 0.4
    value, _ = quad(lambda u: (norm.ppf(u, m0, s0) - norm.ppf(u, m1, s1)) ** 2, 0, 1, limit=200, epsabs=1e-13)
    got = ot.gaussian_w2(torch.tensor([m0], dtype=F64), torch.tensor([[s0**2]], dtype=F64),
                         torch.tensor([m1], dtype=F64), torch.tensor([[s1**2]], dtype=F64))
    assert got.item() ** 2 == pytest.approx(value, rel=1e-9)


def _sqrt_2x2(S):
    delta = math.sqrt(S[0, 0] * S[1, 1] - S[0, 1] ** 2)
    return (S + delta * torch.eye(2, dtype=F64)) / math.sqrt(S[0, 0] + S[1, 1] + 2 * delta)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_w2_against_the_closed_form_square_root(seed):
    S0, S1 = _spd(2, seed), _spd(2, seed + 10)
    m0, m1 = torch.randn(2, dtype=F64), torch.randn(2, dtype=F64)
    R = _sqrt_2x2(S0)
    expected = (m0 - m1).square().sum() + S0.trace() + S1.trace() - 2 * _sqrt_2x2(R @ S1 @ R).trace()
    assert ot.gaussian_w2(m0, S0, m1, S1).item() ** 2 == pytest.approx(expected.item(), rel=1e-12)


def test_w2_against_samples_and_exact_discrete_ot():
    # the empirical W2 of n samples has a bias O(n^{-1/2}) in 2-D; with n = 400 and a distance
    # of about 2.3, 0.15 is about 3 times the spread seen over seeds, and far below the changes
    # a wrong formula makes (dropping the cross term changes W2 by more than 1)
    g = torch.Generator().manual_seed(3)
    S0, S1 = _spd(2, 3), _spd(2, 4)
    m0, m1 = torch.zeros(2, dtype=F64), torch.tensor([1.5, -1.0], dtype=F64)
    n = 400
    x = m0 + torch.randn(n, 2, generator=g, dtype=F64) @ torch.linalg.cholesky(S0).T
    y = m1 + torch.randn(n, 2, generator=g, dtype=F64) @ torch.linalg.cholesky(S1).T
    exact = ot.gaussian_w2(m0, S0, m1, S1).item()
    empirical = ot.wasserstein(x, y).item()
    assert abs(empirical - exact) < 0.15


@pytest.mark.parametrize("d, seed", [(2, 5), (4, 6)])
def test_the_monge_map_pushes_one_gaussian_to_the_other_at_the_w2_cost(d, seed):
    S0, S1 = _spd(d, seed), _spd(d, seed + 1)
    m0, m1 = torch.randn(d, dtype=F64), torch.randn(d, dtype=F64)
    T = ot.gaussian_ot_map(m0, S0, m1, S1)
    A = T.matrix
    assert torch.allclose(A, A.T, atol=1e-12) and bool((torch.linalg.eigvalsh(A) > 0).all())
    assert torch.allclose(A @ S0 @ A, S1, atol=1e-10)
    assert torch.allclose(T(m0[None])[0], m1, atol=1e-12)
    # its cost E|T(X) - X|^2 = |m1 - m0|^2 + tr((A - I) S0 (A - I)) is W2^2
    E = A - torch.eye(d, dtype=F64)
    cost = (m1 - m0).square().sum() + (E @ S0 @ E).trace()
    assert cost.item() == pytest.approx(ot.gaussian_w2(m0, S0, m1, S1).item() ** 2, rel=1e-10)


def test_psd_sqrt_squares_back_and_serves_the_schrodinger_bridge():
    S = _spd(5, 7)
    R = ot.psd_sqrt(S)
    assert torch.allclose(R @ R, S, atol=1e-11) and torch.allclose(R, R.T)
    # the bridge's sigma -> 0 cross-covariance is Sigma0 A, A the Monge map (D-gaussian-sb-ot-limit)
    S0, S1 = _spd(3, 8), _spd(3, 9)
    C0 = schrodinger_bridge.schrodinger_bridge_cross_covariance(S0, S1, 0.0)
    A = ot.gaussian_ot_map(torch.zeros(3, dtype=F64), S0, torch.zeros(3, dtype=F64), S1).matrix
    assert torch.allclose(C0, S0 @ A, atol=1e-10)


def test_w2_of_a_gaussian_to_itself_is_zero_and_refuses_a_non_spd_covariance():
    S = _spd(3, 10)
    m = torch.randn(3, dtype=F64)
    # W2 is the root of a round-off-sized square: compare the square
    assert ot.gaussian_w2(m, S, m, S).item() ** 2 == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ValueError, match="S1"):
        ot.gaussian_w2(m, S, m, -S)
