"""Statistical and exact assertions for testing estimators against exact answers.

genmath's own tests use these, and they are offered to users who test their samplers and
estimators against `genmath.analytic`. A statistical assertion compares a Monte-Carlo mean
with its exact value within ``k`` standard errors estimated from the same samples, with
``k`` chosen from a failure probability (default one in a million, Bonferroni-corrected
over the number of compared quantities) — both sides, so an estimator biased low fails as
surely as one biased high.
"""

from __future__ import annotations

import math

import torch
from scipy.stats import norm

from .core._validate import InputTypeError, check_int, in_unit_interval, non_negative

__all__ = [
    "z_threshold",
    "assert_mean_matches",
    "assert_variance_matches",
    "assert_close",
]

DEFAULT_FAILURE_PROBABILITY = 1e-6


def z_threshold(failure_prob: float = DEFAULT_FAILURE_PROBABILITY, comparisons: int = 1) -> float:
    """``k`` such that a two-sided normal test over ``comparisons`` quantities fails with
    probability at most ``failure_prob`` when every null hypothesis holds (Bonferroni)."""
    in_unit_interval(failure_prob, "failure_prob", open_low=True, open_high=True)
    check_int(comparisons, "comparisons", 1)
    return float(norm.isf(failure_prob / (2 * comparisons)))


def _as_tensor(x, like: torch.Tensor | None = None, name: str = "value") -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x
    if isinstance(x, str) or not isinstance(x, int | float | list | tuple):
        raise InputTypeError(f"{name} must be a tensor or numbers, got {type(x).__name__}")
    dtype = like.dtype if like is not None else torch.float64
    return torch.as_tensor(x, dtype=dtype)


def assert_mean_matches(
    samples: torch.Tensor,
    expected,
    *,
    failure_prob: float = DEFAULT_FAILURE_PROBABILITY,
    name: str = "mean",
) -> None:
    """Assert that the mean over the first dimension of ``samples`` equals ``expected``.

    The standard error of each component is estimated from the same samples; the test is
    two-sided and Bonferroni-corrected over the components. Raises ``AssertionError`` with
    the worst z-score otherwise.
    """
    samples = _as_tensor(samples, name="samples")
    if samples.ndim == 0 or samples.shape[0] < 2:
        raise ValueError(f"need at least 2 samples along dim 0, got shape {tuple(samples.shape)}")
    expected = _as_tensor(expected, samples).to(samples.dtype)
    n = samples.shape[0]
    mean = samples.mean(0)
    se = samples.std(0, unbiased=True) / math.sqrt(n)
    expected = expected.expand_as(mean)
    if not torch.isfinite(mean).all():
        raise AssertionError(f"{name}: non-finite Monte-Carlo mean {mean}")
    k = z_threshold(failure_prob, mean.numel())
    exact = se == 0
    if exact.any() and not torch.equal(mean[exact], expected[exact]):
        raise AssertionError(f"{name}: zero-variance components differ from the expected value")
    z = ((mean - expected).abs() / se.clamp_min(torch.finfo(se.dtype).tiny))[~exact]
    if z.numel() and z.max() > k:
        i = int(z.argmax())
        raise AssertionError(
            f"{name}: Monte-Carlo mean differs from the exact value by {float(z.max()):.2f} "
            f"standard errors (> k = {k:.2f}); component {i}: "
            f"mean {float(mean[~exact].flatten()[i]):.6g}, exact {float(expected[~exact].flatten()[i]):.6g}, "
            f"se {float(se[~exact].flatten()[i]):.3g}, n = {n}"
        )


def assert_variance_matches(
    samples: torch.Tensor,
    expected_variance,
    *,
    failure_prob: float = DEFAULT_FAILURE_PROBABILITY,
    name: str = "variance",
) -> None:
    """Assert that the variance over dim 0 of ``samples`` equals ``expected_variance``.

    Tests the mean of ``(x - mean)^2`` with its own standard error (from the fourth central
    moment), so it is two-sided like `assert_mean_matches`.
    """
    samples = _as_tensor(samples, name="samples")
    if samples.ndim == 0 or samples.shape[0] < 2:
        raise ValueError(f"need at least 2 samples along dim 0, got shape {tuple(samples.shape)}")
    centred_sq = (samples - samples.mean(0)) ** 2 * (samples.shape[0] / (samples.shape[0] - 1))
    assert_mean_matches(centred_sq, expected_variance, failure_prob=failure_prob, name=name)


def assert_close(actual, expected, *, atol: float, rtol: float = 0.0, name: str = "value") -> None:
    """Exact-numeric comparison with an explicit tolerance and a message naming the worst entry."""
    actual = _as_tensor(actual, name="actual")
    expected = _as_tensor(expected, actual, name="expected").to(actual.dtype)
    # a NaN or infinite tolerance would let every comparison pass
    non_negative(atol, "atol")
    non_negative(rtol, "rtol")
    if actual.shape != expected.shape:
        raise AssertionError(f"{name}: shape {tuple(actual.shape)} != expected {tuple(expected.shape)}")
    err = (actual - expected).abs()
    bound = atol + rtol * expected.abs()
    if not torch.isfinite(actual).all() or (err > bound).any():
        i = int((err - bound).flatten().argmax())
        raise AssertionError(
            f"{name}: max abs error {float(err.max()):.3e} exceeds atol={atol:g}, rtol={rtol:g} "
            f"(entry {i}: got {float(actual.flatten()[i]):.10g}, expected {float(expected.flatten()[i]):.10g})"
        )
