"""Testing estimators, samplers, likelihoods, score models and flows against exact answers.

Assertions (`assert_mean_matches`, `assert_means_match`, `assert_variance_matches`,
`assert_close`, `z_threshold`): two-sided statistical tests that refuse to pass when they could
not have failed (underpowered, or heavy-tailed samples), used by genmath's own tests.
"""

from ._assertions import (
    DEFAULT_FAILURE_PROBABILITY,
    DEFAULT_RTOL,
    MAX_VARIANCE_SHARE,
    MIN_TAIL_SAMPLES,
    HeavyTailError,
    InsufficientPowerError,
    MeanComparison,
    StatisticalTestError,
    assert_close,
    assert_mean_matches,
    assert_means_match,
    assert_variance_matches,
    compare_mean,
    compare_means,
    tail_shape,
    z_threshold,
)

__all__ = [
    # assertions
    "DEFAULT_FAILURE_PROBABILITY",
    "DEFAULT_RTOL",
    "MAX_VARIANCE_SHARE",
    "MIN_TAIL_SAMPLES",
    "StatisticalTestError",
    "InsufficientPowerError",
    "HeavyTailError",
    "MeanComparison",
    "z_threshold",
    "compare_mean",
    "compare_means",
    "tail_shape",
    "assert_mean_matches",
    "assert_means_match",
    "assert_variance_matches",
    "assert_close",
]
