"""Score matching: Hyvärinen's integration by parts, sliced and denoising score matching.

Every expectation over Gaussian variables is written as an unevaluated
`GaussianExpectation` over independent standard normals; sympy evaluates it exactly by the
moment rule $\\mathbb E[u^{k}] = (k-1)!!$ for even $k$ and $0$ for odd $k$, so each
closed form below is derived, not typed.
"""

import sympy as sp

from ._engine import CITED, Check, Derivation, Step
from ._registry import register

__all__ = ["GaussianExpectation"]


class GaussianExpectation(sp.Function):
    r"""$\mathbb E[f(u_1, \dots, u_n)]$ for independent $u_i \sim \mathcal N(0, 1)$ and a
    polynomial $f$: ``GaussianExpectation(f, u_1, ..., u_n)``; ``doit()`` evaluates it."""

    @classmethod
    def eval(cls, *args):
        return None  # stay unevaluated until doit(), so pages show the expectation

    def doit(self, **hints):
        expr, *variables = self.args
        poly = sp.Poly(sp.expand(expr.doit(**hints)), *variables)
        total = sp.Integer(0)
        for powers, coeff in poly.terms():
            moment = sp.Integer(1)
            for k in powers:
                moment *= 0 if k % 2 else sp.factorial2(k - 1)
            total += coeff * moment
        return total

    def _latex(self, printer, exp=None):
        body = r"\mathbb{E}\left[" + printer._print(self.args[0]) + r"\right]"
        return body if exp is None else body + "^{" + printer._print(exp) + "}"


E = GaussianExpectation
half = sp.Rational(1, 2)

x = sp.Symbol("x", real=True)
u, eps = sp.symbols("u varepsilon", real=True)
a, b, m = sp.symbols("a b m", real=True)
S = sp.Symbol("S", positive=True)
alpha, sigma = sp.symbols("alpha sigma", positive=True)


def _normal_pdf(x, mean, var):
    return sp.exp(-((x - mean) ** 2) / (2 * var)) / sp.sqrt(2 * sp.pi * var)


# Data N(m, S) in 1-D, written as x = m + sqrt(S) u; linear score model s(x) = -a (x - b).
_x_data = m + sp.sqrt(S) * u
_model = -a * (_x_data - b)
_true_score = -(_x_data - m) / S
_implicit_closed = half * a**2 * (S + (m - b) ** 2) - a

register(
    Derivation(
        id="D-hyvarinen-score-matching",
        title="Explicit score matching equals implicit score matching plus a constant",
        statement=(
            r"For a score model $s_\theta$ and data density $p$ with $p\,s_\theta \to 0$ at "
            r"infinity, $J_\mathrm{ESM} = \mathbb E_p[\tfrac12\|s_\theta - \nabla\log p\|^2]$ and "
            r"$J_\mathrm{ISM} = \mathbb E_p[\tfrac12\|s_\theta\|^2 + \operatorname{tr}\nabla s_\theta]$ "
            r"differ by $\tfrac12\mathbb E_p\|\nabla\log p\|^2$, which does not depend on $\theta$ "
            r"(Hyvärinen 2005, Theorem 1). Worked case: $p = \mathcal N(m, S)$ and "
            r"$s(x) = -a(x - b)$, whose minimiser is $a = 1/S$, $b = m$."
        ),
        start=E(_model * _true_score, u),
        steps=[
            Step(
                rhs=E(-sp.diff(-a * (x - b), x), u),
                reason=(
                    r"Integration by parts: $\mathbb E_p[s\, \partial_x \log p] = \int s\, \partial_x p "
                    r"= -\mathbb E_p[\partial_x s]$ (boundary term zero); in the worked case both "
                    r"sides are $a$."
                ),
            ),
            Step(
                rhs=E(-sp.diff(-a * (x - b), x), u),
                reason=(
                    r"In general the cross term of $\tfrac12\|s - \nabla\log p\|^2$ becomes the trace "
                    r"term, which is the whole of the theorem."
                ),
                tag=CITED,
                theorem="Hyvärinen (2005), Theorem 1 (integration by parts in each coordinate)",
                reference="hyvarinen2005estimation",
            ),
            Step(
                lhs=E(half * (_model - _true_score) ** 2, u),
                rhs=_implicit_closed + 1 / (2 * S),
                reason=(
                    r"$J_\mathrm{ESM}$ for the worked case, expanded with the moments of $u$: "
                    r"it equals $J_\mathrm{ISM}$ below plus $\tfrac1{2S}$."
                ),
            ),
            Step(
                lhs=E(half * _model**2 + (-a), u),
                rhs=_implicit_closed,
                reason=r"$J_\mathrm{ISM} = \mathbb E[\tfrac12 s^2 + s'] $ with $s' = -a$.",
            ),
            Step(
                lhs=E(half * _true_score**2, u),
                rhs=1 / (2 * S),
                reason=r"The constant $\tfrac12\mathbb E\|\nabla \log p\|^2 = \tfrac12\operatorname{tr}\Sigma^{-1}$.",
            ),
            Step(
                lhs=sp.Matrix([sp.diff(_implicit_closed, a), sp.diff(_implicit_closed, b)]).subs(
                    {a: 1 / S, b: m}
                ),
                rhs=sp.Matrix([0, 0]),
                reason=r"The stationary point of $J_\mathrm{ISM}$ is $a = 1/S = \Sigma^{-1}$, $b = m$.",
            ),
        ],
        symbols=(a, b, m, S),
        references=("hyvarinen2005estimation",),
        code=(
            "genmath.core.score.explicit",
            "genmath.core.score.implicit",
        ),
        tests=("tests/core/test_score.py",),
    )
)

# Sliced score matching in two dimensions with a generic Jacobian J and score vector s.
v1, v2 = sp.symbols("v_1 v_2", real=True)
J = sp.Matrix(2, 2, sp.symbols("J_11 J_12 J_21 J_22", real=True))
s1, s2 = sp.symbols("s_1 s_2", real=True)
_v = sp.Matrix([v1, v2])
_s = sp.Matrix([s1, s2])
_vJv = (_v.T * J * _v)[0]
_vs = (_v.T * _s)[0]

register(
    Derivation(
        id="D-sliced-score-matching",
        title="Sliced score matching equals implicit score matching in expectation",
        statement=(
            r"For projections with $\mathbb E[vv^\top] = I$, "
            r"$\mathbb E_v[v^\top \nabla s\, v + \tfrac12 (v^\top s)^2] = "
            r"\operatorname{tr}\nabla s + \tfrac12\|s\|^2$ at every $x$ (Song et al. 2020), so "
            r"sliced score matching is an unbiased estimate of implicit score matching; the "
            r"variance-reduced form replaces $\tfrac12(v^\top s)^2$ by its mean "
            r"$\tfrac12\|s\|^2$. Shown for standard Gaussian $v$ in $\mathbb R^2$ with a generic, "
            "non-symmetric Jacobian."
        ),
        start=E(_vJv + half * _vs**2, v1, v2),
        steps=[
            Step(
                rhs=J.trace() + half * (s1**2 + s2**2),
                reason=r"$\mathbb E[v_i v_j] = \delta_{ij}$ picks the diagonal of $J$ and $\|s\|^2$.",
            ),
            Step(
                lhs=E(_vJv, v1, v2),
                rhs=J.trace(),
                reason="The first term alone is Hutchinson's estimate of the trace.",
            ),
        ],
        symbols=(*J, s1, s2),
        references=("song2020sliced", "hutchinson1989stochastic"),
        code=("genmath.core.score.sliced",),
        tests=("tests/core/test_score.py",),
    )
)

_xt = alpha * _x_data + sigma * eps
_model_t = -a * (_xt - b)
_marginal_var = alpha**2 * S + sigma**2
_marginal_score = -(_xt - alpha * m) / _marginal_var

register(
    Derivation(
        id="D-denoising-score-matching",
        title="Denoising score matching equals explicit score matching of the noisy marginal plus a constant",
        statement=(
            r"With $x_t = \alpha x_0 + \sigma\varepsilon$, "
            r"$J_\mathrm{DSM} = \mathbb E[\tfrac12\|s(x_t) + \varepsilon/\sigma\|^2]$ and "
            r"$J_\mathrm{ESM}(p_t) = \mathbb E[\tfrac12\|s(x_t) - \nabla\log p_t(x_t)\|^2]$ differ by "
            r"$\tfrac12\mathbb E\|\varepsilon\|^2/\sigma^2 - \tfrac12\mathbb E\|\nabla\log p_t\|^2$ "
            r"(Vincent 2011). Worked case: $x_0 \sim \mathcal N(m, S)$, "
            r"$p_t = \mathcal N(\alpha m, \alpha^2 S + \sigma^2)$, $s(x) = -a(x - b)$; in $d$ "
            r"dimensions the constant is $d/(2\sigma^2) - \tfrac12\operatorname{tr} C_t^{-1}$, "
            r"$C_t = \alpha^2\Sigma + \sigma^2 I$."
        ),
        start=E(half * (_model_t + eps / sigma) ** 2, u, eps)
        - E(half * (_model_t - _marginal_score) ** 2, u, eps),
        steps=[
            Step(
                rhs=1 / (2 * sigma**2) - 1 / (2 * _marginal_var),
                reason=(
                    r"Expand both squares; the terms in the model cancel because "
                    r"$\mathbb E[\varepsilon/\sigma \mid x_t] = -\nabla\log p_t(x_t)$ (Tweedie)."
                ),
                method=sp.simplify,
            ),
            Step(
                lhs=E(half * (eps / sigma) ** 2, u, eps) - E(half * _marginal_score**2, u, eps),
                rhs=1 / (2 * sigma**2) - 1 / (2 * _marginal_var),
                reason="The constant is the difference of the two target second moments.",
                method=sp.simplify,
            ),
        ],
        symbols=(a, b, m, S, alpha, sigma),
        references=("vincent2011connection", "song2019generative"),
        code=("genmath.core.score.denoising",),
        tests=("tests/core/test_score.py",),
    )
)


def _check_implicit_linear() -> float:
    """Per-sample implicit score matching of a linear model against its closed form."""
    import numpy as np
    import torch

    from ..core.score import implicit

    g = torch.Generator().manual_seed(0)
    A = torch.randn(4, 4, generator=g, dtype=torch.float64) + 2 * torch.eye(4, dtype=torch.float64)
    b = torch.randn(4, generator=g, dtype=torch.float64)
    x = torch.randn(16, 4, generator=g, dtype=torch.float64)
    value = implicit(lambda y: -(y - b) @ A.T, x, reduction="none")
    s = -(x.numpy() - b.numpy()) @ A.numpy().T
    expected = 0.5 * (s**2).sum(1) - np.trace(A.numpy())
    return float(np.abs(value.detach().numpy() - expected).max())


register(
    Check(
        id="C-implicit-score-matching-linear",
        title="Implicit score matching of a linear score model equals its closed form",
        function=_check_implicit_linear,
        tolerance=1e-10,
        code=("genmath.core.score.implicit",),
        tests=("tests/core/test_score.py",),
        derivation="D-hyvarinen-score-matching",
    )
)
