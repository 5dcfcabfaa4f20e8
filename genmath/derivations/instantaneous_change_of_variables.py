"""The instantaneous change of variables $\\frac{d}{dt}\\log p_t(x_t) = -\\nabla\\cdot v$ for affine
velocity fields."""

import sympy as sp

from ._engine import Derivation, Step
from ._registry import register

t, r, u = sp.symbols("t r u", nonnegative=True)
z, m0 = sp.symbols("z m_0", real=True)
s0 = sp.Symbol("s_0", positive=True)
slope, offset = sp.Function("a", real=True), sp.Function("b", real=True)


def _log_normal(value, mean, var):
    return -sp.log(2 * sp.pi * var) / 2 - (value - mean) ** 2 / (2 * var)


# 1-D field v(x, t) = a(t) x + b(t); its flow from x_0 = m_0 + s_0 z is affine in z.
x_var = sp.Symbol("x", real=True)
_field_1d = slope(t) * x_var + offset(t)
_growth = sp.Integral(slope(r), (r, 0, t))  # ∫_0^t a
_mean_t = sp.exp(_growth) * (
    m0 + sp.Integral(sp.exp(-sp.Integral(slope(r), (r, 0, u))) * offset(u), (u, 0, t))
)
_std_t = s0 * sp.exp(_growth)
_trajectory = _mean_t + _std_t * z

# 2-D field v(x) = A x + c with a non-symmetric A (triangular, so e^{At} is closed form).
a11, a12, a22, c1, c2 = sp.symbols("a_11 a_12 a_22 c_1 c_2", real=True)
l11, l22 = sp.symbols("l_11 l_22", positive=True)
l21, z1, z2, y1, y2 = sp.symbols("l_21 z_1 z_2 y_1 y_2", real=True)
A = sp.Matrix([[a11, a12], [0, a22]])
_field_2d = A * sp.Matrix([y1, y2]) + sp.Matrix([c1, c2])
_flow = (A * t).exp()  # e^{At}: x_t - x_t^* = e^{At}(x_0 - x_0^*) about any trajectory x^*
L0 = sp.Matrix([[l11, 0], [l21, l22]])  # initial covariance L0 L0^T
_z = sp.Matrix([z1, z2])
_phi = sp.Matrix(2, 2, sp.symbols("Phi_11 Phi_12 Phi_21 Phi_22", real=True))  # any invertible
_generic_delta = _phi * L0 * _z  # x_t minus the mean trajectory
_generic_cov = _phi * L0 * L0.T * _phi.T


register(
    Derivation(
        id="D-instantaneous-cov",
        title="Instantaneous change of variables for affine velocity fields",
        statement=(
            r"If $x_t$ follows $\dot x = v(x, t)$ and $p_t$ is the density transported by the "
            r"flow, then $\frac{d}{dt}\log p_t(x_t) = -\nabla\cdot v(x_t, t)$ (Chen et al. "
            r"2018). Checked for $v = a(t)x + b(t)$ in 1-D with general $a$, $b$ and Gaussian "
            r"$p_0 = \mathcal N(m_0, s_0^2)$, and for $v = Ax + c$ in 2-D with a non-symmetric "
            r"$A$, where the answer is $-\operatorname{tr}A$. The general argument from the continuity "
            "equation is [D-instantaneous-change-of-variables](D-instantaneous-change-of-variables.md); "
            "here every step is checked, none cited."
        ),
        start=sp.Derivative(_trajectory, t),
        steps=[
            Step(
                rhs=_field_1d.subs(x_var, _trajectory),
                reason=(
                    r"The affine trajectory $x_t = m_t + s_t z$, with $m_t = e^{\int_0^t a}"
                    r"\big(m_0 + \int_0^t e^{-\int_0^u a}\,b(u)\,du\big)$ and "
                    r"$s_t = s_0 e^{\int_0^t a}$, solves $\dot x = a(t)x + b(t)$ from "
                    r"$x_0 = m_0 + s_0 z$; so $p_t = \mathcal N(m_t, s_t^2)$."
                ),
                method=lambda e: sp.expand(sp.powsimp(sp.expand(e))),
            ),
            Step(
                lhs=sp.Derivative(_log_normal(_trajectory, _mean_t, _std_t**2), t),
                rhs=-slope(t),
                reason=(
                    r"Along it, $\log p_t(x_t) = -z^2/2 - \log s_t - \frac12\log 2\pi$, whose "
                    r"time derivative is $-\dot s_t/s_t = -a(t)$."
                ),
                method=lambda e: sp.expand(sp.expand_log(sp.expand(e), force=True)),
            ),
            Step(
                rhs=-sp.Derivative(_field_1d, x_var),
                reason=r"which is minus the divergence $\partial_x v = a(t)$.",
            ),
            Step(
                lhs=sp.Derivative(_flow, t),
                rhs=A * _flow,
                reason=(
                    r"2-D: $e^{At}$ solves $\dot\Phi = A\Phi$, so deviations from a trajectory "
                    r"evolve as $\delta_t = e^{At}\delta_0$ and $p_t = \mathcal N(m_t, "
                    r"e^{At}\Sigma_0 e^{A^\top t})$ for Gaussian $p_0$."
                ),
                method=lambda e: sp.expand(sp.powsimp(sp.expand(e))),
            ),
            Step(
                lhs=(_generic_delta.T * _generic_cov.inv() * _generic_delta)[0, 0],
                rhs=(_z.T * _z)[0, 0],
                reason=(
                    r"Along the trajectory started at $m_0 + L_0 z$ the deviation is "
                    r"$\delta_t = \Phi_t L_0 z$ and $\Sigma_t = \Phi_t L_0 L_0^\top\Phi_t^\top$, so "
                    r"the quadratic form $\delta_t^\top\Sigma_t^{-1}\delta_t = z^\top z$ stays "
                    r"constant, for any invertible $\Phi_t$."
                ),
            ),
            Step(
                lhs=sp.Determinant(_flow),
                rhs=sp.exp(t * A.trace()),
                reason=(
                    r"Volume: $\det e^{At} = e^{t\operatorname{tr}A}$ (here by the triangular "
                    "form; Liouville's formula in general)."
                ),
                method=lambda e: sp.expand(sp.powsimp(sp.cancel(e.doit()))),
            ),
            Step(
                lhs=sp.Derivative(
                    -(_z.T * _z)[0, 0] / 2
                    - sp.log(sp.exp(t * A.trace()) ** 2 * (L0 * L0.T).det()) / 2
                    - sp.log(2 * sp.pi),
                    t,
                ),
                rhs=-(a11 + a22),
                reason=(
                    r"So $\log p_t(x_t) = -\frac12 z^\top z - \frac12\log\det\Sigma_t - \log 2\pi$ "
                    r"with $\det\Sigma_t = e^{2t\operatorname{tr}A}\det\Sigma_0$, and "
                    r"$\frac{d}{dt}\log p_t(x_t) = -\operatorname{tr}A$."
                ),
            ),
            Step(
                rhs=-_field_2d.jacobian([y1, y2]).trace(),
                reason=r"which is $-\nabla\cdot v$ (the Jacobian of $Ax + c$ is $A$).",
            ),
        ],
        symbols=(t, z, m0, s0, a11, a12, a22, c1, c2),
        references=("chen2018neural", "grathwohl2019ffjord"),
        code=("genmath.core.likelihood.ode_log_likelihood", "genmath.core.divergence.divergence"),
        tests=("tests/core/test_likelihood.py", "tests/core/test_divergence.py"),
    )
)
