r"""LaTeX of derivation expressions as a reader writes them (long equations are broken over
lines by [`genmath.derivations._linebreak`][genmath.derivations._linebreak]).

`sympy.latex` prints what sympy stores: a Gaussian density as
$\frac{\sqrt{2} e^{- \frac{(x - \mu)^{2}}{2 \sigma^{2}}}}{2 \sqrt{\pi} \sigma}$, an expectation
as an integral against a density, ``\log{\left(p{\left(x \right)} \right)}``. The site prints
the same expressions with the notation of the papers:

* a Gaussian density $\frac{1}{\sqrt{2\pi V}} e^{-(v - m)^2/(2V)}$ as $\mathcal N(v; m, V)$, and
  $-\tfrac12\log(2\pi V) - (v - m)^2/(2V)$ as $\log\mathcal N(v; m, V)$;
* $\int_{-\infty}^{\infty} q(z)\, f(z)\, dz$ against a density $q$ (a positive undefined
  function) as $\mathbb E_{q(z)}[f(z)]$, and $\mathbb E_q[\log q - \log r]$ as
  $\mathrm{KL}(q \,\|\, r)$;
* densities as symbols: $p(x)$, $\log p(x)$ (no ``\left(`` around a function's argument);
* $\exp(\dots)$ for an exponent that is not a single symbol (the exponent keeps its size).

[`readable`][genmath.derivations._latex.readable] makes the notation explicit as sympy
objects; each has an ``unfold()`` that gives back the expression it stands for, so a test
can check that what the page prints is what was verified
(``unfold(readable(e)) == e`` up to algebra, on every side of every derivation).
"""

from __future__ import annotations

import re
from typing import Any

import sympy as sp
from sympy.core.function import AppliedUndef, _coeff_isneg
from sympy.printing.latex import LatexPrinter

__all__ = ["latex", "readable", "unfold"]


# --------------------------------------------------------------------------- notation


class Normal(sp.Function):
    r"""$\mathcal N(v; m, V)$: the univariate Gaussian density of variance $V$ at $v$."""

    nargs = 3

    def unfold(self):
        v, m, var = self.args
        return sp.exp(-((v - m) ** 2) / (2 * var)) / sp.sqrt(2 * sp.pi * var)

    def _latex(self, printer):
        v, m, var = (printer._print(a) for a in self.args)
        return rf"\mathcal{{N}}\!\left({v};\, {m},\, {var}\right)"


class LogNormal(sp.Function):
    r"""$\log\mathcal N(v; m, V)$."""

    nargs = 3

    def unfold(self):
        v, m, var = self.args
        return -sp.log(2 * sp.pi * var) / 2 - (v - m) ** 2 / (2 * var)

    def _latex(self, printer):
        v, m, var = (printer._print(a) for a in self.args)
        return rf"\log \mathcal{{N}}\!\left({v};\, {m},\, {var}\right)"


class Expectation(sp.Function):
    r"""$\mathbb E_{q}[f]$ for $\int q\, f\, dz$ over the real line: args ``(q, f, z)``;
    ``kind`` is the integral class it came from (an unevaluated subclass, say)."""

    nargs = 3

    def unfold(self, kind=sp.Integral):
        density, body, variable = self.args
        return kind(density * body, (variable, -sp.oo, sp.oo))

    def _latex(self, printer):
        density, body, _ = self.args
        return (
            rf"\mathbb{{E}}_{{{printer._print(density)}}}\!\left[{printer._print(body)}\right]"
        )


class KL(sp.Function):
    r"""$\mathrm{KL}(q \,\|\, r) = \mathbb E_q[\log q - \log r]$: args ``(q, r, z)``."""

    nargs = 3

    def unfold(self, kind=sp.Integral):
        q, r, variable = self.args
        return kind(q * (sp.log(q) - sp.log(r)), (variable, -sp.oo, sp.oo))

    def _latex(self, printer):
        q, r, _ = self.args
        return rf"\mathrm{{KL}}\!\left({printer._print(q)} \,\middle\|\, {printer._print(r)}\right)"


_NOTATION = (Normal, LogNormal, Expectation, KL)


def _gaussian_exponent(exponent: sp.Expr) -> tuple[sp.Expr, sp.Expr, sp.Expr] | None:
    """``(v, m, V)`` if ``exponent`` is ``-(v - m)^2 / (2 V)``, else ``None``."""
    if not isinstance(exponent, sp.Mul):
        return None
    for factor in exponent.args:
        if isinstance(factor, sp.Pow) and factor.exp == 2:
            base = factor.base
            var = sp.cancel(-(base**2) / (2 * exponent))
            if var.is_positive is False or var.is_zero:
                continue
            value, mean = _split_value(base)
            if value is None or var.has(value):
                continue
            return value, mean, var
    return None


def _split_value(base: sp.Expr) -> tuple[sp.Expr | None, sp.Expr]:
    """``(v, m)`` with ``base = v - m``: ``v`` the first term that is a plain symbol (the
    variable the density is of); ``(base, 0)`` when ``base`` is itself a symbol."""
    if isinstance(base, sp.Symbol):
        return base, sp.Integer(0)
    if isinstance(base, sp.Add):
        for term in base.args:
            if isinstance(term, sp.Symbol):
                return term, sp.expand(term - base)
    return None, sp.Integer(0)


def _stray_pi(expr: sp.Expr) -> bool:
    """Whether a factor of ``expr`` is a power of pi (a normaliser not accounted for)."""
    return any(f == sp.pi or (f.is_Pow and f.base == sp.pi) for f in sp.Mul.make_args(expr))


def _normal_in_mul(expr: sp.Mul) -> sp.Expr | None:
    """``expr`` with a normalised Gaussian density among its factors written `Normal`
    (several, for a product of densities), else ``None``."""
    for k, factor in enumerate(expr.args):
        if isinstance(factor, sp.exp):
            found = _gaussian_exponent(factor.args[0])
            if found is None:
                continue
            value, mean, var = found
            rest = sp.Mul(*expr.args[:k], *expr.args[k + 1 :])
            ratio = rest * sp.sqrt(2 * sp.pi * var)
            if _stray_pi(ratio) and isinstance(ratio, sp.Mul):
                ratio = _normal_in_mul(ratio) or ratio  # a second density takes the rest
            if _stray_pi(ratio) or sp.count_ops(ratio) > sp.count_ops(rest):
                continue  # no normaliser here: an unnormalised Gaussian bump, left as it is
            return ratio * Normal(value, mean, var)
    return None


def _log_normal_in_add(expr: sp.Add) -> sp.Expr | None:
    terms = list(expr.args)
    for i, term in enumerate(terms):
        coeff, rest = term.as_coeff_Mul()
        if coeff != sp.Rational(-1, 2) or not isinstance(rest, sp.log):
            continue
        var = sp.cancel(rest.args[0] / (2 * sp.pi))
        for j, other in enumerate(terms):
            if j == i:
                continue
            found = _gaussian_exponent(other)
            if found is not None and sp.simplify(found[2] - var) == 0:
                others = [t for k, t in enumerate(terms) if k not in (i, j)]
                return sp.Add(*others) + LogNormal(*found)
    return None


def _density_factor(integrand: sp.Expr, variable: sp.Symbol) -> sp.Expr | None:
    """The density an integrand is weighted by: a positive undefined function of the
    integration variable, appearing once as a factor."""
    for factor in sp.Mul.make_args(sp.factor_terms(integrand)):
        if (
            isinstance(factor, AppliedUndef)
            and factor.func.is_positive
            and variable in factor.args
        ):
            return factor
    return None


def _expectation_of(integral: sp.Integral) -> sp.Expr | None:
    if len(integral.limits) != 1 or len(integral.limits[0]) != 3:
        return None
    variable, low, high = integral.limits[0]
    if not (low == -sp.oo and high == sp.oo):
        return None
    density = _density_factor(integral.function, variable)
    if density is None:
        return None
    body = integral.function / density
    if body == 1 or body.has(density.func) and not body.has(sp.log):
        return None  # the integral of a density (a marginal), not an expectation
    # E_q[log q - log r], literally: KL(q || r) (the ELBO's E_q[log p - log q] stays an
    # expectation: its p(x, z) is not a density in z)
    rest = sp.expand(sp.expand_log(body, force=False) - sp.log(density))
    if (
        isinstance(rest, sp.Mul)
        and len(rest.args) == 2
        and rest.args[0] == -1
        and isinstance(rest.args[1], sp.log)
        and not rest.args[1].args[0].has(density.func)
    ):
        return KL(density, rest.args[1].args[0], variable)
    return Expectation(density, body, variable)


def readable(expr: Any) -> Any:
    """``expr`` with the notation of the papers made explicit (`Normal`, `LogNormal`,
    `Expectation`, `KL`); only how it prints changes (see `unfold`)."""
    if isinstance(expr, sp.MatrixBase):
        return expr.applyfunc(readable)
    if not isinstance(expr, sp.Basic) or expr.is_Atom:
        return expr
    args = tuple(readable(a) for a in expr.args)
    rebuilt = expr.func(*args) if args != expr.args else expr
    if isinstance(rebuilt, sp.Mul):
        return _normal_in_mul(rebuilt) or rebuilt
    if isinstance(rebuilt, sp.Add):
        return _log_normal_in_add(rebuilt) or rebuilt
    if isinstance(rebuilt, sp.Integral):
        found = _expectation_of(rebuilt)
        if found is not None:
            return found.func(*found.args)  # a plain Expectation/KL; the integral kind is lost
    return rebuilt


def unfold(expr: Any, kind: type = sp.Integral) -> Any:
    """The expression a `readable` one stands for (integrals rebuilt as ``kind``)."""
    if isinstance(expr, sp.MatrixBase):
        return expr.applyfunc(lambda e: unfold(e, kind))
    if not isinstance(expr, sp.Basic) or expr.is_Atom:
        return expr
    args = tuple(unfold(a, kind) for a in expr.args)
    if isinstance(expr, Normal | LogNormal):
        return type(expr)(*args).unfold()
    if isinstance(expr, Expectation | KL):
        return type(expr)(*args).unfold(kind)
    return expr.func(*args) if args != expr.args else expr


# --------------------------------------------------------------------------- printer


class _SitePrinter(LatexPrinter):
    """sympy's LaTeX printer with the site's notation (see the module docstring)."""

    def __init__(self, settings=None):
        super().__init__({"mul_symbol": None, **(settings or {})})

    def _as_ordered_terms(self, expr, order=None):
        # lead with a positive term where there is one: x - \alpha x_0, not -\alpha x_0 + x
        terms = list(super()._as_ordered_terms(expr, order=order))
        if terms and _coeff_isneg(terms[0]):
            for k, term in enumerate(terms):
                if not _coeff_isneg(term):
                    terms.insert(0, terms.pop(k))
                    break
        return terms

    def _print_Symbol(self, expr, style="plain"):
        if expr.name == "epsilon":
            return r"\varepsilon"
        return super()._print_Symbol(expr, style)

    def _print_ExpBase(self, expr, exp=None):
        from ._linebreak import tex_width  # the line breaker builds on this printer

        exponent = self._print(expr.args[0])
        if "\\frac" not in exponent and tex_width(exponent) <= 5:
            return super()._print_ExpBase(expr, exp)
        # a long exponent keeps its size: exp(...) on the line, not e^{...} in superscript
        return self._do_exponent(rf"\exp\left({exponent}\right)", exp)

    def _print_Function(self, expr, exp=None):
        if isinstance(expr, AppliedUndef):
            name = self._hprint_Function(expr.func.__name__)
            args = ", ".join(self._print(a) for a in expr.args)
            tex = f"{name}({args})"
            return tex if exp is None else rf"{tex}^{{{exp}}}"
        tex = super()._print_Function(expr, exp)
        # sympy writes \tanh{\left(x \right)}: without the braces the line breaker can
        # break inside the argument (a brace group is one unbreakable box)
        m = re.fullmatch(r"(.*?)\{(\\left\(.*\\right\))\}", tex, re.S)
        if m is not None and _one_pair(m.group(2)):
            return m.group(1) + m.group(2)
        return tex

    def _print_log(self, expr, exp=None):
        (arg,) = expr.args
        if isinstance(arg, AppliedUndef | sp.Symbol | Normal):
            tex = rf"\log {self._print(arg)}"
        else:
            tex = rf"\log\left({self._print(arg)}\right)"
        return tex if exp is None else rf"\left({tex}\right)^{{{exp}}}"


def _one_pair(tex: str) -> bool:
    r"""Whether ``tex`` is one ``\left ... \right`` pair: its first ``\left`` closes at
    its end, not before."""
    depth = 0
    for m in re.finditer(r"\\(left|right)(?![A-Za-z])", tex):
        depth += 1 if m.group(1) == "left" else -1
        if depth == 0:
            return tex[m.end() :].strip() == ")"
    return False


def latex(expr: Any) -> str:
    """LaTeX of a derivation expression in the site's notation (sympy's own printing where
    the notation cannot be applied to it)."""
    try:
        return _SitePrinter().doprint(readable(expr))
    except Exception:  # an expression the rewriting or the ordering cannot handle
        try:
            return _SitePrinter().doprint(expr)
        except Exception:
            return sp.latex(expr)
