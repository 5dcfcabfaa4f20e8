"""Shared input handling for the core: time values, batches and batch-first broadcasting.

Conventions (DESIGN.md): ``x`` has shape ``(B, *event)`` with ``B >= 1``; ``t`` is a float, a
0-d tensor or a ``(B,)`` tensor, and must lie in ``[0, 1]`` (t = 0 data, t = 1 noise). The
value rules (numbers, options, generators, dtypes) live in `genmath.core._validate`; the
whole contract is written out in CONTRIBUTING.md ("Input rules").
"""

from __future__ import annotations

import numbers

import torch

from .._implements import plumbing
from ._validate import InputTypeError, check_option, positive_int

__all__ = [
    "as_time",
    "scalar_time",
    "network_time",
    "expand_time",
    "check_batch",
    "check_like",
    "positive_int",
    "REDUCTIONS",
    "check_reduction",
    "reduce_batch",
]


def as_time(t, *, like: torch.Tensor | None = None, name: str = "t") -> torch.Tensor:
    """``t`` as a floating tensor in the dtype/device of ``like`` (or the default dtype),
    validated to be finite and inside ``[0, 1]``. Times are coordinates: they follow the
    data's dtype (a float64 ``t`` with float32 data is cast, not refused)."""
    if isinstance(t, torch.Tensor):
        if t.dtype == torch.bool or t.is_complex():
            raise InputTypeError(f"{name} must be a real time in [0, 1], got a {t.dtype} tensor")
        if like is not None:
            t = t.to(dtype=like.dtype, device=like.device)
        elif not t.is_floating_point():
            t = t.to(torch.get_default_dtype())
    else:
        if isinstance(t, bool) or not isinstance(t, numbers.Real | list | tuple):
            raise InputTypeError(
                f"{name} must be a number or a tensor of times in [0, 1], got "
                f"{type(t).__name__} {t!r:.40}"
            )
        dtype = like.dtype if like is not None else torch.get_default_dtype()
        device = like.device if like is not None else None
        try:
            t = torch.as_tensor(t, dtype=dtype, device=device)
        except (TypeError, ValueError, RuntimeError):
            raise InputTypeError(
                f"{name} must be a number or a tensor of times in [0, 1], got {t!r:.40}"
            ) from None
    if t.ndim > 1:
        raise ValueError(f"{name} must be a scalar or have shape (B,), got shape {tuple(t.shape)}")
    if not torch.isfinite(t).all():
        raise ValueError(f"{name} must be finite, got {t}")
    if t.numel() and ((t < 0).any() or (t > 1).any()):
        bad = t[(t < 0) | (t > 1)]
        raise ValueError(f"{name} must lie in [0, 1] (t = 0 data, t = 1 noise), got {bad.tolist()[:5]}")
    return t


def scalar_time(t, name: str = "t") -> float:
    """One time in ``[0, 1]`` as a float (a number or a one-element tensor), for functions
    that take a single time rather than one per sample."""
    tensor = as_time(t, name=name)
    if tensor.numel() != 1:
        raise ValueError(
            f"{name} must be a single time in [0, 1], got a tensor of shape {tuple(tensor.shape)}"
        )
    return float(tensor.reshape(()).item())


def network_time(t, x: torch.Tensor, name: str = "t") -> torch.Tensor:
    """The time input of a network as a ``(B,)`` tensor in x's dtype/device: any finite real
    (a time in [0, 1], EDM's noise label, a solver probing past an end), a scalar or one per
    sample; integer step indices are converted."""
    if isinstance(t, torch.Tensor):
        if t.dtype == torch.bool or t.is_complex():
            raise InputTypeError(f"{name} must be real, got a {t.dtype} tensor")
        t = t.to(dtype=x.dtype, device=x.device)
    elif isinstance(t, bool) or not isinstance(t, numbers.Real):
        raise InputTypeError(f"{name} must be a number or a tensor, got {type(t).__name__} {t!r:.40}")
    else:
        t = torch.tensor(float(t), dtype=x.dtype, device=x.device)
    if t.ndim == 0:
        t = t.expand(x.shape[0])
    elif t.shape != (x.shape[0],):
        raise ValueError(
            f"{name} must be a scalar or have shape ({x.shape[0]},) for x of shape "
            f"{tuple(x.shape)}, got shape {tuple(t.shape)}"
        )
    if not bool(torch.isfinite(t).all()):
        raise ValueError(f"{name} must be finite, got {t.tolist()[:5]}")
    return t


@plumbing("shape bookkeeping: a (B,) time becomes (B, 1, ..., 1) so it broadcasts over (B, *event)")
def expand_time(t: torch.Tensor, x: torch.Tensor, name: str = "t", data: str = "x") -> torch.Tensor:
    """Reshape a scalar or ``(B,)`` time tensor so it broadcasts against ``x`` of shape
    ``(B, *event)``: ``(B,)`` becomes ``(B, 1, ..., 1)``. ``data`` names ``x`` in errors."""
    if t.ndim == 0:
        return t
    if x.ndim == 0 or t.shape[0] != x.shape[0]:
        raise ValueError(
            f"{name} has shape {tuple(t.shape)} but {data} has shape {tuple(x.shape)}: "
            f"a per-sample {name} needs shape (B,) with B = {data}.shape[0]"
        )
    return t.reshape(t.shape[0], *([1] * (x.ndim - 1)))


def check_batch(
    x: torch.Tensor,
    name: str = "x",
    *,
    event: bool = False,
    floating: bool = True,
    empty: bool = False,
) -> torch.Tensor:
    """``x`` must be a floating tensor with a non-empty batch dimension ``(B, *event)``,
    ``B >= 1``; with ``event=True`` it needs at least one event dimension too (the functions
    that return one value per sample reduce over the event). ``floating=False`` also accepts
    integer data (grey levels or tokens under a categorical likelihood); ``empty=True`` accepts
    ``B = 0`` (a rank's shard of a global batch may be empty)."""
    if not isinstance(x, torch.Tensor):
        raise InputTypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.dtype == torch.bool or (x.is_complex()) or (floating and not x.is_floating_point()):
        raise ValueError(f"{name} must be floating point, got dtype {x.dtype}")
    if x.ndim < 1:
        raise ValueError(f"{name} must have shape (B, *event), got a 0-d tensor")
    if event and x.ndim < 2:
        raise ValueError(
            f"{name} must have shape (B, *event) with at least one event dimension, got shape "
            f"{tuple(x.shape)}; for scalar data pass {name}[:, None]"
        )
    if x.shape[0] == 0 and not empty:
        raise ValueError(
            f"{name} must hold at least one sample, got an empty batch of shape {tuple(x.shape)}"
        )
    return x


def check_like(y, x: torch.Tensor, name: str, x_name: str) -> torch.Tensor:
    """``y`` must be a floating tensor of the shape and dtype of ``x`` (``eps`` of ``x0``)."""
    if not isinstance(y, torch.Tensor):
        raise InputTypeError(f"{name} must be a torch.Tensor, got {type(y).__name__}")
    if y.shape != x.shape:
        raise ValueError(
            f"{name} must have the shape of {x_name}, {tuple(x.shape)}; got {tuple(y.shape)}"
        )
    if not y.is_floating_point() or y.dtype != x.dtype:
        raise InputTypeError(f"{name} must have the dtype of {x_name}, {x.dtype}; got {y.dtype}")
    return y


REDUCTIONS = ("mean", "none")


def check_reduction(reduction: str) -> str:
    """A loss's ``reduction``: ``"mean"`` over the batch or ``"none"`` (per-sample, ``(B,)``)."""
    return check_option(reduction, REDUCTIONS, "reduction")


@plumbing("the reduction switch: the batch mean of per-sample values, or the values unchanged")
def reduce_batch(values: torch.Tensor, reduction: str) -> torch.Tensor:
    """Per-sample ``values`` reduced as ``reduction`` says (validated)."""
    return values.mean() if check_reduction(reduction) == "mean" else values
