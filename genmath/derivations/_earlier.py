"""`Earlier`: a chain start taken from an earlier step of the same derivation.

`From(<own id>, substitutions, step=k)` is the engine's way to start a new chain from an
earlier step of the derivation being built, but `From.resolve` asks the registry for that
derivation's resolved chain, which is still being resolved (infinite recursion). A step's
right-hand side never needs resolving, so `Earlier` reads it from the step list directly;
otherwise it is a `From` (the engine treats it as a chain start that is not free).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from ._engine import Derivation, From

__all__ = ["Earlier"]


@dataclasses.dataclass(frozen=True)
class Earlier(From):
    """The right-hand side of step ``step`` (1-based) of ``derivation``, with substitutions."""

    def __hash__(self) -> int:
        return hash((self.derivation, self.step))

    def resolve(self) -> Any:
        from ._registry import _DERIVATIONS

        source = _DERIVATIONS.get(self.derivation)
        if not isinstance(source, Derivation) or self.step is None:
            return super().resolve()
        expr = source.steps[self.step - 1].rhs
        if self.substitutions:
            expr = expr.subs(dict(self.substitutions), simultaneous=True)
        return expr


@dataclasses.dataclass(frozen=True)
class Integrated(Earlier):
    """An earlier step's right-hand side, with substitutions, integrated over ``limits``: a
    pointwise identity established in the chain holds after integrating both sides (the
    integral is left unevaluated; `kind` is the integral class, e.g. one that stays symbolic).
    """

    limits: tuple = ()
    kind: Any = None

    def __hash__(self) -> int:
        return hash((self.derivation, self.step, self.limits))

    def resolve(self) -> Any:
        import sympy as sp

        kind = self.kind or sp.Integral
        return kind(super().resolve(), *self.limits)
