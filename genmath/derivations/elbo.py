"""ELBO topics: the IWAE bound, the score-function gradient, the continuous-time ELBO of a
Gaussian path, and the ELBO weighting of the standard diffusion losses."""

import sympy as sp

from ._engine import CITED, NUMERIC, Check, Derivation, Step
from ._registry import register
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
            "weight distribution, where $\\mathcal L_k$ is a finite sum, backs it numerically."
        ),
        start=sp.log((w1 + w2 + w3) / 3),
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
                reason=r"Two-point weights: $\mathcal L_1 \le \mathcal L_2$ (exact finite sums).",
                tag=NUMERIC,
                samples=10,
            ),
            Step(
                rhs=_iwae_two_point(3),
                relation="<=",
                reason=r"$\mathcal L_2 \le \mathcal L_3$.",
                tag=NUMERIC,
                samples=10,
            ),
            Step(
                rhs=sp.log((wa + wb) / 2),
                relation="<=",
                reason=r"$\mathcal L_k \le \log \mathbb E[w] = \log p(x)$ (Jensen).",
                tag=NUMERIC,
                samples=10,
            ),
        ],
        symbols=(w1, w2, w3, wa, wb),
        references=("burda2016importance",),
        code=("genmath.core.elbo.iwae", "genmath.core.elbo.elbo"),
        tests=("tests/core/test_elbo.py",),
    )
)

# --------------------------------------------------------------------------- REINFORCE

z = sp.Symbol("z", real=True)
theta = sp.Symbol("theta", real=True)
mu = sp.Symbol("mu", real=True)
s = sp.Symbol("s", positive=True)
baseline = sp.Symbol("b", real=True)
u = sp.Symbol("u", real=True)
q = sp.Function("q")(z, theta)
_pdf = sp.exp(-((z - mu) ** 2) / (2 * s**2)) / sp.sqrt(2 * sp.pi * s**2)
_dlogq_dmu = (z - mu) / s**2

register(
    Derivation(
        id="D-reinforce",
        title="The score-function (REINFORCE) gradient, unbiased with any baseline",
        statement=(
            r"$\nabla_\theta \mathbb E_{q_\theta}[f] = \mathbb E_{q_\theta}[(f - b)\,\nabla_\theta \log q_\theta]$ "
            r"for any $b$ that does not depend on the sample, because "
            r"$\mathbb E_q[\nabla \log q] = \nabla \int q = 0$ (Williams 1992). Worked case: "
            r"$q = \mathcal N(\mu, s^2)$, $f(z) = z^2$."
        ),
        start=sp.Derivative(q, theta),
        steps=[
            Step(
                rhs=q * sp.Derivative(sp.log(q), theta),
                reason=r"The log-derivative trick $\nabla q = q\,\nabla\log q$.",
            ),
            Step(
                lhs=sp.Derivative(E((mu + s * u) ** 2, u), mu),
                rhs=E((mu + s * u) ** 2 * _dlogq_dmu.subs(z, mu + s * u), u),
                reason=(
                    r"Worked case, $z = \mu + s u$: $\partial_\mu \mathbb E[z^2] = 2\mu = "
                    r"\mathbb E[z^2\, \partial_\mu \log q(z)]$ with $\partial_\mu \log q = (z - \mu)/s^2$."
                ),
            ),
            Step(
                lhs=E(baseline * _dlogq_dmu.subs(z, mu + s * u), u),
                rhs=sp.Integer(0),
                reason=r"A baseline adds $b\,\mathbb E[\partial_\mu \log q] = 0$: no bias.",
            ),
        ],
        symbols=(mu, s, baseline),
        references=("williams1992simple",),
        code=("genmath.core.elbo.score_function_surrogate", "genmath.core.elbo.reinforce_elbo"),
        tests=("tests/core/test_elbo.py",),
    )
)

# --------------------------------------------------------------------------- VDM ELBO

a_s, a_t, s_s, s_t = sp.symbols("alpha_s alpha_t sigma_s sigma_t", positive=True)
x, xh, e, eh = sp.symbols(r"x \hat{x} varepsilon \hat{\varepsilon}", real=True)
t_sym = sp.Symbol("t", real=True)
lam = sp.Function("lambda")(t_sym)
_var_ts = s_t**2 - (a_t / a_s) ** 2 * s_s**2  # variance of x_t given x_s
_mean_coef = a_s * _var_ts / s_t**2  # coefficient of x in the mean of q(x_s | x_t, x)
_post_var = _var_ts * s_s**2 / s_t**2  # variance of q(x_s | x_t, x)

register(
    Derivation(
        id="D-vdm-elbo",
        title="The continuous-time ELBO of a Gaussian path (variational diffusion models)",
        statement=(
            r"For a Gaussian path $x_t = \alpha_t x_0 + \sigma_t\varepsilon$ with log-SNR "
            r"$\lambda_t = \log(\alpha_t^2/\sigma_t^2)$ and a model "
            r"$p(x_s \mid x_t) = q(x_s \mid x_t, x_0 = \hat x_0(x_t))$, each step's KL is "
            r"$\tfrac12(e^{\lambda_s} - e^{\lambda_t})\|x_0 - \hat x_0\|^2$; as the steps shrink "
            r"the sum becomes $\tfrac12\int_{t_0}^{t_1} (-\lambda'_t)\, e^{\lambda_t}\, "
            r"\mathbb E\|x_0 - \hat x_0\|^2\,dt = \tfrac12\int_{\lambda_{t_1}}^{\lambda_{t_0}} "
            r"\mathbb E\|\varepsilon - \hat\varepsilon\|^2\,d\lambda$ (Kingma et al. 2021). With "
            r"prior $\mathcal N(0, \sigma_{t_1}^2 I)$ and decoder "
            r"$\mathcal N(x_{t_0}/\alpha_{t_0}, \sigma_{t_0}^2/\alpha_{t_0}^2 I)$ the end terms are "
            r"$\tfrac12 e^{\lambda_{t_1}}\|x_0\|^2$ and $\tfrac d2(\log 2\pi + 1 - \lambda_{t_0})$. "
            "Shown per coordinate; $s < t$."
        ),
        start=a_s - (a_t / a_s) * s_s**2 / s_t**2 * a_t,
        steps=[
            Step(
                rhs=_mean_coef,
                reason=(
                    r"Gaussian conditioning of $x_s$ on $x_t$: the mean of $q(x_s \mid x_t, x_0)$ "
                    r"is $\alpha_s x_0 + \frac{(\alpha_t/\alpha_s)\sigma_s^2}{\sigma_t^2}(x_t - \alpha_t x_0)$, "
                    r"whose coefficient of $x_0$ is this."
                ),
            ),
            Step(
                lhs=s_s**2 - ((a_t / a_s) * s_s**2) ** 2 / s_t**2,
                rhs=_post_var,
                reason=r"Its variance: $\sigma_s^2 - \mathrm{Cov}(x_s, x_t)^2/\sigma_t^2$.",
            ),
            Step(
                lhs=(_mean_coef * (x - xh)) ** 2 / (2 * _post_var),
                rhs=half * (a_s**2 / s_s**2 - a_t**2 / s_t**2) * (x - xh) ** 2,
                reason=(
                    r"KL between Gaussians of equal variance (D-kl-gaussian) whose means differ by "
                    r"the $x_0$ coefficient times $x_0 - \hat x_0$: "
                    r"$\tfrac12(\mathrm{SNR}_s - \mathrm{SNR}_t)(x_0 - \hat x_0)^2$."
                ),
            ),
            Step(
                lhs=-sp.Derivative(sp.exp(lam), t_sym),
                rhs=-sp.Derivative(lam, t_sym) * sp.exp(lam),
                reason=(
                    r"Summing the steps of a partition is a Riemann sum of "
                    r"$-\tfrac{d}{dt}e^{\lambda_t}$ (Kingma et al. 2021, eq. 17); by the chain rule "
                    r"this weight is $-\lambda'_t e^{\lambda_t}$."
                ),
            ),
            Step(
                lhs=a_t**2 / s_t**2 * ((x - s_t * e) / a_t - (x - s_t * eh) / a_t) ** 2,
                rhs=(e - eh) ** 2,
                reason=(
                    r"At fixed $x_t$, $x_0 = (x_t - \sigma\varepsilon)/\alpha$ for data and model "
                    r"alike, so $e^{\lambda}\|x_0 - \hat x_0\|^2 = \|\varepsilon - \hat\varepsilon\|^2$: in "
                    r"the variable $\lambda$ the integrand is the $\varepsilon$-error (here $x$ is $x_t$)."
                ),
            ),
            Step(
                lhs=sp.log(s_t / s_t) - half + (s_t**2 + (a_t * x) ** 2) / (2 * s_t**2),
                rhs=half * sp.exp(sp.log(a_t**2 / s_t**2)) * x**2,
                reason=(
                    r"Prior term: $\mathrm{KL}(\mathcal N(\alpha x_0, \sigma^2)\,\|\,\mathcal N(0, \sigma^2))$ "
                    r"by D-kl-gaussian is $\tfrac12 e^{\lambda}x_0^2$."
                ),
            ),
            Step(
                lhs=E(
                    sp.log(2 * sp.pi * s_s**2 / a_s**2) / 2
                    + (x - (a_s * x + s_s * e) / a_s) ** 2 / (2 * s_s**2 / a_s**2),
                    e,
                ),
                rhs=half * (sp.log(2 * sp.pi) + 1 - sp.log(a_s**2 / s_s**2)),
                reason=(
                    r"Reconstruction term: $\mathbb E_\varepsilon[-\log \mathcal N(x_0; x_{t_0}/\alpha, "
                    r"\sigma^2/\alpha^2)]$ with $x_{t_0} = \alpha x_0 + \sigma\varepsilon$."
                ),
                method=lambda expr: sp.expand_log(sp.expand(expr), force=True),
            ),
        ],
        symbols=(a_s, a_t, s_s, s_t, x, xh, e, eh),
        references=("kingma2021variational",),
        code=("genmath.core.elbo.gaussian_path_elbo",),
        tests=("tests/core/test_elbo.py",),
    )
)

# --------------------------------------------------------------------------- weightings

A = sp.Function("alpha")(t_sym)
Sg = sp.Function("sigma")(t_sym)
_lam_generic = 2 * sp.log(A) - 2 * sp.log(Sg)
tau = sp.Symbol("t", positive=True)
_condot_lam = 2 * sp.log((1 - tau) / tau)
_cos_a, _cos_s = sp.cos(sp.pi * tau / 2), sp.sin(sp.pi * tau / 2)
_cos_lam = 2 * sp.log(_cos_a / _cos_s)

register(
    Derivation(
        id="D-elbo-weighting",
        title="Each standard diffusion loss is the ELBO under a weighting w(λ)",
        statement=(
            r"At fixed $x_t$ each parameterization's error is $c_t$ times the $\varepsilon$-error, so "
            r"the loss $\mathbb E_{t\sim U}\|y - \hat y\|^2$ equals "
            r"$\tfrac12\mathbb E_t[w(\lambda_t)(-\lambda'_t)\|\varepsilon - \hat\varepsilon\|^2]$ with "
            r"$w = 2c_t^2/(-\lambda'_t)$; the ELBO is $w \equiv 1$ (Kingma & Gao 2023). "
            r"$c_t$ is $1$ ($\varepsilon$), $-\sigma/\alpha$ ($x_0$), $-1/\sigma$ (score), "
            r"$(\alpha^2 + \sigma^2)/\alpha$ ($v$) and $-\tfrac12\sigma\lambda'_t$ (velocity). "
            r"Flow matching on the CondOT path weights the ELBO by $e^{-\lambda/2}$; $v$-prediction "
            r"on the cosine schedule by $\tfrac2\pi e^{-\lambda/2}$."
        ),
        start=sp.Derivative(Sg, t_sym) - sp.Derivative(A, t_sym) * Sg / A,
        steps=[
            Step(
                rhs=-Sg / 2 * sp.Derivative(_lam_generic, t_sym),
                reason=(
                    r"Velocity: $u - \hat u = \dot\alpha(x_0 - \hat x_0) + \dot\sigma(\varepsilon - \hat\varepsilon)$ "
                    r"with $x_0 - \hat x_0 = -\tfrac\sigma\alpha(\varepsilon - \hat\varepsilon)$ gives "
                    r"$c_t = \dot\sigma - \dot\alpha\sigma/\alpha = -\tfrac12\sigma\lambda'_t$."
                ),
            ),
            Step(
                lhs=A * 1 - Sg * (-Sg / A),
                rhs=(A**2 + Sg**2) / A,
                reason=r"$v = \alpha\varepsilon - \sigma x_0$: $c_t = \alpha + \sigma^2/\alpha$.",
            ),
            Step(
                lhs=2 * (tau / 2 * sp.diff(_condot_lam, tau)) ** 2 / -sp.diff(_condot_lam, tau),
                rhs=sp.exp(-_condot_lam / 2),
                reason=(
                    r"Flow matching on CondOT ($\alpha = 1 - t$, $\sigma = t$): "
                    r"$w = 2c_t^2/(-\lambda'_t) = e^{-\lambda/2}$."
                ),
            ),
            Step(
                lhs=2 * ((_cos_a**2 + _cos_s**2) / _cos_a) ** 2 / -sp.diff(_cos_lam, tau),
                rhs=2 / sp.pi * sp.exp(-_cos_lam / 2),
                reason=r"$v$-prediction on the cosine schedule: $w = \tfrac2\pi e^{-\lambda/2}$.",
                tag=NUMERIC,
                samples=8,
            ),
        ],
        symbols=(tau,),
        references=("kingma2023understanding", "lipman2023flow", "salimans2022progressive"),
        code=("genmath.core.elbo.elbo_weighting",),
        tests=("tests/core/test_elbo.py",),
        domain={tau: (0.05, 0.95)},
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
