"""GaussianPath: every conversion direction against closed-form truths for Gaussian data,
against the exact oracles of genmath.analytic, sampling against the marginal, the forward
SDE's moment equations, the boundary rule and bad input."""

import itertools
import math

import pytest
import torch

from genmath.core.path import PARAMETERIZATIONS, GaussianPath
from genmath.schedules import VE, VP, CondOT, CosineVP
from genmath.testing import assert_close, assert_mean_matches

SCHEDULES = [CondOT(), VP(), CosineVP(), VE(0.01, 50.0)]
IDS = [repr(s) for s in SCHEDULES]
DIRECTIONS = [(s, d) for s, d in itertools.product(PARAMETERIZATIONS, repeat=2) if s != d]

# a full, non-isotropic covariance with a non-zero mean: symmetric cases hide sign errors
MEAN = torch.tensor([1.5, -0.7, 0.3], dtype=torch.float64)
_L = torch.tensor([[1.2, 0.0, 0.0], [0.5, 0.6, 0.0], [-0.4, 0.3, 0.9]], dtype=torch.float64)
COV = _L @ _L.T


def _times(schedule) -> torch.Tensor:
    """Interior times and times near both ends of the safe interval (and on them)."""
    lo, hi = schedule.safe_interval
    return torch.tensor(
        [lo, lo + 1e-4, 0.05, 0.3, 0.5, 0.8, 0.97, hi - 1e-4, hi], dtype=torch.float64
    )


def _gaussian_truths(path, xt, t):
    """x0 = E[x0|xt], eps, score, velocity, v for N(MEAN, COV) data, from the textbook
    Gaussian conditioning formulas (no call to convert or to genmath.analytic)."""
    alpha, sigma = path.alpha(t)[:, None], path.sigma(t)[:, None]
    d_alpha, d_sigma = path.d_alpha(t)[:, None], path.d_sigma(t)[:, None]
    eye = torch.eye(3, dtype=xt.dtype)
    cov_t = alpha[:, :, None] ** 2 * COV + sigma[:, :, None] ** 2 * eye  # (B, 3, 3)
    centred = xt - alpha * MEAN
    solved = torch.linalg.solve(cov_t, centred.unsqueeze(-1)).squeeze(-1)
    score = -solved
    x0 = MEAN + alpha * (solved @ COV)  # E[x0|xt] = mu + alpha Sigma C^{-1} (xt - alpha mu)
    eps = sigma * solved  # E[eps|xt] = sigma C^{-1} (xt - alpha mu)
    return {
        "x0": x0,
        "eps": eps,
        "score": score,
        "velocity": d_alpha * x0 + d_sigma * eps,
        "v": alpha * eps - sigma * x0,
    }


def _points(path, t, generator):
    n = t.shape[0]
    x0 = MEAN + torch.randn(n, 3, generator=generator) @ _L.T
    xt, _ = path.sample(x0, t, generator=generator)
    return xt


def _relative_error(got, expected):
    return float(((got - expected).abs() / (1.0 + expected.abs())).max())


@pytest.mark.parametrize("schedule", SCHEDULES, ids=IDS)
def test_all_directions_against_gaussian_closed_forms(schedule, generator):
    path = GaussianPath(schedule)
    t = _times(schedule)
    xt = _points(path, t, generator)
    truths = _gaussian_truths(path, xt, t)
    for src, dst in DIRECTIONS:
        got = path.convert(truths[src], xt, t, src, dst)
        error = _relative_error(got, truths[dst])
        assert error < 1e-9, f"{schedule!r}: {src} -> {dst} relative error {error:.3e}"


@pytest.mark.parametrize("schedule", SCHEDULES, ids=IDS)
def test_all_directions_against_the_oracles(schedule, generator):
    analytic = pytest.importorskip("genmath.analytic")
    path = GaussianPath(schedule)
    t = _times(schedule)
    weights = torch.tensor([0.5, 0.3, 0.2], dtype=torch.float64)
    means = torch.tensor([[1.0, -1.0, 0.5], [-2.0, 0.5, 0.0], [0.0, 2.0, -1.5]])
    covs = torch.stack([COV, 0.5 * torch.eye(3) + 0.1, torch.diag(torch.tensor([0.3, 1.0, 2.0]))])
    for data in (analytic.Gaussian(MEAN, COV), analytic.GaussianMixture(weights, means, covs)):
        marginal = data.marginal(path)
        xt = _points(path, t, generator)
        x0, eps = marginal.denoise(xt, t), marginal.eps(xt, t)
        alpha, sigma = path.alpha(t)[:, None], path.sigma(t)[:, None]
        truths = {
            "x0": x0,
            "eps": eps,
            "score": marginal.score(xt, t),
            "velocity": marginal.velocity(xt, t),
            "v": alpha * eps - sigma * x0,
        }
        for src, dst in DIRECTIONS:
            got = path.convert(truths[src], xt, t, src, dst)
            error = _relative_error(got, truths[dst])
            assert error < 1e-8, f"{data!r} {schedule!r}: {src} -> {dst} error {error:.3e}"


def test_convert_any_event_shape_and_scalar_time(generator):
    path = GaussianPath(VP())
    x0 = torch.randn(4, 2, 3, 5, generator=generator)
    t = torch.tensor([0.1, 0.4, 0.6, 0.9])
    xt, eps = path.sample(x0, t, generator=generator)
    a = path.alpha(t).reshape(4, 1, 1, 1)
    s = path.sigma(t).reshape(4, 1, 1, 1)
    assert_close(xt, a * x0 + s * eps, atol=1e-14)
    assert_close(path.convert(eps, xt, t, "eps", "x0"), x0, atol=1e-12)
    assert_close(path.convert(x0, xt, 0.5, "x0", "x0"), x0, atol=0)
    v = path.convert(x0[:1], xt[:1], 0.5, "x0", "v")  # scalar t, batch of one
    assert v.shape == (1, 2, 3, 5)


def test_convert_keeps_float32(generator):
    path = GaussianPath(CondOT())
    xt = torch.randn(3, 4, generator=generator).float()
    out = path.convert(xt.clone(), xt, torch.tensor([0.2, 0.5, 0.8]), "eps", "velocity")
    assert out.dtype == torch.float32


def test_boundary_rule():
    path = GaussianPath(CondOT())
    xt = torch.randn(2, 3)
    lo, hi = path.schedule.safe_interval
    with pytest.raises(ValueError, match=r"'x0' to 'score' is singular at t = 0.*safe interval"):
        path.convert(xt, xt, torch.tensor([0.0, 0.5]), "x0", "score")
    with pytest.raises(ValueError, match=r"'eps' to 'x0' is singular at t = 1"):
        path.convert(xt, xt, hi + 1e-4, "eps", "x0")
    # directions that stay finite take all of [0, 1]: x0 = alpha xt - sigma v; x0 = xt - t u
    pred = torch.randn(2, 3)
    assert_close(path.convert(pred, xt, 0.0, "v", "x0"), xt, atol=0)
    assert_close(path.convert(pred, xt, 1.0, "v", "x0"), -pred, atol=0)
    assert_close(path.convert(pred, xt, 1.0, "velocity", "x0"), xt - pred, atol=1e-15)
    # eps -> score divides by sigma only, so CondOT's t = 1 (alpha = 0) is fine
    assert_close(path.convert(pred, xt, 1.0, "eps", "score"), -pred, atol=0)
    # VE never vanishes: x0 -> score is fine at t = 0 (sigma_0 = sigma_min = 0.01)
    ve = GaussianPath(VE(0.01, 50.0))
    assert_close(ve.convert(pred, xt, 0.0, "x0", "score"), -(xt - pred) / 0.01**2, atol=1e-9)
    # VP's velocity is infinite at t = 0 (d sigma / dt = inf) and is refused there
    with pytest.raises(ValueError, match="singular at t = 0"):
        GaussianPath(VP()).convert(pred, xt, 0.0, "v", "velocity")


def test_unknown_names_and_shape_mismatches_raise():
    path = GaussianPath(CondOT())
    xt = torch.randn(4, 3)
    with pytest.raises(ValueError, match=r"src must be one of .*'velocity'.*got 'noise'"):
        path.convert(xt, xt, 0.5, "noise", "x0")
    with pytest.raises(ValueError, match="dst must be one of .* got 'x_0'"):
        path.convert(xt, xt, 0.5, "x0", "x_0")
    with pytest.raises(ValueError, match=r"pred must have the shape of xt, \(4, 3\); got \(4, 2\)"):
        path.convert(xt[:, :2], xt, 0.5, "x0", "eps")
    with pytest.raises(ValueError, match=r"per-sample t needs shape \(B,\)"):
        path.convert(xt, xt, torch.full((5,), 0.5), "x0", "eps")
    with pytest.raises(ValueError, match=r"t must lie in \[0, 1\]"):
        path.convert(xt, xt, 1.2, "x0", "v")
    with pytest.raises(ValueError, match=r"t must lie in \[0, 1\]"):
        path.sample(xt, -0.1)
    with pytest.raises(ValueError, match="eps must have the shape of x0"):
        path.conditional_velocity(xt, xt[:2], 0.5)
    with pytest.raises(ValueError, match="schedule must be a genmath.schedules.Schedule"):
        GaussianPath("cond-ot")


@pytest.mark.parametrize("schedule", [CondOT(), VP(), VE(0.5, 3.0)], ids=repr)
def test_sample_matches_the_marginal(schedule, generator):
    """xt ~ N(alpha mu, alpha^2 Sigma + sigma^2 I): mean and full covariance, two-sided."""
    path = GaussianPath(schedule)
    n, t = 40_000, 0.35
    x0 = MEAN + torch.randn(n, 3, generator=generator) @ _L.T
    xt, eps = path.sample(x0, t, generator=generator)
    alpha, sigma = float(path.alpha(t)), float(path.sigma(t))
    mean_t = alpha * MEAN
    cov_t = alpha**2 * COV + sigma**2 * torch.eye(3)
    assert_mean_matches(xt, mean_t, name="mean of x_t")
    centred = xt - mean_t  # exact mean, so the outer products are unbiased for cov_t
    outer = (centred[:, :, None] * centred[:, None, :]).reshape(n, 9)
    assert_mean_matches(outer, cov_t.reshape(9), name="covariance of x_t")
    assert_close(eps, (xt - alpha * x0) / sigma, atol=1e-10)


def test_sample_is_reproducible_with_a_generator():
    path = GaussianPath(CosineVP())
    x0 = torch.randn(5, 2)
    a = path.sample(x0, 0.5, generator=torch.Generator().manual_seed(7))
    b = path.sample(x0, 0.5, generator=torch.Generator().manual_seed(7))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


@pytest.mark.parametrize("schedule", SCHEDULES, ids=IDS)
def test_conditional_velocity_is_the_time_derivative(schedule, generator):
    path = GaussianPath(schedule)
    x0, eps = torch.randn(6, 3, generator=generator), torch.randn(6, 3, generator=generator)
    t = torch.tensor([0.02, 0.1, 0.3, 0.5, 0.7, 0.95], requires_grad=True)

    def xt_of(times):
        return path.alpha(times)[:, None] * x0 + path.sigma(times)[:, None] * eps

    # each row depends only on its own t, so d(sum over rows)/dt_i is row i's derivative
    expected = torch.stack(
        [torch.autograd.grad(xt_of(t)[:, j].sum(), t)[0] for j in range(3)], dim=1
    )
    assert_close(path.conditional_velocity(x0, eps, t.detach()), expected, atol=1e-12, rtol=1e-10)


@pytest.mark.parametrize("schedule", SCHEDULES, ids=IDS)
def test_forward_sde_reproduces_the_path_moments(schedule):
    """m' = f m for m = alpha x0, and var' = 2 f var + g^2 for var = alpha^2 c + sigma^2 (any
    data variance c), with derivatives by autograd of the schedule."""
    path = GaussianPath(schedule)
    t = torch.tensor([0.01, 0.1, 0.3, 0.5, 0.8, 0.97], requires_grad=True)
    f = path.drift_coefficient(t.detach())
    g2 = path.diffusion(t.detach()) ** 2
    (d_alpha,) = torch.autograd.grad(path.alpha(t).sum(), t)
    assert_close(d_alpha, f * path.alpha(t.detach()), atol=1e-12, rtol=1e-10)
    for c in (0.0, 2.5):
        variance = path.alpha(t) ** 2 * c + path.sigma(t) ** 2
        (d_var,) = torch.autograd.grad(variance.sum(), t)
        assert_close(d_var, 2 * f * variance.detach() + g2, atol=1e-11, rtol=1e-10)
    x = torch.randn(6, 2, 2)
    assert_close(path.drift(x, t.detach()), f[:, None, None] * x, atol=0)


def test_forward_sde_textbook_coefficients():
    t = torch.tensor([0.0, 0.2, 0.6, 0.9])
    vp = GaussianPath(VP(0.1, 20.0))
    beta = 0.1 + t * 19.9
    assert_close(vp.drift_coefficient(t), -beta / 2, atol=1e-13)
    assert_close(vp.diffusion(t), beta.sqrt(), atol=1e-13)
    ot = GaussianPath(CondOT())
    assert_close(ot.drift_coefficient(t), -1 / (1 - t), atol=1e-13)
    assert_close(ot.diffusion(t), (2 * t / (1 - t)).sqrt(), atol=1e-13)
    assert ot.diffusion(1.0) == math.inf  # a pole where alpha = 0, not a silent 0
    ve = GaussianPath(VE(0.5, 3.0))
    sigma = 0.5 * 6.0**t
    assert_close(ve.drift_coefficient(t), torch.zeros(4), atol=0)
    assert_close(ve.diffusion(t), sigma * math.sqrt(2 * math.log(6.0)), atol=1e-13)


def test_sample_with_given_noise_is_the_path_at_that_pair():
    path = GaussianPath(VP())
    x0 = torch.randn(5, 2, 3)
    eps = torch.randn(5, 2, 3)
    t = torch.tensor([0.01, 0.2, 0.5, 0.8, 1.0])
    xt, returned = path.sample(x0, t, eps=eps)
    assert returned is eps
    a, s = path.alpha(t).reshape(5, 1, 1), path.sigma(t).reshape(5, 1, 1)
    torch.testing.assert_close(xt, a * x0 + s * eps, atol=1e-15, rtol=0)
    with pytest.raises(ValueError, match="eps"):
        path.sample(x0, t, eps=torch.randn(5, 6))
