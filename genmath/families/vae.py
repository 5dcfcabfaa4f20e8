r"""Variational autoencoders: VAE, β-VAE, IWAE, and the linear-Gaussian VAE (probabilistic PCA).

A VAE is the model $p(z)\,p_\theta(x \mid z)$ with an encoder $q_\phi(z \mid x)$, trained by
maximising the evidence lower bound of `genmath.core.elbo` ([Kingma & Welling 2014];
[Rezende et al. 2014]):

$$
\mathrm{ELBO}(x) = \mathbb E_{q}[\log p(x \mid z)] - \mathrm{KL}(q(z \mid x) \,\|\, p(z))
= \log p(x) - \mathrm{KL}(q(z \mid x) \,\|\, p(z \mid x)).
$$

Nothing here re-derives the bound: `VAE.elbo` is `genmath.core.elbo.elbo`, `IWAE.loss` and
`VAE.log_likelihood` are `genmath.core.elbo.iwae` (derivations D-kl-gaussian, D-kl-vae,
D-iwae-bound). This module supplies the encoder and decoder modules (each returns a
`torch.distributions.Distribution`), the β weighting, shape checks, and the linear-Gaussian
case whose optimum is known in closed form (Tipping & Bishop 1999).
"""

from __future__ import annotations

import math

import torch
from torch import distributions as D
from torch import nn

from genmath._implements import implements
from genmath.core._random import global_stream_from

from ..analytic import PPCA
from ..core._shapes import check_batch, positive_int
from ..core._validate import (
    InputTypeError,
    check_dtype,
    check_finite,
    check_generator,
    check_option,
    non_negative,
)
from ..core.elbo import _check_input
from ..core.elbo import elbo as _elbo
from ..core.elbo import iwae as _iwae
from ..core.elbo import kl_divergence as _kl_divergence
from ._vae_networks import (
    BernoulliDecoder,
    CategoricalDecoder,
    GaussianDecoder,
    GaussianEncoder,
    _check_reconstruction,  # noqa: F401  (the tokenizer's VQ-VAE checks its decoder with it)
    _CheckedDecoder,
)

__all__ = [
    "GaussianEncoder",
    "BernoulliDecoder",
    "GaussianDecoder",
    "CategoricalDecoder",
    "VAE",
    "BetaVAE",
    "IWAE",
    "LinearGaussianVAE",
    "ppca_maximum_likelihood",
]


# --------------------------------------------------------------------------- models


def _standard_normal(latent_dim: int, like: torch.Tensor) -> D.Independent:
    zeros = torch.zeros(latent_dim, dtype=like.dtype, device=like.device)
    return D.Independent(
        D.Normal(zeros, torch.ones_like(zeros), validate_args=False), 1, validate_args=False
    )


class VAE(nn.Module):
    r"""Variational autoencoder: encoder $q(z \mid x)$, decoder $p(x \mid z)$, prior $p(z)$.

    The loss is the negative β-weighted ELBO, averaged over the batch,

    $$
    -\Big(\mathbb E_q[\log p(x \mid z)] - \beta\, \mathrm{KL}(q(z \mid x) \,\|\, p(z))\Big)
    = -\mathrm{ELBO}(x) + (\beta - 1)\,\mathrm{KL}(q(z \mid x) \,\|\, p(z)),
    $$

    with the ELBO and the KL computed by `genmath.core.elbo` (D-kl-vae; analytic KL when
    torch registers one). $\beta = 1$ is the VAE of Kingma & Welling (2014); $\beta > 1$ the
    β-VAE of Higgins et al. (2017).

    Arguments:
        encoder: ``x -> q(z | x)`` (e.g. `GaussianEncoder`).
        decoder: ``z -> p(x | z)`` over exactly ``x.shape[1:]`` per latent (checked).
        prior: $p(z)$; default $\mathcal N(0, I_k)$ with $k$ = ``encoder.latent_dim``.
        beta: weight of the KL term in the loss.
    """

    def __init__(
        self,
        encoder: nn.Module,
        decoder: nn.Module,
        prior: D.Distribution | None = None,
        beta: float = 1.0,
    ):
        super().__init__()
        beta = non_negative(beta, "beta")
        if prior is not None and not isinstance(prior, D.Distribution):
            raise InputTypeError(
                f"prior must be a torch.distributions.Distribution or None, got {type(prior).__name__}"
            )
        if prior is None and not hasattr(encoder, "latent_dim"):
            raise ValueError(
                "give a prior, or an encoder with a latent_dim attribute for the N(0, I) prior"
            )
        self.encoder, self.decoder, self._prior, self.beta = encoder, decoder, prior, float(beta)

    def prior(self, like: torch.Tensor) -> D.Distribution:
        """$p(z)$ in the dtype/device of ``like``."""
        if self._prior is not None:
            return self._prior
        if not like.is_floating_point():  # integer class data: the model's own dtype
            like = next((p for p in self.parameters() if p.is_floating_point()), torch.empty(0))
        return _standard_normal(self.encoder.latent_dim, like)

    def _data(self, x):
        """``x`` checked once at the model's entry: a tensor ``(B, *event)``."""
        return _check_input(x)

    def _decoder_for(self, x: torch.Tensor) -> _CheckedDecoder:
        return _CheckedDecoder(self.decoder, x.shape[1:])

    @implements("D-elbo-recon-kl")
    def elbo(
        self,
        x: torch.Tensor,
        n_samples: int = 1,
        generator: torch.Generator | None = None,
        kl: str = "auto",
    ) -> torch.Tensor:
        """$\\mathrm{ELBO}(x)$, shape ``(B,)``: `genmath.core.elbo.elbo`."""
        x = self._data(x)
        return _elbo(x, self.encoder, self._decoder_for(x), self.prior(x), n_samples, generator, kl)

    def kl(
        self,
        x: torch.Tensor,
        method: str = "auto",
        n_samples: int = 1,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """$\\mathrm{KL}(q(z \\mid x) \\,\\|\\, p(z))$, shape ``(B,)``:
        `genmath.core.elbo.kl_divergence` (``"analytic"``, ``"mc"`` or ``"auto"``)."""
        x = self._data(x)
        check_option(method, ("auto", "analytic", "mc"), "method")
        return _kl_divergence(self.encoder(x), self.prior(x), method, n_samples, generator)

    @implements("D-beta-vae")
    def loss(
        self, x: torch.Tensor, n_samples: int = 1, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Batch mean of $-\\mathrm{ELBO} + (\\beta - 1)\\mathrm{KL}$ (a scalar to minimise)."""
        bound = self.elbo(x, n_samples, generator)
        if self.beta != 1.0:
            bound = bound - (self.beta - 1.0) * self.kl(x)
        return -bound.mean()

    @implements("D-iwae-bound")
    def log_likelihood(
        self,
        x: torch.Tensor,
        k: int = 1000,
        generator: torch.Generator | None = None,
        chunk: int = 1000,
    ) -> torch.Tensor:
        r"""Importance-sampled $\log p(x)$ with $k$ draws from the encoder, shape ``(B,)``:
        the IWAE bound $\mathcal L_k$ of `genmath.core.elbo.iwae`, which rises to
        $\log p(x)$ as $k$ grows (D-iwae-bound; Burda et al. 2016). The draws are taken in
        chunks of ``chunk`` and combined exactly:
        $\log\frac1k\sum_i w_i = \operatorname{logsumexp}_c(\mathcal L_{k_c} + \log k_c) - \log k$.
        """
        k, chunk = positive_int(k, "k"), positive_int(chunk, "chunk")
        x = self._data(x)
        check_generator(generator)
        sizes = [chunk] * (k // chunk) + ([k % chunk] if k % chunk else [])
        with torch.no_grad():
            parts = [
                _iwae(x, self.encoder, self._decoder_for(x), self.prior(x), size, generator)
                + math.log(size)
                for size in sizes
            ]
        return torch.logsumexp(torch.stack(parts), 0) - math.log(k)

    @torch.no_grad()
    def sample(
        self, n: int, generator: torch.Generator | None = None, like: torch.Tensor | None = None
    ):
        """The decoder's distribution $p(x \\mid z)$ at ``n`` latents $z \\sim p(z)$ (take
        ``.sample()`` or ``.mean`` of it)."""
        n = positive_int(n, "n")
        check_generator(generator)
        if like is None:
            first = next(self.parameters(), None)
            like = first if first is not None else torch.empty(0)
        z = _draw(self.prior(like), n, generator)
        return self.decoder(z)


def _draw(dist: D.Distribution, n: int, generator: torch.Generator | None) -> torch.Tensor:
    with global_stream_from(generator):
        return dist.sample((n,))


class BetaVAE(VAE):
    """The β-VAE of Higgins et al. (2017): `VAE` with a KL weight $\\beta$ (default 4)."""

    def __init__(
        self,
        encoder: nn.Module,
        decoder: nn.Module,
        beta: float = 4.0,
        prior: D.Distribution | None = None,
    ):
        super().__init__(encoder, decoder, prior, beta)


class IWAE(VAE):
    r"""Importance-weighted autoencoder (Burda et al. 2016): the loss is $-\mathcal L_k$,
    the batch mean of `genmath.core.elbo.iwae` with ``k`` importance samples
    (D-iwae-bound), a tighter bound than the ELBO ($\mathcal L_1$) for $k > 1$."""

    def __init__(
        self,
        encoder: nn.Module,
        decoder: nn.Module,
        k: int = 5,
        prior: D.Distribution | None = None,
    ):
        super().__init__(encoder, decoder, prior)
        self.k = positive_int(k, "k")

    @implements("D-iwae-bound")
    def bound(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """$\\mathcal L_k(x)$, shape ``(B,)``."""
        x = self._data(x)
        return _iwae(x, self.encoder, self._decoder_for(x), self.prior(x), self.k, generator)

    @implements("D-iwae-bound")
    def loss(
        self, x: torch.Tensor, n_samples: int = 1, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Batch mean of $-\\mathcal L_k$ (``n_samples`` is ignored: the bound uses ``k``)."""
        return -self.bound(x, generator).mean()


# --------------------------------------------------------------------------- linear-Gaussian VAE


class _LinearEncoder(nn.Module):
    def __init__(self, data_dim: int, latent_dim: int):
        super().__init__()
        self.latent_dim = latent_dim
        self.weight = nn.Parameter(torch.zeros(latent_dim, data_dim))
        self.bias = nn.Parameter(torch.zeros(latent_dim))
        # the exact posterior covariance s^2 M^{-1} does not depend on x, so neither does q's
        self.log_std = nn.Parameter(torch.zeros(latent_dim))

    def forward(self, x):
        mean = x @ self.weight.mT + self.bias
        return D.Independent(
            D.Normal(mean, self.log_std.exp().expand_as(mean), validate_args=False),
            1,
            validate_args=False,
        )


class _LinearDecoder(nn.Module):
    def __init__(self, data_dim: int, latent_dim: int):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(data_dim, latent_dim))
        self.bias = nn.Parameter(torch.zeros(data_dim))
        self.log_noise_std = nn.Parameter(torch.zeros(()))

    def forward(self, z):
        loc = z @ self.weight.mT + self.bias
        return D.Independent(
            D.Normal(loc, self.log_noise_std.exp().expand_as(loc), validate_args=False),
            1,
            validate_args=False,
        )


class LinearGaussianVAE(VAE):
    r"""The linear-Gaussian VAE: $z \sim \mathcal N(0, I_k)$,
    $p(x \mid z) = \mathcal N(Wz + b, s^2 I_d)$, $q(z \mid x) = \mathcal N(Vx + c,
    \operatorname{diag} \tau^2)$ — probabilistic PCA with an amortised mean-field encoder.

    Its marginal is exact, $p(x) = \mathcal N(b, WW^\top + s^2 I)$ (`as_ppca`), so a trained
    model can be compared with the closed-form maximum-likelihood solution of Tipping &
    Bishop (1999) (`ppca_maximum_likelihood`). At the maximum of the ELBO over all
    parameters, the decoder is a maximum-likelihood PPCA and the gap
    $\mathrm{KL}(q \,\|\, p(z \mid x))$ is zero (Lucas et al. 2019): the ELBO pushes
    $W$ to orthogonal columns, where the exact posterior is diagonal.

    Arguments:
        data_dim: $d$.
        latent_dim: $k$.
        generator: seeds the initial parameters.
    """

    def __init__(self, data_dim: int, latent_dim: int, generator: torch.Generator | None = None):
        data_dim, latent_dim = (
            positive_int(data_dim, "data_dim"),
            positive_int(latent_dim, "latent_dim"),
        )
        super().__init__(_LinearEncoder(data_dim, latent_dim), _LinearDecoder(data_dim, latent_dim))
        self.data_dim, self.latent_dim = data_dim, latent_dim
        with torch.no_grad():
            self.decoder.weight.copy_(
                torch.randn(data_dim, latent_dim, generator=generator) / math.sqrt(latent_dim)
            )
            self.encoder.weight.copy_(
                torch.randn(latent_dim, data_dim, generator=generator) / math.sqrt(data_dim)
            )

    @classmethod
    @implements("D-mean-field-gaussian")
    def from_ppca(cls, ppca: PPCA) -> LinearGaussianVAE:
        r"""The decoder of ``ppca`` with the best encoder of this family: the exact posterior
        mean $M^{-1}W^\top(x - b)$ and the mean-field variances
        $\tau_j^2 = 1/(\Sigma_{\text{post}}^{-1})_{jj}$, which minimise
        $\mathrm{KL}(q \,\|\, p(z \mid x))$ over diagonal Gaussians and equal the exact
        posterior variances when $W^\top W$ is diagonal."""
        d, k = ppca.W.shape
        model = cls(d, k).to(ppca.W.dtype)
        # the posterior mean is affine in x: read its matrix and offset off d + 1 points
        points = torch.cat([ppca.W.new_zeros(1, d), torch.eye(d, dtype=ppca.W.dtype)])
        means, cov = ppca.posterior(points)
        with torch.no_grad():
            model.decoder.weight.copy_(ppca.W)
            model.decoder.bias.copy_(ppca.b)
            model.decoder.log_noise_std.copy_(ppca.noise_std.log())
            model.encoder.bias.copy_(means[0])
            model.encoder.weight.copy_((means[1:] - means[0]).mT)
            model.encoder.log_std.copy_(-0.5 * torch.linalg.inv(cov).diagonal().log())
        return model

    @implements("D-elbo-gap", "D-mean-field-gaussian")
    def as_ppca(self) -> PPCA:
        """The model's marginal as an exact `genmath.analytic.PPCA` (detached)."""
        return PPCA(
            self.decoder.weight.detach(),
            self.decoder.bias.detach(),
            self.decoder.log_noise_std.detach().exp(),
        )

    @implements("D-elbo-gap", "D-mean-field-gaussian")
    def elbo_gap(self, x: torch.Tensor) -> torch.Tensor:
        r"""The exact gap $\log p(x) - \mathrm{ELBO}(x) = \mathrm{KL}(q(z \mid x) \,\|\,
        p(z \mid x))$, shape ``(B,)``, with the exact PPCA posterior (analytic KL between
        Gaussians, `genmath.core.elbo.kl_divergence`)."""
        check_batch(x, "x")
        if x.ndim != 2 or x.shape[1] != self.data_dim:
            raise ValueError(f"x must have shape (B, {self.data_dim}), got {tuple(x.shape)}")
        check_dtype(x, self.encoder.weight.dtype, "x", "LinearGaussianVAE")
        q = self.encoder(x)
        q_full = D.MultivariateNormal(
            q.mean, scale_tril=torch.diag_embed(q.stddev), validate_args=False
        )
        return _kl_divergence(q_full, self.as_ppca().posterior_distribution(x), "analytic")


@implements("D-ppca-maximum-likelihood")
def ppca_maximum_likelihood(x: torch.Tensor, latent_dim: int) -> PPCA:
    r"""The closed-form maximum-likelihood PPCA of data ``x`` ``(N, d)`` (Tipping & Bishop
    1999): with $\lambda_1 \ge \dots \ge \lambda_d$ and $U$ the eigenvalues and eigenvectors
    of the sample covariance $S = \frac1N\sum_n (x_n - \bar x)(x_n - \bar x)^\top$,

    $$
    b = \bar x, \qquad s^2 = \frac{1}{d - k}\sum_{j > k} \lambda_j, \qquad
    W = U_k (\Lambda_k - s^2 I)^{1/2}
    $$

    (any rotation $W R$ has the same likelihood). Needs $k < d$ and $\lambda_k > s^2$.
    """
    check_batch(x, "x")
    if x.ndim != 2 or x.shape[0] < 2:
        raise ValueError(f"x must have shape (N, d) with N >= 2 points, got {tuple(x.shape)}")
    check_finite(x, "x", "a sample covariance needs finite points")
    n, d = x.shape
    k = positive_int(latent_dim, "latent_dim")
    if k >= d:
        raise ValueError(f"latent_dim must be smaller than the data dimension d = {d}, got {k}")
    mean = x.mean(0)
    centred = x - mean
    eigenvalues, eigenvectors = torch.linalg.eigh(centred.mT @ centred / n)
    eigenvalues, eigenvectors = eigenvalues.flip(0), eigenvectors.flip(1)
    noise_var = eigenvalues[k:].mean()
    if not eigenvalues[k - 1] > noise_var:
        raise ValueError(
            "the k-th eigenvalue does not exceed the noise variance: no rank-k PPCA optimum"
        )
    W = eigenvectors[:, :k] * (eigenvalues[:k] - noise_var).sqrt()
    return PPCA(W, mean, noise_var.sqrt())
