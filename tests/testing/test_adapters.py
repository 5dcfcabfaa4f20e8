"""Each adapter against the real package: the exact oracle fed in the package's conventions.

The packages are the `conformance` extra (installed by `make dev` and in CI); a missing one is
a failure there, so these tests do not skip.
"""

import pytest
import torch

from genmath.testing import (
    check_distribution,
    check_likelihood,
    check_sampler,
    check_stochastic_sampler,
    diffusers_sampler,
    flow_matching_likelihood,
    flow_matching_sampler,
    gaussian_2d,
    k_diffusion_sampler,
    load_k_diffusion_sampling,
    torchdiffeq_sampler,
)

STEPS = (10, 20, 40)


@pytest.fixture(scope="module")
def oracle():
    return gaussian_2d()


# ------------------------------------------------------------------ diffusers


def test_diffusers_ddim_is_first_order_and_heun_second(oracle):
    from diffusers import DDIMScheduler, HeunDiscreteScheduler

    ddim = diffusers_sampler(DDIMScheduler(clip_sample=False, timestep_spacing="trailing"))
    report = check_sampler(ddim, oracle, steps=STEPS, n=64, expected_order=1)
    assert report.passed, report
    assert report.rows[0]["t_end"] == 0.0  # set_alpha_to_one: the last step lands on the data
    assert not check_sampler(ddim, oracle, steps=STEPS, n=64, expected_order=2).passed
    heun = diffusers_sampler(HeunDiscreteScheduler())
    report = check_sampler(heun, oracle, steps=STEPS, n=64, expected_order=2)
    assert report.passed, report
    assert report.rows[0]["nfe"] == 2 * STEPS[0] - 1  # its last step is an Euler step


def test_diffusers_prediction_types_all_integrate_the_same_flow(oracle):
    from diffusers import DPMSolverMultistepScheduler

    errors = {}
    for prediction_type in ("epsilon", "sample", "v_prediction"):
        scheduler = DPMSolverMultistepScheduler(prediction_type=prediction_type)
        report = check_sampler(diffusers_sampler(scheduler), oracle, steps=(20,), n=64)
        errors[prediction_type] = report.rows[0]["rms_error"]
    # the parameterization is the adapter's job: each declared type gets the same exact model,
    # so the three runs agree to round-off (a wrong conversion would miss by O(1))
    assert max(errors.values()) < 5e-2, errors
    assert max(errors.values()) - min(errors.values()) < 1e-6, errors


def test_diffusers_flow_matching_scheduler_and_final_sigmas(oracle):
    from diffusers import EulerDiscreteScheduler, FlowMatchEulerDiscreteScheduler

    report = check_sampler(diffusers_sampler(FlowMatchEulerDiscreteScheduler()), oracle, steps=STEPS, n=64, expected_order=1)
    assert report.passed and report.rows[0]["t_start"] == 1.0, report
    # final_sigmas_type="sigma_min" stops at the last training noise level, not at the data
    stops = diffusers_sampler(EulerDiscreteScheduler(final_sigmas_type="sigma_min"))
    report = check_sampler(stops, oracle, steps=(10,), n=32)
    assert report.rows[0]["t_end"] > 0.0


def test_diffusers_euler_ancestral_samples_the_data_law(oracle):
    from diffusers import EulerAncestralDiscreteScheduler

    sampler = diffusers_sampler(EulerAncestralDiscreteScheduler())
    assert sampler.stochastic
    # unbiased at 400 steps; at 100 its variance is still about 14 % low (rejected)
    report = check_stochastic_sampler(sampler, oracle, steps=(100, 400), n=4000, precision=0.2)
    assert report.passed and not report.rows[0]["conforms"], report


# ------------------------------------------------------------------ k-diffusion


def test_k_diffusion_loads_without_torchvision_and_its_samplers_conform(oracle):
    import sys

    sampling = load_k_diffusion_sampling()
    assert "torchvision" not in sys.modules and "k_diffusion" not in sys.modules
    assert sampling.sample_heun.__module__.endswith("sampling")
    report = check_sampler(k_diffusion_sampler("heun"), oracle, steps=STEPS, n=64, expected_order=2)
    assert report.passed, report
    report = check_sampler(k_diffusion_sampler(sampling.sample_euler), oracle, steps=STEPS, n=64, expected_order=1)
    assert report.passed, report
    with pytest.raises(ValueError, match="no sampler 'bogus'"):
        k_diffusion_sampler("bogus")


def test_a_duplicated_noise_level_is_reported_as_a_wasted_evaluation(oracle):
    # the kind of grid diffusers PR #6477 fixed: a Karras grid whose last level before 0 appears
    # twice. k-diffusion's Euler then takes a zero-length step, evaluating the denoiser again on
    # exactly the same input; the check reports the wasted evaluation, and none on the plain grid
    sampling = load_k_diffusion_sampling()

    def karras(steps):
        return sampling.get_sigmas_karras(steps, 0.002, 80.0, rho=7.0)

    def duplicated(steps):
        sigmas = karras(steps - 1)
        return torch.cat([sigmas[:-1], sigmas[-2:-1], sigmas[-1:]])

    plain = check_sampler(k_diffusion_sampler("euler", sigmas=karras), oracle, steps=(10, 20), n=16)
    assert not any("evaluated" in note for note in plain.notes), plain
    wasted = check_sampler(k_diffusion_sampler("euler", sigmas=duplicated), oracle, steps=(10, 20), n=16)
    notes = [note for note in wasted.notes if "evaluated" in note]
    assert len(notes) == 2 and all("1 time(s) on exactly the inputs" in note for note in notes), wasted
    assert [row["nfe"] for row in wasted.rows] == [row["nfe"] for row in plain.rows]


def test_k_diffusion_ancestral_draws_from_the_checks_generator(oracle):
    sampler = k_diffusion_sampler("euler_ancestral")
    assert sampler.stochastic
    report = check_stochastic_sampler(sampler, oracle, steps=(400,), n=4000, precision=0.2)
    assert report.passed, report
    # reproducible: its noise comes from the generator it is given
    x = oracle.sample(100, 0.98, generator=torch.Generator().manual_seed(0))
    runs = [sampler.run(oracle, x, 10, torch.Generator().manual_seed(1))[0] for _ in range(2)]
    assert torch.equal(*runs)


# ------------------------------------------------------------------ flow_matching


def test_flow_matching_ode_solver_in_lipman_time(oracle):
    report = check_sampler(flow_matching_sampler("midpoint"), oracle, steps=STEPS, n=64, expected_order=2)
    assert report.passed, report
    assert report.rows[0]["t_start"] == 1.0 and report.rows[0]["t_end"] == 0.0  # tau = 0 -> 1
    from flow_matching.path.scheduler import CosineScheduler

    cosine = flow_matching_sampler("midpoint", path=CosineScheduler())
    assert check_sampler(cosine, oracle, steps=(40,), n=64, atol=1e-3).passed


def test_flow_matching_compute_likelihood(oracle):
    report = check_likelihood(flow_matching_likelihood(40), oracle, n=8, atol=1e-3)
    assert report.passed, report


# ------------------------------------------------------------------ torchdiffeq and zuko


def test_torchdiffeq_rk4_is_fourth_order(oracle):
    report = check_sampler(torchdiffeq_sampler("rk4"), oracle, steps=(4, 8, 16), n=64, expected_order=4)
    assert report.passed, report


def test_zuko_flows_conform():
    import zuko

    torch.manual_seed(0)
    flow = zuko.flows.NSF(features=2, transforms=2, hidden_features=(16,))
    flow = flow.to(torch.float64)
    report = check_distribution(flow(), n=4000)
    assert report.passed, report
    assert report.rows[0]["check"].startswith("log_prob vs change of variables")


def test_a_missing_package_says_how_to_install_it():
    from genmath.testing._requirements import require

    with pytest.raises(ImportError, match=r"pip install 'genmath\[conformance\]'"):
        require("diffusers_not_installed_here", "diffusers")
    with pytest.raises(ImportError, match="not installed"):
        require("zuko.no_such_module")


def test_levels_of_other_libraries_map_to_the_same_flow(oracle):
    # a VE state x0 + s eps and the oracle's own CondOT state at the same SNR differ by a scale;
    # the exact flow between two levels is the same map in either coordinates
    x = oracle.sample(16, 0.5, generator=torch.Generator().manual_seed(0))  # CondOT at t = 1/2
    ve = oracle.flow_map_between_levels(2 * x, (1.0, 1.0), (1.0, 0.25))
    t_end, scale = oracle.time_of_level(1.0, 0.25)
    assert scale == pytest.approx(1 / oracle.level(t_end)[0])
    torch.testing.assert_close(ve, scale * oracle.flow_map(x, 0.5, t_end), rtol=1e-12, atol=1e-12)
