"""PPCA oracle: marginal against scipy, posterior against brute-force Bayes on the joint
Gaussian of (z, x), the exact-posterior ELBO identity, sampling, bad input."""

import numpy as np
import pytest
import torch
from scipy.stats import multivariate_normal

from genmath.analytic import PPCA
from genmath.testing import assert_close, assert_mean_matches

W = np.array([[1.0, 0.3], [-0.5, 2.0], [0.7, -1.1], [0.2, 0.4]])
B = np.array([0.5, -1.0, 2.0, 0.0])
S = 0.6


@pytest.fixture
def ppca():
    return PPCA(torch.tensor(W), torch.tensor(B), S)


@pytest.fixture
def points():
    return torch.from_numpy(np.random.default_rng(2).normal(size=(5, 4)) * 2.0)


def test_log_prob_matches_scipy(ppca, points):
    expected = multivariate_normal(B, W @ W.T + S**2 * np.eye(4)).logpdf(points.numpy())
    assert_close(ppca.log_prob(points), torch.from_numpy(expected), atol=1e-12, rtol=1e-12)


def test_posterior_matches_bayes_on_joint_gaussian(ppca, points):
    """Condition the joint N((0, b), [[I, W^T], [W, WW^T + s^2 I]]) on x (a d x d solve,
    a different formula from the k x k one implemented)."""
    cov_xx = W @ W.T + S**2 * np.eye(4)
    gain = np.linalg.solve(cov_xx, W).T  # W^T cov_xx^-1
    expected_mean = (points.numpy() - B) @ gain.T
    expected_cov = np.eye(2) - gain @ W
    mean, cov = ppca.posterior(points)
    assert_close(mean, torch.from_numpy(expected_mean), atol=1e-12, rtol=1e-12)
    assert_close(cov, torch.from_numpy(expected_cov), atol=1e-12, rtol=1e-12)


def test_distributions_and_exact_posterior_elbo_identity(ppca, points, generator):
    """log p(x, z) - log p(z | x) = log p(x) for every z: the ELBO with the exact posterior
    is log p(x) with zero variance."""
    q = ppca.posterior_distribution(points)
    assert q.batch_shape == (5,) and q.event_shape == (2,)
    z = q.sample((3,))  # (3, 5, 2)
    assert ppca.likelihood(z).event_shape == (4,)
    log_joint = torch.stack([ppca.log_joint(points, z[i]) for i in range(3)])
    assert_close(log_joint - q.log_prob(z), ppca.log_prob(points).expand(3, 5), atol=1e-11)


def test_log_joint_matches_scipy(ppca, points):
    z = torch.from_numpy(np.random.default_rng(4).normal(size=(5, 2)))
    lik = [
        multivariate_normal(W @ zi + B, S**2 * np.eye(4)).logpdf(xi)
        for xi, zi in zip(points.numpy(), z.numpy(), strict=True)
    ]
    prior = multivariate_normal(np.zeros(2), np.eye(2)).logpdf(z.numpy())
    assert_close(ppca.log_joint(points, z), torch.tensor(lik) + torch.from_numpy(prior), atol=1e-12)


def test_as_gaussian(ppca):
    g = ppca.as_gaussian()
    assert_close(g.mean, torch.tensor(B), atol=0.0)
    assert_close(g.cov, torch.from_numpy(W @ W.T + S**2 * np.eye(4)), atol=1e-14)


def test_samples_match_moments(ppca, generator):
    x, z = ppca.sample_joint(20000, generator=generator)
    assert x.shape == (20000, 4) and z.shape == (20000, 2)
    assert_mean_matches(x, torch.tensor(B), name="mean")
    centred = x - torch.tensor(B)
    cov = torch.from_numpy(W @ W.T + S**2 * np.eye(4))
    assert_mean_matches(centred[:, :, None] * centred[:, None, :], cov, name="cov")
    cross = centred[:, :, None] * z[:, None, :]
    assert_mean_matches(cross, torch.tensor(W), name="Cov(x, z) = W")


def test_bad_input(ppca):
    with pytest.raises(ValueError, match=r"W must have shape \(d, k\)"):
        PPCA(torch.zeros(3), torch.zeros(3), 1.0)
    with pytest.raises(ValueError, match=r"b must have shape \(d,\) = \(4,\)"):
        PPCA(torch.tensor(W), torch.zeros(3), 1.0)
    with pytest.raises(ValueError, match="noise_std must be a positive scalar"):
        PPCA(torch.tensor(W), torch.tensor(B), 0.0)
    with pytest.raises(ValueError, match=r"x must have shape \(B, 4\)"):
        ppca.posterior(torch.zeros(2, 3))
    with pytest.raises(ValueError, match=r"z must have shape \(\.\.\., 2\)"):
        ppca.likelihood(torch.zeros(2, 3))
