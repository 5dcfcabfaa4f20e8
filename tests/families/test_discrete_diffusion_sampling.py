"""The masked ELBO's time samplers and ReMDM remasking, against exact answers on small
categorical cases (float64)."""

import itertools
import math

import pytest
import torch
from scipy.integrate import quad

from genmath.core.discrete import MaskPath
from genmath.families.discrete_diffusion import (
    masked_diffusion_nelbo,
    masked_elbo_times,
    remdm_probs,
    remdm_sample,
    remdm_sigma,
    reverse_probs,
)
from genmath.testing import assert_mean_matches, tail_shape

torch.set_default_dtype(torch.float64)

K = 3
# a correlated joint of two tokens over {0, 1, 2}
JOINT = torch.tensor([[0.20, 0.05, 0.10], [0.02, 0.25, 0.08], [0.12, 0.03, 0.15]])
X0 = torch.tensor([1, 2])  # the data point whose ELBO is estimated


def _model_denoiser(path):
    """A time-independent *model* denoiser (not the exact one): fixed probabilities that
    depend only on which tokens are visible; its cross-entropies are known per pattern."""
    table = torch.tensor([[0.5, 0.2, 0.3], [0.1, 0.6, 0.3]])

    def denoiser(xt, t):
        visible = (xt != path.mask_id).double()
        # the other token's visibility shifts the prediction: a context effect
        probs = table.expand(xt.shape[0], 2, K) * (1 + visible.flip(-1)[..., None] * torch.tensor([0.0, 1.0, 2.0]))
        return (probs / probs.sum(-1, keepdim=True)).log()

    return denoiser


def _pattern_cross_entropies(path):
    """-log p~(x0^l | x_t) for each masked token under each mask pattern, by evaluating the
    model denoiser on the four patterns of X0 (exact: no sampling)."""
    denoiser = _model_denoiser(path)
    out = {}
    for pattern in itertools.product((False, True), repeat=2):
        xt = torch.where(torch.tensor(pattern), path.mask_id, X0)[None]
        logp = denoiser(xt, torch.ones(1))[0].gather(-1, X0[:, None]).squeeze(-1)
        out[pattern] = float(sum(-logp[i] for i in range(2) if pattern[i]))
    return out


SCHEDULES = {"linear": None, "cosine": "cosine"}


def _path(name):
    import sympy as sp

    tau = sp.Symbol("tau")
    return MaskPath(K) if name == "linear" else MaskPath(K, sp.cos(sp.pi * tau / 2), tau)


def _exact_moment(path, power, order=1):
    """E[Y^order] of the one-sample estimate with t ~ q(t) = power t^(power-1), by quadrature
    over t of the weight's power times the enumerated mask patterns: the exact ELBO for
    order 1 (independent of power)."""
    ce = _pattern_cross_entropies(path)

    cosine = path.alpha_bar(torch.tensor(0.5)) != 0.5

    def integrand(t):
        # the schedules in closed form (not the path's code), 1 - abar written stably
        if cosine:
            keep, masked, slope = math.cos(math.pi * t / 2), 2 * math.sin(math.pi * t / 4) ** 2, math.pi / 2 * math.sin(math.pi * t / 2)
        else:
            keep, masked, slope = 1 - t, t, 1.0
        w = slope / masked
        q = power * t ** (power - 1)
        total = 0.0
        for pattern, value in ce.items():
            chance = math.prod(masked if m else keep for m in pattern)
            total += chance * (w / q * value) ** order
        return total * q

    return quad(integrand, 0, 1, limit=400, points=[1e-6, 1e-3])[0]


def _draws(path, sampler, n, seed, power=None):
    x0 = X0.expand(n, 2).clone()
    g = torch.Generator().manual_seed(seed)
    if power is None:
        return masked_diffusion_nelbo(_model_denoiser(path), path, x0, generator=g, sampler=sampler)
    t, w = masked_elbo_times(n, g, sampler=sampler, power=power)
    return masked_diffusion_nelbo(_model_denoiser(path), path, x0, t=t, generator=g) * w


@pytest.mark.parametrize("schedule", sorted(SCHEDULES))
def test_importance_sampler_is_unbiased_for_the_exact_elbo(schedule):
    path = _path(schedule)
    exact = _exact_moment(path, 1.0)
    # the ELBO by enumeration for the linear schedule: int (1/t)[t^2 CE_both + t(1-t) CE_one]
    if schedule == "linear":
        ce = _pattern_cross_entropies(path)
        closed = ce[(True, True)] / 2 + (ce[(True, False)] + ce[(False, True)]) / 2
        assert exact == pytest.approx(closed, rel=1e-9)
    values = _draws(path, "importance", 80000, seed=1)  # the default sampler
    assert_mean_matches(values[:, None], exact, rtol=0.04)


@pytest.mark.parametrize("sampler", ["stratified_importance", "stratified"])
def test_stratified_samplers_are_unbiased(sampler):
    path = _path("cosine")  # the cosine weight 2/t meets t^2 masks: uniform times are fine here
    exact = _exact_moment(path, 1.0)
    # stratified draws are dependent within a batch: the batch means are the i.i.d. samples
    means = torch.stack([_draws(path, sampler, 64, seed=s).mean() for s in range(1000)])
    assert_mean_matches(means[:, None], exact, rtol=0.03)


def test_importance_variance_is_finite_and_matches_its_closed_form():
    path = _path("linear")
    power = 0.25  # beta < 1/3: the fourth moment is finite too, so the variance's SE is sound
    exact_var = _exact_moment(path, power, 2) - _exact_moment(path, power, 1) ** 2
    values = _draws(path, "importance", 60000, seed=2, power=power)
    centred = (values - _exact_moment(path, power, 1)) ** 2
    assert_mean_matches(centred[:, None], exact_var, rtol=0.05)


def test_uniform_variance_is_infinite_and_the_importance_sampler_is_not_heavy_tailed():
    path = _path("linear")
    # exact: the uniform sampler's second moment restricted to t >= e grows like log(1/e)
    ce = _pattern_cross_entropies(path)
    one = ce[(True, False)] ** 2 + ce[(False, True)] ** 2

    def truncated(e):
        return quad(lambda t: (1 - t) / t * one + t * ce[(True, True)] ** 2, e, 1)[0]

    assert truncated(1e-8) - truncated(1e-4) == pytest.approx(one * math.log(1e4), rel=1e-3)
    # measured: the uniform draws' tail is that of infinite variance, the importance draws' not
    uniform = _draws(path, "uniform", 20000, seed=3)
    importance = _draws(path, "importance", 20000, seed=3)
    assert float(tail_shape(uniform[:, None])) > 0.4  # exact tail shape 1/2 (index 2)
    assert float(tail_shape(importance[:, None])) < 0.4  # exact tail shape 1/3 (index 3)
    exact_var = _exact_moment(path, 0.5, 2) - _exact_moment(path, 0.5, 1) ** 2
    assert importance.var() < 2 * exact_var < uniform.var()


def test_time_sampler_weights_are_the_inverse_proposal_density():
    t, w = masked_elbo_times(1000, torch.Generator().manual_seed(0), power=0.3)
    assert ((t > 0) & (t <= 1)).all()
    torch.testing.assert_close(w, t ** 0.7 / 0.3)
    t, w = masked_elbo_times(8, torch.Generator().manual_seed(0), sampler="stratified")
    assert (w == 1).all() and ((t * 8).ceil() == torch.arange(1, 9)).all()
    with pytest.raises(ValueError, match="sampler"):
        masked_elbo_times(4, sampler="sobol")
    with pytest.raises(ValueError, match="power"):
        masked_elbo_times(4, power=0.0)


# ------------------------------------------------------------------------------- ReMDM


def _forward(path, x0, t):
    return path.forward_probs(x0, torch.tensor(t))


def _enumerate_noisy(path, joint, t):
    """All noisy sequences x_t of the joint's length, their exact probabilities p_t(x_t) and
    the exact per-token posteriors p(x0^l | x_t) by Bayes' rule over the joint."""
    length = joint.ndim
    S = path.num_states
    states = torch.tensor(list(itertools.product(range(S), repeat=length)))
    tokens = torch.where(states == K, path.mask_id, states)
    data = torch.tensor(list(itertools.product(range(K), repeat=length)))
    kernel = _forward(path, torch.arange(K), t)  # (K, S): q(x_t | x0) per token
    like = torch.ones(len(states), len(data))
    for ell in range(length):
        like = like * kernel[data[:, ell]][:, states[:, ell]].T
    weights = like * joint.reshape(-1)[None]
    p_t = weights.sum(1)
    post = torch.zeros(len(states), length, K)
    for ell in range(length):
        for j in range(K):
            post[:, ell, j] = weights[:, data[:, ell] == j].sum(1)
    # states of probability 0 (visible tokens at t = 1) get any posterior: they carry no weight
    post = torch.where(p_t[:, None, None] > 0, post / p_t.clamp_min(1e-300)[:, None, None], 1.0 / K)
    return tokens, p_t, post


def _token_marginals(path, joint, s):
    kernel = _forward(path, torch.arange(K), s)
    marginals = [joint.sum(1), joint.sum(0)] if joint.ndim == 2 else [joint]
    return [m @ kernel for m in marginals]


@pytest.mark.parametrize("schedule,eta", [("rescale", 0.0), ("rescale", 0.5), ("rescale", 1.0), ("cap", 0.2)])
@pytest.mark.parametrize("path_name", ["linear", "cosine"])
def test_remdm_step_preserves_the_marginals_exactly(schedule, eta, path_name):
    path = _path(path_name)
    for s, t in ((0.3, 0.7), (0.0, 0.4), (0.6, 1.0)):
        tokens, p_t, post = _enumerate_noisy(path, JOINT, t)
        sigma = remdm_sigma(path, s, t, schedule=schedule, eta=eta)
        step = remdm_probs(path, post, tokens, s, t, sigma)  # (N, 2, S)
        torch.testing.assert_close(step.sum(-1), torch.ones(len(tokens), 2))
        assert (step >= 0).all()
        got = (p_t[:, None, None] * step).sum(0)
        for ell, exact in enumerate(_token_marginals(path, JOINT, s)):
            torch.testing.assert_close(got[ell], exact, rtol=1e-12, atol=1e-12)
        if eta == 0.0:
            ok = p_t > 0  # reverse_probs refuses the impossible states (visible at t = 1)
            torch.testing.assert_close(step[ok], reverse_probs(path, post[ok], tokens[ok], s, t))


def test_remdm_remasks_visible_tokens_with_probability_sigma():
    path = _path("linear")
    sigma_max = min(1.0, (1 - 0.6) / 0.4)  # abar_s = 0.6, abar_t = 0.4 at s = 0.4, t = 0.6
    sigma = remdm_sigma(path, 0.4, 0.6, schedule="rescale", eta=0.5)
    assert float(sigma) == pytest.approx(0.5 * sigma_max)
    assert float(remdm_sigma(path, 0.4, 0.6, schedule="cap", eta=2.0)) == pytest.approx(sigma_max)
    xt = torch.tensor([[0, path.mask_id]])
    probs = torch.full((1, 2, K), 1.0 / K)
    step = remdm_probs(path, probs, xt, 0.4, 0.6, sigma)[0]
    torch.testing.assert_close(step[0], torch.tensor([1 - float(sigma), 0, 0, float(sigma)]))
    unmask = (0.6 - (1 - float(sigma)) * 0.4) / 0.6
    torch.testing.assert_close(step[1], torch.tensor([unmask / K] * K + [1 - unmask]))
    with pytest.raises(ValueError, match="sigma"):
        remdm_probs(path, probs, xt, 0.4, 0.6, 1.1 * sigma_max)
    with pytest.raises(ValueError, match="s < t"):
        remdm_probs(path, probs, xt, 0.6, 0.4, 0.0)
    with pytest.raises(ValueError, match="eta"):
        remdm_sigma(path, 0.4, 0.6, eta=1.5)


def test_remdm_sample_with_the_exact_denoiser_draws_the_data_law():
    # one token: the factorised step is the exact reverse step, so the law is exactly p
    path = _path("linear")
    law = torch.tensor([0.5, 0.3, 0.2])

    def exact(xt, t):
        return law.log().expand(xt.shape[0], 1, K)

    draws = remdm_sample(exact, path, 20000, 1, 8, torch.Generator().manual_seed(4), eta=0.5)
    frequencies = torch.nn.functional.one_hot(draws[:, 0], K).double()
    assert_mean_matches(frequencies, law, precision=0.02)
