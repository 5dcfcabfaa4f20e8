"""Marks the code that implements a derivation, so that `genmath verify` can hold it to it.

Two decorators, both free at run time (they return the function itself):

* ``@implements("D-ddpm-posterior")`` on a function or method that evaluates a formula: it
  names the derivation(s) the formula comes from. `genmath verify` then requires that some
  binding of each named derivation (`genmath.derivations.Binding`) actually *calls* the
  function and compares what it returns with the derivation's sympy expression.
* ``@plumbing("why")`` on a public function whose arithmetic is bookkeeping (shapes, index
  ranges, averaging a reduction) rather than a formula with a derivation.

`genmath verify` scans the public functions of `genmath.core`, `genmath.families`,
`genmath.analytic` and `genmath.nn`: one that computes (arithmetic or a math function in
its body) and carries neither decorator is reported as an **unbound formula**, and the
verification fails. So a formula cannot be added without either a derivation bound to it or
a stated reason why it is not one.

This module imports nothing heavy: core imports it at start-up.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

__all__ = ["implements", "plumbing", "implementations", "plumbing_reasons", "canonical_name"]

F = TypeVar("F", bound=Callable)

# canonical dotted name -> (function, derivation ids)
_IMPLEMENTATIONS: dict[str, tuple[Callable, tuple[str, ...]]] = {}
# canonical dotted name -> reason
_PLUMBING: dict[str, str] = {}


def canonical_name(fn: Callable) -> str:
    """``module.qualname`` of the function as defined (not as re-exported)."""
    return f"{fn.__module__}.{fn.__qualname__}"


def _note(fn: Callable, text: str) -> None:
    doc = fn.__doc__ or ""
    if text not in doc:
        # Docstrings are Markdown (mkdocstrings): a trailing paragraph names the derivation,
        # so a reader finds it from the API page in one click (the site links every id).
        fn.__doc__ = (doc.rstrip() + "\n\n" if doc.strip() else "") + text


def implements(*derivation_ids: str) -> Callable[[F], F]:
    """Declare that the decorated function evaluates the result of these derivations.

    ``genmath verify`` fails unless a binding of each derivation calls the function and
    matches the derivation's expression at random points of the domain the code accepts.
    """
    if not derivation_ids or not all(
        isinstance(i, str) and i.startswith("D-") for i in derivation_ids
    ):
        raise ValueError(
            f"implements() takes one or more derivation ids 'D-...', got {derivation_ids!r}"
        )

    def decorate(fn: F) -> F:
        name = canonical_name(fn)
        previous = _IMPLEMENTATIONS.get(name)
        ids = tuple(dict.fromkeys((*(previous[1] if previous else ()), *derivation_ids)))
        _IMPLEMENTATIONS[name] = (fn, ids)
        fn.__genmath_derivations__ = ids  # type: ignore[attr-defined]
        label = "Derivation" if len(ids) == 1 else "Derivations"
        _note(fn, f"*{label}:* " + ", ".join(ids) + " (bound: `genmath verify` checks this code).")
        return fn

    return decorate


def plumbing(reason: str) -> Callable[[F], F]:
    """Declare that the decorated public function's arithmetic is bookkeeping, not a formula."""
    if not isinstance(reason, str) or not reason.strip():
        raise ValueError("plumbing() needs the reason the function holds no formula")

    def decorate(fn: F) -> F:
        _PLUMBING[canonical_name(fn)] = reason
        fn.__genmath_plumbing__ = reason  # type: ignore[attr-defined]
        return fn

    return decorate


def _import_all() -> None:
    """Import every module that may carry the decorators, so the tables are complete."""
    import importlib
    import pkgutil

    for package_name in ("genmath.core", "genmath.families", "genmath.analytic"):
        package = importlib.import_module(package_name)
        for info in pkgutil.walk_packages(package.__path__, prefix=package_name + "."):
            importlib.import_module(info.name)
    importlib.import_module("genmath.nn")


def implementations() -> dict[str, tuple[Callable, tuple[str, ...]]]:
    """Every ``@implements`` function: canonical name -> (function, derivation ids)."""
    _import_all()
    return dict(_IMPLEMENTATIONS)


def plumbing_reasons() -> dict[str, str]:
    """Every ``@plumbing`` function: canonical name -> the reason it holds no formula."""
    _import_all()
    return dict(_PLUMBING)
