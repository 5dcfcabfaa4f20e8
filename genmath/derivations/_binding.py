"""Bindings: the torch code held to a derivation's expression at random points of the
domain the code accepts (split from `_engine`, which re-exports `Binding`)."""

from __future__ import annotations

import cProfile
import dataclasses
import hashlib
import inspect
import math
import random
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import sympy as sp

from ._domains import Integers, _as_domain
from ._lambdify import mpmath_function
from ._results import BindingResult
from ._rewrites import _put_values, _short

__all__ = ["Binding", "resolve_name"]


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
            `Uniform`, `LogUniform` or `Integers` — the whole domain the code accepts. A
            symbol the expression lacks is drawn too and handed to ``evaluate``: a parameter
            of the code that the result must not depend on.
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
        from ._engine import _resolve

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


# name -> (function, its code objects): every binding asks which of the ~400 ``@implements``
# functions it called, and walking each class's methods again for each binding cost ~1 s
_IMPLEMENTATION_CODES: dict[str, tuple[Any, frozenset]] = {}


def _implementation_codes(name: str, fn: Any) -> frozenset:
    cached = _IMPLEMENTATION_CODES.get(name)
    if cached is None or cached[0] is not fn:  # a re-registered name is walked again
        cached = (fn, frozenset(_code_objects(fn)))
        _IMPLEMENTATION_CODES[name] = cached
    return cached[1]


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

    from ._engine import Derivation, _appears_in
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
        # `subs(simultaneous=True)`, by xreplace where that is the same (subs took ~4 s here)
        expressions = tuple(_put_values(sp.sympify(e), dict(binding.where)) for e in expressions)
    free = sorted(
        set().union(*(sp.sympify(e).free_symbols for e in expressions)), key=lambda s: s.name
    )
    missing = [s.name for s in free if s not in binding.domain]
    if missing:
        return False, math.inf, f"no domain for the symbols {missing}", []

    # numeric steps must cover the code's domain: the binding's domain is merged into the
    # derivation's effective domain, so only a derivation domain narrower than it is a defect
    # domain symbols the expression lacks are the code's own parameters that the result must
    # not depend on (a total mass that is normalised away): drawn after the others, so the
    # expression's points are the same with or without them
    nuisance = sorted((s for s in binding.domain if s not in set(free)), key=lambda s: s.name)
    tensors, plain = _points(binding, free + nuisance)
    targets = {}
    for name in binding.code:
        try:
            targets[name] = _code_objects(resolve_name(name))
        except LookupError as exc:
            return False, math.inf, str(exc), []

    # cProfile's C hook records which functions ran: a Python-level sys.setprofile callback
    # made bindings whose evaluate builds sympy objects 50x slower. Calls of C functions (every
    # torch op) are not recorded, only Python ones are looked for: that halves the hook's cost
    # (~2.3 s -> ~1.3 s over the bindings); a Python function called from C is still recorded
    previous = sys.getprofile()
    recorder = cProfile.Profile(builtins=False)
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
        if _implementation_codes(name, fn) & called_codes
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
            fn = mpmath_function(free, expr)
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
