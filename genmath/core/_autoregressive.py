"""Autoregressive and coupling bijections: AffineCoupling (RealNVP) and MaskedAutoregressive
(MAF/IAF with MADE masks). Users import these from `genmath.core.change_of_variables`.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from ._bijections import Bijection, _affine_forward, _affine_inverse, _shape_text

__all__ = ["AffineCoupling", "MaskedAutoregressive"]


def _activation(activation) -> nn.Module:
    """The hidden activation; ReLU in place: it follows a linear layer, whose fresh output
    nobody else holds, and its backward needs only its result (one tensor per layer less to
    allocate and fill, the larger share of a flow layer's cost at large batches)."""
    return nn.ReLU(inplace=True) if activation is nn.ReLU else activation()


def _mlp(in_features: int, out_features: int, hidden, activation) -> nn.Sequential:
    layers: list[nn.Module] = []
    width = in_features
    for h in hidden:
        layers += [nn.Linear(width, h), _activation(activation)]
        width = h
    layers.append(nn.Linear(width, out_features))
    return nn.Sequential(*layers)


def _bounded(raw: torch.Tensor, scale_clamp: float | None) -> torch.Tensor:
    # a soft bound keeps exp(s) from overflowing early in training; the log-det stays sum(s)
    if scale_clamp is None:
        return raw
    return scale_clamp * torch.tanh(raw / scale_clamp)


class AffineCoupling(Bijection):
    r"""Affine coupling layer (RealNVP, Dinh et al. 2017).

    The features split into a conditioning part $A$ (passed through) and a transformed part
    $B$: $y_A = x_A$, $y_B = x_B \odot e^{s(x_A, c)} + t(x_A, c)$, so the Jacobian is
    triangular after reordering and $\log|\det J| = \sum_{j \in B} s_j(x_A, c)$
    (derivation D-flow-coupling-logdet). The inverse is one pass too:
    $x_B = (y_B - t(y_A, c)) \odot e^{-s(y_A, c)}$.

    Arguments:
        features: dimension $d$.
        conditioner: a module mapping `cat(x_A, context)` of shape `(*batch, |A| + context_features)`
            to `(*batch, 2|B|)`: the first $|B|$ outputs are the shift $t$, the last the
            log-scale $s$. Default: an MLP with `hidden` widths.
        mask: boolean `(d,)`, `True` on the conditioning part $A$.
        split: alternatively, $A$ = the first `split` features (default `d // 2`).
        context_features: size of an optional conditioning context.
        hidden: hidden widths of the default conditioner.
        activation: hidden activation (a module class) of the default conditioner.
        scale_clamp: if given, $s = c \tanh(\tilde s / c)$ bounds the log-scale.
    """

    def __init__(
        self,
        features: int,
        conditioner: nn.Module | None = None,
        *,
        mask: torch.Tensor | None = None,
        split: int | None = None,
        context_features: int = 0,
        hidden: tuple[int, ...] = (64, 64),
        activation: type[nn.Module] = nn.ReLU,
        scale_clamp: float | None = None,
    ):
        super().__init__()
        self.features = int(features)
        self.context_features = int(context_features)
        self.scale_clamp = scale_clamp
        if mask is not None and split is not None:
            raise ValueError("give either mask or split, not both")
        if mask is None:
            split = self.features // 2 if split is None else int(split)
            mask = torch.arange(self.features) < split
        mask = torch.as_tensor(mask, dtype=torch.bool).cpu()
        if mask.shape != (self.features,):
            raise ValueError(
                f"mask expected shape ({self.features},), got {_shape_text(mask.shape)}"
            )
        if mask.all() or not mask.any():
            raise ValueError(
                "mask expected both a conditioning part (True) and a transformed part (False), "
                f"got {int(mask.sum())} of {self.features} entries True"
            )
        self.register_buffer("mask", mask)
        self.register_buffer("index_a", torch.nonzero(mask).flatten())
        self.register_buffer("index_b", torch.nonzero(~mask).flatten())
        self.register_buffer("merge", torch.argsort(torch.cat([self.index_a, self.index_b])))
        n_a, n_b = len(self.index_a), len(self.index_b)
        # contiguous prefix masks avoid the gather/scatter
        self._prefix = bool(torch.equal(self.index_a, torch.arange(n_a)))
        # masks whose parts are evenly spaced (a checkerboard: every other feature) split by
        # strided views and merge by two slice copies; other masks gather with index_select
        # (advanced indexing costs several times more for the same gather)
        slices = (_as_slice(self.index_a), _as_slice(self.index_b))
        self._slices = slices if None not in slices else None
        if conditioner is None:
            conditioner = _mlp(n_a + self.context_features, 2 * n_b, hidden, activation)
        self.conditioner = conditioner

    def _split(self, x):
        if self._prefix:
            n_a = len(self.index_a)
            return x[..., :n_a], x[..., n_a:]
        if self._slices is not None:
            return x[..., self._slices[0]], x[..., self._slices[1]]
        return x.index_select(-1, self.index_a), x.index_select(-1, self.index_b)

    def _merge(self, x_a, x_b):
        if self._prefix:
            return torch.cat([x_a, x_b], dim=-1)
        if self._slices is not None:
            out = x_a.new_empty((*x_a.shape[:-1], self.features))
            out[..., self._slices[0]] = x_a
            out[..., self._slices[1]] = x_b
            return out
        return torch.cat([x_a, x_b], dim=-1).index_select(-1, self.merge)

    def _parameters_at(self, x_a, context):
        inputs = x_a if context is None else torch.cat([x_a, context], dim=-1)
        out = self.conditioner(inputs)
        n_b = len(self.index_b)
        if out.shape[-1] != 2 * n_b:
            raise ValueError(
                f"the conditioner must output 2|B| = {2 * n_b} values (shift, log-scale), "
                f"got shape {_shape_text(out.shape)}"
            )
        return out[..., :n_b], _bounded(out[..., n_b:], self.scale_clamp)

    def _forward(self, x, context):
        x_a, x_b = self._split(x)
        shift, log_scale = self._parameters_at(x_a, context)
        y_b, logdet = _affine_forward(x_b, shift, log_scale)
        return self._merge(x_a, y_b), logdet

    def _inverse(self, y, context):
        y_a, y_b = self._split(y)
        shift, log_scale = self._parameters_at(y_a, context)
        x_b, logdet = _affine_inverse(y_b, shift, log_scale)
        return self._merge(y_a, x_b), logdet


def _as_slice(index: torch.Tensor) -> slice | None:
    """``index`` (sorted, distinct) as a slice when it is an arithmetic progression."""
    if len(index) == 1:
        start = int(index[0])
        return slice(start, start + 1)
    steps = index[1:] - index[:-1]
    if not bool((steps == steps[0]).all()):
        return None
    start, step = int(index[0]), int(steps[0])
    return slice(start, int(index[-1]) + 1, step)


class _MaskedLinear(nn.Linear):
    def __init__(self, in_features: int, out_features: int, mask: torch.Tensor):
        super().__init__(in_features, out_features)
        self.register_buffer("mask", mask.to(self.weight.dtype))

    def forward(self, x):
        return F.linear(x, self.weight * self.mask, self.bias)


class _MADE(nn.Module):
    """A masked MLP whose output group k (of `outputs_per_feature`) for feature i depends
    only on the features before i in `ordering` (and on the context, if any)."""

    def __init__(self, features, hidden, ordering, context_features, outputs_per_feature, act):
        super().__init__()
        d = features
        rank = torch.argsort(ordering)  # rank[i]: position of feature i in the ordering
        in_degree = torch.cat([rank + 1, torch.zeros(context_features, dtype=torch.long)])
        layers: list[nn.Module] = []
        previous = in_degree
        for width in hidden:
            # degrees 1..d-1 cycle over the units so every dependency has a path
            degree = torch.arange(width) % max(d - 1, 1) + 1 if d > 1 else torch.zeros(width)
            degree = degree.long()
            mask = degree[:, None] >= previous[None, :]
            layers += [_MaskedLinear(len(previous), width, mask), _activation(act)]
            previous = degree
        out_degree = (rank + 1).repeat(outputs_per_feature)
        layers.append(_MaskedLinear(len(previous), len(out_degree), out_degree[:, None] > previous))
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        return self.net(x)


class MaskedAutoregressive(Bijection):
    r"""Masked autoregressive affine layer (MAF, Papamakarios et al. 2017; MADE masks of
    Germain et al. 2015).

    With $\pi$ the `ordering`, `forward` computes
    $y_i = x_i\, e^{s_i} + t_i$ with $(s_i, t_i)$ functions of $x_{\pi(<i)}$ (the features
    before $i$ in the ordering) and of the context. Its Jacobian is triangular in the
    ordering, so $\log|\det J| = \sum_i s_i$ (derivation D-flow-maf-logdet).

    * `forward` (data $\to$ noise, the **density** direction of a MAF) is **one pass** of the
      masked network;
    * `inverse` (noise $\to$ data, sampling) is **sequential**: $d$ passes, each fixing one
      more coordinate in the ordering.

    A MAF uses this layer as is (fast `log_prob`, slow `sample`); an **IAF**
    (Kingma et al. 2016) is `Inverse(MaskedAutoregressive(...))` (fast `sample` and fast
    density of its own samples, slow `log_prob` of arbitrary data).

    Arguments:
        features: dimension $d$.
        hidden: widths of the masked hidden layers (use widths $\ge d - 1$).
        ordering: permutation of `0..d-1`; `ordering[k]` is the feature at position $k$
            (default: natural order).
        context_features: size of an optional conditioning context.
        activation: hidden activation (a module class).
        scale_clamp: if given, $s = c \tanh(\tilde s / c)$ bounds the log-scale.
    """

    def __init__(
        self,
        features: int,
        hidden: tuple[int, ...] = (64, 64),
        *,
        ordering: torch.Tensor | list[int] | None = None,
        context_features: int = 0,
        activation: type[nn.Module] = nn.ReLU,
        scale_clamp: float | None = None,
    ):
        super().__init__()
        self.features = int(features)
        self.context_features = int(context_features)
        self.scale_clamp = scale_clamp
        d = self.features
        ordering = torch.arange(d) if ordering is None else torch.as_tensor(ordering).long().cpu()
        if ordering.shape != (d,) or not torch.equal(ordering.sort().values, torch.arange(d)):
            raise ValueError(
                f"ordering must be a permutation of 0..{d - 1}, got {ordering.tolist()}"
            )
        self.register_buffer("ordering", ordering)
        self.network = _MADE(d, tuple(hidden), ordering, self.context_features, 2, activation)

    def _parameters_at(self, x, context):
        inputs = x if context is None else torch.cat([x, context], dim=-1)
        out = self.network(inputs)
        d = self.features
        return out[..., :d], _bounded(out[..., d:], self.scale_clamp)

    def _forward(self, x, context):
        shift, log_scale = self._parameters_at(x, context)
        return _affine_forward(x, shift, log_scale)

    def _inverse(self, y, context):
        # after pass k the first k coordinates in the ordering are exact; the d-th pass
        # reads only exact coordinates, so its log-scale is the one at the true x
        x = torch.zeros_like(y)
        for _ in range(self.features):
            shift, log_scale = self._parameters_at(x, context)
            x, logdet = _affine_inverse(y, shift, log_scale)
        return x, logdet
