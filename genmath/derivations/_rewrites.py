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
    return expr.doit(heurisch=False) if _skips_heurisch(expr) else expr.doit()


def _skips_heurisch(expr: sp.Basic) -> bool:
    """Whether ``expr`` has integrals, all without an antiderivative, and no derivative."""
    return (
        expr.has(sp.Integral)
        and not expr.has(sp.Derivative, sp.Subs, sp.Sum, sp.Product)
        and all(_no_antiderivative(i) for i in expr.atoms(sp.Integral))
    )


def _no_antiderivative(integral: sp.Integral) -> bool:
    """Whether every term of the integrand holds an undefined function of a variable of
    integration (outside any integral nested in it, none of which depends on that variable).

    Then sympy's heuristic Risch search (`heurisch`, seconds on such an integrand) cannot find
    an antiderivative, and the integral is evaluated without it: an antiderivative ``F`` of a
    term with ``f(t)`` but no ``f'(t)`` would contain ``f``, and then ``F'`` would contain
    ``f'`` (chain rule), which the term does not. The caller allows no derivative anywhere in
    the expression. The other methods still run; the result is the integral left as it is,
    or a value either way."""
    variables = {limit[0] for limit in integral.limits}
    body = integral.function
    nested = body.atoms(sp.Integral)
    if any(variables & inner.free_symbols for inner in nested):
        return False
    body = body.xreplace({inner: sp.Dummy() for inner in nested})
    return all(
        any(
            variables & applied.free_symbols
            for applied in term.atoms(sp.core.function.AppliedUndef)
        )
        for term in sp.Add.make_args(body)
    )


# Nodes that bind a variable or differentiate by one: replacing a symbol inside them is not
# plain replacement (`subs` renames, or wraps the node in `Subs`), so there `subs` is used
_BINDS_VARIABLES = (sp.Derivative, sp.Integral, sp.Sum, sp.Product, sp.Subs, sp.Lambda)


def _put_values(expr: Any, values: dict) -> Any:
    """``expr.subs(values, simultaneous=True)``. Where every key is a symbol and nothing in
    ``expr`` binds a variable, that is replacing each key's atoms by its value at once, which
    `xreplace` does in one pass to the same expression, about three times faster."""
    plain = all(isinstance(k, sp.Symbol) for k in values) and not (
        isinstance(expr, sp.Basic) and expr.has(*_BINDS_VARIABLES)
    )
    if plain and isinstance(expr, sp.Basic):
        return expr.xreplace({k: sp.sympify(v) for k, v in values.items()})
    return expr.subs(values, simultaneous=True)


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
