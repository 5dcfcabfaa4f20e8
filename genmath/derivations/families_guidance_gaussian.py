"""Guidance on Gaussian data, in closed form: classifier guidance with the exact noisy
classifier, autoguidance, the CFG++ step, and the laws guided sampling is said to sample (the
tilted law) and does sample (the guided probability-flow ODE's output), with their gap. Bound
to `classifier_guidance`, `autoguidance`, `cfgpp_sample` and `gaussian_guidance_laws`."""

import sympy as sp

from ._engine import NUMERIC, Binding, Derivation, LogUniform, Step, Uniform
from ._registry import register
from .elbo_gap import _Integral

_lam = sp.Symbol("lambda", real=True)

# --- the exact Gaussian case: classifier guidance, autoguidance, the tilted and sampled laws ---
# One coordinate on a variance-preserving path in u = alpha_t^2 (sigma_t^2 = 1 - u); data
# N(mu, v), classifier p(c | x_0) = N(c; x_0, r), so p(x_0 | c) = N(m_c, a).
mu, cc, xx = sp.symbols("mu c x", real=True)
v_d, r_d = sp.symbols("v r", positive=True)
uu = sp.Symbol("u", positive=True)
w_s = sp.Symbol("w", nonnegative=True)
a_c = 1 / (1 / v_d + 1 / r_d)
m_c = a_c * (mu / v_d + cc / r_d)
_V_n = uu * v_d + 1 - uu  # Var x_t under p_t
_V_c = uu * a_c + 1 - uu  # Var x_t under p_t(. | c)
_post_var = v_d * (1 - uu) / _V_n  # Var(x_0 | x_t)
_post_mean = mu + sp.sqrt(uu) * v_d / _V_n * (xx - sp.sqrt(uu) * mu)  # E[x_0 | x_t] (Tweedie)
_log_marginal = -((xx - sp.sqrt(uu) * mu) ** 2) / (2 * _V_n) - sp.log(_V_n) / 2
_log_classifier = -((cc - _post_mean) ** 2) / (2 * (_post_var + r_d)) - sp.log(_post_var + r_d) / 2
GUIDED_SCORE = -(1 - w_s) * (xx - sp.sqrt(uu) * mu) / _V_n - w_s * (xx - sp.sqrt(uu) * m_c) / _V_c
_GAUSS = ("tests/families/test_guidance.py",)

register(
    Derivation(
        id="D-classifier-guidance",
        title="Classifier guidance with the exact noisy classifier is classifier-free guidance",
        statement=(
            r"Bayes' rule at time $t$, $\nabla\log p_t(x \mid c) = \nabla\log p_t(x) + "
            r"\nabla\log p_t(c \mid x)$, makes classifier guidance $\nabla\log p_t + w\,\nabla"
            r"\log p_t(c \mid \cdot)$ (Dhariwal & Nichol 2021) the classifier-free field "
            r"$(1 - w)\nabla\log p_t + w\nabla\log p_t(\cdot \mid c)$ (D-cfg-guided). On Gaussian "
            r"data $\mathcal N(\mu, v)$ with $p(c \mid x_0) = \mathcal N(c; x_0, r)$ the noisy "
            r"classifier is exact, $p_t(c \mid x_t) = \mathcal N(c; \mathbb E[x_0 \mid x_t], "
            r"\mathrm{Var}(x_0 \mid x_t) + r)$, and on a VP path ($u = \alpha_t^2$) the guided score "
            r"is $-(1-w)(x - \sqrt u\mu)/V_\varnothing - w(x - \sqrt u m_c)/V_c$, "
            r"$V_\varnothing = uv + 1 - u$, $V_c = ua + 1 - u$, $a = (1/v + 1/r)^{-1}$, "
            r"$m_c = a(\mu/v + c/r)$ — the closed form `classifier_guidance` and "
            r"`GaussianGuidanceLaws.guided_score` are held to."
        ),
        start=sp.Derivative(_log_marginal + w_s * _log_classifier, xx),
        steps=[
            Step(
                rhs=GUIDED_SCORE,
                reason=(
                    r"Differentiate; the classifier's gradient is $(c - \mathbb E[x_0 \mid x])"
                    r"\,\partial_x\mathbb E[x_0 \mid x]/(\mathrm{Var} + r)$, which with Tweedie's "
                    r"slope $\sqrt u v/V_\varnothing$ equals $\nabla\log p_t(x \mid c) - "
                    r"\nabla\log p_t(x)$ for the Gaussian $p_t(\cdot \mid c) = "
                    r"\mathcal N(\sqrt u m_c, V_c)$."
                ),
            )
        ],
        symbols=(mu, cc, xx, v_d, r_d, uu, w_s),
        references=("dhariwal2021diffusion", "ho2022classifier", "song2021score"),
        code=(
            "genmath.families.diffusion.classifier_guidance",
            "genmath.families.diffusion.GaussianGuidanceLaws.guided_score",
        ),
        tests=_GAUSS,
    )
)

_gauss_domain = {
    mu: Uniform(-2, 2),
    cc: Uniform(-2, 2),
    xx: Uniform(-3, 3),
    v_d: LogUniform(0.05, 20.0),
    r_d: LogUniform(0.05, 20.0),
    uu: Uniform(0.01, 0.99),
    w_s: Uniform(0.0, 8.0),
}


def _classifier_guidance_values(points):
    import torch

    from ..families.diffusion import classifier_guidance

    P = {s: points[s][:, None] for s in _gauss_domain}

    def score(x, t):
        return -(x - P[uu].sqrt() * P[mu]) / (P[uu] * P[v_d] + 1 - P[uu])

    def classifier(x, t):
        V = P[uu] * P[v_d] + 1 - P[uu]
        mean = P[mu] + P[uu].sqrt() * P[v_d] / V * (x - P[uu].sqrt() * P[mu])
        var = P[v_d] * (1 - P[uu]) / V + P[r_d]
        return torch.distributions.Normal(mean, var.sqrt()).log_prob(P[cc])[:, 0]

    out = []
    for j in range(P[xx].shape[0]):
        field = classifier_guidance(score, classifier, float(P[w_s][j, 0]))
        out.append(field(P[xx], 0.5)[j, 0])
    return torch.stack(out)


register(
    Binding(
        derivation="D-classifier-guidance",
        code=("genmath.families.diffusion.classifier_guidance",),
        expression=GUIDED_SCORE,
        evaluate=_classifier_guidance_values,
        domain=_gauss_domain,
        samples=12,
        description=(
            "classifier_guidance on the exact unconditional score and the exact noisy classifier "
            "log N(c; E[x0|x], Var(x0|x) + r), its gradient by autograd: the guided Gaussian score"
        ),
    )
)

_tt = sp.Symbol("t", positive=True)


def _vp_alpha_squared(time):
    """alpha_t^2 of VP() from the schedule's own sympy definition."""
    from ..core.schedules import VP

    alpha, _, _ = VP.definition(time, _lam, sp.Rational(1, 10), 20)
    return alpha**2


def _guided_score_values(points):
    import torch

    from ..core.path import GaussianPath
    from ..core.schedules import VP
    from ..families.diffusion import gaussian_guidance_laws

    path = GaussianPath(VP())
    out = []
    for j in range(points[xx].shape[0]):
        laws = gaussian_guidance_laws(
            points[mu][j : j + 1], points[v_d][j : j + 1], points[r_d][j : j + 1],
            points[cc][j : j + 1], float(points[w_s][j]),
        )
        out.append(laws.guided_score(points[xx][j : j + 1, None], points[_tt][j], path)[0, 0])
    return torch.stack(out)


register(
    Binding(
        derivation="D-classifier-guidance",
        code=("genmath.families.diffusion.GaussianGuidanceLaws.guided_score",),
        expression=GUIDED_SCORE,
        where={uu: _vp_alpha_squared(_tt)},
        evaluate=_guided_score_values,
        domain={**{k: v for k, v in _gauss_domain.items() if k is not uu}, _tt: Uniform(0.01, 0.99)},
        samples=12,
        description="GaussianGuidanceLaws.guided_score on GaussianPath(VP()): the guided Gaussian score, u = alpha_t^2",
    )
)


# --- D-autoguidance ------------------------------------------------------------------------
v_good, v_weak = sp.symbols("v_1 v_0", positive=True)


def _gaussian_score(variance):
    return -(xx - sp.sqrt(uu) * mu) / (uu * variance + 1 - uu)


AUTOGUIDED = -(xx - sp.sqrt(uu) * mu) * (
    (1 - w_s) / (uu * v_weak + 1 - uu) + w_s / (uu * v_good + 1 - uu)
)

register(
    Derivation(
        id="D-autoguidance",
        title="Autoguidance on Gaussian data: extrapolating from a weaker model sharpens the law",
        statement=(
            r"Autoguidance (Karras et al. 2024) combines the model $D_1$ with a weaker version "
            r"$D_0$ of itself, $D_0 + w(D_1 - D_0)$; like classifier-free guidance it commutes "
            r"with the parameterizations (D-cfg-guided). Take a model that is exact for data "
            r"$\mathcal N(\mu, v_1)$ and a weaker one that learned the broader $\mathcal N(\mu, "
            r"v_0)$, $v_0 > v_1$ (the paper's picture: the weak model's errors are the strong "
            r"one's, larger). On a VP path the autoguided score is $-(x - \sqrt u\mu)\big((1-w)"
            r"/V_0 + w/V_1\big)$, $V_k = uv_k + 1 - u$: for $w > 1$ a steeper field than either "
            r"model's, concentrating the samples where the strong model puts more mass than the "
            r"weak one — the closed form `autoguidance` is held to."
        ),
        start=_gaussian_score(v_weak) + w_s * (_gaussian_score(v_good) - _gaussian_score(v_weak)),
        steps=[Step(rhs=AUTOGUIDED, reason=r"Collect the common factor $-(x - \sqrt u\mu)$.")],
        symbols=(mu, xx, v_good, v_weak, uu, w_s),
        references=("karras2024guiding",),
        code=("genmath.families.diffusion.autoguidance",),
        tests=_GAUSS,
    )
)


def _autoguidance_values(points):
    import torch

    from ..families.diffusion import autoguidance

    P = {s: points[s][:, None] for s in (mu, xx, v_good, v_weak, uu, w_s)}

    def model(variance):
        return lambda x, t: -(x - P[uu].sqrt() * P[mu]) / (P[uu] * variance + 1 - P[uu])

    out = []
    for j in range(P[xx].shape[0]):
        field = autoguidance(model(P[v_good]), model(P[v_weak]), float(P[w_s][j, 0]))
        out.append(field(P[xx], 0.5)[j, 0])
    return torch.stack(out)


register(
    Binding(
        derivation="D-autoguidance",
        code=("genmath.families.diffusion.autoguidance",),
        expression=AUTOGUIDED,
        evaluate=_autoguidance_values,
        domain={
            mu: Uniform(-2, 2),
            xx: Uniform(-3, 3),
            v_good: LogUniform(0.05, 20.0),
            v_weak: LogUniform(0.05, 20.0),
            uu: Uniform(0.01, 0.99),
            w_s: Uniform(0.0, 8.0),
        },
        samples=12,
        description="autoguidance of two exact Gaussian scores: the autoguided score",
    )
)

# --- D-cfgpp-step --------------------------------------------------------------------------
at, st_, as_, ss_ = sp.symbols("alpha_t sigma_t alpha_s sigma_s", positive=True)
x0c, x0n, lam_pp = sp.symbols(r"\hat{x}_0^c \hat{x}_0^\varnothing lambda", real=True)
_x0_guided = x0n + lam_pp * (x0c - x0n)
_cfg_ddim = as_ * _x0_guided + ss_ * (xx - at * _x0_guided) / st_
CFGPP_STEP = as_ * _x0_guided + ss_ * (xx - at * x0n) / st_

register(
    Derivation(
        id="D-cfgpp-step",
        title="CFG++: renoising with the unconditional noise, and how it differs from CFG's DDIM step",
        statement=(
            r"CFG++ (Chung et al. 2024) takes the DDIM step from $t$ to $s$ with the guided "
            r"denoised estimate $\hat x_0^\lambda = \hat x_0^\varnothing + \lambda(\hat x_0^c - "
            r"\hat x_0^\varnothing)$ but the unconditional noise $\hat\varepsilon_\varnothing = "
            r"(x_t - \alpha_t\hat x_0^\varnothing)/\sigma_t$: $x_s = \alpha_s\hat x_0^\lambda + "
            r"\sigma_s\hat\varepsilon_\varnothing$. CFG's DDIM step renoises with $\hat"
            r"\varepsilon^\lambda$; the two differ by $\lambda\,\alpha_t\sigma_s/\sigma_t\,(\hat "
            r"x_0^c - \hat x_0^\varnothing)$, which vanishes only at $\lambda = 0$ and as $s \to 0$ "
            r"(where $\sigma_s \to 0$): CFG++ keeps the state on the unconditional noise level's "
            r"manifold. The step is what `cfgpp_sample` takes."
        ),
        start=CFGPP_STEP,
        steps=[
            Step(
                rhs=_cfg_ddim + lam_pp * at * ss_ / st_ * (x0c - x0n),
                reason=(
                    r"$\hat\varepsilon_\varnothing - \hat\varepsilon^\lambda = \alpha_t(\hat x_0^"
                    r"\lambda - \hat x_0^\varnothing)/\sigma_t = \lambda\alpha_t(\hat x_0^c - "
                    r"\hat x_0^\varnothing)/\sigma_t$."
                ),
            )
        ],
        symbols=(at, st_, as_, ss_, x0c, x0n, lam_pp, xx),
        references=("chung2024cfgpp", "song2021denoising"),
        code=("genmath.families.diffusion.cfgpp_sample",),
        tests=_GAUSS,
    )
)

_t_step, _ratio = sp.symbols("t_1 rho", positive=True)  # the step runs from t_1 to rho t_1


def _cfgpp_values(points):
    import torch

    from ..core.path import GaussianPath
    from ..core.schedules import CondOT
    from ..families.diffusion import cfgpp_sample

    path = GaussianPath(CondOT())
    conditional, unconditional = points[x0c][:, None], points[x0n][:, None]
    out = []
    for j in range(conditional.shape[0]):
        t1 = points[_t_step][j]
        grid = torch.stack([t1, points[_ratio][j] * t1])
        result = cfgpp_sample(
            lambda x, t, j=j: conditional[j : j + 1],
            lambda x, t, j=j: unconditional[j : j + 1],
            points[xx][j : j + 1, None],
            path,
            scale=float(points[lam_pp][j]),
            grid=grid,
            parameterization="x0",
        )
        out.append(result.x[0, 0])
    return torch.stack(out)


register(
    Binding(
        derivation="D-cfgpp-step",
        code=("genmath.families.diffusion.cfgpp_sample",),
        expression=CFGPP_STEP,
        where={at: 1 - _t_step, st_: _t_step, as_: 1 - _ratio * _t_step, ss_: _ratio * _t_step},
        evaluate=_cfgpp_values,
        domain={
            x0c: Uniform(-3, 3),
            x0n: Uniform(-3, 3),
            xx: Uniform(-3, 3),
            lam_pp: Uniform(0.0, 1.5),
            _t_step: Uniform(0.05, 0.99),
            _ratio: Uniform(0.0, 0.95),
        },
        samples=12,
        description="one cfgpp_sample step on GaussianPath(CondOT()) from t to rho t with constant x0 predictions",
    )
)


# --- D-guided-gaussian-law: what guided probability-flow sampling produces ------------------
SAMPLED_VARIANCE = _V_n ** (1 - w_s) * _V_c**w_s

register(
    Derivation(
        id="D-guided-gaussian-law",
        title="Guided probability-flow sampling of Gaussian data: the variance it produces",
        statement=(
            r"On a VP path in $u = \alpha_t^2$ the probability-flow ODE is $dx/du = (x + "
            r"s(x, u))/(2u)$ (its drift $\tfrac12 g^2$ over $du/dt$). With the guided score of "
            r"D-classifier-guidance, affine in $x$ with slope $-1/V_w$, $1/V_w = (1-w)/"
            r"V_\varnothing + w/V_c$, the variance of the state obeys $d\log\mathrm{Var}/du = "
            r"(1 - 1/V_w)/u$. Its solution from $\mathrm{Var} = 1$ at $u = 0$ (pure noise) is "
            r"the geometric interpolation $V_\varnothing(u)^{1-w}V_c(u)^w$, so at $u = 1$ "
            r"guided sampling draws variance $v_S = v^{1-w}a^w$ — not the tilted law's "
            r"(D-guided-tilted-law). `gaussian_guidance_laws`'s `sampled_variance` is held to it."
        ),
        start=sp.Derivative(sp.log(SAMPLED_VARIANCE), uu),
        steps=[
            Step(
                rhs=(1 - (1 - w_s) / _V_n - w_s / _V_c) / uu,
                reason=(
                    r"$\partial_u\log V_k = (v_k - 1)/V_k = (1 - 1/V_k)/u$, weighted by $1 - w$ "
                    r"and $w$: the variance equation of the linear ODE, $2\times$ its slope "
                    r"$(1 - 1/V_w)/(2u)$."
                ),
            )
        ],
        symbols=(v_d, r_d, uu, w_s),
        references=("ho2022classifier", "song2021score"),
        code=("genmath.families.diffusion.gaussian_guidance_laws",),
        tests=_GAUSS,
    )
)


def _laws(points):
    from ..families.diffusion import gaussian_guidance_laws

    def get(symbol, default=0.0):
        import torch

        return points[symbol] if symbol in points else torch.full_like(points[v_d], default)

    out = []
    for j in range(points[v_d].shape[0]):
        out.append(
            gaussian_guidance_laws(
                get(mu)[j : j + 1], points[v_d][j : j + 1], points[r_d][j : j + 1],
                get(cc, 1.0)[j : j + 1], float(points[w_s][j]),
            )
        )
    return out


def _sampled_variances(points):
    import torch

    return torch.stack([law.sampled_variance[0] for law in _laws(points)])


_law_domain = {v_d: LogUniform(0.05, 20.0), r_d: LogUniform(0.05, 20.0), w_s: Uniform(0.0, 8.0)}
register(
    Binding(
        derivation="D-guided-gaussian-law",
        code=("genmath.families.diffusion.gaussian_guidance_laws",),
        expression=SAMPLED_VARIANCE,
        where={uu: 1},
        evaluate=_sampled_variances,
        domain=_law_domain,
        samples=12,
        description="gaussian_guidance_laws(...).sampled_variance: v^(1-w) a^w",
    )
)

# the mean: m(u) = sqrt(u) M(u), M(u) = E(u)^-1 int_0^sqrt(u) h(s) ds, E the integrating factor
_s = sp.Symbol("s", positive=True)
_E = sp.sqrt(uu) * _V_n ** (-(1 - w_s) / 2) * _V_c ** (-w_s / 2)
_h = (
    (_V_n ** (-(1 - w_s) / 2) * _V_c ** (-w_s / 2) * ((1 - w_s) * mu / _V_n + w_s * m_c / _V_c))
    .subs(uu, _s**2)
)
SAMPLED_MEAN_SCALED = _Integral(_h, (_s, 0, sp.sqrt(uu))) / _E
_state_mean = sp.sqrt(uu) * SAMPLED_MEAN_SCALED

register(
    Derivation(
        id="D-guided-gaussian-mean",
        title="Guided probability-flow sampling of Gaussian data: the mean it produces",
        statement=(
            r"The mean $m(u)$ of the state follows the same ODE as the state, "
            r"$dm/du = (m + s_w(m, u))/(2u)$ (D-guided-gaussian-law). Write $m = \sqrt u\,M$: "
            r"$M' = \big((1-w)(\mu - M)/V_\varnothing + w(m_c - M)/V_c\big)/(2u)$, linear, with "
            r"integrating factor $E = \sqrt u\,V_\varnothing^{-(1-w)/2}V_c^{-w/2}$; the solution "
            r"that stays bounded as $u \to 0$ (the start at pure noise) is $M(u) = E(u)^{-1}"
            r"\int_0^{\sqrt u} h(s)\,ds$, $h(s) = V_\varnothing^{-(1-w)/2}V_c^{-w/2}\big((1-w)"
            r"\mu/V_\varnothing + w m_c/V_c\big)$ at $u = s^2$ ($u = s^2$ removes the "
            r"$u^{-1/2}$ of the integrand). At $w \in \{0, 1\}$ it is $\mu$ or $m_c$; otherwise "
            r"a one-dimensional integral, which `gaussian_guidance_laws` evaluates by graded "
            r"Gauss–Legendre quadrature and is held to at $u = 1$."
        ),
        start=sp.Derivative(_state_mean, uu) - (_state_mean + GUIDED_SCORE.subs(xx, _state_mean)) / (2 * uu),
        steps=[
            Step(
                rhs=sp.Integer(0),
                tag=NUMERIC,
                samples=6,
                reason=(
                    r"Leibniz's rule on the integral ($\partial_u\int_0^{\sqrt u} h = "
                    r"h(\sqrt u)/(2\sqrt u)$) and $E'/E = ((1-w)/V_\varnothing + w/V_c)/(2u)$: the "
                    r"ODE holds (checked by quadrature at random points)."
                ),
            )
        ],
        symbols=(mu, cc, v_d, r_d, uu, w_s),
        domain={
            mu: Uniform(-2, 2),
            cc: Uniform(-2, 2),
            v_d: LogUniform(0.1, 10.0),
            r_d: LogUniform(0.1, 10.0),
            uu: Uniform(0.05, 0.95),
            w_s: Uniform(0.0, 4.0),
        },
        references=("ho2022classifier",),
        code=("genmath.families.diffusion.gaussian_guidance_laws",),
        tests=_GAUSS,
    )
)


def _sampled_means(points):
    import torch

    return torch.stack([law.sampled_mean[0] for law in _laws(points)])


register(
    Binding(
        derivation="D-guided-gaussian-mean",
        code=("genmath.families.diffusion.gaussian_guidance_laws",),
        expression=SAMPLED_MEAN_SCALED,
        where={uu: 1},
        evaluate=_sampled_means,
        domain={mu: Uniform(-2, 2), cc: Uniform(-2, 2), **_law_domain},
        samples=8,
        tolerance=1e-9,
        description="gaussian_guidance_laws(...).sampled_mean: M(1), the quadrature against mpmath's",
    )
)

# --- D-guided-tilted-law: the tilted law, and its gap to the sampled one ---------------------
TILTED_VARIANCE = 1 / (1 / v_d + w_s / r_d)
TILTED_MEAN = TILTED_VARIANCE * (mu / v_d + w_s * cc / r_d)
_log_variance_ratio = sp.log(v_d ** (1 - w_s) * a_c**w_s / TILTED_VARIANCE)

register(
    Derivation(
        id="D-guided-tilted-law",
        title="The tilted law p(x) p(c|x)^w, and why guided sampling misses it",
        statement=(
            r"Guidance is read as sampling $p(x_0)\,p(c \mid x_0)^w$; for $\mathcal N(\mu, v)$ "
            r"data and $p(c \mid x_0) = \mathcal N(c; x_0, r)$ it is $\mathcal N(m_T, v_T)$, "
            r"$1/v_T = 1/v + w/r = (1-w)/v + w/a$ (a harmonic interpolation), $m_T = "
            r"v_T(\mu/v + wc/r)$. Guided sampling draws the geometric $v_S = v^{1-w}a^w$ "
            r"(D-guided-gaussian-law). $\log(v_S/v_T)$ vanishes at $w = 0$ and $w = 1$ and is "
            r"strictly concave in $w$ (its second derivative is $-1/(r/v + w)^2 < 0$), so it is "
            r"positive for $0 < w < 1$ and negative for $w > 1$: the gap $v_S - v_T$ is never zero "
            r"there — for $w > 1$ guided sampling is *narrower* than the tilted law it is said to "
            r"sample (Chidambaram et al. 2024 show the same in mixtures)."
        ),
        start=sp.Derivative(sp.log(sp.exp(-((xx - mu) ** 2) / (2 * v_d)) * sp.exp(-((cc - xx) ** 2) / (2 * r_d)) ** w_s), xx),
        steps=[
            Step(
                rhs=-(xx - TILTED_MEAN) / TILTED_VARIANCE,
                reason=r"The log-density is quadratic in $x$: complete the square.",
            ),
        ],
        symbols=(mu, cc, xx, v_d, r_d, w_s),
        references=("ho2022classifier", "dhariwal2021diffusion"),
        code=("genmath.families.diffusion.gaussian_guidance_laws",),
        tests=_GAUSS,
    )
)


register(
    Derivation(
        id="D-guided-law-gap",
        title="The gap between the sampled and the tilted Gaussian law is never zero for w outside {0, 1}",
        statement=(
            r"$\log(v_S/v_T) = (1-w)\log v + w\log a + \log(1/v + w/r)$ (D-guided-gaussian-law, "
            r"D-guided-tilted-law) is $0$ at $w = 0$ and at $w = 1$ (there $a^{-1} = 1/v + 1/r$) "
            r"and strictly concave in $w$: positive on $(0, 1)$, negative for $w > 1$. So guided "
            r"probability-flow sampling is wider than $p(x)p(c|x)^w$ for $0 < w < 1$ and narrower "
            r"for $w > 1$, for every $v, r > 0$."
        ),
        start=sp.Derivative(_log_variance_ratio, (w_s, 2)),
        steps=[
            Step(
                rhs=-1 / (r_d / v_d + w_s) ** 2,
                reason=(
                    r"$\log v_S$ is affine in $w$; $-\log v_T = \log(1/v + w/r)$ has second "
                    r"derivative $-(1/r)^2/(1/v + w/r)^2$."
                ),
            ),
        ],
        symbols=(v_d, r_d, w_s),
        references=("ho2022classifier",),
        code=("genmath.families.diffusion.gaussian_guidance_laws",),
        tests=_GAUSS,
    )
)


def _tilted(points):
    import torch

    laws = _laws(points)
    return (
        torch.stack([law.tilted_mean[0] for law in laws]),
        torch.stack([law.tilted_variance[0] for law in laws]),
    )


def _log_ratios(points):
    import torch

    return torch.stack([(law.sampled_variance[0] / law.tilted_variance[0]).log() for law in _laws(points)])


register(
    Binding(
        derivation="D-guided-tilted-law",
        code=("genmath.families.diffusion.gaussian_guidance_laws",),
        expression=(TILTED_MEAN, TILTED_VARIANCE),
        evaluate=_tilted,
        domain={mu: Uniform(-2, 2), cc: Uniform(-2, 2), **_law_domain},
        samples=12,
        description="gaussian_guidance_laws(...): the tilted mean and variance",
    )
)

register(
    Binding(
        derivation="D-guided-law-gap",
        code=("genmath.families.diffusion.gaussian_guidance_laws",),
        expression=_log_variance_ratio,
        evaluate=_log_ratios,
        domain=_law_domain,
        samples=12,
        description="log(sampled_variance / tilted_variance) of gaussian_guidance_laws",
    )
)
