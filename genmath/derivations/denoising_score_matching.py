"""Denoising score matching equals explicit score matching plus a constant (Gaussian case)."""

import sympy as sp

from ._engine import Derivation, Step, sound_rewrite
from ._registry import register
from .elbo_gap import _Integral

z, e, w = sp.symbols("z epsilon w", real=True)  # standard-normal integration variables
a, b, mu, x = sp.symbols("a b mu x", real=True)  # model s(x) = a x + b; data mean
tau, sigma = sp.symbols("tau sigma", positive=True)  # data std, noise std
var_noisy = tau**2 + sigma**2  # x = x0 + sigma eps ~ N(mu, tau^2 + sigma^2)


def _std_normal(var):
    return sp.exp(-(var**2) / 2) / sp.sqrt(2 * sp.pi)


def _gaussian_expectation(integral):
    """Evaluate $\\int \\prod_j \\varphi(z_j)\\,P(z)\\,dz$ for a polynomial $P$ over the real
    line: expand $P$ and replace each monomial by the product of standard-normal moments
    $\\mathbb E[z^k] = (k-1)!!$ for even $k$, $0$ for odd $k$ (sympy's integrator is slow here)."""
    variables = [limit[0] for limit in integral.limits]
    for _, lo, hi in integral.limits:
        if (lo, hi) != (-sp.oo, sp.oo):
            return integral
    weight = sp.prod([_std_normal(v) for v in variables])
    polynomial = sp.cancel(integral.function / weight)
    if not polynomial.is_polynomial(*variables):
        return integral
    total = sp.Integer(0)
    for powers, coeff in sp.Poly(sp.expand(polynomial), *variables).terms():
        moment = sp.prod([0 if k % 2 else sp.factorial2(k - 1) for k in powers])
        total += coeff * moment
    return total


@sound_rewrite(
    "a Gaussian integral of a polynomial equals the sum of its monomials' standard-normal moments E[z^k] = (k-1)!! (k even), 0 (k odd)"
)
def _moments(expr):
    expr = expr.replace(lambda node: isinstance(node, _Integral), _gaussian_expectation)
    return sp.cancel(sp.expand(expr))


def _model(value):
    return a * value + b


_x_noisy = mu + tau * z + sigma * e  # x0 = mu + tau z, x = x0 + sigma eps
_x_marginal = mu + sp.sqrt(var_noisy) * w  # the same law, one standard normal
_true_score = -(_x_marginal - mu) / var_noisy  # score of N(mu, tau^2 + sigma^2)

_dsm = _Integral(
    _std_normal(z) * _std_normal(e) * (_model(_x_noisy) + e / sigma) ** 2 / 2,
    (z, -sp.oo, sp.oo),
    (e, -sp.oo, sp.oo),
)
_esm = _Integral(_std_normal(w) * (_model(_x_marginal) - _true_score) ** 2 / 2, (w, -sp.oo, sp.oo))
_second_moment = (a * mu + b) ** 2 + a**2 * var_noisy  # E[(a x + b)^2]
_dsm_closed = _second_moment / 2 + a + 1 / (2 * sigma**2)
_esm_closed = _second_moment / 2 + a + 1 / (2 * var_noisy)

register(
    Derivation(
        id="D-dsm-equals-esm",
        title="Denoising score matching = explicit score matching + constant (Gaussian case)",
        statement=(
            r"For data $x_0 \sim \mathcal N(\mu, \tau^2)$, noise $x = x_0 + \sigma\varepsilon$ and "
            r"a linear score model $s(x) = a x + b$, the denoising objective "
            r"$\frac12\mathbb E\,|s(x) - \nabla_x\log q(x\mid x_0)|^2$, with "
            r"$\nabla_x\log q(x\mid x_0) = -\varepsilon/\sigma$, and the explicit objective "
            r"$\frac12\mathbb E\,|s(x) - \nabla\log p_\sigma(x)|^2$, "
            r"$p_\sigma = \mathcal N(\mu, \tau^2 + \sigma^2)$, differ by "
            r"$\frac12(1/\sigma^2 - 1/(\tau^2+\sigma^2))$, which does not depend on $(a, b)$; "
            r"both are minimised by the score of $p_\sigma$ (Vincent 2011)."
        ),
        start=_dsm,
        steps=[
            Step(
                rhs=_dsm_closed,
                reason=(
                    r"Expand the square and take Gaussian moments: the cross term is "
                    r"$\mathbb E[(a x + b)\varepsilon]/\sigma = a$, the last "
                    r"$\mathbb E[\varepsilon^2]/(2\sigma^2)$."
                ),
                method=_moments,
            ),
            Step(
                lhs=_esm,
                rhs=_esm_closed,
                reason=(
                    r"The explicit objective, with $x = \mu + \sqrt{\tau^2+\sigma^2}\,w$: the cross "
                    r"term is again $a$, the last $1/(2(\tau^2+\sigma^2))$."
                ),
                method=_moments,
            ),
            Step(
                lhs=_dsm_closed - _esm_closed,
                rhs=(1 / sigma**2 - 1 / var_noisy) / 2,
                reason="The difference is a constant: no $a$ or $b$ survives.",
            ),
            Step(
                lhs=sp.Matrix([sp.diff(_dsm_closed, a), sp.diff(_dsm_closed, b)]).subs(
                    {a: -1 / var_noisy, b: mu / var_noisy}
                ),
                rhs=sp.zeros(2, 1),
                reason=(
                    r"So the denoising optimum is the explicit one: $(a, b) = (-1, \mu)/"
                    r"(\tau^2+\sigma^2)$, the score of $p_\sigma$, zeroes the gradient (the "
                    "objective is a convex quadratic)."
                ),
            ),
            Step(
                lhs=_dsm - _esm,
                rhs=(1 / sigma**2 - 1 / var_noisy) / 2,
                reason=(
                    "In general the cross terms agree because "
                    r"$\mathbb E_{x_0, x}[s(x)\cdot\nabla_x\log q(x\mid x_0)] = "
                    r"\int s(x)\cdot\nabla_x p_\sigma(x)\,dx = \mathbb E_{p_\sigma}[s\cdot\nabla"
                    r"\log p_\sigma]$, exchanging the $x_0$-integral and $\nabla_x$ (Vincent 2011); "
                    "here the two objectives are compared directly, integral against integral."
                ),
                method=_moments,
            ),
        ],
        symbols=(a, b, mu, tau, sigma),
        references=("vincent2011connection", "hyvarinen2005estimation", "song2019generative"),
        code=("genmath.core.score.denoising", "genmath.core.score.explicit"),
        tests=("tests/core/test_score.py",),
    )
)
