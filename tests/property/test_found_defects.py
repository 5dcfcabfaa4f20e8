"""One test per defect that issue 18 found, with the expected value from a closed form (or the
error the input contract asks for). The property tests (`test_contract.py`) sweep the same
kinds of input over the whole API; these pin the cases that were measured broken."""

from __future__ import annotations

import math
import warnings

import pytest
import torch
from torch import distributions as D

import genmath
from genmath import score_matching
from genmath.families import consistency, diffusion, flow_matching, residual, tokenizer
from genmath.families.denoisers import TimeEmbedding
from genmath.schedules import VP, CondOT, CosineVP

F32, F64 = torch.float32, torch.float64


# ------------------------------------------------------------------ schedules at the ends


@pytest.mark.parametrize("dtype", [F32, F64])
def test_vp_inverse_log_snr_at_large_log_snr(dtype):
    # t(lam) = 2L / (b0 + sqrt(b0^2 + 2 (b1 - b0) L)), L = log(1 + e^-lam) ~ e^-lam: t ~ L / b0
    vp = VP(0.1, 20.0)
    lam = torch.tensor([30.0, 50.0, 1e3, 1e6], dtype=dtype)
    expected = torch.tensor([math.exp(-30.0) / 0.1, math.exp(-50.0) / 0.1, 0.0, 0.0], dtype=F64)
    got = vp.inverse_log_snr(lam)
    assert got.dtype == dtype
    torch.testing.assert_close(got.double(), expected, rtol=1e-5, atol=0.0)


def test_vp_log_snr_round_trip_over_its_range():
    vp = VP()
    lam = torch.linspace(float(vp.log_snr(torch.tensor(1.0))) + 1e-6, 40.0, 200)
    torch.testing.assert_close(vp.log_snr(vp.inverse_log_snr(lam)), lam, rtol=1e-9, atol=1e-9)


def test_edm_time_of_a_tiny_noise_level_on_vp_is_finite_in_float32():
    edm = diffusion.EDM(lambda x, t: x, path=genmath.GaussianPath(VP()))
    t = edm.time_of(torch.tensor([1e-30, 1e-3], dtype=F32))
    assert t.dtype == F32 and bool(torch.isfinite(t).all()) and bool((t >= 0).all())
    # sigma/alpha = 1e-3 on VP: lam = 2 log(1e3), t ~ (1e-6) / b0 to first order
    assert t[1].item() == pytest.approx(1e-5, rel=1e-2)


def test_elbo_weighting_at_a_huge_log_snr_on_vp():
    # eps-prediction's ELBO weight is -d lam/dt evaluated at t(lam); finite for lam = 1e6
    weight = genmath.elbo_weighting("eps", genmath.GaussianPath(VP()), torch.tensor([1e6]))
    assert bool(torch.isfinite(weight).all())


@pytest.mark.parametrize("dtype", [F32, F64])
def test_cosine_vp_at_its_ends(dtype):
    cosine = CosineVP()
    zero, one = torch.tensor(0.0, dtype=dtype), torch.tensor(1.0, dtype=dtype)
    # sigma_t ~ sqrt(t) near 0 for s > 0: its derivative has the one-sided limit +inf
    assert cosine.d_sigma(zero).item() == math.inf
    assert cosine.alpha(one).item() == 0.0  # not cos(pi/2) rounded to -4.4e-8 in float32
    assert cosine.log_snr(one).item() == -math.inf
    assert cosine.log_snr(zero).item() == math.inf


def test_condot_poles_at_the_noise_end_have_their_signs():
    ot = CondOT()
    one = torch.tensor(1.0)
    # lam = 2 log((1 - t)/t): d lam/dt = -2/(1 - t) - 2/t -> -inf
    assert ot.d_log_snr(one).item() == -math.inf
    # g^2 = d sigma^2/dt - 2 (d alpha/alpha) sigma^2 = 2t + 2t^2/(1 - t) -> +inf
    assert ot.diffusion_squared(one).item() == math.inf
    t = torch.tensor(0.75)
    assert ot.diffusion_squared(t).item() == pytest.approx(2 * 0.75 + 2 * 0.75**2 / 0.25)


def test_condot_sigma_min_is_lipmans_path():
    # Lipman et al.: mu = t' x1, sigma = 1 - (1 - sigma_min) t' with t' = 1 - t
    schedule = CondOT(sigma_min=0.1)
    t = torch.tensor([0.0, 0.3, 1.0])
    torch.testing.assert_close(schedule.alpha(t), 1 - t)
    torch.testing.assert_close(schedule.sigma(t), 1 - 0.9 * (1 - t))
    torch.testing.assert_close(schedule.d_sigma(t), torch.full_like(t, 0.9))
    lam = torch.tensor([-3.0, 0.0, 4.0])
    torch.testing.assert_close(schedule.log_snr(schedule.inverse_log_snr(lam)), lam)
    with pytest.raises(ValueError, match="sigma_min"):
        CondOT(sigma_min=1.0)


# ------------------------------------------------------------------ batches and events


def _x(*shape, dtype=F64):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(0), dtype=dtype)


def _losses():
    path = genmath.GaussianPath(CondOT())
    model = lambda x, t: x  # noqa: E731
    edm = diffusion.EDM(model)
    ddpm = diffusion.DDPM(model, diffusion.DiscreteSchedule.from_path(genmath.GaussianPath(VP()), 10))
    return {
        "denoising": lambda x: score_matching.denoising(model, x, path),
        "sliced": lambda x: score_matching.sliced(model, x),
        "implicit": lambda x: score_matching.implicit(lambda y: y, x),
        "cfm_loss": lambda x: flow_matching.cfm_loss(model, x, path),
        "gaussian_path_elbo": lambda x: genmath.gaussian_path_elbo(model, x, path),
        "DDPM.loss": lambda x: ddpm.loss(x),
        "EDM.loss": lambda x: edm.loss(x),
    }


@pytest.mark.parametrize("name", list(_losses()))
def test_losses_refuse_an_empty_batch(name):
    with pytest.raises(ValueError, match=r"x0?\b.*empty batch|empty batch"):
        _losses()[name](_x(0, 2))


@pytest.mark.parametrize("name", list(_losses()))
def test_losses_refuse_an_eventless_batch(name):
    with pytest.raises(ValueError, match="event dimension"):
        _losses()[name](_x(4))


def test_divergence_and_likelihood_refuse_an_empty_batch():
    with pytest.raises(ValueError, match="empty batch"):
        genmath.divergence(lambda y: y, _x(0, 2))
    with pytest.raises(ValueError, match="empty batch"):
        genmath.ode_log_likelihood(lambda y, t: y, _x(0, 2), lambda z: -z.pow(2).sum(1))


# ------------------------------------------------------------------ option and value checks


@pytest.mark.parametrize("loss", ["DDPM", "EDM"])
def test_diffusion_losses_check_reduction(loss):
    model = lambda x, t: x  # noqa: E731
    if loss == "EDM":
        family = diffusion.EDM(model)
    else:
        family = diffusion.DDPM(
            model, diffusion.DiscreteSchedule.from_path(genmath.GaussianPath(VP()), 10)
        )
    with pytest.raises(ValueError, match="reduction"):
        family.loss(_x(4, 2), reduction="sum")


@pytest.mark.parametrize("level", [0.0, -1.0, math.nan])
def test_edm_loss_weight_refuses_what_the_preconditioning_refuses(level):
    with pytest.raises(ValueError, match="noise_level"):
        diffusion.edm_loss_weight(torch.tensor([level, 1.0]))
    # lambda(s) = (s^2 + sd^2) / (s sd)^2 at an allowed level
    assert diffusion.edm_loss_weight(torch.tensor([2.0])).item() == pytest.approx(4.25 / 1.0)


@pytest.mark.parametrize(
    "build, argument",
    [
        (lambda: TimeEmbedding(max_frequency=-1.0), "max_frequency"),
        (lambda: genmath.Sigmoid(event_dim=-1), "event_dim"),
        (lambda: residual.power_series_logdet_bound(1.0, 4, 2), "lipschitz"),
        (lambda: residual.power_series_logdet_bound(0.5, 0, 2), "terms"),
        (lambda: residual.SpectralNormLinear(2, 2, 0.0), "coefficient"),
        (lambda: residual.SpectralNormLinear(2, 2, -0.5), "coefficient"),
        (lambda: genmath.Affine(0), "features"),
        (lambda: consistency.ema_decay(0), "steps"),
        (lambda: diffusion.discretized_gaussian_log_likelihood(_x(2, 2).clamp(-1, 1), _x(2, 2), torch.ones(2, 2), levels=0), "levels"),
        (lambda: genmath.uniform_grid(4, "bogus"), "schedule"),
        (lambda: score_matching.denoising(lambda x, t: x, _x(2, 2), "bogus"), "path"),
    ],
)
def test_invalid_values_are_refused_by_name(build, argument):
    with pytest.raises(ValueError, match=rf"\b{argument}\b"):
        build()


@pytest.mark.parametrize("value", [0.0, -1e-3])
def test_ode_tolerances_must_be_positive(value):
    for name in ("rtol", "atol"):
        with pytest.raises(ValueError, match=name):
            genmath.sample_ode(lambda x, t: -x, _x(2, 2), steps=None, method="dopri5", **{name: value})


def test_generator_must_be_a_generator():
    for call in (
        lambda g: genmath.GaussianPath(CondOT()).sample(_x(2, 2), 0.5, generator=g),
        lambda g: flow_matching.cfm_loss(lambda x, t: x, _x(2, 2), genmath.GaussianPath(CondOT()), generator=g),
        lambda g: genmath.divergence(lambda y: y, _x(2, 2), method="hutchinson", generator=g),
    ):
        with pytest.raises(TypeError, match="generator must be a torch.Generator"):
            call(42)


def test_errors_name_the_argument_the_caller_passed():
    with pytest.raises(ValueError, match="divergence must be"):
        genmath.ode_log_likelihood(lambda y, t: y, _x(2, 2), lambda z: z.sum(1), divergence="bogus")
    with pytest.raises(ValueError, match="method must be"):
        genmath.kl_divergence(D.Normal(0.0, 1.0), D.Normal(1.0, 1.0), method="bogus")
    with pytest.raises(ValueError, match="time_distribution must be"):
        flow_matching.cfm_loss(
            lambda x, t: x, _x(2, 2), genmath.GaussianPath(CondOT()), time_distribution="bogus"
        )


# ------------------------------------------------------------------ non-finite input


def test_nan_latents_and_codebooks_get_no_code():
    quantizer = tokenizer.VectorQuantizer(4, 2, generator=torch.Generator().manual_seed(0))
    latents = _x(3, 2)
    latents[1, 0] = math.nan
    with pytest.raises(ValueError, match="finite"):
        quantizer(latents)
    with pytest.raises(ValueError, match="finite"):
        tokenizer.FSQ([3, 3])(latents)
    with torch.no_grad():
        quantizer.codebook[0, 0] = math.nan
    with pytest.raises(ValueError, match="codebook"):
        quantizer(_x(3, 2))


def test_ot_coupling_refuses_nan_by_name():
    x0, x1 = _x(3, 2), _x(3, 2)
    x1[0, 0] = math.nan
    with pytest.raises(ValueError, match="finite x0 and x1"):
        flow_matching.ot_coupling(x0, x1)


# ------------------------------------------------------------------ dtypes


def test_float32_data_never_meet_float64_parameters_silently():
    x = _x(4, 2, dtype=F32)
    bijections = [genmath.Affine(2).double(), genmath.ElementwiseAffine(2).double(), genmath.ActNorm(2).double()]
    for bijection in bijections:
        for direction in (bijection.forward, bijection.inverse):
            with pytest.raises(TypeError, match="dtype"):
                direction(x)
    with pytest.raises(TypeError, match="dtype"):
        genmath.Compose(genmath.Affine(2).double()).inverse(x)


def test_elbo_with_float32_data_and_float64_distributions():
    x = _x(4, 2, dtype=F32)

    def encoder(v):
        return D.Independent(D.Normal(torch.zeros(4, 2, dtype=F64), torch.ones(4, 2, dtype=F64)), 1)

    def decoder(z):
        return D.Independent(D.Normal(z, torch.ones_like(z)), 1)

    prior = D.Independent(D.Normal(torch.zeros(2, dtype=F64), torch.ones(2, dtype=F64)), 1)
    for call in (
        lambda: genmath.elbo(x, encoder, decoder, prior),
        lambda: genmath.iwae(x, encoder, decoder, prior, k=2),
    ):
        with pytest.raises(TypeError, match="dtype"):
            call()


# ------------------------------------------------------------------ what a new user meets


def test_auto_kl_closed_form_for_full_against_diagonal_gaussians():
    # KL(N(m, diag s^2) || N(0, S)) = 1/2 [tr(S^-1 diag s^2) + m^T S^-1 m - d + log det S - sum log s^2]
    m, s = torch.tensor([[0.3, -0.2]]), torch.tensor([[0.5, 1.5]])
    cov = torch.tensor([[2.0, 0.5], [0.5, 1.0]])
    q = D.Independent(D.Normal(m, s), 1)
    p = D.MultivariateNormal(torch.zeros(2), covariance_matrix=cov)
    inv = torch.linalg.inv(cov)
    mean, var = m[0], s[0] ** 2
    exact = 0.5 * (
        torch.trace(inv @ torch.diag(var)) + mean @ inv @ mean - 2 + torch.logdet(cov)
        - torch.log(var).sum()
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a closed form: no Monte-Carlo fallback warning
        got = genmath.kl_divergence(q, p)
    torch.testing.assert_close(got, exact.reshape(1))


def test_auto_kl_says_when_it_falls_back_to_monte_carlo():
    q = D.Independent(D.Laplace(torch.zeros(1, 2), torch.ones(1, 2)), 1)
    p = D.MultivariateNormal(torch.zeros(2), torch.eye(2))
    with pytest.warns(UserWarning, match="Monte"):
        genmath.kl_divergence(q, p, generator=torch.Generator().manual_seed(0))


def test_from_betas_says_which_axis_and_how_to_reach_the_betas():
    betas = diffusion.linear_betas(1000)
    with pytest.warns(UserWarning, match="CosineVP"):
        diffusion.DiscreteSchedule.from_betas(betas)
    with pytest.raises(ValueError, match=r"GaussianPath\(VP\(0\.1, "):
        diffusion.DiscreteSchedule.from_betas(betas, genmath.GaussianPath(VP(0.1, 20)))


@pytest.mark.parametrize("command", [["cite", "--all"]])
def test_cli_output_into_a_closed_pipe_is_quiet(command, monkeypatch, capsys):
    # `genmath list | head`: the reader leaves before the output ends; in-process, stdout is
    # a writer whose reader is gone, and the redirection of the descriptor is recorded
    from genmath import cli

    class ClosedPipe:
        def write(self, text):
            raise BrokenPipeError(32, "Broken pipe")

        def flush(self):
            raise BrokenPipeError(32, "Broken pipe")

        def fileno(self):
            return 1

    redirected = []
    monkeypatch.setattr(cli.os, "dup2", lambda source, target: redirected.append(target))
    monkeypatch.setattr(cli.sys, "stdout", ClosedPipe())
    assert cli.main(command) == 0
    assert redirected == [1]
