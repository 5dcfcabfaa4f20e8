"""Valid calls of the diffusion family (DDPM, DDIM, score SDEs, EDM, guidance) built on
probability paths; flow matching, consistency models and MeanFlow are in
`api_cases_paths_flows.py`, discrete diffusion and the denoisers in `api_cases_paths_discrete.py`."""

from __future__ import annotations

import torch
from api_cases_core import PATHS, VP_PATH, t_of, x_of
from contract import (
    Call,
    Count,
    Data,
    Gen,
    Option,
    Param,
    Partner,
    PathKind,
    Plain,
    Real,
    Scale,
    Time,
    Tokens,
    Unit,
    case,
    seed_cpu,
)

from genmath.families import diffusion

# --------------------------------------------------------------------------- diffusion schedules


@case("genmath.families.diffusion.linear_betas")
def _(spec):
    return Call(
        diffusion.linear_betas,
        dict(steps=Count(10), beta_start=Unit(1e-4, open=True), beta_end=Unit(0.02, open=True)),
    )


@case("genmath.families.diffusion.cosine_betas")
def _(spec):
    return Call(
        diffusion.cosine_betas,
        dict(steps=Count(10), s=Unit(0.008), max_beta=Unit(0.999, open=True)),
    )


@case("genmath.families.diffusion.DiscreteSchedule.from_path")
def _(spec):
    return Call(diffusion.DiscreteSchedule.from_path, dict(path=PathKind(VP_PATH), steps=Count(10)))


@case("genmath.families.diffusion.DiscreteSchedule.from_betas")
def _(spec):
    return Call(
        diffusion.DiscreteSchedule.from_betas,
        dict(betas=Param(diffusion.linear_betas(10).to(spec.dtype)), path=Plain(None)),
    )


@case("genmath.families.diffusion.DiscreteSchedule.from_times")
def _(spec):
    return Call(
        diffusion.DiscreteSchedule.from_times,
        dict(path=PathKind(VP_PATH), times=Plain(torch.linspace(0, 1, 6, dtype=spec.dtype))),
    )


@case("genmath.families.diffusion.DiscreteSchedule.posterior_coefficients")
def _(spec):
    return Call(diffusion.DiscreteSchedule.from_path(VP_PATH, 10).posterior_coefficients, {})


@case("genmath.families.diffusion.DiscreteSchedule.respace")
def _(spec):
    return Call(diffusion.DiscreteSchedule.from_path(VP_PATH, 10).respace, dict(steps=Count(5)))


def _ddpm(spec, **kw):
    seed_cpu(spec.seed)
    schedule = diffusion.DiscreteSchedule.from_path(VP_PATH, 10)
    return diffusion.DDPM(lambda x, t: 0.3 * x * t.reshape(-1, 1), schedule, **kw)


@case("genmath.families.diffusion.DDPM")
def _(spec):
    return Call(
        diffusion.DDPM,
        dict(
            model=lambda x, t: x,
            schedule=diffusion.DiscreteSchedule.from_path(VP_PATH, 5),
            parameterization=Option("eps"),
            variance=Option("beta"),
        ),
    )


@case("genmath.families.diffusion.DDPM.loss")
def _(spec):
    return Call(
        _ddpm(spec).loss,
        dict(
            x0=Data(x_of(spec)),
            generator=Gen(spec.generator(3)),
            reduction=Option("mean"),
            condition_dropout=Unit(0.0),
        ),
    )


@case("genmath.families.diffusion.DDPM.elbo")
def _(spec):
    return Call(
        _ddpm(spec).elbo,
        dict(
            x0=Data(x_of(spec)),
            decoder=Option("gaussian"),
            generator=Gen(spec.generator(3)),
            chunk=Count(4),
        ),
    )


@case("genmath.families.diffusion.DDPM.sample")
def _(spec):
    return Call(
        _ddpm(spec).sample, dict(xT=Data(x_of(spec), event=False), generator=Gen(spec.generator(3)))
    )


@case("genmath.families.diffusion.DDPM.reverse_kernel")
def _(spec):
    return Call(_ddpm(spec).reverse_kernel, dict(x=Data(x_of(spec), event=False), i=Plain(3)))


@case("genmath.families.diffusion.DDPM.respaced")
def _(spec):
    return Call(_ddpm(spec).respaced, dict(steps=Count(5)))


@case("genmath.families.diffusion.discretized_gaussian_log_likelihood")
def _(spec):
    x = (2 * spec.rand(spec.batch, spec.dim, salt=1) - 1).clamp(-1, 1)
    return Call(
        diffusion.discretized_gaussian_log_likelihood,
        dict(
            x=Data(x),
            mean=Partner(0.1 * x),
            std=Scale(torch.full_like(x, 0.3), tensor=True),
            levels=Count(256, minimum=2),
        ),
    )


@case("genmath.families.diffusion.ddim_sample")
def _(spec):
    return Call(
        diffusion.ddim_sample,
        dict(
            model=lambda x, t: 0.5 * x,
            x1=Data(x_of(spec), event=False),
            path=PathKind(VP_PATH),
            steps=Count(4),
            eta=Unit(0.5),
            parameterization=Option("eps"),
            generator=Gen(spec.generator(3)),
        ),
    )


@case("genmath.families.diffusion.sub_vp")
def _(spec):
    return Call(diffusion.sub_vp, dict(beta_min=Scale(0.1), beta_max=Scale(20.0)))


def _score_sde(spec):
    return diffusion.ScoreSDE(lambda x, t: -x, VP_PATH, "eps")


@case("genmath.families.diffusion.ScoreSDE")
def _(spec):
    return Call(
        diffusion.ScoreSDE,
        dict(model=lambda x, t: -x, path=PathKind(VP_PATH), parameterization=Option("eps")),
    )


@case("genmath.families.diffusion.ScoreSDE.loss")
def _(spec):
    return Call(
        _score_sde(spec).loss,
        dict(x0=Data(x_of(spec)), generator=Gen(spec.generator(3)), reduction=Option("none")),
    )


@case("genmath.families.diffusion.ScoreSDE.sample")
def _(spec):
    return Call(
        _score_sde(spec).sample,
        dict(
            x1=Data(x_of(spec), event=False),
            steps=Count(4),
            method=Option("euler_maruyama"),
            generator=Gen(spec.generator(3)),
        ),
    )


@case("genmath.families.diffusion.ScoreSDE.log_likelihood")
def _(spec):
    return Call(
        _score_sde(spec).log_likelihood,
        dict(x=Data(x_of(spec)), method=Option("rk4"), options=Plain({"step_size": 0.25})),
    )


@case("genmath.families.diffusion.ScoreSDE.prior_log_prob")
def _(spec):
    return Call(_score_sde(spec).prior_log_prob, dict(x=Data(x_of(spec))))


@case("genmath.families.diffusion.ScoreSDE.bits_per_dim")
def _(spec):
    return Call(
        _score_sde(spec).bits_per_dim,
        dict(
            x=Data(spec.rand(spec.batch, spec.dim, salt=1)),
            levels=Count(256, minimum=2),
            method=Option("rk4"),
            options=Plain({"step_size": 0.25}),
        ),
    )


def _levels(spec):
    return 0.1 + spec.rand(spec.batch, salt=4) * 2


@case("genmath.families.diffusion.edm_preconditioning")
def _(spec):
    return Call(
        diffusion.edm_preconditioning,
        dict(noise_level=Scale(_levels(spec), tensor=True), sigma_data=Scale(0.5)),
    )


@case("genmath.families.diffusion.edm_loss_weight")
def _(spec):
    return Call(
        diffusion.edm_loss_weight,
        dict(noise_level=Scale(_levels(spec), tensor=True), sigma_data=Scale(0.5)),
    )


@case("genmath.families.diffusion.lognormal_noise_levels")
def _(spec):
    return Call(
        diffusion.lognormal_noise_levels,
        dict(
            n=Count(4),
            p_mean=Real(-1.2),
            p_std=Scale(1.2),
            generator=Gen(spec.generator(3)),
            dtype=Plain(spec.dtype),
        ),
    )


def _edm(spec, path=None):
    return diffusion.EDM(lambda x, c: 0.1 * x * c[:, None], path)


@case("genmath.families.diffusion.EDM")
def _(spec):
    return Call(
        diffusion.EDM,
        dict(network=lambda x, c: x, path=PathKind(PATHS["VE"]), sigma_data=Scale(0.5)),
    )


@case("genmath.families.diffusion.EDM.loss")
def _(spec):
    return Call(
        _edm(spec).loss,
        dict(
            x0=Data(x_of(spec)),
            noise_level=Plain(None),
            p_mean=Real(-1.2),
            p_std=Scale(1.2),
            generator=Gen(spec.generator(3)),
            reduction=Option("mean"),
        ),
    )


@case("genmath.families.diffusion.EDM.loss[noise_level]")
def _(spec):
    return Call(
        _edm(spec).loss,
        dict(
            x0=Data(x_of(spec)),
            noise_level=Scale(_levels(spec), tensor=True),
            reduction=Option("none"),
        ),
    )


@case("genmath.families.diffusion.EDM.forward")
def _(spec):
    return Call(
        _edm(spec, PATHS["VE"]).forward,
        dict(x=Data(x_of(spec), event=False), t=Time(t_of(spec), batch=spec.batch)),
    )


@case("genmath.families.diffusion.EDM.denoise")
def _(spec):
    return Call(
        _edm(spec).denoise,
        dict(x_scaled=Data(x_of(spec), event=False), noise_level=Scale(_levels(spec), tensor=True)),
    )


@case("genmath.families.diffusion.EDM.noise_level")
def _(spec):
    return Call(_edm(spec, VP_PATH).noise_level, dict(t=Time(t_of(spec))))


@case("genmath.families.diffusion.EDM.time_of")
def _(spec):
    return Call(
        _edm(spec, VP_PATH).time_of, dict(noise_level=Scale(_levels(spec), tensor=True, zero_ok=True))
    )


@case("genmath.families.diffusion.EDM.sample")
def _(spec):
    return Call(
        _edm(spec).sample,
        dict(x1=Data(x_of(spec), event=False), steps=Count(3), generator=Gen(spec.generator(3))),
    )


@case("genmath.families.diffusion.edm_sample")
def _(spec):
    return Call(
        diffusion.edm_sample,
        dict(
            model=lambda x, t: 0.5 * x,
            x1=Data(x_of(spec), event=False),
            path=PathKind(PATHS["VE"]),
            steps=Count(3),
            parameterization=Option("x0"),
            rho=Scale(7.0),
            churn=Scale(1.0, zero_ok=True),
            s_noise=Scale(1.0, zero_ok=True),
            generator=Gen(spec.generator(3)),
        ),
    )


@case("genmath.families.diffusion.drop_condition")
def _(spec):
    return Call(
        diffusion.drop_condition,
        dict(
            condition=Tokens(torch.arange(spec.batch) % 3, None, null=True),
            p=Unit(0.5),
            generator=Gen(spec.generator(3)),
        ),
    )


@case("genmath.families.diffusion.guide")
def _(spec):
    model = lambda x, t, c: x * (1 + (0 if c is None else c[:, None]))  # noqa: E731
    guided = diffusion.guide(model, torch.arange(spec.batch) % 3, 2.0, unconditional=lambda x, t: x)
    # the guided field is a model (the samplers validate their states once)
    return Call(guided, dict(x=Plain(x_of(spec)), t=Plain(0.5)))


# --------------------------------------------------------------------------- flow matching
