"""Energy-based models: Langevin samplers against the closed form of their stationary laws,
contrastive divergence and score matching against maximum likelihood (float64).

Expected values come from closed forms computed here (scipy's discrete Lyapunov solver for
the ULA chain, sample moments for maximum likelihood), never from the code under test.
"""

import math

import pytest
import torch
from scipy import linalg

from genmath.analytic import Gaussian
from genmath.core.score import score_from_log_prob
from genmath.families import ebm
from genmath.families.gan import MLP
from genmath.testing import assert_close, assert_mean_matches, assert_variance_matches

MEAN = torch.tensor([1.0, -2.0], dtype=torch.float64)
COV = torch.tensor([[1.0, 0.5], [0.5, 0.8]], dtype=torch.float64)  # correlated, anisotropic


def _ula_stationary_cov(cov: torch.Tensor, step: float) -> torch.Tensor:
    """The stationary covariance C = M C M^T + 2 eps I of x' = m + M(x - m) + sqrt(2 eps) z,
    M = I - eps Sigma^{-1}, by scipy's discrete Lyapunov solver."""
    M = torch.eye(cov.shape[0]) - step * torch.linalg.inv(cov)
    return torch.from_numpy(
        linalg.solve_discrete_lyapunov(M.numpy(), 2 * step * torch.eye(2).numpy())
    )


def _second_moments(x: torch.Tensor, mean: torch.Tensor) -> torch.Tensor:
    centred = x - mean
    return (centred[:, :, None] * centred[:, None, :]).flatten(1)


@pytest.mark.parametrize("step", [0.1, 0.4])
def test_ula_stationary_law_matches_the_discretised_chain(step, generator):
    law = Gaussian(MEAN, COV)
    score = score_from_log_prob(law.log_prob)
    start = torch.zeros(20_000, 2)
    result = ebm.langevin(score, start, step_size=step, steps=300, generator=generator)
    assert result.nfe == 300
    x = result.x
    expected_cov = _ula_stationary_cov(COV, step)
    bias = float((expected_cov - COV).abs().max())  # what the covariance test must resolve
    assert_mean_matches(x, MEAN, name="ULA mean")
    assert_mean_matches(
        _second_moments(x, MEAN), expected_cov.flatten(), precision=bias, name="ULA covariance"
    )
    # the bias is real and this test sees it: the exact covariance is rejected
    with pytest.raises(AssertionError):
        assert_mean_matches(_second_moments(x, MEAN), COV.flatten(), precision=bias)


def test_ula_one_dimensional_closed_form(generator):
    s2, step = 2.0, 0.8
    expected = 2 * step / (1 - (1 - step / s2) ** 2)  # fixed point of v -> (1 - eps/s2)^2 v + 2 eps
    assert_close(ebm.ula_stationary_variance(s2, step), expected, atol=1e-12)
    x = ebm.langevin(
        lambda x: -(x - 3.0) / s2,
        torch.zeros(40_000, 1),
        step_size=step,
        steps=200,
        generator=generator,
    ).x
    assert_mean_matches(x, torch.tensor([3.0]))
    assert_variance_matches(x, torch.tensor([expected]))


def test_mala_removes_the_bias(generator):
    law = Gaussian(MEAN, COV)
    start = torch.zeros(20_000, 2)
    result = ebm.mala(law.log_prob, start, step_size=0.2, steps=300, generator=generator)
    assert 0.3 < float(result.acceptance_rate.mean()) < 1.0  # rejections actually happen
    # resolved to the bias that ULA at the same step would have (rejected next)
    bias = float((_ula_stationary_cov(COV, 0.2) - COV).abs().max())
    assert_mean_matches(result.x, MEAN, name="MALA mean")
    assert_mean_matches(
        _second_moments(result.x, MEAN), COV.flatten(), precision=bias, name="MALA covariance"
    )
    with pytest.raises(AssertionError):
        assert_mean_matches(
            _second_moments(result.x, MEAN), _ula_stationary_cov(COV, 0.2).flatten(), precision=bias
        )


def test_annealed_langevin_last_level(generator):
    """Noise-conditional scores of N(0, s^2 + sigma^2); after the last level the chain is at
    the ULA law of that level, with the step eps sigma_L^2 / sigma_L^2 = eps."""
    s2, sigmas, step = 1.5, [3.0, 1.0, 0.3], 0.1

    def score(x, sigma):
        return -x / (s2 + sigma**2)

    x = ebm.annealed_langevin(
        score,
        torch.zeros(20_000, 1),
        sigmas,
        steps_per_level=150,
        step_size=step,
        generator=generator,
    )
    last = s2 + sigmas[-1] ** 2
    assert_mean_matches(x, torch.zeros(1), precision=0.05)  # 4 % of the standard deviation
    assert_variance_matches(x, torch.tensor([2 * step / (1 - (1 - step / last) ** 2)]))


# --- the energy model -----------------------------------------------------------------------


def test_energy_model_score_is_minus_energy_gradient():
    energy = ebm.GaussianEnergy(2)
    with torch.no_grad():
        energy.mean.copy_(torch.tensor([0.5, -1.0]))
        energy.log_diagonal.copy_(torch.tensor([0.3, -0.2]))
        energy.off_diagonal.copy_(torch.tensor([0.7]))
    model = ebm.EnergyModel(energy)
    x = torch.randn(7, 2)
    L = torch.tensor([[math.exp(0.3), 0.0], [0.7, math.exp(-0.2)]])
    precision = L @ L.T
    assert_close(energy.precision(), precision, atol=1e-12)
    assert_close(
        model.energy(x),
        0.5 * (((x - energy.mean) @ precision) * (x - energy.mean)).sum(1),
        atol=1e-12,
    )
    assert_close(model.score(x), -(x - energy.mean) @ precision, atol=1e-12)


def _gaussian_data(generator, n=2000):
    law = Gaussian(torch.tensor([1.0, -0.5]), torch.tensor([[1.0, 0.6], [0.6, 0.8]]))
    data = law.sample(n, generator)
    ml_mean = data.mean(0)
    ml_precision = torch.linalg.inv(torch.cov(data.T, correction=0))
    return data, ml_mean, ml_precision


def _parameters(model: ebm.GaussianEnergy) -> torch.Tensor:
    return torch.cat([model.mean.detach(), model.precision().detach().flatten()])


def test_persistent_contrastive_divergence_reaches_maximum_likelihood(generator):
    data, ml_mean, ml_precision = _gaussian_data(generator)
    target = torch.cat([ml_mean, ml_precision.flatten()])
    energy = ebm.GaussianEnergy(2)
    cd = ebm.ContrastiveDivergence(
        energy,
        steps=1,
        step_size=0.3,
        sampler="mala",
        persistent=True,
        init=torch.randn(2000, 2, generator=generator),
    )
    optimizer = torch.optim.Adam(energy.parameters(), lr=0.05)
    start_error = float((_parameters(energy) - target).abs().max())
    average = torch.zeros_like(target)
    for iteration in range(400):
        loss = cd.loss(data, generator)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if iteration >= 300:  # Polyak average of the last 100 iterates
            average += (_parameters(energy) - average) / (iteration - 299)
    error = (average - target).abs()
    # stated tolerance: 0.03 on the mean, 0.03 (about 1.5 %) on each precision entry
    assert float(error.max()) < 0.03, (average, target)
    assert float(error.max()) < start_error / 20


def test_contrastive_divergence_gradient_points_to_maximum_likelihood(generator):
    """With exact model draws as negatives, the CD gradient is minus the log-likelihood
    gradient, which for the mean is P (mu - mean(data))."""
    data, ml_mean, _ = _gaussian_data(generator)
    energy = ebm.GaussianEnergy(2)
    negatives = torch.randn(200_000, 2, generator=generator)  # draws of the model N(0, I)
    ebm.contrastive_divergence_loss(energy, data, negatives).backward()
    # d/dmu E_data[E] = -(mean(data) - mu) with P = I; the negatives' term has mean ~0
    expected = -(ml_mean - energy.mean.detach())
    assert float((energy.mean.grad - expected).abs().max()) < 0.01
    assert float(energy.mean.grad @ (ml_mean - energy.mean.detach())) < 0  # descent moves toward ML


def test_score_matching_reaches_maximum_likelihood_for_gaussians(generator):
    """For a Gaussian family, Hyvarinen's estimator equals the maximum-likelihood one."""
    data, ml_mean, ml_precision = _gaussian_data(generator, n=500)
    energy = ebm.GaussianEnergy(2)
    model = ebm.EnergyModel(energy)
    optimizer = torch.optim.LBFGS(
        energy.parameters(),
        lr=1,
        max_iter=200,
        tolerance_grad=1e-12,
        tolerance_change=1e-14,
        line_search_fn="strong_wolfe",
    )

    def closure():
        optimizer.zero_grad()
        loss = ebm.score_matching_loss(model, data, "implicit")
        loss.backward()
        return loss

    optimizer.step(closure)
    assert_close(energy.mean.detach(), ml_mean, atol=1e-6)
    assert_close(energy.precision().detach(), ml_precision, atol=1e-6)


def test_sliced_and_denoising_options_run(generator):
    from genmath.core.path import GaussianPath
    from genmath.schedules import VE

    model = ebm.EnergyModel(MLP(2, None, hidden=16, depth=2))
    x = torch.randn(32, 2, generator=generator)
    sliced = ebm.score_matching_loss(model, x, "sliced", generator=generator, n_projections=2)
    sliced.backward()
    path = GaussianPath(VE(0.01, 10.0))
    denoising = ebm.score_matching_loss(
        model, x, "denoising", generator=generator, path=path, t=0.5
    )
    assert denoising.ndim == 0 and torch.isfinite(denoising)


def test_cd_k_restarts_at_the_data(generator):
    energy = ebm.GaussianEnergy(2)
    data = torch.randn(10, 2, generator=generator) + 5.0
    cd = ebm.ContrastiveDivergence(energy, steps=1, step_size=1e-6)
    negatives = cd.negatives(data, generator)
    assert float((negatives - data).abs().max()) < 0.01  # one tiny step from the data
    assert cd.chains is None


# --- bad input ------------------------------------------------------------------------------


def test_non_finite_energy_is_rejected():
    model = ebm.EnergyModel(lambda x: torch.full((x.shape[0],), float("inf")))
    with pytest.raises(ValueError, match="energy must be finite"):
        model.energy(torch.zeros(3, 2))
    with pytest.raises(ValueError, match="energy must be finite"):
        ebm.contrastive_divergence_loss(model, torch.zeros(3, 2), torch.zeros(3, 2))
    bad_shape = ebm.EnergyModel(lambda x: x)
    with pytest.raises(ValueError, match=r"one value per sample, shape \(3,\)"):
        bad_shape.energy(torch.zeros(3, 2))


@pytest.mark.parametrize("step", [-0.1, 0.0, float("nan")])
def test_non_positive_step_sizes_are_rejected(step):
    x = torch.zeros(4, 2)
    with pytest.raises(ValueError, match="step_size must be a positive"):
        ebm.langevin(lambda z: -z, x, step_size=step, steps=3)
    with pytest.raises(ValueError, match="step_size must be a positive"):
        ebm.mala(lambda z: -z.pow(2).sum(1), x, step_size=step, steps=3)
    with pytest.raises(ValueError, match="step_size must be a positive"):
        ebm.annealed_langevin(lambda z, s: -z, x, [1.0], steps_per_level=2, step_size=step)
    with pytest.raises(ValueError, match="step_size must be a positive"):
        ebm.ContrastiveDivergence(ebm.GaussianEnergy(2), step_size=step)


def test_mismatched_shapes_are_rejected():
    energy = ebm.GaussianEnergy(2)
    with pytest.raises(ValueError, match="same event shape"):
        ebm.contrastive_divergence_loss(energy, torch.zeros(4, 2), torch.zeros(4, 3))
    cd = ebm.ContrastiveDivergence(energy, persistent=True, init=torch.zeros(5, 3))
    with pytest.raises(ValueError, match="persistent chains have event shape"):
        cd.negatives(torch.zeros(4, 2))
    with pytest.raises(ValueError, match="score must return a tensor of the state's shape"):
        ebm.langevin(lambda z: z[:, :1], torch.zeros(4, 2), step_size=0.1, steps=2)
    with pytest.raises(ValueError, match="strictly decreasing"):
        ebm.annealed_langevin(
            lambda z, s: -z, torch.zeros(4, 2), [0.5, 1.0], steps_per_level=2, step_size=0.1
        )
    with pytest.raises(ValueError, match="stable only for step_size < 2"):
        ebm.ula_stationary_variance(1.0, 2.5)
