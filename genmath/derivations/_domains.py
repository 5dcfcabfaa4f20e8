"""Where numeric steps and bindings draw their points: `Uniform`, `LogUniform`, `Integers`
(split from `_engine`, which re-exports them)."""

from __future__ import annotations

import dataclasses
import math
import random
from typing import Any

import sympy as sp

__all__ = ["Uniform", "LogUniform", "Integers"]


@dataclasses.dataclass(frozen=True)
class Uniform:
    """Uniform samples on ``[low, high]``; ``ends=True`` also puts both ends among them."""

    low: float
    high: float
    ends: bool = False

    def __post_init__(self) -> None:
        if not self.low < self.high:
            raise ValueError(f"Uniform needs low < high, got ({self.low}, {self.high})")

    def draw(self, rng: random.Random, n: int) -> list[float]:
        values = [rng.uniform(self.low, self.high) for _ in range(n)]
        if self.ends and n >= 2:
            values[0], values[1] = float(self.low), float(self.high)
        return values

    @property
    def bounds(self) -> tuple[float, float]:
        return (float(self.low), float(self.high))

    def __str__(self) -> str:
        return f"[{self.low:g}, {self.high:g}]" + (" (ends included)" if self.ends else "")


@dataclasses.dataclass(frozen=True)
class LogUniform:
    """Log-uniform samples on ``[low, high]`` (scales spanning orders of magnitude)."""

    low: float
    high: float
    ends: bool = False

    def __post_init__(self) -> None:
        if not 0 < self.low < self.high:
            raise ValueError(f"LogUniform needs 0 < low < high, got ({self.low}, {self.high})")

    def draw(self, rng: random.Random, n: int) -> list[float]:
        lo, hi = math.log(self.low), math.log(self.high)
        values = [math.exp(rng.uniform(lo, hi)) for _ in range(n)]
        if self.ends and n >= 2:
            values[0], values[1] = float(self.low), float(self.high)
        return values

    @property
    def bounds(self) -> tuple[float, float]:
        return (float(self.low), float(self.high))

    def __str__(self) -> str:
        return f"[{self.low:g}, {self.high:g}], log-uniform"


@dataclasses.dataclass(frozen=True)
class Integers:
    """Integers drawn uniformly from ``low..high`` (both included)."""

    low: int
    high: int

    def __post_init__(self) -> None:
        if not self.low <= self.high:
            raise ValueError(f"Integers needs low <= high, got ({self.low}, {self.high})")

    def draw(self, rng: random.Random, n: int) -> list[int]:
        return [rng.randint(self.low, self.high) for _ in range(n)]

    @property
    def bounds(self) -> tuple[float, float]:
        return (float(self.low), float(self.high))

    def __str__(self) -> str:
        return f"integers {self.low}..{self.high}"


def _as_domain(spec: Any) -> Uniform | LogUniform | Integers:
    if isinstance(spec, Uniform | LogUniform | Integers):
        return spec
    if isinstance(spec, tuple) and len(spec) == 2:
        return Uniform(float(spec[0]), float(spec[1]))
    raise ValueError(
        f"a domain is (low, high), Uniform, LogUniform or Integers; got {spec!r}"
    )


def _default_domain(symbol: sp.Symbol) -> Uniform | Integers:
    if symbol.is_integer:
        low = 1 if symbol.is_positive else (0 if symbol.is_nonnegative else -4)
        return Integers(low, 6)
    if symbol.is_positive:
        return Uniform(0.2, 3.0)
    if symbol.is_nonnegative:
        return Uniform(0.0, 3.0)
    if symbol.is_negative:
        return Uniform(-3.0, -0.2)
    return Uniform(-3.0, 3.0)
