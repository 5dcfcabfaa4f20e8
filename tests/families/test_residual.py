"""Invertible residual blocks: log-det series against slogdet, unbiased Russian roulette
(two-sided), fixed-point inversion to the stated tolerance, gradcheck, a normalised 2-D
density, and the Lipschitz guard."""

import pytest
import torch

from genmath.families.residual import (
    InvertibleResidualBlock,
    ResidualFlow,
    power_series_logdet_bound,
)
from genmath.testing import assert_mean_matches


def _linear_block(generator, lipschitz=0.8, **kwargs):
    """g(x) = W x + b with W non-symmetric, rescaled to spectral norm exactly `lipschitz`."""
    block = InvertibleResidualBlock(3, (), lipschitz=lipschitz, **kwargs)
    with torch.no_grad():
        block.layers[0].weight.copy_(torch.randn(3, 3, generator=generator) * 3)
        block.layers[0].bias.copy_(torch.randn(3, generator=generator))
    return block


def _randomized_block(generator, **kwargs):
    block = InvertibleResidualBlock(3, (16, 16), lipschitz=0.9, **kwargs)
    with torch.no_grad():
        for p in block.parameters():
            p.copy_(torch.randn(p.shape, generator=generator))
    return block


def _autograd_logdet(fn, x):
    jac = torch.stack(
        [torch.autograd.functional.jacobian(lambda v: fn(v[None])[0], xi) for xi in x]
    )
    return torch.linalg.slogdet(jac).logabsdet


def test_series_converges_to_exact_logdet_of_a_contraction(generator):
    block = _linear_block(generator, lipschitz=0.8, trace="exact")
    matrix = block.layers[0].normalized_weight().detach()
    assert abs(float(torch.linalg.matrix_norm(matrix, ord=2)) - 0.8) < 1e-12
    exact = torch.linalg.slogdet(torch.eye(3) + matrix).logabsdet
    assert abs(float(exact)) > 0.1
    x = torch.randn(2, 3, generator=generator)
    errors = []
    for terms in (1, 2, 4, 8, 16, 32, 64):
        block.terms = terms
        with torch.no_grad():
            _, logdet = block(x)
        error = float((logdet - exact).abs().max())
        assert error <= power_series_logdet_bound(0.8, terms, 3) + 1e-12
        errors.append(error)
    assert errors[-1] < 1e-6 and errors[-1] < errors[0] / 1e3


def test_nonlinear_block_logdet_matches_autograd_both_directions(generator):
    block = _randomized_block(generator, logdet="exact")
    assert float(block.lipschitz_bound().detach()) < 0.9 + 1e-12
    x = 0.3 * torch.randn(4, 3, generator=generator)
    y, logdet = block(x)
    expected = _autograd_logdet(lambda v: v + block.residual(v), x)
    assert expected.abs().min() > 1e-2
    torch.testing.assert_close(logdet, expected, atol=1e-10, rtol=0)
    x_back, logdet_inv = block.inverse(y)
    torch.testing.assert_close(x_back, x, atol=1e-9, rtol=0)
    torch.testing.assert_close(logdet_inv, -expected, atol=1e-9, rtol=0)
    # the series with exact traces agrees with slogdet to its truncation bound
    block.logdet_method, block.trace_method, block.terms = "series", "exact", 200
    torch.testing.assert_close(block(x)[1], expected, atol=1e-8, rtol=0)


def test_inversion_reaches_the_stated_tolerance(generator):
    block = _randomized_block(generator, inverse_tol=1e-6, logdet="exact")
    x = 3 * torch.randn(50, 3, generator=generator)
    with torch.no_grad():
        y = x + block.residual(x)
        x_solved, _ = block.inverse(y)
        residual = (x_solved + block.residual(x_solved) - y).abs().max()
    assert float(residual) <= 1e-6
    assert float((x_solved - x).abs().max()) <= 1e-6 / (1 - 0.9)
    assert float((x_solved - x).abs().max()) > 1e-14  # a loose tolerance is honoured, not exceeded


@pytest.mark.parametrize("noise", ["rademacher", "gaussian"])
def test_russian_roulette_is_unbiased(noise, generator):
    block = _linear_block(generator, lipschitz=0.6, logdet="roulette", terms=2, noise=noise)
    block.roulette_continue = 0.5  # variance finite: 0.6^2 < 0.5
    matrix = block.layers[0].normalized_weight().detach()
    exact = torch.linalg.slogdet(torch.eye(3) + matrix).logabsdet
    x = torch.randn(1, 3, generator=generator).expand(20000, 3)
    with torch.no_grad():
        _, estimates = block.forward_with_generator(x, generator)
    assert_mean_matches(estimates, exact, name="roulette log-det")


def test_truncated_series_is_biased_and_the_test_sees_it(generator):
    # one Hutchinson term (tr J) is not log det(I + J): the two-sided test must reject it
    block = _linear_block(generator, lipschitz=0.6, logdet="series", terms=1)
    matrix = block.layers[0].normalized_weight().detach()
    exact = torch.linalg.slogdet(torch.eye(3) + matrix).logabsdet
    x = torch.zeros(20000, 3)
    with torch.no_grad():
        _, estimates = block.forward_with_generator(x, generator)
    assert_mean_matches(estimates, torch.trace(matrix), name="tr J")
    with pytest.raises(AssertionError, match="standard errors"):
        assert_mean_matches(estimates, exact)


def test_block_gradcheck(generator):
    block = _randomized_block(generator, logdet="exact")
    x = torch.randn(2, 3, generator=generator, requires_grad=True)
    assert torch.autograd.gradcheck(lambda v: block(v)[1], (x,))
    assert torch.autograd.gradcheck(lambda v: block(v)[0], (x,))


def test_residual_flow_density_integrates_to_one_in_2d(generator):
    flow = ResidualFlow(2, 2, (16,), lipschitz=0.9, logdet="exact")
    with torch.no_grad():
        for p in flow.parameters():
            p.copy_(torch.randn(p.shape, generator=generator))
    n, half = 400, 10.0
    axis = torch.linspace(-half, half, n)
    grid = torch.stack(torch.meshgrid(axis, axis, indexing="xy"), -1).reshape(-1, 2)
    with torch.no_grad():
        density = flow.log_prob(grid).exp().reshape(n, n)
    mass = torch.trapezoid(torch.trapezoid(density, axis, dim=1), axis)
    assert abs(float(mass) - 1) < 2e-3


def test_lipschitz_not_below_one_raises():
    for bad in (1.0, 1.5, 0.0):
        with pytest.raises(ValueError, match=r"Lip\(g\) < 1: expected lipschitz in \(0, 1\)"):
            InvertibleResidualBlock(2, (8,), lipschitz=bad)
    with pytest.raises(ValueError, match="logdet must be one of"):
        InvertibleResidualBlock(2, logdet="power")
    with pytest.raises(ValueError, match=r"expected x of shape \(\*batch, 2\)"):
        InvertibleResidualBlock(2)(torch.randn(3, 4))
