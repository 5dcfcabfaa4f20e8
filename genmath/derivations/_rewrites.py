"""The rewrites a symbolic step may use: sympy's own strategies, tried cheapest first, and
the registry of custom rewrites declared sound (`sound_rewrite`). Split from `_engine`, which
re-exports the public names."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import sympy as sp

__all__ = ["sound_rewrite", "sound_rewrites"]


def _doit(expr: Any) -> Any:
    """Evaluate unevaluated derivatives/integrals/sums so strategies see plain algebra."""
    if isinstance(expr, sp.MatrixBase):
        return expr.applyfunc(lambda e: _doit_cached(e) if isinstance(e, sp.Basic) else e)
    if isinstance(expr, sp.Basic):
        return _doit_cached(expr)
    return sp.sympify(expr)


@functools.lru_cache(maxsize=4096)
def _doit_cached(expr: sp.Basic) -> sp.Basic:
    # a step's right-hand side is the next step's left-hand side: evaluate it once
    return expr.doit()


def _is_zero(expr: Any) -> bool:
    if isinstance(expr, sp.MatrixBase):
        return all(sp.sympify(e) == 0 for e in expr)
    return sp.sympify(expr) == 0


def _apply(strategy: Callable[[Any], Any], expr: Any) -> Any:
    if isinstance(expr, sp.MatrixBase):
        return expr.applyfunc(strategy)
    return strategy(expr)


# Cheap strategies first: most steps close with `expand` or `cancel`; `simplify` is slow and
# kept last. Each is a sound rewrite (sympy's own, applied under the symbols' assumptions).
_STRATEGIES: tuple[tuple[str, Callable[[Any], Any]], ...] = (
    ("expand", sp.expand),
    ("cancel", sp.cancel),
    ("together", lambda e: sp.cancel(sp.together(e))),
    ("expand_log", lambda e: sp.cancel(sp.expand(sp.expand_log(e)))),
    ("powsimp", lambda e: sp.cancel(sp.powsimp(sp.powdenest(sp.expand(e))))),
    ("simplify", sp.simplify),
)


_SOUND_REWRITES: dict[Callable, str] = {}


def sound_rewrite(reason: str) -> Callable[[Callable], Callable]:
    """Register a rewrite used as a step's ``method`` on expressions that cannot be checked
    numerically at a glance (integrals over unknown densities, multiple integrals): ``reason``
    says why it keeps the value (linearity of the integral, Gaussian moments, ...), and is
    shown on the verification page. Any other custom method is checked numerically."""
    if not reason.strip():
        raise ValueError("a sound rewrite must say why it is sound")

    def decorate(fn: Callable) -> Callable:
        _SOUND_REWRITES[fn] = reason
        return fn

    return decorate


def sound_rewrites() -> dict[str, str]:
    """Registered sound rewrites: name -> why they keep the value."""
    return {f"{fn.__module__}.{fn.__qualname__}": r for fn, r in _SOUND_REWRITES.items()}


def _short(expr: Any, limit: int = 300) -> str:
    text = str(expr)
    return text if len(text) <= limit else text[: limit - 3] + "..."
