"""The encoder and decoder modules of `genmath.families.vae` (each returns a
`torch.distributions.Distribution`) and the shape checks of what they return; re-exported
there, where the models are."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import distributions as D
from torch import nn

from genmath._implements import plumbing

from ..core._autoregressive import _mlp
from ..core._shapes import check_batch, positive_int
from ..core._validate import (
    check_dtype,
    module_dtype,
    positive,
)
from ..core.elbo import _check_input

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


def _flatten(x: torch.Tensor, features: int, who: str, dtype) -> torch.Tensor:
    x = _check_input(x)
    check_dtype(x, dtype, "x", who)
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
        dtype = module_dtype(self.network)
        flat = _flatten(x, self.in_features, "GaussianEncoder", dtype)
        if not flat.is_floating_point():  # class-valued data (a categorical decoder's x)
            flat = flat.to(dtype)
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
        # no argument validation: NaN data propagate to NaN bounds (genmath's rule for data)
        return D.Independent(D.Normal(mean, std, validate_args=False), 1, validate_args=False)


class _Decoder(nn.Module):
    def __init__(self, latent_dim, event_shape, outputs_per_feature, hidden, network, activation):
        super().__init__()
        self.latent_dim = positive_int(latent_dim, "latent_dim")
        self.event_shape = _event_shape(event_shape)
        self.outputs_per_feature = outputs_per_feature
        out = math.prod(self.event_shape) * outputs_per_feature
        self.network = network or _mlp(latent_dim, out, hidden, activation)

    def _raw(self, z: torch.Tensor) -> torch.Tensor:
        check_batch(z, "z")
        if z.ndim != 2 or z.shape[1] != self.latent_dim:
            raise ValueError(
                f"{type(self).__name__} expects z of shape (N, {self.latent_dim}), got {tuple(z.shape)}"
            )
        check_dtype(z, module_dtype(self.network), "z", type(self).__name__)
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
        return D.Independent(
            D.Bernoulli(logits=logits, validate_args=False), len(self.event_shape), validate_args=False
        )


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
            self.register_buffer("log_std", torch.tensor(positive(std, "std")).log())

    @plumbing("network architecture: the decoder's scale is parameterised by its logarithm")
    def forward(self, z: torch.Tensor) -> D.Independent:
        loc = self._raw(z).reshape(z.shape[0], *self.event_shape)
        scale = self.log_std.to(loc).exp().expand_as(loc)
        return D.Independent(
            D.Normal(loc, scale, validate_args=False), len(self.event_shape), validate_args=False
        )


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
        return D.Independent(
            D.Categorical(logits=logits, validate_args=False),
            len(self.event_shape),
            validate_args=False,
        )
