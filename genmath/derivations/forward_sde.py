"""The forward SDE with the marginals of a Gaussian path, its Fokker–Planck equation, and the
probability-flow ODE."""

import sympy as sp

from ._engine import Derivation, Step, sound_rewrite
from ._registry import register

x = sp.Symbol("x", real=True)
t, u = sp.symbols("t u", nonnegative=True)
mu = sp.Symbol("mu", real=True)
s = sp.Symbol("s", positive=True)  # data standard deviation
alpha = sp.Function("alpha", positive=True)(t)
sigma = sp.Function("sigma", positive=True)(t)
beta = sp.Function("beta", positive=True)
density_f = sp.Function("p", positive=True)


def _drift_coefficient(alpha_expr):
    """$f = \\dot\alpha/\alpha$."""
    return sp.Derivative(alpha_expr, t) / alpha_expr


def _squared_diffusion(alpha_expr, sigma_expr):
    """$g^2 = \frac{d\\sigma^2}{dt} - 2 f \\sigma^2$."""
    return sp.Derivative(sigma_expr**2, t) - 2 * _drift_coefficient(alpha_expr) * sigma_expr**2


f = _drift_coefficient(alpha)
g2 = _squared_diffusion(alpha, sigma)
_vp_alpha = sp.exp(-sp.Integral(beta(u), (u, 0, t)) / 2)
_vp_sigma = sp.sqrt(1 - _vp_alpha**2)

# Gaussian data N(mu, s^2) through x_t = alpha x0 + sigma eps: p_t = N(alpha mu, v_t).
mean_t = alpha * mu
var_t = alpha**2 * s**2 + sigma**2
p_t = sp.exp(-((x - mean_t) ** 2) / (2 * var_t)) / sp.sqrt(2 * sp.pi * var_t)
score_t = -(x - mean_t) / var_t
# E[x0 | x_t = x] and E[eps | x_t = x]: Gaussian conditioning.
x0_hat = mu + alpha * s**2 * (x - mean_t) / var_t
eps_hat = sigma * (x - mean_t) / var_t
marginal_velocity = sp.Derivative(alpha, t) * x0_hat + sp.Derivative(sigma, t) * eps_hat


@sound_rewrite(
    'p_t(x) > 0 (a Gaussian density), so the equation holds iff it holds divided by p_t'
)
def _divide_by_density(expr):
    """The equation carries the positive factor $p_t(x)$; compare what multiplies it."""
    return sp.cancel(sp.expand(sp.powsimp(sp.expand(sp.expand(expr.doit()) / p_t))))


_fokker_planck = (
    sp.Derivative(p_t, t) + sp.Derivative(f * x * p_t, x) - g2 / 2 * sp.Derivative(p_t, x, 2)
)

register(
    Derivation(
        id="D-forward-sde",
        title="Forward SDE with the marginals of a Gaussian path, and its Fokker–Planck equation",
        statement=(
            r"The linear SDE $dx = f(t)\,x\,dt + g(t)\,dW$ with $f = \dot\alpha/\alpha$ and "
            r"$g^2 = \frac{d\sigma^2}{dt} - 2f\sigma^2$ has the marginals of the path "
            r"$x_t = \alpha_t x_0 + \sigma_t\varepsilon$: it moves the mean as $\alpha_t$ does "
            "and the variance as the path's does, whatever the data variance, and the path "
            "density solves its Fokker–Planck equation (shown for data "
            r"$\mathcal N(\mu, s^2)$ with general $\alpha(t)$, $\sigma(t)$). For VP "
            r"($\alpha = e^{-\frac12\int_0^t\beta}$, $\sigma^2 = 1 - \alpha^2$) this is "
            r"$f = -\beta/2$, $g^2 = \beta$ (Song et al. 2021)."
        ),
        start=sp.Derivative(mean_t, t),
        steps=[
            Step(
                rhs=f * mean_t,
                reason=(
                    r"A linear SDE moves its mean by $\dot m = f m$; "
                    r"$f = \dot\alpha/\alpha$ reproduces $m_t = \alpha_t\mu$."
                ),
            ),
            Step(
                lhs=sp.Derivative(var_t, t),
                rhs=2 * f * var_t + g2,
                reason=(
                    r"Its variance obeys $\dot v = 2 f v + g^2$ (Itô); with the chosen $g^2$ the "
                    r"path's $v_t = \alpha_t^2 s^2 + \sigma_t^2$ solves it for every data variance "
                    r"$s^2$: the $s^2$ terms match through $f$ alone."
                ),
            ),
            Step(
                lhs=_fokker_planck,
                rhs=sp.Integer(0),
                reason=(
                    r"Fokker–Planck: $\partial_t p = -\partial_x(f x p) + \frac{g^2}{2}"
                    r"\partial_x^2 p$ holds for the path's Gaussian marginal $p_t = "
                    r"\mathcal N(\alpha_t\mu, \alpha_t^2 s^2 + \sigma_t^2)$."
                ),
                method=_divide_by_density,
            ),
            Step(
                lhs=g2,
                rhs=-(sigma**2) * sp.Derivative(2 * sp.log(alpha) - 2 * sp.log(sigma), t),
                reason=(
                    r"Equivalently $g^2 = -\sigma_t^2\,\dot\lambda_t$ with the log-SNR "
                    r"$\lambda = 2\log\alpha - 2\log\sigma$: "
                    r"$-\sigma^2\dot\lambda = 2\sigma\dot\sigma - 2\sigma^2\dot\alpha/\alpha$."
                ),
            ),
            Step(
                lhs=_squared_diffusion(_vp_alpha, _vp_sigma),
                rhs=beta(t),
                reason=(
                    r"VP: with $\alpha_t = e^{-\frac12\int_0^t\beta}$ and "
                    r"$\sigma_t^2 = 1 - \alpha_t^2$, $g^2 = \beta(t)$ (and $f = -\beta/2$, "
                    "next step)."
                ),
                method=lambda e: sp.expand(sp.powsimp(sp.expand(e))),
            ),
            Step(
                lhs=_drift_coefficient(_vp_alpha),
                rhs=-beta(t) / 2,
                reason=r"VP drift coefficient: $f = \frac{d}{dt}\log\alpha_t = -\beta(t)/2$.",
            ),
        ],
        symbols=(x, t, mu, s),
        references=("song2021score", "sarkka2019applied", "risken1996fokker"),
        code=(
            "genmath.core.path.GaussianPath.drift_coefficient",
            "genmath.core.path.GaussianPath.drift",
            "genmath.core.path.GaussianPath.diffusion",
            "genmath.schedules.Schedule.diffusion_squared",
        ),
        tests=("tests/core/test_path.py", "tests/core/test_dynamics.py"),
    )
)

_generic_p = density_f(x, t)

register(
    Derivation(
        id="D-probability-flow-ode",
        title="The probability-flow ODE of the forward SDE equals the marginal velocity",
        statement=(
            r"The Fokker–Planck equation of $dx = f x\,dt + g\,dW$ is a continuity equation with "
            r"velocity $f x - \frac{g^2}{2}\nabla\log p_t$, so the ODE $dx/dt = f x - "
            r"\frac{g^2}{2}\nabla\log p_t(x)$ has the same marginals (Song et al. 2021). For a "
            r"Gaussian path this velocity is the path's marginal velocity "
            r"$\mathbb E[\dot\alpha_t x_0 + \dot\sigma_t\varepsilon \mid x_t = x]$ "
            r"(shown for data $\mathcal N(\mu, s^2)$)."
        ),
        start=-sp.Derivative(f * x * _generic_p, x) + g2 / 2 * sp.Derivative(_generic_p, x, 2),
        steps=[
            Step(
                rhs=-sp.Derivative(
                    _generic_p * (f * x - g2 / 2 * sp.Derivative(sp.log(_generic_p), x)), x
                ),
                reason=(
                    r"For any positive density $p$: $\frac{g^2}{2}\partial_x^2 p = "
                    r"\partial_x\big(p\,\frac{g^2}{2}\partial_x\log p\big)$, so the right side of "
                    r"Fokker–Planck is $-\partial_x(p\,u)$ with $u = f x - \frac{g^2}{2}\partial_x"
                    r"\log p$."
                ),
            ),
            Step(
                lhs=f * x - g2 / 2 * sp.Derivative(sp.log(p_t), x),
                rhs=f * x - g2 / 2 * score_t,
                reason=r"Gaussian data: the score of $p_t$ is $-(x - \alpha_t\mu)/v_t$.",
            ),
            Step(
                rhs=marginal_velocity,
                reason=(
                    "It equals the marginal velocity "
                    r"$\dot\alpha_t\,\mathbb E[x_0\mid x] + \dot\sigma_t\,\mathbb E[\varepsilon"
                    r"\mid x]$, with the Gaussian conditional means "
                    r"$\mathbb E[x_0\mid x] = \mu + \alpha_t s^2(x - \alpha_t\mu)/v_t$ and "
                    r"$\mathbb E[\varepsilon\mid x] = \sigma_t(x - \alpha_t\mu)/v_t$."
                ),
            ),
        ],
        symbols=(x, t, mu, s),
        references=("song2021score", "lipman2023flow", "kingma2021variational"),
        code=(
            "genmath.core.likelihood.ode_log_likelihood",
            "genmath.core.path.GaussianPath.convert",
            "genmath.analytic.Gaussian.marginal",
        ),
        tests=("tests/core/test_dynamics.py", "tests/analytic/test_gaussian.py"),
    )
)
