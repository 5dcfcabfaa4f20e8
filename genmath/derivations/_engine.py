"""The derivation engine: a derivation is a chain of steps, each step a claim sympy checks,
and a set of bindings that hold the torch code to the derivation's expressions.

A [`Derivation`][genmath.derivations.Derivation] starts from an expression and moves through
[`Step`][genmath.derivations.Step]s. Each step states the next expression (its right-hand
side), the reason a reader needs, and how it is verified:

* ``"symbolic"`` — sympy reduces ``lhs - rhs`` to zero (or decides the sign of an
  inequality) under the symbols' assumptions;
* ``"numeric"`` — ``lhs`` and ``rhs`` agree on seeded random parameter values within a
  stated tolerance (for steps sympy cannot close: an integral, a special function), sampled
  on the domain the code accepts wherever a binding declares one;
* ``"cited"`` — a named theorem of a named reference (Jensen, Fubini, ...) that is not
  checked here. A cited step is reported as *cited*, never as *verified*.

By default a step's left-hand side is the previous step's right-hand side, so a list of
steps reads as ``start = e1 = e2 = ... = result``. A step may begin a new chain with its own
``lhs``, but never from a free expression: the new start is another derivation's result
([`From`][genmath.derivations.From]), an expression a binding of this derivation holds the
code to, or a side already established in this chain.

A [`Binding`][genmath.derivations.Binding] evaluates the implementing torch functions in
float64 at random points of the whole domain the code accepts and compares them with an
expression of the derivation (lambdified, evaluated by mpmath); it also records which
``@implements`` functions it actually called. A derivation without a binding is reported
as unbound, and `genmath verify` fails on it.

The pages of the documentation render the very expressions checked here, so what a reader
sees is what was verified.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import sympy as sp

# The engine is split by concern; every name other modules import from here still resolves
# here (``from ._engine import Binding, Derivation, Step, CITED, Uniform, LogUniform``).
from ._binding import Binding, resolve_name
from ._domains import Integers, LogUniform, Uniform, _as_domain
from ._numeric import _falsify, _numeric, _unsound_rewrite
from ._results import (
    _RELATIONS,
    _TAGS,
    CITED,
    FAILED,
    NUMERIC,
    SYMBOLIC,
    VERIFIED,
    BindingResult,
    Result,
    StepResult,
)
from ._rewrites import _STRATEGIES, _apply, _doit, _is_zero, _short, sound_rewrite, sound_rewrites

__all__ = [
    "SYMBOLIC",
    "NUMERIC",
    "CITED",
    "From",
    "Step",
    "Derivation",
    "Binding",
    "Uniform",
    "LogUniform",
    "Integers",
    "Check",
    "sound_rewrite",
    "sound_rewrites",
    "resolve_name",
    "StepResult",
    "BindingResult",
    "Result",
]




# --------------------------------------------------------------------------- chain starts


@dataclasses.dataclass(frozen=True)
class From:
    """The result of another derivation, with symbols substituted: a chain start that is not
    free, because that derivation established it.

    Arguments:
        derivation: the id of the derivation whose result is used.
        substitutions: ``{symbol: expression}`` applied (simultaneously) to its result.
        step: use the right-hand side of this step (1-based) instead of the final result.
    """

    derivation: str
    substitutions: Mapping[Any, Any] = dataclasses.field(default_factory=dict)
    step: int | None = None

    def __hash__(self) -> int:  # a Mapping field is not hashable; ids and steps are enough
        return hash((self.derivation, self.step))

    def resolve(self) -> Any:
        from ._registry import get

        source = get(self.derivation)
        if not isinstance(source, Derivation):
            raise ValueError(f"From({self.derivation!r}): not a derivation")
        if self.step is not None and not 1 <= self.step <= len(source.steps):
            raise ValueError(
                f"From({self.derivation!r}, step={self.step}): it has {len(source.steps)} steps"
            )
        # a step's rhs as written: no need to build that derivation's chain, which is what
        # is being built when a derivation starts from an earlier step of its own
        expr = source.result if self.step is None else source.steps[self.step - 1].rhs
        if self.substitutions:
            expr = expr.subs(dict(self.substitutions), simultaneous=True)
        return expr


def _resolve(expr: Any) -> Any:
    return expr.resolve() if isinstance(expr, From) else expr


# --------------------------------------------------------------------------- steps


@dataclasses.dataclass(frozen=True)
class Step:
    """One step of a derivation: ``lhs relation rhs``, with the reason and how it is checked.

    Arguments:
        rhs: the expression this step arrives at (a sympy expression or matrix).
        reason: what changes and why, in Markdown (inline math allowed).
        tag: ``"symbolic"``, ``"numeric"`` or ``"cited"``.
        lhs: the expression the step starts from; ``None`` continues the chain from the
            previous step's ``rhs`` (or from the derivation's ``start``). An explicit
            ``lhs`` must be a [`From`][genmath.derivations.From], an expression one of the
            derivation's bindings holds the code to, or a side already in the chain.
        relation: ``"="``, ``"<="`` or ``">="``.
        method: optional sympy rewrite tried before the default strategies (for example
            ``sympy.trigsimp``). It must keep the value of what it rewrites: the engine
            checks that at random points and refuses the step otherwise.
        tolerance: relative tolerance of a numeric check, ``|lhs - rhs| <= tol (1 + |lhs|)``.
        samples: number of random parameter points of a numeric check.
        theorem: for a cited step, the theorem relied on (shown to the reader).
        reference: for a cited step, the key in `genmath.references` it is cited from.
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
    reference: str | None = None

    def __post_init__(self) -> None:
        if self.tag not in _TAGS:
            raise ValueError(f"Step tag must be one of {_TAGS}, got {self.tag!r}")
        if self.relation not in _RELATIONS:
            raise ValueError(f"Step relation must be one of {_RELATIONS}, got {self.relation!r}")
        if self.tag == CITED and not self.theorem:
            raise ValueError("a cited step must name the theorem it relies on (theorem=...)")
        if self.tag == CITED and not self.reference:
            raise ValueError(
                "a cited step must name the reference it is cited from (reference=<key in "
                "genmath.references>)"
            )
        if not self.reason.strip():
            raise ValueError("every step needs a reason a reader can follow")


# --------------------------------------------------------------------------- derivations


@dataclasses.dataclass(frozen=True)
class Derivation:
    """A citable, machine-checked derivation.

    Arguments:
        id: stable identifier, ``D-...`` (cite it in a seminar; the docs page uses it).
        title: one line.
        statement: the result in words (Markdown); the verified formula is rendered below it.
        start: the expression the first step starts from (the definition the statement is
            about), or a [`From`][genmath.derivations.From] another derivation's result.
        steps: the chain of [`Step`][genmath.derivations.Step]s.
        symbols: the sympy symbols with their assumptions (``positive=True``, ...), listed
            for the reader and used to sample numeric checks.
        references: keys of `genmath.references`.
        code: dotted names of the genmath objects that implement the result.
        tests: test files (or node ids) that check the implementation.
        domain: optional sampling interval ``(low, high)`` (or `Uniform`, `LogUniform`,
            `Integers`) per symbol for numeric steps. Where a binding declares the domain the
            code accepts for a symbol, numeric steps sample that domain instead.
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
    domain: Mapping[sp.Symbol, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.id.startswith("D-"):
            raise ValueError(f"derivation ids start with 'D-', got {self.id!r}")
        if not self.steps:
            raise ValueError(f"derivation {self.id} has no steps")
        object.__setattr__(self, "steps", tuple(self.steps))

    def __hash__(self) -> int:
        return hash(self.id)

    def chain(self) -> list[tuple[Any, Step]]:
        """Each step paired with the left-hand side it starts from (`From` resolved)."""
        cached = self.__dict__.get("_chain")
        if cached is not None:
            return list(cached)
        out = []
        current = _resolve(self.start)
        for step in self.steps:
            lhs = current if step.lhs is None else _resolve(step.lhs)
            out.append((lhs, step))
            current = step.rhs
        # a frozen dataclass still has a __dict__: resolving `From`s once is enough, the
        # registry does not change under a derivation
        object.__setattr__(self, "_chain", tuple(out))
        return out

    @property
    def result(self) -> Any:
        """The final right-hand side: what the derivation establishes."""
        return self.steps[-1].rhs

    def sides(self) -> list[Any]:
        """Every expression the chain establishes or starts from, in order."""
        cached = self.__dict__.get("_sides")
        if cached is None:
            # like the chain, resolved once: each binding's expressions are searched in it
            out = [_resolve(self.start)]
            for lhs, step in self.chain():
                out += [lhs, step.rhs]
            cached = tuple(out)
            object.__setattr__(self, "_sides", cached)
        return list(cached)

    def bindings(self) -> list[Binding]:
        """The registered bindings of this derivation."""
        from ._registry import bindings_of

        return bindings_of(self.id)

    def effective_domain(self) -> dict[sp.Symbol, Any]:
        """Where numeric steps sample each symbol: a binding's domain (the code's) when one
        declares it, else ``domain``, else a default from the symbol's assumptions."""
        out = {s: _as_domain(v) for s, v in self.domain.items()}
        for binding in self.bindings():
            for symbol, spec in binding.domain.items():
                spec = _as_domain(spec)
                if symbol in out and not isinstance(spec, Integers):
                    # keep the wider of the two: numeric steps must cover the code's domain
                    lo, hi = out[symbol].bounds
                    if spec.bounds[0] <= lo and spec.bounds[1] >= hi:
                        out[symbol] = spec
                    elif not (lo <= spec.bounds[0] and hi >= spec.bounds[1]):
                        out[symbol] = Uniform(min(lo, spec.bounds[0]), max(hi, spec.bounds[1]))
                else:
                    out.setdefault(symbol, spec)
        return out

    def verify(self, *, bindings: bool = True) -> Result:
        """Check every step (and, with ``bindings``, every registered binding); never raises
        on a failure (the result says what failed)."""
        t0 = time.perf_counter()
        domain = self.effective_domain() if bindings else {
            s: _as_domain(v) for s, v in self.domain.items()
        }
        bound = self.bindings() if bindings else []
        try:
            chain = self.chain()
            bound_sides = [b.expressions() for b in bound]
            seen: list[Any] = [_resolve(self.start)]
        except Exception as exc:  # a From naming a missing derivation or step
            failed = StepResult(
                1, SYMBOLIC, False, "error", f"{type(exc).__name__}: {exc}", 0.0, FAILED
            )
            return Result(self.id, self.title, "derivation", [failed], time.perf_counter() - t0)
        results = []
        for i, (lhs, step) in enumerate(chain, 1):
            checked = _verify_step(self, i, lhs, step, domain)
            own = isinstance(step.lhs, From) and step.lhs.derivation == self.id
            if own and (step.lhs.step is None or step.lhs.step >= i):
                checked = dataclasses.replace(
                    checked,
                    ok=False,
                    status=FAILED,
                    method="circular chain start",
                    residual=(
                        f"step {i} starts from step {step.lhs.step or len(chain)} of its own "
                        "derivation, which is not established yet: only an earlier step may start "
                        "a chain"
                    ),
                )
            elif step.lhs is not None and not isinstance(step.lhs, From):
                free = not any(_same(lhs, s) for s in seen) and not any(
                    _same(lhs, e) for exprs in bound_sides for e in exprs
                )
                if free:
                    checked = dataclasses.replace(
                        checked,
                        ok=False,
                        status=FAILED,
                        method="free chain start",
                        residual=(
                            "the step starts a new chain from an expression nothing "
                            "establishes: use lhs=From(<derivation id>, ...) (another "
                            "derivation's result, or an earlier step of this one with "
                            "substitutions), or bind the code that computes it (a Binding of "
                            f"this expression). The step itself: {checked.method}"
                        ),
                    )
            results.append(checked)
            seen += [lhs, step.rhs]
        binding_results = [b.verify() for b in bound]
        return Result(
            self.id, self.title, "derivation", results, time.perf_counter() - t0,
            bindings=binding_results,
        )


def _same(a: Any, b: Any) -> bool:
    try:
        return bool(a == b)
    except Exception:
        return False


def _appears_in(expr: Any, derivation: Derivation) -> bool:
    """Whether ``expr`` is a side of the derivation's chain or a non-trivial part of one."""
    memo = derivation.__dict__.setdefault("_appears", {})
    # a sympy expression is its own key (structural hash and equality, as its srepr would
    # be, without printing it: srepr took ~1 s over the bindings)
    key = expr if isinstance(expr, sp.Basic) else repr(expr)
    if key not in memo:
        memo[key] = _search_sides(expr, derivation)
    return memo[key]


def _search_sides(expr: Any, derivation: Derivation) -> bool:
    sides = derivation.sides()
    if any(_same(expr, side) for side in sides):
        return True
    if not isinstance(expr, sp.Basic) or expr.is_Atom:
        return False
    sides = [side for side in sides if isinstance(side, sp.Basic)]
    if any(side.has(expr) for side in sides):
        return True
    # `subs` also finds a sum or product inside a larger one (a mean inside a squared
    # residual), which is how formulas sit in a chain; slower, so tried second
    marker = sp.Dummy()
    return any(side.subs(expr, marker) != side for side in sides)


# --------------------------------------------------------------------------- checks


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

    def __hash__(self) -> int:
        return hash(self.id)

    def verify(self) -> Result:
        t0 = time.perf_counter()
        try:
            error = float(self.function())
            ok = error <= self.tolerance  # a NaN error fails here
            residual = None if ok else f"error {error:.3e} > tolerance {self.tolerance:.1e}"
            detail = f"max error {error:.2e} (tolerance {self.tolerance:.0e})"
        except Exception as exc:  # a crashing check is a failing check, reported, not raised
            ok, residual, detail = False, f"{type(exc).__name__}: {exc}", "raised"
        step = StepResult(
            1, "exact-numeric", ok, detail, residual, time.perf_counter() - t0,
            VERIFIED if ok else FAILED,
        )
        return Result(self.id, self.title, "check", [step], time.perf_counter() - t0)


# --------------------------------------------------------------------------- steps


def _verify_step(
    derivation: Derivation, index: int, lhs: Any, step: Step, domain: Mapping
) -> StepResult:
    t0 = time.perf_counter()
    if step.tag == CITED:
        contradiction = _falsify(derivation, index, lhs, step, domain)
        if contradiction is not None:
            return StepResult(
                index, CITED, False, "contradicted", contradiction, time.perf_counter() - t0,
                FAILED,
            )
        return StepResult(
            index, CITED, True, f"cited: {step.theorem} [{step.reference}]", None,
            time.perf_counter() - t0, CITED,
        )
    try:
        if step.tag == SYMBOLIC:
            ok, method, residual = _symbolic(derivation, index, lhs, step, domain)
        else:
            ok, method, residual = _numeric(derivation, index, lhs, step, domain)
    except Exception as exc:  # sympy raising is a failed step, reported with its error
        ok, method, residual = False, "error", f"{type(exc).__name__}: {exc}"
    return StepResult(
        index, step.tag, ok, method, residual, time.perf_counter() - t0,
        VERIFIED if ok else FAILED,
    )


def _symbolic(
    derivation: Derivation, index: int, lhs: Any, step: Step, domain: Mapping
) -> tuple[bool, str, str | None]:
    difference = _doit(lhs) - _doit(step.rhs)
    strategies = list(_STRATEGIES)
    if step.method is not None:
        rewritten = _apply(step.method, difference)
        unsound = _unsound_rewrite(derivation, index, step.method, difference, domain, rewritten)
        if unsound is not None:
            return False, "unsound method", unsound
        # the rewrite was computed for the soundness check: use it rather than run it again
        strategies.insert(0, (getattr(step.method, "__name__", "custom"), None))
    residual = difference
    for name, strategy in strategies:
        reduced = rewritten if strategy is None else _apply(strategy, difference)
        if step.relation == "=":
            if _is_zero(reduced):
                return True, name, None
        else:
            sign = reduced.is_nonpositive if step.relation == "<=" else reduced.is_nonnegative
            if sign:
                return True, name, None
        residual = reduced
    return False, "unreduced", _short(residual)


