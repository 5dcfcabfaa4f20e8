"""Argument checks and small helpers shared by the discrete-diffusion modules."""

from __future__ import annotations

from collections.abc import Callable

import torch

from ...core._shapes import as_time
from ...core._validate import InputTypeError
from ...core.discrete import DiscretePath, MaskPath

Denoiser = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

# ----------------------------------------------------------------------------------- checks


def _check_path(path, mask_only: bool = False) -> DiscretePath:
    expected = "a genmath.core.discrete.MaskPath" if mask_only else "a MaskPath or UniformPath"
    if not isinstance(path, DiscretePath) or (mask_only and not isinstance(path, MaskPath)):
        raise ValueError(f"path must be {expected}, got {type(path).__name__}")
    return path


def _check_steps(steps) -> int:
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive int, got {steps!r}")
    return steps


def _check_x0(path: DiscretePath, x0: torch.Tensor) -> torch.Tensor:
    if not isinstance(x0, torch.Tensor) or x0.ndim < 1:
        raise ValueError(f"x0 must be an integer tensor of shape (B, *event), got {x0!r:.80}")
    path._check_tokens(x0, "x0", allow_mask=False)
    return x0


def _check_xt(path: DiscretePath, xt: torch.Tensor) -> torch.Tensor:
    if not isinstance(xt, torch.Tensor) or xt.ndim < 1:
        raise ValueError(f"xt must be an integer tensor of shape (B, *event), got {xt!r:.80}")
    path._check_tokens(xt, "xt", allow_mask=True)
    return xt


def _batch_time(t, tokens: torch.Tensor, dtype: torch.dtype, name: str = "t") -> torch.Tensor:
    """``t`` as a ``(B,)`` tensor in ``dtype`` (a scalar is repeated over the batch)."""
    # validate in the target dtype: a Python float must not pass through a float32 default
    t = as_time(t, like=torch.empty(0, dtype=dtype, device=tokens.device), name=name)
    if t.ndim == 0:
        return t.expand(tokens.shape[0]).clone()
    if t.shape[0] != tokens.shape[0]:
        raise ValueError(
            f"{name} must be a scalar or have shape (B,) = ({tokens.shape[0]},), got {tuple(t.shape)}"
        )
    return t


def _check_probs(probs, xt: torch.Tensor, K: int, name: str) -> torch.Tensor:
    """``probs`` (or logits) over the K data symbols per token: a floating tensor of shape
    ``(*xt.shape, K)``."""
    if not isinstance(probs, torch.Tensor):
        raise InputTypeError(f"{name} must be a torch.Tensor, got {type(probs).__name__}")
    if not probs.is_floating_point():
        raise InputTypeError(f"{name} must be floating point, got dtype {probs.dtype}")
    if probs.shape != (*xt.shape, K):
        raise ValueError(
            f"{name} must have shape (*xt.shape, K) = {(*xt.shape, K)}, got {tuple(probs.shape)}"
        )
    return probs


def _per_token(value: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    return value.reshape(value.shape[0], *([1] * (tokens.ndim - 1)))


def _float_dtype(dtype: torch.dtype | None) -> torch.dtype:
    return torch.get_default_dtype() if dtype is None else dtype


def _state_to_token(path: DiscretePath, states: torch.Tensor) -> torch.Tensor:
    return path._token(states)


def _draw(probs: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    flat = probs.reshape(-1, probs.shape[-1]).clamp_min(0)
    return torch.multinomial(flat, 1, generator=generator).reshape(probs.shape[:-1])


def _prior_tokens(path: DiscretePath, shape, generator, device=None) -> torch.Tensor:
    if isinstance(path, MaskPath):
        return torch.full(shape, path.mask_id, dtype=torch.long, device=device)
    return torch.randint(0, path.num_categories, shape, generator=generator, device=device)


def _check_shape(n, event_shape) -> tuple[int, ...]:
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive int, got {n!r}")
    event_shape = (event_shape,) if isinstance(event_shape, int) else tuple(event_shape)
    if not event_shape or any(not isinstance(d, int) or d < 1 for d in event_shape):
        raise ValueError(f"event_shape must be positive ints, got {event_shape!r}")
    return (n, *event_shape)

