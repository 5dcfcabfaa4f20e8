"""Gaussian-mixture oracle: density, exact marginals (against quadrature and the continuity
equation), score by autograd, sampling, bad input."""

import math

import numpy as np
import pytest
import torch
from scipy.stats import multivariate_normal

from genmath.analytic import GaussianMixture
from genmath.core.path import GaussianPath
from genmath.schedules import VP, CondOT
from genmath.testing import assert_close, assert_mean_matches

PATHS = {"condot": GaussianPath(CondOT()), "vp": GaussianPath(VP())}


def _coefficients(path, t):
    t = torch.tensor(float(t))
    return tuple(float(getattr(path, m)(t)) for m in ("alpha", "sigma", "d_alpha", "d_sigma"))


def _random_covs(rng, k, d):
    a = rng.normal(size=(k, d, d))
    return a @ a.transpose(0, 2, 1) * 0.4 + 0.1 * np.eye(d)


# 3 components in 3-D, unequal weights, full rotated covariances, well-separated means.
RNG = np.random.default_rng(11)
WEIGHTS = np.array([0.5, 0.3, 0.2])
MEANS = np.array([[2.0, 0.0, -1.0], [-1.5, 1.5, 0.5], [0.5, -2.0, 2.0]])
COVS = _random_covs(RNG, 3, 3)

# 2 components in 2-D for quadrature checks.
WEIGHTS_2D = np.array([0.35, 0.65])
MEANS_2D = np.array([[1.2, -0.4], [-1.0, 0.8]])
COVS_2D = np.array([[[0.6, 0.25], [0.25, 0.3]], [[0.2, -0.1], [-0.1, 0.5]]])


@pytest.fixture
def mixture():
    return GaussianMixture(torch.tensor(WEIGHTS), torch.tensor(MEANS), torch.tensor(COVS))


@pytest.fixture
def points():
    return torch.from_numpy(np.random.default_rng(5).normal(size=(6, 3)) * 2.0)


def _scipy_log_prob(x, weights, means, covs):
    dens = sum(
        w * multivariate_normal(m, c).pdf(x) for w, m, c in zip(weights, means, covs, strict=True)
    )
    return np.log(dens)


def test_log_prob_matches_scipy(mixture, points):
    expected = _scipy_log_prob(points.numpy(), WEIGHTS, MEANS, COVS)
    assert_close(mixture.log_prob(points), torch.from_numpy(expected), atol=1e-12, rtol=1e-12)


def test_moments_by_law_of_total_covariance(mixture):
    mean = WEIGHTS @ MEANS
    second = sum(w * (c + np.outer(m, m)) for w, m, c in zip(WEIGHTS, MEANS, COVS, strict=True))
    assert_close(mixture.mean, torch.from_numpy(mean), atol=1e-12)
    assert_close(mixture.cov, torch.from_numpy(second - np.outer(mean, mean)), atol=1e-12)


def _quadrature(x, alpha, sigma):
    """p_t(x) and E[x0 | xt = x] by brute-force 2-D quadrature of p0(x0) N(x; alpha x0, sigma^2 I)
    over x0 (trapezoid rule on a fine grid: spectrally accurate for these smooth, fast-decaying
    integrands)."""
    grid = np.linspace(-6.0, 6.0, 601)
    h = grid[1] - grid[0]
    g0, g1 = np.meshgrid(grid, grid, indexing="ij")
    x0 = np.stack([g0.ravel(), g1.ravel()], axis=1)
    prior = np.exp(_scipy_log_prob(x0, WEIGHTS_2D, MEANS_2D, COVS_2D))
    densities, means = [], []
    for xi in x:
        lik = np.exp(-((xi - alpha * x0) ** 2).sum(1) / (2 * sigma**2)) / (2 * math.pi * sigma**2)
        joint = prior * lik * h * h
        densities.append(joint.sum())
        means.append((joint[:, None] * x0).sum(0) / joint.sum())
    return np.log(densities), np.array(means)


@pytest.mark.parametrize(
    ("name", "t"), [("condot", 0.3), ("condot", 0.7), ("vp", 0.2), ("vp", 0.5)]
)
def test_marginal_and_denoiser_match_quadrature(name, t):
    mixture = GaussianMixture(
        torch.tensor(WEIGHTS_2D), torch.tensor(MEANS_2D), torch.tensor(COVS_2D)
    )
    path = PATHS[name]
    alpha, sigma, _, _ = _coefficients(path, t)
    x = alpha * np.array([[1.0, -0.5], [-1.2, 0.9], [0.1, 0.2], [2.0, 1.5]])
    log_p, x0_hat = _quadrature(x, alpha, sigma)
    marginal = mixture.marginal(path)
    xt = torch.from_numpy(x)
    assert_close(marginal.log_prob(xt, t), torch.from_numpy(log_p), atol=1e-9, rtol=1e-9)
    assert_close(marginal.denoise(xt, t), torch.from_numpy(x0_hat), atol=1e-9, rtol=1e-9)


@pytest.mark.parametrize("name", PATHS)
def test_score_is_gradient_of_log_prob(mixture, points, name):
    marginal = mixture.marginal(PATHS[name])
    t = torch.tensor([0.0, 0.1, 0.35, 0.6, 0.9, 1.0])
    x = points.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(marginal.log_prob(x, t).sum(), x)
    assert_close(marginal.score(points, t), grad, atol=1e-10, rtol=1e-10)


@pytest.mark.parametrize("name", PATHS)
@pytest.mark.parametrize("t", [0.1, 0.35, 0.6, 0.85])
def test_parameterizations_are_consistent(mixture, points, name, t):
    """eps = -sigma score; velocity = d_alpha x0_hat + d_sigma eps_hat; x = alpha x0_hat + sigma eps_hat."""
    path = PATHS[name]
    alpha, sigma, d_alpha, d_sigma = _coefficients(path, t)
    m = mixture.marginal(path)
    score, x0_hat, eps_hat = m.score(points, t), m.denoise(points, t), m.eps(points, t)
    assert_close(eps_hat, -sigma * score, atol=1e-10, rtol=1e-10)
    assert_close(alpha * x0_hat + sigma * eps_hat, points, atol=1e-10, rtol=1e-10)
    assert_close(m.velocity(points, t), d_alpha * x0_hat + d_sigma * eps_hat, atol=1e-9, rtol=1e-9)


def _divergence(field, x):
    x = x.clone().requires_grad_(True)
    v = field(x)
    rows = [
        torch.autograd.grad(v[:, i].sum(), x, retain_graph=True)[0][:, i] for i in range(x.shape[1])
    ]
    return sum(rows), v.detach()


@pytest.mark.parametrize("name", PATHS)
@pytest.mark.parametrize("t", [0.15, 0.4, 0.7, 0.9])
def test_velocity_satisfies_continuity_equation(mixture, points, name, t):
    """d/dt log p_t + div v + v . grad log p_t = 0 (finite differences in t, autograd in x)."""
    marginal = mixture.marginal(PATHS[name])
    xt = marginal.denoise(points, t) * _coefficients(PATHS[name], t)[0] + 0.5 * points  # typical x
    h = 1e-5
    dlogp_dt = (marginal.log_prob(xt, t + h) - marginal.log_prob(xt, t - h)) / (2 * h)
    div_v, v = _divergence(lambda y: marginal.velocity(y, t), xt)
    residual = dlogp_dt + div_v + (v * marginal.score(xt, t)).sum(-1)
    scale = dlogp_dt.abs() + div_v.abs()
    assert scale.mean() > 0.1  # the terms are far from zero, so the identity is a real test
    assert_close(residual, torch.zeros_like(residual), atol=2e-6, name="continuity residual")


def test_velocity_finite_at_data_end(mixture, points):
    for name in PATHS:
        m = mixture.marginal(PATHS[name])
        assert_close(m.velocity(points, 0.0), m.velocity(points, 1e-12), atol=1e-5, rtol=1e-5)
        assert_close(m.denoise(points, 0.0), points, atol=1e-12)


def test_condot_end_is_standard_normal(mixture, points):
    m = mixture.marginal(PATHS["condot"])
    expected = multivariate_normal(np.zeros(3), np.eye(3)).logpdf(points.numpy())
    assert_close(m.log_prob(points, 1.0), torch.from_numpy(expected), atol=1e-12)
    assert_close(m.denoise(points, 1.0), torch.from_numpy(WEIGHTS @ MEANS).expand(6, 3), atol=1e-12)


def test_responsibilities(mixture, points):
    r = mixture.marginal(PATHS["vp"]).responsibilities(points, 0.3)
    alpha, sigma, _, _ = _coefficients(PATHS["vp"], 0.3)
    joint = np.stack(
        [
            w
            * multivariate_normal(alpha * m, alpha**2 * c + sigma**2 * np.eye(3)).pdf(
                points.numpy()
            )
            for w, m, c in zip(WEIGHTS, MEANS, COVS, strict=True)
        ],
        axis=1,
    )
    assert_close(r, torch.from_numpy(joint / joint.sum(1, keepdims=True)), atol=1e-12)


def test_samples_match_moments_and_weights(mixture, generator):
    x, labels = mixture.sample_with_components(30000, generator=generator)
    assert x.shape == (30000, 3)
    one_hot = torch.nn.functional.one_hot(labels, 3).to(x.dtype)
    assert_mean_matches(one_hot, torch.tensor(WEIGHTS), name="component frequencies")
    assert_mean_matches(x, torch.tensor(WEIGHTS @ MEANS), name="mean")
    # per-component covariance, using the sampled labels
    for k in range(3):
        centred = x[labels == k] - torch.tensor(MEANS[k])
        assert_mean_matches(
            centred[:, :, None] * centred[:, None, :], torch.tensor(COVS[k]), name=f"cov {k}"
        )


def test_bad_input():
    with pytest.raises(ValueError, match="weights must sum to 1"):
        GaussianMixture(torch.tensor([0.5, 0.6]), torch.zeros(2, 2), torch.eye(2).expand(2, 2, 2))
    with pytest.raises(ValueError, match="weights must be positive"):
        GaussianMixture(torch.tensor([1.5, -0.5]), torch.zeros(2, 2), torch.eye(2).expand(2, 2, 2))
    with pytest.raises(ValueError, match=r"means must have shape \(K, d\) with K = 2"):
        GaussianMixture(torch.tensor([0.5, 0.5]), torch.zeros(3, 2), torch.eye(2).expand(2, 2, 2))
    with pytest.raises(ValueError, match=r"covs must have shape \(K, d, d\) = \(2, 2, 2\)"):
        GaussianMixture(torch.tensor([0.5, 0.5]), torch.zeros(2, 2), torch.eye(2))
    bad = torch.stack([torch.eye(2), torch.tensor([[1.0, 3.0], [3.0, 1.0]])])
    with pytest.raises(ValueError, match=r"positive definite.*component\(s\) \[1\]"):
        GaussianMixture(torch.tensor([0.5, 0.5]), torch.zeros(2, 2), bad)
    mixture = GaussianMixture(
        torch.tensor([0.5, 0.5]), torch.zeros(2, 2), torch.eye(2).expand(2, 2, 2)
    )
    with pytest.raises(ValueError, match=r"x must have shape \(B, 2\)"):
        mixture.marginal(PATHS["condot"]).score(torch.zeros(4, 3), 0.5)
    with pytest.raises(ValueError, match=r"must lie in \[0, 1\]"):
        mixture.marginal(PATHS["condot"]).velocity(
            torch.zeros(4, 2), torch.tensor([0.1, 0.2, 0.3, -0.2])
        )
