"""ELBO, IWAE, KL, REINFORCE and the continuous-time Gaussian-path ELBO against exact values.

Expected values come from closed forms evaluated with numpy/scipy (PPCA evidence and
posterior, Gaussian KL), from an exact finite sum (IWAE with a binary latent), and from
scipy quadrature of a closed-form integrand (Gaussian-path ELBO).
"""

import math

import numpy as np
import pytest
import scipy.integrate
import scipy.stats
import torch
from scipy.special import comb
from torch import distributions as D

from genmath.analytic import PPCA
from genmath.core.elbo import (
    diagonal_gaussian_kl,
    elbo,
    elbo_weighting,
    gaussian_path_elbo,
    iwae,
    kl_divergence,
    reinforce_elbo,
    score_function_surrogate,
)
from genmath.testing import assert_close, assert_mean_matches, z_threshold


@pytest.fixture(autouse=True)
def _one_thread():
    """Small tensors: intra-op threads only contend on the shared CI cores (measured: 0.5 s vs
    0.5 ms per implicit-score-matching step with 2 threads vs 1 on a loaded 2-core machine)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


# --------------------------------------------------------------------------- fixtures


def _np(t):
    return t.detach().cpu().numpy()


@pytest.fixture
def ppca():
    g = torch.Generator().manual_seed(7)
    W = 1.5 * torch.randn(5, 2, generator=g)
    b = torch.randn(5, generator=g)
    return PPCA(W, b, 0.6)


@pytest.fixture
def data(ppca):
    return ppca.sample(4, generator=torch.Generator().manual_seed(11))


def _exact(ppca, x):
    """log p(x), posterior mean and covariance by numpy, independent of genmath."""
    W, b, s = _np(ppca.W), _np(ppca.b), float(ppca.noise_std)
    d, k = W.shape
    xs = _np(x)
    log_px = scipy.stats.multivariate_normal(b, W @ W.T + s**2 * np.eye(d)).logpdf(xs)
    M = W.T @ W + s**2 * np.eye(k)
    post_mean = np.linalg.solve(M, W.T @ (xs - b).T).T
    post_cov = s**2 * np.linalg.inv(M)
    return np.atleast_1d(log_px), post_mean, post_cov


def _kl_gauss(m1, S1, m2, S2):
    """KL(N(m1, S1) || N(m2, S2)) for each row of the means, numpy; S1, S2 of shape (k, k)."""
    k = S1.shape[-1]
    S2inv = np.linalg.inv(S2)
    diff = m2 - m1
    trace = np.trace(S2inv @ S1)
    quad = np.einsum("bi,ij,bj->b", diff, S2inv, diff)
    logdets = np.linalg.slogdet(S2)[1] - np.linalg.slogdet(S1)[1]
    return 0.5 * (trace + quad - k + logdets)


def _other_encoder(ppca):
    """A diagonal Gaussian q far from the posterior: shifted mean, wrong scales."""
    shift = torch.tensor([0.8, -0.5])
    scale = torch.tensor([0.35, 0.9])

    def encoder(x):
        loc = ppca.posterior(x)[0] + shift
        # a MultivariateNormal, so that torch's closed-form KL against the prior applies
        return D.MultivariateNormal(loc, scale_tril=torch.diag(scale).expand(len(loc), 2, 2))

    return encoder, shift.numpy(), scale.numpy()


def _replicate(x, n):
    """n copies of the batch, stacked: estimates then reshape to (n, B) of i.i.d. draws."""
    return x.repeat(n, 1)


# --------------------------------------------------------------------------- ELBO on PPCA


def test_elbo_with_exact_posterior_and_mc_kl_is_log_evidence_exactly(ppca, data):
    log_px, _, _ = _exact(ppca, data)
    g = torch.Generator().manual_seed(0)
    for n in (1, 3):
        value = elbo(data, ppca.posterior_distribution, ppca.likelihood, ppca.prior, n, g, kl="mc")
        # log p(x, z) - log q(z | x) = log p(x) for every z when q is the posterior
        assert_close(value, torch.as_tensor(log_px), atol=1e-10, name="ELBO(exact q)")


def test_elbo_with_exact_posterior_and_analytic_kl_matches_log_evidence(ppca, data):
    log_px, _, _ = _exact(ppca, data)
    n = 3000
    x = _replicate(data, n)
    value = elbo(
        x,
        ppca.posterior_distribution,
        ppca.likelihood,
        ppca.prior,
        1,
        torch.Generator().manual_seed(1),
        kl="analytic",
    )
    assert_mean_matches(
        value.reshape(n, -1), torch.as_tensor(log_px), precision=0.2, name="ELBO analytic KL"
    )


@pytest.mark.parametrize("kl", ["analytic", "mc"])
def test_elbo_gap_is_kl_to_posterior(ppca, data, kl):
    log_px, post_mean, post_cov = _exact(ppca, data)
    encoder, shift, scale = _other_encoder(ppca)
    expected_gap = _kl_gauss(post_mean + shift, np.diag(scale**2), post_mean, post_cov)
    n = 3000
    x = _replicate(data, n)
    value = elbo(
        x, encoder, ppca.likelihood, ppca.prior, 1, torch.Generator().manual_seed(2), kl=kl
    )
    gap = torch.as_tensor(log_px) - value.reshape(n, -1)
    # each gap to 15 %: a KL of the wrong direction or a missing entropy term is far larger
    assert_mean_matches(
        gap, torch.as_tensor(expected_gap), rtol=0.15, name=f"log p - ELBO ({kl})"
    )
    assert (expected_gap > 0.5).all()  # the case is far from the exact posterior


def test_auto_kl_uses_the_registered_closed_form(ppca, data):
    _, post_mean, _ = _exact(ppca, data)
    encoder, _, _ = _other_encoder(ppca)
    auto = elbo(data, encoder, ppca.likelihood, ppca.prior, 2, torch.Generator().manual_seed(3))
    analytic = elbo(
        data,
        encoder,
        ppca.likelihood,
        ppca.prior,
        2,
        torch.Generator().manual_seed(3),
        kl="analytic",
    )
    assert torch.equal(auto, analytic)


def test_mc_and_analytic_kl_agree_with_closed_form(ppca, data):
    _, post_mean, _ = _exact(ppca, data)
    encoder, shift, scale = _other_encoder(ppca)
    q = encoder(data)
    expected = _kl_gauss(post_mean + shift, np.diag(scale**2), np.zeros((1, 2)), np.eye(2))
    analytic = kl_divergence(q, ppca.prior, method="analytic")
    assert_close(analytic, torch.as_tensor(expected), atol=1e-12, name="analytic KL")
    n = 4000
    q_rep = encoder(_replicate(data, n))
    mc = kl_divergence(q_rep, ppca.prior, method="mc", generator=torch.Generator().manual_seed(4))
    assert_mean_matches(mc.reshape(n, -1), torch.as_tensor(expected), rtol=0.1, name="MC KL")


def test_diagonal_gaussian_kl_matches_closed_form():
    g = torch.Generator().manual_seed(5)
    mean = torch.randn(3, 2, 4, generator=g)
    std = torch.rand(3, 2, 4, generator=g) + 0.2
    prior_mean, prior_std = 0.3, 1.7
    m, s = _np(mean), _np(std)
    expected = (
        (np.log(prior_std / s) + (s**2 + (m - prior_mean) ** 2) / (2 * prior_std**2) - 0.5)
        .reshape(3, -1)
        .sum(1)
    )
    value = diagonal_gaussian_kl(mean, std, prior_mean, prior_std)
    assert_close(value, torch.as_tensor(expected), atol=1e-12, name="diagonal KL")


def test_event_dims_in_batch_shape_are_summed(ppca, data):
    """A decoder returning Normal with batch_shape (N, d) gives the same ELBO as Independent."""

    def plain_decoder(z):
        dist = ppca.likelihood(z)
        return D.Normal(dist.base_dist.loc, dist.base_dist.scale)

    a = elbo(
        data,
        ppca.posterior_distribution,
        ppca.likelihood,
        ppca.prior,
        2,
        torch.Generator().manual_seed(6),
    )
    b = elbo(
        data,
        ppca.posterior_distribution,
        plain_decoder,
        ppca.prior,
        2,
        torch.Generator().manual_seed(6),
    )
    assert_close(a, b, atol=1e-12)


def test_image_shaped_data():
    """x of shape (B, 2, 3) and a latent of shape (B, 2, 2): nothing assumes 2-D vectors."""
    x = torch.randn(3, 2, 3)
    A = torch.randn(6, 4)

    def encoder(x):
        return D.Independent(
            D.Normal(torch.zeros(x.shape[0], 2, 2), torch.ones(x.shape[0], 2, 2)), 2
        )

    def decoder(z):
        loc = (z.flatten(1) @ A.T).reshape(z.shape[0], 2, 3)
        return D.Independent(D.Normal(loc, torch.ones_like(loc)), 2)

    prior = D.Independent(D.Normal(torch.zeros(2, 2), torch.ones(2, 2)), 2)
    value = elbo(x, encoder, decoder, prior, 4, torch.Generator().manual_seed(0))
    assert value.shape == (3,)
    # q = prior here, so KL = 0 and the ELBO is the mean reconstruction term
    assert torch.isfinite(value).all()


def test_generator_reproducible_and_global_stream_untouched(ppca, data):
    torch.manual_seed(123)
    before = torch.rand(3)
    torch.manual_seed(123)
    a = elbo(
        data,
        ppca.posterior_distribution,
        ppca.likelihood,
        ppca.prior,
        2,
        torch.Generator().manual_seed(9),
    )
    after = torch.rand(3)
    b = elbo(
        data,
        ppca.posterior_distribution,
        ppca.likelihood,
        ppca.prior,
        2,
        torch.Generator().manual_seed(9),
    )
    assert torch.equal(a, b)
    assert torch.equal(before, after)


# --------------------------------------------------------------------------- IWAE


def _binary_latent_model(x_value=0.7, prior_p=0.3, q_p=0.3, means=(-2.0, 2.0)):
    prior = D.Bernoulli(torch.tensor(prior_p))
    mu = torch.tensor(means)

    def decoder(z):
        return D.Normal(mu[z.long()], torch.ones(z.shape[0]))

    def encoder(x):
        return D.Bernoulli(torch.full((x.shape[0],), q_p))

    # two possible importance weights: w_z = p(x, z) / q(z)
    lik = scipy.stats.norm(np.array(means), 1.0).pdf(x_value)
    w = np.array([(1 - prior_p) * lik[0] / (1 - q_p), prior_p * lik[1] / q_p])
    return encoder, decoder, prior, w, q_p


def _exact_iwae_binary(w, q1, k):
    """E[log mean of k weights] with j ~ Binomial(k, q1) of them equal to w[1]: exact sum."""
    j = np.arange(k + 1)
    probs = comb(k, j) * q1**j * (1 - q1) ** (k - j)
    return float(np.sum(probs * np.log((j * w[1] + (k - j) * w[0]) / k)))


def test_iwae_matches_exact_finite_sum_and_increases_in_k():
    x_value = 0.7
    encoder, decoder, prior, w, q1 = _binary_latent_model(x_value)
    log_px = math.log(np.sum(w * np.array([1 - q1, q1])))
    exact = {k: _exact_iwae_binary(w, q1, k) for k in (1, 2, 5, 20)}
    values = list(exact.values())
    assert all(b > a + 0.01 for a, b in zip(values, values[1:], strict=False))
    assert values[-1] < log_px
    n = 4000
    x = torch.full((n,), x_value)
    for k, expected in exact.items():
        est = iwae(x, encoder, decoder, prior, k, torch.Generator().manual_seed(k))
        # 0.1 nats: finer than the gap between consecutive k (checked to increase in k)
        assert_mean_matches(
            est[:, None], torch.tensor([expected]), precision=0.1, name=f"IWAE k={k}"
        )


def test_iwae_k1_is_elbo_and_increases_towards_log_evidence_on_ppca(ppca, data):
    log_px, post_mean, post_cov = _exact(ppca, data)
    encoder, shift, scale = _other_encoder(ppca)
    n = 200
    x = _replicate(data, n)
    means, ses = {}, {}
    for k in (1, 4, 64, 256):
        est = iwae(x, encoder, ppca.likelihood, ppca.prior, k, torch.Generator().manual_seed(k))
        est = est.reshape(n, -1).mean(1)  # average over the batch: one number per replicate
        means[k], ses[k] = float(est.mean()), float(est.std() / math.sqrt(n))
    gap_exact = float(np.mean(_kl_gauss(post_mean + shift, np.diag(scale**2), post_mean, post_cov)))
    log_p = float(np.mean(log_px))
    kz = z_threshold(comparisons=4)
    # k = 1 is the ELBO: two-sided against log p(x) - KL(q || p(z|x))
    assert abs(means[1] - (log_p - gap_exact)) < kz * ses[1]
    ks = sorted(means)
    for a, b in zip(ks, ks[1:], strict=False):
        z = (means[b] - means[a]) / math.hypot(ses[a], ses[b])
        assert z > kz, f"IWAE did not increase from k={a} to k={b}: z = {z:.2f}"
    # below log p(x), and closing in: at k = 256 under 2% of the k = 1 gap KL(q || p(z|x))
    assert means[256] < log_p + kz * ses[256]
    assert log_p - means[256] < 0.02 * gap_exact + kz * ses[256]


# --------------------------------------------------------------------------- REINFORCE


@pytest.mark.parametrize("baseline", [None, "leave_one_out", "constant"])
def test_score_function_gradient_is_unbiased(baseline):
    """d/dm E_{z~N(m, s^2)}[z^2 + m z] = 4 m, for N independent copies of m."""
    n, s = 4000, 0.7
    m = torch.full((n,), 1.3, requires_grad=True)
    q = D.Normal(m, s)
    torch.manual_seed(0)
    z = q.sample((4,))
    f = z**2 + m * z
    b = torch.tensor(2.0) if baseline == "constant" else baseline
    surrogate = score_function_surrogate(f, q.log_prob(z), b)
    assert_close(surrogate, f, atol=0.0)  # the value is f itself
    (grad,) = torch.autograd.grad(surrogate.mean(0).sum(), m)
    assert_mean_matches(
        grad, torch.tensor(4 * 1.3), rtol=0.1, name=f"REINFORCE baseline={baseline}"
    )


def test_leave_one_out_baseline_reduces_variance():
    n = 4000
    m = torch.full((n,), 1.3, requires_grad=True)
    q = D.Normal(m, 0.7)
    torch.manual_seed(0)
    z = q.sample((4,))
    grads = {}
    for baseline in (None, "leave_one_out"):
        f = (z + 3.0) ** 2  # a large mean of f makes the plain estimator noisy
        (grads[baseline],) = torch.autograd.grad(
            score_function_surrogate(f, q.log_prob(z), baseline).mean(0).sum(), m
        )
    assert grads["leave_one_out"].var() < 0.5 * grads[None].var()


def test_reinforce_elbo_gradient_matches_closed_form(ppca, data):
    """The ELBO gradient in q's mean is -P (m - mu_post), P the posterior precision."""
    _, post_mean, post_cov = _exact(ppca, data)
    x = data[:1]
    n = 12000  # the score-function gradient is noisy: this many rows resolve it to 15 %
    loc = torch.as_tensor(post_mean[:1] + np.array([[0.8, -0.5]])).repeat(n, 1).requires_grad_(True)
    scale = torch.tensor([0.35, 0.9])

    def encoder(x):
        return D.MultivariateNormal(loc, scale_tril=torch.diag(scale).expand(n, 2, 2))

    for kl in ("mc", "analytic"):
        value = reinforce_elbo(
            x.repeat(n, 1),
            encoder,
            ppca.likelihood,
            ppca.prior,
            4,
            torch.Generator().manual_seed(8),
            kl=kl,
        )
        (grad,) = torch.autograd.grad(value.sum(), loc)
        expected = -np.linalg.solve(post_cov, np.array([0.8, -0.5]))
        assert_mean_matches(
            grad, torch.as_tensor(expected), rtol=0.15, name=f"REINFORCE ELBO grad ({kl})"
        )


# --------------------------------------------------------------------------- bad input


def test_bad_input(ppca, data):
    args = (ppca.posterior_distribution, ppca.likelihood, ppca.prior)
    with pytest.raises(ValueError, match="n_samples must be a positive integer"):
        elbo(data, *args, n_samples=0)
    with pytest.raises(ValueError, match="k must be a positive integer"):
        iwae(data, *args, k=0)
    with pytest.raises(ValueError, match="kl must be one of"):
        elbo(data, *args, kl="exact")
    with pytest.raises(ValueError, match="encoder\\(x\\) must be a torch.distributions"):
        elbo(data, lambda x: x, ppca.likelihood, ppca.prior)
    with pytest.raises(ValueError, match="batch_shape starting with B = 4"):
        elbo(data, lambda x: ppca.posterior_distribution(x[:2]), ppca.likelihood, ppca.prior)
    mixture_prior = D.MixtureSameFamily(
        D.Categorical(torch.ones(2)),
        D.Independent(D.Normal(torch.zeros(2, 2), torch.ones(2, 2)), 1),
    )
    with pytest.raises(ValueError, match="no closed-form KL"):
        elbo(data, ppca.posterior_distribution, ppca.likelihood, mixture_prior, kl="analytic")
    # ... while "auto" falls back to Monte Carlo
    assert elbo(data, ppca.posterior_distribution, ppca.likelihood, mixture_prior).shape == (4,)
    with pytest.raises(ValueError, match="at least 2 samples"):
        score_function_surrogate(torch.zeros(1, 3), torch.zeros(1, 3))
    with pytest.raises(ValueError, match="same shape"):
        score_function_surrogate(torch.zeros(2, 3), torch.zeros(2, 4))
    with pytest.raises(ValueError, match="std must be positive"):
        diagonal_gaussian_kl(torch.zeros(2, 3), -torch.ones(2, 3))


# --------------------------------------------------------------------------- Gaussian path ELBO


# alpha(t), sigma(t) and -dlambda/dt of each tested schedule, typed from their definitions
_SCHEDULE_FORMS = {
    "CondOT": (lambda t: 1 - t, lambda t: t, lambda t: 2 / (t * (1 - t))),
    "VE": (lambda t: 1.0, lambda t: 0.05 * 100.0**t, lambda t: 2 * math.log(100.0)),
}


def _log_snr(form, t):
    alpha, sigma, _ = form
    return 2 * math.log(alpha(t) / sigma(t))


def _gaussian_path_integrand(form, x, mu, Sigma, t):
    """1/2 (-dlambda/dt) e^lambda E_eps ||x - E[x0 | x_t]||^2 for data N(mu, Sigma), in closed
    form: x - xhat = sigma^2 C^-1 (x - mu) - alpha sigma Sigma C^-1 eps, C = alpha^2 Sigma + sigma^2 I."""
    alpha, sigma, minus_dlam = form
    a, s = alpha(t), sigma(t)
    C = a**2 * Sigma + s**2 * np.eye(len(mu))
    Cinv = np.linalg.inv(C)
    r = s**2 * Cinv @ (x - mu)
    B = a * s * Sigma @ Cinv
    expected_sq = r @ r + np.trace(B @ B.T)
    return 0.5 * minus_dlam(t) * (a / s) ** 2 * expected_sq


def _closed_form_path_elbo(form, x, mu, Sigma, t0, t1):
    d = len(mu)
    diffusion, _ = scipy.integrate.quad(
        lambda t: _gaussian_path_integrand(form, x, mu, Sigma, t), t0, t1, limit=200, epsabs=1e-11
    )
    prior = 0.5 * math.exp(_log_snr(form, t1)) * x @ x
    reconstruction = 0.5 * d * (math.log(2 * math.pi) + 1 - _log_snr(form, t0))
    return -(prior + reconstruction + diffusion), diffusion


@pytest.fixture(params=["CondOT", "VE"])
def gaussian_path_case(request):
    path_mod = pytest.importorskip("genmath.core.path")
    schedules = pytest.importorskip("genmath.core.schedules")
    from genmath.analytic import Gaussian

    schedule = schedules.CondOT() if request.param == "CondOT" else schedules.VE(0.05, 5.0)
    path = path_mod.GaussianPath(schedule)
    mu = np.array([0.5, -1.0, 2.0])
    L = np.array([[1.0, 0.0, 0.0], [0.6, 0.8, 0.0], [-0.3, 0.4, 0.5]])
    Sigma = L @ L.T
    data = Gaussian(torch.as_tensor(mu), torch.as_tensor(Sigma))
    x = torch.tensor([[0.2, -0.4, 1.0], [2.0, 1.0, -1.0]])
    return path, data, mu, Sigma, x, _SCHEDULE_FORMS[request.param]


@pytest.mark.parametrize("parameterization", ["x0", "eps", "score", "velocity", "v"])
def test_gaussian_path_elbo_matches_quadrature(gaussian_path_case, parameterization):
    path, data, mu, Sigma, x, form = gaussian_path_case
    marginal = data.marginal(path)
    exact_model = {
        "x0": marginal.denoise,
        "eps": marginal.eps,
        "score": marginal.score,
        "velocity": marginal.velocity,
        "v": lambda xt, t: path.convert(marginal.eps(xt, t), xt, t, "eps", "v"),
    }[parameterization]
    t0, t1 = (float(v) for v in path.schedule.safe_interval)
    expected = [_closed_form_path_elbo(form, _np(xi), mu, Sigma, t0, t1) for xi in x]
    # Monte Carlo over t (one time per row); Gauss-Legendre in lambda with enough nodes that
    # its deterministic error is far below the standard error of the remaining eps average
    # (20,000 rows for the Monte Carlo over t resolve the bound to 10 %, the default precision)
    for method, n, n_t in (("mc", 20000, 1), ("quadrature", 500, 64)):
        value = gaussian_path_elbo(
            exact_model,
            x.repeat(n, 1),
            path,
            parameterization,
            n_t=n_t,
            method=method,
            generator=torch.Generator().manual_seed(3),
        )
        assert_mean_matches(
            value.reshape(n, -1),
            torch.tensor([e[0] for e in expected]),
            name=f"path ELBO {parameterization} {method}",
        )


def test_gaussian_path_elbo_t_sampling_and_terms(gaussian_path_case):
    path, data, mu, Sigma, x, form = gaussian_path_case
    t0, t1 = 0.05, 0.95
    expected = [_closed_form_path_elbo(form, _np(xi), mu, Sigma, t0, t1) for xi in x]
    n = 4000
    value, terms = gaussian_path_elbo(
        data.marginal(path).denoise,
        x.repeat(n, 1),
        path,
        "x0",
        sampling="t",
        t_interval=(t0, t1),
        generator=torch.Generator().manual_seed(4),
        terms=True,
    )
    # (the default precision: 10 % of the largest bound)
    assert_mean_matches(value.reshape(n, -1), torch.tensor([e[0] for e in expected]))
    assert_mean_matches(terms["diffusion"].reshape(n, -1), torch.tensor([e[1] for e in expected]))


def test_gaussian_path_elbo_bad_input(gaussian_path_case):
    path, data, _, _, x, _ = gaussian_path_case
    model = data.marginal(path).denoise
    with pytest.raises(ValueError, match="t_interval must satisfy"):
        gaussian_path_elbo(model, x, path, t_interval=(0.5, 0.2))
    with pytest.raises(ValueError, match="method must be"):
        gaussian_path_elbo(model, x, path, method="simpson")
    with pytest.raises(ValueError, match="sampling must be"):
        gaussian_path_elbo(model, x, path, sampling="sigma")


# --------------------------------------------------------------------------- weightings


def test_elbo_weighting_closed_forms():
    """Kingma & Gao: flow matching on CondOT weights the ELBO by exp(-lambda/2); the
    x0-loss by 2 exp(-lambda) / (-dlambda/dt); the eps-loss by 2 / (-dlambda/dt)."""
    path_mod = pytest.importorskip("genmath.core.path")
    schedules = pytest.importorskip("genmath.core.schedules")
    path = path_mod.GaussianPath(schedules.CondOT())
    lam = torch.linspace(-6, 6, 13)
    t = 1 / (1 + np.exp(_np(lam) / 2))  # CondOT: lambda = 2 log((1-t)/t)
    minus_dlam = 2 / (t * (1 - t))
    l_np = _np(lam)
    expected = {
        "velocity": np.exp(-l_np / 2),
        "eps": 2 / minus_dlam,
        "x0": 2 * np.exp(-l_np) / minus_dlam,
        "score": 2 / t**2 / minus_dlam,
        "v": 2 * ((1 - t) ** 2 + t**2) ** 2 / (1 - t) ** 2 / minus_dlam,
    }
    for loss, want in expected.items():
        assert_close(
            elbo_weighting(loss, path, lam),
            torch.as_tensor(want),
            atol=1e-10,
            rtol=1e-10,
            name=loss,
        )
    with pytest.raises(ValueError, match="loss must be one of"):
        elbo_weighting("mse", path, lam)


# --------------------------------------------------------------------------- derivations


def test_elbo_derivations_verify():
    from genmath.derivations import select

    items = (
        select("D-iwae*") + select("D-reinforce*") + select("D-vdm*") + select("D-elbo-weighting*")
    )
    assert len(items) == 4
    for item in items:
        result = item.verify()
        assert result.ok, (item.id, result.failures())
