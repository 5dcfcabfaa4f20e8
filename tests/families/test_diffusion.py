"""Diffusion family: DDPM, DDIM, score SDEs, EDM and classifier-free guidance against exact
answers (float64).

Oracles: `genmath.analytic` gives the exact ε, x0, score of Gaussian and Gaussian-mixture
data on any path. Sampler tests start from exact draws of the path marginal at the first
grid time (so only the sampler's own error is tested) and compare, two-sided, the sample
mean and the mean exact log-density of the samples with their exact values (the latter by a
fine quadrature of the exact density on a grid, independent of the samplers).
"""

import math

import pytest
import scipy.stats
import torch

from genmath.analytic import Gaussian, GaussianMixture
from genmath.core.dynamics import sample_ode
from genmath.core.elbo import gaussian_path_elbo
from genmath.core.grids import log_snr_grid, uniform_grid
from genmath.core.path import GaussianPath
from genmath.families import diffusion as dif
from genmath.families.denoisers import NULL_LABEL, MLPDenoiser, UNet8
from genmath.schedules import VE, VP, CosineVP
from genmath.testing import assert_close, assert_mean_matches

N_SAMPLES = 4000


@pytest.fixture(autouse=True)
def _one_thread():
    # the oracles are small batched linear algebra: on a shared 2-core machine one thread is
    # an order of magnitude faster than two contending ones
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def _mixture() -> GaussianMixture:
    return GaussianMixture(
        torch.tensor([0.3, 0.7]),
        torch.tensor([[-2.0, 0.0], [1.5, 1.0]]),
        torch.stack([0.3 * torch.eye(2), torch.tensor([[0.5, 0.2], [0.2, 0.4]])]),
    )


def _gaussian() -> Gaussian:
    return Gaussian(torch.tensor([0.5, -1.0]), torch.tensor([[1.0, 0.6], [0.6, 0.8]]))


def _expected_log_density(log_prob) -> float:
    """E_p[log p] by a midpoint rule on [-8, 8]^2 (h = 0.025): independent of any sampler."""
    axis = torch.linspace(-8, 8, 641)
    xx, yy = torch.meshgrid(axis, axis, indexing="ij")
    points = torch.stack([xx.flatten(), yy.flatten()], 1)
    lp = log_prob(points)
    cell = float(axis[1] - axis[0]) ** 2
    mass = float(lp.exp().sum() * cell)
    assert abs(mass - 1) < 1e-6, mass
    return float((lp.exp() * lp).sum() * cell)


def _assert_samples_match(samples, data, path, t_end):
    """Two-sided test of E[x] and E[log p_{t_end}(x)] (Bonferroni over the 3 quantities)."""
    marginal = data.marginal(path)
    t = torch.tensor(float(t_end))

    def log_prob(x):
        return marginal.log_prob(x, t)

    expected = torch.cat(
        [path.alpha(t) * data.mean, torch.tensor([_expected_log_density(log_prob)])]
    )
    features = torch.cat([samples, log_prob(samples)[:, None]], 1)
    # mean and E log p to 0.2 (data units, nats): a 3-step sampler misses by far more
    assert_mean_matches(features, expected, precision=0.2, name="[mean, E log p]")


def _exact_start(data, path, t, n=N_SAMPLES, seed=0):
    generator = torch.Generator().manual_seed(seed)
    x0 = data.sample(n, generator=generator)
    xt, _ = path.sample(x0, torch.tensor(float(t)), generator=generator)
    return xt, generator


# --------------------------------------------------------------------------- DDPM sampling


def test_ddpm_ancestral_sampling_reaches_the_data_and_its_error_shrinks_with_steps():
    data, path = _mixture(), GaussianPath(VP())
    marginal = data.marginal(path)
    for steps, should_pass in ((20, False), (400, True)):
        ddpm = dif.DDPM(marginal.eps, dif.DiscreteSchedule.from_path(path, steps))
        x_T, generator = _exact_start(data, path, 1.0)
        samples = ddpm.sample(x_T, generator=generator).x
        if should_pass:
            _assert_samples_match(samples, data, path, 0.0)
        else:
            with pytest.raises(AssertionError):
                _assert_samples_match(samples, data, path, 0.0)


def test_ddpm_cosine_betas_respaced_samples_the_data():
    data = _mixture()
    schedule = dif.DiscreteSchedule.from_betas(dif.cosine_betas(1000))
    path = schedule.path
    respaced = schedule.respace(250)
    # respacing keeps a subset of times and their alphas_cumprod exactly
    index = torch.linspace(0, 1000, 251, dtype=torch.float64).round().long()
    assert torch.equal(respaced.times, schedule.times[index])
    assert torch.equal(respaced.alphas_cumprod, schedule.alphas_cumprod[index])
    assert_close(path.alpha(respaced.times) ** 2, respaced.alphas_cumprod, atol=1e-10)
    ddpm = dif.DDPM(data.marginal(path).denoise, schedule, parameterization="x0").respaced(250)
    x_T, generator = _exact_start(data, path, float(respaced.times[-1]))
    _assert_samples_match(ddpm.sample(x_T, generator=generator).x, data, path, 0.0)


def test_cosine_betas_follow_nichol_dhariwal_closed_form():
    steps, s = 50, 0.008
    i = torch.arange(steps + 1, dtype=torch.float64)
    f = torch.cos((i / steps + s) / (1 + s) * math.pi / 2) ** 2
    expected = (1 - f[1:] / f[:-1]).clamp(max=0.999)
    assert_close(dif.cosine_betas(steps, s), expected, atol=1e-12)
    assert_close(dif.linear_betas(3, 0.1, 0.3), torch.tensor([0.1, 0.2, 0.3]), atol=1e-15)


def test_linear_betas_schedule_has_alphas_cumprod_of_the_product():
    betas = dif.linear_betas(1000)
    schedule = dif.DiscreteSchedule.from_betas(betas)
    assert_close(schedule.betas, betas, atol=1e-12)
    assert_close(schedule.alphas_cumprod[1:], torch.cumprod(1 - betas, 0), atol=1e-15)


# --------------------------------------------------------------------------- DDIM


def test_ddim_eta_zero_is_cores_ddim_step():
    data, path = _mixture(), GaussianPath(VP())
    model = data.marginal(path).eps
    x1, _ = _exact_start(data, path, 1.0, n=64)
    grid = uniform_grid(30, path.schedule)
    ours = dif.ddim_sample(model, x1, path, grid=grid, eta=0.0).x
    core = sample_ode(model, x1, path=path, parameterization="eps", method="ddim", grid=grid).x
    assert_close(ours, core, atol=1e-11, rtol=1e-11)


def test_ddim_eta_one_is_ddpm_ancestral_with_posterior_variance():
    data, path = _mixture(), GaussianPath(VP())
    model = data.marginal(path).eps
    schedule = dif.DiscreteSchedule.from_path(path, 40)
    x_T, _ = _exact_start(data, path, 1.0, n=64)
    ddpm = dif.DDPM(model, schedule, variance="beta_tilde")
    a = ddpm.sample(x_T, generator=torch.Generator().manual_seed(5)).x
    b = dif.ddim_sample(
        model,
        x_T,
        path,
        grid=schedule.times.flip(0),
        eta=1.0,
        generator=torch.Generator().manual_seed(5),
    ).x
    assert_close(a, b, atol=1e-10, rtol=1e-10)


def test_ddim_clipping_bounds_the_denoised_state():
    data, path = _mixture(), GaussianPath(VP())
    model = data.marginal(path).eps
    x1, _ = _exact_start(data, path, 1.0, n=256)
    grid = torch.cat([uniform_grid(20, path.schedule)[:-1], torch.zeros(1)])  # ends at t = 0
    wide = dif.ddim_sample(model, x1, path, grid=grid, clip_denoised=(-1e9, 1e9)).x
    assert_close(wide, dif.ddim_sample(model, x1, path, grid=grid).x, atol=1e-12)
    # at t = 0 the state is the last (clipped) denoised estimate
    narrow = dif.ddim_sample(model, x1, path, grid=grid, clip_denoised=(-0.5, 0.5)).x
    assert narrow.min() >= -0.5 and narrow.max() <= 0.5 and (narrow.abs() == 0.5).any()


@pytest.mark.parametrize("eta, parameterization", [(0.0, "eps"), (0.5, "v"), (1.0, "x0")])
def test_ddim_samples_the_data(eta, parameterization):
    data, path = _mixture(), GaussianPath(VP())
    marginal = data.marginal(path)

    def model(x, t):
        return path.convert(marginal.eps(x, t), x, t, "eps", parameterization)

    x1, generator = _exact_start(data, path, 1.0)
    result = dif.ddim_sample(
        model,
        x1,
        path,
        steps=300,
        eta=eta,
        parameterization=parameterization,
        generator=generator,
    )
    _assert_samples_match(result.x, data, path, path.schedule.safe_interval[0])


# --------------------------------------------------------------------------- score SDEs


@pytest.mark.parametrize(
    "schedule, method",
    [(VP(), "euler_maruyama"), (dif.sub_vp(), "euler_maruyama"), (VE(0.01, 20.0), "pc")],
)
def test_score_sde_samplers_reach_the_data(schedule, method):
    data, path = _mixture(), GaussianPath(schedule)
    sde = dif.ScoreSDE(data.marginal(path).score, path, parameterization="score")
    t_lo, t_hi = path.schedule.safe_interval
    x1, generator = _exact_start(data, path, t_hi)
    result = sde.sample(x1, steps=500, method=method, generator=generator)
    _assert_samples_match(result.x, data, path, t_lo)


def test_sub_vp_diffusion_matches_song_et_al():
    beta_min, beta_max = 0.1, 20.0
    path = GaussianPath(dif.sub_vp(beta_min, beta_max))
    t = torch.tensor([0.05, 0.3, 0.7, 1.0])
    beta = beta_min + t * (beta_max - beta_min)
    integral = beta_min * t + 0.5 * (beta_max - beta_min) * t**2
    assert_close(
        path.diffusion(t) ** 2, beta * (1 - torch.exp(-2 * integral)), atol=1e-10, rtol=1e-10
    )
    assert_close(path.drift_coefficient(t), -beta / 2, atol=1e-12, rtol=1e-12)
    assert_close(path.sigma(t), 1 - torch.exp(-integral), atol=1e-14)


def test_probability_flow_likelihood_equals_data_log_density():
    data, path = _mixture(), GaussianPath(VP())
    marginal = data.marginal(path)
    t_lo, t_hi = path.schedule.safe_interval
    sde = dif.ScoreSDE(marginal.eps, path, parameterization="eps")
    x = data.sample(16, generator=torch.Generator().manual_seed(3))

    def exact_prior(z):
        return marginal.log_prob(z, torch.tensor(t_hi))

    log_prob = sde.log_likelihood(x, prior_log_prob=exact_prior, rtol=1e-9, atol=1e-9)
    assert_close(log_prob, marginal.log_prob(x, torch.tensor(t_lo)), atol=2e-5)
    bpd = sde.bits_per_dim(x, prior_log_prob=exact_prior, rtol=1e-9, atol=1e-9)
    expected = -(log_prob + 2 * math.log(1 / 256)) / (2 * math.log(2))
    assert_close(bpd, expected, atol=1e-5)


# --------------------------------------------------------------------------- EDM


@pytest.mark.parametrize("churn", [0.0, 10.0])
def test_edm_samplers_reach_the_data(churn):
    data = _mixture()
    edm_path = GaussianPath(VE(0.002, 80.0))
    oracle = data.marginal(edm_path).denoise
    t_lo, t_hi = edm_path.schedule.safe_interval
    x1, generator = _exact_start(data, edm_path, t_hi)
    result = dif.edm_sample(oracle, x1, edm_path, steps=40, churn=churn, generator=generator)
    assert result.nfe == 80
    _assert_samples_match(result.x, data, edm_path, t_lo)


def test_edm_heun_error_shrinks_with_steps():
    data = _mixture()
    path = GaussianPath(VE(0.002, 80.0))
    oracle = data.marginal(path).denoise
    x1, generator = _exact_start(data, path, 1.0)
    with pytest.raises(AssertionError):
        _assert_samples_match(dif.edm_sample(oracle, x1, path, steps=3).x, data, path, 0.0)


def test_edm_sampler_on_a_vp_path_with_eps_model():
    data, path = _mixture(), GaussianPath(VP())
    t_lo, t_hi = path.schedule.safe_interval
    x1, generator = _exact_start(data, path, t_hi)
    result = dif.edm_sample(data.marginal(path).eps, x1, path, steps=40, parameterization="eps")
    _assert_samples_match(result.x, data, path, t_lo)


def test_edm_optimal_network_output_is_zero_for_matched_gaussian_data():
    sigma_data = 0.5
    edm = dif.EDM(lambda x, c: x, sigma_data=sigma_data)
    generator = torch.Generator().manual_seed(0)
    for cov, zero in ((sigma_data**2 * torch.eye(3), True), (0.7 * torch.eye(3), False)):
        data = Gaussian(torch.zeros(3), cov)
        marginal = data.marginal(edm.path)
        t = torch.rand(32, generator=generator)
        xt, _ = edm.path.sample(data.sample(32, generator=generator), t, generator=generator)
        target = edm.network_target(marginal.denoise(xt, t), xt, edm.noise_level(t))
        if zero:
            assert_close(target, torch.zeros_like(target), atol=1e-12)
        else:
            assert target.abs().max() > 1e-2


def test_edm_preconditioning_and_weight_closed_forms():
    s, sd = torch.tensor([0.01, 0.5, 3.0, 80.0]), 0.5
    c_skip, c_out, c_in, c_noise = dif.edm_preconditioning(s, sd)
    assert_close(c_skip, sd**2 / (s**2 + sd**2), atol=1e-15)
    assert_close(c_out, s * sd / (s**2 + sd**2).sqrt(), atol=1e-15)
    assert_close(c_in, 1 / (s**2 + sd**2).sqrt(), atol=1e-15)
    assert_close(c_noise, s.log() / 4, atol=1e-15)
    assert_close(dif.edm_loss_weight(s, sd) * c_out**2, torch.ones(4), atol=1e-12)
    levels = dif.lognormal_noise_levels(20000, generator=torch.Generator().manual_seed(0))
    assert_mean_matches(levels.log()[:, None], torch.tensor([-1.2]), name="E ln s")


# --------------------------------------------------------------------------- losses at the oracle


def _posterior_covariances(data: Gaussian, alpha: float, sigma: float):
    """Cov(x0 | xt), Cov(eps | xt), Cov(v | xt) for Gaussian data: jointly Gaussian algebra,
    independent of genmath's oracles."""
    cov = data.cov
    eye = torch.eye(cov.shape[0])
    c = alpha**2 * cov + sigma**2 * eye
    c_inv = torch.linalg.inv(c)
    cov_x0 = cov - alpha**2 * cov @ c_inv @ cov
    cov_eps = eye - sigma**2 * c_inv
    cross = alpha * sigma * (eye - cov)  # Cov(v, xt) with v = alpha eps - sigma x0
    cov_v = alpha**2 * eye + sigma**2 * cov - cross @ c_inv @ cross.T
    return {"x0": cov_x0, "eps": cov_eps, "v": cov_v}


@pytest.mark.parametrize("parameterization", ["eps", "x0", "v"])
def test_ddpm_loss_at_the_oracle_is_its_closed_form_minimum(parameterization):
    data, path = _gaussian(), GaussianPath(VP())
    marginal = data.marginal(path)
    oracle = {"eps": marginal.eps, "x0": marginal.denoise}.get(parameterization)
    if oracle is None:

        def oracle(x, t):
            return path.convert(marginal.eps(x, t), x, t, "eps", "v")

    schedule = dif.DiscreteSchedule.from_path(path, 10)
    minimum = torch.stack(
        [
            torch.trace(
                _posterior_covariances(data, float(path.alpha(t)), float(path.sigma(t)))[
                    parameterization
                ]
            )
            for t in schedule.times[1:]
        ]
    ).mean()  # i ~ U{1..T}
    # an offset whose added loss |offset|^2 = 0.52 the tests below resolve (to 0.15) on
    # every parameterization's noise
    offset = torch.tensor([0.6, -0.4])
    generator = torch.Generator().manual_seed(0)
    x0 = data.sample(20000, generator=generator)
    exact = dif.DDPM(oracle, schedule, parameterization).loss(
        x0, generator=generator, reduction="none"
    )
    assert_mean_matches(
        exact[:, None], minimum.reshape(1), precision=0.15, name=f"{parameterization}-loss"
    )

    def perturbed(x, t):
        return oracle(x, t) + offset

    worse = dif.DDPM(perturbed, schedule, parameterization).loss(
        x0, generator=generator, reduction="none"
    )
    assert_mean_matches(
        worse[:, None], (minimum + offset.pow(2).sum()).reshape(1), precision=0.15, name="perturbed"
    )


def test_edm_loss_at_the_oracle_is_its_closed_form_minimum():
    data, sigma_data, s = _gaussian(), 0.5, 0.8
    edm_path = GaussianPath(VE(0.002, 80.0))
    marginal = data.marginal(edm_path)
    holder = dif.EDM(lambda x, c: x, edm_path, sigma_data)
    t_of_s = holder.time_of(torch.tensor(s))

    def ideal_network(scaled_input, c_noise, shift=0.0):
        _, _, c_in, _ = dif.edm_preconditioning(torch.tensor(s), sigma_data)
        x_scaled = scaled_input / c_in
        denoised = marginal.denoise(x_scaled, t_of_s.expand(x_scaled.shape[0]))
        return holder.network_target(denoised, x_scaled, s) + shift

    cov = data.cov
    minimum = dif.edm_loss_weight(torch.tensor(s), sigma_data) * torch.trace(
        cov - cov @ torch.linalg.inv(cov + s**2 * torch.eye(2)) @ cov
    )
    generator = torch.Generator().manual_seed(1)
    x0 = data.sample(20000, generator=generator)
    exact = dif.EDM(ideal_network, edm_path, sigma_data).loss(
        x0, noise_level=s, generator=generator, reduction="none"
    )
    # to 0.3: the shifted network below adds |shift|^2 = 1.25
    assert_mean_matches(exact[:, None], minimum.reshape(1), precision=0.3, name="EDM loss")
    shift = torch.tensor([1.0, 0.5])
    worse = dif.EDM(lambda u, c: ideal_network(u, c, shift), edm_path, sigma_data).loss(
        x0, noise_level=s, generator=generator, reduction="none"
    )
    # the weight is 1 / c_out^2, so a network offset adds exactly |shift|^2 (D-edm-loss-weight)
    assert_mean_matches(
        worse[:, None], (minimum + shift.pow(2).sum()).reshape(1), precision=0.3, name="perturbed"
    )


# --------------------------------------------------------------------------- the discrete bound


def _gaussian_kl_same_mean(q_cov, p_cov):
    ratio = torch.linalg.solve(p_cov, q_cov)
    d = q_cov.shape[0]
    return 0.5 * (torch.trace(ratio) - d - torch.logdet(ratio))


def _expected_gap(data: Gaussian, schedule: dif.DiscreteSchedule, variance: str):
    """E_x0[log q(x0)] - E_x0[bound] = KL(q(x_T) || N(0, I)) + sum_i E KL(q(x_{i-1}|x_i) ||
    p(x_{i-1}|x_i)), with the true reverse kernels of Gaussian data written out."""
    d = data.dim
    eye = torch.eye(d)
    abar = schedule.alphas_cumprod
    betas = schedule.betas
    tilde = schedule.posterior_variance
    a_T, s2_T = abar[-1].sqrt(), 1 - abar[-1]
    q_T = torch.distributions.MultivariateNormal(a_T * data.mean, a_T**2 * data.cov + s2_T * eye)
    prior = torch.distributions.MultivariateNormal(torch.zeros(d), eye)
    gap = torch.distributions.kl_divergence(q_T, prior)
    for i in range(1, schedule.steps + 1):
        cov_x0 = _posterior_covariances(data, float(abar[i].sqrt()), float((1 - abar[i]).sqrt()))[
            "x0"
        ]
        coef = abar[i - 1].sqrt() * betas[i - 1] / (1 - abar[i])
        true_cov = tilde[i - 1] * eye + coef**2 * cov_x0
        if i == 1:
            model_var = betas[0]
        else:
            model_var = tilde[i - 1] if variance == "beta_tilde" else betas[i - 1]
        gap = gap + _gaussian_kl_same_mean(true_cov, model_var * eye)
    return gap


@pytest.mark.parametrize("variance", ["beta_tilde", "beta"])
def test_discrete_bound_is_within_its_stated_gap_of_the_log_likelihood(variance):
    data, path = _gaussian(), GaussianPath(VP())
    schedule = dif.DiscreteSchedule.from_path(path, 10)
    ddpm = dif.DDPM(data.marginal(path).eps, schedule, variance=variance)
    generator = torch.Generator().manual_seed(2)
    x0 = data.sample(16000, generator=generator)
    bound = ddpm.elbo(x0, generator=generator)
    neg_entropy = -0.5 * (2 * math.log(2 * math.pi) + torch.logdet(data.cov) + 2)
    gap = _expected_gap(data, schedule, variance)
    # a test of the gap, not of a bound that happens to be tight: the gap is many standard
    # errors wide, so a bound equal to log p(x) would fail
    assert gap > 6 * bound.std() / math.sqrt(bound.numel())
    assert_mean_matches(bound[:, None], (neg_entropy - gap).reshape(1), name="E[bound]")


def test_discrete_bound_converges_to_the_continuous_time_elbo():
    data, path = _gaussian(), GaussianPath(VP())
    marginal = data.marginal(path)
    generator = torch.Generator().manual_seed(4)
    x0 = data.sample(400, generator=generator)
    for steps, should_pass in ((10, False), (1000, True)):
        # times 0, then t_lo .. t_hi equally spaced in log-SNR: the continuous ELBO's interval
        times = torch.cat([torch.zeros(1), log_snr_grid(steps - 1, path.schedule).flip(0)])
        ddpm = dif.DDPM(marginal.eps, dif.DiscreteSchedule.from_times(path, times))
        _, discrete = ddpm.elbo(x0, generator=generator, terms=True)
        _, continuous = gaussian_path_elbo(
            marginal.eps, x0, path, "eps", n_t=4, generator=generator, terms=True
        )
        difference = (discrete["steps"].sum(1) - continuous["diffusion"])[:, None]
        # to 3 nats: the 10-step bound is about 44 nats above the continuous one
        if should_pass:
            assert_mean_matches(
                difference, torch.zeros(1), precision=3.0, name="discrete - continuous"
            )
        else:
            with pytest.raises(AssertionError):
                assert_mean_matches(
                    difference, torch.zeros(1), precision=3.0, name="discrete - continuous"
                )


def test_discretized_decoder_is_a_distribution_over_the_levels():
    levels = torch.linspace(-1, 1, 256)
    mean = torch.full((256, 1), 0.3)
    std = torch.full((256, 1), 0.05)
    log_mass = dif.discretized_gaussian_log_likelihood(levels[:, None], mean, std)
    assert_close(log_mass.exp().sum(), torch.tensor(1.0), atol=1e-12)
    k = 170
    half = 1 / 255
    expected = scipy.stats.norm.cdf(float(levels[k]) + half, 0.3, 0.05) - scipy.stats.norm.cdf(
        float(levels[k]) - half, 0.3, 0.05
    )
    assert_close(log_mass[k], torch.tensor(math.log(expected)), atol=1e-10)


def test_learned_variance_interpolates_beta_and_beta_tilde():
    path = GaussianPath(VP())
    schedule = dif.DiscreteSchedule.from_path(path, 20)
    x = torch.randn(5, 3)
    i = torch.tensor([2, 5, 9, 14, 20])
    for v, reference in ((1.0, schedule.betas), (0.0, schedule.posterior_variance)):
        ddpm = dif.DDPM(
            lambda x, t: x,
            schedule,
            variance="learned",
            variance_model=lambda x, t, v=v: torch.full_like(x, v),
        )
        assert_close(
            ddpm.reverse_variance(x, i), reference[i - 1][:, None].expand(5, 3), atol=1e-14
        )
    ddpm = dif.DDPM(
        lambda x, t: torch.zeros_like(x),
        schedule,
        variance="learned",
        variance_model=lambda x, t: torch.full_like(x, 0.5),
    )
    loss = ddpm.loss(
        torch.randn(64, 3), vlb_weight=1e-3, generator=torch.Generator().manual_seed(0)
    )
    assert torch.isfinite(loss)


# --------------------------------------------------------------------------- guidance


def _class_model(path):
    """A conditional eps oracle: class c of 1-D data N(m_c, s_c^2), and its unconditional
    mixture, both exact."""
    means, variances = torch.tensor([-1.5, 2.0]), torch.tensor([0.3, 0.6])
    classes = [
        Gaussian(means[c : c + 1], variances[c].reshape(1, 1)).marginal(path) for c in range(2)
    ]
    mixture = GaussianMixture(torch.tensor([0.5, 0.5]), means[:, None], variances[:, None, None])
    unconditional = mixture.marginal(path)

    def model(x, t, condition):
        if condition is None:
            return unconditional.eps(x, t)
        outs = torch.stack([classes[c].eps(x, t) for c in range(2)])
        cond = condition.clamp_min(0)
        out = outs[cond, torch.arange(x.shape[0])]
        return torch.where((condition == NULL_LABEL)[:, None], unconditional.eps(x, t), out)

    model.has_null_condition = True
    return model, classes, unconditional


def test_guidance_commutes_with_the_parameterization():
    path = GaussianPath(VP())
    model, _, _ = _class_model(path)
    condition = torch.tensor([0, 1, 1, 0])
    x, t = torch.randn(4, 1), torch.tensor(0.4)
    guided_eps = dif.guide(model, condition, 3.0)(x, t)

    def score_model(x, t, c):
        return path.convert(model(x, t, c), x, t, "eps", "score")

    score_model.has_null_condition = True
    guided_score = dif.guide(score_model, condition, 3.0)(x, t)
    assert_close(path.convert(guided_eps, x, t, "eps", "score"), guided_score, atol=1e-12)
    # w = 1 is the conditional model, w = 0 the unconditional one
    assert_close(dif.guide(model, condition, 1.0)(x, t), model(x, t, condition), atol=0)
    assert_close(dif.guide(model, condition, 0.0)(x, t), model(x, t, None), atol=1e-15)


def test_guided_score_is_not_the_score_of_a_path_marginal():
    """For 1-D Gaussian data every path marginal has score slope -1/(alpha^2 r^2 + sigma^2),
    whose inverse is affine in alpha^2 on a VP path. The guided slope's inverse is not."""
    path = GaussianPath(VP())
    model, classes, _ = _class_model(path)
    u = classes  # conditional: class 0, 'unconditional': class 1 as a Gaussian stand-in

    def inverse_slope(weight, t):
        x = torch.tensor([[0.0], [1.0]])
        tt = torch.tensor(t)
        s = (1 - weight) * u[1].score(x, tt) + weight * u[0].score(x, tt)
        return float(-1 / (s[1] - s[0]))

    times = [0.2, 0.4, 0.6]
    alpha2 = [float(path.alpha(torch.tensor(t)) ** 2) for t in times]

    def curvature(weight):
        v = [inverse_slope(weight, t) for t in times]
        slope1 = (v[1] - v[0]) / (alpha2[1] - alpha2[0])
        slope2 = (v[2] - v[1]) / (alpha2[2] - alpha2[1])
        return slope2 - slope1

    assert abs(curvature(1.0)) < 1e-10  # a true path marginal (class 0): affine
    assert abs(curvature(3.0)) > 1e-2  # guided: not affine, so no Gaussian data gives it


def test_guided_sampling_any_parameterization_with_ddim():
    path = GaussianPath(VP())
    model, _, _ = _class_model(path)
    condition = torch.zeros(8, dtype=torch.long)
    x1 = torch.randn(8, 1, generator=torch.Generator().manual_seed(0))
    eps_run = dif.ddim_sample(dif.guide(model, condition, 2.0), x1, path, steps=20).x

    def x0_model(x, t, c):
        return path.convert(model(x, t, c), x, t, "eps", "x0")

    x0_model.has_null_condition = True
    x0_run = dif.ddim_sample(
        dif.guide(x0_model, condition, 2.0), x1, path, steps=20, parameterization="x0"
    ).x
    assert_close(eps_run, x0_run, atol=1e-9)


def test_drop_condition_rate_and_null_label():
    labels = torch.zeros(20000, dtype=torch.long) + 3
    dropped = dif.drop_condition(labels, 0.2, generator=torch.Generator().manual_seed(0))
    assert set(dropped.unique().tolist()) == {NULL_LABEL, 3}
    assert_mean_matches((dropped == NULL_LABEL).double()[:, None], torch.tensor([0.2]), name="rate")


# --------------------------------------------------------------------------- bad input


def test_bad_input_raises_clear_errors():
    path = GaussianPath(VP())
    schedule = dif.DiscreteSchedule.from_path(path, 10)
    ddpm = dif.DDPM(lambda x, t: torch.zeros_like(x), schedule)
    x = torch.randn(4, 2)
    with pytest.raises(ValueError, match=r"timesteps must lie in 1\.\.10"):
        ddpm.reverse_kernel(x, torch.tensor([0, 1, 2, 3]))
    with pytest.raises(ValueError, match=r"timesteps must lie in 1\.\.10"):
        ddpm.reverse_kernel(x, 11)
    with pytest.raises(ValueError, match="variance-preserving"):
        dif.DiscreteSchedule.from_path(GaussianPath(VE(0.01, 10.0)), 10)
    with pytest.raises(ValueError, match="every beta_i < 1 - min_scale"):
        dif.DiscreteSchedule.from_path(GaussianPath(CosineVP()), 10)
    with pytest.raises(ValueError, match="eta must lie in"):
        dif.ddim_sample(lambda x, t: x, x, path, steps=3, eta=1.5)
    model, _, _ = _class_model(path)
    with pytest.raises(ValueError, match="batch size 3 but x has batch size 4"):
        ddpm_c = dif.DDPM(model, schedule)
        ddpm_c.sample(x[:, :1], torch.tensor([0, 1, 0]))
    with pytest.raises(ValueError, match="needs an unconditional branch"):
        dif.guide(lambda x, t, c: x, torch.tensor([0, 1]), 2.0)
    with pytest.raises(ValueError, match="batch size 2 but the model was called on a batch of 4"):
        dif.guide(model, torch.tensor([0, 1]), 2.0)(x[:, :1], torch.tensor(0.5))
    with pytest.raises(ValueError, match="variance must be one of"):
        dif.DDPM(lambda x, t: x, schedule, variance="fixed")
    with pytest.raises(ValueError, match="noise levels must be positive"):
        dif.edm_preconditioning(torch.tensor([0.0, 1.0]))
    with pytest.raises(ValueError, match="parameterization must be one of"):
        dif.ScoreSDE(lambda x, t: x, path, parameterization="noise")


# --------------------------------------------------------------------------- networks


def test_denoisers_shapes_conditioning_and_errors():
    mlp = MLPDenoiser(2, hidden=16, depth=1, classes=3)
    x = torch.randn(5, 2)
    labels = torch.tensor([0, 1, 2, NULL_LABEL, 1])
    assert mlp(x, torch.rand(5), labels).shape == x.shape
    # the null label and condition=None are the same unconditional branch
    null = torch.full((5,), NULL_LABEL)
    assert_close(mlp(x, 0.3, null), mlp(x, 0.3, None), atol=0)
    with pytest.raises(ValueError, match=r"labels must lie in 0\.\.2"):
        mlp(x, 0.3, torch.tensor([0, 1, 5, 0, 0]))
    with pytest.raises(ValueError, match=r"condition must be a \(5,\) tensor"):
        mlp(x, 0.3, torch.tensor([0, 1]))
    unet = UNet8(width=8, classes=10)
    images = torch.randn(3, 1, 8, 8)
    assert unet(images, torch.rand(3), torch.tensor([1, 2, NULL_LABEL])).shape == images.shape
    with pytest.raises(ValueError, match=r"x must have shape \(B, 1, 8, 8\)"):
        unet(torch.randn(3, 1, 4, 4), 0.5)
    with pytest.raises(ValueError, match="no class embedding"):
        MLPDenoiser(2, hidden=8)(x, 0.1, labels)
