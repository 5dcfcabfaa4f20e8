"""The marginal velocity of the CondOT path between two Gaussians satisfies the continuity
equation."""

import sympy as sp

from ._engine import Derivation, Step, sound_rewrite
from ._registry import register

x, z = sp.symbols("x z", real=True)
t = sp.Symbol("t", positive=True)
m0, m1 = sp.symbols("m_0 m_1", real=True)
s0, s1 = sp.symbols("s_0 s_1", positive=True)

# x_t = (1 - t) x0 + t x1 with x0 ~ N(m0, s0^2), x1 ~ N(m1, s1^2) independent.
m_t = (1 - t) * m0 + t * m1
v_t = (1 - t) ** 2 * s0**2 + t**2 * s1**2
# Cov(x1 - x0, x_t): the regression coefficient's numerator.
c_t = t * s1**2 - (1 - t) * s0**2
velocity = (m1 - m0) + c_t / v_t * (x - m_t)
density = sp.exp(-((x - m_t) ** 2) / (2 * v_t)) / sp.sqrt(2 * sp.pi * v_t)


@sound_rewrite(
    'p_t(x) > 0 (a Gaussian density), so the equation holds iff it holds divided by p_t'
)
def _divide_by_density(expr):
    """Both sides carry the positive factor $p_t(x)$; compare what multiplies it."""
    return sp.cancel(sp.expand(sp.powsimp(sp.expand(expr / density))))


register(
    Derivation(
        id="D-continuity-gaussian-path",
        title="Continuity equation for the Gaussian-to-Gaussian marginal velocity",
        statement=(
            r"For the path $x_t = (1-t)x_0 + t x_1$ with independent $x_0 \sim \mathcal N(m_0, "
            r"s_0^2)$ (data, $t = 0$) and $x_1 \sim \mathcal N(m_1, s_1^2)$, the marginal is "
            r"$p_t = \mathcal N(m_t, v_t)$, $m_t = (1-t)m_0 + t m_1$, "
            r"$v_t = (1-t)^2 s_0^2 + t^2 s_1^2$, and the marginal velocity "
            r"$u(x,t) = \mathbb E[x_1 - x_0 \mid x_t = x] = (m_1 - m_0) + "
            r"\frac{t s_1^2 - (1-t)s_0^2}{v_t}(x - m_t)$ satisfies "
            r"$\partial_t p_t + \partial_x(p_t u) = 0$ (Lipman et al. 2023)."
        ),
        start=sp.Derivative(density, t) + sp.Derivative(density * velocity, x),
        steps=[
            Step(
                rhs=density
                * (
                    sp.Derivative(sp.log(density), t)
                    + sp.Derivative(velocity, x)
                    + velocity * sp.Derivative(sp.log(density), x)
                ),
                reason=(
                    r"Product rule and $\partial p = p\,\partial\log p$: "
                    r"$\partial_t p + \partial_x(p u) = p\,(\partial_t\log p + \partial_x u + "
                    r"u\,\partial_x\log p)$."
                ),
                method=_divide_by_density,
            ),
            Step(
                rhs=sp.Integer(0),
                reason=(
                    "The bracket is a polynomial in $x$ whose coefficients cancel: "
                    r"$\partial_x u = (t s_1^2 - (1-t)s_0^2)/v_t = \dot v_t/(2 v_t)$ balances the "
                    "time derivative of the normaliser, and the quadratic and linear terms cancel "
                    r"because $\dot m_t = m_1 - m_0$."
                ),
                method=_divide_by_density,
            ),
            Step(
                lhs=c_t,
                rhs=sp.Derivative(v_t, t) / 2,
                reason=(
                    r"The regression coefficient: $\operatorname{Cov}(x_1 - x_0, x_t) = "
                    r"t s_1^2 - (1-t)s_0^2$ (bilinearity, independence), which is "
                    r"$\dot v_t/2$."
                ),
            ),
            Step(
                lhs=sp.Derivative(m_t + sp.sqrt(v_t) * z, t),
                rhs=velocity.subs(x, m_t + sp.sqrt(v_t) * z),
                reason=(
                    r"The flow of $u$ is the affine transport $x_t = m_t + \sqrt{v_t}\,z$: each "
                    r"point with standardised coordinate $z$ moves with velocity $u(x_t, t)$, "
                    r"so $u$ pushes $\mathcal N(m_0, s_0^2)$ to $p_t$ for every $t$."
                ),
                method=lambda e: sp.cancel(sp.powsimp(sp.expand(e), force=False)),
            ),
        ],
        symbols=(x, z, t, m0, m1, s0, s1),
        references=("lipman2023flow", "liu2023flow", "tong2024improving"),
        code=(
            "genmath.analytic.Gaussian.marginal",
            "genmath.core.path.GaussianPath.conditional_velocity",
        ),
        tests=("tests/analytic/test_gaussian.py", "tests/families/test_flow_matching.py"),
        domain={t: (0.05, 0.95)},
    )
)
