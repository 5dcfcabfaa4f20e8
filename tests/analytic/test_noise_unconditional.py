"""The effective target of a noise-unconditional denoiser (Sun et al. 2025) against adaptive
scipy quadrature of independently written closed forms, and against its defining property
(Monte Carlo over (t, x0, eps)): the residual x0 - g*(z) is orthogonal to every function of z."""

import math

import numpy as np
import pytest
import torch
from scipy.integrate import quad

from genmath.analytic import (
    Gaussian,
    GaussianMixture,
    noise_unconditional_target,
    time_posterior,
)
from genmath.core.path import GaussianPath
from genmath.schedules import VE, VP, CondOT
from genmath.testing import assert_close, assert_mean_matches

WEIGHTS = np.array([0.35, 0.65])
MEANS = np.array([[-1.5, 0.5], [1.0, -0.8]])
COVS = np.array([[[0.30, 0.10], [0.10, 0.20]], [[0.50, -0.15], [-0.15, 0.40]]])


def _mixture() -> GaussianMixture:
    return GaussianMixture(torch.tensor(WEIGHTS), torch.tensor(MEANS), torch.tensor(COVS))


def _logit_normal(t):
    """SD3's logit-normal time density (unnormalised): a non-uniform prior on t."""
    return np.exp(-0.5 * (np.log(t / (1 - t))) ** 2) / (t * (1 - t))


def _condot_targets(z, t, target):
    """p_t(z) and E[target | z, t] of the mixture on CondOT (alpha = 1 - t, sigma = t), in
    numpy/scipy from the textbook formulas."""
    alpha, sigma = 1 - t, t
    densities, per_component = [], []
    for w, mu, cov in zip(WEIGHTS, MEANS, COVS, strict=True):
        c = alpha**2 * cov + sigma**2 * np.eye(2)
        centred = np.linalg.solve(c, z - alpha * mu)
        quadratic = float((z - alpha * mu) @ centred)
        densities.append(w * math.exp(-quadratic / 2) / (2 * math.pi * math.sqrt(np.linalg.det(c))))
        if target == "x0":
            per_component.append(mu + alpha * cov @ centred)
        else:  # velocity: d alpha = -1, d sigma = 1
            per_component.append(-mu + (-alpha * cov + sigma * np.eye(2)) @ centred)
    densities = np.array(densities)
    return densities.sum(), (densities[:, None] * np.array(per_component)).sum(0) / densities.sum()


@pytest.mark.parametrize("target", ["x0", "velocity"])
def test_mixture_target_matches_adaptive_quadrature(target):
    marginal = _mixture().marginal(GaussianPath(CondOT()))
    points = np.array([[0.2, -0.1], [2.0, 1.5]])

    def weight(t):
        return _logit_normal(t) * (1 + t**2)  # time density x loss weight

    expected = []
    for z in points:
        evidence = quad(lambda t, z=z: weight(t) * _condot_targets(z, t, target)[0], 0, 1,
                        epsabs=0, epsrel=1e-11, limit=200)[0]
        row = []
        for i in range(2):
            def integrand(t, z=z, i=i):
                density, mean = _condot_targets(z, t, target)
                return weight(t) * density * mean[i]

            row.append(quad(integrand, 0, 1, epsabs=0, epsrel=1e-11, limit=200)[0] / evidence)
        expected.append(row)
    got = noise_unconditional_target(
        marginal, torch.tensor(points), target,
        time_density=lambda t: torch.exp(-0.5 * torch.logit(t) ** 2) / (t * (1 - t)),
        loss_weight=lambda t: 1 + t**2,
    )
    assert_close(got, torch.tensor(expected), atol=1e-9, name=f"g*({target})")


def test_vp_gaussian_target_and_time_posterior_match_quadrature():
    """1-D Gaussian data on VP(0.1, 20): alpha_t = exp(-t^2 (20 - 0.1)/4 - 0.1 t / 2)."""
    m, q2 = 0.8, 0.3
    marginal = Gaussian(torch.tensor([m]), torch.tensor([[q2]])).marginal(GaussianPath(VP()))

    def parts(z, t):
        alpha = math.exp(-0.25 * t**2 * 19.9 - 0.05 * t)
        var = alpha**2 * q2 + 1 - alpha**2
        density = math.exp(-((z - alpha * m) ** 2) / (2 * var)) / math.sqrt(2 * math.pi * var)
        return density, m + alpha * q2 * (z - alpha * m) / var

    z_values = [-1.2, 0.1, 0.9]
    options = dict(epsabs=0, epsrel=1e-12, limit=200)
    evidence = [quad(lambda t, z=z: parts(z, t)[0], 0, 1, **options)[0] for z in z_values]
    denoised = [quad(lambda t, z=z: parts(z, t)[0] * parts(z, t)[1], 0, 1, **options)[0] / e
                for z, e in zip(z_values, evidence, strict=True)]
    mean_t = [quad(lambda t, z=z: t * parts(z, t)[0], 0, 1, **options)[0] / e
              for z, e in zip(z_values, evidence, strict=True)]
    x = torch.tensor(z_values)[:, None]
    assert_close(noise_unconditional_target(marginal, x)[:, 0], torch.tensor(denoised),
                 atol=1e-9, name="g*(x0) on VP")
    times, weights = time_posterior(marginal, x)
    assert_close(weights.sum(1), torch.ones(3), atol=1e-12, name="posterior mass")
    assert_close(weights @ times, torch.tensor(mean_t), atol=1e-9, name="E[t | z]")


def test_the_residual_is_orthogonal_to_functions_of_z(generator):
    """g* minimises E||g(z) - x0||^2 over functions of z alone, so E[(x0 - g*(z)) h(z)] = 0
    for h in {1, z_1, z_2}: checked two-sided over (t ~ U(0, 1), x0, eps). The noise-conditional
    denoiser at one fixed t, and the target under a wrong time prior, both fail it."""
    path = GaussianPath(CondOT())
    data = _mixture()
    marginal = data.marginal(path)
    n = 2500
    t = torch.rand(n, generator=generator)
    x0 = data.sample(n, generator)
    z = (1 - t)[:, None] * x0 + t[:, None] * torch.randn(n, 2, generator=generator)
    features = torch.cat([torch.ones(n, 1), z], 1)

    def moments(prediction):
        return ((x0 - prediction)[:, :, None] * features[:, None, :]).reshape(n, -1)

    rule = dict(panels=16, order=8)
    exact = noise_unconditional_target(marginal, z, **rule)
    assert_mean_matches(moments(exact), torch.zeros(6), precision=0.11, name="E[(x0 - g*) h]")
    for wrong in (
        marginal.denoise(z, 0.5),
        noise_unconditional_target(marginal, z, time_density=lambda s: s**2, **rule),
    ):
        with pytest.raises(AssertionError):
            assert_mean_matches(moments(wrong), torch.zeros(6), precision=0.11)


def test_posterior_of_t_concentrates_with_the_dimension(generator):
    """Sun et al.'s observation: for z = x_t of d-dimensional data the posterior of t given z
    narrows like 1/sqrt(d) around the true t, so g* approaches the noise-conditional denoiser.
    On VE the marginal variance 0.25 + sigma_t^2 grows with t, so ||z|| identifies t (on CondOT
    with this data it does not: 0.25 (1 - t)^2 + t^2 dips below its value at t = 0)."""
    path = GaussianPath(VE(0.002, 80.0))
    spreads, errors = {}, {}
    for d in (1, 256):
        data = Gaussian(torch.zeros(d), 0.25 * torch.eye(d))
        marginal = data.marginal(path)
        x0 = data.sample(16, generator)
        z = x0 + float(path.sigma(torch.tensor(0.5))) * torch.randn(16, d, generator=generator)
        times, weights = time_posterior(marginal, z)
        mean = weights @ times
        spreads[d] = float((weights @ times**2 - mean**2).sqrt().mean())
        conditional = marginal.denoise(z, 0.5)
        gap = noise_unconditional_target(marginal, z) - conditional
        errors[d] = float(gap.pow(2).sum(1).mean() / conditional.pow(2).sum(1).mean())
    assert spreads[256] < spreads[1] / 8, spreads
    assert errors[256] < min(0.02, errors[1]), errors


def test_a_point_mass_in_time_gives_the_conditional_denoiser(generator):
    marginal = _mixture().marginal(GaussianPath(CondOT()))
    z = torch.randn(5, 2, generator=generator)
    got = noise_unconditional_target(marginal, z, interval=(0.3, 0.3 + 1e-9), panels=1, order=2)
    assert_close(got, marginal.denoise(z, 0.3), atol=1e-8, name="g* at t = 0.3")


def test_bad_input_is_refused():
    marginal = _mixture().marginal(GaussianPath(CondOT()))
    z = torch.zeros(2, 2)
    with pytest.raises(ValueError, match="target must be one of"):
        noise_unconditional_target(marginal, z, "bogus")
    with pytest.raises(ValueError, match="interval"):
        noise_unconditional_target(marginal, z, interval=(0.6, 0.2))
    with pytest.raises(ValueError, match="interval"):
        noise_unconditional_target(marginal, z, interval=(0.0, 1.5))
    with pytest.raises(ValueError, match="panels"):
        noise_unconditional_target(marginal, z, panels=0)
    with pytest.raises(ValueError, match="time_density"):
        noise_unconditional_target(marginal, z, time_density=lambda t: -t)
    with pytest.raises(TypeError, match="marginal"):
        noise_unconditional_target(GaussianPath(CondOT()), z)
    with pytest.raises(ValueError, match=r"shape \(B, 2\)"):
        time_posterior(marginal, torch.zeros(2, 3))
