"""A small MLP denoiser on token sequences."""

from __future__ import annotations

import torch
from torch import nn

from ..._implements import plumbing
from ...core._shapes import network_time
from ...core._validate import InputTypeError, check_int, positive_int


class TokenMLP(nn.Module):
    r"""A small MLP denoiser on token sequences: one-hot tokens (S states) of a length-L
    sequence, optionally the time, to logits ``(B, L, K)``. ``time_conditioned=False`` gives
    the time-independent denoiser of masked diffusion (enables caching in `ancestral_sample`).
    """

    def __init__(
        self,
        length: int,
        num_states: int,
        num_categories: int,
        hidden: int = 256,
        time_conditioned: bool = True,
        mask_id: int | None = None,
    ):
        super().__init__()
        self.length = positive_int(length, "length")
        self.num_states = positive_int(num_states, "num_states", 2)
        self.num_categories = positive_int(num_categories, "num_categories", 2)
        positive_int(hidden, "hidden")
        if not isinstance(time_conditioned, bool):
            raise InputTypeError(
                f"time_conditioned must be True or False, got {type(time_conditioned).__name__}"
            )
        self.time_conditioned = time_conditioned
        self.mask_id = None if mask_id is None else check_int(mask_id, "mask_id", 0)
        inputs = length * num_states + int(time_conditioned)
        self.net = nn.Sequential(
            nn.Linear(inputs, hidden),
            nn.SiLU(),
            nn.Linear(hidden, hidden),
            nn.SiLU(),
            nn.Linear(hidden, length * num_categories),
        )

    @plumbing("network architecture: one-hot tokens (and the time) through an MLP")
    def forward(self, xt: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        self._check_tokens(xt)
        states = (
            xt if self.mask_id is None else torch.where(xt == self.mask_id, self.num_states - 1, xt)
        )
        dtype = self.net[0].weight.dtype
        features = torch.nn.functional.one_hot(states, self.num_states).to(dtype).flatten(1)
        if self.time_conditioned:
            # validated like any network time: finite, a scalar or one per sample
            t = network_time(t, features)
            features = torch.cat([features, t.reshape(-1, 1)], -1)
        return self.net(features).reshape(xt.shape[0], self.length, self.num_categories)

    def _check_tokens(self, xt) -> None:
        if not isinstance(xt, torch.Tensor):
            raise InputTypeError(f"xt must be an integer tensor, got {type(xt).__name__}")
        if xt.is_floating_point() or xt.is_complex() or xt.dtype == torch.bool:
            raise InputTypeError(f"xt must hold integer tokens, got dtype {xt.dtype}")
        if xt.ndim != 2 or xt.shape[0] == 0 or xt.shape[1] != self.length:
            raise ValueError(
                f"xt must have shape (B, {self.length}) with B >= 1, got {tuple(xt.shape)}"
            )
        allowed = (xt >= 0) & (xt < self.num_states)
        if self.mask_id is not None:
            allowed |= xt == self.mask_id
        if not bool(allowed.all()):
            raise ValueError(
                f"xt must hold tokens in 0..{self.num_states - 1}"
                + ("" if self.mask_id is None else f" or the mask id {self.mask_id}")
                + f", got {xt[~allowed].tolist()[:5]}"
            )
