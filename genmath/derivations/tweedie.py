"""Tweedie's formula for a Gaussian corruption, and its agreement with the Gaussian posterior
mean."""

import sympy as sp

from ._chain import Earlier
from ._engine import NUMERIC, Binding, Derivation, LogUniform, Step, Uniform, sound_rewrite
from ._path_cases import T, schedule_case, shared_path
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
P = sp.Symbol("P", positive=True)  # p_t(x), named for the algebra of step 3
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


@sound_rewrite("Leibniz's rule under the integral sign, then linearity of the integral")
def _differentiate_and_merge(expr):
    """`_differentiate_under_integral`, then `_merge_integrals`: both keep the value."""
    return _merge_integrals(_differentiate_under_integral(expr))


# Gaussian data x0 ~ N(mu, tau^2): p_t = N(alpha mu, alpha^2 tau^2 + sigma^2).
_var_t = alpha**2 * tau**2 + sigma**2
_posterior_mean = (mu / tau**2 + alpha * x / sigma**2) / (1 / tau**2 + alpha**2 / sigma**2)
_gaussian_p0 = sp.Lambda(y, _normal_pdf(y, mu, tau**2))

# Tweedie's right-hand side as the code computes it, (x + sigma^2 score)/alpha, for a general
# p_0 (the score d/dx p_t / p_t of step 2, integrals named M and P) and for Gaussian data (the
# score of p_t = N(alpha mu, alpha^2 tau^2 + sigma^2)); both are bound to `tweedie` below
TWEEDIE_GENERAL = (x + sigma**2 * ((alpha * M - x * P) / sigma**2) / P) / alpha
TWEEDIE_GAUSSIAN = (x + sigma**2 * sp.diff(sp.log(_normal_pdf(x, alpha * mu, _var_t)), x)) / alpha

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
                method=_differentiate_and_merge,
            ),
            Step(
                rhs=(alpha * _first_moment - x * _marginal) / sigma**2,
                reason="Linearity of the integral: $x$ and $\\sigma$ do not depend on $x_0$.",
                method=_merge_integrals,
            ),
            Step(
                lhs=TWEEDIE_GENERAL,
                rhs=M / P,
                reason=(
                    r"Divide by $p_t(x) = P$ to get $\nabla\log p_t$, and write $M$ for "
                    r"$\int x_0\, p_0(x_0)\, \mathcal N(x; \alpha x_0, \sigma^2)\, dx_0$: "
                    r"$(x + \sigma^2\nabla\log p_t(x))/\alpha = M/P = \mathbb E[x_0 \mid x_t = x]$ "
                    "by Bayes' rule."
                ),
            ),
            Step(
                lhs=TWEEDIE_GAUSSIAN,
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
                # M/P of step 3 for Gaussian data: the two integrals with p_0 = N(mu, tau^2)
                lhs=Earlier(
                    "D-tweedie",
                    {
                        M: _first_moment.replace(p0, _gaussian_p0),
                        P: _marginal.replace(p0, _gaussian_p0),
                    },
                    step=3,
                ),
                rhs=_posterior_mean,
                reason=(
                    r"The same posterior mean computed as the ratio $M/P$ of step 3 by quadrature "
                    "(independent of the algebra above)."
                ),
                tag=NUMERIC,
                tolerance=1e-10,
                samples=2,
            ),
        ],
        symbols=(x, mu, alpha, sigma, tau),
        references=("efron2011tweedie", "vincent2011connection", "ho2020denoising"),
        code=("genmath.core.score.tweedie",),
        tests=("tests/core/test_score.py", "tests/analytic/test_gaussian.py"),
    )
)


def _tweedie_general(points):
    """`tweedie` at per-sample (alpha, sigma), given the score (alpha M - x P)/(sigma^2 P) of
    step 2: a point x of a two-coordinate batch, the other coordinate a decoy the result must
    not mix in."""
    import torch

    from ..core.score import tweedie

    xs, a_ = points[x], points[alpha]
    # the result does not depend on sigma (it cancels: that is Tweedie's formula), so the
    # engine draws none; sigma spans five orders of magnitude, spread over the samples
    n = xs.shape[0]
    s_ = torch.logspace(-3, 2, n, dtype=torch.float64)[torch.randperm(n, generator=torch.Generator().manual_seed(0))]
    score = (a_ * points[M] - xs * points[P]) / (s_**2 * points[P])
    xt = torch.stack([xs, -2 * xs], 1)
    return tweedie(xt, torch.stack([score, score + 1], 1), a_, s_)[:, 0]


register(
    Binding(
        derivation="D-tweedie",
        code=("genmath.core.score.tweedie",),
        expression=TWEEDIE_GENERAL,
        evaluate=_tweedie_general,
        domain={
            x: Uniform(-5, 5), M: Uniform(-5, 5), P: LogUniform(1e-3, 10),
            alpha: LogUniform(1e-2, 1e2), sigma: LogUniform(1e-3, 1e2),
        },
        samples=16,
        description=(
            "tweedie(xt, score, alpha, sigma) for any data law: the score d/dx p_t / p_t of "
            "step 2, per-sample alpha and sigma over four orders of magnitude"
        ),
    )
)


def _tweedie_gaussian(label):
    def evaluate(points):

        from ..core.score import tweedie
        path = shared_path(label)
        times, xs, m, v = points[T], points[x], points[mu], points[tau] ** 2
        a_, s_ = path.alpha(times), path.sigma(times)
        # the score of p_t = N(alpha mu, alpha^2 tau^2 + sigma^2) at the code's alpha, sigma:
        # the expression puts in the schedule's sympy ones, so an error in either shows
        score = -(xs - a_ * m) / (a_**2 * v + s_**2)
        return tweedie(xs[:, None], score[:, None], a_, s_)[:, 0]

    return evaluate


for _label in ("VP()", "CondOT()", "VE()", "CosineVP()"):
    _case = schedule_case(_label)
    register(
        Binding(
            derivation="D-tweedie",
            code=("genmath.core.score.tweedie", "genmath.core.path.GaussianPath.alpha"),
            expression=TWEEDIE_GAUSSIAN,
            where=dict(zip((alpha, sigma), _case.at(T)[:2], strict=True)),
            evaluate=_tweedie_gaussian(_label),
            # alpha_t > 0 is required: CondOT's and the cosine's vanish at t = 1
            domain={
                T: Uniform(*_case.finite, ends=True), x: Uniform(-5, 5), mu: Uniform(-3, 3),
                tau: LogUniform(0.05, 10),
            },
            samples=12,
            description=(
                f"tweedie on GaussianPath({_label}) for N(mu, tau^2) data, t in "
                f"[{_case.finite[0]:g}, {_case.finite[1]:g}]"
            ),
        )
    )
