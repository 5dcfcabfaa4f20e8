"""Gaussian building blocks shared by the derivation topics (one formula, one place).

`log_normal` is the univariate log-density every Gaussian derivation starts from, and
`gaussian_identity` the rewrite that closes an identity between sums of Gaussian
log-densities quickly: it compares the polynomial part coefficient by coefficient in the
named variables and combines the logarithms into one, which sympy's general `simplify`
does slowly (tens of seconds on DDPM's posterior). It keeps the value of what it rewrites
wherever the logarithms' arguments are positive, which the engine checks numerically on the
derivation's domain.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import sympy as sp

__all__ = ["log_normal", "gaussian_identity"]


def log_normal(value, mean, var):
    r"""$\log\mathcal N(\mathrm{value}; \mathrm{mean}, \mathrm{var})$, one coordinate."""
    return -sp.log(2 * sp.pi * var) / 2 - (value - mean) ** 2 / (2 * var)


def gaussian_identity(variables: Sequence[sp.Symbol]) -> Callable:
    """A step ``method`` for identities between sums of Gaussian log-densities in
    ``variables``: the polynomial part coefficient by coefficient (each cancelled), the
    logarithms combined into the logarithm of one cancelled product."""

    def rewrite(expr):
        expr = sp.expand(expr)
        logs = sp.Add(*(t for t in sp.Add.make_args(expr) if t.has(sp.log)))
        rest = sp.expand(expr - logs)
        # exp(k L) of a real sum of logs L is a product of integer powers once k clears the
        # coefficients' denominators (the 1/2 of a log-normaliser); cancelling it and taking
        # the log again keeps the value for positive arguments (checked by the engine)
        denominators = [
            sp.fraction(sp.nsimplify(t.as_coeff_Mul()[0]))[1] for t in sp.Add.make_args(logs)
        ]
        k = sp.ilcm(1, *denominators)
        product = sp.cancel(sp.expand_power_base(sp.exp(sp.expand(k * logs)), force=False))
        log_part = sp.log(product) / k if product != 1 else sp.Integer(0)
        poly = sp.Poly(rest, *variables)
        polynomial = sp.Add(
            *(
                sp.cancel(coefficient) * sp.Mul(*(v**k for v, k in zip(variables, powers, strict=True)))
                for powers, coefficient in poly.terms()
            )
        )
        return sp.expand(polynomial) + log_part

    rewrite.__name__ = "gaussian_identity"
    return rewrite
