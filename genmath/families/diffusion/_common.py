"""Helpers shared by the diffusion models: binding a condition, per-sample times, event sums."""

from __future__ import annotations

from collections.abc import Callable

import torch

Model = Callable[..., torch.Tensor]


def _bind_condition(model: Model, condition, batch: int) -> Callable:
    """``(x, t) -> model(x, t[, condition])``, with the condition's batch size checked."""
    if condition is None:
        return model
    if not isinstance(condition, torch.Tensor) or condition.ndim < 1:
        raise ValueError(
            f"condition must be a tensor with a batch dimension, got {type(condition).__name__}"
        )
    if condition.shape[0] != batch:
        raise ValueError(
            f"condition has batch size {condition.shape[0]} but x has batch size {batch}: "
            "expected one condition per sample"
        )

    def bound(x: torch.Tensor, t) -> torch.Tensor:
        if x.shape[0] != condition.shape[0]:
            raise ValueError(
                f"condition has batch size {condition.shape[0]} but the model was called on "
                f"a batch of {x.shape[0]}"
            )
        return model(x, t, condition)

    return bound


def _per_sample_times(t: torch.Tensor, batch: int) -> torch.Tensor:
    return t.expand(batch) if t.ndim == 0 else t


def _sum_event(values: torch.Tensor) -> torch.Tensor:
    return values.flatten(1).sum(1)
