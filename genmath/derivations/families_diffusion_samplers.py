"""Diffusion samplers and their SDEs: DDIM($\\eta$) keeps the path's marginals; the sub-VP SDE
and the score-SDE loss weighting. Classifier-free guidance is in ``families_guidance.py``.

DDIM's kernel is built on the Gaussian-path posterior D-gaussian-path-posterior (``posterior.py``):
its variance is $\\eta^2$ times the posterior's, in the same symbols, and the bindings run
`ddim_sample` on two paths at sampled times $s < t$, every parameterization, clipping on and
off.
"""

import sympy as sp

from ._chain import FromStep
from ._engine import NUMERIC, Binding, Check, Derivation, From, LogUniform, Step, Uniform
from ._gaussian import gaussian_identity, log_normal
from ._registry import register
from .posterior import _scales_at, a, alpha_s, nu, sigma_s, variance, x0, x_s, x_t

PARAMETERIZATIONS = ("x0", "eps", "score", "velocity", "v")

# --- D-ddim-marginals -----------------------------------------------------------------------
eta = sp.Symbol("eta", positive=True)
h = sp.Symbol("h", positive=True)
# the kernel in the path's scales at the two times and its standard deviation c (symbols: the
# Bayes identity is fast in them); the case eta of the posterior puts c^2 = eta^2 variance
alpha_t, sigma_t, c = sp.symbols("alpha_t sigma_t c", positive=True)
_transition = {alpha_t: a * alpha_s, sigma_t: sp.sqrt(a**2 * sigma_s**2 + nu)}
c2 = eta**2 * variance  # DDIM's c^2: eta^2 times the posterior variance
_k = sp.sqrt(sigma_s**2 - c**2) / sigma_t
ddim_mean = alpha_s * x0 + _k * (x_t - alpha_t * x0)
_kernel = log_normal(x_s, ddim_mean, c**2)
_path_marginal = log_normal(x_t, alpha_t * x0, sigma_t**2)
_back = log_normal(x_t, alpha_t * x0 + _k * sigma_t**2 * (x_s - alpha_s * x0) / sigma_s**2,
                   sigma_t**2 * c**2 / sigma_s**2)
_c2_in_h = FromStep("D-ddim-marginals", {nu: a**2 * sigma_s**2 * (sp.exp(h) - 1)}, step=3)

register(
    Derivation(
        id="D-ddim-marginals",
        title="DDIM(eta): a non-Markovian kernel with the path's marginals; eta = 1 is the posterior",
        statement=(
            r"For $s < t$ on a Gaussian path let $q_\eta(x_s\mid x_t, x_0) = \mathcal N\big("
            r"\alpha_s x_0 + \sqrt{\sigma_s^2 - c^2}\,\frac{x_t - \alpha_t x_0}{\sigma_t},\ c^2\big)$ "
            r"with $c^2 = \eta^2\sigma_s^2(1 - e^{\lambda_t - \lambda_s})$, $\eta^2$ times the "
            r"posterior variance of D-gaussian-path-posterior. Then for every $\eta \in (0, 1]$, "
            r"$q_\eta(x_s\mid x_t, x_0)\,q(x_t\mid x_0) = q(x_t\mid x_s, x_0)\,\mathcal N(x_s; "
            r"\alpha_s x_0, \sigma_s^2)$: integrating $x_t$ out leaves the path's marginal at $s$, "
            r"so the same denoiser serves every $\eta$ (Song, Meng & Ermon 2021); $\eta \to 0$ is "
            r"the deterministic DDIM step. At $\eta = 1$ the kernel is the posterior $q(x_s\mid x_t, "
            r"x_0)$ (DDPM's ancestral step). With $h = \lambda_s - \lambda_t$, "
            r"$\eta^2\sigma_s^2(h - h^2/2) \le c^2 \le \eta^2\sigma_s^2 h$: as the steps shrink "
            r"$c^2 \approx \eta^2\sigma^2 h = \eta^2 g^2|dt|$, the reverse-SDE member $\nu = \eta g$ "
            r"(D-reverse-sde-marginals). One coordinate; the path is $\alpha_t = a\alpha_s$, "
            r"$\sigma_t^2 = a^2\sigma_s^2 + \nu$ as in D-gaussian-path-posterior."
        ),
        start=_kernel + _path_marginal,
        steps=[
            Step(
                rhs=_back + log_normal(x_s, alpha_s * x0, sigma_s**2),
                reason=(
                    r"The pair $(x_s, x_t)$ given $x_0$ is jointly Gaussian: $x_s$ has mean "
                    r"$\alpha_s x_0$ and variance $k^2\sigma_t^2 + c^2 = \sigma_s^2$, "
                    r"$k = \sqrt{\sigma_s^2 - c^2}/\sigma_t$ (whatever $c$), and $x_t \mid x_s$ "
                    r"is Gaussian with the mean and variance of linear regression. The identity "
                    r"holds for every $x_s, x_t$: the log-densities agree."
                ),
                method=gaussian_identity((x_s, x_t, x0)),
            ),
            Step(
                lhs=From("D-gaussian-path-posterior", step=1),
                rhs=(_kernel + _path_marginal).subs({**_transition, c: sp.sqrt(variance)}),
                reason=(
                    r"$\eta = 1$: the posterior times the marginal of $x_t$ "
                    r"(D-gaussian-path-posterior) is DDIM's joint, so the kernel is the posterior."
                ),
                method=gaussian_identity((x_s, x_t, x0)),
            ),
            Step(
                lhs=c2,
                rhs=eta**2 * sigma_s**2 * nu / (a**2 * sigma_s**2 + nu),
                reason=(
                    r"$c^2 = \eta^2\sigma_s^2(1 - r)$ with $r = e^{\lambda_t - \lambda_s} = "
                    r"a^2\sigma_s^2/(a^2\sigma_s^2 + \nu)$."
                ),
            ),
            Step(
                lhs=_c2_in_h,
                rhs=eta**2 * sigma_s**2 * (1 - sp.exp(-h)),
                reason=(
                    r"In terms of $h = \lambda_s - \lambda_t$: $\nu = a^2\sigma_s^2(e^h - 1)$ makes "
                    r"$r = e^{-h}$."
                ),
            ),
            Step(
                rhs=eta**2 * sigma_s**2 * h,
                relation="<=",
                tag=NUMERIC,
                reason=r"$1 - e^{-h} \le h$ ...",
            ),
            Step(
                lhs=_c2_in_h,
                rhs=eta**2 * sigma_s**2 * (h - h**2 / 2),
                relation=">=",
                tag=NUMERIC,
                reason=(
                    r"... and $1 - e^{-h} \ge h - h^2/2$: $c^2 = \eta^2\sigma_s^2 h + O(h^2)$, and "
                    r"$\sigma^2 h = \sigma^2(-\dot\lambda)|dt| = g^2|dt|$ (D-forward-sde)."
                ),
            ),
        ],
        symbols=(x_s, x_t, x0, alpha_s, sigma_s, alpha_t, sigma_t, c, a, nu, eta, h),
        references=("song2021denoising", "ho2020denoising", "kingma2021variational"),
        code=("genmath.families.diffusion.ddim_sample",),
        tests=("tests/families/test_diffusion.py",),
        # c < sigma_s: the sqrt is real (the engine checks the rewrite at such points)
        domain={eta: (0.0, 1.0), h: LogUniform(1e-3, 5.0), c: (0.05, 0.5), sigma_s: (0.6, 3.0)},
    )
)

# ddim_sample at sampled s < t on two schedules, their scales taken from the schedules' own sympy
# definitions; one step, read at two seeds: x_s = mean + c z, z reconstructed from each seed.
_s, _u = sp.symbols("s u", positive=True)
_tau, _lam = sp.Symbol("tau", nonnegative=True), sp.Symbol("lambda", real=True)
_clipped = sp.Symbol("y", real=True)  # the raw x0 prediction before clipping


def _ddim_step(schedule_name, t_max, clip):
    def evaluate(points):
        import torch

        from ..core import schedules
        from ..core.path import GaussianPath
        from ..families.diffusion import ddim_sample

        path = GaussianPath(getattr(schedules, schedule_name)())
        means, variances = [], []
        raw = points[_clipped] if clip else points[x0]
        for j in range(raw.numel()):
            s = points[_s][j]
            t = s + (t_max - s) * points[_u][j]
            start = points[x_t][j].expand(1, 4)
            prediction = raw[j].expand(1, 4)
            name = PARAMETERIZATIONS[j % len(PARAMETERIZATIONS)]

            def model(x, time, prediction=prediction, name=name):
                return path.convert(prediction, x, time, "x0", name)

            states, draws = [], []
            for seed in (2 * j, 2 * j + 1):
                result = ddim_sample(
                    model, start, path, grid=torch.stack([t, s]), eta=float(points[eta][j]),
                    parameterization=name, clip_denoised=(-1.0, 1.0) if clip else None,
                    generator=torch.Generator().manual_seed(seed),
                )
                states.append(result.x)
                draws.append(torch.randn(start.shape, generator=torch.Generator().manual_seed(seed),
                                         dtype=start.dtype))
            dz, dx = draws[0] - draws[1], states[0] - states[1]
            scale = (dx * dz).sum() / (dz * dz).sum()
            means.append((states[0] - scale * draws[0]).mean())
            variances.append(scale**2)
        return torch.stack(means), torch.stack(variances)

    return evaluate


def _register_ddim_bindings():
    from ..core.schedules import VP, CondOT

    cases = {
        "CondOT": (CondOT.definition(_tau, _lam)[:2], 0.999),
        "VP": (VP.definition(_tau, _lam, sp.Rational(1, 10), 20)[:2], 1.0),
    }
    for name, ((alpha, sigma), t_max) in cases.items():
        scales = _scales_at(alpha, sigma)
        # the code takes t = s + (t_max - s) u; posterior.py's helper maps t = s + (1 - s) u
        scales = {k: v.subs(_u, _u * (t_max - _s) / (1 - _s)) for k, v in scales.items()}
        scales.update({k: v.subs(scales, simultaneous=True) for k, v in _transition.items()})
        scales[c] = eta * sp.sqrt(variance.subs(scales, simultaneous=True))
        for clip in (False, True) if name == "VP" else (False,):
            where = dict(scales)
            domain = {
                _s: Uniform(1e-3, 0.99),
                _u: Uniform(1e-3, 0.999),
                x_t: Uniform(-3, 3),
                eta: Uniform(0, 1, ends=True),
            }
            if clip:
                where[x0] = sp.Min(1, sp.Max(-1, _clipped))
                domain[_clipped] = Uniform(-3, 3)
            else:
                domain[x0] = Uniform(-3, 3)
            register(
                Binding(
                    derivation="D-ddim-marginals",
                    code=("genmath.families.diffusion.ddim_sample",),
                    expression=(ddim_mean, c2),
                    where=where,
                    evaluate=_ddim_step(name, t_max, clip),
                    domain=domain,
                    samples=6,
                    description=(
                        f"one step of ddim_sample on {name}() at s < t: mean and c^2, every "
                        f"parameterization, clipping {'on (x0 in [-1, 1])' if clip else 'off'}"
                    ),
                )
            )


_register_ddim_bindings()


# --- D-sub-vp-sde ---------------------------------------------------------------------------
t = sp.Symbol("t", nonnegative=True)
b_min, b_max = sp.symbols(r"beta_{min} beta_{max}", positive=True)
_B = b_min * t + (b_max - b_min) * t**2 / 2
_beta_t = sp.diff(_B, t)
_alpha_sub = sp.exp(-_B / 2)
_sigma_sub = 1 - sp.exp(-_B)
_f = sp.diff(_alpha_sub, t) / _alpha_sub
_g2 = sp.diff(_sigma_sub**2, t) - 2 * _f * _sigma_sub**2  # D-forward-sde's g^2 of this path

register(
    Derivation(
        id="D-sub-vp-sde",
        title="The sub-VP SDE is the forward SDE of the path alpha = exp(-B/2), sigma = 1 - exp(-B)",
        statement=(
            r"Song et al. (2021)'s sub-VP SDE $dx = -\tfrac12\beta_t x\,dt + \sqrt{\beta_t(1 - "
            r"e^{-2B_t})}\,dW$, $B_t = \int_0^t\beta$, has the marginals $\mathcal N(e^{-B_t/2}x_0, "
            r"(1-e^{-B_t})^2)$: it is the forward SDE (D-forward-sde: $f = \dot\alpha/\alpha$, "
            r"$g^2 = \frac{d}{dt}\sigma^2 - 2f\sigma^2$) of the Gaussian path "
            r"$\alpha_t = e^{-B_t/2}$, $\sigma_t = 1 - e^{-B_t}$, whose noise stays below VP's "
            r"$\sqrt{1 - e^{-B_t}}$."
        ),
        start=sp.Derivative(_alpha_sub, t) / _alpha_sub,
        steps=[
            Step(rhs=-_beta_t / 2, reason=r"Drift: $f = \dot\alpha/\alpha = -\beta_t/2$, as VP."),
            Step(
                lhs=_g2,
                rhs=_beta_t * (1 - sp.exp(-2 * _B)),
                reason=(
                    r"Diffusion: $g^2 = \tfrac{d}{dt}\sigma^2 - 2f\sigma^2 = 2\beta e^{-B}(1-e^{-B}) "
                    r"+ \beta(1-e^{-B})^2 = \beta(1 - e^{-2B})$, below VP's $\beta$."
                ),
            ),
            Step(
                lhs=_sigma_sub,
                rhs=sp.sqrt(1 - _alpha_sub**2),
                relation="<=",
                tag=NUMERIC,
                reason=r"$1 - e^{-B} \le \sqrt{1 - e^{-B}}$ for $0 \le e^{-B} \le 1$: sub-VP.",
            ),
        ],
        symbols=(t, b_min, b_max),
        references=("song2021score",),
        code=("genmath.families.diffusion.sub_vp",),
        tests=("tests/families/test_diffusion.py",),
        domain={t: Uniform(0, 1, ends=True)},
    )
)


def _sub_vp_coefficients(points):
    from ..core.path import GaussianPath
    from ..families.diffusion import sub_vp

    path = GaussianPath(sub_vp())
    tt = points[t]
    return path.alpha(tt), path.sigma(tt), path.drift_coefficient(tt), path.diffusion(tt) ** 2


register(
    Binding(
        derivation="D-sub-vp-sde",
        code=("genmath.families.diffusion.sub_vp",),
        expression=(_alpha_sub, _sigma_sub, -_beta_t / 2, _g2),
        where={b_min: sp.Rational(1, 10), b_max: 20},
        evaluate=_sub_vp_coefficients,
        domain={t: Uniform(0, 1, ends=True)},
        samples=16,
        generated=True,
        description=(
            "GaussianPath(sub_vp()): alpha, sigma (compiled from sub_vp's sympy path) and the "
            "forward SDE's drift coefficient and g^2"
        ),
    )
)


# --- D-score-sde-weighting ------------------------------------------------------------------
sigma = sp.Symbol("sigma", positive=True)
score, noise, offset = sp.symbols(r"s_\theta epsilon d", real=True)

register(
    Derivation(
        id="D-score-sde-weighting",
        title="Score SDEs' likelihood-free weighting: sigma^2 times the DSM residual is sigma s + eps",
        statement=(
            r"Song et al. (2021) weight denoising score matching by $\lambda(t) = \sigma_t^2$: the "
            r"per-sample term $\tfrac12\lambda(t)\,(s_\theta - \nabla\log q(x_t\mid x_0))^2$ with "
            r"the conditional score $-\varepsilon/\sigma_t$ (D-parameterizations) is "
            r"$\tfrac12(\sigma_t s_\theta + \varepsilon)^2$, a unit-scale regression at every "
            "noise level (per coordinate)."
        ),
        start=sigma**2 / 2 * (score - (-noise / sigma)) ** 2,
        steps=[Step(rhs=(sigma * score + noise) ** 2 / 2, reason=r"Factor $\sigma_t$ into the square.")],
        symbols=(sigma, score, noise),
        references=("song2021score",),
        code=("genmath.families.diffusion.ScoreSDE.loss",),
        tests=("tests/families/test_diffusion.py",),
    )
)


def _score_sde_loss(points):
    """ScoreSDE.loss per sample (score model, VP): the model recovers the drawn noise from
    (x_t, t) and predicts s = -(eps + d) / sigma_t, so the weighted residual is d; event (2,)
    with d and 2 d, hence the loss is 5 d^2 / 2."""
    import torch

    from ..core.path import GaussianPath
    from ..core.schedules import VP
    from ..families.diffusion import ScoreSDE

    path = GaussianPath(VP())
    data = torch.linspace(-1, 1, points[offset].numel(), dtype=torch.float64)[:, None].expand(-1, 2)
    d = points[offset][:, None] * torch.tensor([1.0, 2.0], dtype=torch.float64)

    def model(x, t):
        alpha, sigma_t = path.alpha(t)[:, None], path.sigma(t)[:, None]
        return -((x - alpha * data) / sigma_t + d) / sigma_t

    values = ScoreSDE(model, path, "score").loss(
        data, generator=torch.Generator().manual_seed(0), reduction="none"
    )
    return values / 5


register(
    Binding(
        derivation="D-score-sde-weighting",
        code=("genmath.families.diffusion.ScoreSDE.loss",),
        expression=(sigma * score + noise) ** 2 / 2,
        where={score: -(noise + offset) / sigma},
        evaluate=_score_sde_loss,
        domain={offset: Uniform(-3, 3)},
        samples=16,
        description=(
            "ScoreSDE.loss per sample with a score model off by d / sigma_t from the conditional "
            "score: (sigma s + eps)^2 / 2 summed over the event"
        ),
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
