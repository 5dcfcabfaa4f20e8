"""The derivation engine: a derivation is a chain of steps, each step a claim sympy checks.

A [`Derivation`][genmath.derivations.Derivation] starts from an expression and moves through
[`Step`][genmath.derivations.Step]s. Each step states the next expression (its right-hand
side), the reason a reader needs, and how it is verified:

* ``"symbolic"`` — sympy reduces ``lhs - rhs`` to zero (or decides the sign of an
  inequality) under the symbols' assumptions;
* ``"numeric"`` — ``lhs`` and ``rhs`` agree on seeded random parameter values within a
  stated tolerance (for steps sympy cannot close: an integral, a special function);
* ``"cited"`` — a named theorem (Jensen, Fubini, ...) that is not checked here.

By default a step's left-hand side is the previous step's right-hand side, so a list of
steps reads as ``start = e1 = e2 = ... = result``; a step may instead give its own ``lhs``
to begin a new chain (a second part of the same derivation).

The pages of the documentation render the very expressions checked here with
``sympy.latex``, so what a reader sees is what was verified.
"""

from __future__ import annotations

import dataclasses
import hashlib
import random
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import sympy as sp

__all__ = [
    "SYMBOLIC",
    "NUMERIC",
    "CITED",
    "Step",
    "Derivation",
    "Check",
    "StepResult",
    "Result",
]

SYMBOLIC = "symbolic"
NUMERIC = "numeric"
CITED = "cited"
_TAGS = (SYMBOLIC, NUMERIC, CITED)
_RELATIONS = ("=", "<=", ">=")


def _doit(expr: Any) -> Any:
    """Evaluate unevaluated derivatives/integrals/sums so strategies see plain algebra."""
    if isinstance(expr, sp.MatrixBase):
        return expr.applyfunc(lambda e: e.doit() if isinstance(e, sp.Basic) else e)
    if isinstance(expr, sp.Basic):
        return expr.doit()
    return sp.sympify(expr)


def _is_zero(expr: Any) -> bool:
    if isinstance(expr, sp.MatrixBase):
        return all(sp.sympify(e) == 0 for e in expr)
    return sp.sympify(expr) == 0


def _apply(strategy: Callable[[Any], Any], expr: Any) -> Any:
    if isinstance(expr, sp.MatrixBase):
        return expr.applyfunc(strategy)
    return strategy(expr)


# Cheap strategies first: most steps close with `expand` or `cancel`; `simplify` is slow and
# kept last. Each strategy must map an expression to an equivalent one.
_STRATEGIES: tuple[tuple[str, Callable[[Any], Any]], ...] = (
    ("expand", sp.expand),
    ("cancel", sp.cancel),
    ("together", lambda e: sp.cancel(sp.together(e))),
    ("expand_log", lambda e: sp.cancel(sp.expand(sp.expand_log(e)))),
    ("powsimp", lambda e: sp.cancel(sp.powsimp(sp.powdenest(sp.expand(e))))),
    ("simplify", sp.simplify),
)


@dataclasses.dataclass(frozen=True)
class Step:
    """One step of a derivation: ``lhs relation rhs``, with the reason and how it is checked.

    Arguments:
        rhs: the expression this step arrives at (a sympy expression or matrix).
        reason: what changes and why, in Markdown (inline math allowed).
        tag: ``"symbolic"``, ``"numeric"`` or ``"cited"``.
        lhs: the expression the step starts from; ``None`` continues the chain from the
            previous step's ``rhs`` (or from the derivation's ``start``).
        relation: ``"="``, ``"<="`` or ``">="``.
        method: optional sympy callable tried before the default strategies (for example
            ``sympy.trigsimp``); it must return an expression equivalent to its input.
        tolerance: relative tolerance of a numeric check, ``|lhs - rhs| <= tol (1 + |lhs|)``.
        samples: number of random parameter points of a numeric check.
        theorem: for a cited step, the theorem relied on (shown to the reader).
    """

    rhs: Any
    reason: str
    tag: str = SYMBOLIC
    lhs: Any = None
    relation: str = "="
    method: Callable[[Any], Any] | None = None
    tolerance: float = 1e-9
    samples: int = 12
    theorem: str | None = None

    def __post_init__(self) -> None:
        if self.tag not in _TAGS:
            raise ValueError(f"Step tag must be one of {_TAGS}, got {self.tag!r}")
        if self.relation not in _RELATIONS:
            raise ValueError(f"Step relation must be one of {_RELATIONS}, got {self.relation!r}")
        if self.tag == CITED and not self.theorem:
            raise ValueError("a cited step must name the theorem it relies on (theorem=...)")
        if not self.reason.strip():
            raise ValueError("every step needs a reason a reader can follow")


@dataclasses.dataclass(frozen=True)
class Derivation:
    """A citable, machine-checked derivation.

    Arguments:
        id: stable identifier, ``D-...`` (cite it in a seminar; the docs page uses it).
        title: one line.
        statement: the result in words (Markdown); the verified formula is rendered below it.
        start: the expression the first step starts from.
        steps: the chain of [`Step`][genmath.derivations.Step]s.
        symbols: the sympy symbols with their assumptions (``positive=True``, ...), listed
            for the reader and used to sample numeric checks.
        references: keys of `genmath.references`.
        code: dotted names of the genmath objects that implement the result.
        tests: test files (or node ids) that check the implementation.
        domain: optional sampling interval ``(low, high)`` per symbol for numeric steps.
    """

    id: str
    title: str
    statement: str
    start: Any
    steps: Sequence[Step]
    symbols: Sequence[sp.Symbol] = ()
    references: Sequence[str] = ()
    code: Sequence[str] = ()
    tests: Sequence[str] = ()
    domain: Mapping[sp.Symbol, tuple[float, float]] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.id.startswith("D-"):
            raise ValueError(f"derivation ids start with 'D-', got {self.id!r}")
        if not self.steps:
            raise ValueError(f"derivation {self.id} has no steps")
        object.__setattr__(self, "steps", tuple(self.steps))

    def chain(self) -> list[tuple[Any, Step]]:
        """Each step paired with the left-hand side it starts from."""
        out = []
        current = self.start
        for step in self.steps:
            lhs = current if step.lhs is None else step.lhs
            out.append((lhs, step))
            current = step.rhs
        return out

    def verify(self) -> Result:
        """Check every step; never raises on a failed step (the result says which failed)."""
        t0 = time.perf_counter()
        results = [
            _verify_step(self, i, lhs, step) for i, (lhs, step) in enumerate(self.chain(), 1)
        ]
        return Result(self.id, self.title, "derivation", results, time.perf_counter() - t0)


@dataclasses.dataclass(frozen=True)
class Check:
    """An exact-numeric check: torch code against a closed form, to float64 round-off.

    ``function()`` returns the largest absolute error it measured; the check passes when
    the error is at most ``tolerance``. Register checks next to the derivation they back.
    """

    id: str
    title: str
    function: Callable[[], float]
    tolerance: float
    code: Sequence[str] = ()
    tests: Sequence[str] = ()
    derivation: str | None = None

    def __post_init__(self) -> None:
        if not self.id.startswith("C-"):
            raise ValueError(f"check ids start with 'C-', got {self.id!r}")
        if not self.tolerance > 0:
            raise ValueError(f"check {self.id}: tolerance must be positive, got {self.tolerance}")

    def verify(self) -> Result:
        t0 = time.perf_counter()
        try:
            error = float(self.function())
            ok = error <= self.tolerance  # a NaN error fails here
            residual = None if ok else f"error {error:.3e} > tolerance {self.tolerance:.1e}"
            detail = f"max error {error:.2e} (tolerance {self.tolerance:.0e})"
        except Exception as exc:  # a crashing check is a failing check, reported, not raised
            ok, residual, detail = False, f"{type(exc).__name__}: {exc}", "raised"
        step = StepResult(1, "exact-numeric", ok, detail, residual, time.perf_counter() - t0)
        return Result(self.id, self.title, "check", [step], time.perf_counter() - t0)


@dataclasses.dataclass(frozen=True)
class StepResult:
    index: int
    tag: str
    ok: bool
    method: str
    residual: str | None
    seconds: float


@dataclasses.dataclass(frozen=True)
class Result:
    id: str
    title: str
    kind: str
    steps: list[StepResult]
    seconds: float

    @property
    def ok(self) -> bool:
        return all(s.ok for s in self.steps)

    def count(self, tag: str) -> int:
        return sum(1 for s in self.steps if s.tag == tag)

    def failures(self) -> list[StepResult]:
        return [s for s in self.steps if not s.ok]

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "kind": self.kind,
            "ok": self.ok,
            "seconds": round(self.seconds, 4),
            "steps": [dataclasses.asdict(s) for s in self.steps],
            "counts": {tag: self.count(tag) for tag in (*_TAGS, "exact-numeric")},
        }


def _verify_step(derivation: Derivation, index: int, lhs: Any, step: Step) -> StepResult:
    t0 = time.perf_counter()
    if step.tag == CITED:
        return StepResult(index, CITED, True, f"cited: {step.theorem}", None, 0.0)
    try:
        if step.tag == SYMBOLIC:
            ok, method, residual = _symbolic(lhs, step)
        else:
            ok, method, residual = _numeric(derivation, index, lhs, step)
    except Exception as exc:  # sympy raising is a failed step, reported with its error
        ok, method, residual = False, "error", f"{type(exc).__name__}: {exc}"
    return StepResult(index, step.tag, ok, method, residual, time.perf_counter() - t0)


def _symbolic(lhs: Any, step: Step) -> tuple[bool, str, str | None]:
    difference = _doit(lhs) - _doit(step.rhs)
    strategies = list(_STRATEGIES)
    if step.method is not None:
        strategies.insert(0, (getattr(step.method, "__name__", "custom"), step.method))
    residual = difference
    for name, strategy in strategies:
        reduced = _apply(strategy, difference)
        if step.relation == "=":
            if _is_zero(reduced):
                return True, name, None
        else:
            sign = reduced.is_nonpositive if step.relation == "<=" else reduced.is_nonnegative
            if sign:
                return True, name, None
        residual = reduced
    return False, "unreduced", _short(residual)


def _seed(derivation_id: str, index: int) -> int:
    return int.from_bytes(hashlib.sha256(f"{derivation_id}:{index}".encode()).digest()[:8], "big")


def _sample_value(symbol: sp.Symbol, rng: random.Random, domain: Mapping) -> sp.Expr:
    if symbol in domain:
        low, high = domain[symbol]
        return sp.Float(rng.uniform(low, high), 30)
    if symbol.is_integer:
        low = 1 if symbol.is_positive else (0 if symbol.is_nonnegative else -4)
        return sp.Integer(rng.randint(low, 6))
    if symbol.is_positive:
        return sp.Float(rng.uniform(0.2, 3.0), 30)
    if symbol.is_nonnegative:
        return sp.Float(rng.uniform(0.0, 3.0), 30)
    if symbol.is_negative:
        return sp.Float(-rng.uniform(0.2, 3.0), 30)
    return sp.Float(rng.uniform(-3.0, 3.0), 30)


def _numeric(
    derivation: Derivation, index: int, lhs: Any, step: Step
) -> tuple[bool, str, str | None]:
    lhs_m = sp.Matrix(lhs) if isinstance(lhs, sp.MatrixBase) else sp.Matrix([lhs])
    rhs_m = sp.Matrix(step.rhs) if isinstance(step.rhs, sp.MatrixBase) else sp.Matrix([step.rhs])
    if lhs_m.shape != rhs_m.shape:
        return False, "numeric", f"shapes differ: {lhs_m.shape} vs {rhs_m.shape}"
    free = sorted(lhs_m.free_symbols | rhs_m.free_symbols, key=lambda s: s.name)
    rng = random.Random(_seed(derivation.id, index))
    worst = 0.0
    for _ in range(step.samples):
        values = {s: _sample_value(s, rng, derivation.domain) for s in free}
        for a, b in zip(lhs_m, rhs_m, strict=True):
            va = _evaluate(a, values)
            vb = _evaluate(b, values)
            gap = abs(va - vb)
            scale = 1.0 + abs(va)
            if step.relation == "<=":
                gap = max(0.0, va.real - vb.real)
            elif step.relation == ">=":
                gap = max(0.0, vb.real - va.real)
            worst = max(worst, gap / scale)
            if not gap <= step.tolerance * scale:
                where = ", ".join(f"{k}={float(v):.4g}" for k, v in values.items())
                return (
                    False,
                    "numeric",
                    f"|lhs - rhs| = {gap:.3e} at {where} (lhs={va:.6g}, rhs={vb:.6g})",
                )
    return True, f"{step.samples} random points, max rel. gap {worst:.1e}", None


def _evaluate(expr: Any, values: Mapping) -> complex:
    """A number for ``expr`` at ``values``: derivatives and sums are carried out exactly,
    integrals by mpmath quadrature (symbolic integration is slow and may not terminate)."""
    expr = sp.sympify(expr).subs(values)
    expr = expr.doit(integrals=False) if isinstance(expr, sp.Basic) else expr
    return complex(sp.N(expr, 20))


def _short(expr: Any, limit: int = 300) -> str:
    text = str(expr)
    return text if len(text) <= limit else text[: limit - 3] + "..."
