"""Shared input handling for the core: time values and batch-first broadcasting.

Conventions (DESIGN.md): ``x`` has shape ``(B, *event)``; ``t`` is a float, a 0-d tensor or
a ``(B,)`` tensor, and must lie in ``[0, 1]`` (t = 0 data, t = 1 noise).
"""

from __future__ import annotations

import torch

from .._implements import plumbing


def as_time(t, *, like: torch.Tensor | None = None, name: str = "t") -> torch.Tensor:
    """``t`` as a floating tensor in the dtype/device of ``like`` (or the default dtype),
    validated to be finite and inside ``[0, 1]``."""
    if isinstance(t, torch.Tensor):
        if like is not None:
            t = t.to(dtype=like.dtype, device=like.device)
        elif not t.is_floating_point():
            t = t.to(torch.get_default_dtype())
    else:
        dtype = like.dtype if like is not None else torch.get_default_dtype()
        device = like.device if like is not None else None
        t = torch.as_tensor(t, dtype=dtype, device=device)
    if t.ndim > 1:
        raise ValueError(f"{name} must be a scalar or have shape (B,), got shape {tuple(t.shape)}")
    if not torch.isfinite(t).all():
        raise ValueError(f"{name} must be finite, got {t}")
    if t.numel() and ((t < 0).any() or (t > 1).any()):
        bad = t[(t < 0) | (t > 1)]
        raise ValueError(f"{name} must lie in [0, 1] (t = 0 data, t = 1 noise), got {bad.tolist()[:5]}")
    return t


@plumbing("shape bookkeeping: a (B,) time becomes (B, 1, ..., 1) so it broadcasts over (B, *event)")
def expand_time(t: torch.Tensor, x: torch.Tensor, name: str = "t") -> torch.Tensor:
    """Reshape a scalar or ``(B,)`` time tensor so it broadcasts against ``x`` of shape
    ``(B, *event)``: ``(B,)`` becomes ``(B, 1, ..., 1)``."""
    if t.ndim == 0:
        return t
    if x.ndim == 0 or t.shape[0] != x.shape[0]:
        raise ValueError(
            f"{name} has shape {tuple(t.shape)} but x has shape {tuple(x.shape)}: "
            f"a per-sample {name} needs shape (B,) with B = x.shape[0]"
        )
    return t.reshape(t.shape[0], *([1] * (x.ndim - 1)))


def check_batch(x: torch.Tensor, name: str = "x") -> torch.Tensor:
    """``x`` must be a floating tensor with a batch dimension."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.ndim < 1:
        raise ValueError(f"{name} must have shape (B, *event), got a 0-d tensor")
    if not x.is_floating_point():
        raise ValueError(f"{name} must be floating point, got dtype {x.dtype}")
    return x


def positive_int(value, name: str, minimum: int = 1) -> int:
    """``value`` if it is an integer (not a bool) of at least ``minimum``, else a ValueError."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        expected = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        raise ValueError(f"{name} must be {expected}, got {value!r}")
    return value


REDUCTIONS = ("mean", "none")


def check_reduction(reduction: str) -> str:
    """A loss's ``reduction``: ``"mean"`` over the batch or ``"none"`` (per-sample, ``(B,)``)."""
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
    return reduction


@plumbing("the reduction switch: the batch mean of per-sample values, or the values unchanged")
def reduce_batch(values: torch.Tensor, reduction: str) -> torch.Tensor:
    """Per-sample ``values`` reduced as ``reduction`` says (validated)."""
    return values.mean() if check_reduction(reduction) == "mean" else values
