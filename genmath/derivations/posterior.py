"""The posterior $q(x_s \\mid x_t, x_0)$ of a Gaussian path between two times, and DDPM's
$q(x_{t-1} \\mid x_t, x_0)$ as its special case.

The coefficients the code evaluates (`genmath.core.path.gaussian_posterior_coefficients`) are
generated from the sympy expressions `genmath.core.path._posterior_expressions` builds; the
derivation below imports those very expressions and proves them equal to Bayes' rule, and the
bindings evaluate the compiled torch code against them on the whole domain it accepts.
"""

import sympy as sp

from ..core.path import _posterior_expressions
from ._engine import Binding, Derivation, From, LogUniform, Step, Uniform
from ._gaussian import gaussian_identity, log_normal
from ._registry import register

x_s, x_t, x0 = sp.symbols("x_s x_t x_0", real=True)
# the path at the two times: alpha_t = a alpha_s, sigma_t^2 = a^2 sigma_s^2 + nu, where a and nu
# are the scale and variance of the transition q(x_t | x_s) = N(a x_s, nu) (positive: s < t)
alpha_s, sigma_s, a, nu = sp.symbols("alpha_s sigma_s a nu", positive=True)
alpha_t = a * alpha_s
sigma_t = sp.sqrt(a**2 * sigma_s**2 + nu)


# the code's expressions, with the path's scales at the two times put in
(_as, _ss, _at, _st, _r, _rbar), _coefficients = _posterior_expressions()
_r_value = alpha_t**2 * sigma_s**2 / (alpha_s**2 * sigma_t**2)  # e^{lambda_t - lambda_s}
_scales = {_as: alpha_s, _ss: sigma_s, _at: alpha_t, _st: sigma_t, _r: _r_value, _rbar: 1 - _r_value}
c_x0, c_xt, variance, d_xt, d_eps = (c.subs(_scales, simultaneous=True) for c in _coefficients)
_mean = c_x0 * x0 + c_xt * x_t
_eps = (x_t - alpha_t * x0) / sigma_t  # the noise that produced x_t from x_0
_mean_eps = d_xt * x_t + d_eps * _eps

_joint = log_normal(x_t, a * x_s, nu) + log_normal(x_s, alpha_s * x0, sigma_s**2)
_marginal = log_normal(x_t, alpha_t * x0, sigma_t**2)

register(
    Derivation(
        id="D-gaussian-path-posterior",
        title="Posterior of a Gaussian path between two times, q(x_s | x_t, x_0)",
        statement=(
            r"On a Gaussian path $x_t = \alpha_t x_0 + \sigma_t\varepsilon$ take $s < t$ and "
            r"$r = e^{\lambda_t - \lambda_s} = \alpha_t^2\sigma_s^2/(\alpha_s^2\sigma_t^2)$. Then "
            r"$q(x_s \mid x_t, x_0) = \mathcal N\big(\alpha_s(1 - r)\,x_0 + r\frac{\alpha_s}"
            r"{\alpha_t}x_t,\ \sigma_s^2(1 - r)\big)$, and in terms of the noise "
            r"$\varepsilon = (x_t - \alpha_t x_0)/\sigma_t$ the mean is "
            r"$\frac{\alpha_s}{\alpha_t}\big(x_t - \sigma_t(1 - r)\,\varepsilon\big)$. The "
            r"transition $q(x_t \mid x_s) = \mathcal N(a\,x_s, \nu)$ has $a = \alpha_t/\alpha_s$ and "
            r"$\nu = \sigma_t^2 - a^2\sigma_s^2 > 0$ (Kingma et al. 2021, appendix A; DDPM's "
            "posterior is the case of a variance-preserving path at adjacent steps). Per "
            "coordinate; the same holds for isotropic vectors."
        ),
        start=_joint,
        steps=[
            Step(
                rhs=log_normal(x_s, _mean, variance) + _marginal,
                reason=(
                    r"Bayes' rule: $q(x_t \mid x_s)\,q(x_s \mid x_0) = q(x_s \mid x_t, x_0)\,"
                    r"q(x_t \mid x_0)$ (the path is Markov), so the log-joint is the log-posterior "
                    r"plus the log-marginal $\log\mathcal N(x_t; \alpha_t x_0, \sigma_t^2)$. The "
                    "posterior's mean and variance here are the expressions the code is generated "
                    "from; the identity holds for every $x_s$, so they are the posterior's."
                ),
                method=gaussian_identity((x_s, x_t, x0)),
            ),
            Step(
                rhs=log_normal(x_s, _mean_eps, variance) + _marginal,
                reason=(
                    r"The same mean in the noise form the samplers use: substitute "
                    r"$x_0 = (x_t - \sigma_t\varepsilon)/\alpha_t$."
                ),
                method=gaussian_identity((x_s, x_t, x0)),
            ),
        ],
        symbols=(x_s, x_t, x0, alpha_s, sigma_s, a, nu),
        references=("kingma2021variational", "ho2020denoising", "song2021denoising"),
        code=(
            "genmath.core.path.gaussian_posterior_coefficients",
            "genmath.core.path.GaussianPath.posterior",
        ),
        tests=("tests/core/test_path.py",),
    )
)

# The code accepts any positive scales with lambda_t < lambda_s: drawn here through the
# transition's (a, nu), over scales from VP's tiny alpha near t = 1 to VE's sigma of 80.
_posterior_domain = {
    alpha_s: LogUniform(1e-3, 1e2),
    sigma_s: LogUniform(1e-4, 1e2),
    a: LogUniform(1e-3, 1e1),
    nu: LogUniform(1e-8, 1e4),
    x0: Uniform(-5, 5),
    x_t: Uniform(-5, 5),
}


def _coefficients_by_code(points):
    from ..core.path import gaussian_posterior_coefficients

    at = points[a] * points[alpha_s]
    st = (points[a] ** 2 * points[sigma_s] ** 2 + points[nu]).sqrt()
    c_x0, c_xt, var, d_xt, d_eps = gaussian_posterior_coefficients(
        points[alpha_s], points[sigma_s], at, st
    )
    noise = (points[x_t] - at * points[x0]) / st
    return c_x0, c_xt, var, d_xt * points[x_t] + d_eps * noise


register(
    Binding(
        derivation="D-gaussian-path-posterior",
        code=("genmath.core.path.gaussian_posterior_coefficients",),
        expression=(c_x0, c_xt, variance, _mean_eps),
        evaluate=_coefficients_by_code,
        domain=_posterior_domain,
        generated=True,
        description="the coefficients and the noise-form mean, compiled from the same sympy expressions",
    )
)


# `GaussianPath.posterior` composes the path's scales with the coefficients: bound on two
# paths at sampled times s < t, the scales taken from each schedule's own sympy definition
# (the expressions its code is compiled from).
_s, _u = sp.symbols("s u", positive=True)
_t = _s + (1 - _s) * _u  # any t in (s, 1)
_tau, _lam = sp.Symbol("tau", nonnegative=True), sp.Symbol("lambda", real=True)


def _scales_at(alpha, sigma):
    a_s, s_s = alpha.subs(_tau, _s), sigma.subs(_tau, _s)
    a_t, s_t = alpha.subs(_tau, _t), sigma.subs(_tau, _t)
    return {alpha_s: a_s, sigma_s: s_s, a: a_t / a_s, nu: s_t**2 - (a_t / a_s) ** 2 * s_s**2}


def _posterior_on(schedule_name):
    def evaluate(points):
        from ..core import schedules
        from ..core.path import GaussianPath

        path = GaussianPath(getattr(schedules, schedule_name)())
        s = points[_s]
        t = s + (1 - s) * points[_u]
        mean, var = path.posterior(points[x0][:, None], points[x_t][:, None], s, t)
        return mean[:, 0], var[:, 0]

    return evaluate


def _register_path_bindings():
    from ..core.schedules import VP, CondOT

    cases = {
        "CondOT": CondOT.definition(_tau, _lam)[:2],
        "VP": VP.definition(_tau, _lam, sp.Rational(1, 10), 20)[:2],
    }
    for name, (alpha, sigma) in cases.items():
        register(
            Binding(
                derivation="D-gaussian-path-posterior",
                code=("genmath.core.path.GaussianPath.posterior",),
                expression=(_mean, variance),
                where=_scales_at(alpha, sigma),
                evaluate=_posterior_on(name),
                domain={
                    _s: Uniform(1e-3, 0.99),
                    _u: Uniform(1e-3, 0.999),
                    x0: Uniform(-5, 5),
                    x_t: Uniform(-5, 5),
                },
                samples=24,
                description=f"mean and variance of GaussianPath({name}()).posterior at s < t",
            )
        )


_register_path_bindings()


# DDPM: q(x_{t-1} | x_t, x_0) on a variance-preserving path at adjacent steps.
x_prev = sp.Symbol("x_{t-1}", real=True)
eps = sp.Symbol("epsilon", real=True)
alpha_step, abar_prev = sp.symbols(r"alpha_t \bar{alpha}_{t-1}", positive=True)
beta = 1 - alpha_step
abar = abar_prev * alpha_step
_ddpm = {x_s: x_prev, alpha_s: sp.sqrt(abar_prev), sigma_s: sp.sqrt(1 - abar_prev),
         a: sp.sqrt(alpha_step), nu: beta}
_var_tilde = (1 - abar_prev) / (1 - abar) * beta
_mean_tilde = (
    sp.sqrt(abar_prev) * beta / (1 - abar) * x0
    + sp.sqrt(alpha_step) * (1 - abar_prev) / (1 - abar) * x_t
)
_eps_t = (x_t - sp.sqrt(abar) * x0) / sp.sqrt(1 - abar)
_mean_tilde_eps = (x_t - beta / sp.sqrt(1 - abar) * _eps_t) / sp.sqrt(alpha_step)
_ddpm_marginal = log_normal(x_t, sp.sqrt(abar) * x0, 1 - abar)

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
            r"(Ho et al. 2020, eqs. 6–7), $\bar\alpha_t = \bar\alpha_{t-1}\alpha_t$; in the "
            r"noise form, $\tilde\mu_t = (x_t - \beta_t\varepsilon/\sqrt{1-\bar\alpha_t})/"
            r"\sqrt{\alpha_t}$ (eq. 11). It is the Gaussian-path posterior "
            "D-gaussian-path-posterior at adjacent steps of a variance-preserving path."
        ),
        start=From("D-gaussian-path-posterior", _ddpm, step=1),
        steps=[
            Step(
                rhs=log_normal(x_prev, _mean_tilde, _var_tilde) + _ddpm_marginal,
                reason=(
                    r"Put $\alpha_s^2 = \bar\alpha_{t-1}$, $\sigma_s^2 = 1 - \bar\alpha_{t-1}$ and the "
                    r"transition $a = \sqrt{\alpha_t}$, $\nu = \beta_t$ into the general posterior: "
                    r"$r = e^{\lambda_t - \lambda_{t-1}}$ becomes "
                    r"$\alpha_t(1 - \bar\alpha_{t-1})/(1 - \bar\alpha_t)$, and the coefficients are "
                    "Ho et al.'s."
                ),
                method=gaussian_identity((x_prev, x_t, x0)),
            ),
            Step(
                rhs=log_normal(x_prev, _mean_tilde_eps, _var_tilde) + _ddpm_marginal,
                reason=(
                    r"The $\varepsilon$-form used for sampling: substitute "
                    r"$x_0 = (x_t - \sqrt{1-\bar\alpha_t}\,\varepsilon)/\sqrt{\bar\alpha_t}$ "
                    "(Ho et al. 2020, eq. 11)."
                ),
                method=gaussian_identity((x_prev, x_t, x0)),
            ),
        ],
        symbols=(x_prev, x_t, x0, alpha_step, abar_prev),
        references=("ho2020denoising", "sohl2015deep"),
        code=(
            "genmath.families.diffusion.DiscreteSchedule.posterior_coefficients",
            "genmath.families.diffusion.DDPM.reverse_mean",
        ),
        tests=("tests/families/test_diffusion.py",),
        domain={alpha_step: (0.05, 0.95), abar_prev: (0.05, 0.95)},
    )
)


def _ddpm_tables(points):
    """One two-step `DiscreteSchedule` per point, with betas (1 - abar_{t-1}, 1 - alpha_t):
    step 2 of it is the posterior at the sampled (alpha_t, abar_{t-1})."""
    import torch

    from ..families.diffusion import DDPM, DiscreteSchedule

    rows = []
    for alpha_j, abar_j, x0_j, xt_j in zip(
        points[alpha_step], points[abar_prev], points[x0], points[x_t], strict=True
    ):
        schedule = DiscreteSchedule.from_betas(torch.stack([1 - abar_j, 1 - alpha_j]))
        c_x0, c_xi, var, _, _ = schedule.posterior_coefficients()
        ddpm = DDPM(lambda x, t: torch.zeros_like(x), schedule)
        xt = xt_j.reshape(1, 1)
        noise = (xt - (abar_j * alpha_j).sqrt() * x0_j) / (1 - abar_j * alpha_j).sqrt()
        mean_eps = ddpm.reverse_mean(xt, 2, noise)[0, 0]
        rows.append(torch.stack([c_x0[1] * x0_j + c_xi[1] * xt_j, var[1], mean_eps]))
    return tuple(torch.stack(rows).T)


register(
    Binding(
        derivation="D-ddpm-posterior",
        code=(
            "genmath.families.diffusion.DiscreteSchedule.posterior_coefficients",
            "genmath.families.diffusion.DDPM.reverse_mean",
        ),
        expression=(_mean_tilde, _var_tilde, _mean_tilde_eps),
        evaluate=_ddpm_tables,
        domain={
            alpha_step: LogUniform(1e-5, 0.999),
            abar_prev: Uniform(1e-3, 0.999),
            x0: Uniform(-3, 3),
            x_t: Uniform(-3, 3),
        },
        samples=16,
        description="the posterior tables of a DiscreteSchedule and DDPM's reverse mean",
    )
)
