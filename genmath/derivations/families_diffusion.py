"""Diffusion family: the DDPM bound and $L_\\mathrm{simple}$, DDIM's non-Markovian process,
the sub-VP SDE, EDM's loss weight, and why classifier-free guidance leaves the path.

The EDM preconditioning itself is D-edm-preconditioning (`edm_preconditioning.py`) and the
DDPM posterior D-ddpm-posterior (`ddpm_posterior.py`); they are cited here, not repeated.
"""

import sympy as sp

from ._engine import CITED, Check, Derivation, Step
from ._registry import register

# --- D-ddpm-bound-simple --------------------------------------------------------------------
# One coordinate of step i: alpha = 1 - beta_i, abar_s = abar_{i-1}, abar_t = abar_s * alpha.
alpha, abar_s = sp.symbols(r"alpha_i \bar{alpha}_{i-1}", positive=True)
x_t, x0, x0_hat, eps, eps_hat = sp.symbols(r"x_i x_0 \hat{x}_0 epsilon \hat{epsilon}", real=True)
beta = 1 - alpha
abar_t = abar_s * alpha
tilde = (1 - abar_s) / (1 - abar_t) * beta
snr_s = abar_s / (1 - abar_s)
snr_t = abar_t / (1 - abar_t)


def _posterior_mean(data):
    """D-ddpm-posterior's mean of q(x_{i-1} | x_i, x_0) with x_0 = data."""
    return (
        sp.sqrt(abar_s) * beta / (1 - abar_t) * data
        + sp.sqrt(alpha) * (1 - abar_s) / (1 - abar_t) * x_t
    )


def _gaussian_kl(m1, v1, m2, v2):
    return sp.log(sp.sqrt(v2) / sp.sqrt(v1)) + (v1 + (m1 - m2) ** 2) / (2 * v2) - sp.Rational(1, 2)


def _from_eps(e):
    return (x_t - sp.sqrt(1 - abar_t) * e) / sp.sqrt(abar_t)


_squared_x0 = (snr_s - snr_t) / 2 * (x0 - x0_hat) ** 2

register(
    Derivation(
        id="D-ddpm-bound-simple",
        title="DDPM: each step of the bound is a weighted denoising error; L_simple drops the weight",
        statement=(
            r"With reverse kernels $p_\theta(x_{i-1}\mid x_i) = \mathcal N(\tilde\mu_i(x_i, "
            r"\hat x_0), \tilde\beta_i)$ the per-step term of the discrete bound, "
            r"$L_{i-1} = \mathrm{KL}(q(x_{i-1}\mid x_i, x_0)\,\|\,p_\theta(x_{i-1}\mid x_i))$, is "
            r"$\tfrac12(\mathrm{SNR}_{i-1} - \mathrm{SNR}_i)\|x_0 - \hat x_0\|^2 = "
            r"\frac{\beta_i^2}{2\tilde\beta_i(1-\beta_i)(1-\bar\alpha_i)}\|\varepsilon - "
            r"\hat\varepsilon\|^2$ per coordinate, $\mathrm{SNR}_i = \bar\alpha_i/(1-\bar\alpha_i)$ "
            r"(Ho et al. 2020, eq. 12; Kingma et al. 2021). $L_\mathrm{simple} = \mathbb E\|\varepsilon "
            r"- \hat\varepsilon\|^2$ is the bound with these weights set to one."
        ),
        start=_gaussian_kl(_posterior_mean(x0), tilde, _posterior_mean(x0_hat), tilde),
        steps=[
            Step(
                rhs=(_posterior_mean(x0) - _posterior_mean(x0_hat)) ** 2 / (2 * tilde),
                reason=(
                    r"Two Gaussians with the same variance $\tilde\beta_i$ (D-kl-gaussian): only "
                    "the squared difference of the means is left."
                ),
            ),
            Step(
                rhs=_squared_x0,
                reason=(
                    r"The means differ only through $x_0$, by $\frac{\sqrt{\bar\alpha_{i-1}}\beta_i}"
                    r"{1-\bar\alpha_i}(x_0 - \hat x_0)$ (D-ddpm-posterior); its square over "
                    r"$2\tilde\beta_i$ is half the drop of the signal-to-noise ratio."
                ),
            ),
            Step(
                lhs=_squared_x0.subs({x0: _from_eps(eps), x0_hat: _from_eps(eps_hat)}),
                rhs=beta**2 / (2 * tilde * alpha * (1 - abar_t)) * (eps - eps_hat) ** 2,
                reason=(
                    r"In the $\varepsilon$-parameterization, $x_0 = (x_i - \sqrt{1-\bar\alpha_i}\,"
                    r"\varepsilon)/\sqrt{\bar\alpha_i}$: Ho et al.'s weight with $\sigma_i^2 = "
                    r"\tilde\beta_i$."
                ),
            ),
            Step(
                lhs=sp.Symbol(r"L_{\rm simple}"),
                rhs=sp.Symbol(r"L_{\rm simple}"),
                tag=CITED,
                theorem=(
                    "Ho et al. (2020), sec. 3.4: dropping the step weights (and the decoder and "
                    "prior terms) gives a reweighted bound that trains better; it is no longer "
                    "the bound itself"
                ),
                reference="ho2020denoising",
                reason=(
                    r"$L_\mathrm{simple}$ samples $i$ uniformly and regresses $\hat\varepsilon$ "
                    r"onto $\varepsilon$ with unit weight, whatever the step."
                ),
            ),
        ],
        symbols=(alpha, abar_s, x_t, x0, x0_hat, eps, eps_hat),
        references=("ho2020denoising", "kingma2021variational"),
        code=("genmath.families.diffusion.DDPM.elbo", "genmath.families.diffusion.DDPM.loss"),
        tests=("tests/families/test_diffusion.py",),
        domain={alpha: (0.05, 0.95), abar_s: (0.05, 0.95)},
    )
)

# --- D-ddim-marginals -----------------------------------------------------------------------
a_s, a_t, s_s, s_t = sp.symbols(r"alpha_s alpha_t sigma_s sigma_t", positive=True)
c = sp.Symbol("c", nonnegative=True)
h = sp.Symbol("h", positive=True)
_k = sp.sqrt(s_s**2 - c**2) / s_t  # DDIM's coefficient of (x_t - alpha_t x_0)
_eta_one = s_s**2 * (1 - (a_t**2 / s_t**2) / (a_s**2 / s_s**2))
_vp = {
    a_s: sp.sqrt(abar_s),
    a_t: sp.sqrt(abar_t),
    s_s: sp.sqrt(1 - abar_s),
    s_t: sp.sqrt(1 - abar_t),
}

register(
    Derivation(
        id="D-ddim-marginals",
        title="DDIM: a non-Markovian process with the path's marginals; eta = 1 is DDPM",
        statement=(
            r"For $s < t$ let $q_c(x_s\mid x_t, x_0) = \mathcal N\big(\alpha_s x_0 + "
            r"\sqrt{\sigma_s^2 - c^2}\,\frac{x_t - \alpha_t x_0}{\sigma_t},\ c^2\big)$. If "
            r"$x_t \mid x_0 \sim \mathcal N(\alpha_t x_0, \sigma_t^2)$ then $x_s \mid x_0 \sim "
            r"\mathcal N(\alpha_s x_0, \sigma_s^2)$ for every $c \in [0, \sigma_s]$: the marginals "
            r"of the Gaussian path, so the same denoiser serves every $c$ (Song, Meng & Ermon "
            r"2021). $c = \eta\,\sigma_s\sqrt{1 - e^{\lambda_t - \lambda_s}}$; $\eta = 1$ gives "
            r"DDPM's posterior (D-ddpm-posterior), $\eta = 0$ the deterministic DDIM step, and as "
            r"$h = \lambda_s - \lambda_t \to 0$, $c^2 \approx \eta^2 \sigma^2 h = \eta^2 g^2|dt|$: "
            r"the reverse-SDE member $\nu = \eta g$ (D-reverse-sde-marginals)."
        ),
        start=a_s * x0 + _k * (a_t * x0 - a_t * x0),
        steps=[
            Step(
                rhs=a_s * x0,
                reason=(
                    r"Mean: $\mathbb E[x_t - \alpha_t x_0 \mid x_0] = 0$, so "
                    r"$\mathbb E[x_s \mid x_0] = \alpha_s x_0$."
                ),
            ),
            Step(
                lhs=_k**2 * s_t**2 + c**2,
                rhs=s_s**2,
                reason=(
                    r"Variance: $\operatorname{Var}(x_s\mid x_0) = k^2\sigma_t^2 + c^2$ with "
                    r"$k = \sqrt{\sigma_s^2 - c^2}/\sigma_t$ — the path's $\sigma_s^2$, whatever "
                    r"$c$."
                ),
            ),
            Step(
                lhs=_eta_one.subs(_vp),
                rhs=tilde,
                reason=(
                    r"$\eta = 1$ on a VP path ($\alpha^2 = \bar\alpha$, $\sigma^2 = 1 - \bar\alpha$): "
                    r"$c^2 = \sigma_s^2(1 - e^{\lambda_t - \lambda_s})$ is DDPM's posterior "
                    r"variance $\tilde\beta_i$."
                ),
            ),
            Step(
                lhs=((s_s**2 - c**2) / s_t**2).subs(c**2, _eta_one).subs(_vp),
                rhs=alpha * (1 - abar_s) ** 2 / (1 - abar_t) ** 2,
                reason=(
                    r"...and the coefficient of $x_t$, squared, is that of DDPM's posterior mean, "
                    r"$\sqrt{\alpha_i}(1-\bar\alpha_{i-1})/(1-\bar\alpha_i)$ (both positive)."
                ),
            ),
            Step(
                lhs=_vp[a_s] - sp.sqrt(alpha) * (1 - abar_s) / (1 - abar_t) * _vp[a_t],
                rhs=sp.sqrt(abar_s) * beta / (1 - abar_t),
                reason=(
                    r"...and so is the coefficient of $x_0$, $\alpha_s - k\alpha_t = "
                    r"\sqrt{\bar\alpha_{i-1}}\beta_i/(1-\bar\alpha_i)$ (with $k$ from the previous "
                    "step)."
                ),
            ),
            Step(
                lhs=sp.Limit(s_s**2 * (1 - sp.exp(-h)) / h, h, 0),
                rhs=s_s**2,
                reason=(
                    r"Small steps: with $h = \lambda_s - \lambda_t$, $c^2/\eta^2 = "
                    r"\sigma_s^2(1 - e^{-h}) = \sigma_s^2 h + O(h^2)$, and $\sigma^2 h = "
                    r"\sigma^2(-\dot\lambda)|dt| = g^2|dt|$ (D-gaussian-path-sde)."
                ),
            ),
        ],
        symbols=(a_s, a_t, s_s, s_t, c, x0, h, alpha, abar_s),
        references=("song2021denoising", "ho2020denoising"),
        code=("genmath.families.diffusion.ddim_sample",),
        tests=("tests/families/test_diffusion.py",),
        domain={alpha: (0.05, 0.95), abar_s: (0.05, 0.95)},
    )
)

# --- D-sub-vp-sde ---------------------------------------------------------------------------
t = sp.Symbol("t", nonnegative=True)
b_min, b_max = sp.symbols(r"beta_{min} beta_{max}", positive=True)
_B = b_min * t + (b_max - b_min) * t**2 / 2
_beta_t = sp.diff(_B, t)
_alpha_sub = sp.exp(-_B / 2)
_sigma_sub = 1 - sp.exp(-_B)
_f = sp.diff(_alpha_sub, t) / _alpha_sub

register(
    Derivation(
        id="D-sub-vp-sde",
        title="The sub-VP SDE is the forward SDE of the path alpha = exp(-B/2), sigma = 1 - exp(-B)",
        statement=(
            r"Song et al. (2021)'s sub-VP SDE $dx = -\tfrac12\beta_t x\,dt + \sqrt{\beta_t(1 - "
            r"e^{-2B_t})}\,dW$, $B_t = \int_0^t\beta$, has the marginals $\mathcal N(e^{-B_t/2}x_0, "
            r"(1-e^{-B_t})^2)$: it is the forward SDE (D-gaussian-path-sde) of the Gaussian path "
            r"$\alpha_t = e^{-B_t/2}$, $\sigma_t = 1 - e^{-B_t}$, whose noise is below VP's "
            r"$1 - e^{-B_t}$."
        ),
        start=_f,
        steps=[
            Step(rhs=-_beta_t / 2, reason=r"Drift: $f = \dot\alpha/\alpha = -\beta_t/2$, as VP."),
            Step(
                lhs=sp.diff(_sigma_sub**2, t) - 2 * _f * _sigma_sub**2,
                rhs=_beta_t * (1 - sp.exp(-2 * _B)),
                reason=(
                    r"Diffusion: $g^2 = \tfrac{d}{dt}\sigma^2 - 2f\sigma^2 = 2\beta e^{-B}(1-e^{-B}) "
                    r"+ \beta(1-e^{-B})^2 = \beta(1 - e^{-2B})$."
                ),
            ),
        ],
        symbols=(t, b_min, b_max),
        references=("song2021score",),
        code=("genmath.families.diffusion.sub_vp",),
        tests=("tests/families/test_diffusion.py",),
    )
)

# --- D-edm-loss-weight ----------------------------------------------------------------------
sigma, sigma_d = sp.symbols("sigma sigma_d", positive=True)
y, xn, F = sp.symbols("y x F", real=True)
_c_skip = sigma_d**2 / (sigma**2 + sigma_d**2)
_c_out = sigma * sigma_d / sp.sqrt(sigma**2 + sigma_d**2)
_weight = (sigma**2 + sigma_d**2) / (sigma * sigma_d) ** 2

register(
    Derivation(
        id="D-edm-loss-weight",
        title="EDM's loss weight makes the network's regression unweighted",
        statement=(
            r"With $D = c_{\rm skip}x + c_{\rm out}F$ (D-edm-preconditioning) and "
            r"$\lambda(\sigma) = (\sigma^2 + \sigma_d^2)/(\sigma\sigma_d)^2$, "
            r"$\lambda(\sigma)\,(D - y)^2 = (F - (y - c_{\rm skip}x)/c_{\rm out})^2$: every noise "
            r"level contributes a unit-variance target with unit weight (Karras et al. 2022, "
            r"sec. 5)."
        ),
        start=_weight * _c_out**2,
        steps=[
            Step(rhs=sp.Integer(1), reason=r"$\lambda = 1/c_{\rm out}^2$."),
            Step(
                lhs=_weight * (_c_skip * xn + _c_out * F - y) ** 2,
                rhs=(F - (y - _c_skip * xn) / _c_out) ** 2,
                reason=r"Factor $c_{\rm out}$ out of $D - y$; its square cancels $\lambda$.",
            ),
        ],
        symbols=(sigma, sigma_d, y, xn, F),
        references=("karras2022elucidating",),
        code=("genmath.families.diffusion.edm_loss_weight", "genmath.families.diffusion.EDM.loss"),
        tests=("tests/families/test_diffusion.py",),
    )
)

# --- D-cfg-not-a-marginal -------------------------------------------------------------------
u, w = sp.symbols("u w", positive=True)  # u = alpha_t^2 on a VP path
a_var, b_var, r = sp.symbols("a b r", positive=True)  # data variances


def _marginal_variance(data_variance):
    """1-D Gaussian data of this variance on a VP path: Var x_t = alpha^2 v + sigma^2."""
    return 1 + (data_variance - 1) * u


_guided_inverse_slope = 1 / ((1 - w) / _marginal_variance(b_var) + w / _marginal_variance(a_var))

register(
    Derivation(
        id="D-cfg-not-a-marginal",
        title="Classifier-free guidance: the guided score is not the score of a path marginal",
        statement=(
            r"Take 1-D Gaussian data, conditional $\mathcal N(m_c, a)$ and unconditional "
            r"$\mathcal N(m_\varnothing, b)$, on a VP path ($u = \alpha_t^2$, $\sigma_t^2 = 1 - u$). "
            r"The guided score $(1-w)\nabla\log p_t + w\nabla\log p_t(\cdot\mid c)$ is affine in "
            r"$x$ with slope $-1/V_w(u)$, $1/V_w = (1-w)/(1 + (b-1)u) + w/(1 + (a-1)u)$. The "
            r"score of the path marginal of any data whose marginals have affine scores — "
            r"Gaussian data $\mathcal N(m, r)$, by Cramér's theorem the only ones — has "
            r"$V(u) = 1 + (r-1)u$, affine in $u$. $V_w''(0) = 2w(w-1)(a-b)^2 \neq 0$ for "
            r"$w \notin \{0, 1\}$, $a \neq b$: no data distribution has the guided scores as its "
            r"path's scores, so guided sampling is not sampling a path (Ho & Salimans 2021 "
            r"sample $\propto p(x\mid c)^w p(x)^{1-w}$ only heuristically)."
        ),
        start=sp.diff(_marginal_variance(r), u, 2),
        steps=[
            Step(
                rhs=sp.Integer(0),
                reason=r"A path marginal's inverse slope $1 + (r-1)u$ is affine in $u = \alpha_t^2$.",
            ),
            Step(
                lhs=sp.diff(_guided_inverse_slope, u, 2).subs(u, 0),
                rhs=2 * w * (w - 1) * (a_var - b_var) ** 2,
                reason=(
                    r"The guided inverse slope curves: its second derivative at $u = 0$ vanishes "
                    r"only for $w \in \{0, 1\}$ or equal variances."
                ),
            ),
            Step(
                lhs=sp.Symbol("p_t"),
                rhs=sp.Symbol("p_t"),
                tag=CITED,
                theorem=(
                    "Cramér's decomposition theorem: if x_t = alpha x_0 + sigma eps is Gaussian "
                    "with eps Gaussian and independent of x_0, then x_0 is Gaussian"
                ),
                reference="cramer1936eigenschaft",
                reason=(
                    "A marginal with an affine score is Gaussian, so only Gaussian data could "
                    "match the guided scores, and the previous step rules those out."
                ),
            ),
        ],
        symbols=(u, w, a_var, b_var, r),
        references=("ho2022classifier",),
        code=("genmath.families.diffusion.guide",),
        tests=("tests/families/test_diffusion.py",),
    )
)


# --- exact-numeric check: DDIM(eta = 1) is DDPM's ancestral sampler --------------------------


def _ddim_eta_one_is_ddpm() -> float:
    import torch

    from genmath.analytic import GaussianMixture
    from genmath.core.path import GaussianPath
    from genmath.families import diffusion
    from genmath.schedules import VP

    with torch.no_grad():
        dtype = torch.float64
        data = GaussianMixture(
            torch.tensor([0.4, 0.6], dtype=dtype),
            torch.tensor([[-1.0, 0.5], [1.0, -0.5]], dtype=dtype),
            torch.stack([0.3 * torch.eye(2, dtype=dtype), 0.5 * torch.eye(2, dtype=dtype)]),
        )
        path = GaussianPath(VP())
        schedule = diffusion.DiscreteSchedule.from_times(
            path, torch.linspace(0, 1, 21, dtype=dtype)
        )
        model = data.marginal(path).eps
        x_T = torch.randn(16, 2, dtype=dtype, generator=torch.Generator().manual_seed(0))
        a = diffusion.DDPM(model, schedule).sample(x_T, generator=torch.Generator().manual_seed(1))
        b = diffusion.ddim_sample(
            model,
            x_T,
            path,
            grid=schedule.times.flip(0),
            eta=1.0,
            generator=torch.Generator().manual_seed(1),
        )
        return float((a.x - b.x).abs().max())


register(
    Check(
        id="C-ddim-eta-one-is-ddpm",
        title="DDIM with eta = 1 reproduces DDPM ancestral sampling (same noise draws)",
        function=_ddim_eta_one_is_ddpm,
        tolerance=1e-10,
        code=("genmath.families.diffusion.ddim_sample", "genmath.families.diffusion.DDPM.sample"),
        tests=("tests/families/test_diffusion.py",),
        derivation="D-ddim-marginals",
    )
)
