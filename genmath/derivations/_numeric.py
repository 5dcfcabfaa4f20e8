"""Numeric evaluation for the engine: seeded random points of a step's domain, numeric
steps, the soundness check of a custom rewrite and the cheap falsification of a cited step.
Split from `_engine`; every function takes the derivation only for its id (the seed)."""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import sympy as sp
from sympy.core.function import AppliedUndef

from ._domains import Integers, _default_domain
from ._lambdify import mpmath_function
from ._rewrites import _SOUND_REWRITES, _apply, _doit, _put_values

if TYPE_CHECKING:  # annotations only: the engine imports this module
    from ._engine import Derivation, Step

# Points at which a custom rewrite (`Step.method`) is checked to keep the value of what it
# rewrites: a rewrite that substitutes a value or applies an unjustified `force=True` moves
# the value at almost every point, so a handful suffices.
_SOUNDNESS_POINTS = 3
_SOUNDNESS_TOLERANCE = 1e-8


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
    # canonical order: a set's order follows the hash seed, and the draws would follow it
    for applied in sorted(expr.atoms(AppliedUndef), key=sp.default_sort_key):
        f = applied.func
        if f not in functions:
            functions[f] = _random_function(rng, bool(f.is_positive), len(applied.args))
    if functions:
        expr = expr.replace(
            lambda e: isinstance(e, AppliedUndef) and e.func in functions,
            lambda e: functions[e.func](*e.args),
        )
    indexed = {}
    for item in sorted(expr.atoms(sp.Indexed), key=sp.default_sort_key):
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
        for s in sorted(expr.free_symbols - bound, key=sp.default_sort_key)
        if isinstance(s, sp.Symbol)
    }
    # numbers for symbols: `subs` and a simultaneous one agree; plain replacement where
    # nothing binds a variable (~1.5 s of `subs` over the custom methods' soundness checks)
    return _put_values(expr, values)


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
        # an implemented function (softplus: sympy's evalf calls its `_imp_` on numbers, as
        # the compiled function does) is compiled; an unknown one is not
        unknown = [f for f in exact.atoms(AppliedUndef) if not hasattr(f, "_imp_")]
        if unknown or exact.has(sp.Product):
            raise TypeError("not compiled")
        compiled = mpmath_function(free, exact)
    except Exception:
        compiled = None
    # a closed form with branches (a Piecewise: the root of a quadratic, an entropic OT
    # potential) may cancel ~10 digits; at 30 digits the compiled value is as close as
    # sympy's adaptive evalf (1e-22 on D-entropic-ot-duality, which evalf took 2.2 s over)
    dps = _NUMERIC_DPS + 10 if exact.has(sp.Piecewise) else _NUMERIC_DPS

    def value(values: Mapping) -> complex:
        if compiled is not None:
            args = [
                int(values[s]) if getattr(values[s], "is_Integer", False) else
                mpmath.mpf(str(values[s]))
                for s in free
            ]
            try:
                with mpmath.workdps(dps):
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
