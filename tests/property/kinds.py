"""The kinds of arguments of the input contract (see `contract.py`): each wraps a valid value
and lists the bad values to try in its place, with what the contract expects of each (reject,
propagate a NaN, allow anything, keep the data's dtype, a finite result at an edge...)."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import torch

REJECT, PROPAGATE, ANY, SAME_DTYPE, EDGE, EVENTLESS = (
    "reject",
    "propagate",
    "any",
    "same_dtype",
    "edge",
    "eventless",
)


@dataclasses.dataclass(frozen=True)
class Spec:
    """Sizes and dtype of one valid call."""

    batch: int = 4
    dim: int = 2
    dtype: torch.dtype = torch.float64
    seed: int = 0

    def generator(self, salt: int = 0) -> torch.Generator:
        return torch.Generator().manual_seed(1000 * self.seed + salt)

    def randn(self, *shape, salt: int = 0) -> torch.Tensor:
        return torch.randn(*shape, generator=self.generator(salt), dtype=self.dtype)

    def rand(self, *shape, salt: int = 0) -> torch.Tensor:
        return torch.rand(*shape, generator=self.generator(salt), dtype=self.dtype)


@dataclasses.dataclass(frozen=True)
class Mutation:
    label: str
    value: Any
    expect: str
    finite: bool = True  # the bad value carries no NaN/inf
    near: Any = None  # EDGE of a function with a pole there: the value just inside


# --------------------------------------------------------------------------- kinds


class Kind:
    """A tagged argument: ``value`` is valid; `mutations` lists the bad values to try."""

    def __init__(self, value):
        self.value = value

    def mutations(self, spec: Spec) -> list[Mutation]:
        return []


class Plain(Kind):
    """An argument that is not mutated."""


def _with(x: torch.Tensor, value: float) -> torch.Tensor:
    out = x.clone()
    out.view(-1)[-1] = value
    return out


class Data(Kind):
    """Float data ``(B, *event)``.

    ``event``: the function needs at least one event dimension (else ``(B,)`` is tried as
    EVENTLESS); ``fixed``: the function knows the event size (a wrong one must be rejected);
    ``mix``: the function holds parameters of its own (float32 data must not meet float64
    parameters silently); ``finite``: NaN must be rejected (a discrete output cannot carry
    it); ``batch``: whether dim 0 is the batch (empty batches are tried); ``ints_ok``:
    integer data are documented input (class values)."""

    def __init__(
        self, value, *, fixed=False, mix=False, finite=False, batch=True, event=True, ints_ok=False
    ):
        super().__init__(value)
        self.fixed, self.mix, self.finite, self.batch, self.event = fixed, mix, finite, batch, event
        self.ints_ok = ints_ok

    def mutations(self, spec):
        x = self.value
        out = [
            Mutation("nan", _with(x, math.nan), REJECT if self.finite else PROPAGATE, finite=False),
            Mutation("inf", _with(x, math.inf), REJECT if self.finite else ANY, finite=False),
            Mutation("not a tensor", x.tolist(), REJECT),
            Mutation("0-d", x.reshape(-1)[0].clone(), REJECT),
        ]
        if not self.ints_ok:
            out.append(Mutation("integer dtype", x.round().long(), REJECT))
        if self.batch:
            out.append(Mutation("empty batch", x[:0].clone(), REJECT))
        if self.event and x.ndim >= 2:
            out.append(
                Mutation("event-less (B,)", x.reshape(x.shape[0], -1)[:, 0].clone(), EVENTLESS)
            )
        if self.fixed:
            wider = torch.cat([x, x[..., :1]], dim=-1)
            out.append(Mutation("wrong event size", wider, REJECT))
        if self.mix and x.dtype == torch.float64:
            out.append(Mutation("float32 data", x.float(), SAME_DTYPE))
        return out


class Param(Kind):
    """A parameter tensor of a constructor (lists and ints are converted, as numpy would):
    non-finite entries must be rejected."""

    def mutations(self, spec):
        x = self.value
        return [
            Mutation("nan", _with(x, math.nan), REJECT, finite=False),
            Mutation("inf", _with(x, math.inf), REJECT, finite=False),
            Mutation("a string", "zeros", REJECT),
        ]


class Values(Kind):
    """Float values of any shape (log-densities, weights): NaN propagates."""

    def mutations(self, spec):
        x = self.value
        return [
            Mutation("nan", _with(x, math.nan), PROPAGATE, finite=False),
            Mutation("a string", "values", REJECT),
        ]


class Partner(Kind):
    """A tensor that must match another argument's shape (``eps`` of ``x0``, ``x1`` of ``x0``)."""

    def __init__(self, value, *, finite=False):
        super().__init__(value)
        self.finite = finite

    def mutations(self, spec):
        x = self.value
        nan_expect = REJECT if self.finite else PROPAGATE
        return [
            Mutation("nan", _with(x, math.nan), nan_expect, finite=False),
            Mutation("wrong batch", torch.cat([x, x[:1]]), REJECT),
            Mutation("not a tensor", x.tolist(), REJECT),
            Mutation("integer dtype", x.round().long(), REJECT),
        ]


class Tokens(Kind):
    """Integer token ids in ``[0, K)`` of shape ``(B, *event)`` (``null``: the id ``-1`` is a
    valid null label, so ``-2`` is the bad negative one)."""

    def __init__(self, value, categories: int | None, *, batch=True, null=False, lists_ok=False):
        super().__init__(value)
        self.categories, self.batch, self.null = categories, batch, null
        self.lists_ok = lists_ok

    def mutations(self, spec):
        x = self.value
        out = [
            Mutation("float dtype", x.to(spec.dtype), REJECT),
            Mutation("negative id", _with(x, -2 if self.null else -1), REJECT),
        ]
        if not self.lists_ok:
            out.append(Mutation("not a tensor", x.tolist(), REJECT))
        if self.categories is not None:
            out.append(Mutation("id out of range", _with(x, self.categories + 5), REJECT))
        if self.batch:
            out.append(Mutation("empty batch", x[:0].clone(), REJECT))
        return out


class Time(Kind):
    """A time in [0, 1]: a float, 0-d or ``(B,)`` tensor. ``edges``: t = 0 and t = 1 are
    tried as valid extremes; ``batched``: a ``(B+1,)`` tensor must be rejected; ``poles``:
    the function may have a pole at an end (a schedule's log-SNR at t = 0): there it may
    return +-inf, with the sign it has just inside [0, 1]."""

    def __init__(self, value, *, batch: int | None = None, edges=True, poles=False):
        super().__init__(value)
        self.batch, self.edges, self.poles = batch, edges, poles

    def mutations(self, spec):
        out = [
            Mutation("t < 0", -0.5, REJECT),
            Mutation("t > 1", 1.5, REJECT),
            Mutation("t = nan", math.nan, REJECT, finite=False),
            Mutation("t = inf", math.inf, REJECT, finite=False),
            Mutation(
                "t of shape (B, 2)", torch.full((self.batch or 3, 2), 0.5, dtype=spec.dtype), REJECT
            ),
            Mutation("t a string", "half", REJECT),
        ]
        if self.batch is not None:
            out.append(
                Mutation(
                    "t of wrong length",
                    torch.full((self.batch + 1,), 0.5, dtype=spec.dtype),
                    REJECT,
                )
            )
        if self.edges:
            inside = (1e-9, 1 - 1e-9) if self.poles else (None, None)
            out += [
                Mutation("t = 0", 0.0, EDGE, near=inside[0]),
                Mutation("t = 1", 1.0, EDGE, near=inside[1]),
            ]
        return out


class NetTime(Kind):
    """The time input of a network: any finite real (EDM's noise label, a solver probing past
    [0, 1]), a scalar or ``(B,)``."""

    def __init__(self, value, *, batch: int):
        super().__init__(value)
        self.batch = batch

    def mutations(self, spec):
        return [
            Mutation("t = nan", math.nan, REJECT, finite=False),
            Mutation("t = inf", math.inf, REJECT, finite=False),
            Mutation(
                "t of shape (B, 2)", torch.full((self.batch, 2), 0.5, dtype=spec.dtype), REJECT
            ),
            Mutation("t a string", "half", REJECT),
            Mutation(
                "t of wrong length", torch.full((self.batch + 1,), 0.5, dtype=spec.dtype), REJECT
            ),
            Mutation("t = 0", 0.0, EDGE),
            Mutation("t = 1", 1.0, EDGE),
        ]


class Scale(Kind):
    """A positive finite number (``zero_ok``: non-negative)."""

    def __init__(self, value, *, zero_ok=False, tensor=False):
        super().__init__(value)
        self.zero_ok, self.tensor = zero_ok, tensor

    def mutations(self, spec):
        def v(x):
            return torch.full_like(self.value, x) if self.tensor else x

        out = [
            Mutation("negative", v(-1.0), REJECT),
            Mutation("nan", v(math.nan), REJECT, finite=False),
            Mutation("inf", v(math.inf), REJECT, finite=False),
        ]
        if not self.zero_ok:
            out.append(Mutation("zero", v(0.0), REJECT))
        if not self.tensor:
            out.append(Mutation("a string", "one", REJECT))
        return out


class Unit(Kind):
    """A number in [0, 1] (``open``: in (0, 1))."""

    def __init__(self, value, *, open=False):
        super().__init__(value)
        self.open = open

    def mutations(self, spec):
        out = [
            Mutation("below 0", -0.25, REJECT),
            Mutation("above 1", 1.5, REJECT),
            Mutation("nan", math.nan, REJECT, finite=False),
        ]
        if self.open:
            out += [
                Mutation("0 (open interval)", 0.0, REJECT),
                Mutation("1 (open interval)", 1.0, REJECT),
            ]
        return out


class Real(Kind):
    """Any finite real number."""

    def mutations(self, spec):
        return [
            Mutation("nan", math.nan, REJECT, finite=False),
            Mutation("inf", math.inf, REJECT, finite=False),
            Mutation("a string", "one", REJECT),
        ]


class Count(Kind):
    """An integer of at least ``minimum``."""

    def __init__(self, value, minimum: int = 1):
        super().__init__(value)
        self.minimum = minimum

    def mutations(self, spec):
        return [
            Mutation("below minimum", self.minimum - 1, REJECT),
            Mutation("negative", -3, REJECT),
            Mutation("a float", self.value + 0.5, REJECT),
            Mutation("a bool", True if self.minimum > 1 else False, REJECT),
        ]


class Option(Kind):
    """One of a fixed set of strings (``strings_only=False``: other types mean something)."""

    def __init__(self, value, *, strings_only=True):
        super().__init__(value)
        self.strings_only = strings_only

    def mutations(self, spec):
        out = [Mutation("unknown option", "bogus", REJECT)]
        if self.strings_only:
            out.append(Mutation("not a string", 7, REJECT))
        return out


class Gen(Kind):
    """A ``torch.Generator`` or None."""

    def __init__(self, value=None):
        super().__init__(value)

    def mutations(self, spec):
        return [Mutation("an int", 42, REJECT), Mutation("a string", "seed", REJECT)]


class Flag(Kind):
    """A bool switch (``optional``: ``None`` means "decide for me")."""

    def __init__(self, value, *, optional=False):
        super().__init__(value)
        self.optional = optional

    def mutations(self, spec):
        return [Mutation("a string", "no", REJECT), Mutation("an int", 1, REJECT)]


class PathKind(Kind):
    """A `GaussianPath` (``schedule``: a `Schedule`)."""

    def __init__(self, value, *, schedule=False):
        super().__init__(value)
        self.schedule = schedule

    def mutations(self, spec):
        return [Mutation("a string", "bogus", REJECT), Mutation("a number", 3.0, REJECT)]


class Lam(Kind):
    """Log-SNR values; ``+-1e3`` are valid or out of the schedule's range."""

    def mutations(self, spec):
        return [
            Mutation("nan", math.nan, REJECT, finite=False),
            Mutation("very large", 1e3, EDGE),
            Mutation("very small", -1e3, EDGE),
        ]
