"""Denoising score matching equals explicit score matching of the noisy marginal plus a
constant (Gaussian case, any scale alpha of the data), bound to `genmath.core.score.denoising`."""

import sympy as sp

from ._chain import as_written
from ._engine import Binding, Derivation, LogUniform, Step, Uniform, sound_rewrite
from ._registry import register
from .elbo_gap import _Integral

z, e, w = sp.symbols("z epsilon w", real=True)  # standard-normal integration variables
a, b, mu, x = sp.symbols("a b mu x", real=True)  # model s(x) = a x + b; data mean
tau, sigma = sp.symbols("tau sigma", positive=True)  # data std, noise std


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


alpha = sp.Symbol("alpha", positive=True)  # the path's alpha_t at the time of the loss
_mean_noisy = alpha * mu  # x = alpha x0 + sigma eps ~ N(alpha mu, alpha^2 tau^2 + sigma^2)
_var_noisy = alpha**2 * tau**2 + sigma**2
_x_noisy = alpha * (mu + tau * z) + sigma * e  # x0 = mu + tau z
_x_marginal = _mean_noisy + sp.sqrt(_var_noisy) * w  # the same law, one standard normal
_true_score = -(_x_marginal - _mean_noisy) / _var_noisy  # score of p_t
DSM_INTEGRAND = (_model(_x_noisy) + e / sigma) ** 2 / 2  # the loss at one draw (x0, eps)
_dsm = _Integral(
    sp.Mul(_std_normal(z) * _std_normal(e), DSM_INTEGRAND, evaluate=False),
    (z, -sp.oo, sp.oo),
    (e, -sp.oo, sp.oo),
)
_esm = _Integral(_std_normal(w) * (_model(_x_marginal) - _true_score) ** 2 / 2, (w, -sp.oo, sp.oo))
_second_moment = (a * _mean_noisy + b) ** 2 + a**2 * _var_noisy  # E[(a x + b)^2]
_constant = (1 / sigma**2 - 1 / _var_noisy) / 2

register(
    Derivation(
        id="D-denoising-score-matching",
        title="Denoising score matching = explicit score matching of the noisy marginal + constant",
        statement=(
            r"For data $x_0 \sim \mathcal N(\mu, \tau^2)$, a noisy point "
            r"$x = \alpha x_0 + \sigma\varepsilon$ and a linear score model $s(x) = a x + b$, the "
            r"denoising objective $J_\mathrm{DSM} = \frac12\mathbb E\,|s(x) - \nabla_x\log "
            r"q(x\mid x_0)|^2$, with $\nabla_x\log q(x\mid x_0) = -\varepsilon/\sigma$, and the "
            r"explicit objective $J_\mathrm{ESM} = \frac12\mathbb E\,|s(x) - \nabla\log p_t(x)|^2$, "
            r"$p_t = \mathcal N(\alpha\mu, \alpha^2\tau^2 + \sigma^2)$, differ by "
            r"$\frac12(1/\sigma^2 - 1/(\alpha^2\tau^2 + \sigma^2))$, which does not depend on "
            r"$(a, b)$; both are minimised by the score of $p_t$ (Vincent 2011). In general the "
            r"cross terms agree because $\mathbb E_{x_0, x}[s(x)\cdot\nabla_x\log q(x\mid x_0)] = "
            r"\int s\cdot\nabla_x p_t = \mathbb E_{p_t}[s\cdot\nabla\log p_t]$; here the two "
            r"objectives are compared integral against integral. In $d$ dimensions the constant "
            r"is $d/(2\sigma^2) - \tfrac12\operatorname{tr} C_t^{-1}$, $C_t = \alpha^2\Sigma + "
            r"\sigma^2 I$. `score.denoising` is bound to the loss at a draw, for the score and "
            r"the $\varepsilon$ parameterizations, with and without a weighting."
        ),
        start=_dsm,
        steps=[
            Step(
                rhs=_second_moment / 2 + a + 1 / (2 * sigma**2),
                reason=(
                    r"Expand the square and take Gaussian moments: the cross term is "
                    r"$\mathbb E[(a x + b)\varepsilon]/\sigma = a$, the last "
                    r"$\mathbb E[\varepsilon^2]/(2\sigma^2)$."
                ),
                method=_moments,
            ),
            Step(
                rhs=_second_moment / 2 + a + 1 / (2 * _var_noisy) + _constant,
                reason="Add and subtract $1/(2(\\alpha^2\\tau^2 + \\sigma^2))$.",
            ),
            Step(
                rhs=_esm + _constant,
                reason=(
                    r"The explicit objective of $p_t$, with $x = \alpha\mu + "
                    r"\sqrt{\alpha^2\tau^2+\sigma^2}\,w$: its cross term is again $a$ and its last "
                    r"term $1/(2(\alpha^2\tau^2+\sigma^2))$ — DSM is ESM plus a constant."
                ),
                method=_moments,
            ),
            Step(
                rhs=_var_noisy / 2 * (a + 1 / _var_noisy) ** 2
                + (a * _mean_noisy + b) ** 2 / 2
                + _constant,
                reason="Back to the closed form, completing the square in $a$.",
                method=_moments,
            ),
            Step(
                rhs=_constant,
                relation=">=",
                reason=(
                    r"A sum of squares: the minimum is at $a = -1/(\alpha^2\tau^2 + \sigma^2)$, "
                    r"$b = -a\alpha\mu$, i.e. $s = \nabla\log p_t$, the same for both objectives."
                ),
                method=as_written,
            ),
        ],
        symbols=(a, b, mu, tau, sigma, alpha),
        references=("vincent2011connection", "hyvarinen2005estimation", "song2019generative"),
        code=("genmath.core.score.denoising", "genmath.core.score.explicit"),
        tests=("tests/core/test_score.py",),
    )
)

# --------------------------------------------------------------------------- bindings

_t = sp.Symbol("t", nonnegative=True)


def _denoising_by_code(schedule_name, parameterization, weighted):
    """`denoising(..., reduction="none")` on two coordinates, the path's noise preset to the
    point's: the first coordinate is the worked case, the second a model that is exactly the
    target (a zero term that a mean over coordinates would expose)."""

    def evaluate(points):
        import torch

        from ..core import schedules
        from ..core.score import denoising
        from ._doubles import preset_noise_path

        n = points[z].shape[0]
        x0 = torch.stack([points[mu] + points[tau] * points[z], torch.full((n,), 0.3)], 1)
        noise = torch.stack([points[e], torch.full((n,), -0.8)], 1).to(torch.float64)
        path = preset_noise_path(getattr(schedules, schedule_name)(), noise)
        t = points[_t]
        sigma_t, alpha_t = path.sigma(t), path.alpha(t)

        def model(xt, time):
            score = a_b(xt[:, 0])
            exact = -(xt[:, 1] - alpha_t * x0[:, 1]) / sigma_t**2  # = -eps / sigma
            pred = torch.stack([score, exact], 1)
            return pred if parameterization == "score" else -sigma_t[:, None] * pred

        def a_b(value):
            return points[a] * value + points[b]

        weighting = (lambda time: path.sigma(time) ** 2) if weighted else None
        value = denoising(model, x0.to(torch.float64), path, t, parameterization, weighting,
                          reduction="none")
        # the eps-loss is sigma^2 times the score loss; a weighting multiplies the loss by w(t)
        scale = (sigma_t**2 if parameterization == "eps" else 1.0) * (sigma_t**2 if weighted else 1.0)
        return value / scale

    return evaluate


def _register_denoising():
    from ..core.schedules import VP, CondOT

    definitions = {
        "CondOT": CondOT.definition(_t, sp.Symbol("lambda", real=True))[:2],
        "VP": VP.definition(_t, sp.Symbol("lambda", real=True), sp.Rational(1, 10), 20)[:2],
    }
    for schedule_name, parameterization, weighted in (
        ("CondOT", "score", False),
        ("CondOT", "eps", True),
        ("VP", "score", True),
        ("VP", "eps", False),
    ):
        alpha_t, sigma_t = definitions[schedule_name]
        register(
            Binding(
                derivation="D-denoising-score-matching",
                code=("genmath.core.score.denoising",),
                expression=DSM_INTEGRAND,
                where={alpha: alpha_t, sigma: sigma_t},
                evaluate=_denoising_by_code(schedule_name, parameterization, weighted),
                domain={
                    a: Uniform(-3, 3),
                    b: Uniform(-3, 3),
                    mu: Uniform(-2, 2),
                    tau: LogUniform(0.05, 5),
                    z: Uniform(-3, 3),
                    e: Uniform(-3, 3),
                    _t: Uniform(0.02, 0.98),
                },
                samples=16,
                description=(
                    f"denoising on {schedule_name}, {parameterization!r} parameterization"
                    + (", weighting sigma_t^2" if weighted else "")
                    + ": the loss at the draw (x0, eps)"
                ),
            )
        )


_register_denoising()
