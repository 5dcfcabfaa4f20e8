"""Gaussian oracle: density, exact marginals along Gaussian paths, flow map, sampling, bad input.

Expected values come from scipy, numpy linear algebra written in a different form than the
implementation (information-form posteriors, explicit matrix square roots), autograd and
numerical ODE integration.
"""

import numpy as np
import pytest
import scipy.linalg
import torch
from scipy.integrate import solve_ivp
from scipy.stats import multivariate_normal

from genmath.analytic import Gaussian
from genmath.core.path import GaussianPath
from genmath.schedules import VE, VP, CondOT, CosineVP
from genmath.testing import assert_close, assert_mean_matches

PATHS = {
    "condot": GaussianPath(CondOT()),
    "vp": GaussianPath(VP()),
    "cosine": GaussianPath(CosineVP()),
    "ve": GaussianPath(VE(0.05, 10.0)),
}


def _coefficients(path, t):
    t = torch.tensor(float(t))
    return tuple(float(getattr(path, m)(t)) for m in ("alpha", "sigma", "d_alpha", "d_sigma"))


# A 3-D Gaussian with a rotated, ill-conditioned covariance and a mean far from 0.
MEAN = np.array([1.5, -2.0, 0.7])
_A = np.array([[1.2, 0.4, -0.3], [0.0, 0.5, 0.8], [0.2, -0.6, 0.9]])
COV = _A @ _A.T + 0.05 * np.eye(3)


@pytest.fixture
def gaussian():
    return Gaussian(torch.tensor(MEAN), torch.tensor(COV))


@pytest.fixture
def points():
    return torch.from_numpy(np.random.default_rng(3).normal(size=(7, 3)) * 2.0)


def _posterior_mean_information_form(x, alpha, sigma):
    """E[x0 | xt = x] by Bayes in precision form: (S^-1 + a^2/s^2 I)^-1 (S^-1 mu + a/s^2 x)."""
    prec = np.linalg.inv(COV)
    post_prec = prec + alpha**2 / sigma**2 * np.eye(3)
    rhs = (prec @ MEAN)[None, :] + alpha / sigma**2 * x
    return np.linalg.solve(post_prec, rhs.T).T


def test_log_prob_matches_scipy(gaussian, points):
    expected = multivariate_normal(MEAN, COV).logpdf(points.numpy())
    assert_close(gaussian.log_prob(points), torch.from_numpy(expected), atol=1e-12, rtol=1e-12)


@pytest.mark.parametrize("name", PATHS)
@pytest.mark.parametrize("t", [0.0, 0.013, 0.4, 0.77, 0.995, 1.0])
def test_marginal_log_prob_matches_scipy(gaussian, points, name, t):
    path = PATHS[name]
    alpha, sigma, _, _ = _coefficients(path, t)
    expected = multivariate_normal(alpha * MEAN, alpha**2 * COV + sigma**2 * np.eye(3))
    got = gaussian.marginal(path).log_prob(points, t)
    assert_close(got, torch.from_numpy(expected.logpdf(points.numpy())), atol=1e-10, rtol=1e-12)


@pytest.mark.parametrize("name", PATHS)
def test_score_is_gradient_of_log_prob_per_sample_t(gaussian, points, name):
    marginal = gaussian.marginal(PATHS[name])
    t = torch.tensor([0.0, 0.05, 0.2, 0.5, 0.8, 0.97, 1.0])
    x = points.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(marginal.log_prob(x, t).sum(), x)
    assert_close(marginal.score(points, t), grad, atol=1e-10, rtol=1e-10)


@pytest.mark.parametrize("name", PATHS)
@pytest.mark.parametrize("t", [0.02, 0.3, 0.6, 0.9])
def test_denoise_eps_velocity_match_bayes(gaussian, points, name, t):
    path = PATHS[name]
    alpha, sigma, d_alpha, d_sigma = _coefficients(path, t)
    x = points.numpy()
    x0_hat = _posterior_mean_information_form(x, alpha, sigma)
    eps_hat = (x - alpha * x0_hat) / sigma
    marginal = gaussian.marginal(path)
    assert_close(marginal.denoise(points, t), torch.from_numpy(x0_hat), atol=1e-9, rtol=1e-9)
    assert_close(marginal.eps(points, t), torch.from_numpy(eps_hat), atol=1e-9, rtol=1e-9)
    velocity = d_alpha * x0_hat + d_sigma * eps_hat
    assert_close(marginal.velocity(points, t), torch.from_numpy(velocity), atol=1e-8, rtol=1e-9)


def test_boundaries_are_finite_and_continuous(gaussian, points):
    """At t = 0 sigma = 0 for CondOT and VP (VP's d_sigma is infinite there); at t = 1
    CondOT has alpha = 0. The oracle's values there equal the limits from inside."""
    mean = torch.tensor(MEAN)
    for name in ("condot", "vp"):
        marginal = gaussian.marginal(PATHS[name])
        assert_close(marginal.denoise(points, 0.0), points, atol=1e-12, name="x0 at t=0")
        assert_close(
            marginal.eps(points, 0.0), torch.zeros_like(points), atol=0.0, name="eps at t=0"
        )
        for method in ("velocity", "score", "denoise", "eps"):
            at_zero = getattr(marginal, method)(points, 0.0)
            near_zero = getattr(marginal, method)(points, 1e-12)
            assert torch.isfinite(at_zero).all(), (name, method)
            assert_close(at_zero, near_zero, atol=1e-5, rtol=1e-5, name=f"{name} {method} at t=0")
    condot = gaussian.marginal(PATHS["condot"])
    assert_close(condot.velocity(points, 0.0), -points, atol=1e-12, name="CondOT velocity at 0")
    assert_close(condot.denoise(points, 1.0), mean.expand_as(points), atol=1e-12)
    assert_close(condot.eps(points, 1.0), points, atol=1e-12)


@pytest.mark.parametrize("name", PATHS)
def test_moments(gaussian, name):
    marginal = gaussian.marginal(PATHS[name])
    alpha, sigma, _, _ = _coefficients(PATHS[name], 0.35)
    assert_close(marginal.mean(0.35), torch.from_numpy(alpha * MEAN), atol=1e-12)
    expected = alpha**2 * COV + sigma**2 * np.eye(3)
    assert_close(marginal.cov(0.35), torch.from_numpy(expected), atol=1e-10, rtol=1e-12)
    assert marginal.cov(torch.tensor([0.1, 0.5])).shape == (2, 3, 3)


def _integrate(marginal, x, t_from, t_to):
    def field(t, y):
        v = marginal.velocity(torch.from_numpy(y.reshape(x.shape)), t)
        return v.numpy().ravel()

    sol = solve_ivp(
        field, (t_from, t_to), x.numpy().ravel(), method="DOP853", rtol=1e-10, atol=1e-10
    )
    assert sol.success
    return torch.from_numpy(sol.y[:, -1].reshape(x.shape))


@pytest.mark.parametrize(
    ("name", "t_from", "t_to"),
    [
        ("condot", 0.0, 1.0),
        ("condot", 0.9, 0.15),
        ("vp", 0.0, 0.8),
        ("vp", 0.7, 0.05),
        ("ve", 0.1, 0.9),
    ],
)
def test_flow_map_matches_solve_ivp(gaussian, points, name, t_from, t_to):
    marginal = gaussian.marginal(PATHS[name])
    expected = _integrate(marginal, points, t_from, t_to)
    got = gaussian.flow_map(PATHS[name], points, t_from, t_to)
    assert_close(got, expected, atol=1e-7, rtol=1e-7, name="flow map vs solve_ivp")


def test_flow_map_against_matrix_square_roots(gaussian, points):
    """x -> m_to + C_to^{1/2} C_from^{-1/2} (x - m_from), with scipy's sqrtm; per-sample times."""
    path = PATHS["vp"]
    t_from, t_to = (
        torch.tensor([0.1, 0.3, 0.5, 0.7, 0.9, 0.2, 0.0]),
        torch.tensor([0.6, 0.0, 1.0, 0.2, 0.4, 0.2, 0.5]),
    )
    got = gaussian.flow_map(path, points, t_from, t_to)
    for i in range(points.shape[0]):
        a0, s0, _, _ = _coefficients(path, t_from[i])
        a1, s1, _, _ = _coefficients(path, t_to[i])
        c0 = scipy.linalg.sqrtm(a0**2 * COV + s0**2 * np.eye(3)).real
        c1 = scipy.linalg.sqrtm(a1**2 * COV + s1**2 * np.eye(3)).real
        expected = a1 * MEAN + c1 @ np.linalg.solve(c0, points[i].numpy() - a0 * MEAN)
        assert_close(got[i], torch.from_numpy(expected), atol=1e-10, rtol=1e-10)


def test_flow_map_transports_density(gaussian, points):
    """log p_s(x) = log p_t(phi(x)) + log|det d phi/dx| (change of variables), and phi is invertible."""
    marginal = gaussian.marginal(PATHS["condot"])
    s, t = 0.25, 0.85
    jac = torch.autograd.functional.jacobian(
        lambda y: marginal.flow_map(y[None], s, t)[0], points[0]
    )
    log_det = torch.linalg.slogdet(jac)[1]
    mapped = marginal.flow_map(points, s, t)
    assert_close(
        marginal.log_prob(mapped, t) + log_det, marginal.log_prob(points, s), atol=1e-10, rtol=1e-10
    )
    assert_close(marginal.flow_map(mapped, t, s), points, atol=1e-12, rtol=1e-12)


def test_samples_match_mean_and_covariance(gaussian, generator):
    x = gaussian.sample(20000, generator=generator)
    assert x.shape == (20000, 3) and x.dtype == torch.float64
    assert_mean_matches(x, torch.tensor(MEAN), name="mean")
    centred = x - torch.tensor(MEAN)
    assert_mean_matches(centred[:, :, None] * centred[:, None, :], torch.tensor(COV), name="cov")


def test_path_samples_match_marginal(gaussian, generator):
    """x_t = alpha x0 + sigma eps with x0 from the oracle has the marginal's mean and covariance."""
    path, t = PATHS["vp"], 0.3
    alpha, sigma, _, _ = _coefficients(path, t)
    x0 = gaussian.sample(20000, generator=generator)
    xt = alpha * x0 + sigma * torch.randn(x0.shape, generator=generator)
    marginal = gaussian.marginal(path)
    assert_mean_matches(xt, marginal.mean(t), name="marginal mean")
    centred = xt - marginal.mean(t)
    assert_mean_matches(
        centred[:, :, None] * centred[:, None, :], marginal.cov(t), name="marginal cov"
    )


def test_same_generator_seed_same_samples(gaussian):
    a = gaussian.sample(5, generator=torch.Generator().manual_seed(7))
    b = gaussian.sample(5, generator=torch.Generator().manual_seed(7))
    assert torch.equal(a, b)


def test_works_in_its_own_dtype_and_refuses_data_of_another(gaussian, points):
    # the input rule: an oracle built in float32 computes in float32; float32 data never meet
    # float64 parameters silently (a TypeError names the data and both dtypes)
    x32 = points.float()
    gaussian32 = Gaussian(torch.tensor(MEAN, dtype=torch.float32), torch.tensor(COV, dtype=torch.float32))
    marginal32, marginal = gaussian32.marginal(PATHS["condot"]), gaussian.marginal(PATHS["condot"])
    for method in ("log_prob", "score", "denoise", "eps", "velocity"):
        out = getattr(marginal32, method)(x32, 0.4)
        assert out.dtype == torch.float32, method
        assert_close(out.double(), getattr(marginal, method)(points, 0.4), atol=1e-4, rtol=1e-4)
        with pytest.raises(TypeError, match="x has dtype torch.float32 but the oracle"):
            getattr(marginal, method)(x32, 0.4)
    assert gaussian32.log_prob(x32).dtype == torch.float32
    with pytest.raises(TypeError, match="x has dtype torch.float32"):
        gaussian.log_prob(x32)


def test_as_distribution(gaussian, points):
    expected = multivariate_normal(MEAN, COV).logpdf(points.numpy())
    assert_close(
        gaussian.as_distribution().log_prob(points), torch.from_numpy(expected), atol=1e-12
    )


def test_bad_input(gaussian, points):
    with pytest.raises(ValueError, match="positive definite"):
        Gaussian(torch.zeros(2), torch.tensor([[1.0, 2.0], [2.0, 1.0]]))
    with pytest.raises(ValueError, match="positive definite"):
        Gaussian(torch.zeros(2), torch.tensor([[1.0, 0.0], [0.0, 0.0]]))
    with pytest.raises(ValueError, match="symmetric"):
        Gaussian(torch.zeros(2), torch.tensor([[1.0, 0.5], [0.0, 1.0]]))
    with pytest.raises(ValueError, match=r"cov must have shape \(d, d\) = \(3, 3\)"):
        Gaussian(torch.zeros(3), torch.eye(2))
    with pytest.raises(ValueError, match=r"mean must have shape \(d,\)"):
        Gaussian(torch.zeros(1, 3), torch.eye(3))
    with pytest.raises(ValueError, match="finite"):
        Gaussian(torch.tensor([0.0, float("nan")]), torch.eye(2))
    with pytest.raises(ValueError, match=r"x must have shape \(B, 3\)"):
        gaussian.log_prob(torch.zeros(4, 2))
    marginal = gaussian.marginal(PATHS["condot"])
    with pytest.raises(ValueError, match=r"must lie in \[0, 1\]"):
        marginal.score(points, 1.5)
    with pytest.raises(ValueError, match="per-sample t needs shape"):
        marginal.velocity(points, torch.tensor([0.1, 0.2]))
    with pytest.raises(ValueError, match=r"x must have shape \(B, 3\)"):
        marginal.denoise(torch.zeros(3), 0.5)
    with pytest.raises(ValueError, match="t_to must lie"):
        gaussian.flow_map(PATHS["condot"], points, 0.2, -0.1)
    with pytest.raises(ValueError, match="n must be a positive integer, got -1"):
        gaussian.sample(-1)
