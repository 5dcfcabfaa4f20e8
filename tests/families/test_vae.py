"""VAE family: linear-Gaussian VAE against PPCA's closed forms, KL and importance sampling."""

import math

import numpy as np
import pytest
import torch
from torch import distributions as D
from torch import nn

from genmath.analytic import PPCA
from genmath.families.vae import (
    IWAE,
    VAE,
    BernoulliDecoder,
    BetaVAE,
    CategoricalDecoder,
    GaussianDecoder,
    GaussianEncoder,
    LinearGaussianVAE,
    ppca_maximum_likelihood,
)
from genmath.testing import assert_close, assert_mean_matches


def _ppca_data(n=500, seed=0):
    g = torch.Generator().manual_seed(seed)
    W = torch.randn(5, 2, generator=g) * torch.tensor([2.0, 1.0])
    b = torch.randn(5, generator=g)
    return PPCA(W, b, 0.5).sample(n, g)


def _tipping_bishop_max_log_likelihood(x: np.ndarray, k: int) -> float:
    """Mean maximised log-likelihood, Tipping & Bishop (1999) eq. (4) at the optimum:
    -1/2 [d log 2 pi + sum_{j<=k} log l_j + (d - k) log s^2 + d]."""
    n, d = x.shape
    lam = np.sort(np.linalg.eigvalsh(np.cov(x.T, bias=True)))[::-1]
    s2 = lam[k:].mean()
    return -0.5 * (d * math.log(2 * math.pi) + np.log(lam[:k]).sum() + (d - k) * math.log(s2) + d)


def test_ppca_maximum_likelihood_closed_form():
    x = _ppca_data()
    fitted = ppca_maximum_likelihood(x, 2)
    expected = _tipping_bishop_max_log_likelihood(x.numpy(), 2)
    assert_close(fitted.log_prob(x).mean(), torch.tensor(expected), atol=1e-10)


@pytest.fixture
def one_thread():
    """Tiny tensors: intra-op threads only add synchronisation (and contention on a shared
    machine), so the training test runs single-threaded and restores the setting."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def test_linear_vae_trained_by_gradient_reaches_ppca_optimum_and_closes_the_gap(one_thread):
    x = _ppca_data()
    model = LinearGaussianVAE(5, 2, generator=torch.Generator().manual_seed(1))
    optimiser = torch.optim.LBFGS(
        model.parameters(),
        max_iter=400,
        history_size=50,
        line_search_fn="strong_wolfe",
        tolerance_grad=1e-10,
        tolerance_change=1e-14,
    )

    def closure():
        optimiser.zero_grad()
        # common random numbers: the same draws at every evaluation make the objective smooth
        loss = model.loss(x, n_samples=4, generator=torch.Generator().manual_seed(0))
        loss.backward()
        return loss

    optimiser.step(closure)
    optimum = _tipping_bishop_max_log_likelihood(x.numpy(), 2)
    reached = float(model.as_ppca().log_prob(x).mean())
    # tolerance: per-point nats; the Monte-Carlo ELBO's parameter noise costs O(1/(N S))
    assert optimum - 1e-3 < reached <= optimum + 1e-9
    assert float(model.elbo_gap(x).mean().detach()) < 5e-3


def test_mc_kl_of_gaussian_encoder_matches_closed_form():
    g = torch.Generator().manual_seed(2)
    net = nn.Linear(3, 4)
    with torch.no_grad():
        net.weight.copy_(torch.randn(4, 3, generator=g))
        net.bias.copy_(torch.randn(4, generator=g))
    encoder = GaussianEncoder(3, 2, network=net)
    vae = VAE(encoder, GaussianDecoder(2, (3,), hidden=(4,)))
    x = torch.tensor([[0.7, -1.1, 0.4]])
    out = (x @ net.weight.T + net.bias).detach()[0]
    mean, log_std = out[:2], out[2:]
    exact = 0.5 * (torch.exp(2 * log_std) + mean**2 - 1 - 2 * log_std).sum()
    assert_close(vae.kl(x, method="analytic")[0], exact, atol=1e-12)
    samples = vae.kl(x.expand(20000, 3), method="mc", generator=g).detach()
    assert_mean_matches(samples, exact, name="MC KL")


def _orthogonal_ppca(seed=3):
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(5, 2, generator=g))
    return PPCA(q * torch.tensor([1.5, 0.7]), torch.randn(5, generator=g), 0.4)


def _skewed_ppca(seed=4):
    g = torch.Generator().manual_seed(seed)
    return PPCA(torch.randn(5, 2, generator=g), torch.randn(5, generator=g), 0.6)


def _inexact_model(ppca):
    """The PPCA decoder with an encoder moved off the posterior (wider, shifted)."""
    model = LinearGaussianVAE.from_ppca(ppca)
    with torch.no_grad():
        model.encoder.log_std += 0.2
        model.encoder.bias += 0.1
    return model


def test_exact_posterior_encoder_gives_exact_elbo_and_likelihood():
    ppca = _orthogonal_ppca()
    x = ppca.sample(4, torch.Generator().manual_seed(0))
    model = LinearGaussianVAE.from_ppca(ppca)
    g = torch.Generator().manual_seed(1)
    assert_close(model.elbo(x, generator=g, kl="mc"), ppca.log_prob(x), atol=1e-10)
    assert_close(model.log_likelihood(x, k=10, generator=g), ppca.log_prob(x), atol=1e-10)
    assert_close(model.elbo_gap(x), torch.zeros(4), atol=1e-12)


def test_importance_weights_are_unbiased_for_the_marginal():
    ppca = _skewed_ppca()
    model = _inexact_model(ppca)
    x = ppca.sample(1, torch.Generator().manual_seed(5)) + 0.5
    g = torch.Generator().manual_seed(6)
    # IWAE with k = 1 is one log importance weight; E[w] = p(x)
    log_w = IWAE(model.encoder, model.decoder, k=1).bound(x.expand(40000, 5), generator=g)
    assert_mean_matches(
        torch.exp(log_w - ppca.log_prob(x)).detach(), torch.tensor(1.0), name="w / p(x)"
    )
    # and the ELBO's mean is log p(x) minus the exact gap KL(q || p(z|x))
    elbo = model.elbo(x.expand(40000, 5), generator=g, kl="mc").detach()
    assert_mean_matches(elbo, (ppca.log_prob(x) - model.elbo_gap(x).detach())[0], name="ELBO")


def test_importance_sampled_log_likelihood_matches_ppca():
    ppca = _skewed_ppca()
    model = _inexact_model(ppca)
    x = ppca.sample(3, torch.Generator().manual_seed(7))
    g = torch.Generator().manual_seed(8)
    k = 20000
    estimate = model.log_likelihood(x, k=k, generator=g, chunk=5000)
    gap = model.elbo_gap(x).detach()
    assert gap.min() > 0.05  # the encoder is not exact: the check is not trivial
    # log of a mean of k weights: standard error ~ sd(w/p)/sqrt(k) and bias ~ Var(w/p)/(2k)
    # (delta method), with sd(w/p) measured on separate single-weight draws
    single = IWAE(model.encoder, model.decoder, k=1)
    log_w = single.bound(x.repeat(4000, 1), g).reshape(4000, 3)
    ratios = torch.exp(log_w - ppca.log_prob(x))
    sd = ratios.detach().std(0)
    tolerance = 6 * sd / math.sqrt(k) + sd**2 / (2 * k)
    assert ((estimate - ppca.log_prob(x)).abs() < tolerance).all(), (estimate, tolerance)
    l1 = torch.stack(
        [IWAE(model.encoder, model.decoder, k=1).bound(x, g) for _ in range(200)]
    ).mean(0)
    l20 = torch.stack(
        [IWAE(model.encoder, model.decoder, k=20).bound(x, g) for _ in range(200)]
    ).mean(0)
    # E L_1 = log p - gap (gap > 0.05 here), and L_20 is far closer to log p
    assert (l1 < l20 - 0.05).all()


def test_beta_vae_loss_is_reconstruction_minus_beta_kl():
    ppca = _skewed_ppca()
    base = LinearGaussianVAE.from_ppca(ppca)
    beta = 3.0
    model = BetaVAE(base.encoder, base.decoder, beta=beta)
    x = torch.tensor([[0.3, -0.2, 1.0, 0.5, -1.5]])
    q = base.encoder(x)
    m, tau2 = q.mean[0].detach(), q.variance[0].detach()
    W, b, s2 = ppca.W, ppca.b, ppca.noise_std**2
    # closed forms: E_q log N(x; Wz + b, s^2 I) and KL(N(m, diag tau^2) || N(0, I))
    recon = -0.5 * (
        5 * torch.log(2 * math.pi * s2)
        + (((x[0] - W @ m - b) ** 2).sum() + (W**2 @ tau2).sum()) / s2
    )
    kl = 0.5 * (tau2 + m**2 - 1 - tau2.log()).sum()
    g = torch.Generator().manual_seed(9)
    batch = x.expand(100, 5)
    losses = torch.stack([model.loss(batch, generator=g).detach() for _ in range(200)])
    assert_mean_matches(losses, -(recon - beta * kl), name="beta-VAE loss")


def test_nonlinear_vae_decoders_shapes_and_gradients(generator):
    x_bin = torch.bernoulli(torch.full((6, 2, 3), 0.4), generator=generator)
    x_cat = torch.randint(0, 5, (6, 2, 3), generator=generator)
    for decoder, x in [
        (BernoulliDecoder(2, (2, 3), hidden=(8,)), x_bin),
        (CategoricalDecoder(2, (2, 3), categories=5, hidden=(8,)), x_cat),
        (GaussianDecoder(2, (2, 3), hidden=(8,)), x_bin),
    ]:
        vae = VAE(GaussianEncoder(6, 2, hidden=(8,)), decoder)
        loss = vae.loss(
            x.double() if decoder.__class__ is not CategoricalDecoder else x, generator=generator
        )
        loss.backward()
        assert torch.isfinite(loss)
        assert vae.encoder.network[0].weight.grad.abs().sum() > 0
        assert vae.sample(4, generator=generator).sample().shape == (4, 2, 3)


def test_bad_input_decoder_event_shape_and_encoder_features(generator):
    class Wrong(nn.Module):
        def forward(self, z):
            return D.Independent(D.Normal(torch.zeros(z.shape[0], 3), 1.0), 1)

    vae = VAE(GaussianEncoder(4, 2, hidden=(4,)), Wrong())
    x = torch.randn(5, 4, generator=generator)
    with pytest.raises(ValueError, match=r"shape \(5, 3\) for 5 latents; expected .* \(5, 4\)"):
        vae.elbo(x)
    with pytest.raises(ValueError, match="4 features per example"):
        vae.elbo(torch.randn(5, 3))
    with pytest.raises(ValueError, match="latent_dim must be smaller"):
        ppca_maximum_likelihood(x, 4)
    with pytest.raises(ValueError, match="beta must be a number >= 0"):
        VAE(GaussianEncoder(4, 2), Wrong(), beta=-1.0)
