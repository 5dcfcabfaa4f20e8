"""The change-of-variables formula: in 1-D for a monotone map, and the log-determinant of a
triangular (coupling-layer) Jacobian."""

import sympy as sp

from ._engine import NUMERIC, SYMBOLIC, Derivation, Step
from ._registry import register
from .elbo_gap import _Integral

y = sp.Symbol("y", real=True)
u = sp.Symbol("u", real=True)
mu = sp.Symbol("mu", real=True)
s = sp.Symbol("s", positive=True)
cdf_x = sp.Function("F_X")  # distribution function of X
inverse = sp.Function("h")  # h = g^{-1}, increasing


def _density_x_at(point):
    """$p_X$ at ``point``, written as the derivative of the distribution function there."""
    return sp.Subs(sp.Derivative(cdf_x(u), u), u, point)


def _normal_pdf(value, mean, sd):
    return sp.exp(-((value - mean) ** 2) / (2 * sd**2)) / (sd * sp.sqrt(2 * sp.pi))


# The concrete monotone map g = sinh: Y = sinh(X), X ~ N(mu, s^2), so h = asinh.
_p_y_sinh = _normal_pdf(sp.asinh(y), mu, s) / sp.sqrt(1 + y**2)

register(
    Derivation(
        id="D-change-of-variables-1d",
        title="Change of variables in 1-D for a monotone map",
        statement=(
            r"If $X$ has density $p_X$ and $g$ is increasing and differentiable with inverse "
            r"$h = g^{-1}$, then $Y = g(X)$ has density $p_Y(y) = p_X(h(y))\, h'(y)$, i.e. "
            r"$\log p_Y(y) = \log p_X(x) - \log g'(x)$ at $x = h(y)$ (for a decreasing $g$, "
            r"$|h'|$). Steps 1 is the general argument; steps 2–4 check it on $Y = \sinh X$, "
            r"$X \sim \mathcal N(\mu, s^2)$."
        ),
        start=sp.Derivative(cdf_x(inverse(y)), y),
        steps=[
            Step(
                rhs=_density_x_at(inverse(y)) * sp.Derivative(inverse(y), y),
                reason=(
                    r"$F_Y(y) = P(g(X) \le y) = P(X \le h(y)) = F_X(h(y))$ because $g$ is "
                    "increasing; differentiate by the chain rule."
                ),
            ),
            Step(
                lhs=_normal_pdf(sp.asinh(y), mu, s) * sp.Derivative(sp.asinh(y), y),
                rhs=_p_y_sinh,
                reason=r"For $g = \sinh$, $h = \operatorname{asinh}$ and $h'(y) = 1/\sqrt{1+y^2}$.",
            ),
            Step(
                lhs=sp.log(_p_y_sinh),
                rhs=sp.log(_normal_pdf(sp.asinh(y), mu, s)) - sp.log(sp.cosh(sp.asinh(y))),
                reason=(
                    r"The log form: $\log p_Y(y) = \log p_X(x) - \log g'(x)$ with "
                    r"$g'(x) = \cosh x$ at $x = \operatorname{asinh} y$."
                ),
                tag=SYMBOLIC,
            ),
            Step(
                lhs=_Integral(_p_y_sinh, (y, -sp.oo, sp.oo)),
                rhs=sp.Integer(1),
                reason="The transformed density is normalised (quadrature at random $\\mu$, $s$).",
                tag=NUMERIC,
                tolerance=1e-10,
                samples=3,
            ),
        ],
        symbols=(y, mu, s),
        references=("papamakarios2021normalizing", "rezende2015variational"),
        code=(
            "genmath.core.change_of_variables.Bijection",
            "genmath.core.change_of_variables.Flow",
            "genmath.core.change_of_variables.Sigmoid",
        ),
        tests=("tests/core/test_change_of_variables.py",),
    )
)

# --- Affine coupling on R^4: the first half passes through, the second half is scaled/shifted.
x1, x2, x3, x4 = xs = sp.symbols("x_1:5", real=True)
scale = [sp.Function(f"s_{k}", real=True) for k in (1, 2)]
shift = [sp.Function(f"t_{k}") for k in (1, 2)]
_outputs = sp.Matrix(
    [
        x1,
        x2,
        x3 * sp.exp(scale[0](x1, x2)) + shift[0](x1, x2),
        x4 * sp.exp(scale[1](x1, x2)) + shift[1](x1, x2),
    ]
)
_jacobian = sp.Matrix(4, 4, lambda i, j: sp.Derivative(_outputs[i], xs[j]))

register(
    Derivation(
        id="D-coupling-logdet",
        title="Log-determinant of an affine coupling layer (triangular Jacobian)",
        statement=(
            r"For the affine coupling $y_{1:2} = x_{1:2}$, "
            r"$y_{3:4} = x_{3:4} \odot e^{s(x_{1:2})} + t(x_{1:2})$ (Dinh et al. 2017), the "
            r"Jacobian is block lower-triangular, so $\log|\det J| = \sum_k s_k(x_{1:2})$: no "
            "derivative of the networks $s$, $t$ enters."
        ),
        start=_jacobian[0:2, 2:4],
        steps=[
            Step(
                rhs=sp.zeros(2, 2),
                reason=(
                    r"The upper-right block $\partial y_{1:2}/\partial x_{3:4}$ vanishes: the "
                    "first half passes through unchanged, so $J$ is block lower-triangular."
                ),
            ),
            Step(
                lhs=sp.Determinant(_jacobian),
                rhs=sp.prod([_jacobian[k, k] for k in range(4)]),
                reason=(
                    "The determinant of a block-triangular matrix with an identity and a diagonal "
                    "block is the product of the diagonal entries."
                ),
                method=lambda e: sp.expand(e.doit()),
            ),
            Step(
                rhs=sp.exp(scale[0](x1, x2) + scale[1](x1, x2)),
                reason=r"Those entries are $1, 1, e^{s_1}, e^{s_2}$.",
                method=lambda e: sp.powsimp(sp.expand(e)),
            ),
            Step(
                lhs=sp.log(sp.Abs(sp.exp(scale[0](x1, x2) + scale[1](x1, x2)))),
                rhs=scale[0](x1, x2) + scale[1](x1, x2),
                reason=(
                    "The exponential is positive, so the log-absolute-determinant is the sum of "
                    "the log-scales (for real-valued networks $s_k$)."
                ),
            ),
        ],
        symbols=xs,
        references=("dinh2017density", "papamakarios2021normalizing"),
        code=(
            "genmath.core.change_of_variables.AffineCoupling",
            "genmath.core.change_of_variables.MaskedAutoregressive",
        ),
        tests=("tests/core/test_change_of_variables.py",),
    )
)
