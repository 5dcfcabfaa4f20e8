r"""Normalizing flows: RealNVP, Glow, MAF / IAF and planar flows, as compositions of core
bijections.

**Composition.** Every model here is a stack of bijections from
`genmath.core.change_of_variables` (`AffineCoupling`, `MaskedAutoregressive`, `Affine`,
`ActNorm`, `Planar`, `Inverse`, `Compose`) read as a distribution by
`genmath.core.change_of_variables.Flow` with a standard-normal base. The density is the
change of variables
$$
\log p(x) = \log \mathcal N(f(x); 0, I) + \log|\det J_f(x)|,
$$
where $f$ maps **data to noise** (genmath's convention for a bijection's `forward`) and the
log-determinant of each layer is the one its core class computes (derivations
D-flow-coupling-logdet, D-flow-maf-logdet, D-flow-lu-logdet, D-flow-planar). This module
(with the layers in its private `_flow_layers`) adds two things: the bookkeeping of a 1×1 convolution over an image, one LU-parameterized
`Affine` map per pixel, so $\log|\det| = h\,w\,\log|\det W|$ (D-glow-conv1x1-logdet); and
the rational-quadratic spline of neural spline flows (D-rq-spline-derivative), which the core
does not hold yet.

Which direction is one network pass:

| model | `log_prob` of data | `sample` |
| --- | --- | --- |
| `RealNVP`, `NSF`, `Glow` | one pass per layer | one pass per layer |
| `MAF` | one pass per layer | $d$ passes per layer (sequential) |
| `IAF` | $d$ passes per layer (sequential) | one pass per layer, and the density of its own samples for free |
| `PlanarFlow(explicit="sample")` | Newton solve per layer | explicit |

Conditional variants (`context_features > 0`) feed a context to every coupling /
autoregressive conditioner; a wrong context shape raises `ValueError` (checked by core).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.distributions import Independent, Normal

from .._implements import implements
from ..core._shapes import positive_int
from ..core._validate import check_int
from ..core.change_of_variables import (
    ActNorm,
    AffineCoupling,
    Bijection,
    Compose,
    Flow,
    Inverse,
    MaskedAutoregressive,
    Planar,
)
from ._flow_layers import (
    ChannelCoupling,
    GlowStep,
    InvertibleConv1x1,
    RationalQuadraticCoupling,
)

__all__ = [
    "FlowModel",
    "RealNVP",
    "MAF",
    "IAF",
    "PlanarFlow",
    "RationalQuadraticCoupling",
    "NSF",
    "InvertibleConv1x1",
    "ChannelCoupling",
    "GlowStep",
    "Glow",
    "checkerboard_mask",
]


@implements("D-realnvp-log-prob")
def checkerboard_mask(features: int, parity: int = 0) -> torch.Tensor:
    """Boolean `(features,)` mask, `True` on the conditioning half: even indices for
    `parity=0`, odd for `parity=1` (RealNVP's alternating masks on vectors)."""
    positive_int(features, "features", 2)
    check_int(parity, "parity")  # any integer: a layer index alternates the mask
    return torch.arange(features) % 2 == parity % 2


class FlowModel(nn.Module):
    r"""A bijection $f$ (data $\to$ noise) with a standard-normal base, as a trainable model.

    `distribution(context)` is the core `Flow`; `log_prob`, `sample` and
    `sample_and_log_prob` are shortcuts. The base lives in a buffer, so `.to(dtype)` and
    `.to(device)` move it with the parameters.

    Arguments:
        transform: the data-to-noise `Bijection`.
        event_shape: shape of one event, e.g. `(d,)` or `(C, H, W)`.
    """

    def __init__(self, transform: Bijection, event_shape: int | tuple[int, ...]):
        super().__init__()
        if not isinstance(transform, Bijection):
            raise TypeError(
                f"transform must be a genmath Bijection, got {type(transform).__name__}"
            )
        shape = (event_shape,) if isinstance(event_shape, int) else tuple(event_shape)
        self.transform = transform
        self.event_shape = torch.Size(shape)
        self.register_buffer("_base_loc", torch.zeros(shape))

    @property
    def context_features(self) -> int:
        return self.transform.context_features

    def base(self) -> Independent:
        """The standard normal $\\mathcal N(0, I)$ on the event, in the model's dtype/device."""
        loc = self._base_loc
        return Independent(Normal(loc, torch.ones_like(loc)), len(self.event_shape))

    def distribution(self, context: torch.Tensor | None = None) -> Flow:
        """The flow as a `torch.distributions.Distribution` (one per context row, if any)."""
        return Flow(self.transform, self.base(), context)

    def log_prob(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        r"""$\log p(x \mid c) = \log \mathcal N(f(x); 0, I) + \log|\det J_f(x)|$, shape `(B,)`."""
        return self.distribution(context)._log_prob(x, "x")

    def _sample_context(self, n: int, context: torch.Tensor | None) -> torch.Tensor | None:
        positive_int(n, "n")
        if context is None:
            return None
        if context.ndim not in (1, 2) or (context.ndim == 2 and context.shape[0] != n):
            raise ValueError(
                f"context for sampling n = {n} points must have shape ({n}, "
                f"{self.context_features}) or ({self.context_features},), got shape "
                f"{tuple(context.shape)}"
            )
        return context.expand(n, context.shape[-1])

    def sample(
        self,
        n: int,
        context: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """`n` samples $x = f^{-1}(z)$, shape `(n, *event)`; with a context, row $i$ is drawn
        given context row $i$ (a context of shape `(context_features,)` is shared)."""
        context = self._sample_context(n, context)
        shape = (n,) if context is None else ()
        return self.distribution(context).sample(shape, generator=generator)

    def sample_and_log_prob(
        self,
        n: int,
        context: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Reparameterized samples and their log-density from one sampling-direction pass."""
        context = self._sample_context(n, context)
        shape = (n,) if context is None else ()
        return self.distribution(context).rsample_and_log_prob(shape, generator=generator)


class RealNVP(FlowModel):
    r"""RealNVP (Dinh et al. 2017) on vectors: `layers` affine couplings with alternating
    checkerboard masks, optionally preceded each by an `ActNorm`.

    Each coupling keeps half of the coordinates and scales/shifts the other half,
    $\log|\det J| = \sum_{j\in B} s_j(x_A, c)$ (D-flow-coupling-logdet); alternating the mask
    lets every coordinate be transformed. Density and sampling are both one pass per layer.

    Arguments:
        features: dimension $d \ge 2$.
        layers: number of coupling layers.
        hidden: hidden widths of each coupling's MLP conditioner.
        context_features: size of a conditioning context (0: unconditional).
        actnorm: put an `ActNorm` (data-initialised on the first `log_prob`) before each coupling.
        scale_clamp: soft bound $c$ on the log-scales, $s = c\tanh(\tilde s / c)$.
        activation: hidden activation (a module class).
    """

    def __init__(
        self,
        features: int,
        layers: int = 4,
        hidden: tuple[int, ...] = (64, 64),
        *,
        context_features: int = 0,
        actnorm: bool = False,
        scale_clamp: float | None = None,
        activation: type[nn.Module] = nn.ReLU,
    ):
        positive_int(features, "features", 2)
        positive_int(layers, "layers")
        blocks: list[Bijection] = []
        for i in range(layers):
            if actnorm:
                blocks.append(ActNorm(features))
            blocks.append(
                AffineCoupling(
                    features,
                    mask=checkerboard_mask(features, i),
                    context_features=context_features,
                    hidden=tuple(hidden),
                    activation=activation,
                    scale_clamp=scale_clamp,
                )
            )
        super().__init__(Compose(*blocks), (features,))


@implements("D-maf-log-prob")
def _orderings(features: int, layers: int) -> list[torch.Tensor]:
    natural = torch.arange(features)
    return [natural if i % 2 == 0 else natural.flip(0) for i in range(layers)]


class MAF(FlowModel):
    r"""Masked autoregressive flow (Papamakarios et al. 2017): `layers` `MaskedAutoregressive`
    layers with alternating natural / reversed orderings.

    `forward` (data $\to$ noise) is one pass of each masked network, so **`log_prob` is
    fast**; `sample` inverts each layer sequentially, **$d$ passes per layer**
    (D-flow-maf-logdet gives $\log|\det J| = \sum_i s_i(x_{<i})$).

    Arguments:
        features: dimension $d$.
        layers: number of autoregressive layers.
        hidden: widths of the MADE hidden layers (use widths $\ge d - 1$).
        context_features: size of a conditioning context (0: unconditional).
        scale_clamp: soft bound on the log-scales.
        activation: hidden activation (a module class).
    """

    def __init__(
        self,
        features: int,
        layers: int = 4,
        hidden: tuple[int, ...] = (64, 64),
        *,
        context_features: int = 0,
        scale_clamp: float | None = None,
        activation: type[nn.Module] = nn.ReLU,
    ):
        positive_int(features, "features")
        positive_int(layers, "layers")
        blocks = [
            MaskedAutoregressive(
                features,
                tuple(hidden),
                ordering=ordering,
                context_features=context_features,
                activation=activation,
                scale_clamp=scale_clamp,
            )
            for ordering in _orderings(features, layers)
        ]
        super().__init__(self._arrange(blocks), (features,))

    @staticmethod
    def _arrange(blocks: list[Bijection]) -> Bijection:
        return Compose(*blocks)


class IAF(MAF):
    r"""Inverse autoregressive flow (Kingma et al. 2016): the same layers as `MAF`, used in
    the other direction, $f = \big(\text{MAF stack}\big)^{-1}$.

    Sampling ($z \mapsto x$) is then the masked networks' one-pass direction, so **`sample`
    and `sample_and_log_prob` are fast** — the density of the model's own samples comes
    with them, which is what variational inference needs — while `log_prob` of arbitrary
    data is sequential, **$d$ passes per layer**.

    Arguments: as for [`MAF`][genmath.families.flows.MAF].
    """

    @staticmethod
    def _arrange(blocks: list[Bijection]) -> Bijection:
        return Inverse(Compose(*blocks))


class PlanarFlow(FlowModel):
    r"""A stack of planar layers $z \mapsto z + \hat u \tanh(w^\top z + b)$ (Rezende & Mohamed
    2015), $\log|\det J| = \log|1 + \tanh'(w^\top z + b)\, w^\top\hat u|$ (D-flow-planar).

    Arguments:
        features: dimension $d$.
        layers: number of planar layers.
        explicit: `"sample"` (default, as in the paper: the planar maps act on base samples,
            so `sample_and_log_prob` is explicit and `log_prob` of data solves one scalar
            equation per layer by Newton's method) or `"density"` (the planar maps act on
            data, so `log_prob` is explicit and sampling solves).
        generator: random source of the initial parameters.
    """

    def __init__(
        self,
        features: int,
        layers: int = 8,
        *,
        explicit: str = "sample",
        generator: torch.Generator | None = None,
    ):
        positive_int(features, "features")
        positive_int(layers, "layers")
        if explicit not in ("sample", "density"):
            raise ValueError(f"explicit must be 'sample' or 'density', got {explicit!r}")
        planar = Compose(*[Planar(features, generator=generator) for _ in range(layers)])
        super().__init__(Inverse(planar) if explicit == "sample" else planar, (features,))
        self.explicit = explicit


class NSF(FlowModel):
    r"""Neural spline flow (coupling version, Durkan et al. 2019): `layers`
    [`RationalQuadraticCoupling`][genmath.families.flows.RationalQuadraticCoupling]s with
    alternating checkerboard masks. Density and sampling are one pass per layer.

    Arguments:
        features: $d \ge 2$.
        layers, bins, bound, hidden, context_features: as for the coupling.
    """

    def __init__(
        self,
        features: int,
        layers: int = 4,
        hidden: tuple[int, ...] = (64, 64),
        *,
        bins: int = 8,
        bound: float = 4.0,
        context_features: int = 0,
    ):
        positive_int(features, "features", 2)
        positive_int(layers, "layers")
        blocks = [
            RationalQuadraticCoupling(
                features,
                mask=checkerboard_mask(features, i),
                bins=bins,
                bound=bound,
                hidden=tuple(hidden),
                context_features=context_features,
            )
            for i in range(layers)
        ]
        super().__init__(Compose(*blocks), (features,))


class Glow(FlowModel):
    r"""A single-scale Glow: `steps` [`GlowStep`][genmath.families.flows.GlowStep]s on images
    of shape `(C, H, W)` with a standard-normal base.

    (The multi-scale architecture of the paper — squeeze and factor-out — is not built here.)

    Arguments:
        shape: `(C, H, W)` with $C \ge 2$.
        steps: number of Glow steps.
        hidden: channels of each coupling's conditioner.
        generator: random source of the 1×1 convolutions' initial rotations.
    """

    def __init__(
        self,
        shape: tuple[int, int, int],
        steps: int = 4,
        hidden: int = 64,
        *,
        generator: torch.Generator | None = None,
    ):
        shape = tuple(shape)
        if len(shape) != 3:
            raise ValueError(f"Glow expected an image shape (C, H, W), got {shape}")
        for name, value in zip(("C", "H", "W"), shape, strict=True):
            positive_int(value, name)
        positive_int(steps, "steps")
        positive_int(hidden, "hidden")
        layers = [GlowStep(shape[0], hidden, generator=generator) for _ in range(steps)]
        super().__init__(Compose(*layers), shape)
