"""The marginal velocity of the CondOT path between two Gaussians satisfies the continuity
equation."""

import sympy as sp

from ._chain import Earlier
from ._engine import Binding, Derivation, LogUniform, Step, Uniform, sound_rewrite
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


_gaussian_factor = sp.exp(-((x - m_t) ** 2) / (2 * v_t))
_E = sp.Dummy("E", positive=True)


@sound_rewrite(
    'p_t(x) > 0 (a Gaussian density), so the equation holds iff it holds divided by p_t'
)
def _divide_by_density(expr):
    """Both sides carry the positive factor $p_t(x)$; compare what multiplies it. The
    exponential is held as a symbol while the quotient is put over one denominator and
    cancelled (the same rational function, far faster than expanding the exponentials)."""
    quotient = expr.subs(_gaussian_factor, _E) * sp.sqrt(2 * sp.pi * v_t) / _E
    return sp.cancel(sp.together(quotient)).subs(_E, _gaussian_factor)


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
                lhs=velocity,
                rhs=(m1 - m0) + sp.Derivative(v_t, t) / (2 * v_t) * (x - m_t),
                reason=(
                    r"The regression coefficient of $u$: $\operatorname{Cov}(x_1 - x_0, x_t) = "
                    r"t s_1^2 - (1-t)s_0^2$ (bilinearity, independence), which is "
                    r"$\dot v_t/2$, so $u = \dot m_t + \frac{\dot v_t}{2 v_t}(x - m_t)$."
                ),
            ),
            Step(
                lhs=Earlier("D-continuity-gaussian-path", {x: m_t + sp.sqrt(v_t) * z}, step=3),
                rhs=sp.Derivative(m_t + sp.sqrt(v_t) * z, t),
                reason=(
                    r"The flow of $u$ is the affine transport $x_t = m_t + \sqrt{v_t}\,z$: at "
                    r"$x = x_t$ the velocity of step 3 is $\dot m_t + \dot v_t z/(2\sqrt{v_t})$, "
                    r"the time derivative of $x_t$ at fixed standardised coordinate $z$, so $u$ "
                    r"pushes $\mathcal N(m_0, s_0^2)$ to $p_t$ for every $t$."
                ),
            ),
        ],
        symbols=(x, z, t, m0, m1, s0, s1),
        references=("lipman2023flow", "liu2023flow", "tong2024improving"),
        code=("genmath.analytic.GaussianMarginal.velocity",),
        tests=("tests/analytic/test_gaussian.py", "tests/families/test_flow_matching.py"),
        domain={t: (0.05, 0.95)},
    )
)


def _velocity_by_code(points):
    """`GaussianMarginal.velocity` on CondOT, for all samples in one call: a d-dimensional
    Gaussian with diagonal covariance (d = samples) decouples into d one-dimensional ones, and
    sample j is coordinate j of batch row j (at its own time)."""
    import torch

    from ..analytic import Gaussian
    from ._path_cases import shared_path

    means, stds, xs, times = points[m0], points[s0], points[x], points[t]
    law = Gaussian(means, torch.diag(stds**2))
    field = law.marginal(shared_path("CondOT()")).velocity(
        xs[:, None] + torch.zeros(len(xs), len(xs), dtype=xs.dtype), times
    )
    return torch.diagonal(field)


register(
    Binding(
        derivation="D-continuity-gaussian-path",
        code=("genmath.analytic.GaussianMarginal.velocity",),
        expression=velocity,
        # the code's source is the standard normal at t = 1
        where={m1: 0, s1: 1},
        evaluate=_velocity_by_code,
        domain={
            t: Uniform(0, 1, ends=True), x: Uniform(-5, 5), m0: Uniform(-3, 3),
            s0: LogUniform(0.05, 10),
        },
        samples=16,
        description=(
            "Gaussian(m_0, s_0^2).marginal(GaussianPath(CondOT())).velocity on [0, 1], ends "
            "included (m_1 = 0, s_1 = 1: the code's prior)"
        ),
    )
)
