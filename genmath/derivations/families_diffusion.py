"""DDPM: the discrete forward process, and the terms of the discrete bound and $L_\\mathrm{simple}$.

Every chain here starts from a definition, from another derivation's result (`From`), or from
an expression a binding holds the code to. The bindings run the public DDPM code on two-step
`DiscreteSchedule`s built from the sampled $(\\bar\\alpha_{i-1}, \\alpha_i)$, in every
parameterization and for every reverse variance, and compare with the expressions below. The
posterior itself is D-ddpm-posterior (``posterior.py``); the learned variance and the hybrid
loss are in ``families_ddpm_variance.py``, the discretised decoder in
``families_ddpm_decoder.py``; DDIM, sub-VP and guidance in ``families_diffusion_samplers.py``;
EDM in ``edm_preconditioning.py``; the discrete schedule itself (betas, alpha-bars and their
times on a path) in ``families_ddpm_schedule.py``.
"""

import functools

import sympy as sp

from ._chain import FromStep
from ._engine import (
    Binding,
    Derivation,
    From,
    LogUniform,
    Step,
    Uniform,
)
from ._gaussian import log_normal
from ._registry import register

PARAMETERIZATIONS = ("x0", "eps", "score", "velocity", "v")
VARIANCES = ("beta", "beta_tilde", "learned")

# --- symbols: one coordinate of step i ------------------------------------------------------
# alpha = 1 - beta_i, abar_s = abar_{i-1}, abar_t = abar_i = abar_s * alpha.
alpha, abar_s = sp.symbols(r"alpha_i \bar{alpha}_{i-1}", positive=True)
x_t, x0, x0_hat, eps, eps_hat = sp.symbols(r"x_i x_0 \hat{x}_0 epsilon \hat{epsilon}", real=True)
v = sp.Symbol(r"Sigma_i", positive=True)  # the reverse kernel's variance
beta = 1 - alpha
abar_t = abar_s * alpha
tilde = (1 - abar_s) / (1 - abar_t) * beta
snr_s = abar_s / (1 - abar_s)
snr_t = abar_t / (1 - abar_t)
# D-kl-gaussian's symbols (its result is the chain start of the per-step KL)
mu_1, mu_2 = sp.symbols("mu_1 mu_2", real=True)
sigma_1, sigma_2 = sp.symbols("sigma_1 sigma_2", positive=True)


def _posterior_mean(data):
    """D-ddpm-posterior's mean of q(x_{i-1} | x_i, x_0) with x_0 = data."""
    return (
        sp.sqrt(abar_s) * beta / (1 - abar_t) * data
        + sp.sqrt(alpha) * (1 - abar_s) / (1 - abar_t) * x_t
    )


def _from_eps(e):
    return (x_t - sp.sqrt(1 - abar_t) * e) / sp.sqrt(abar_t)


def _gaussian_step_kl(variance, posterior_variance, snr_drop):
    """KL(N(mu(x0), posterior_variance) || N(mu(x0_hat), variance)) per coordinate, where the
    means differ by sqrt(posterior_variance * snr_drop) (x0 - x0_hat)."""
    return (
        sp.log(sp.sqrt(variance))
        - sp.log(sp.sqrt(posterior_variance))
        + posterior_variance / (2 * variance)
        - sp.Rational(1, 2)
        + snr_drop * posterior_variance / (2 * variance) * (x0 - x0_hat) ** 2
    )


def _step_kl(variance):
    """KL(q(x_{i-1} | x_i, x_0) || N(posterior mean at x0_hat, variance)), per coordinate."""
    return _gaussian_step_kl(variance, tilde, snr_s - snr_t)


_squared_x0 = (snr_s - snr_t) / 2 * (x0 - x0_hat) ** 2
_squared_eps = beta**2 / (2 * tilde * alpha * (1 - abar_t)) * (eps - eps_hat) ** 2
_prior_kl = -sp.log(sp.sqrt(1 - abar_t)) + (1 - abar_t + abar_t * x0**2) / 2 - sp.Rational(1, 2)
_decoder = -log_normal(x0, x0_hat, 1 - abar_s)  # step 1 of the two-step schedule: beta_1
_decoder_expanded = sp.log(2 * sp.pi * (1 - abar_s)) / 2 + (x0 - x0_hat) ** 2 / (2 * (1 - abar_s))
# the value DDPM.elbo returns on a two-step schedule (prior, one step, decoder)
_bound_value = -(_prior_kl + _step_kl(v) + _decoder)
# ... and on a three-step schedule: a further step i + 1 with alpha_{i+1} after step i, so
# that abar_{i+1} = abar_i alpha_{i+1} (the prior's) and the step terms are summed over two
alpha_next = sp.Symbol(r"alpha_{i+1}", positive=True)
v_next = sp.Symbol(r"Sigma_{i+1}", positive=True)


def _next_step(expr):
    """``expr`` of step i written for step i + 1: (abar_{i-1}, alpha_i) -> (abar_i, alpha_{i+1})."""
    return sp.sympify(expr).subs({abar_s: abar_t, alpha: alpha_next, v: v_next}, simultaneous=True)


_prior_kl_next = _prior_kl.subs(abar_s, abar_s * alpha_next)  # abar_{i+1} = abar_{i-1} alpha_i alpha_{i+1}
_bound_value_next = -(_prior_kl_next + _step_kl(v) + _next_step(_step_kl(v)) + _decoder)

register(
    Derivation(
        id="D-ddpm-bound-simple",
        title="DDPM: each step of the bound is a weighted denoising error; L_simple drops the weight",
        statement=(
            r"With reverse kernels $p_\theta(x_{i-1}\mid x_i) = \mathcal N(\tilde\mu_i(x_i, "
            r"\hat x_0), \Sigma_i)$ the per-step term of the discrete bound, "
            r"$L_{i-1} = \mathrm{KL}(q(x_{i-1}\mid x_i, x_0)\,\|\,p_\theta(x_{i-1}\mid x_i))$, is "
            r"$\tfrac12\log(\Sigma_i/\tilde\beta_i) + \tilde\beta_i/(2\Sigma_i) - \tfrac12 + "
            r"\tfrac{\tilde\beta_i}{2\Sigma_i}(\mathrm{SNR}_{i-1} - \mathrm{SNR}_i)(x_0 - \hat x_0)^2$ "
            r"per coordinate, $\mathrm{SNR}_i = \bar\alpha_i/(1-\bar\alpha_i)$, for any variance "
            r"$\Sigma_i$ ($\beta_i$, $\tilde\beta_i$ or learned, D-ddpm-learned-variance). With "
            r"$\Sigma_i = \tilde\beta_i$ it is $\tfrac12(\mathrm{SNR}_{i-1} - \mathrm{SNR}_i)"
            r"(x_0 - \hat x_0)^2 = \frac{\beta_i^2}{2\tilde\beta_i(1-\beta_i)(1-\bar\alpha_i)}"
            r"(\varepsilon - \hat\varepsilon)^2$ (Ho et al. 2020, eq. 12; Kingma et al. 2021). "
            r"$L_\mathrm{simple} = \mathbb E\|\varepsilon - \hat\varepsilon\|^2$ is the bound with "
            r"these weights set to one (and the prior and decoder dropped): a reweighted bound "
            r"that trains better, no longer the bound itself (Ho et al. 2020, sec. 3.4). The "
            r"bound's other terms: the prior $L_T = \mathrm{KL}(\mathcal N(\sqrt{\bar\alpha_T}x_0, "
            r"1 - \bar\alpha_T)\,\|\,\mathcal N(0, 1))$ and the decoder $L_0 = -\log\mathcal N(x_0; "
            r"\hat x_0, \beta_1)$ (the reverse mean at step 1 is $\hat x_0$, as $\bar\alpha_0 = 1$)."
        ),
        start=From(
            "D-kl-gaussian",
            {
                mu_1: _posterior_mean(x0),
                mu_2: _posterior_mean(x0_hat),
                sigma_1: sp.sqrt(tilde),
                sigma_2: sp.sqrt(v),
            },
        ),
        steps=[
            Step(
                rhs=_step_kl(v),
                reason=(
                    r"The Gaussian KL (D-kl-gaussian) of the posterior $\mathcal N(\tilde\mu_i(x_i, "
                    r"x_0), \tilde\beta_i)$ against the model's $\mathcal N(\tilde\mu_i(x_i, \hat x_0), "
                    r"\Sigma_i)$: the means differ only through $x_0$, by $\frac{\sqrt{\bar\alpha_{i-1}}"
                    r"\beta_i}{1-\bar\alpha_i}(x_0 - \hat x_0)$ (D-ddpm-posterior), whose square is "
                    r"$\tilde\beta_i(\mathrm{SNR}_{i-1} - \mathrm{SNR}_i)(x_0 - \hat x_0)^2$."
                ),
            ),
            Step(
                lhs=FromStep("D-ddpm-bound-simple", {v: tilde}, step=1),
                rhs=_squared_x0,
                reason=(
                    r"With $\Sigma_i = \tilde\beta_i$ the log and constant terms cancel: half the drop "
                    r"of the signal-to-noise ratio times the squared denoising error."
                ),
            ),
            Step(
                lhs=FromStep(
                    "D-ddpm-bound-simple",
                    {v: tilde, x0: _from_eps(eps), x0_hat: _from_eps(eps_hat)},
                    step=1,
                ),
                rhs=_squared_eps,
                reason=(
                    r"In the $\varepsilon$-parameterization, $x_0 = (x_i - \sqrt{1-\bar\alpha_i}\,"
                    r"\varepsilon)/\sqrt{\bar\alpha_i}$: Ho et al.'s weight with $\sigma_i^2 = "
                    r"\tilde\beta_i$; $L_\mathrm{simple}$ keeps $(\varepsilon - \hat\varepsilon)^2$ "
                    "and drops the weight."
                ),
            ),
            Step(
                lhs=From(
                    "D-kl-gaussian",
                    {mu_1: sp.sqrt(abar_t) * x0, sigma_1: sp.sqrt(1 - abar_t), mu_2: 0, sigma_2: 1},
                ),
                rhs=_prior_kl,
                reason=(
                    r"The prior term $L_T$: D-kl-gaussian with $q(x_T \mid x_0) = \mathcal N("
                    r"\sqrt{\bar\alpha_T}x_0, 1 - \bar\alpha_T)$ against $\mathcal N(0, 1)$ (here "
                    r"$T = i$: the last step of the schedule)."
                ),
            ),
            Step(
                lhs=_decoder,
                rhs=_decoder_expanded,
                reason=(
                    r"The decoder term $L_0 = -\log\mathcal N(x_0; \tilde\mu_1(x_1, \hat x_0), \beta_1)$: "
                    r"at step 1, $\bar\alpha_0 = 1$ makes the reverse mean $\hat x_0$ itself "
                    r"(here $\beta_1 = 1 - \bar\alpha_1$ with $\bar\alpha_1$ the schedule's first "
                    r"value, written $\bar\alpha_{i-1}$)."
                ),
            ),
            Step(
                lhs=_bound_value,
                rhs=-(_prior_kl + _step_kl(v) + _decoder_expanded),
                reason=(
                    r"The bound itself, on the two-step schedule the bindings use: "
                    r"$\mathrm{ELBO} = -(L_T + L_1 + L_0)$, the prior, the one step's KL and the "
                    r"decoder with the signs of $\log p(x_0) \ge \mathbb E_q[\log p(x_{0:T}) - "
                    r"\log q(x_{1:T} \mid x_0)]$; `DDPM.elbo` returns this value (bound)."
                ),
            ),
            Step(
                lhs=_bound_value_next,
                rhs=-(_prior_kl_next + _step_kl(v) + _next_step(_step_kl(v)) + _decoder_expanded),
                reason=(
                    r"On a three-step schedule (a step $i + 1$ with $\alpha_{i+1}$ after step $i$) "
                    r"the bound adds one KL per step, $-(L_T + L_1 + L_2 + L_0)$: each step's "
                    r"term is the one above with $(\bar\alpha_{i-1}, \alpha_i, \Sigma_i)$ moved "
                    r"to its own step, and the prior's $\bar\alpha_T = \bar\alpha_{i-1}\alpha_i"
                    r"\alpha_{i+1}$ (bound: the step terms are summed, not averaged)."
                ),
            ),
        ],
        symbols=(alpha, abar_s, x_t, x0, x0_hat, eps, eps_hat, v, alpha_next, v_next),
        references=("ho2020denoising", "kingma2021variational", "nichol2021improved"),
        code=(
            "genmath.families.diffusion.DDPM.elbo",
            "genmath.families.diffusion.DDPM.loss",
            "genmath.families.diffusion.DDPM.sample",
        ),
        tests=("tests/families/test_diffusion.py",),
        domain={alpha: (0.05, 0.95), abar_s: (0.05, 0.95), alpha_next: (0.05, 0.95)},
    )
)


# --- bindings of the bound: DDPM.elbo, DDPM.loss, DDPM.sample -------------------------------
# Each point is a two-step schedule with betas (1 - abar_{i-1}, 1 - alpha_i): step 2 is the
# step the derivation describes, step 1 the decoder, abar_2 = abar_t the prior's.


@functools.cache
def _cosine_path():
    from ..core.path import GaussianPath
    from ..core.schedules import CosineVP

    return GaussianPath(CosineVP())


def _two_step(abar_prev, alpha_step):
    import torch

    from ..families.diffusion import DiscreteSchedule

    return DiscreteSchedule.from_betas(torch.stack([1 - abar_prev, 1 - alpha_step]), _cosine_path())


def _x0_model(path, x0_prediction, parameterization):
    """A model predicting ``parameterization`` whose x0 prediction is ``x0_prediction``."""

    def model(x, t):
        prediction = x0_prediction.expand_as(x)
        return path.convert(prediction, x, t, "x0", parameterization)

    return model


def _constant(value):
    return lambda x, t: value.expand_as(x)


def _ddpm(schedule, x0_prediction, parameterization, variance, u):
    from ..families.diffusion import DDPM

    model = _x0_model(schedule.path, x0_prediction, parameterization)
    variance_model = _constant(u) if variance == "learned" else None
    return DDPM(model, schedule, parameterization, variance, variance_model)


def _ddpm_points(points):
    """Per point: the two-step schedule, and the point's scalars as (1, 1) tensors. A case
    whose expression does not involve abar_{i-1} or alpha_i (the variance beta_i, say) still
    needs a schedule: the missing one is fixed at 0.7."""
    import torch

    n = next(t.numel() for t in points.values())
    fixed = torch.full((n,), 0.7, dtype=torch.float64)
    abar_prev, alpha_step = points.get(abar_s, fixed), points.get(alpha, fixed)
    for j in range(n):
        schedule = _two_step(abar_prev[j], alpha_step[j])
        yield j, schedule, {k: t[j].reshape(1, 1) for k, t in points.items()}


def _elbo_terms(variance):
    def evaluate(points):
        import torch

        rows = []
        for j, schedule, p in _ddpm_points(points):
            name = PARAMETERIZATIONS[j % len(PARAMETERIZATIONS)]
            u = p.get(_u, torch.zeros(1, 1, dtype=torch.float64))
            ddpm = _ddpm(schedule, p[x0_hat], name, variance, u)
            value, terms = ddpm.elbo(p[x0], terms=True, generator=torch.Generator().manual_seed(j))
            rows.append(
                torch.stack(
                    [terms["steps"][0, 0], terms["prior"][0], terms["decoder"][0], value[0]]
                )
            )
        return tuple(torch.stack(rows).T)

    return evaluate


_u = sp.Symbol("u", real=True)  # the learned variance's interpolation weight
_variance_of = {
    "beta": beta,
    "beta_tilde": tilde,
    "learned": sp.exp(_u * sp.log(beta) + (1 - _u) * sp.log(tilde)),
}
# Every parameterization is converted by the path, which needs abar_i >= ~1e-5 to stay inside
# its safe interval (alpha_t >= min_scale); the eps-form posterior itself is bound down to
# alpha_i = 1e-5 by D-ddpm-posterior.
_step_domain = {
    alpha: LogUniform(1e-3, 0.999),
    abar_s: Uniform(1e-2, 0.999),
    x0: Uniform(-3, 3),
    x0_hat: Uniform(-3, 3),
}
# (point j's model predicts PARAMETERIZATIONS[j % 5]: every parameterization is exercised)

# the learned variance with u over [-0.5, 1.5] puts every variance, beta-tilde (u = 0) and beta
# (u = 1) among them, into the KL; reverse_variance is bound for each choice separately
for _choice in ("learned",):
    register(
        Binding(
            derivation="D-ddpm-bound-simple",
            code=("genmath.families.diffusion.DDPM.elbo",),
            expression=(_step_kl(v), _prior_kl, _decoder, _bound_value),
            where={v: _variance_of[_choice]},
            evaluate=_elbo_terms(_choice),
            domain={
                **_step_domain,
                **({_u: Uniform(-0.5, 1.5, ends=True)} if _choice == "learned" else {}),
            },
            samples=16,
            description=(
                f"DDPM.elbo's per-step KL, prior and Gaussian decoder terms and the value it "
                f"returns, -(prior + step + decoder), variance={_choice!r}, every parameterization"
            ),
        )
    )


def _elbo_three_steps(points):
    """DDPM.elbo (learned variance, every parameterization) on the three-step schedule with
    betas (1 - abar_{i-1}, 1 - alpha_i, 1 - alpha_{i+1})."""
    import torch

    from ..families.diffusion import DiscreteSchedule

    out = []
    for j in range(points[x0].shape[0]):
        p = {k: t[j].reshape(1, 1) for k, t in points.items()}
        betas = torch.cat([1 - p[abar_s], 1 - p[alpha], 1 - p[alpha_next]]).reshape(3)
        schedule = DiscreteSchedule.from_betas(betas, _cosine_path())
        name = PARAMETERIZATIONS[j % len(PARAMETERIZATIONS)]
        ddpm = _ddpm(schedule, p[x0_hat], name, "learned", p[_u])
        out.append(ddpm.elbo(p[x0], generator=torch.Generator().manual_seed(j))[0])
    return torch.stack(out)


register(
    Binding(
        derivation="D-ddpm-bound-simple",
        code=("genmath.families.diffusion.DDPM.elbo",),
        expression=_bound_value_next,
        where={v: _variance_of["learned"], v_next: _next_step(_variance_of["learned"])},
        evaluate=_elbo_three_steps,
        # abar_T = abar_{i-1} alpha_i alpha_{i+1} stays above the path's conversion floor
        domain={
            **_step_domain,
            alpha: LogUniform(0.05, 0.999),
            alpha_next: Uniform(0.3, 0.999),
            _u: Uniform(-0.5, 1.5, ends=True),
        },
        samples=10,
        description=(
            "DDPM.elbo on a three-step schedule (two step terms, summed), learned variance, "
            "every parameterization"
        ),
    )
)


def _simple_loss(points):
    """DDPM.loss per sample on a fixed schedule: the eps model recovers the drawn noise from
    (x_i, t) and is off by (eps - eps_hat) per coordinate; the x0 model predicts x0_hat.
    Event (2,): coordinates 1 and 2 times the offset, so the loss is 5 (offset)^2."""
    import torch

    from ..core.path import GaussianPath
    from ..core.schedules import VP
    from ..families.diffusion import DDPM, DiscreteSchedule

    schedule = DiscreteSchedule.from_path(GaussianPath(VP()), 20)
    scale = torch.tensor([1.0, 2.0], dtype=torch.float64)
    data = points[x0][:, None] * torch.ones(2, dtype=torch.float64)
    offset = (points[eps] - points[eps_hat])[:, None] * scale
    path = schedule.path

    def eps_model(x, t):
        noise = (x - path.alpha(t)[:, None] * data) / path.sigma(t)[:, None]
        return noise - offset

    eps_loss = DDPM(eps_model, schedule, "eps").loss(
        data, generator=torch.Generator().manual_seed(0), reduction="none"
    )
    x0_offset = (points[x0] - points[x0_hat])[:, None] * scale
    x0_loss = DDPM(lambda x, t: data - x0_offset, schedule, "x0").loss(
        data, generator=torch.Generator().manual_seed(1), reduction="none"
    )
    return eps_loss / 5, x0_loss / 5


register(
    Binding(
        derivation="D-ddpm-bound-simple",
        code=("genmath.families.diffusion.DDPM.loss",),
        expression=((eps - eps_hat) ** 2, (x0 - x0_hat) ** 2),
        evaluate=_simple_loss,
        domain={eps: Uniform(-3, 3), eps_hat: Uniform(-3, 3), x0: Uniform(-3, 3), x0_hat: Uniform(-3, 3)},
        samples=32,
        description=(
            "DDPM.loss per sample: L_simple = sum over the event of (eps - eps_hat)^2, and "
            "(x0 - x0_hat)^2 for an x0 model"
        ),
    )
)


def _ancestral_step(variance, part):
    """One ancestral step of DDPM.sample from x_2, read off the trajectory at two seeds:
    x_1 = mean + sqrt(Sigma_2) z, z reconstructed from the same seed; ``part`` is "mean" or
    "variance" (Sigma_2). The model predicts x0_hat (1 where the expression has none)."""

    def evaluate(points):
        import torch

        one = torch.ones(1, 1, dtype=torch.float64)
        out = []
        for j, schedule, p in _ddpm_points(points):
            name = PARAMETERIZATIONS[j % len(PARAMETERIZATIONS)]
            u = p.get(_u, torch.zeros(1, 1, dtype=torch.float64))
            ddpm = _ddpm(schedule, p.get(_x0_sample, one), name, variance, u)
            start = p.get(_xt_sample, one).expand(1, 4)
            states, draws = [], []
            for seed in (2 * j, 2 * j + 1):
                result = ddpm.sample(
                    start, generator=torch.Generator().manual_seed(seed), keep_trajectory=True
                )
                states.append(result.trajectory[1])
                draws.append(
                    torch.randn(
                        start.shape, generator=torch.Generator().manual_seed(seed), dtype=start.dtype
                    )
                )
            dz, dx = draws[0] - draws[1], states[0] - states[1]
            scale = (dx * dz).sum() / (dz * dz).sum()
            out.append(scale**2 if part == "variance" else (states[0] - scale * draws[0]).mean())
        return torch.stack(out)

    return evaluate


# The mean of one ancestral step is D-ddpm-posterior's mean at (x_t, x0_hat): bound there, in
# its own symbols (alpha_t, abar_{t-1}, x_t, x_0 standing for the model's x0_hat).
_alpha_post, _abar_post = sp.symbols(r"alpha_t \bar{alpha}_{t-1}", positive=True)
_xt_sample, _x0_sample = sp.symbols("x_t x_0", real=True)


def _rename_points(evaluate):
    """``evaluate`` reads (alpha_i, abar_{i-1}); D-ddpm-posterior samples (alpha_t, abar_{t-1})."""

    def renamed(points):
        return evaluate({**points, alpha: points[_alpha_post], abar_s: points[_abar_post]})

    return renamed


def _posterior_mean_of_ddpm():
    from .posterior import _mean_tilde

    return _mean_tilde


for _choice in ("beta_tilde",):  # the mean does not depend on the variance
    register(
        Binding(
            derivation="D-ddpm-posterior",
            code=("genmath.families.diffusion.DDPM.sample",),
            expression=_posterior_mean_of_ddpm(),
            evaluate=_rename_points(_ancestral_step(_choice, "mean")),
            domain={
                _alpha_post: LogUniform(1e-3, 0.999),
                _abar_post: Uniform(1e-2, 0.999),
                _xt_sample: Uniform(-3, 3),
                _x0_sample: Uniform(-3, 3),
                **({_u: Uniform(-0.5, 1.5)} if _choice == "learned" else {}),
            },
            samples=10,
            description=(
                f"the mean of one ancestral step of DDPM.sample (variance={_choice!r}), every "
                "parameterization: the posterior mean at the model's x0"
            ),
        )
    )
