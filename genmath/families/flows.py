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
adds two things: the bookkeeping of a 1×1 convolution over an image, one LU-parameterized
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
from torch.nn import functional as F

from .._implements import implements
from ..core._shapes import positive_int
from ..core.change_of_variables import (
    ActNorm,
    Affine,
    AffineCoupling,
    Bijection,
    Compose,
    Flow,
    Inverse,
    MaskedAutoregressive,
    Planar,
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
        return self.distribution(context).log_prob(x)

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


@implements("D-rq-spline-derivative")
def _rq_spline(x, raw_widths, raw_heights, raw_derivatives, bound, inverse, min_bin=1e-3):
    r"""Monotone rational-quadratic spline on $[-B, B]$, identity outside (Durkan et al. 2019).

    Inputs `x` (`*shape`), raw parameters `(*shape, K)`, `(*shape, K)`, `(*shape, K - 1)`.
    Returns the image and $\log|dy/dx|$ elementwise (of the direction computed). Within bin
    $k$, with $\xi = (x - x_k)/w_k$, $s_k = h_k/w_k$ and knot derivatives $\delta$:
    $$
    y = y_k + h_k\frac{s_k \xi^2 + \delta_k \xi(1-\xi)}{s_k + (\delta_{k+1} + \delta_k - 2 s_k)\xi(1-\xi)},\quad
    \frac{dy}{dx} = \frac{s_k^2\big(\delta_{k+1}\xi^2 + 2 s_k \xi(1-\xi) + \delta_k(1-\xi)^2\big)}
    {\big(s_k + (\delta_{k+1} + \delta_k - 2 s_k)\xi(1-\xi)\big)^2}
    $$
    (D-rq-spline-derivative); the inverse solves the quadratic in $\xi$ by its stable root.
    """
    bins = raw_widths.shape[-1]
    inside = (x > -bound) & (x < bound)
    x_in = torch.where(inside, x, torch.zeros_like(x))

    def knots(raw):
        sizes = min_bin + (1 - min_bin * bins) * torch.softmax(raw, dim=-1)
        edges = F.pad(torch.cumsum(sizes, dim=-1), (1, 0))
        edges = 2 * bound * edges - bound
        # pin the outer knots to exactly -B and B: cumsum round-off would leave a gap or an
        # overlap between the spline and the identity tails
        edges = torch.cat(
            [
                torch.full_like(edges[..., :1], -bound),
                edges[..., 1:-1],
                torch.full_like(edges[..., :1], bound),
            ],
            dim=-1,
        )
        return edges, edges[..., 1:] - edges[..., :-1]

    x_knots, widths = knots(raw_widths)
    y_knots, heights = knots(raw_heights)
    # linear tails: derivative 1 at both ends keeps the map C^1 across +-B
    ones = torch.ones_like(raw_derivatives[..., :1])
    derivatives = torch.cat([ones, min_bin + F.softplus(raw_derivatives), ones], dim=-1)

    search = y_knots if inverse else x_knots
    index = torch.searchsorted(search[..., 1:-1].contiguous(), x_in[..., None].contiguous())
    index = index.clamp(0, bins - 1)

    def pick(values):
        return values.gather(-1, index)[..., 0]

    x_k, w_k, y_k, h_k = pick(x_knots), pick(widths), pick(y_knots), pick(heights)
    d_k, d_k1 = pick(derivatives[..., :-1]), pick(derivatives[..., 1:])
    slope = h_k / w_k
    bend = d_k1 + d_k - 2 * slope
    if inverse:
        dy = x_in - y_k
        a = h_k * (slope - d_k) + dy * bend
        b = h_k * d_k - dy * bend
        c = -slope * dy
        xi = (2 * c) / (-b - torch.sqrt(torch.clamp_min(b**2 - 4 * a * c, 0)))
        out = x_k + xi * w_k
    else:
        xi = (x_in - x_k) / w_k
    one_minus = xi * (1 - xi)
    denominator = slope + bend * one_minus
    derivative = slope**2 * (d_k1 * xi**2 + 2 * slope * one_minus + d_k * (1 - xi) ** 2)
    log_derivative = torch.log(derivative) - 2 * torch.log(denominator)
    if not inverse:
        out = y_k + h_k * (slope * xi**2 + d_k * one_minus) / denominator
    else:
        log_derivative = -log_derivative
    return (
        torch.where(inside, out, x),
        torch.where(inside, log_derivative, torch.zeros_like(log_derivative)),
    )


class RationalQuadraticCoupling(Bijection):
    r"""Neural spline coupling (Durkan et al. 2019): the coupling structure of RealNVP with a
    monotone rational-quadratic spline of `bins` bins on $[-B, B]$ (identity outside) in place
    of the affine map.

    $x_A$ passes through; each $x_j$, $j \in B$, goes through its own spline whose knots and
    derivatives an MLP computes from $(x_A, c)$. The Jacobian is triangular after reordering,
    so $\log|\det J| = \sum_{j\in B} \log g_j'(x_j)$ with the closed-form derivative of
    D-rq-spline-derivative. Both directions are one pass (the inverse solves a quadratic).

    This spline is the one formula of this module that the core does not have yet.

    Arguments:
        features: $d \ge 2$.
        mask: boolean `(d,)`, `True` on the conditioning part (default: first half).
        bins: number of spline bins $K$.
        bound: $B$.
        hidden: hidden widths of the conditioner MLP.
        context_features: size of an optional context.
    """

    def __init__(
        self,
        features: int,
        *,
        mask: torch.Tensor | None = None,
        bins: int = 8,
        bound: float = 4.0,
        hidden: tuple[int, ...] = (64, 64),
        context_features: int = 0,
        activation: type[nn.Module] = nn.ReLU,
    ):
        super().__init__()
        positive_int(features, "features", 2)
        positive_int(bins, "bins", 2)
        if not bound > 0:
            raise ValueError(f"bound must be positive, got {bound!r}")
        self.features, self.bins, self.bound = features, bins, float(bound)
        self.context_features = int(context_features)
        if mask is None:
            mask = torch.arange(features) < features // 2
        mask = torch.as_tensor(mask, dtype=torch.bool).cpu()
        if mask.shape != (features,) or mask.all() or not mask.any():
            raise ValueError(
                f"mask expected shape ({features},) with both True and False entries, got "
                f"{mask.tolist()}"
            )
        self.register_buffer("index_a", torch.nonzero(mask).flatten())
        self.register_buffer("index_b", torch.nonzero(~mask).flatten())
        self.register_buffer("merge", torch.argsort(torch.cat([self.index_a, self.index_b])))
        layers: list[nn.Module] = []
        width = len(self.index_a) + self.context_features
        for h in hidden:
            layers += [nn.Linear(width, h), activation()]
            width = h
        layers.append(nn.Linear(width, len(self.index_b) * (3 * bins - 1)))
        self.conditioner = nn.Sequential(*layers)

    def _spline(self, z, context, inverse):
        z_a, z_b = z[..., self.index_a], z[..., self.index_b]
        inputs = z_a if context is None else torch.cat([z_a, context], dim=-1)
        raw = self.conditioner(inputs).reshape(*z_b.shape, 3 * self.bins - 1)
        k = self.bins
        out_b, log_derivative = _rq_spline(
            z_b, raw[..., :k], raw[..., k : 2 * k], raw[..., 2 * k :], self.bound, inverse
        )
        return torch.cat([z_a, out_b], dim=-1)[..., self.merge], log_derivative

    def _forward(self, x, context):
        return self._spline(x, context, inverse=False)

    def _inverse(self, y, context):
        return self._spline(y, context, inverse=True)


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


class _ChannelsLast(Bijection):
    """Applies a bijection on the last dimension to the channel dimension of `(*batch, C, H, W)`
    images, pixel by pixel: the inner layer's per-pixel log-determinants are summed over the
    $h \\times w$ pixels by `Bijection._finish`."""

    event_dim = 3

    def __init__(self, inner: Bijection, channels: int):
        super().__init__()
        self.inner = inner
        self.channels = channels
        self.context_features = inner.context_features

    def _check_input(self, x, context, name):
        context = super()._check_input(x, context, name)
        if x.shape[-3] != self.channels:
            raise ValueError(
                f"{type(self).__name__} expected {name} of shape (*batch, {self.channels}, H, W), "
                f"got shape {tuple(x.shape)}"
            )
        return context

    def _forward(self, x, context):
        y, logdet = self.inner._forward(x.movedim(-3, -1), context)
        return y.movedim(-1, -3), logdet

    def _inverse(self, y, context):
        x, logdet = self.inner._inverse(y.movedim(-3, -1), context)
        return x.movedim(-1, -3), logdet


def _affine_in_dtype(matrix: torch.Tensor) -> Affine:
    # `Affine.from_matrix` creates its parameters in the default dtype before copying the LU
    # factors in; building it under the kernel's dtype keeps a float64 kernel exact.
    previous = torch.get_default_dtype()
    torch.set_default_dtype(matrix.dtype)
    try:
        return Affine.from_matrix(matrix)
    finally:
        torch.set_default_dtype(previous)


class InvertibleConv1x1(_ChannelsLast):
    r"""Glow's invertible 1×1 convolution (Kingma & Dhariwal 2018) on `(*batch, C, H, W)`.

    Every pixel's channel vector is multiplied by the same $W = PLU$ (the core `Affine`, LU
    parameterization, D-flow-lu-logdet, with zero bias), so the Jacobian is block diagonal
    with $h w$ copies of $W$ and $\log|\det J| = h\,w \log|\det W|$
    (D-glow-conv1x1-logdet), in $O(C)$ from the diagonal of $U$.

    Arguments:
        channels: $C$.
        generator: random source of the initial $W$, a random rotation as in Glow.

    Use [`from_matrix`][genmath.families.flows.InvertibleConv1x1.from_matrix] for a given
    $W$; a singular one raises `ValueError`.
    """

    def __init__(
        self,
        channels: int,
        *,
        matrix: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ):
        positive_int(channels, "channels")
        if matrix is None:
            matrix, _ = torch.linalg.qr(torch.randn(channels, channels, generator=generator))
        matrix = torch.as_tensor(matrix)
        if matrix.shape != (channels, channels):
            raise ValueError(
                f"a 1x1 convolution kernel must have shape (C, C) = ({channels}, {channels}), "
                f"got shape {tuple(matrix.shape)}"
            )
        if not matrix.is_floating_point():
            matrix = matrix.to(torch.get_default_dtype())
        affine = _affine_in_dtype(matrix)  # raises ValueError for a singular kernel
        # a 1x1 convolution has no bias (ActNorm provides the shift in a Glow step)
        affine.bias.requires_grad_(False)
        super().__init__(affine, channels)

    @classmethod
    def from_matrix(cls, matrix: torch.Tensor) -> InvertibleConv1x1:
        """The 1×1 convolution with kernel `matrix` of shape `(C, C)`; `ValueError` if singular."""
        matrix = torch.as_tensor(matrix)
        if matrix.ndim != 2:
            raise ValueError(
                f"a 1x1 convolution kernel must be a square (C, C) matrix, got shape "
                f"{tuple(matrix.shape)}"
            )
        return cls(matrix.shape[0], matrix=matrix)

    def weight(self) -> torch.Tensor:
        """The dense kernel $W$, shape `(C, C)`."""
        return self.inner.matrix()


class _ConvConditioner(nn.Module):
    """Channels-last conditioner for `ChannelCoupling`: 3×3 conv, 1×1 conv, 3×3 conv whose last
    layer starts at zero (Glow), so a fresh coupling is the identity."""

    def __init__(self, in_channels: int, out_channels: int, hidden: int):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(in_channels, hidden, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(hidden, hidden, 1),
            nn.ReLU(),
            nn.Conv2d(hidden, out_channels, 3, padding=1),
        )
        nn.init.zeros_(self.net[-1].weight)
        nn.init.zeros_(self.net[-1].bias)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        batch = h.shape[:-3]
        images = h.reshape(-1, *h.shape[-3:]).movedim(-1, -3)
        out = self.net(images).movedim(-3, -1)
        return out.reshape(*batch, *out.shape[-3:])


class ChannelCoupling(_ChannelsLast):
    r"""Glow's affine coupling on images: the core `AffineCoupling` over channels, with a
    convolutional conditioner so the scale and shift of a pixel see its neighbourhood.

    The first `C // 2` channels condition the rest; $\log|\det J| = \sum s$ over the
    transformed channels of every pixel (D-flow-coupling-logdet).

    Arguments:
        channels: $C \ge 2$.
        hidden: channels of the conditioner's hidden convolutions.
        scale_clamp: soft bound on the log-scales.
    """

    def __init__(self, channels: int, hidden: int = 64, *, scale_clamp: float | None = 3.0):
        positive_int(channels, "channels", 2)
        split = channels // 2
        conditioner = _ConvConditioner(split, 2 * (channels - split), hidden)
        coupling = AffineCoupling(channels, conditioner, split=split, scale_clamp=scale_clamp)
        super().__init__(coupling, channels)


class GlowStep(Compose):
    r"""One step of Glow on `(*batch, C, H, W)`: `ActNorm` per channel, invertible 1×1
    convolution, affine coupling (Kingma & Dhariwal 2018).

    Arguments:
        channels: $C \ge 2$.
        hidden: channels of the coupling's conditioner.
        generator: random source of the 1×1 convolution's initial rotation.
    """

    def __init__(
        self, channels: int, hidden: int = 64, *, generator: torch.Generator | None = None
    ):
        positive_int(channels, "channels", 2)
        super().__init__(
            ActNorm((channels, 1, 1), event_dim=3),
            InvertibleConv1x1(channels, generator=generator),
            ChannelCoupling(channels, hidden),
        )


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
        layers = [GlowStep(shape[0], hidden, generator=generator) for _ in range(steps)]
        super().__init__(Compose(*layers), shape)
