"""Classifier-free guidance: condition dropout for training, the guided field for sampling."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from ..._implements import implements, plumbing
from ..denoisers import NULL_LABEL
from ..flow_matching import guided as _guided_combination
from ._common import Model, _bind_condition


@plumbing("a Bernoulli mask replacing labels by NULL_LABEL: no formula")
def drop_condition(condition: torch.Tensor, p: float, *, generator=None) -> torch.Tensor:
    r"""Replace each label by `NULL_LABEL` with probability ``p`` (Ho & Salimans 2021): one
    network learns the conditional and, on the dropped entries, the unconditional model."""
    if not 0 <= p <= 1:
        raise ValueError(f"condition dropout p must lie in [0, 1], got {p}")
    if not isinstance(condition, torch.Tensor) or condition.ndim != 1:
        raise ValueError(
            "condition dropout works on a (B,) tensor of integer labels, got "
            f"{tuple(condition.shape) if isinstance(condition, torch.Tensor) else type(condition).__name__}"
        )
    if p == 0:
        return condition
    drop = torch.rand(condition.shape, generator=generator) < p
    return torch.where(drop.to(condition.device), torch.full_like(condition, NULL_LABEL), condition)


@implements("D-cfg-guided", "D-cfg-not-a-marginal")
def guide(
    model: Model,
    condition: torch.Tensor,
    scale: float,
    *,
    unconditional: Model | None = None,
) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    r"""Classifier-free guidance: ``(x, t) ->`` $f_w = f_\varnothing + w\,(f_c - f_\varnothing)$.

    Works in any parameterization: each is affine in the prediction with coefficients that
    do not depend on the model (`GaussianPath.convert`), and $(1-w) + w = 1$, so guiding then
    converting equals converting then guiding — guided $\varepsilon$ gives the guided score
    $\nabla\log p_t(x) + w\,(\nabla\log p_t(x \mid c) - \nabla\log p_t(x))$. That score is
    **not** the score of any path marginal in general (D-cfg-not-a-marginal): guided sampling
    does not sample $p(x_0 \mid c)^w p(x_0)^{1-w}$ pushed along the path.

    Arguments:
        model: ``model(x, t, condition)``; with ``unconditional=None`` its unconditional branch
            is ``model(x, t, None)``, available when ``model.has_null_condition`` (trained
            with `drop_condition`).
        condition: one condition per sample, batch size that of ``x``.
        scale: $w$; $w = 1$ needs no unconditional branch.
        unconditional: an explicit ``(x, t) ->`` unconditional model.
    """
    if not (isinstance(scale, int | float) and math.isfinite(scale)):
        raise ValueError(f"guidance scale must be a finite number, got {scale!r}")
    if not isinstance(condition, torch.Tensor) or condition.ndim < 1:
        raise ValueError(f"condition must be a tensor with a batch dimension, got {condition!r}")
    batch = condition.shape[0]
    conditional = _bind_condition(model, condition, batch)
    if scale == 1:
        return conditional
    if unconditional is None:
        if not getattr(model, "has_null_condition", False):
            raise ValueError(
                f"guidance scale {scale} != 1 needs an unconditional branch: pass "
                "unconditional=... or a model with has_null_condition=True (trained with "
                "condition dropout), got neither"
            )

        def unconditional(x: torch.Tensor, t) -> torch.Tensor:
            return model(x, t, None)

    return _guided_combination(conditional, unconditional, float(scale))
