"""`Earlier`: an earlier step of the *same* derivation, with substitutions, as a chain start.

The engine's ``From(<own id>, subs, step=k)`` resolves through ``Derivation.chain()``, which
is still being built when the derivation's own later step asks for it, so it recurses
without end (reported to the lead). `Earlier` is the same chain start resolved from the
step list directly: the right-hand side of step ``k`` (1-based) of the derivation with this
id, with ``substitutions`` applied simultaneously (an undefined function, as a key, is
replaced by ``replace``: by a sympy function or a ``Lambda``, everywhere). It is a `From`, so the engine accepts it
where it accepts ``From`` (a chain start that is not free).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from ._engine import From, sound_rewrite

__all__ = ["Earlier", "FromStep", "as_written"]


@dataclasses.dataclass(frozen=True)
class Earlier(From):
    def __hash__(self) -> int:
        return hash((self.derivation, self.step))

    def resolve(self) -> Any:
        from ._registry import _DERIVATIONS

        if self.step is None:
            raise ValueError("Earlier(...) names a step of its own derivation: give step=k")
        source = _DERIVATIONS.get(self.derivation)
        if source is None:
            raise ValueError(f"Earlier({self.derivation!r}): the derivation is not registered")
        expr = source.steps[self.step - 1].rhs
        symbols = {k: v for k, v in self.substitutions.items() if not isinstance(k, type)}
        functions = {k: v for k, v in self.substitutions.items() if isinstance(k, type)}
        if symbols:
            expr = expr.subs(symbols, simultaneous=True)
        for function, value in functions.items():
            # an undefined function replaced everywhere, inside Subs and Derivative too
            # (``subs`` leaves it under a Subs whose variable it is applied to)
            expr = expr.replace(function, value)
        return expr


@sound_rewrite("no rewrite: the difference as written (a sum of squares, whose sign sympy reads off)")
def as_written(expr):
    """The identity: lets sympy decide the sign of an inequality's difference before any
    expansion hides that it is a sum of squares."""
    return expr


#: The same chain start under the name the diffusion topics use.
FromStep = Earlier
