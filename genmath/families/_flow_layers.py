r"""The layers of `genmath.families.flows` that the core does not hold: the
rational-quadratic spline coupling of neural spline flows (D-rq-spline-derivative) and Glow's
image layers (the invertible 1x1 convolution, one LU `Affine` per pixel,
D-glow-conv1x1-logdet; the channel coupling; a Glow step). Re-exported there, where the
models that stack them are."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from .._implements import implements
from ..core._shapes import positive_int
from ..core._validate import as_parameter, check_generator, positive
from ..core.change_of_variables import (
    ActNorm,
    Affine,
    AffineCoupling,
    Bijection,
    Compose,
)


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
        positive(bound, "bound")
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
        check_generator(generator)
        if matrix is None:
            matrix, _ = torch.linalg.qr(torch.randn(channels, channels, generator=generator))
        matrix = as_parameter(matrix, "matrix")
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
        matrix = as_parameter(matrix, "matrix")
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
        positive_int(hidden, "hidden")
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
        positive_int(hidden, "hidden")
        super().__init__(
            ActNorm((channels, 1, 1), event_dim=3),
            InvertibleConv1x1(channels, generator=generator),
            ChannelCoupling(channels, hidden),
        )
