"""Bijections with log-determinants: the base class, composition, and the elementwise layers
(elementwise affine, ActNorm, sigmoid/logit); the matrix layers (LU-parameterized affine,
planar) are in `genmath.core._matrix_bijections`.

Users import these from `genmath.core.change_of_variables`; this module is private.
"""

from __future__ import annotations

import torch
from torch import nn

from .._implements import implements
from ._validate import (
    InputTypeError,
    check_dtype,
    check_finite,
    check_int,
    module_dtype,
    positive_int,
)

__all__ = [
    "Bijection",
    "Compose",
    "Inverse",
    "ElementwiseAffine",
    "ActNorm",
    "Sigmoid",
    "Logit",
]


def _shape_text(shape) -> str:
    return "(" + ", ".join(str(s) for s in shape) + ("," if len(shape) == 1 else "") + ")"


def _sum_event(values: torch.Tensor, batch_ndim: int) -> torch.Tensor:
    """Sum the trailing dimensions of ``values`` so that only ``batch_ndim`` remain."""
    extra = values.ndim - batch_ndim
    if extra <= 0:
        return values
    return values.sum(dim=tuple(range(-extra, 0)))


class Bijection(nn.Module):
    r"""An invertible map $f$ with the log-absolute-determinant of its Jacobian.

    `forward(x, context=None)` returns $(f(x), \log|\det J_f(x)|)$ and
    `inverse(y, context=None)` returns $(f^{-1}(y), \log|\det J_{f^{-1}}(y)|)$, so that the
    two log-determinants of a round trip sum to zero. Inputs have shape
    `(*batch, *event)` where `event` has `event_dim` dimensions; log-determinants have
    shape `batch` (usually `(B,)`).

    Subclasses implement `_forward` and `_inverse` with the same signatures (they may
    return a log-determinant with extra trailing event dimensions; it is summed here).
    The public methods validate shapes and refuse non-finite log-determinants with a
    `ValueError`. In a flow, the convention is that `forward` maps **data to the base
    (noise)** — the density direction — and `inverse` maps noise to data (sampling).

    Attributes:
        event_dim: number of trailing dimensions that form one event.
        features: size of the last dimension, when the bijection fixes it (else `None`).
        context_features: size of the conditioning context's last dimension (0: none).
    """

    event_dim: int = 1
    features: int | None = None
    context_features: int = 0

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None):
        """$(f(x), \\log|\\det J_f(x)|)$ with the log-determinant of shape `batch`."""
        return self._pass(x, context, "x", "forward")

    def inverse(self, y: torch.Tensor, context: torch.Tensor | None = None):
        """$(f^{-1}(y), \\log|\\det J_{f^{-1}}(y)|)$ with the log-determinant of shape `batch`."""
        return self._pass(y, context, "y", "inverse")

    def _pass(self, x, context, name: str, direction: str):
        """One validated pass in ``direction``; ``name`` is the caller's name for ``x`` (a
        `Flow`'s ``value``), used in every error."""
        context = self._check_input(x, context, name)
        y, logdet = (self._forward if direction == "forward" else self._inverse)(x, context)
        return y, self._finish(logdet, x, direction, name, context)

    def _forward(self, x, context):
        raise NotImplementedError

    def _inverse(self, y, context):
        raise NotImplementedError

    def _check_input(self, x, context, name):
        if not isinstance(x, torch.Tensor):
            raise InputTypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
        if not x.is_floating_point():
            raise ValueError(f"{name} must be floating point, got dtype {x.dtype}")
        if x.numel() == 0:
            raise ValueError(
                f"{name} must hold at least one sample, got an empty tensor of shape "
                f"{_shape_text(x.shape)}"
            )
        check_dtype(x, module_dtype(self), name, type(self).__name__)
        if x.ndim < self.event_dim:
            raise ValueError(
                f"{type(self).__name__} expected {name} with at least {self.event_dim} event "
                f"dimension(s), got shape {_shape_text(x.shape)}"
            )
        if self.features is not None and (x.ndim == 0 or x.shape[-1] != self.features):
            raise ValueError(
                f"{type(self).__name__} expected {name} of shape (*batch, {self.features}), "
                f"got shape {_shape_text(x.shape)}"
            )
        return self._check_context(x, context)

    def _check_context(self, x, context):
        if self.context_features == 0:
            # unconditional layers ignore a context, so a Compose can pass one to all layers
            return None
        if context is None:
            raise ValueError(
                f"{type(self).__name__} is conditional: expected a context of shape "
                f"(*batch, {self.context_features}), got None"
            )
        if not isinstance(context, torch.Tensor) or not context.is_floating_point():
            got = context.dtype if isinstance(context, torch.Tensor) else type(context).__name__
            raise InputTypeError(f"context must be a floating-point tensor, got {got}")
        check_dtype(context, x.dtype, "context", f"{type(self).__name__} (the data)")
        if context.ndim == 0 or context.shape[-1] != self.context_features:
            raise ValueError(
                f"{type(self).__name__} expected a context of shape (*batch, "
                f"{self.context_features}), got shape {_shape_text(context.shape)}"
            )
        batch = x.shape[: x.ndim - self.event_dim]
        try:
            return context.expand(*batch, self.context_features)
        except RuntimeError:
            raise ValueError(
                f"context of shape {_shape_text(context.shape)} does not broadcast to the batch "
                f"shape {_shape_text(batch)} of the input {_shape_text(x.shape)}"
            ) from None

    def _finish(self, logdet, x, direction, name="x", context=None):
        logdet = _sum_event(logdet, x.ndim - self.event_dim)
        if logdet.shape != x.shape[: x.ndim - self.event_dim]:
            logdet = logdet.expand(x.shape[: x.ndim - self.event_dim])
        if not torch.isfinite(logdet).all():
            # say why, when the input itself is the reason (checked only on this failure path)
            check_finite(x, name, f"{type(self).__name__}.{direction} has no log|det J| there")
            if isinstance(context, torch.Tensor):
                check_finite(context, "context", f"{type(self).__name__}.{direction} is conditioned on it")
            bad = int((~torch.isfinite(logdet)).sum())
            raise ValueError(
                f"{type(self).__name__}.{direction}: expected a finite log|det J|, got a non-finite "
                f"value for {bad} of {logdet.numel()} inputs (input outside the domain, or "
                "parameters making the map singular or overflowing)"
            )
        return logdet


class Compose(Bijection):
    r"""$f = f_K \circ \dots \circ f_1$: `forward` applies the layers in the given order and
    adds their log-determinants, `inverse` undoes them in reverse order.

    A context, when given, is passed to every layer (unconditional layers ignore it).
    Layers may differ in `event_dim`; the composition's is the largest, and log-determinants
    of layers with fewer event dimensions are summed over the remaining ones.
    """

    def __init__(self, *bijections: Bijection):
        super().__init__()
        if len(bijections) == 1 and isinstance(bijections[0], list | tuple):
            bijections = tuple(bijections[0])
        if not bijections:
            raise ValueError("Compose expected at least one Bijection, got none")
        for i, b in enumerate(bijections):
            if not isinstance(b, Bijection):
                raise TypeError(f"Compose expected Bijections, got {type(b).__name__} at {i}")
        self.bijections = nn.ModuleList(bijections)
        self.event_dim = max(b.event_dim for b in bijections)
        self.features = bijections[0].features
        self.context_features = max(b.context_features for b in bijections)

    def _check_context(self, x, context):
        # each conditional layer checks the context it needs
        return context

    def _forward(self, x, context):
        batch_ndim = x.ndim - self.event_dim
        total = x.new_zeros(x.shape[:batch_ndim])
        for b in self.bijections:
            x, logdet = b._forward(x, b._check_context(x, context))
            total = total + _sum_event(logdet, batch_ndim)
        return x, total

    def _inverse(self, y, context):
        batch_ndim = y.ndim - self.event_dim
        total = y.new_zeros(y.shape[:batch_ndim])
        for b in reversed(self.bijections):
            y, logdet = b._inverse(y, b._check_context(y, context))
            total = total + _sum_event(logdet, batch_ndim)
        return y, total


class Inverse(Bijection):
    """The inverse bijection: its `forward` is the wrapped one's `inverse` and vice versa.

    `Inverse(MaskedAutoregressive(...))` is an inverse autoregressive flow (IAF) layer.
    """

    def __init__(self, bijection: Bijection):
        super().__init__()
        if not isinstance(bijection, Bijection):
            raise TypeError(f"Inverse expected a Bijection, got {type(bijection).__name__}")
        self.bijection = bijection
        self.event_dim = bijection.event_dim
        self.features = bijection.features
        self.context_features = bijection.context_features

    def _check_context(self, x, context):
        return self.bijection._check_context(x, context)

    def _forward(self, x, context):
        return self.bijection._inverse(x, context)

    def _inverse(self, y, context):
        return self.bijection._forward(y, context)


def _softplus(x: torch.Tensor) -> torch.Tensor:
    r"""$\log(1 + e^x)$ to full precision for every $x$ (torch's `softplus` returns $x$ itself
    above a threshold, an error of $e^{-x}$ that the log-determinant checks resolve)."""
    return torch.clamp_min(x, 0) + torch.log1p(torch.exp(-torch.abs(x)))


def _affine_forward(x, shift, log_scale):
    """$y = x e^{s} + t$ with $\\log|\\det| = \\sum s$ (the diagonal Jacobian $e^{s}$)."""
    return torch.addcmul(shift, x, torch.exp(log_scale)), log_scale


def _affine_inverse(y, shift, log_scale):
    return (y - shift) * torch.exp(-log_scale), -log_scale


class ElementwiseAffine(Bijection):
    r"""$y = e^{s} \odot x + t$ with learnable $s, t$ of shape `param_shape`.

    $\log|\det J| = \sum_i s_i$ summed over every event element (a parameter broadcast over
    $n$ event positions counts $n$ times). `param_shape` broadcasts against the event:
    `(d,)` for vectors, `(C, 1, 1)` for per-channel images (`event_dim=3`).

    Arguments:
        param_shape: shape of $s$ and $t$.
        event_dim: number of event dimensions (default `len(param_shape)`).
        log_scale: optional initial $s$ (default 0).
        shift: optional initial $t$ (default 0; with $s = 0$ the map is the identity).
    """

    def __init__(
        self,
        param_shape: int | tuple[int, ...],
        event_dim: int | None = None,
        *,
        log_scale: torch.Tensor | list | None = None,
        shift: torch.Tensor | list | None = None,
    ):
        super().__init__()
        shape = (param_shape,) if isinstance(param_shape, int) else param_shape
        if isinstance(shape, torch.Tensor) or not isinstance(shape, tuple | list | torch.Size):
            raise InputTypeError(
                f"param_shape must be a positive integer or a tuple of them, got {param_shape!r:.40}"
            )
        param_shape = torch.Size([positive_int(n, "param_shape") for n in shape])
        self.event_dim = (
            len(param_shape) if event_dim is None else check_int(event_dim, "event_dim", 0)
        )
        if self.event_dim < len(param_shape):
            raise ValueError(
                f"event_dim must be at least len(param_shape) = {len(param_shape)}, "
                f"got {self.event_dim}"
            )
        self.features = param_shape[-1] if self.event_dim == len(param_shape) else None
        if self.features == 1:
            self.features = None  # a size-1 last dimension broadcasts
        self.log_scale = nn.Parameter(self._initial(log_scale, param_shape, "log_scale"))
        self.shift = nn.Parameter(self._initial(shift, param_shape, "shift"))

    @staticmethod
    def _initial(value, shape, name):
        if value is None:
            return torch.zeros(shape)
        # a tensor keeps its floating dtype (float64 parameters are not rounded to float32)
        value = torch.as_tensor(value)
        if not value.is_floating_point():
            value = value.to(torch.get_default_dtype())
        value = check_finite(value, name)
        if value.shape != shape:
            raise ValueError(
                f"{name} expected shape {_shape_text(shape)}, got {_shape_text(value.shape)}"
            )
        return value.clone()

    def _check_input(self, x, context, name):
        context = super()._check_input(x, context, name)
        event = x.shape[x.ndim - self.event_dim :]
        try:
            fits = torch.broadcast_shapes(self.log_scale.shape, event) == event
        except RuntimeError:
            fits = False
        if not fits:
            raise ValueError(
                f"{type(self).__name__} with parameters of shape "
                f"{_shape_text(self.log_scale.shape)} expected an event shape they broadcast "
                f"to, got {name} of shape {_shape_text(x.shape)} (event {_shape_text(event)})"
            )
        return context

    def _event_log_scale(self, x):
        return self.log_scale.expand(x.shape[x.ndim - self.event_dim :])

    def _forward(self, x, context):
        y, _ = _affine_forward(x, self.shift, self.log_scale)
        return y, self._event_log_scale(x).sum().expand(x.shape[: x.ndim - self.event_dim])

    def _inverse(self, y, context):
        x, _ = _affine_inverse(y, self.shift, self.log_scale)
        return x, -self._event_log_scale(y).sum().expand(y.shape[: y.ndim - self.event_dim])


class ActNorm(ElementwiseAffine):
    r"""Activation normalization (Glow): an `ElementwiseAffine` whose parameters are set
    from the first batch it sees, so that this batch leaves it with zero mean and unit
    (biased, $1/N$) variance per parameter entry.

    The statistics are taken over the batch and over every event dimension the parameters
    broadcast over. Initialisation happens on the first `forward` call (the density
    direction); the `initialized` buffer is saved with the state dict.
    """

    def __init__(self, param_shape: int | tuple[int, ...], event_dim: int | None = None):
        super().__init__(param_shape, event_dim)
        self.register_buffer("initialized", torch.tensor(False))

    @torch.no_grad()
    @implements("D-actnorm-init")
    def initialize(self, x: torch.Tensor) -> None:
        """Set $s, t$ so that `forward(x)` has zero mean and unit variance per entry."""
        self._check_input(x, None, "x")
        check_finite(x, "x", "ActNorm initialises from the batch's mean and spread")
        batch_ndim = x.ndim - self.event_dim
        if batch_ndim == 0:
            # the statistics are over the batch (and a mean over dim=[] would reduce it all)
            raise ValueError(
                f"ActNorm initialises from a batch: expected x of shape (B, *event) with "
                f"{self.event_dim} event dimension(s), got one sample of shape "
                f"{_shape_text(x.shape)}"
            )
        param_ndim = self.log_scale.ndim
        reduce = list(range(batch_ndim))
        first_param_dim = x.ndim - param_ndim
        reduce += [first_param_dim + i for i, n in enumerate(self.log_scale.shape) if n == 1]
        reduce += list(range(batch_ndim, first_param_dim))
        mean = x.mean(dim=reduce, keepdim=True).reshape(self.log_scale.shape)
        std = x.std(dim=reduce, keepdim=True, unbiased=False).reshape(self.log_scale.shape)
        if not (std > 0).all():
            raise ValueError(
                "ActNorm initialisation expected a batch with non-zero spread in every entry, "
                f"got a standard deviation of {std.min().item():.3g}"
            )
        self.log_scale.copy_(-torch.log(std))
        self.shift.copy_(-mean / std)
        self.initialized.fill_(True)

    def _forward(self, x, context):
        if not bool(self.initialized):
            self.initialize(x)
        return super()._forward(x, context)


class Sigmoid(Bijection):
    r"""$y = \sigma(x) = 1/(1 + e^{-x})$, elementwise, from $\mathbb R$ onto $(0, 1)$.

    $\log|\sigma'(x)| = -\operatorname{softplus}(x) - \operatorname{softplus}(-x)$
    (derivation D-flow-sigmoid-logdet), computed without overflow for large $|x|$.
    """

    def __init__(self, event_dim: int = 1):
        super().__init__()
        self.event_dim = check_int(event_dim, "event_dim", 0)

    def _forward(self, x, context):
        return torch.sigmoid(x), -_softplus(x) - _softplus(-x)

    def _inverse(self, y, context, name="y"):
        if ((y <= 0) | (y >= 1)).any():
            raise ValueError(
                f"{name} must lie in the open interval (0, 1) for the logit, "
                f"got values in [{y.min().item():.4g}, {y.max().item():.4g}]"
            )
        x = torch.logit(y)
        return x, -torch.log(y) - torch.log1p(-y)


class Logit(Bijection):
    r"""$y = \operatorname{logit}(x) = \log\frac{x}{1-x}$, elementwise, from $(0, 1)$ onto
    $\mathbb R$: the inverse of [`Sigmoid`][genmath.core.change_of_variables.Sigmoid].

    $\log|\operatorname{logit}'(x)| = -\log x - \log(1 - x)$ (derivation
    D-flow-sigmoid-logdet). Put it first in a flow whose data live in $(0, 1)$.
    """

    def __init__(self, event_dim: int = 1):
        super().__init__()
        self.event_dim = check_int(event_dim, "event_dim", 0)
        self._sigmoid = Sigmoid(event_dim)

    def _forward(self, x, context):
        return self._sigmoid._inverse(x, context, "x")

    def _inverse(self, y, context):
        return self._sigmoid._forward(y, context)


