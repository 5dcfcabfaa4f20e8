"""The optimal GAN discriminator $D^* = p/(p+q)$ and the value $C(G^*) = -\\log 4$."""

import sympy as sp

from ._engine import CITED, NUMERIC, Derivation, Step
from ._registry import register
from .elbo_gap import _Integral

D = sp.Symbol("D", positive=True)  # the discriminator's output at one point, in (0, 1)
p, q = sp.symbols("p q", positive=True)  # data and generator densities at that point
odds = sp.Symbol("k", positive=True)  # (1 - D)/D: maps D in (0, 1) onto (0, oo)
x = sp.Symbol("x", real=True)
mu_p, mu_q = sp.symbols("mu_p mu_q", real=True)
s_p, s_q = sp.symbols("s_p s_q", positive=True)

_pointwise = p * sp.log(D) + q * sp.log(1 - D)
_d_star = p / (p + q)


def _normal_pdf(value, mean, sd):
    return sp.exp(-((value - mean) ** 2) / (2 * sd**2)) / (sd * sp.sqrt(2 * sp.pi))


_p_x = _normal_pdf(x, mu_p, s_p)
_q_x = _normal_pdf(x, mu_q, s_q)


def _value_at_optimum(p_density, q_density):
    """$\\int p \\log D^* + q \\log(1 - D^*)$, the criterion at the optimal discriminator."""
    total = p_density + q_density
    return _Integral(
        p_density * sp.log(p_density / total) + q_density * sp.log(q_density / total),
        (x, -sp.oo, sp.oo),
    )


def _kl_to_mixture(a, b):
    return _Integral(a * sp.log(2 * a / (a + b)), (x, -sp.oo, sp.oo))


register(
    Derivation(
        id="D-optimal-discriminator",
        title="The optimal discriminator D* = p/(p+q) and C(G*) = -log 4",
        statement=(
            r"For a fixed generator with density $q$, the discriminator maximising "
            r"$\mathbb E_p[\log D] + \mathbb E_q[\log(1 - D)]$ is $D^* = p/(p+q)$ pointwise; the "
            r"criterion then equals $C(G) = -\log 4 + 2\,\mathrm{JSD}(p\,\|\,q)$, whose minimum "
            r"$-\log 4$ is reached at $q = p$ (Goodfellow et al. 2014, Prop. 1 and Thm. 1)."
        ),
        start=sp.Subs(sp.Derivative(_pointwise, D), D, _d_star),
        steps=[
            Step(
                rhs=sp.Integer(0),
                reason=(
                    r"The integrand $p\log D + q\log(1-D)$ is maximised pointwise: its derivative "
                    r"$p/D - q/(1-D)$ vanishes at $D^* = p/(p+q)$."
                ),
            ),
            Step(
                lhs=sp.Derivative(_pointwise, D, 2),
                rhs=sp.Integer(0),
                relation="<=",
                reason=(
                    r"The second derivative $-p/D^2 - q/(1-D)^2$ is negative: the stationary "
                    "point is the maximum on $(0, 1)$. (Sign decided after writing "
                    r"$D = 1/(1+k)$, $k = (1-D)/D > 0$.)"
                ),
                method=lambda e: sp.cancel(e.subs(D, 1 / (1 + odds))),
            ),
            Step(
                lhs=p * sp.log(_d_star) + q * sp.log(1 - _d_star),
                rhs=-sp.log(2) * (p + q)
                + p * sp.log(2 * p / (p + q))
                + q * sp.log(2 * q / (p + q)),
                reason=(
                    r"At $D^*$, add and subtract $\log 2$: the integrand becomes "
                    r"$-\log 2\,(p+q)$ plus the integrands of the two KLs to the mixture "
                    r"$(p+q)/2$."
                ),
                method=lambda e: sp.expand(sp.expand_log(e, force=True)),
            ),
            Step(
                lhs=_value_at_optimum(_p_x, _q_x),
                rhs=-sp.log(4) + _kl_to_mixture(_p_x, _q_x) + _kl_to_mixture(_q_x, _p_x),
                reason=(
                    r"Integrated with $\int p = \int q = 1$: $C(G) = -\log 4 + "
                    r"\mathrm{KL}(p\,\|\,\tfrac{p+q}{2}) + \mathrm{KL}(q\,\|\,\tfrac{p+q}{2}) = "
                    r"-\log 4 + 2\,\mathrm{JSD}(p\,\|\,q)$; checked by quadrature on two "
                    "1-D Gaussians."
                ),
                tag=NUMERIC,
                tolerance=1e-9,
                samples=2,
            ),
            Step(
                rhs=-sp.log(4),
                relation=">=",
                reason=r"$\mathrm{JSD} \ge 0$ (Gibbs' inequality), with equality iff $q = p$.",
                tag=CITED,
                theorem="Gibbs' inequality (non-negativity of the KL divergence)",
                reference="cover2006elements",
            ),
            Step(
                lhs=_value_at_optimum(
                    _p_x, _p_x.subs({mu_p: mu_q, s_p: s_q}).subs({mu_q: mu_p, s_q: s_p})
                ),
                rhs=-sp.log(4),
                reason=r"At $q = p$, $D^* = 1/2$ everywhere and $C(G^*) = -\log 4$ (quadrature).",
                tag=NUMERIC,
                tolerance=1e-9,
                samples=2,
            ),
        ],
        symbols=(D, p, q, x, mu_p, mu_q, s_p, s_q),
        references=("goodfellow2014generative", "nowozin2016fgan"),
        code=("genmath.families.gan",),
        tests=("tests/families/test_gan.py",),
        domain={D: (0.01, 0.99), s_p: (0.5, 2.0), s_q: (0.5, 2.0)},
    )
)
