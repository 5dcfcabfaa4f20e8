"""genmath.testing refuses bad input by name (issue 18): one test per defect the contract sweep
found in the testing helpers and adapters, each the smallest call that showed it.

Before the fixes each of these calls either returned (a check whose tolerance was NaN could
never fail; an adapter built from a string failed only later, deep inside the third-party
package) or raised a raw Python error that did not name the argument.
"""

import math

import pytest
import torch

import genmath
from genmath import testing


@pytest.fixture(scope="module")
def oracle():
    return testing.gaussian_2d()


def _euler():
    return testing.genmath_sampler("euler", parameterization="velocity")


def _raises(match, fn, *args, **kwargs):
    with pytest.raises((ValueError, TypeError), match=match):
        fn(*args, **kwargs)


# -- checks whose tolerance could not fail ----------------------------------------------------


@pytest.mark.parametrize(
    "argument, value",
    [
        ("expected_order", math.nan),  # `order < nan - tol` is never true: the check always passed
        ("order_tolerance", math.nan),
        ("order_tolerance", -1.0),
        ("atol", math.inf),
        ("atol", "one"),
    ],
)
def test_check_sampler_refuses_a_tolerance_that_cannot_fail(oracle, argument, value):
    kwargs = dict(steps=(2, 4), n=4, expected_order=1.0, atol=10.0)
    kwargs[argument] = value
    _raises(argument, testing.check_sampler, _euler(), oracle, **kwargs)


def test_a_nan_order_would_have_passed_a_first_order_sampler_as_second_order(oracle):
    # the defect itself: with expected_order=2 an Euler sampler fails; with nan it passed
    report = testing.check_sampler(_euler(), oracle, steps=(4, 8), n=16, expected_order=2.0)
    assert not report.passed
    _raises("expected_order", testing.check_sampler, _euler(), oracle, steps=(4, 8), n=16,
            expected_order=math.nan)


@pytest.mark.parametrize(
    "argument, value",
    [("atol", math.nan), ("repeats", 1), ("precision", 0.0), ("failure_prob", 1.0),
     ("t_prior", 1.5), ("t_data", "half")],
)
def test_check_likelihood_validates_every_argument_up_front(oracle, argument, value):
    # repeats and precision are used only when stochastic=True: they were never looked at
    kwargs = {argument: value}
    _raises(argument, testing.check_likelihood, lambda x, o: o.log_prob(x), oracle, n=4, **kwargs)


def test_check_likelihood_names_an_estimator_that_is_not_callable(oracle):
    _raises("estimator", testing.check_likelihood, 3, oracle, n=4)


@pytest.mark.parametrize(
    "argument, value, match",
    [
        ("n", 1, "n"),  # one draw has no sample variance: the error named the moments, not n
        ("log_density_precision", -1.0, "log_density_precision"),  # named 'precision'
        ("failure_prob", 1.5, "failure_prob"),  # was divided by len(steps) and passed on
        ("steps", 4, "steps"),  # 'int' object is not iterable
    ],
)
def test_check_stochastic_sampler_names_its_arguments(oracle, argument, value, match):
    sampler = testing.genmath_sampler("euler", noise=1.0)
    kwargs = dict(steps=(2,), n=8, precision=3.0, log_density_precision=3.0)
    kwargs[argument] = value
    _raises(match, testing.check_stochastic_sampler, sampler, oracle, **kwargs)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(times="half"), "times"),  # iterated the string: could not convert 'h'
        (dict(times=()), "times"),  # max() arg is an empty sequence
        (dict(times=(0.5, 1.5)), "times"),  # named 't'
        (dict(rtol=math.nan), "rtol"),
    ],
)
def test_check_field_validates_times_and_rtol(oracle, kwargs, match):
    _raises(match, testing.check_field, oracle.model("x0"), oracle, n=4, **kwargs)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(distribution="bogus"), "distribution"),  # AttributeError: event_shape
        (dict(n=-3), "n"),  # integer multiplication overflow
        (dict(jacobian_points=0), "jacobian_points"),  # stack expects a non-empty TensorList
        (dict(atol=math.nan), "atol"),
        (dict(normalisation_atol=0.0), "normalisation_atol"),
        (dict(generator=42), "generator"),
    ],
)
def test_check_distribution_validates_its_arguments(kwargs, match):
    normal = torch.distributions.MultivariateNormal(torch.zeros(2), torch.eye(2))
    kwargs = {"distribution": normal, "n": 64, **kwargs}
    _raises(match, testing.check_distribution, **kwargs)


# -- the oracle ---------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["level", "mean", "cov"])
@pytest.mark.parametrize("t", ["half", torch.full((3, 2), 0.5), -0.5])
def test_oracle_times_are_validated_by_name(oracle, method, t):
    _raises(r"\bt\b", getattr(oracle, method), t)


def test_oracle_rejects_infinite_or_non_numeric_tolerances(oracle):
    _raises("rtol", testing.Oracle, oracle.data, oracle.path, rtol=math.inf)
    _raises("atol", testing.Oracle, oracle.data, oracle.path, atol="one")


def test_oracle_flow_map_names_its_times_and_levels(oracle):
    x = oracle.sample(3)
    _raises("t_from", oracle.flow_map, x, "half", 0.2)
    _raises("t_to", testing.mixture_2d().flow_map, x, 0.5, 1.5)  # named 't' before
    _raises("level_from", oracle.flow_map_between_levels, x, "bogus", (1.0, 0.5))
    _raises("level_to", oracle.flow_map_between_levels, x, (1.0, 0.5), (1.0, -0.5))


def test_mixture_flow_map_refuses_a_nan_start_by_name():
    # the adaptive solver saw a NaN step size and said 't must be finite'
    x = torch.tensor([[0.1, float("nan")]], dtype=torch.float64)
    _raises(r"\bx\b", testing.mixture_2d().flow_map, x, 0.7, 0.3)


def test_oracle_prior_log_prob_validates_t_when_built_not_when_called(oracle):
    _raises(r"\bt\b", oracle.prior_log_prob, 1.5)


def test_oracle_checks_the_event_size_of_states(oracle):
    _raises(r"\bx\b", oracle.log_prob, torch.zeros(4, 3, dtype=torch.float64))
    _raises(r"\bx\b", oracle.posterior_at_level, [[0.0, 0.0]], 1.0, 0.5)


@pytest.mark.parametrize("preset", [testing.gaussian_2d, testing.mixture_2d])
def test_presets_refuse_an_integer_dtype_by_name(preset):
    # int64 data made a zero covariance ('cov must be positive definite')
    _raises("dtype", preset, dtype=torch.int64)
    _raises("dtype", preset, dtype="float64")


# -- assertions ---------------------------------------------------------------------------------


@pytest.mark.parametrize("argument", ["precision", "rtol"])
def test_compare_mean_names_a_non_numeric_tolerance(argument):
    samples = torch.randn(64, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    # the message used to name 'value'
    _raises(argument, testing.compare_mean, samples, 0.0, **{argument: "one"})


@pytest.mark.parametrize("value", [math.nan, math.inf, "one"])
def test_max_tail_shape_must_be_finite_or_none(value):
    # nan or inf silently switched the heavy-tail diagnostic off
    samples = torch.randn(64, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    _raises("max_tail_shape", testing.compare_mean, samples, 0.0, precision=2.0, max_tail_shape=value)


def test_compare_means_names_the_reference():
    samples = torch.zeros(4, 2, dtype=torch.float64)
    _raises("reference", testing.compare_means, samples, "values", precision=1.0)


def test_tail_shape_and_z_threshold_name_their_arguments():
    _raises("samples", testing.tail_shape, "values")
    _raises("failure_prob", testing.z_threshold, "small")


# -- reports, samplers, adapters ------------------------------------------------------------------


@pytest.mark.parametrize(
    "field, value",
    [("columns", "t"), ("rows", [1.0]), ("failures", "failed"), ("summary", [1]), ("check", 3)],
)
def test_a_malformed_report_is_refused_when_built(field, value):
    kwargs = dict(check="c", subject="s", columns=["t"], rows=[{"t": 0.5}])
    kwargs[field] = value
    _raises(field, testing.Report, **kwargs)


def test_sampler_wrappers_validate_when_built():
    _raises("fn", testing.CountingModel, 3)
    _raises("fn", testing.as_sampler, 3)  # said 'the sampler must be callable'
    _raises("parameterization", testing.as_sampler, lambda m, x, s: x, parameterization="bogus")
    _raises("t_start", testing.as_sampler, lambda m, x, s: x, t_start=1.5)
    _raises("method", testing.genmath_sampler, "bogus")
    _raises("noise", testing.genmath_sampler, noise=-1.0)
    _raises("grid", testing.genmath_sampler, grid=torch.tensor([1.5, 0.0]))


def test_adapters_validate_when_built():
    from diffusers import EulerDiscreteScheduler

    _raises("scheduler", testing.diffusers_sampler, "bogus")
    _raises("step_kwargs", testing.diffusers_sampler, EulerDiscreteScheduler(), step_kwargs="eta")
    _raises("sigma_min", testing.k_diffusion_sampler, "euler", sigma_min=-1.0)
    _raises("sigma_min", testing.k_diffusion_sampler, "euler", sigma_min=100.0)  # above max
    _raises("sigmas", testing.k_diffusion_sampler, "euler", sigmas=torch.tensor([1.0, -0.5]))
    _raises("method", testing.flow_matching_sampler, "bogus")
    _raises("path", testing.flow_matching_sampler, path="bogus")
    _raises("solver", testing.flow_matching_sampler, solver="bogus")
    _raises("steps", testing.flow_matching_likelihood, 0)  # ZeroDivisionError when called
    _raises("odeint", testing.torchdiffeq_sampler, odeint="bogus")
    _raises("odeint_kwargs", testing.torchdiffeq_sampler, odeint_kwargs=[1, 2])


# -- the flow-map adapters ------------------------------------------------------------------------


def test_flow_map_adapters_refuse_what_is_not_callable():
    _raises("flow", genmath.average_velocity_from_map, 3)
    _raises("velocity", genmath.average_velocity_from_map, lambda x, s, t: x, velocity=3)
    _raises("average_velocity", genmath.map_from_average_velocity, "u")
    _raises("flow", genmath.consistency_function_from_map, None)


def test_the_consistency_function_names_its_own_time():
    f = genmath.consistency_function_from_map(lambda x, s, t: x, 0.0)
    x = torch.zeros(3, 2, dtype=torch.float64)
    # said 's must be finite': the closure's time is called t
    _raises(r"\bt must be finite", f, x, math.nan)


def test_a_report_accepts_tuples_and_keeps_the_callers_lists():
    failures = []
    report = testing.Report("c", "s", ("t",), ({"t": 0.5},), failures)
    assert report.columns == ["t"] and report.rows == [{"t": 0.5}] and report.passed
    assert report.failures is failures  # a check may add to its list after building the report
    assert "0.5" in report.table()


def test_flags_must_be_bools(oracle):
    # strict="no" is truthy: it switched strict mode on and raised ConformanceError
    sampler = testing.genmath_sampler("euler", noise=1.0)
    _raises("strict", testing.check_stochastic_sampler, sampler, oracle, steps=(2,), n=8,
            strict="no")
    _raises("stochastic", testing.check_likelihood, lambda x, o: o.log_prob(x), oracle, n=4,
            stochastic="yes")
    _raises("stochastic", testing.as_sampler, lambda m, x, s: x, stochastic=1)
    _raises("exact_divergence", testing.flow_matching_likelihood, 4, exact_divergence="no")
    _raises("stochastic", testing.k_diffusion_sampler, "euler", stochastic="no")
