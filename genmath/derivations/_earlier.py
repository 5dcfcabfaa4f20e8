"""Chain starts built on `_chain.Earlier` (an earlier step of the same derivation): the same
side integrated (`Integrated`) or in a limit (`Limited`); both also accept ``step=0``, the
derivation's start.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from ._chain import Earlier

__all__ = ["Earlier", "Integrated", "Limited"]


class _Side(Earlier):
    """`Earlier`, where ``step=0`` names the derivation's start."""

    def resolve(self) -> Any:
        if self.step != 0:
            return super().resolve()
        from ._engine import _resolve
        from ._registry import _DERIVATIONS

        source = _DERIVATIONS.get(self.derivation)
        if source is None:
            raise ValueError(f"{type(self).__name__}({self.derivation!r}): the derivation is not registered")
        expr = _resolve(source.start)
        if self.substitutions:
            expr = expr.subs(dict(self.substitutions), simultaneous=True)
        return expr


@dataclasses.dataclass(frozen=True)
class Integrated(_Side):
    """An earlier side of the chain, with substitutions, integrated over ``limits``: a
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


@dataclasses.dataclass(frozen=True)
class Limited(_Side):
    """An earlier side of the chain, with substitutions, in the limit ``variable -> oo``: a
    sequence of identities established for every value of ``variable`` has a limit."""

    variable: Any = None

    def __hash__(self) -> int:
        return hash((self.derivation, self.step, str(self.variable)))

    def resolve(self) -> Any:
        import sympy as sp

        return sp.Limit(super().resolve(), self.variable, sp.oo)
