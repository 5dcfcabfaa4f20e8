r"""The symbolic machinery behind `genmath.core.schedules`: sympy expressions compiled to
torch (with a softplus that sympy knows), their derivatives, the one-sided limits that define
each derived function at t = 0 and t = 1, and the bisection that inverts a decreasing log-SNR.
See that module's docstring for the rules; nothing here is public."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import torch

from .._lazy import lazy_import

sp = lazy_import("sympy")  # imported when the first schedule is built, not with genmath


_BISECTION_STEPS = 64  # halves [0, 1] below float64 resolution
# Distances from an end at which a one-sided limit is read off (see `_one_sided_limit`).
# (exponents of ten: the sympy rationals are built on use, so that importing this module
# does not import sympy)
_LIMIT_STEPS = (20, 40, 80)


def _dispatch(torch_fn: Callable, math_fn: Callable) -> Callable:
    # lambdify leaves constant sub-expressions (sqrt(2), cos(pi/5)) as Python numbers,
    # which torch functions refuse; route those to math.
    def fn(x):
        return torch_fn(x) if isinstance(x, torch.Tensor) else math_fn(x)

    return fn


def _softplus_torch(x: torch.Tensor) -> torch.Tensor:
    # log(1 + e^x) to full precision for every x, never overflowing
    return torch.clamp_min(x, 0) + torch.log1p(torch.exp(-torch.abs(x)))


def _softplus_number(x):
    import mpmath

    return mpmath.log1p(mpmath.exp(x)) if x < 0 else x + mpmath.log1p(mpmath.exp(-x))


# softplus(x) = log(1 + e^x) as a sympy function that the compiler leaves alone: the c99
# rewrite of log(1 + exp(-lam)) factors it into -lam + log1p(exp(lam)), which overflows for
# large lam (VP's inverse log-SNR returned NaN at lam = 1e3). Numbers (mpmath, floats) get
# the mpmath form, tensors the stable torch form.
@functools.cache
def _softplus():
    from sympy.utilities.lambdify import implemented_function  # sympy is imported lazily

    return implemented_function(
        "softplus",
        lambda x: _softplus_torch(x) if isinstance(x, torch.Tensor) else _softplus_number(x),
    )

_TORCH_FUNCTIONS = {
    "exp": _dispatch(torch.exp, math.exp),
    "expm1": _dispatch(torch.expm1, math.expm1),
    "exp2": _dispatch(torch.exp2, lambda x: 2.0**x),
    "log": _dispatch(torch.log, math.log),
    "log1p": _dispatch(torch.log1p, math.log1p),
    "log2": _dispatch(torch.log2, math.log2),
    "log10": _dispatch(torch.log10, math.log10),
    "sqrt": _dispatch(torch.sqrt, math.sqrt),
    "sin": _dispatch(torch.sin, math.sin),
    "cos": _dispatch(torch.cos, math.cos),
    "tan": _dispatch(torch.tan, math.tan),
    "asin": _dispatch(torch.asin, math.asin),
    "acos": _dispatch(torch.acos, math.acos),
    "atan": _dispatch(torch.atan, math.atan),
    "sinh": _dispatch(torch.sinh, math.sinh),
    "cosh": _dispatch(torch.cosh, math.cosh),
    "tanh": _dispatch(torch.tanh, math.tanh),
    "Abs": _dispatch(torch.abs, abs),
    "abs": _dispatch(torch.abs, abs),
}


def _accuracy_rewrites() -> tuple:
    """Only the rewrites that matter for accuracy (C99's exp2/log2 ones cost twice as much
    again); from sympy, imported with the first compiled expression."""
    from sympy.codegen.rewriting import expm1_opt, log1p_opt

    return (expm1_opt, log1p_opt)


@functools.lru_cache(maxsize=256)
def _compile(expr, symbol: sp.Symbol) -> Callable[[torch.Tensor], torch.Tensor]:
    """A torch function of ``symbol`` computing ``expr``, in the dtype/device of its input.

    ``exp(x) - 1`` and ``log(1 + x)`` are rewritten to ``expm1``/``log1p`` first, so that a
    schedule stays accurate where $\\sigma_t$ is tiny (near t = 0)."""
    compiled = []

    def fn(x: torch.Tensor) -> torch.Tensor:
        # compiled on first use: sympy's rewrite costs ~0.1 s per expression, and most of a
        # schedule's eight expressions are never evaluated by a given program
        if not compiled:
            from sympy.codegen.rewriting import optimize

            optimized = optimize(sp.sympify(expr), _accuracy_rewrites())
            compiled.append(sp.lambdify(symbol, optimized, modules=[_TORCH_FUNCTIONS]))
        out = compiled[0](x)
        if isinstance(out, torch.Tensor) and out.shape == x.shape:
            return out
        # a constant expression (VE's alpha = 1) returns a number: give it x's shape, and
        # keep it in x's autograd graph so that d/dt of it is 0, not an error
        return out + 0 * x

    return fn


def _bisect_decreasing(
    fn: Callable[[torch.Tensor], torch.Tensor], target: torch.Tensor
) -> torch.Tensor:
    """The t in [0, 1] with ``fn(t) = target`` for a decreasing ``fn``, elementwise."""
    lo = torch.zeros_like(target)
    hi = torch.ones_like(target)
    for _ in range(_BISECTION_STEPS):
        mid = 0.5 * (lo + hi)
        above = fn(mid) > target  # still before the crossing: move right
        lo = torch.where(above, mid, lo)
        hi = torch.where(above, hi, mid)
    return 0.5 * (lo + hi)


@functools.lru_cache(maxsize=64)
def _derive(alpha, sigma, t: sp.Symbol) -> dict:
    """Derivatives, log-SNR and SDE coefficients of a schedule, symbolic and compiled.

    Cached on the expressions: sympy's differentiation and simplification take a second
    for VP, and schedules with the same parameters are rebuilt often."""
    d_alpha = sp.diff(alpha, t)
    log_snr = _log_snr_expression(alpha, sigma)
    # forward SDE with the path's marginals (D-forward-sde); cancel() turns CondOT's
    # g^2 = 2 t + 2 t^2 / (1 - t) into 2 t / (1 - t), exact at t = 0
    drift_coefficient = sp.cancel(sp.together(d_alpha / alpha))
    expressions = {
        "alpha": alpha,
        "sigma": sigma,
        "d_alpha": d_alpha,
        "d_sigma": sp.diff(sigma, t),
        "log_snr": log_snr,
        "d_log_snr": sp.diff(log_snr, t),
        "drift_coefficient": drift_coefficient,
        "diffusion_squared": sp.cancel(
            sp.together(sp.diff(sigma**2, t) - 2 * drift_coefficient * sigma**2)
        ),
    }
    derived = {f"{key}_expr": expr for key, expr in expressions.items()}
    derived.update(
        {f"_{key}": _defined_at_ends(expr, t, _compile(expr, t)) for key, expr in expressions.items()}
    )
    return derived


def _evaluate(expr, t: sp.Symbol, point) -> float | None:
    """``expr`` at ``t = point`` as a float (30 digits), or None where it is undefined or
    complex there (0/0, a pole of unknown sign)."""
    value = expr.subs(t, point).evalf(30)
    if value.has(sp.nan, sp.zoo) or not value.is_number:
        return None
    if value in (sp.oo, -sp.oo):
        return float(value)
    try:
        number = complex(value)
    except (TypeError, ValueError):
        return None
    if abs(number.imag) > 1e-25 * max(1.0, abs(number.real)) or math.isnan(number.real):
        return None
    return number.real


def _one_sided_limit(expr, t: sp.Symbol, end: int) -> float:
    """The limit of ``expr`` as t tends to ``end`` (0 or 1) from inside [0, 1], as a float.

    The value at the end itself when sympy can evaluate it there; otherwise read off at
    distances 1e-20, 1e-40, 1e-80 from the end (30 significant digits): values that agree
    are the (finite) limit, values that keep growing are a pole, and the sign of the closest
    one is its sign. NaN when neither holds (an oscillation; no schedule has one)."""
    exact = _evaluate(expr, t, sp.Integer(end))
    if exact is not None and math.isfinite(exact):
        return exact
    inward = 1 if end == 0 else -1
    near = [_evaluate(expr, t, end + inward * sp.Rational(1, 10**k)) for k in _LIMIT_STEPS]
    if any(v is None for v in near):
        return math.nan
    a, b, c = near
    if abs(c - b) <= 1e-9 * max(1.0, abs(c)):
        return c
    if abs(c) > abs(b) > abs(a) and (a > 0) == (b > 0) == (c > 0):
        return math.copysign(math.inf, c)
    return math.nan


def _agrees(got: float, limit: float, dtype: torch.dtype) -> bool:
    if math.isnan(limit):
        return True  # nothing better to offer
    if math.isinf(limit) or limit == 0:
        return got == limit
    tolerance = 8 * torch.finfo(dtype).eps * max(1.0, abs(limit))
    return math.isfinite(got) and abs(got - limit) <= tolerance


def _defined_at_ends(expr, t: sp.Symbol, fn: Callable) -> Callable:
    """``fn`` (the compiled ``expr``), returning the one-sided limit at t = 0 and t = 1
    wherever its own value there disagrees with it in float64 or float32 (the boundary rule
    of the module docstring)."""
    patches = []
    for end in (0, 1):
        limit = _one_sided_limit(expr, t, end)
        for dtype in (torch.float64, torch.float32):
            got = float(fn(torch.tensor([float(end)], dtype=dtype))[0])
            if not _agrees(got, limit, dtype):
                patches.append((float(end), limit))
                break
    if not patches:
        return fn

    def defined(x: torch.Tensor) -> torch.Tensor:
        out = fn(x)
        for end, value in patches:
            out = torch.where(x == end, value, out)
        return out

    return defined


def _log_snr_expression(alpha, sigma):
    # log(exp(-B/2)) = -B/2 and log(sqrt(u)) = log(u)/2 keep lambda_t accurate where alpha or
    # sigma under/overflow; a forced expansion may introduce I*pi through a sign it cannot
    # see, in which case the plain form is kept
    plain = 2 * sp.log(alpha) - 2 * sp.log(sigma)
    expanded = sp.expand_log(plain, force=True)
    return plain if expanded.has(sp.I) else expanded
