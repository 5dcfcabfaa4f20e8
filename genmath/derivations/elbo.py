"""ELBO topics: the IWAE bound, the score-function gradient, the continuous-time ELBO of a
Gaussian path, and the ELBO weighting of the standard diffusion losses; each bound to
`genmath.core.elbo` (and `genmath.families.vae`) over the domain the code accepts."""

import sympy as sp

from ._engine import CITED, NUMERIC, Check, Derivation, From, Step
from ._registry import register
from .denoising_score_matching import _moments, _std_normal
from .elbo_gap import _Integral
from .gaussian_kl import mu1 as _kl_mu1
from .gaussian_kl import mu2 as _kl_mu2
from .gaussian_kl import s1 as _kl_s1
from .gaussian_kl import s2 as _kl_s2
from .posterior import a as _a
from .posterior import alpha_s as _alpha_s
from .posterior import c_x0 as _c_x0
from .posterior import c_xt as _c_xt
from .posterior import nu as _nu
from .posterior import sigma_s as _sigma_s
from .posterior import variance as _posterior_variance
from .posterior import x0 as _x0
from .posterior import x_t as _x_t
from .score_matching import GaussianExpectation as E

half = sp.Rational(1, 2)

# --------------------------------------------------------------------------- IWAE

w1, w2, w3 = sp.symbols("w_1 w_2 w_3", positive=True)
wa, wb = sp.symbols("w_a w_b", positive=True)


def _iwae_two_point(k: int) -> sp.Expr:
    """E[log mean of k i.i.d. weights], each w_a or w_b with probability 1/2: exact."""
    return sum(
        sp.binomial(k, j) / sp.Integer(2) ** k * sp.log((j * wb + (k - j) * wa) / k)
        for j in range(k + 1)
    )


_iwae_start = sp.log((w1 + w2 + w3) / 3)

register(
    Derivation(
        id="D-iwae-bound",
        title="The IWAE bound lies above the ELBO, increases with k, and stays below log p(x)",
        statement=(
            r"With importance weights $w_i = p(x, z_i)/q(z_i \mid x)$, $z_i \sim q$ i.i.d., "
            r"$\mathcal L_k = \mathbb E[\log \frac1k\sum_{i\le k} w_i]$ satisfies "
            r"$\mathrm{ELBO} = \mathcal L_1 \le \mathcal L_k \le \mathcal L_{k+1} \le \log p(x)$ "
            r"(Burda et al. 2016, Theorem 1). The proof writes the mean of $k$ weights as the "
            r"average of the means over its subsets of size $k-1$ and applies Jensen; a two-point "
            r"weight distribution, where $\mathcal L_k$ is a finite sum, backs it numerically. "
            r"`genmath.iwae` computes $\log\frac1k\sum_i w_i$ (the start, bound at given weights) "
            r"and its expectation over the two-point law is $\mathcal L_k$ (bound by enumerating "
            "the $2^k$ equally likely draws)."
        ),
        start=_iwae_start,
        steps=[
            Step(
                rhs=sp.log(((w1 + w2) / 2 + (w1 + w3) / 2 + (w2 + w3) / 2) / 3),
                reason="The mean of $k = 3$ weights is the average of the means of its $k - 1 = 2$-subsets.",
            ),
            Step(
                rhs=(sp.log((w1 + w2) / 2) + sp.log((w1 + w3) / 2) + sp.log((w2 + w3) / 2)) / 3,
                relation=">=",
                reason=(
                    r"$\log$ is concave. Taking expectations, each subset mean has the law of a "
                    r"mean of $k - 1$ weights, so $\mathcal L_k \ge \mathcal L_{k-1}$."
                ),
                tag=CITED,
                theorem="Jensen's inequality (Burda et al. 2016, Theorem 1)",
                reference="burda2016importance",
            ),
            Step(
                lhs=_iwae_two_point(1),
                rhs=_iwae_two_point(2),
                relation="<=",
                reason=(
                    r"Two-point weights: $\mathcal L_1 = \mathrm{ELBO} \le \mathcal L_2$ (exact "
                    "finite sums; the left side is what `genmath.iwae` with $k = 1$ averages to)."
                ),
                tag=NUMERIC,
                samples=6,
            ),
            Step(
                rhs=_iwae_two_point(3),
                relation="<=",
                reason=r"$\mathcal L_2 \le \mathcal L_3$.",
                tag=NUMERIC,
                samples=6,
            ),
            Step(
                rhs=sp.log((wa + wb) / 2),
                relation="<=",
                reason=r"$\mathcal L_k \le \log \mathbb E[w] = \log p(x)$ (Jensen).",
                tag=NUMERIC,
                samples=6,
            ),
        ],
        symbols=(w1, w2, w3, wa, wb),
        references=("burda2016importance",),
        code=(
            "genmath.core.elbo.iwae",
            "genmath.families.vae.VAE.log_likelihood",
            "genmath.families.vae.IWAE.loss",
        ),
        tests=("tests/core/test_elbo.py", "tests/families/test_vae.py"),
    )
)

# --------------------------------------------------------------------------- REINFORCE

mu = sp.Symbol("mu", real=True)
s = sp.Symbol("s", positive=True)
baseline = sp.Symbol("b", real=True)
u, u_other = sp.symbols("u u_2", real=True)
z = sp.Symbol("z", real=True)  # a draw of q: held fixed under d/dmu (no reparameterization)
F, L = sp.symbols(r"\operatorname{sg}[f] \operatorname{sg}[\log\,q]", real=True)


def _log_q(value, mean):
    return -sp.log(2 * sp.pi * s**2) / 2 - (value - mean) ** 2 / (2 * s**2)


def _f(value):
    """The worked integrand: it depends on mu directly as well as through the draw."""
    return value**2 + mu * value


_draw = mu + s * u
_surrogate = _f(z) + (F - baseline) * (_log_q(z, mu) - L)
# d/dmu of the surrogate with the draw and the stopped values held fixed, then evaluated
_surrogate_gradient = sp.Subs(
    sp.Derivative(_surrogate, mu), (z, F, L), (_draw, _f(_draw), _log_q(_draw, mu))
)
_gradient_estimate = (_draw + (_f(_draw) - baseline) * u / s)  # one draw's gradient
_true_gradient = 4 * mu

register(
    Derivation(
        id="D-reinforce",
        title="The score-function (REINFORCE) gradient, unbiased with any baseline",
        statement=(
            r"For draws $z \sim q_\theta$ without a reparameterization, the surrogate "
            r"$f_\theta(z) + (\operatorname{sg}[f_\theta(z)] - b)\,(\log q_\theta(z) - "
            r"\operatorname{sg}[\log q_\theta(z)])$ has the value $f_\theta(z)$ and the gradient "
            r"$\nabla_\theta f_\theta(z) + (f_\theta(z) - b)\,\nabla_\theta\log q_\theta(z)$, "
            r"whose mean is $\nabla_\theta\mathbb E_{q_\theta}[f_\theta]$ for every baseline $b$ "
            r"that does not depend on the draw, because $\mathbb E_q[\nabla\log q] = \nabla\int q "
            r"= 0$ (Williams 1992). Derived here for $q = \mathcal N(\mu, s^2)$ and "
            r"$f_\mu(z) = z^2 + \mu z$ (which depends on $\mu$ directly too), differentiating "
            r"with the draw $z = \mu + su$ and the stopped values $\operatorname{sg}[\cdot]$ held "
            "fixed, then taking the mean over $u$; `score_function_surrogate`'s autograd "
            "gradient is bound to the per-draw gradient, for a given baseline, none, and the "
            "leave-one-out baseline."
        ),
        start=E(_surrogate_gradient, u),
        steps=[
            Step(
                rhs=E(_gradient_estimate, u),
                reason=(
                    r"Differentiate in $\mu$ with $z$, $\operatorname{sg}[f]$ and "
                    r"$\operatorname{sg}[\log q]$ fixed: $\partial_\mu f = z$ and "
                    r"$\partial_\mu\log q = (z - \mu)/s^2 = u/s$; the stopped values equal "
                    "$f(z)$ and $\\log q(z)$."
                ),
            ),
            Step(
                rhs=_true_gradient,
                reason=(
                    r"Gaussian moments: $\mathbb E[z] = \mu$, and "
                    r"$\mathbb E[(z^2 + \mu z - b)\,u]/s = (2\mu s + \mu s)/s = 3\mu$: the baseline "
                    r"drops out, since $\mathbb E[u] = 0$."
                ),
            ),
            Step(
                rhs=sp.Derivative(E(_f(_draw), u), mu),
                reason=(
                    r"which is $\partial_\mu \mathbb E_q[f_\mu] = \partial_\mu(2\mu^2 + s^2)$: the "
                    "estimator is unbiased."
                ),
            ),
        ],
        symbols=(mu, s, baseline, u),
        references=("williams1992simple",),
        code=("genmath.core.elbo.score_function_surrogate", "genmath.core.elbo.reinforce_elbo"),
        tests=("tests/core/test_elbo.py",),
    )
)

# --------------------------------------------------------------------------- VDM ELBO

alpha0, sigma0, alpha1, sigma1 = sp.symbols("alpha_0 sigma_0 alpha_1 sigma_1", positive=True)
eps = sp.Symbol("varepsilon", real=True)
x_hat = sp.Symbol(r"\hat{x}_0", real=True)
lam = sp.Symbol("lambda", real=True)
lam0, lam1 = sp.symbols("lambda_0 lambda_1", real=True)
t_var = sp.Symbol("t", nonnegative=True)
t0, t1 = sp.symbols("t_0 t_1", nonnegative=True)
delta0, delta1 = sp.symbols("delta_0 delta_1", real=True)
_alpha_t = _a * _alpha_s
_sigma_t_sq = _a**2 * _sigma_s**2 + _nu

_reconstruction = half * (sp.log(2 * sp.pi) + 1 - sp.log(alpha0**2 / sigma0**2))
_prior = half * alpha1**2 / sigma1**2 * _x0**2
_step_kl = half * (_alpha_s**2 / _sigma_s**2 - _alpha_t**2 / _sigma_t_sq) * (_x0 - x_hat) ** 2
_diffusion_in_lambda = sp.Integral(half * (delta0 + delta1 * lam) ** 2, (lam, lam1, lam0))
_diffusion_in_t = sp.Integral(half * (delta0 + delta1 * t_var) ** 2, (t_var, t0, t1))

register(
    Derivation(
        id="D-vdm-elbo",
        title="The continuous-time ELBO of a Gaussian path (variational diffusion models)",
        statement=(
            r"For a Gaussian path $x_t = \alpha_t x_0 + \sigma_t\varepsilon$ with log-SNR "
            r"$\lambda_t = \log(\alpha_t^2/\sigma_t^2)$, prior $\mathcal N(0, \sigma_{t_1}^2 I)$, "
            r"decoder $\mathcal N(x_{t_0}/\alpha_{t_0}, \sigma_{t_0}^2/\alpha_{t_0}^2 I)$ and a "
            r"model $p(x_s \mid x_t) = q(x_s \mid x_t, x_0 = \hat x_0(x_t))$, "
            r"$-\mathrm{ELBO}$ is the sum of three terms (per coordinate): the reconstruction "
            r"$\tfrac12(\log 2\pi + 1 - \lambda_{t_0})$, the prior "
            r"$\tfrac12 e^{\lambda_{t_1}}x_0^2$, and the sum of the per-step KLs "
            r"$\tfrac12(e^{\lambda_s} - e^{\lambda_t})(x_0 - \hat x_0)^2$, which as the steps "
            r"shrink becomes $\tfrac12\int_{t_0}^{t_1}(-\lambda'_t)e^{\lambda_t}\mathbb E"
            r"(x_0 - \hat x_0)^2\,dt = \tfrac12\int_{\lambda_{t_1}}^{\lambda_{t_0}}\mathbb E"
            r"(\varepsilon - \hat\varepsilon)^2\,d\lambda$, since $x_0 - \hat x_0 = -e^{-\lambda/2}"
            r"(\varepsilon - \hat\varepsilon)$ at fixed $x_t$ (Kingma et al. 2021, eq. 17). Both "
            "KL terms are D-kl-gaussian's. `gaussian_path_elbo` is bound term by term, its "
            r"diffusion estimate on models whose $\varepsilon$-error is a known polynomial in "
            r"$\lambda$ (or, for $t$-sampling, in $t$ per unit of $-\lambda'$), where the "
            "Gauss–Legendre rule is exact."
        ),
        start=_Integral(
            _std_normal(eps)
            * (sp.log(2 * sp.pi * sigma0**2 / alpha0**2) / 2 + eps**2 / 2),
            (eps, -sp.oo, sp.oo),
        ),
        steps=[
            Step(
                rhs=_reconstruction,
                reason=(
                    r"Reconstruction: $-\log\mathcal N(x_0; x_{t_0}/\alpha, \sigma^2/\alpha^2)$ with "
                    r"$x_{t_0} = \alpha x_0 + \sigma\varepsilon$ is $\tfrac12\log(2\pi\sigma^2/"
                    r"\alpha^2) + \varepsilon^2/2$; its mean over $\varepsilon$ uses "
                    r"$\mathbb E\varepsilon^2 = 1$."
                ),
                method=_moments,
            ),
            Step(
                lhs=From(
                    "D-kl-gaussian",
                    {_kl_mu1: alpha1 * _x0, _kl_mu2: 0, _kl_s1: sigma1, _kl_s2: sigma1},
                ),
                rhs=_prior,
                reason=(
                    r"Prior: $\mathrm{KL}(\mathcal N(\alpha_{t_1}x_0, \sigma_{t_1}^2)\,\|\,"
                    r"\mathcal N(0, \sigma_{t_1}^2))$ by D-kl-gaussian is $\tfrac12 e^{\lambda_{t_1}}"
                    r"x_0^2$."
                ),
            ),
            Step(
                lhs=From(
                    "D-kl-gaussian",
                    {
                        _kl_mu1: _c_x0 * _x0 + _c_xt * _x_t,
                        _kl_mu2: _c_x0 * x_hat + _c_xt * _x_t,
                        _kl_s1: sp.sqrt(_posterior_variance),
                        _kl_s2: sp.sqrt(_posterior_variance),
                    },
                ),
                rhs=_step_kl,
                reason=(
                    r"One step $s < t$: the KL (D-kl-gaussian) between the posterior "
                    r"$q(x_s \mid x_t, x_0)$ of D-gaussian-path-posterior and the model's "
                    r"$q(x_s \mid x_t, \hat x_0)$, which share their variance, is the squared "
                    r"difference of the means over twice the variance: "
                    r"$\tfrac12(\mathrm{SNR}_s - \mathrm{SNR}_t)(x_0 - \hat x_0)^2$ "
                    r"($\alpha_t = a\alpha_s$, $\sigma_t^2 = a^2\sigma_s^2 + \nu$)."
                ),
            ),
            Step(
                lhs=_diffusion_in_lambda,
                rhs=sp.integrate(half * (delta0 + delta1 * lam) ** 2, (lam, lam1, lam0)),
                reason=(
                    r"Summing the steps of a partition of $[t_0, t_1]$ and letting them shrink "
                    r"gives the diffusion term $\tfrac12\int \mathbb E(\varepsilon - "
                    r"\hat\varepsilon)^2\,d\lambda$ (Kingma et al. 2021, eq. 17; with "
                    r"$d\,\mathrm{SNR} = e^\lambda d\lambda$ and $x_0 - \hat x_0 = -e^{-\lambda/2}"
                    r"(\varepsilon - \hat\varepsilon)$). For a model whose "
                    r"$\varepsilon$-error is $\delta_0 + \delta_1\lambda$ it is this polynomial "
                    "integral: `gaussian_path_elbo`'s estimate in the variable $\\lambda$ is bound to it."
                ),
            ),
            Step(
                lhs=_diffusion_in_t,
                rhs=sp.integrate(half * (delta0 + delta1 * t_var) ** 2, (t_var, t0, t1)),
                reason=(
                    r"The same integral in the variable $t$, $\tfrac12\int(-\lambda'_t)\,"
                    r"\mathbb E(\varepsilon - \hat\varepsilon)^2\,dt$, for a model whose "
                    r"$\varepsilon$-error is $(\delta_0 + \delta_1 t)/\sqrt{-\lambda'_t}$ "
                    "(`sampling=\"t\"`)."
                ),
            ),
        ],
        symbols=(alpha0, sigma0, alpha1, sigma1, _x0, x_hat, delta0, delta1),
        references=("kingma2021variational",),
        code=("genmath.core.elbo.gaussian_path_elbo",),
        tests=("tests/core/test_elbo.py",),
    )
)

# --------------------------------------------------------------------------- weightings

A, S = sp.symbols("alpha sigma", positive=True)
dA, dS = sp.symbols(r"\dot{alpha} \dot{sigma}", real=True)
_minus_dlam = -(2 * dA / A - 2 * dS / S)
_LOSS_ORDER = ("eps", "x0", "score", "v", "velocity")
# c_t: the error of each parameterization at fixed x_t, in units of the eps-error
_coefficients = {
    "eps": sp.Integer(1),
    "x0": -S / A,
    "score": -1 / S,
    "v": A + S**2 / A,
    "velocity": dS - dA * S / A,
}
_weightings = sp.ImmutableMatrix([2 * _coefficients[k] ** 2 / _minus_dlam for k in _LOSS_ORDER])

register(
    Derivation(
        id="D-elbo-weighting",
        title="Each standard diffusion loss is the ELBO under a weighting w(λ)",
        statement=(
            r"At fixed $x_t$ each parameterization's error is $c_t$ times the $\varepsilon$-error, "
            r"so the loss $\mathbb E_{t\sim U}\|y - \hat y\|^2$ equals "
            r"$\tfrac12\mathbb E_t[w(\lambda_t)(-\lambda'_t)\|\varepsilon - \hat\varepsilon\|^2]$ with "
            r"$w = 2c_t^2/(-\lambda'_t)$; the ELBO is $w \equiv 1$ (Kingma & Gao 2023). "
            r"$c_t$ is $1$ ($\varepsilon$), $-\sigma/\alpha$ ($x_0$), $-1/\sigma$ (score), "
            r"$(\alpha^2 + \sigma^2)/\alpha$ ($v$) and $\dot\sigma - \dot\alpha\sigma/\alpha = "
            r"-\tfrac12\sigma\lambda'_t$ (velocity), read off the conversions of "
            r"D-parameterizations. So flow matching on the CondOT path weights the ELBO by "
            r"$e^{-\lambda/2}$ and $v$-prediction on the cosine schedule by "
            r"$\tfrac2\pi e^{-\lambda/2}$. Written for generic $\alpha, \sigma$ and their "
            "derivatives; bound to `elbo_weighting` on the CondOT, VP and cosine schedules."
        ),
        start=_weightings,
        steps=[
            Step(
                rhs=sp.ImmutableMatrix(
                    [
                        2 / _minus_dlam,
                        2 * S**2 / (A**2 * _minus_dlam),
                        2 / (S**2 * _minus_dlam),
                        2 * (A**2 + S**2) ** 2 / (A**2 * _minus_dlam),
                        S**2 * _minus_dlam / 2,
                    ]
                ),
                reason=(
                    r"With $-\lambda' = 2\dot\sigma/\sigma - 2\dot\alpha/\alpha$: the velocity's "
                    r"$c_t = \dot\sigma - \dot\alpha\sigma/\alpha = \tfrac\sigma2(-\lambda')$, so "
                    r"$2c_t^2/(-\lambda') = \tfrac12\sigma^2(-\lambda')$; the others are direct."
                ),
            ),
        ],
        symbols=(A, S, dA, dS),
        references=("kingma2023understanding", "lipman2023flow", "salimans2022progressive"),
        code=("genmath.core.elbo.elbo_weighting",),
        tests=("tests/core/test_elbo.py",),
    )
)


def _check_elbo_exact_posterior() -> float:
    """ELBO (Monte-Carlo KL) with the exact PPCA posterior against log p(x) by numpy."""
    import numpy as np
    import torch

    from ..analytic import PPCA
    from ..core.elbo import elbo

    g = torch.Generator().manual_seed(0)
    W = 1.5 * torch.randn(5, 2, generator=g, dtype=torch.float64)
    b = torch.randn(5, generator=g, dtype=torch.float64)
    ppca = PPCA(W, b, torch.tensor(0.6, dtype=torch.float64))
    x = ppca.sample(8, generator=g)
    value = elbo(x, ppca.posterior_distribution, ppca.likelihood, ppca.prior, 4, g, kl="mc")
    cov = W.numpy() @ W.numpy().T + 0.36 * np.eye(5)
    diff = x.numpy() - b.numpy()
    log_px = -0.5 * (
        np.einsum("bi,ij,bj->b", diff, np.linalg.inv(cov), diff)
        + np.linalg.slogdet(cov)[1]
        + 5 * np.log(2 * np.pi)
    )
    return float(np.abs(value.numpy() - log_px).max())


register(
    Check(
        id="C-elbo-exact-posterior",
        title="ELBO with the exact PPCA posterior equals log p(x)",
        function=_check_elbo_exact_posterior,
        tolerance=1e-10,
        code=("genmath.core.elbo.elbo",),
        tests=("tests/core/test_elbo.py",),
        derivation="D-iwae-bound",
    )
)

from . import _elbo_bindings  # noqa: E402,F401  (the bindings of the derivations above)
