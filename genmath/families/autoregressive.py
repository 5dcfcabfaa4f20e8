r"""Autoregressive models: exact likelihood by the chain rule.

For an ordering $\pi$ of the $d$ entries of $x$,

$$
\log p(x) = \sum_{k=1}^{d} \log p\big(x_{\pi(k)} \mid x_{\pi(1)}, \dots, x_{\pi(k-1)}\big),
$$

exactly — no bound, no integral. For categorical conditionals with logits $\ell$, each term
is minus the cross-entropy of the one-hot target against $\operatorname{softmax}\ell$, so the
negative log-likelihood is the summed cross-entropy (derivation D-chain-rule-nll). A model
computes all $d$ conditionals in **one pass** by masking its weights so that the parameters
of conditional $k$ see only the entries before it in the ordering: `MADE` (masked MLP,
[Germain et al. 2015]) and `PixelCNN` (masked convolutions, [van den Oord et al. 2016]).
Sampling is ancestral: $d$ passes, each fixing one more entry.
`GaussianAutoregression` is the exact case: the Cholesky factor of a covariance gives
linear-Gaussian conditionals whose product is the joint Gaussian, for every ordering
(derivation D-gaussian-autoregression).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import distributions as D
from torch import nn
from torch.nn import functional as F

from .._implements import implements, plumbing
from ..core._autoregressive import _MADE

__all__ = [
    "chain_rule_log_prob",
    "ancestral_sample",
    "MADE",
    "MaskedConv2d",
    "PixelCNN",
    "GaussianAutoregression",
    "CONDITIONALS",
]

CONDITIONALS = ("bernoulli", "categorical", "gaussian")
"""The conditional families `MADE` offers."""


@implements("D-chain-rule-nll", "D-gaussian-autoregression")
def chain_rule_log_prob(conditionals: D.Distribution, x: torch.Tensor) -> torch.Tensor:
    r"""$\log p(x) = \sum_i \log p(x_i \mid x_{<i})$, shape ``(B,)``.

    ``conditionals`` holds one univariate conditional per entry of ``x``
    (``batch_shape == x.shape``, empty ``event_shape``), the one at entry $i$ computed from
    the entries before $i$ only — the model's masks guarantee that, this function only sums
    (derivation D-chain-rule-nll).
    """
    if not isinstance(conditionals, D.Distribution):
        raise ValueError(
            f"conditionals must be a torch.distributions.Distribution, got {type(conditionals).__name__}"
        )
    if tuple(conditionals.event_shape) != () or tuple(conditionals.batch_shape) != tuple(x.shape):
        raise ValueError(
            "conditionals must hold one univariate conditional per entry of x: expected "
            f"batch_shape {tuple(x.shape)} and event_shape (), got batch_shape "
            f"{tuple(conditionals.batch_shape)} and event_shape {tuple(conditionals.event_shape)}"
        )
    return conditionals.log_prob(x).reshape(x.shape[0], -1).sum(-1)


def _sample_conditionals(dist: D.Distribution, generator: torch.Generator | None) -> torch.Tensor:
    """One draw of every conditional, from ``generator`` (torch.distributions cannot take one)."""
    if isinstance(dist, D.Categorical):
        probs = dist.probs.reshape(-1, dist.probs.shape[-1])
        draw = torch.multinomial(probs, 1, generator=generator)
        return draw.reshape(dist.batch_shape)
    if isinstance(dist, D.Bernoulli):
        return torch.bernoulli(dist.probs, generator=generator)
    if isinstance(dist, D.Normal):
        noise = torch.randn(
            dist.loc.shape, generator=generator, dtype=dist.loc.dtype, device=dist.loc.device
        )
        return dist.loc + dist.scale * noise
    raise ValueError(
        f"ancestral sampling supports Categorical, Bernoulli and Normal conditionals, got {type(dist).__name__}"
    )


def ancestral_sample(
    conditionals, x: torch.Tensor, positions, generator: torch.Generator | None = None
):
    """Fill ``x`` one entry at a time: for each index in ``positions`` (in order), evaluate
    ``conditionals(x)`` and draw that entry from its conditional. ``x`` holds the initial
    values (any values: the masks make the entries not yet drawn invisible); ``positions``
    lists index tuples into ``x[b]``. Returns the completed tensor (a new one)."""
    x = x.clone()
    with torch.no_grad():
        for index in positions:
            draw = _sample_conditionals(conditionals(x), generator)
            where = (slice(None), *index)
            x[where] = draw[where].to(x.dtype)
    return x


def _check_ordering(ordering, d: int) -> torch.Tensor:
    if ordering is None:
        return torch.arange(d)
    order = torch.as_tensor(ordering)
    if (
        order.is_floating_point()
        or order.shape != (d,)
        or not torch.equal(order.long().sort().values, torch.arange(d))
    ):
        raise ValueError(f"ordering must be a permutation of 0..{d - 1}, got {order.tolist()}")
    return order.long()


def _check_tokens(x, shape, categories: int, who: str) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{who} expects a torch.Tensor, got {type(x).__name__}")
    if x.is_floating_point() or x.dtype == torch.bool:
        raise ValueError(f"{who} expects integer class values, got dtype {x.dtype}")
    if x.ndim != len(shape) + 1 or tuple(x.shape[1:]) != tuple(shape):
        raise ValueError(
            f"{who} expects x of shape (B, {', '.join(map(str, shape))}), got {tuple(x.shape)}"
        )
    if x.numel() and (x.min() < 0 or x.max() >= categories):
        raise ValueError(
            f"{who} expects values in [0, {categories - 1}], got values in [{int(x.min())}, {int(x.max())}]"
        )
    return x


def _centre_tokens(x: torch.Tensor, categories: int, dtype: torch.dtype) -> torch.Tensor:
    # class values as network inputs on [-1, 1]
    return x.to(dtype) * (2 / max(categories - 1, 1)) - 1


class MADE(nn.Module):
    r"""Masked autoencoder for distribution estimation ([Germain et al. 2015]).

    A masked MLP (the masks of `genmath.core.change_of_variables.MaskedAutoregressive`, one
    construction) whose output for entry $\pi(k)$ depends only on $x_{\pi(1)}, \dots,
    x_{\pi(k-1)}$; $\log p(x)$ is the chain-rule sum of the conditionals
    (D-chain-rule-nll), exact in one pass; `sample` is ancestral ($d$ passes).

    Arguments:
        features: $d$.
        hidden: widths of the masked hidden layers (use widths $\ge d - 1$ so every allowed
            dependency has a path).
        ordering: permutation of ``0..d-1``; ``ordering[k]`` is the entry at position $k$.
        conditional: ``"bernoulli"`` (x in {0, 1}, float), ``"categorical"`` (integer x in
            ``[0, categories)``) or ``"gaussian"`` (real x; mean and log-std per entry).
        categories: number of classes of a categorical conditional.
    """

    def __init__(
        self,
        features: int,
        hidden: Sequence[int] = (64, 64),
        *,
        ordering: Sequence[int] | None = None,
        conditional: str = "gaussian",
        categories: int = 2,
        activation=nn.ReLU,
    ):
        super().__init__()
        if isinstance(features, bool) or not isinstance(features, int) or features < 1:
            raise ValueError(f"features must be a positive integer, got {features!r}")
        if conditional not in CONDITIONALS:
            raise ValueError(f"conditional must be one of {CONDITIONALS}, got {conditional!r}")
        if conditional == "categorical" and (not isinstance(categories, int) or categories < 2):
            raise ValueError(f"categories must be an integer >= 2, got {categories!r}")
        self.features, self.conditional = features, conditional
        self.categories = categories if conditional == "categorical" else None
        self.register_buffer("ordering", _check_ordering(ordering, features))
        self._outputs = {"bernoulli": 1, "categorical": categories, "gaussian": 2}[conditional]
        self.network = _MADE(features, tuple(hidden), self.ordering, 0, self._outputs, activation)

    def _inputs(self, x: torch.Tensor) -> torch.Tensor:
        if self.conditional == "categorical":
            x = _check_tokens(x, (self.features,), self.categories, "MADE")
            return _centre_tokens(x, self.categories, self.network.net[0].weight.dtype)
        if not isinstance(x, torch.Tensor) or not x.is_floating_point():
            raise ValueError(
                f"MADE ({self.conditional}) expects a floating-point x of shape (B, {self.features})"
            )
        if x.ndim != 2 or x.shape[1] != self.features:
            raise ValueError(f"MADE expects x of shape (B, {self.features}), got {tuple(x.shape)}")
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The raw outputs, shape ``(B, outputs_per_entry, d)``: output ``[:, :, i]`` is a
        function of the entries before ``i`` in the ordering only."""
        out = self.network(self._inputs(x))
        return out.reshape(x.shape[0], self._outputs, self.features)

    @implements("D-chain-rule-nll")
    def conditionals(self, x: torch.Tensor) -> D.Distribution:
        """The $d$ conditionals $p(x_i \\mid x_{<i})$, a distribution with batch shape ``(B, d)``."""
        out = self.forward(x)
        if self.conditional == "bernoulli":
            return D.Bernoulli(logits=out[:, 0])
        if self.conditional == "categorical":
            return D.Categorical(logits=out.transpose(1, 2))
        return D.Normal(out[:, 0], out[:, 1].exp())

    @implements("D-chain-rule-nll")
    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """$\\log p(x)$, shape ``(B,)`` (D-chain-rule-nll)."""
        return chain_rule_log_prob(self.conditionals(x), x)

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` ancestral samples, shape ``(n, d)`` (long for categorical)."""
        weight = self.network.net[0].weight
        dtype = torch.long if self.conditional == "categorical" else weight.dtype
        start = torch.zeros(n, self.features, dtype=dtype, device=weight.device)
        return ancestral_sample(
            self.conditionals, start, [(int(i),) for i in self.ordering], generator
        )


def _channel_groups(channels: int, data_channels: int) -> torch.Tensor:
    # contiguous blocks: the block of a feature channel is the data channel it speaks for
    return torch.arange(channels) * data_channels // channels


class MaskedConv2d(nn.Conv2d):
    r"""A convolution that sees only pixels before the current one in raster order
    (rows above; same row, to the left), and at the current pixel ([van den Oord et al.
    2016]): type ``"A"`` sees only the data channels before the current one (the first
    layer: a pixel must not see itself), type ``"B"`` also the current one (later layers,
    whose inputs at the current pixel already exclude it).

    Feature channels are split into ``data_channels`` contiguous groups; group $g$ speaks for
    data channel $g$ (R, G, B for colour images).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        mask_type: str = "B",
        data_channels: int = 1,
        bias: bool = True,
    ):
        if mask_type not in ("A", "B"):
            raise ValueError(f"mask_type must be 'A' or 'B', got {mask_type!r}")
        if not isinstance(kernel_size, int) or kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be an odd positive integer, got {kernel_size!r}")
        if min(in_channels, out_channels) < data_channels:
            raise ValueError(
                f"in_channels and out_channels must be >= data_channels = {data_channels}, "
                f"got {in_channels} and {out_channels}"
            )
        super().__init__(
            in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=bias
        )
        self.mask_type = mask_type
        centre = kernel_size // 2
        mask = torch.zeros(out_channels, in_channels, kernel_size, kernel_size)
        mask[:, :, :centre, :] = 1
        mask[:, :, centre, :centre] = 1
        group_out = _channel_groups(out_channels, data_channels)[:, None]
        group_in = _channel_groups(in_channels, data_channels)[None, :]
        allowed = group_in < group_out if mask_type == "A" else group_in <= group_out
        mask[:, :, centre, centre] = allowed.to(mask.dtype)
        self.register_buffer("mask", mask)

    @implements("D-chain-rule-nll")
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(x, self.weight * self.mask.to(self.weight), self.bias)


class PixelCNN(nn.Module):
    r"""PixelCNN ([van den Oord et al. 2016]): a stack of masked convolutions giving the
    categorical conditionals of every pixel and channel, in raster order, in one pass.

    One type-A $k \times k$ convolution, ``layers`` residual blocks of type-B $3 \times 3$
    convolutions, and a type-B $1\times 1$ output of ``categories`` logits per data
    channel. With ``num_classes``, a learned per-class bias is added to every hidden layer
    (the class-conditional PixelCNN of van den Oord et al. 2016b): $p(x \mid y)$.

    Arguments:
        channels: data channels $C$.
        categories: values per sub-pixel $K$ (inputs are integers in ``[0, K)``).
        hidden: feature channels.
        layers: number of type-B residual blocks.
        kernel_size: of the first (type-A) convolution.
        num_classes: number of classes of the optional class-conditional bias.
    """

    def __init__(
        self,
        channels: int = 1,
        categories: int = 256,
        hidden: int = 64,
        layers: int = 4,
        kernel_size: int = 7,
        num_classes: int | None = None,
    ):
        super().__init__()
        if not isinstance(categories, int) or categories < 2:
            raise ValueError(f"categories must be an integer >= 2, got {categories!r}")
        if not isinstance(layers, int) or layers < 0:
            raise ValueError(f"layers must be a non-negative integer, got {layers!r}")
        self.channels, self.categories, self.num_classes = channels, categories, num_classes
        self.input = MaskedConv2d(channels, hidden, kernel_size, "A", channels)
        self.blocks = nn.ModuleList(
            MaskedConv2d(hidden, hidden, 3, "B", channels) for _ in range(layers)
        )
        self.output = MaskedConv2d(hidden, channels * categories, 1, "B", channels)
        if num_classes is not None:
            if not isinstance(num_classes, int) or num_classes < 1:
                raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}")
            self.class_bias = nn.Embedding(num_classes, hidden * (layers + 1))

    def _biases(self, y, batch: int):
        if self.num_classes is None:
            if y is not None:
                raise ValueError(
                    "this PixelCNN is unconditional (num_classes=None) but a class y was given"
                )
            return [0.0] * (len(self.blocks) + 1)
        if y is None:
            raise ValueError(
                f"this PixelCNN is class-conditional: give y, integer classes of shape ({batch},)"
            )
        if (
            y.shape != (batch,)
            or y.is_floating_point()
            or (y < 0).any()
            or (y >= self.num_classes).any()
        ):
            raise ValueError(
                f"y must be integer classes in [0, {self.num_classes}) of shape ({batch},), got {y}"
            )
        return [b[:, :, None, None] for b in self.class_bias(y).chunk(len(self.blocks) + 1, dim=-1)]

    @plumbing(
        "network architecture: a type-A masked convolution, residual type-B blocks and class "
        "biases; the autoregressive property is the masks' (bound through PixelCNN.log_prob)"
    )
    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Logits, shape ``(B, C, H, W, K)``; those at ``[:, c, i, j]`` depend only on the
        sub-pixels before ``(i, j, c)`` in raster order (rows, columns, then channels)."""
        if not isinstance(x, torch.Tensor) or x.ndim != 4 or x.shape[1] != self.channels:
            got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"PixelCNN expects x of shape (B, {self.channels}, H, W), got {got}")
        x = _check_tokens(x, tuple(x.shape[1:]), self.categories, "PixelCNN")
        biases = self._biases(y, x.shape[0])
        h = F.relu(
            self.input(_centre_tokens(x, self.categories, self.input.weight.dtype)) + biases[0]
        )
        for block, bias in zip(self.blocks, biases[1:], strict=True):
            h = h + F.relu(block(h) + bias)
        logits = self.output(h)
        b, _, height, width = logits.shape
        # output channels come in C contiguous groups of K logits
        return logits.reshape(b, self.channels, self.categories, height, width).permute(
            0, 1, 3, 4, 2
        )

    def conditionals(self, x: torch.Tensor, y: torch.Tensor | None = None) -> D.Categorical:
        """Categorical conditionals with batch shape ``(B, C, H, W)``."""
        return D.Categorical(logits=self.forward(x, y))

    @implements("D-chain-rule-nll")
    def log_prob(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """$\\log p(x)$ (or $\\log p(x \\mid y)$), shape ``(B,)`` (D-chain-rule-nll)."""
        return chain_rule_log_prob(self.conditionals(x, y), x)

    def sample(
        self,
        n: int,
        size: tuple[int, int],
        y: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """``n`` ancestral samples of shape ``(n, C, *size)`` (one pass per sub-pixel)."""
        height, width = size
        start = torch.zeros(
            n, self.channels, height, width, dtype=torch.long, device=self.input.weight.device
        )
        order = [
            (c, i, j) for i in range(height) for j in range(width) for c in range(self.channels)
        ]
        return ancestral_sample(lambda x: self.conditionals(x, y), start, order, generator)


class GaussianAutoregression(nn.Module):
    r"""$\mathcal N(\mu, \Sigma)$ written as an autoregressive model in the ordering $\pi$.

    With $L$ the Cholesky factor of $\Sigma_{\pi\pi}$ (rows and columns permuted to the
    ordering) and $D = \operatorname{diag} L$, the conditionals are linear-Gaussian,

    $$
    x_{\pi(k)} \mid x_{\pi(<k)} \sim \mathcal N\big(\mu_{\pi(k)} + [A (x_\pi - \mu_\pi)]_k,\
    L_{kk}^2\big), \qquad A = I - D L^{-1},
    $$

    $A$ strictly lower triangular, and their product is the joint density for every
    ordering (derivation D-gaussian-autoregression). The model is exact; it is the reference
    case for chain-rule likelihoods with continuous conditionals.
    """

    def __init__(self, mean: torch.Tensor, cov: torch.Tensor, ordering=None):
        super().__init__()
        mean, cov = torch.as_tensor(mean), torch.as_tensor(cov)
        if mean.ndim != 1 or cov.shape != (mean.shape[0], mean.shape[0]):
            raise ValueError(
                f"mean must have shape (d,) and cov (d, d), got {tuple(mean.shape)} and {tuple(cov.shape)}"
            )
        d = mean.shape[0]
        order = _check_ordering(ordering, d)
        chol, info = torch.linalg.cholesky_ex(cov[order][:, order])
        if info != 0:
            raise ValueError(
                "cov must be symmetric positive definite (its Cholesky factorisation failed)"
            )
        scale = chol.diagonal()
        eye = torch.eye(d, dtype=cov.dtype, device=cov.device)
        inverse = torch.linalg.solve_triangular(chol, eye, upper=False)
        # I - D L^{-1} has a zero diagonal in exact arithmetic: keep only the strict lower part
        regression = -(scale[:, None] * inverse).tril(-1)
        self.register_buffer("mean", mean)
        self.register_buffer("ordering", order)
        self.register_buffer("regression", regression)
        self.register_buffer("scale", scale)

    @implements("D-gaussian-autoregression")
    def conditionals(self, x: torch.Tensor) -> D.Normal:
        """The $d$ conditionals, a `Normal` with batch shape ``(B, d)`` in the original entry order."""
        d = self.mean.shape[0]
        if not isinstance(x, torch.Tensor) or x.ndim != 2 or x.shape[1] != d:
            got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"x must have shape (B, {d}), got {got}")
        centred = x[:, self.ordering] - self.mean[self.ordering]
        loc = torch.empty_like(x)
        scale = torch.empty_like(x)
        loc[:, self.ordering] = self.mean[self.ordering] + centred @ self.regression.mT
        scale[:, self.ordering] = self.scale.to(x).expand(x.shape[0], d)
        return D.Normal(loc, scale)

    @implements("D-gaussian-autoregression")
    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """$\\log \\mathcal N(x; \\mu, \\Sigma)$ by the chain rule, shape ``(B,)``."""
        return chain_rule_log_prob(self.conditionals(x), x)

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` ancestral samples, shape ``(n, d)``."""
        start = self.mean.new_zeros(n, self.mean.shape[0])
        return ancestral_sample(
            self.conditionals, start, [(int(i),) for i in self.ordering], generator
        )
