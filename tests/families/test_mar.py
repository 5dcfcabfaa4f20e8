"""MAR and Diffusion Forcing against the exact linear-Gaussian sequence (float64): moments and
conditionals by independent numpy algebra, the losses' minimal values in closed form, and the
samplers' laws by two-sided moment tests (k standard errors estimated from the samples)."""

import numpy as np
import pytest
import torch

from genmath import GaussianPath
from genmath.families.mar import (
    GaussianSequence,
    diffusion_forcing_loss,
    diffusion_forcing_sample,
    diffusion_forcing_schedule,
    mar_loss,
    mar_mask,
    mar_sample,
)
from genmath.schedules import VP, CondOT
from genmath.testing import assert_mean_matches

torch.set_default_dtype(torch.float64)

A, B, NU, M1, S1 = 0.9, 0.3, 0.5, -0.5, 1.2  # not stationary: the variances change along k
L = 4


def _seq(dim=1):
    return GaussianSequence(L, dim, A, B, NU, M1, S1)


def _numpy_moments():
    """The AR(1) law by its loading matrix, built independently of the code."""
    loading = np.zeros((L, L))
    mean = np.zeros(L)
    loading[0, 0], mean[0] = S1, M1
    for k in range(1, L):
        loading[k] = A * loading[k - 1]
        loading[k, k] = NU
        mean[k] = A * mean[k - 1] + B
    return mean, loading @ loading.T


def _numpy_conditional_variance(known):
    mean, cov = _numpy_moments()
    U, K = np.flatnonzero(~known), np.flatnonzero(known)
    schur = cov[np.ix_(U, U)] - cov[np.ix_(U, K)] @ np.linalg.solve(cov[np.ix_(K, K)], cov[np.ix_(K, U)])
    out = np.zeros(L)
    out[U] = np.diag(schur)
    return out


def test_moments_and_conditionals_match_numpy():
    mean, cov = _numpy_moments()
    seq = _seq(2)
    np.testing.assert_allclose(seq.mean().numpy(), mean, rtol=1e-13)
    np.testing.assert_allclose(seq.covariance().numpy(), cov, rtol=1e-13)
    g = torch.Generator().manual_seed(0)
    x = seq.sample(6, g)
    known = torch.rand(6, L, generator=g) < 0.5
    cond_mean, cond_var = seq.conditional(x, known)
    for i in range(6):
        k = known[i].numpy()
        np.testing.assert_allclose(cond_var[i].numpy(), _numpy_conditional_variance(k), atol=1e-12)
        U, K = np.flatnonzero(~k), np.flatnonzero(k)
        xi = x[i].numpy()
        expected = mean[U, None] + cov[np.ix_(U, K)] @ np.linalg.solve(cov[np.ix_(K, K)], xi[K] - mean[K, None])
        np.testing.assert_allclose(cond_mean[i].numpy()[U], expected, atol=1e-12)
        np.testing.assert_allclose(cond_mean[i].numpy()[K], xi[K], atol=0)


def test_the_sequence_sampler_draws_its_law():
    x = _seq().sample(20000, torch.Generator().manual_seed(1))[..., 0]
    mean, cov = _numpy_moments()
    features, expected = _moment_features(x, mean, cov)
    assert_mean_matches(features, expected, precision=0.1)


def _moment_features(x, mean, cov):
    """Per-sample first and second moments (all pairs) and their exact expectations."""
    i, j = np.triu_indices(L)
    second = x[:, i] * x[:, j]
    exact_second = cov[i, j] + mean[i] * mean[j]
    return torch.cat([x, second], 1), torch.tensor(np.concatenate([mean, exact_second]))


PATHS = {"condot": GaussianPath(CondOT()), "vp": GaussianPath(VP())}


@pytest.mark.parametrize("name", sorted(PATHS))
def test_mar_loss_is_minimised_by_the_exact_head_with_its_closed_form_value(name):
    path, seq, dim = PATHS[name], _seq(2), 2
    n = 40000
    known_row = torch.tensor([True, False, True, False])
    known = known_row.expand(n, L).clone()
    level = torch.tensor([0.2, 0.5, 0.7, 0.9])
    t = level.expand(n, L).clone()
    x0 = seq.sample(n, torch.Generator().manual_seed(2))
    # closed form: d alpha^2 v / (alpha^2 v + sigma^2), averaged over the unknown tokens
    v = _numpy_conditional_variance(known_row.numpy())
    alpha, sigma = path.alpha(level).numpy(), path.sigma(level).numpy()
    per_token = dim * alpha**2 * v / (alpha**2 * v + sigma**2)
    minimum = per_token[~known_row.numpy()].mean()
    exact_head = seq.head(path)
    values = mar_loss(seq.context, exact_head, path, x0, torch.Generator().manual_seed(3), known=known, t=t)
    assert_mean_matches(values[:, None], minimum, rtol=0.04)

    # a head off by delta costs delta^2 per coordinate: two-sided on the excess
    def shifted(xt, tt, z):
        return exact_head(xt, tt, z) + 0.3

    worse = mar_loss(seq.context, shifted, path, x0, torch.Generator().manual_seed(3), known=known, t=t)
    assert_mean_matches(worse[:, None], minimum + dim * 0.09, rtol=0.04)

    # zero gradient at the exact head along a direction g(x_t) = x_t, per sample
    theta = torch.zeros(n, requires_grad=True)

    def context(x, k):
        return torch.cat([seq.context(x, k), torch.arange(n, dtype=x.dtype)[:, None, None].expand(n, L, 1)], -1)

    def perturbed(xt, tt, z):
        rows = z[:, -1].long()
        return exact_head(xt, tt, z[:, :-1]) + theta[rows, None] * xt

    loss = mar_loss(context, perturbed, path, x0, torch.Generator().manual_seed(3), known=known, t=t)
    (gradient,) = torch.autograd.grad(loss.sum(), theta)
    assert_mean_matches(gradient[:, None], 0.0, precision=0.05)


def test_mar_mask_leaves_at_least_one_unknown_and_follows_the_cosine_ratio():
    known = mar_mask(20000, 8, torch.Generator().manual_seed(4))
    unknown = (~known).sum(-1)
    assert (unknown >= 1).all()
    # P(unknown = L) = P(cos(pi r/2) > 7/8) = (2/pi) arccos(7/8)
    frequency = (unknown == 8).double()[:, None]
    assert_mean_matches(frequency, 2 / np.pi * np.arccos(7 / 8), precision=0.02)


@pytest.mark.parametrize("name", sorted(PATHS))
def test_diffusion_forcing_loss_minimum_is_the_closed_form(name):
    path, seq = PATHS[name], _seq(1)
    n = 40000
    level = torch.tensor([0.1, 0.4, 0.6, 0.95])
    x0 = seq.sample(n, torch.Generator().manual_seed(5))
    _, cov = _numpy_moments()
    alpha, sigma = np.diag(path.alpha(level).numpy()), np.diag(path.sigma(level).numpy())
    joint = alpha @ cov @ alpha + sigma**2
    minimum = np.trace(np.eye(L) - sigma @ np.linalg.solve(joint, sigma)) / L
    t = level.expand(n, L).clone()
    values = diffusion_forcing_loss(seq.eps(path), path, x0, t, torch.Generator().manual_seed(6))
    assert_mean_matches(values[:, None], minimum, rtol=0.04)

    def shifted(xt, tt):
        return seq.eps(path)(xt, tt) - 0.25

    worse = diffusion_forcing_loss(shifted, path, x0, t, torch.Generator().manual_seed(6))
    assert_mean_matches(worse[:, None], minimum + 0.0625, rtol=0.04)


def test_diffusion_forcing_schedule_rows():
    levels = diffusion_forcing_schedule(3, 2, lag=1)
    expected = torch.tensor([[1, 1, 1], [0.5, 1, 1], [0, 0.5, 1], [0, 0, 0.5], [0, 0, 0]])
    torch.testing.assert_close(levels, expected.double())
    assert diffusion_forcing_schedule(3, 4, lag=0).shape == (5, 3)  # full-sequence diffusion
    auto = diffusion_forcing_schedule(3, 2)  # lag = steps: one token at a time
    assert ((auto > 0) & (auto < 1)).sum(-1).max() == 1


def test_mar_sample_with_the_exact_head_draws_the_sequence_law():
    path, seq = PATHS["condot"], _seq(1)
    mean, cov = _numpy_moments()
    x = mar_sample(seq.context, seq.head(path), path, 8000, L, 1, L, torch.Generator().manual_seed(7))
    features, expected = _moment_features(x[..., 0], mean, cov)
    assert_mean_matches(features, expected, precision=0.2)
    # revealing every token at once draws them independently: the covariances are lost
    together = mar_sample(seq.context, seq.head(path), path, 8000, L, 1, 1, torch.Generator().manual_seed(7))
    features, expected = _moment_features(together[..., 0], mean, cov)
    with pytest.raises(AssertionError):
        assert_mean_matches(features, expected, precision=0.2)


@pytest.mark.parametrize("lag", [0, 1, None])
def test_diffusion_forcing_sample_with_the_exact_denoiser_draws_the_sequence_law(lag):
    path, seq = PATHS["condot"], _seq(1)
    mean, cov = _numpy_moments()
    x = diffusion_forcing_sample(seq.eps(path), path, 8000, L, 1, 6, torch.Generator().manual_seed(8), lag=lag)
    features, expected = _moment_features(x[..., 0], mean, cov)
    assert_mean_matches(features, expected, precision=0.2)
