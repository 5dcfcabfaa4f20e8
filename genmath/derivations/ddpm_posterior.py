"""The DDPM forward-process posterior $q(x_{t-1} \\mid x_t, x_0)$: its mean and variance."""

import sympy as sp

from ._engine import Derivation, Step
from ._registry import register

x_prev, x_t, x0, eps = sp.symbols("x_{t-1} x_t x_0 epsilon", real=True)
# alpha_t = 1 - beta_t and abar_{t-1} are in (0, 1); positivity is what the algebra needs.
alpha_t, abar_prev = sp.symbols(r"alpha_t \bar{alpha}_{t-1}", positive=True)
beta_t = 1 - alpha_t
abar_t = abar_prev * alpha_t


def _log_normal(value, mean, var):
    return -sp.log(2 * sp.pi * var) / 2 - (value - mean) ** 2 / (2 * var)


# log q(x_t | x_{t-1}) + log q(x_{t-1} | x_0): the posterior's log-density up to a constant in x_{t-1}
_log_joint = _log_normal(x_t, sp.sqrt(alpha_t) * x_prev, beta_t) + _log_normal(
    x_prev, sp.sqrt(abar_prev) * x0, 1 - abar_prev
)
_precision = alpha_t / beta_t + 1 / (1 - abar_prev)
_var_tilde = (1 - abar_prev) / (1 - abar_t) * beta_t
_mean_tilde = (
    sp.sqrt(abar_prev) * beta_t / (1 - abar_t) * x0
    + sp.sqrt(alpha_t) * (1 - abar_prev) / (1 - abar_t) * x_t
)

register(
    Derivation(
        id="D-ddpm-posterior",
        title="DDPM posterior q(x_{t-1} | x_t, x_0): mean and variance",
        statement=(
            r"With $q(x_t\mid x_{t-1}) = \mathcal N(\sqrt{\alpha_t}\,x_{t-1}, \beta_t)$, "
            r"$\alpha_t = 1 - \beta_t$, and $q(x_{t-1}\mid x_0) = \mathcal N(\sqrt{\bar\alpha_{t-1}}"
            r"\,x_0, 1 - \bar\alpha_{t-1})$, the posterior is Gaussian with variance "
            r"$\tilde\beta_t = \frac{1-\bar\alpha_{t-1}}{1-\bar\alpha_t}\beta_t$ and mean "
            r"$\tilde\mu_t = \frac{\sqrt{\bar\alpha_{t-1}}\beta_t}{1-\bar\alpha_t}x_0 + "
            r"\frac{\sqrt{\alpha_t}(1-\bar\alpha_{t-1})}{1-\bar\alpha_t}x_t$ "
            r"(Ho et al. 2020, eqs. 6–7), where $\bar\alpha_t = \bar\alpha_{t-1}\alpha_t$. "
            "Per coordinate; the same holds for isotropic vectors."
        ),
        start=-sp.Derivative(_log_joint, x_prev, 2),
        steps=[
            Step(
                rhs=_precision,
                reason=(
                    r"Bayes: $q(x_{t-1}\mid x_t, x_0) \propto q(x_t\mid x_{t-1})\,q(x_{t-1}\mid x_0)$ "
                    r"(Markov property), a quadratic in $x_{t-1}$ whose negative second derivative "
                    "is the posterior precision: the two precisions add."
                ),
            ),
            Step(
                rhs=1 / _var_tilde,
                reason=r"Over a common denominator, using $1 - \bar\alpha_t = 1 - \bar\alpha_{t-1}\alpha_t$.",
            ),
            Step(
                lhs=sp.Subs(sp.Derivative(_log_joint, x_prev), x_prev, 0) * _var_tilde,
                rhs=_mean_tilde,
                reason=(
                    r"For a Gaussian log-density, the slope at $x_{t-1} = 0$ is precision times "
                    r"mean, so the mean is that slope times $\tilde\beta_t$."
                ),
            ),
            Step(
                lhs=sp.Derivative(
                    _log_joint - _log_normal(x_prev, _mean_tilde, _var_tilde), x_prev
                ),
                rhs=sp.Integer(0),
                reason=(
                    r"Check of the whole density: the log-joint minus "
                    r"$\log\mathcal N(x_{t-1}; \tilde\mu_t, \tilde\beta_t)$ does not depend on "
                    r"$x_{t-1}$, so the posterior is exactly that Gaussian."
                ),
            ),
            Step(
                lhs=_mean_tilde.subs(x0, (x_t - sp.sqrt(1 - abar_t) * eps) / sp.sqrt(abar_t)),
                rhs=(x_t - beta_t / sp.sqrt(1 - abar_t) * eps) / sp.sqrt(alpha_t),
                reason=(
                    r"The $\varepsilon$-form used for sampling: substitute "
                    r"$x_0 = (x_t - \sqrt{1-\bar\alpha_t}\,\varepsilon)/\sqrt{\bar\alpha_t}$ "
                    "(Ho et al. 2020, eq. 11)."
                ),
            ),
        ],
        symbols=(x_prev, x_t, x0, eps, alpha_t, abar_prev),
        references=("ho2020denoising", "sohl2015deep"),
        code=("genmath.families.diffusion.DDPM",),
        tests=("tests/families/test_diffusion.py",),
        domain={alpha_t: (0.05, 0.95), abar_prev: (0.05, 0.95)},
    )
)
