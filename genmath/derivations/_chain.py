"""`FromStep`: an earlier step of the *same* derivation as a chain start.

The engine's `From(<own id>, subs, step=k)` resolves the step through the derivation's whole
chain, which is what is being built when the derivation starts from itself (a recursion).
`FromStep` is the same chain start — step ``k``'s right-hand side with substitutions, so not a
free start — resolved from the derivation's steps directly. It is a `From`, so the engine
treats it as one (shown, verified and rendered alike).
"""

from __future__ import annotations

import dataclasses

from ._engine import From

__all__ = ["FromStep"]


@dataclasses.dataclass(frozen=True)
class FromStep(From):
    def __post_init__(self) -> None:
        if self.step is None or self.step < 1:
            raise ValueError(f"FromStep needs a step number >= 1, got {self.step!r}")

    def __hash__(self) -> int:
        return hash((self.derivation, self.step))

    def resolve(self):
        from ._registry import get

        source = get(self.derivation)
        expr = source.steps[self.step - 1].rhs
        if self.substitutions:
            expr = expr.subs(dict(self.substitutions), simultaneous=True)
        return expr
