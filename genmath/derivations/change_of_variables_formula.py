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

# The log-determinant of a coupling layer (triangular Jacobian) is D-flow-coupling-logdet in
# flows.py, next to the layers it backs.
