"""Tweedie's formula for a Gaussian corruption, and its agreement with the Gaussian posterior
mean."""

import sympy as sp

from ._engine import NUMERIC, Derivation, Step, sound_rewrite
from ._registry import register
from .elbo_gap import _Integral, _merge_integrals

x = sp.Symbol("x", real=True)
y = sp.Symbol("x_0", real=True)  # the clean variable integrated out
mu = sp.Symbol("mu", real=True)
alpha, sigma, tau = sp.symbols("alpha sigma tau", positive=True)
p0 = sp.Function("p_0", positive=True)


def _normal_pdf(value, mean, var):
    return sp.exp(-((value - mean) ** 2) / (2 * var)) / sp.sqrt(2 * sp.pi * var)


_kernel = _normal_pdf(x, alpha * y, sigma**2)  # p(x_t = x | x_0 = y)


def _against_p0(weight):
    """$\\int p_0(x_0)\\, w(x_0)\\, \\mathcal N(x; \\alpha x_0, \\sigma^2)\\, dx_0$."""
    return _Integral(p0(y) * weight * _kernel, (y, -sp.oo, sp.oo))


_marginal = _against_p0(1)  # p_t(x)
_first_moment = _against_p0(y)  # p_t(x) E[x_0 | x_t = x]
P = sp.Symbol("P", positive=True)  # p_t(x), named for the algebra of step 4
M = sp.Symbol("M", real=True)  # p_t(x) E[x_0 | x]


@sound_rewrite(
    "Leibniz's rule: the integrands are Gaussian-weighted and smooth in x, so dominated convergence lets d/dx pass under the integral"
)
def _differentiate_under_integral(expr):
    """Leibniz's rule on our unevaluated integrals: d/dx ∫ f(x, x0) dx0 = ∫ ∂f/∂x dx0."""
    return expr.replace(
        lambda e: isinstance(e, sp.Derivative) and isinstance(e.expr, _Integral),
        lambda e: type(e.expr)(sp.diff(e.expr.function, *e.variables), *e.expr.limits),
    )


# Gaussian data x0 ~ N(mu, tau^2): p_t = N(alpha mu, alpha^2 tau^2 + sigma^2).
_var_t = alpha**2 * tau**2 + sigma**2
_posterior_mean = (mu / tau**2 + alpha * x / sigma**2) / (1 / tau**2 + alpha**2 / sigma**2)

register(
    Derivation(
        id="D-tweedie",
        title="Tweedie's formula for a Gaussian corruption",
        statement=(
            r"If $x_t = \alpha x_0 + \sigma\varepsilon$ with $\varepsilon \sim \mathcal N(0, 1)$ "
            r"independent of $x_0 \sim p_0$ (any density), then "
            r"$\mathbb E[x_0 \mid x_t = x] = \big(x + \sigma^2 \nabla_x \log p_t(x)\big)/\alpha$ "
            "(Efron 2011; Robbins). Steps 1–3 derive it for general $p_0$; steps 4–6 check that "
            r"for $x_0 \sim \mathcal N(\mu, \tau^2)$ it is the Gaussian posterior mean, "
            "precision-weighted."
        ),
        start=sp.Derivative(_marginal, x),
        steps=[
            Step(
                rhs=_against_p0((alpha * y - x) / sigma**2),
                reason=(
                    r"Differentiate under the integral sign (dominated convergence: the Gaussian "
                    r"kernel and its $x$-derivative are bounded); "
                    r"$\partial_x \mathcal N(x; \alpha x_0, \sigma^2) = "
                    r"-\frac{x - \alpha x_0}{\sigma^2}\mathcal N(x; \alpha x_0, \sigma^2)$."
                ),
                method=lambda e: _merge_integrals(_differentiate_under_integral(e)),
            ),
            Step(
                rhs=(alpha * _first_moment - x * _marginal) / sigma**2,
                reason="Linearity of the integral: $x$ and $\\sigma$ do not depend on $x_0$.",
                method=_merge_integrals,
            ),
            Step(
                lhs=(x + sigma**2 * ((alpha * M - x * P) / sigma**2) / P) / alpha,
                rhs=M / P,
                reason=(
                    r"Divide by $p_t(x) = P$ to get $\nabla\log p_t$, and write $M$ for "
                    r"$\int x_0\, p_0(x_0)\, \mathcal N(x; \alpha x_0, \sigma^2)\, dx_0$: "
                    r"$(x + \sigma^2\nabla\log p_t(x))/\alpha = M/P = \mathbb E[x_0 \mid x_t = x]$ "
                    "by Bayes' rule."
                ),
            ),
            Step(
                lhs=(x + sigma**2 * sp.Derivative(sp.log(_normal_pdf(x, alpha * mu, _var_t)), x))
                / alpha,
                rhs=mu + alpha * tau**2 * (x - alpha * mu) / _var_t,
                reason=(
                    r"Gaussian data: $p_t = \mathcal N(\alpha\mu, \alpha^2\tau^2 + \sigma^2)$, "
                    r"whose score is $-(x - \alpha\mu)/(\alpha^2\tau^2 + \sigma^2)$."
                ),
            ),
            Step(
                rhs=_posterior_mean,
                reason=(
                    "The conjugate-Gaussian posterior mean: prior precision $1/\\tau^2$ and "
                    r"likelihood precision $\alpha^2/\sigma^2$, each weighting its estimate of $x_0$."
                ),
            ),
            Step(
                lhs=_Integral(y * _normal_pdf(y, mu, tau**2) * _kernel, (y, -sp.oo, sp.oo))
                / _Integral(_normal_pdf(y, mu, tau**2) * _kernel, (y, -sp.oo, sp.oo)),
                rhs=_posterior_mean,
                reason=(
                    r"The same posterior mean computed as the ratio $M/P$ of step 3 by quadrature "
                    "(independent of the algebra above)."
                ),
                tag=NUMERIC,
                tolerance=1e-10,
                samples=3,
            ),
        ],
        symbols=(x, mu, alpha, sigma, tau),
        references=("efron2011tweedie", "vincent2011connection", "ho2020denoising"),
        code=(
            "genmath.core.score.tweedie",
            "genmath.core.path.GaussianPath.convert",
            "genmath.analytic.Gaussian.marginal",
        ),
        tests=("tests/core/test_score.py", "tests/analytic/test_gaussian.py"),
    )
)
