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

import cProfile
import dataclasses
import functools
import hashlib
import inspect
import math
import random
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import sympy as sp
from sympy.core.function import AppliedUndef

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
    "StepResult",
    "BindingResult",
    "Result",
]

SYMBOLIC = "symbolic"
NUMERIC = "numeric"
CITED = "cited"
_TAGS = (SYMBOLIC, NUMERIC, CITED)
_RELATIONS = ("=", "<=", ">=")

# Statuses of a step: a cited step is never "verified".
VERIFIED = "verified"
FAILED = "failed"

# Points at which a custom rewrite (`Step.method`) is checked to keep the value of what it
# rewrites: a rewrite that substitutes a value or applies an unjustified `force=True` moves
# the value at almost every point, so a handful suffices.
_SOUNDNESS_POINTS = 3
_SOUNDNESS_TOLERANCE = 1e-8


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


# --------------------------------------------------------------------------- rewrites

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


# --------------------------------------------------------------------------- domains


@dataclasses.dataclass(frozen=True)
class Uniform:
    """Uniform samples on ``[low, high]``; ``ends=True`` also puts both ends among them."""

    low: float
    high: float
    ends: bool = False

    def __post_init__(self) -> None:
        if not self.low < self.high:
            raise ValueError(f"Uniform needs low < high, got ({self.low}, {self.high})")

    def draw(self, rng: random.Random, n: int) -> list[float]:
        values = [rng.uniform(self.low, self.high) for _ in range(n)]
        if self.ends and n >= 2:
            values[0], values[1] = float(self.low), float(self.high)
        return values

    @property
    def bounds(self) -> tuple[float, float]:
        return (float(self.low), float(self.high))

    def __str__(self) -> str:
        return f"[{self.low:g}, {self.high:g}]" + (" (ends included)" if self.ends else "")


@dataclasses.dataclass(frozen=True)
class LogUniform:
    """Log-uniform samples on ``[low, high]`` (scales spanning orders of magnitude)."""

    low: float
    high: float
    ends: bool = False

    def __post_init__(self) -> None:
        if not 0 < self.low < self.high:
            raise ValueError(f"LogUniform needs 0 < low < high, got ({self.low}, {self.high})")

    def draw(self, rng: random.Random, n: int) -> list[float]:
        lo, hi = math.log(self.low), math.log(self.high)
        values = [math.exp(rng.uniform(lo, hi)) for _ in range(n)]
        if self.ends and n >= 2:
            values[0], values[1] = float(self.low), float(self.high)
        return values

    @property
    def bounds(self) -> tuple[float, float]:
        return (float(self.low), float(self.high))

    def __str__(self) -> str:
        return f"[{self.low:g}, {self.high:g}], log-uniform"


@dataclasses.dataclass(frozen=True)
class Integers:
    """Integers drawn uniformly from ``low..high`` (both included)."""

    low: int
    high: int

    def __post_init__(self) -> None:
        if not self.low <= self.high:
            raise ValueError(f"Integers needs low <= high, got ({self.low}, {self.high})")

    def draw(self, rng: random.Random, n: int) -> list[int]:
        return [rng.randint(self.low, self.high) for _ in range(n)]

    @property
    def bounds(self) -> tuple[float, float]:
        return (float(self.low), float(self.high))

    def __str__(self) -> str:
        return f"integers {self.low}..{self.high}"


def _as_domain(spec: Any) -> Uniform | LogUniform | Integers:
    if isinstance(spec, Uniform | LogUniform | Integers):
        return spec
    if isinstance(spec, tuple) and len(spec) == 2:
        return Uniform(float(spec[0]), float(spec[1]))
    raise ValueError(
        f"a domain is (low, high), Uniform, LogUniform or Integers; got {spec!r}"
    )


def _default_domain(symbol: sp.Symbol) -> Uniform | Integers:
    if symbol.is_integer:
        low = 1 if symbol.is_positive else (0 if symbol.is_nonnegative else -4)
        return Integers(low, 6)
    if symbol.is_positive:
        return Uniform(0.2, 3.0)
    if symbol.is_nonnegative:
        return Uniform(0.0, 3.0)
    if symbol.is_negative:
        return Uniform(-3.0, -0.2)
    return Uniform(-3.0, 3.0)


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
        out = [_resolve(self.start)]
        for lhs, step in self.chain():
            out += [lhs, step.rhs]
        return out

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
    key = sp.srepr(expr) if isinstance(expr, sp.Basic) else repr(expr)
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


# --------------------------------------------------------------------------- bindings


@dataclasses.dataclass(frozen=True)
class Binding:
    """Holds torch code to a derivation: at random points of the domain the code accepts,
    the code equals an expression the derivation established.

    Arguments:
        derivation: the id of the derivation, ``D-...``.
        code: dotted names of the functions it exercises (public or as defined); each must
            actually be called by ``evaluate``, which the engine records.
        expression: a sympy expression of the derivation (a side of one of its steps, or a
            part of one), or a tuple of them; the code is compared with it, lambdified and
            evaluated by mpmath at 30 digits.
        evaluate: ``evaluate(points) -> tensor`` (or a tuple, one per expression): runs the
            code at the points, given as ``points[symbol]`` (also ``points["name"]``), each a
            float64 (or int64, for `Integers`) tensor of shape ``(samples,)``; the result has
            shape ``(samples,)`` or broadcasts to it.
        domain: where each free symbol of ``expression`` is drawn: ``(low, high)``,
            `Uniform`, `LogUniform` or `Integers` — the whole domain the code accepts.
        where: optional ``{symbol: expression}`` put into ``expression`` before the
            comparison, to evaluate the derivation's result at the case the code computes
            (a path's scales at two times from the schedule's own definition, say); the
            domain is then over the symbols of the substituted expressions.
        samples: number of random points.
        tolerance: passes when ``|code - expression| <= tolerance (1 + |expression|)``.
        generated: the code is generated from this expression (documented on the page; the
            comparison runs all the same).
        description: one line for the page: what is compared.
    """

    derivation: str
    code: Sequence[str]
    expression: Any
    evaluate: Callable[[Mapping[Any, Any]], Any]
    domain: Mapping[sp.Symbol, Any] = dataclasses.field(default_factory=dict)
    where: Mapping[sp.Symbol, Any] = dataclasses.field(default_factory=dict)
    samples: int = 32
    tolerance: float = 1e-9
    generated: bool = False
    description: str = ""

    def __post_init__(self) -> None:
        if not self.derivation.startswith("D-"):
            raise ValueError(f"a binding names a derivation 'D-...', got {self.derivation!r}")
        code = (self.code,) if isinstance(self.code, str) else tuple(self.code)
        if not code:
            raise ValueError(f"a binding of {self.derivation} must name the code it exercises")
        object.__setattr__(self, "code", code)
        if not self.samples >= 2:
            raise ValueError(f"a binding needs at least 2 samples, got {self.samples}")
        if not self.tolerance > 0:
            raise ValueError(f"binding tolerance must be positive, got {self.tolerance}")
        object.__setattr__(
            self, "domain", {s: _as_domain(v) for s, v in dict(self.domain).items()}
        )

    def __hash__(self) -> int:
        return hash((self.derivation, self.code, self.description))

    def expressions(self) -> tuple[Any, ...]:
        expr = _resolve(self.expression)
        if isinstance(expr, tuple | list):
            return tuple(_resolve(e) for e in expr)
        return (expr,)

    def verify(self) -> BindingResult:
        """Run the code at the points and compare; never raises (the result says why)."""
        t0 = time.perf_counter()
        try:
            ok, error, residual, called = _run_binding(self)
        except Exception as exc:  # a crashing binding is a failing binding
            ok, error, residual, called = False, math.inf, f"{type(exc).__name__}: {exc}", ()
        return BindingResult(
            derivation=self.derivation,
            code=tuple(self.code),
            called=tuple(called),
            ok=ok,
            max_error=error,
            residual=residual,
            samples=self.samples,
            domain={str(s): str(v) for s, v in self.domain.items()},
            where={str(s): str(v) for s, v in dict(self.where).items()},
            generated=self.generated,
            description=self.description,
            seconds=time.perf_counter() - t0,
        )


def _binding_seed(binding: Binding) -> int:
    key = f"{binding.derivation}:{','.join(binding.code)}:{binding.description}"
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big")


def _code_objects(obj: Any) -> set:
    """The code objects that running ``obj`` (a function, method, property or class) means."""
    out = set()
    if isinstance(obj, property):
        for f in (obj.fget, obj.fset):
            if f is not None:
                out |= _code_objects(f)
        return out
    if isinstance(obj, staticmethod | classmethod):
        return _code_objects(obj.__func__)
    if inspect.ismethod(obj):
        return _code_objects(obj.__func__)
    if inspect.isclass(obj):
        for value in vars(obj).values():
            if inspect.isfunction(value) or isinstance(value, property | staticmethod | classmethod):
                out |= _code_objects(value)
        return out
    fn = inspect.unwrap(obj) if callable(obj) else obj
    code = getattr(fn, "__code__", None)
    if code is not None:
        out.add(code)
    return out


def resolve_name(dotted: str) -> Any:
    """The object a dotted name refers to (``genmath.families.diffusion.DDPM.elbo``)."""
    import importlib

    module_name, _, attr = dotted.rpartition(".")
    obj = None
    while module_name:
        try:
            obj = importlib.import_module(module_name)
            break
        except ImportError:
            module_name, _, head = module_name.rpartition(".")
            attr = f"{head}.{attr}"
    if obj is None:
        raise LookupError(f"cannot import any module of {dotted!r}")
    for part in attr.split("."):
        owner = obj
        obj = inspect.getattr_static(owner, part, None) if inspect.isclass(owner) else getattr(
            owner, part, None
        )
        if obj is None:
            raise LookupError(f"{dotted!r}: no attribute {part!r}")
    return obj


def _points(binding: Binding, symbols: list[sp.Symbol]) -> tuple[dict, dict]:
    """``(tensors, plain)``: the sampled points as tensors for the code and as Python numbers
    for mpmath, keyed by symbol (and by symbol name for the tensors)."""
    import torch

    rng = random.Random(_binding_seed(binding))
    plain = {}
    tensors: dict[Any, Any] = {}
    for symbol in symbols:
        spec = binding.domain[symbol]
        values = spec.draw(rng, binding.samples)
        plain[symbol] = values
        dtype = torch.int64 if isinstance(spec, Integers) else torch.float64
        tensor = torch.tensor(values, dtype=dtype)
        tensors[symbol] = tensor
        tensors[symbol.name] = tensor
    return tensors, plain


def _run_binding(binding: Binding) -> tuple[bool, float, str | None, list[str]]:
    import mpmath
    import numpy as np
    import torch

    from ._registry import get

    derivation = get(binding.derivation)
    if not isinstance(derivation, Derivation):
        return False, math.inf, f"{binding.derivation} is not a registered derivation", []
    expressions = binding.expressions()
    for expr in expressions:
        if not _appears_in(expr, derivation):
            return (
                False,
                math.inf,
                "the bound expression is not one the derivation establishes (a side of a "
                f"step or part of one): {_short(expr)}",
                [],
            )
    if binding.where:
        expressions = tuple(
            sp.sympify(e).subs(dict(binding.where), simultaneous=True) for e in expressions
        )
    free = sorted(
        set().union(*(sp.sympify(e).free_symbols for e in expressions)), key=lambda s: s.name
    )
    missing = [s.name for s in free if s not in binding.domain]
    if missing:
        return False, math.inf, f"no domain for the symbols {missing}", []

    # numeric steps must cover the code's domain: the binding's domain is merged into the
    # derivation's effective domain, so only a derivation domain narrower than it is a defect
    tensors, plain = _points(binding, free)
    targets = {}
    for name in binding.code:
        try:
            targets[name] = _code_objects(resolve_name(name))
        except LookupError as exc:
            return False, math.inf, str(exc), []

    # cProfile's C hook records which functions ran: a Python-level sys.setprofile callback
    # made bindings whose evaluate builds sympy objects 50x slower
    previous = sys.getprofile()
    recorder = cProfile.Profile()
    recorder.enable()
    try:
        actual = binding.evaluate(tensors)
    finally:
        recorder.disable()
        sys.setprofile(previous)
    called_codes = {entry.code for entry in recorder.getstats() if not isinstance(entry.code, str)}

    from genmath._implements import implementations

    called = sorted(
        name
        for name, (fn, _) in implementations().items()
        if _code_objects(fn) & called_codes
    )
    not_called = [name for name, codes in targets.items() if not codes & called_codes]
    if not_called:
        return False, math.inf, f"the binding never calls {not_called}", called

    actual = actual if isinstance(actual, tuple | list) else (actual,)
    if len(actual) != len(expressions):
        return (
            False,
            math.inf,
            f"evaluate returned {len(actual)} values for {len(expressions)} expressions",
            called,
        )
    worst = 0.0
    with mpmath.workdps(30):
        for k, (expr, got) in enumerate(zip(expressions, actual, strict=True)):
            fn = sp.lambdify(free, expr, "mpmath")
            got = torch.as_tensor(got).detach().to(torch.float64)
            got = np.broadcast_to(got.cpu().numpy(), (binding.samples,))
            for j in range(binding.samples):
                args = [
                    mpmath.mpf(plain[s][j]) if not s.is_integer else int(plain[s][j])
                    for s in free
                ]
                expected = complex(fn(*args))
                if abs(expected.imag) > 1e-12 * (1 + abs(expected.real)):
                    return False, math.inf, f"expression {k} is complex at point {j}", called
                e, a = expected.real, float(got[j])
                if math.isinf(e) and a == e:
                    continue
                gap = abs(a - e) / (1.0 + abs(e))
                if not gap <= binding.tolerance:  # NaN fails here
                    where = ", ".join(f"{s.name}={plain[s][j]:.6g}" for s in free)
                    return (
                        False,
                        gap if math.isfinite(gap) else math.inf,
                        f"expression {k}: code {a:.12g} != derivation {e:.12g} at {where}",
                        called,
                    )
                worst = max(worst, gap)
    return True, worst, None, called


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


# --------------------------------------------------------------------------- results


@dataclasses.dataclass(frozen=True)
class StepResult:
    index: int
    tag: str
    ok: bool
    method: str
    residual: str | None
    seconds: float
    status: str = VERIFIED  # "verified", "cited" or "failed"


@dataclasses.dataclass(frozen=True)
class BindingResult:
    derivation: str
    code: tuple[str, ...]
    called: tuple[str, ...]
    ok: bool
    max_error: float
    residual: str | None
    samples: int
    domain: dict[str, str]
    where: dict[str, str]
    generated: bool
    description: str
    seconds: float

    def as_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["max_error"] = None if not math.isfinite(self.max_error) else self.max_error
        out["seconds"] = round(self.seconds, 4)
        return out


@dataclasses.dataclass(frozen=True)
class Result:
    id: str
    title: str
    kind: str
    steps: list[StepResult]
    seconds: float
    bindings: list[BindingResult] = dataclasses.field(default_factory=list)

    @property
    def ok(self) -> bool:
        """No step and no binding failed (cited steps do not fail, nor do they verify)."""
        return all(s.ok for s in self.steps) and all(b.ok for b in self.bindings)

    @property
    def bound(self) -> bool:
        return self.kind == "check" or bool(self.bindings)

    @property
    def status(self) -> str:
        """``"verified"``, ``"verified, cites"`` (some step is cited), ``"unbound"`` or
        ``"failed"``."""
        if not self.ok:
            return "failed"
        if not self.bound:
            return "unbound"
        return "verified, cites" if self.count(CITED) else "verified"

    def count(self, tag: str) -> int:
        return sum(1 for s in self.steps if s.tag == tag)

    def failures(self) -> list[StepResult]:
        return [s for s in self.steps if not s.ok]

    def binding_failures(self) -> list[BindingResult]:
        return [b for b in self.bindings if not b.ok]

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "kind": self.kind,
            "ok": self.ok,
            "status": self.status,
            "seconds": round(self.seconds, 4),
            "steps": [dataclasses.asdict(s) for s in self.steps],
            "bindings": [b.as_dict() for b in self.bindings],
            "counts": {tag: self.count(tag) for tag in (*_TAGS, "exact-numeric")},
        }


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


def _seed(derivation_id: str, index: int) -> int:
    return int.from_bytes(hashlib.sha256(f"{derivation_id}:{index}".encode()).digest()[:8], "big")


def _sample_value(symbol: sp.Symbol, rng: random.Random, domain: Mapping) -> sp.Expr:
    spec = domain.get(symbol) or _default_domain(symbol)
    value = spec.draw(rng, 1)[0]
    if isinstance(spec, Integers):
        return sp.Integer(value)
    return sp.Float(value, 30)


def _random_function(rng: random.Random, positive: bool, arity: int) -> sp.Lambda:
    """A smooth stand-in for an undefined function, integrable in every argument (a Gaussian
    bump, times a linear factor when it need not be positive)."""
    args = sp.symbols(f"_a0:{arity}", real=True)
    exponent = sum(
        -sp.Float(rng.uniform(0.3, 1.0), 30) * (a - sp.Float(rng.uniform(-0.5, 0.5), 30)) ** 2
        for a in args
    )
    bump = sp.exp(exponent + sp.Float(rng.uniform(-0.5, 0.5), 30))
    if not positive:
        bump = bump * (1 + sp.Float(rng.uniform(-0.5, 0.5), 30) * args[0])
    return sp.Lambda(args, bump)


def _instantiate(expr: Any, rng: random.Random, domain: Mapping) -> Any:
    """``expr`` with every free symbol given a value, every undefined function a concrete
    smooth function and every indexed symbol a function of its index: a numeric instance of
    an identity that must hold for all of them."""
    expr = sp.sympify(expr)
    functions = {}
    for applied in expr.atoms(AppliedUndef):
        f = applied.func
        if f not in functions:
            functions[f] = _random_function(rng, bool(f.is_positive), len(applied.args))
    if functions:
        expr = expr.replace(
            lambda e: isinstance(e, AppliedUndef) and e.func in functions,
            lambda e: functions[e.func](*e.args),
        )
    indexed = {}
    for item in expr.atoms(sp.Indexed):
        base = item.base
        if base not in indexed:
            k = sp.Symbol("_k", integer=True)
            a, b = (sp.Float(rng.uniform(-1, 1), 30) for _ in range(2))
            body = a + b * k
            positive = bool(base.label.is_positive) or bool(getattr(base, "is_positive", False))
            indexed[base] = sp.Lambda(k, sp.exp(body / 3) if positive else body)
    if indexed:
        expr = expr.replace(
            lambda e: isinstance(e, sp.Indexed) and e.base in indexed,
            lambda e: indexed[e.base](*e.indices),
        )
    bound = set()
    for node in sp.preorder_traversal(expr):
        if isinstance(node, sp.Sum | sp.Integral | sp.Product | sp.Lambda):
            limits = getattr(node, "limits", None) or [(v,) for v in node.variables]
            bound |= {lim[0] for lim in limits}
    values = {
        s: _sample_value(s, rng, domain)
        for s in expr.free_symbols - bound
        if isinstance(s, sp.Symbol)
    }
    return expr.subs(values)


def _unsound_rewrite(
    derivation: Derivation,
    index: int,
    method: Callable,
    expr: Any,
    domain: Mapping,
    rewritten: Any = None,
) -> str | None:
    """``None`` if ``method`` is a registered sound rewrite or keeps the value of ``expr`` at
    random points (symbols drawn from their domains, unknown functions replaced by concrete
    ones); else why the step is refused."""
    if method in _SOUND_REWRITES:
        return None
    if rewritten is None:
        rewritten = _apply(method, expr)
    exprs = list(expr) if isinstance(expr, sp.MatrixBase) else [expr]
    rewrites = list(rewritten) if isinstance(rewritten, sp.MatrixBase) else [rewritten]
    rng = random.Random(_seed(derivation.id, index) ^ 0x5EED)
    for _ in range(_SOUNDNESS_POINTS):
        state = rng.getstate()
        for before, after in zip(exprs, rewrites, strict=True):
            rng.setstate(state)
            a = _instantiate(before, rng, domain)
            rng.setstate(state)
            b = _instantiate(after, rng, domain)
            if any(isinstance(e, sp.Basic) and e.has(sp.Integral) for e in (a, b)):
                return (
                    "a custom method on an integral must be a registered sound rewrite "
                    "(genmath.derivations.sound_rewrite, saying why it keeps the value)"
                )
            try:
                va, vb = _evaluate(a, {}), _evaluate(b, {})
            except Exception as exc:
                return (
                    f"the custom method could not be checked to keep the value "
                    f"({type(exc).__name__}: {exc}); register it as a sound rewrite or state "
                    "the step without it"
                )
            if not (math.isfinite(abs(va)) and math.isfinite(abs(vb))):
                return "the custom method could not be checked: a non-finite value"
            if abs(va - vb) > _SOUNDNESS_TOLERANCE * (1 + abs(va)):
                return (
                    f"the custom method changes the value of what it rewrites "
                    f"({va:.6g} before, {vb:.6g} after, at a random point): it may only apply "
                    "sound rewrites (no substituted values; force=True only where the "
                    "assumptions justify it)"
                )
        rng.random()  # move on to a fresh point
    return None


def _falsify(
    derivation: Derivation, index: int, lhs: Any, step: Step, domain: Mapping
) -> str | None:
    """A counterexample to a cited step found cheaply (no integral, sum or unknown function
    left), or ``None``. Cited steps are not verified; this only stops plain falsehoods."""
    lhs_e, rhs_e = sp.sympify(lhs), sp.sympify(step.rhs)
    if isinstance(lhs_e, sp.MatrixBase) or isinstance(rhs_e, sp.MatrixBase):
        return None
    for e in (lhs_e, rhs_e):
        if e.has(sp.Integral, sp.Sum, sp.Product, sp.Subs) or e.atoms(AppliedUndef):
            return None
    lhs_e, rhs_e = sp.sympify(_doit(lhs_e)), sp.sympify(_doit(rhs_e))
    rng = random.Random(_seed(derivation.id, index))
    for _ in range(4):
        values = {
            s: _sample_value(s, rng, domain)
            for s in (lhs_e.free_symbols | rhs_e.free_symbols)
            if isinstance(s, sp.Symbol)
        }
        try:
            va, vb = _evaluate(lhs_e, values), _evaluate(rhs_e, values)
        except Exception:
            return None
        scale = 1e-9 * (1 + abs(va))
        if step.relation == "=":
            bad = abs(va - vb) > scale
        elif step.relation == "<=":
            bad = va.real - vb.real > scale
        else:
            bad = vb.real - va.real > scale
        if bad:
            return f"the cited claim fails at a point: lhs = {va:.6g}, rhs = {vb:.6g}"
    return None


def _numeric(
    derivation: Derivation, index: int, lhs: Any, step: Step, domain: Mapping
) -> tuple[bool, str, str | None]:
    lhs_m = sp.Matrix(lhs) if isinstance(lhs, sp.MatrixBase) else sp.Matrix([lhs])
    rhs_m = sp.Matrix(step.rhs) if isinstance(step.rhs, sp.MatrixBase) else sp.Matrix([step.rhs])
    if lhs_m.shape != rhs_m.shape:
        return False, "numeric", f"shapes differ: {lhs_m.shape} vs {rhs_m.shape}"
    free = sorted(lhs_m.free_symbols | rhs_m.free_symbols, key=lambda s: s.name)
    pairs = [
        (_numeric_function(a, free), _numeric_function(b, free))
        for a, b in zip(lhs_m, rhs_m, strict=True)
    ]
    rng = random.Random(_seed(derivation.id, index))
    worst = 0.0
    for _ in range(step.samples):
        values = {s: _sample_value(s, rng, domain) for s in free}
        for fa, fb in pairs:
            va, vb = fa(values), fb(values)
            scale = 1.0 + abs(va)
            if step.relation == "=":
                gap = abs(va - vb)
            else:
                # an inequality is between real numbers: a complex side is a failure
                if abs(va.imag) > step.tolerance * scale or abs(vb.imag) > step.tolerance * scale:
                    where = ", ".join(f"{k}={float(v):.4g}" for k, v in values.items())
                    return False, "numeric", f"an inequality with a complex side at {where}"
                gap = max(0.0, va.real - vb.real) if step.relation == "<=" else max(
                    0.0, vb.real - va.real
                )
            worst = max(worst, gap / scale)
            if not gap <= step.tolerance * scale:
                where = ", ".join(f"{k}={float(v):.4g}" for k, v in values.items())
                return (
                    False,
                    "numeric",
                    f"|lhs - rhs| = {gap:.3e} at {where} (lhs={va:.6g}, rhs={vb:.6g})",
                )
    sampled = "; ".join(
        f"{s} in {domain.get(s) or _default_domain(s)}" for s in free
    )
    return True, f"{step.samples} random points ({sampled}), max rel. gap {worst:.1e}", None


_NUMERIC_DPS = 20


def _numeric_function(expr: Any, free: list) -> Callable[[Mapping], complex]:
    """``values -> complex``: ``expr`` compiled once for mpmath (derivatives carried out
    exactly, integrals by mpmath quadrature, sums term by term), or, where sympy cannot
    compile it, substituted and evaluated point by point."""
    import mpmath

    expr = sp.sympify(expr)
    exact = expr.replace(
        lambda e: isinstance(e, sp.Derivative | sp.Subs), lambda e: e.doit()
    )
    try:
        if exact.atoms(AppliedUndef) or exact.has(sp.Product, sp.Piecewise):
            raise TypeError("not compiled")
        compiled = sp.lambdify(free, exact, "mpmath")
    except Exception:
        compiled = None

    def value(values: Mapping) -> complex:
        if compiled is not None:
            args = [
                int(values[s]) if getattr(values[s], "is_Integer", False) else
                mpmath.mpf(str(values[s]))
                for s in free
            ]
            try:
                with mpmath.workdps(_NUMERIC_DPS):
                    return complex(compiled(*args))
            except Exception:
                pass
        return _evaluate(expr, values)

    return value


def _evaluate(expr: Any, values: Mapping) -> complex:
    """A number for ``expr`` at ``values``: derivatives and sums are carried out exactly,
    integrals by mpmath quadrature (symbolic integration is slow and may not terminate)."""
    expr = sp.sympify(expr).subs(values) if values else sp.sympify(expr)
    expr = expr.doit(integrals=False) if isinstance(expr, sp.Basic) else expr
    return complex(sp.N(expr, 20))


def _short(expr: Any, limit: int = 300) -> str:
    text = str(expr)
    return text if len(text) <= limit else text[: limit - 3] + "..."
