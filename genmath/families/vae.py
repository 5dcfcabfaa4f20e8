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
from collections.abc import Sequence

import torch
from torch import distributions as D
from torch import nn

from genmath._implements import implements, plumbing
from genmath.core._random import global_stream_from

from ..analytic import PPCA
from ..core._autoregressive import _mlp
from ..core._shapes import positive_int
from ..core.elbo import elbo as _elbo
from ..core.elbo import iwae as _iwae
from ..core.elbo import kl_divergence as _kl_divergence

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


# --------------------------------------------------------------------------- shape checks


def _event_text(shape) -> str:
    return "(" + ", ".join(str(s) for s in shape) + ("," if len(shape) == 1 else "") + ")"


def _check_reconstruction(dist, x: torch.Tensor, role: str) -> torch.Tensor:
    """``log p(x | .)`` summed over the event, shape ``(B,)``, after checking that the
    distribution is over exactly the shape of ``x`` (a decoder that returns a smaller or a
    broadcastable shape would otherwise be summed over the wrong number of terms)."""
    if not isinstance(dist, D.Distribution):
        raise ValueError(
            f"{role} must return a torch.distributions.Distribution, got {type(dist).__name__}"
        )
    shape = tuple(dist.batch_shape + dist.event_shape)
    if shape != tuple(x.shape):
        raise ValueError(
            f"{role} returned a distribution over shape {_event_text(shape)} "
            f"(batch_shape {_event_text(dist.batch_shape)} + event_shape "
            f"{_event_text(dist.event_shape)}); expected the shape of x, {_event_text(x.shape)}"
        )
    log_px = dist.log_prob(x)
    return log_px.reshape(x.shape[0], -1).sum(-1)


class _CheckedDecoder:
    """Wraps a decoder so that every call is checked to return a distribution over
    ``(N, *event_shape)`` for ``N`` latents, the contract `genmath.core.elbo` relies on."""

    def __init__(self, decoder, event_shape: torch.Size):
        self.decoder, self.event_shape = decoder, tuple(event_shape)

    def __call__(self, z: torch.Tensor) -> D.Distribution:
        dist = self.decoder(z)
        expected = (z.shape[0], *self.event_shape)
        if not isinstance(dist, D.Distribution):
            raise ValueError(
                f"decoder(z) must return a torch.distributions.Distribution, got {type(dist).__name__}"
            )
        shape = tuple(dist.batch_shape + dist.event_shape)
        if shape != expected:
            raise ValueError(
                f"decoder(z) returned a distribution over shape {_event_text(shape)} for "
                f"{z.shape[0]} latents; expected (N, *x.shape[1:]) = {_event_text(expected)}"
            )
        return dist


def _flatten(x: torch.Tensor, features: int, who: str) -> torch.Tensor:
    if not isinstance(x, torch.Tensor) or x.ndim < 1:
        raise ValueError(f"{who} expects x of shape (B, *event), got {type(x).__name__}")
    flat = x.reshape(x.shape[0], -1)
    if flat.shape[1] != features:
        raise ValueError(
            f"{who} expects x with {features} features per example, got shape "
            f"{tuple(x.shape)} ({flat.shape[1]} features)"
        )
    return flat


def _event_shape(event_shape) -> tuple[int, ...]:
    shape = (event_shape,) if isinstance(event_shape, int) else tuple(event_shape)
    if not shape or any(isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in shape):
        raise ValueError(
            f"event_shape must be a non-empty tuple of positive ints, got {event_shape!r}"
        )
    return shape


# --------------------------------------------------------------------------- encoder / decoders


class GaussianEncoder(nn.Module):
    r"""$q(z \mid x) = \mathcal N(\mu(x), \operatorname{diag} \sigma(x)^2)$ as an
    `Independent(Normal, 1)` over $\mathbb R^k$.

    The network maps the flattened input, shape ``(B, in_features)``, to ``(B, 2k)``: the
    means, then $\log\sigma$.

    Arguments:
        in_features: number of features of one (flattened) input.
        latent_dim: $k$.
        hidden: widths of the default MLP.
        network: replaces the default MLP.
    """

    def __init__(
        self,
        in_features: int,
        latent_dim: int,
        hidden: Sequence[int] = (128,),
        *,
        network: nn.Module | None = None,
        activation=nn.ReLU,
    ):
        super().__init__()
        self.in_features = positive_int(in_features, "in_features")
        self.latent_dim = positive_int(latent_dim, "latent_dim")
        self.network = network or _mlp(in_features, 2 * latent_dim, hidden, activation)

    @plumbing("network architecture: the network's outputs are the mean and log-std of q")
    def mean_and_std(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """$(\\mu(x), \\sigma(x))$, each of shape ``(B, k)``."""
        flat = _flatten(x, self.in_features, "GaussianEncoder")
        if not flat.is_floating_point():  # class-valued data (a categorical decoder's x)
            flat = flat.to(next(self.network.parameters()).dtype)
        out = self.network(flat)
        if out.shape[-1] != 2 * self.latent_dim:
            raise ValueError(
                f"the encoder network must output 2k = {2 * self.latent_dim} values (mean, "
                f"log-std), got shape {tuple(out.shape)}"
            )
        mean, log_std = out.chunk(2, dim=-1)
        return mean, log_std.exp()

    def forward(self, x: torch.Tensor) -> D.Independent:
        mean, std = self.mean_and_std(x)
        return D.Independent(D.Normal(mean, std), 1)


class _Decoder(nn.Module):
    def __init__(self, latent_dim, event_shape, outputs_per_feature, hidden, network, activation):
        super().__init__()
        self.latent_dim = positive_int(latent_dim, "latent_dim")
        self.event_shape = _event_shape(event_shape)
        self.outputs_per_feature = outputs_per_feature
        out = math.prod(self.event_shape) * outputs_per_feature
        self.network = network or _mlp(latent_dim, out, hidden, activation)

    def _raw(self, z: torch.Tensor) -> torch.Tensor:
        if not isinstance(z, torch.Tensor) or z.ndim != 2 or z.shape[1] != self.latent_dim:
            got = tuple(z.shape) if isinstance(z, torch.Tensor) else type(z).__name__
            raise ValueError(
                f"{type(self).__name__} expects z of shape (N, {self.latent_dim}), got {got}"
            )
        out = self.network(z)
        n = math.prod(self.event_shape) * self.outputs_per_feature
        if out.shape != (z.shape[0], n):
            raise ValueError(
                f"the decoder network must output shape ({z.shape[0]}, {n}) for event shape "
                f"{_event_text(self.event_shape)}, got {tuple(out.shape)}"
            )
        return out


class BernoulliDecoder(_Decoder):
    r"""$p(x \mid z) = \prod_j \mathrm{Bernoulli}(x_j;\ \operatorname{sigmoid} f_j(z))$ over
    ``event_shape`` (binary or $[0,1]$-valued data)."""

    def __init__(
        self, latent_dim: int, event_shape, hidden=(128,), *, network=None, activation=nn.ReLU
    ):
        super().__init__(latent_dim, event_shape, 1, hidden, network, activation)

    def forward(self, z: torch.Tensor) -> D.Independent:
        logits = self._raw(z).reshape(z.shape[0], *self.event_shape)
        return D.Independent(D.Bernoulli(logits=logits), len(self.event_shape))


class GaussianDecoder(_Decoder):
    r"""$p(x \mid z) = \mathcal N(x;\ f(z),\ s^2 I)$ over ``event_shape``, with a fixed
    ``std`` $s$ or (``std=None``) one learned scalar $s$."""

    def __init__(
        self,
        latent_dim: int,
        event_shape,
        hidden=(128,),
        *,
        std: float | None = None,
        network=None,
        activation=nn.ReLU,
    ):
        super().__init__(latent_dim, event_shape, 1, hidden, network, activation)
        if std is None:
            self.log_std = nn.Parameter(torch.zeros(()))
        else:
            if not std > 0:
                raise ValueError(f"std must be positive, got {std!r}")
            self.register_buffer("log_std", torch.tensor(float(std)).log())

    @plumbing("network architecture: the decoder's scale is parameterised by its logarithm")
    def forward(self, z: torch.Tensor) -> D.Independent:
        loc = self._raw(z).reshape(z.shape[0], *self.event_shape)
        scale = self.log_std.to(loc).exp().expand_as(loc)
        return D.Independent(D.Normal(loc, scale), len(self.event_shape))


class CategoricalDecoder(_Decoder):
    r"""$p(x \mid z) = \prod_j \mathrm{Categorical}(x_j;\ \operatorname{softmax} f_j(z))$:
    each entry of ``event_shape`` is an integer in ``[0, categories)`` (e.g. grey levels)."""

    def __init__(
        self,
        latent_dim: int,
        event_shape,
        categories: int,
        hidden=(128,),
        *,
        network=None,
        activation=nn.ReLU,
    ):
        self.categories = positive_int(categories, "categories")
        super().__init__(latent_dim, event_shape, categories, hidden, network, activation)

    def forward(self, z: torch.Tensor) -> D.Independent:
        logits = self._raw(z).reshape(z.shape[0], *self.event_shape, self.categories)
        return D.Independent(D.Categorical(logits=logits), len(self.event_shape))


# --------------------------------------------------------------------------- models


def _standard_normal(latent_dim: int, like: torch.Tensor) -> D.Independent:
    zeros = torch.zeros(latent_dim, dtype=like.dtype, device=like.device)
    return D.Independent(D.Normal(zeros, torch.ones_like(zeros)), 1)


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
        if not beta >= 0:
            raise ValueError(f"beta must be non-negative, got {beta!r}")
        if prior is None and not hasattr(encoder, "latent_dim"):
            raise ValueError(
                "give a prior, or an encoder with a latent_dim attribute for the N(0, I) prior"
            )
        self.encoder, self.decoder, self._prior, self.beta = encoder, decoder, prior, float(beta)

    def prior(self, like: torch.Tensor) -> D.Distribution:
        """$p(z)$ in the dtype/device of ``like``."""
        if self._prior is not None:
            return self._prior
        return _standard_normal(self.encoder.latent_dim, like)

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
        return D.Independent(D.Normal(mean, self.log_std.exp().expand_as(mean)), 1)


class _LinearDecoder(nn.Module):
    def __init__(self, data_dim: int, latent_dim: int):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(data_dim, latent_dim))
        self.bias = nn.Parameter(torch.zeros(data_dim))
        self.log_noise_std = nn.Parameter(torch.zeros(()))

    def forward(self, z):
        loc = z @ self.weight.mT + self.bias
        return D.Independent(D.Normal(loc, self.log_noise_std.exp().expand_as(loc)), 1)


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
        q = self.encoder(x)
        q_full = D.MultivariateNormal(q.mean, scale_tril=torch.diag_embed(q.stddev))
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
    if not isinstance(x, torch.Tensor) or x.ndim != 2:
        raise ValueError(f"x must have shape (N, d), got {getattr(x, 'shape', type(x).__name__)}")
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
