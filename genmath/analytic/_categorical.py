"""Categorical data over short sequences on a small vocabulary, given by its full probability table."""

from __future__ import annotations

import torch

from .._implements import implements

__all__ = ["Categorical"]


class Categorical:
    """A law on sequences $x = (x_1, \\dots, x_L)$ with $x_i \\in \\{0, \\dots, K-1\\}$, given
    by the table of all $K^L$ probabilities — small enough to enumerate, so every
    expectation under it is an exact finite sum.

    Arguments:
        probs: shape ``(K,) * L`` (``probs[x_1, ..., x_L]``), non-negative, summing to 1
            (to $10^{-12}$ in float64, $10^{-6}$ otherwise); renormalised to round-off.
            A 1-d table is a single token ($L = 1$).
    """

    def __init__(self, probs):
        probs = torch.as_tensor(probs)
        if not probs.is_floating_point():
            probs = probs.to(torch.get_default_dtype())
        if probs.ndim < 1 or len(set(probs.shape)) != 1 or probs.shape[0] < 1:
            raise ValueError(
                f"probs must have shape (K,) * L (the same K along every axis), got {tuple(probs.shape)}"
            )
        if not torch.isfinite(probs).all() or (probs < 0).any():
            raise ValueError("probs must be finite and non-negative")
        tol = 1e-12 if probs.dtype == torch.float64 else 1e-6
        total = float(probs.sum())
        if abs(total - 1.0) > tol:
            raise ValueError(f"probs must sum to 1, got sum {total!r}")
        self.probs = probs / probs.sum()
        self.vocab_size = probs.shape[0]
        self.length = probs.ndim
        # place values of a sequence read as a base-K number, matching probs.flatten()
        self._place = self.vocab_size ** torch.arange(self.length - 1, -1, -1)

    @classmethod
    @implements("D-categorical-table")
    def from_logits(cls, logits) -> Categorical:
        """The table ``softmax(logits)`` over all entries; ``logits`` has shape ``(K,) * L``."""
        logits = torch.as_tensor(logits)
        return cls(torch.softmax(logits.flatten(), 0).reshape(logits.shape))

    def _check_tokens(self, x: torch.Tensor) -> torch.Tensor:
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
        if x.is_floating_point() or x.is_complex() or x.dtype == torch.bool:
            raise ValueError(f"x must hold integer token ids, got dtype {x.dtype}")
        if x.ndim != 2 or x.shape[1] != self.length:
            raise ValueError(f"x must have shape (B, L) = (B, {self.length}), got {tuple(x.shape)}")
        if x.numel() and (x.min() < 0 or x.max() >= self.vocab_size):
            raise ValueError(
                f"token ids must lie in [0, {self.vocab_size - 1}] (K = {self.vocab_size}), "
                f"got values in [{int(x.min())}, {int(x.max())}]"
            )
        return x.long()

    @implements("D-categorical-table")
    def index(self, x: torch.Tensor) -> torch.Tensor:
        """Position of each sequence in ``probs.flatten()`` and `enumerate`, shape ``(B,)``."""
        x = self._check_tokens(x)
        return x @ self._place.to(x.device)

    @implements("D-categorical-table")
    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """$\\log p(x)$ for integer ``x`` of shape ``(B, L)``, shape ``(B,)`` (``-inf`` where $p = 0$)."""
        return self.probs.flatten().log()[self.index(x).to(self.probs.device)]

    @implements("D-categorical-table")
    def enumerate(self) -> torch.Tensor:
        """All $K^L$ sequences, shape ``(K^L, L)``, in the order of ``probs.flatten()``."""
        flat = torch.arange(self.vocab_size**self.length)
        return (flat[:, None] // self._place) % self.vocab_size

    @implements("D-categorical-table")
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` independent sequences, integer tensor of shape ``(n, L)``."""
        if not isinstance(n, int) or n < 0:
            raise ValueError(f"n must be a non-negative int, got {n!r}")
        if n == 0:
            return torch.zeros(0, self.length, dtype=torch.long)
        flat = torch.multinomial(self.probs.flatten(), n, replacement=True, generator=generator)
        return (flat[:, None] // self._place.to(flat.device)) % self.vocab_size

    @implements("D-categorical-table")
    def token_marginals(self) -> torch.Tensor:
        """$p(x_i = j)$, shape ``(L, K)``."""
        axes = range(self.length)
        return torch.stack([self.probs.sum(dim=tuple(a for a in axes if a != i)) for i in axes])

    def __repr__(self) -> str:
        return f"Categorical(vocab_size={self.vocab_size}, length={self.length})"
