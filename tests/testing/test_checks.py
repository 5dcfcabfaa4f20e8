"""Each conformance check passes genmath's own correct code and names the defect of a planted bug."""

import math

import pytest
import torch
from torch.distributions import AffineTransform, Independent, Normal, TransformedDistribution

import genmath
from genmath.core.dynamics import ReverseSDE, sample_sde
from genmath.schedules import VP, CondOT
from genmath.testing import (
    ConformanceError,
    Oracle,
    Report,
    as_sampler,
    check_distribution,
    check_field,
    check_likelihood,
    check_sampler,
    check_stochastic_sampler,
    gaussian_2d,
    genmath_sampler,
    mixture_2d,
)

STEPS = (16, 32, 64)


@pytest.fixture
def oracle():
    return gaussian_2d()  # closed-form flow map: fast and exact


# ------------------------------------------------------------------ the oracle


def test_oracle_levels_map_other_conventions_onto_the_path():
    oracle = mixture_2d(genmath.GaussianPath(VP()))
    t, c = oracle.time_of_level(1.0, 2.0)  # a VE state x0 + 2 eps
    alpha, sigma = oracle.level(t)
    assert sigma / alpha == pytest.approx(2.0, rel=1e-9) and c == pytest.approx(1 / alpha)
    condot = mixture_2d()
    assert condot.time_of_level(1.0, 0.0) == (0.0, 1.0)  # data
    assert condot.time_of_level(0.0, 1.0) == (1.0, 1.0)  # pure noise
    with pytest.raises(ValueError, match="never reaches"):
        oracle.time_of_level(0.0, 1.0)  # VP never reaches alpha = 0
    with pytest.raises(ValueError, match="noise level"):
        oracle.time_of_level(-1.0, 1.0)


def test_mixture_flow_map_by_ode_matches_the_closed_form_on_one_component():
    from genmath.analytic import Gaussian, GaussianMixture

    g = gaussian_2d()
    one = GaussianMixture(torch.ones(1), g.data.mean[None], g.data.cov[None])
    mixture = Oracle(one, g.path)
    assert not mixture._closed_form_flow
    x = g.sample(64, 0.9, generator=torch.Generator().manual_seed(0))
    genmath.testing.assert_close(
        mixture.flow_map(x, 0.9, 0.0), g.flow_map(x, 0.9, 0.0), atol=1e-8, name="ODE flow map"
    )
    assert isinstance(g.data, Gaussian)


def test_oracle_predictions_are_consistent_across_parameterizations(oracle):
    x = oracle.sample(32, 0.4, generator=torch.Generator().manual_seed(1))
    for name in ("eps", "score", "velocity", "v"):
        converted = oracle.path.convert(oracle.predict(x, 0.4, "x0"), x, 0.4, "x0", name)
        genmath.testing.assert_close(oracle.predict(x, 0.4, name), converted, atol=1e-10, name=name)
    with pytest.raises(ValueError, match="parameterization"):
        oracle.model("noise")


# ------------------------------------------------------------------ deterministic samplers


def test_a_second_order_sampler_passes_and_a_disguised_first_order_one_fails(oracle):
    report = check_sampler(genmath_sampler("heun"), oracle, steps=STEPS, n=128, expected_order=2)
    assert report.passed, report
    assert report.summary["order"] == pytest.approx(2, abs=0.3)
    assert isinstance(report, Report) and len(report.rows) == 3 and "rms_error" in report.table()

    def heun(model, x, steps):  # claims Heun, takes Euler steps
        return genmath.sample_ode(
            model, x, steps=2 * steps, method="euler", path=oracle.path, parameterization="x0"
        )

    fake = as_sampler(heun, parameterization="x0", name="fake heun")
    report = check_sampler(fake, oracle, steps=STEPS, n=128, expected_order=2)
    assert not report.passed
    assert "lower order than claimed" in report.failures[0]
    with pytest.raises(ConformanceError, match=r"(?s)fake heun.*order of convergence [01]\.[0-9]+ "):
        check_sampler(fake, oracle, steps=STEPS, n=128, expected_order=2, strict=True)


def test_deterministic_check_catches_randomness_and_bad_output(oracle):
    def noisy(model, x, steps):
        return x + 1e-3 * torch.randn_like(x)

    report = check_sampler(as_sampler(noisy), oracle, steps=(4,), n=16)
    assert any("not deterministic" in f for f in report.failures)
    with pytest.raises(ValueError, match="shape"):
        check_sampler(as_sampler(lambda model, x, steps: x[:, :1]), oracle, steps=(4,), n=16)
    with pytest.raises(TypeError, match="SamplerUnderTest"):
        check_sampler(lambda model, x, steps: x, oracle)
    with pytest.raises(ValueError, match="steps"):
        check_sampler(genmath_sampler("euler"), oracle, steps=(0,))


def test_sampler_check_report_is_json_ready(oracle):
    import json

    report = check_sampler(genmath_sampler("dpm++2m"), oracle, steps=(8, 16), n=64, atol=1e-1)
    data = json.loads(report.to_json())
    assert data["passed"] and data["check"] == "deterministic sampler" and len(data["rows"]) == 2
    assert "PASSED" in str(report)


# ------------------------------------------------------------------ stochastic samplers


def test_a_reverse_sde_passes_and_a_sampler_biased_in_variance_fails(oracle):
    correct = genmath_sampler(noise=1.0, parameterization="eps")
    report = check_stochastic_sampler(correct, oracle, steps=(25, 200), n=4000)
    assert report.passed, report

    def inflated(model, x, steps, generator):  # noise 1.3 g with the drift of noise g
        sde = ReverseSDE(oracle.path, model, "eps", noise=1.0)
        return sample_sde(
            sde.drift,
            lambda t: 1.3 * oracle.path.diffusion(t),
            x,
            steps=steps,
            path=oracle.path,
            generator=generator,
        ).x

    biased = as_sampler(inflated, parameterization="eps", stochastic=True, name="inflated SDE")
    report = check_stochastic_sampler(biased, oracle, steps=(25, 200), n=4000)
    assert not report.passed
    assert any("variance bias" in f for f in report.failures), report.failures
    with pytest.raises(ValueError, match="not stochastic"):
        check_stochastic_sampler(genmath_sampler("euler"), oracle)


def test_the_stochastic_check_refuses_to_pass_without_power(oracle):
    report = check_stochastic_sampler(genmath_sampler(noise=1.0), oracle, steps=(50,), n=200)
    assert not report.passed and "no power" in report.failures[0]


# ------------------------------------------------------------------ likelihoods


def _ode_likelihood(x, oracle, prior=True):
    prior_log_prob = oracle.prior_log_prob(1.0) if prior else (lambda z: z.new_zeros(z.shape[0]))
    return genmath.ode_log_likelihood(
        oracle.model("velocity"), x, prior_log_prob, rtol=1e-9, atol=1e-9, create_graph=False
    )


def test_a_likelihood_passes_and_one_missing_its_prior_term_fails(oracle):
    report = check_likelihood(_ode_likelihood, oracle, n=16, atol=1e-5)
    assert report.passed, report

    def no_prior(x, oracle):
        return _ode_likelihood(x, oracle, prior=False)

    report = check_likelihood(no_prior, oracle, n=16, atol=1e-5)
    assert not report.passed
    assert report.failures[-1] == "likely defect: the prior term log p(z) is missing"

    def wrong_sign(x, oracle):
        prior = oracle.prior_log_prob(1.0)
        return 2 * _ode_likelihood(x, oracle, prior=False) * 0 + (
            2 * prior(oracle.flow_map(x, 0.0, 1.0)) - _ode_likelihood(x, oracle)
        )

    report = check_likelihood(wrong_sign, oracle, n=16, atol=1e-5)
    assert "the log-determinant (divergence integral) has the wrong sign" in report.failures[-1]


def test_an_unbiased_stochastic_likelihood_passes_the_bias_test(oracle):
    generator = torch.Generator().manual_seed(3)

    def hutchinson(x, oracle):
        return genmath.ode_log_likelihood(
            oracle.model("velocity"), x, oracle.prior_log_prob(1.0), divergence="hutchinson",
            method="rk4", options={"step_size": 0.05}, generator=generator, create_graph=False,
        )

    report = check_likelihood(hutchinson, oracle, n=8, stochastic=True, repeats=1500, precision=0.1)
    assert report.passed, report

    def biased(x, oracle):
        return hutchinson(x, oracle) + 0.25

    report = check_likelihood(biased, oracle, n=8, stochastic=True, repeats=1500, precision=0.1)
    assert not report.passed and "standard errors" in report.failures[0]


# ------------------------------------------------------------------ fields


def test_field_check_passes_the_exact_field_and_names_a_swapped_parameterization(oracle):
    assert check_field(oracle.model("score"), oracle, parameterization="score").passed
    report = check_field(oracle.model("eps"), oracle, parameterization="x0")
    assert not report.passed
    assert "returns the 'eps' prediction instead of 'x0'" in report.failures[0]

    def negated(x, t):
        return -oracle.predict(x, t, "velocity")

    report = check_field(negated, oracle, parameterization="velocity", times=[0.3])
    assert "wrong sign" in report.failures[0]


def test_field_check_names_non_finite_output_at_the_ends_of_time(oracle):
    # x0 recovered from eps as (x - sigma eps) / alpha, with alpha rounded to 0 near the noise
    # end (the NaN-at-the-ends kind of bug): exact inside, inf/NaN at the end the check includes
    def x0_from_eps(x, t):
        alpha, sigma = oracle.level(float(t))
        alpha = 0.0 if float(t) > 0.99 else alpha
        return (x - sigma * oracle.predict(x, t, "eps")) / torch.tensor(alpha, dtype=x.dtype)

    lo, hi = oracle.safe_interval
    assert check_field(x0_from_eps, oracle, parameterization="x0", times=[lo, 0.5]).passed
    report = check_field(x0_from_eps, oracle, parameterization="x0", times=[lo, 0.5, hi], n=64)
    assert not report.passed and len(report.failures) == 1, report
    assert report.failures[0] == f"non-finite output (NaN or inf) at t = {hi:.4g} for 64 of 64 points"
    assert math.isnan(report.summary["max_relative_error"])


# ------------------------------------------------------------------ distributions and flows


class _WrongSignAffine(AffineTransform):
    def log_abs_det_jacobian(self, x, y):
        return -super().log_abs_det_jacobian(x, y)


def _transformed(transform_class):
    base = Independent(Normal(torch.zeros(2), torch.ones(2)), 1)
    transform = transform_class(torch.tensor([0.5, -1.0]), torch.tensor([2.0, 0.7]), event_dim=1)
    return TransformedDistribution(base, [transform])


def test_a_flow_passes_and_one_whose_log_det_has_the_wrong_sign_fails():
    report = check_distribution(_transformed(AffineTransform), n=4000)
    assert report.passed, report
    report = check_distribution(_transformed(_WrongSignAffine), n=4000)
    assert not report.passed
    assert "log|det J| enters with the wrong sign" in report.failures[0]
    assert any("integrates to" in f for f in report.failures)  # normalisation sees it too


def test_genmath_flows_and_plain_distributions_pass():
    W = torch.tensor([[1.5, -0.6], [0.4, 0.7]])
    flow = genmath.Flow(genmath.Affine.from_matrix(W, torch.tensor([0.5, -1.0])), Normal(torch.zeros(2), torch.ones(2)))
    assert check_distribution(flow, n=4000).passed
    gaussian = torch.distributions.MultivariateNormal(torch.zeros(3), torch.eye(3) * 0.5)
    report = check_distribution(gaussian, n=4000)
    assert report.passed and "not a flow" in report.notes[0] and "importance" in report.notes[1]


def test_a_distribution_whose_samples_disagree_with_its_density_fails():
    class Shifted(torch.distributions.Normal):
        def sample(self, sample_shape=()):
            return super().sample(sample_shape) + 0.3

    report = check_distribution(Independent(Shifted(torch.zeros(1), torch.ones(1)), 1), n=4000)
    assert not report.passed and "samples and log_prob disagree" in report.failures[0]
    assert math.isclose(report.rows[0]["value"], 1.0, abs_tol=1e-3)  # its density is normalised


def test_checks_reject_bad_arguments(oracle):
    with pytest.raises(TypeError, match="Oracle"):
        check_sampler(genmath_sampler("euler"), oracle=object())
    with pytest.raises(ValueError, match="parameterization"):
        check_field(oracle.model("x0"), oracle, parameterization="noise")
    with pytest.raises(ValueError, match="shape"):
        check_likelihood(lambda x, o: x, oracle, n=4)
    with pytest.raises(TypeError, match="exact data"):
        Oracle(object(), genmath.GaussianPath(CondOT()))
