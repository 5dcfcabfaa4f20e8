"""The statistical assertions: two-sided, powered, and refusing heavy-tailed samples."""

import math

import pytest
import torch

from genmath.core.discrete import MaskPath
from genmath.families.discrete_diffusion import masked_diffusion_nelbo
from genmath.testing import (
    HeavyTailError,
    InsufficientPowerError,
    StatisticalTestError,
    assert_close,
    assert_mean_matches,
    assert_means_match,
    assert_variance_matches,
    compare_mean,
    tail_shape,
    z_threshold,
)


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def test_z_threshold_is_the_bonferroni_normal_quantile():
    from scipy.stats import norm

    assert z_threshold(1e-6) == pytest.approx(norm.isf(0.5e-6))
    assert z_threshold(1e-6, 10) == pytest.approx(norm.isf(0.5e-7))
    for bad in (0.0, 1.0, -1e-3):
        with pytest.raises(ValueError, match="failure_prob"):
            z_threshold(bad)
    with pytest.raises(ValueError, match="comparisons"):
        z_threshold(1e-6, 0)


def test_a_correct_estimator_passes_and_biases_of_either_sign_fail():
    x = 2.0 + torch.randn(20000, 3, generator=_gen())
    result = assert_mean_matches(x, torch.full((3,), 2.0), rtol=0.05)
    assert result.passed and result.powered and float(result.z.max()) < result.k
    for shift in (+0.1, -0.1):  # two-sided: biased high and biased low both fail
        with pytest.raises(AssertionError, match="standard errors"):
            assert_mean_matches(x + shift, torch.full((3,), 2.0), rtol=0.05)


def test_an_underpowered_test_is_refused_and_says_how_many_samples_it_needs():
    x = 1.0 + 3.0 * torch.randn(200, 1, generator=_gen(1))
    # k se = 5.3 * 3 / sqrt(200) = 1.1: it cannot resolve 10 % of 1
    with pytest.raises(InsufficientPowerError, match="no power") as info:
        assert_mean_matches(x, torch.ones(1))
    needed = int(str(info.value).split("about ")[1].split(" samples")[0])
    comparison = compare_mean(x, torch.ones(1))
    assert needed == comparison.required_samples()
    # that many samples do resolve it
    more = 1.0 + 3.0 * torch.randn(needed, 1, generator=_gen(2))
    assert_mean_matches(more, torch.ones(1))
    # a refusal is not an AssertionError: pytest.raises(AssertionError) cannot pass vacuously
    assert not issubclass(InsufficientPowerError, AssertionError)
    assert not issubclass(HeavyTailError, AssertionError)


def test_the_requested_precision_sets_the_power_requirement():
    x = torch.randn(2000, 2, generator=_gen(3))
    assert_mean_matches(x, torch.zeros(2), precision=0.15)
    with pytest.raises(InsufficientPowerError):
        assert_mean_matches(x, torch.zeros(2), precision=0.05)
    with pytest.raises(ValueError, match="exact 0 needs"):
        assert_mean_matches(x, torch.zeros(2))  # zero has no scale for a relative default
    with pytest.raises(ValueError, match="precision must be finite"):
        assert_mean_matches(x, torch.zeros(2), precision=math.inf)
    y = torch.randn(4000, 2, generator=_gen(4)) + torch.tensor([10.0, 0.1])
    assert_mean_matches(y, torch.tensor([10.0, 0.1]))  # 10 % of the largest |expected|
    with pytest.raises(InsufficientPowerError, match="component 1"):
        assert_mean_matches(y, torch.tensor([10.0, 0.1]), rtol=0.1)  # per component


def test_the_masked_elbo_weight_bug_no_longer_passes():
    """The bug that motivated the power requirement: the masked-diffusion ELBO weighted by
    -alpha'/alpha instead of -alpha'/(1 - alpha). With t ~ U(0, 1) its draws have an infinite
    mean, and the plain k-standard-error test passed them."""
    path = MaskPath(3, mask_id=3)
    x0 = torch.tensor([[0, 1, 2]]).repeat(4000, 1)

    def uniform_denoiser(xt, t):  # predicts each token with probability 1/3
        return torch.zeros(*xt.shape, 3)

    exact = 3 * math.log(3)  # -ELBO of the uniform denoiser: 3 tokens, log 3 nats each
    t = torch.rand(4000, generator=_gen(5)).clamp_min(1e-12)
    correct = masked_diffusion_nelbo(uniform_denoiser, path, x0, t=t, generator=_gen(6))
    alpha = path.alpha_bar(t)
    buggy = correct * (1 - alpha) / alpha  # exactly the -alpha'/alpha weight
    old_test = compare_mean(buggy[:, None], exact, max_tail_shape=None)
    assert not old_test.rejected  # the k-standard-error test alone passes the bug ...
    assert float(old_test.mean) > 3 * exact  # ... with a mean far above the exact value
    with pytest.raises(StatisticalTestError):  # now refused: heavy tail and no power
        assert_mean_matches(buggy[:, None], exact)
    comparison = compare_mean(buggy[:, None], exact)
    assert comparison.heavy_tailed and not comparison.powered
    with pytest.raises(HeavyTailError, match="heavy-tailed"):
        comparison.raise_if_failed()


def test_tail_shape_separates_finite_and_infinite_variance():
    g = _gen(7)
    gaussian = torch.randn(4000, 3, generator=g)
    pareto_1 = torch.rand(4000, 3, generator=g, dtype=torch.float64) ** -1.0  # tail index 1
    assert (tail_shape(gaussian) < 0.3).all()
    assert (tail_shape(pareto_1) > 0.7).all()
    assert tail_shape(gaussian[:100]) is None  # too few draws to fit a tail
    # a Pareto(1) sample with a valid-looking mean is refused, not passed or failed
    with pytest.raises(HeavyTailError):
        assert_mean_matches(pareto_1[:, :1], pareto_1[:, 0].mean().reshape(1), rtol=10.0)
    # a bounded, lattice-valued sample is not heavy: frequencies of a Bernoulli
    bernoulli = (torch.rand(4000, 1, generator=g) < 0.01).double()
    assert_mean_matches(bernoulli, torch.tensor([0.01]), precision=0.01)


def test_a_light_tail_with_a_noisy_shape_estimate_is_not_refused():
    # a product of three Gaussians: all moments finite, but pre-asymptotically Pareto-like;
    # no single draw dominates its variance, so the standard error stands
    g = _gen(8)
    x = torch.randn(3000, 1, generator=g) * torch.randn(3000, 1, generator=g) * torch.randn(3000, 1, generator=g)
    comparison = compare_mean(x, torch.zeros(1), precision=0.5)
    assert float(comparison.variance_share.max()) < 0.1
    assert not comparison.heavy_tailed and comparison.passed


def test_two_sample_comparison():
    g = _gen(9)
    a = 1.0 + torch.randn(5000, 2, generator=g)
    b = 1.0 + torch.randn(6000, 2, generator=g)
    result = assert_means_match(a, b, precision=0.15)
    assert result.n == 5000
    with pytest.raises(AssertionError, match="standard errors"):
        assert_means_match(a + 0.2, b, precision=0.15)
    with pytest.raises(ValueError, match="event shape"):
        assert_means_match(a, b[:, :1], precision=0.1)


def test_variance_assertion_is_two_sided_and_powered():
    x = 1.5 * torch.randn(40000, 1, generator=_gen(10))
    assert_variance_matches(x, torch.tensor([2.25]), rtol=0.05)
    for factor in (1.1, 0.9):
        with pytest.raises(AssertionError):
            assert_variance_matches(x * factor, torch.tensor([2.25]), rtol=0.05)
    with pytest.raises(InsufficientPowerError):
        assert_variance_matches(x[:1000], torch.tensor([2.25]), rtol=0.05)


def test_exact_components_and_bad_input():
    x = torch.cat([torch.randn(500, 1, generator=_gen(11)), torch.ones(500, 1)], 1)
    assert_mean_matches(x, torch.tensor([0.0, 1.0]), precision=0.5)
    with pytest.raises(AssertionError):
        assert_mean_matches(x, torch.tensor([0.0, 1.5]), precision=0.5)
    with pytest.raises(ValueError, match="at least 2 samples"):
        assert_mean_matches(torch.ones(1, 2), torch.ones(2))
    with pytest.raises(ValueError, match="does not broadcast"):
        assert_mean_matches(torch.randn(10, 2), torch.ones(3))
    with pytest.raises(AssertionError, match="non-finite"):
        assert_mean_matches(torch.tensor([[1.0], [math.nan]]), torch.ones(1))
    assert_close(torch.ones(2), torch.ones(2), atol=0)
    with pytest.raises(AssertionError, match="max abs error"):
        assert_close(torch.ones(2), torch.zeros(2), atol=0.5)


def test_the_report_of_a_comparison():
    result = compare_mean(torch.randn(1000, 2, generator=_gen(12)), torch.zeros(2), precision=0.3)
    data = result.as_dict()
    assert data["passed"] and data["n"] == 1000 and len(data["z"]) == 2
    assert "passed" in str(result) and result.message() == ""
