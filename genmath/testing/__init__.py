"""Testing estimators, samplers, likelihoods, score models and flows against exact answers.

Two layers, both public:

* **assertions** (`assert_mean_matches`, `assert_means_match`, `assert_variance_matches`,
  `assert_close`, `z_threshold`): two-sided statistical tests that refuse to pass when they
  could not have failed (underpowered, or heavy-tailed samples), used by genmath's own tests;
* **conformance checks** (see the "Test your own code" page): run someone's code against the
  exact Gaussian / Gaussian-mixture oracles of `genmath.analytic` and return a report.
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
from ._checks import check_field, check_likelihood, check_sampler, check_stochastic_sampler
from ._diffusers import diffusers_sampler
from ._distributions import check_distribution, flow_parts
from ._ecosystems import (
    flow_matching_likelihood,
    flow_matching_sampler,
    k_diffusion_sampler,
    load_k_diffusion_sampling,
    torchdiffeq_sampler,
)
from ._oracle import Oracle, gaussian_2d, mixture_2d
from ._report import ConformanceError, Report
from ._samplers import CountingModel, SamplerUnderTest, as_sampler, genmath_sampler
from ._two_sample import energy_distance

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
    "energy_distance",
    # oracles and reports
    "Oracle",
    "mixture_2d",
    "gaussian_2d",
    "Report",
    "ConformanceError",
    # checks
    "check_sampler",
    "check_stochastic_sampler",
    "check_likelihood",
    "check_field",
    "check_distribution",
    "flow_parts",
    # samplers under test and adapters
    "SamplerUnderTest",
    "CountingModel",
    "as_sampler",
    "genmath_sampler",
    "diffusers_sampler",
    "k_diffusion_sampler",
    "load_k_diffusion_sampling",
    "flow_matching_sampler",
    "flow_matching_likelihood",
    "torchdiffeq_sampler",
]
