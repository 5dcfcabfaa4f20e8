"""Valid calls of the core estimators (divergence, ODE likelihood, score matching, ELBO) and of a
user's own schedule, each argument tagged with its kind (see `contract.py`)."""

from __future__ import annotations

import torch
from api_cases_core import (
    _SCHEDULE_METHODS,
    OT,
    VP_PATH,
    _reverse,
    field,
    normal_log_prob,
    t_of,
    velocity,
    x_of,
)
from contract import (
    Call,
    Count,
    Data,
    Gen,
    Lam,
    Option,
    Partner,
    PathKind,
    Plain,
    Real,
    Scale,
    Time,
    Unit,
    Values,
    case,
)
from torch import distributions as D

import genmath
from genmath import score_matching

# --------------------------------------------------------------------------- divergence, likelihood


@case("genmath.divergence")
def _(spec):
    return Call(
        genmath.divergence,
        dict(
            fn=field(spec),
            x=Data(x_of(spec)),
            method=Option("hutchinson"),
            probes=Count(2),
            generator=Gen(spec.generator(3)),
            noise=Option("rademacher"),
        ),
    )


@case("genmath.divergence[exact]")
def _(spec):
    return Call(
        genmath.divergence, dict(fn=field(spec), x=Data(x_of(spec)), method=Option("exact"))
    )


@case("genmath.ode_log_likelihood")
def _(spec):
    return Call(
        genmath.ode_log_likelihood,
        dict(
            velocity=velocity(spec),
            x=Data(x_of(spec)),
            prior_log_prob=normal_log_prob,
            divergence=Option("hutchinson"),
            method=Option("rk4"),
            rtol=Scale(1e-3),
            atol=Scale(1e-3),
            t0=Time(0.0, edges=False),
            t1=Time(1.0, edges=False),
            probes=Count(1),
            noise=Option("rademacher"),
            generator=Gen(spec.generator(3)),
            options=Plain({"step_size": 0.25}),
        ),
    )


@case("genmath.ode_log_likelihood[dopri5]")
def _(spec):
    return Call(
        genmath.ode_log_likelihood,
        dict(
            velocity=velocity(spec),
            x=Data(x_of(spec)),
            prior_log_prob=normal_log_prob,
            rtol=Scale(1e-3),
            atol=Scale(1e-3),
        ),
    )


@case("genmath.bits_per_dim")
def _(spec):
    return Call(
        genmath.bits_per_dim,
        dict(
            log_prob=Values(spec.randn(spec.batch, salt=3)),
            dims=Count(4),
            levels=Count(256, minimum=2),
            data_range=Plain((0.0, 1.0)),
            dequantization=Option("uniform"),
        ),
    )


# --------------------------------------------------------------------------- score


@case("genmath.score_from_log_prob")
def _(spec):
    return Call(
        genmath.score_from_log_prob(lambda x: -(x.pow(2).reshape(len(x), -1).sum(1) ** 1.5)),
        dict(x=Data(x_of(spec))),
    )


@case("genmath.score_from_energy")
def _(spec):
    return Call(
        genmath.score_from_energy(lambda x: x.pow(2).reshape(len(x), -1).sum(1) ** 1.5),
        dict(x=Data(x_of(spec))),
    )


@case("genmath.tweedie")
def _(spec):
    return Call(
        genmath.tweedie,
        dict(
            xt=Data(x_of(spec), event=False),
            score=Partner(x_of(spec, 5)),
            alpha=Scale(0.8),
            sigma=Scale(0.6, zero_ok=True),
        ),
    )


@case("genmath.score_matching.explicit")
def _(spec):
    return Call(
        score_matching.explicit,
        dict(
            score_model=field(spec),
            x=Data(x_of(spec)),
            true_score=lambda x: -x,
            reduction=Option("mean"),
        ),
    )


@case("genmath.score_matching.implicit")
def _(spec):
    return Call(
        score_matching.implicit,
        dict(score_model=field(spec), x=Data(x_of(spec)), reduction=Option("none")),
    )


@case("genmath.score_matching.sliced")
def _(spec):
    return Call(
        score_matching.sliced,
        dict(
            score_model=field(spec),
            x=Data(x_of(spec)),
            n_projections=Count(2),
            generator=Gen(spec.generator(3)),
            projection=Option("rademacher"),
            reduction=Option("mean"),
        ),
    )


@case("genmath.score_matching.denoising")
def _(spec):
    return Call(
        score_matching.denoising,
        dict(
            model=velocity(spec),
            x0=Data(x_of(spec)),
            path=PathKind(VP_PATH),
            t=Time(t_of(spec), batch=spec.batch),
            parameterization=Option("eps"),
            weighting=Plain(None),
            generator=Gen(spec.generator(3)),
            reduction=Option("mean"),
        ),
    )


# --------------------------------------------------------------------------- ELBO


def _gaussian_vae(spec, latent=2):
    w = spec.randn(spec.dim, latent, salt=11)

    def encoder(x):
        mean = x @ w
        return D.Independent(D.Normal(mean, torch.full_like(mean, 0.7), validate_args=False), 1)

    def decoder(z):
        loc = z @ w.mT
        return D.Independent(D.Normal(loc, torch.full_like(loc, 0.9), validate_args=False), 1)

    zeros = torch.zeros(latent, dtype=spec.dtype)
    prior = D.Independent(D.Normal(zeros, torch.ones_like(zeros), validate_args=False), 1)
    return encoder, decoder, prior


@case("genmath.elbo")
def _(spec):
    encoder, decoder, prior = _gaussian_vae(spec)
    return Call(
        genmath.elbo,
        dict(
            x=Data(x_of(spec), ints_ok=True, event=False),  # the encoder is the caller's closure
            encoder=encoder,
            decoder=decoder,
            prior=prior,
            n_samples=Count(2),
            generator=Gen(spec.generator(3)),
            kl=Option("mc"),
        ),
    )


@case("genmath.iwae")
def _(spec):
    encoder, decoder, prior = _gaussian_vae(spec)
    return Call(
        genmath.iwae,
        dict(
            x=Data(x_of(spec), ints_ok=True, event=False),  # the encoder is the caller's closure
            encoder=encoder,
            decoder=decoder,
            prior=prior,
            k=Count(3),
            generator=Gen(spec.generator(3)),
        ),
    )


@case("genmath.reinforce_elbo")
def _(spec):
    encoder, decoder, prior = _gaussian_vae(spec)
    return Call(
        genmath.reinforce_elbo,
        dict(
            x=Data(x_of(spec), ints_ok=True, event=False),  # the encoder is the caller's closure
            encoder=encoder,
            decoder=decoder,
            prior=prior,
            n_samples=Count(2, minimum=2),
            generator=Gen(spec.generator(3)),
            baseline=Option("leave_one_out", strings_only=False),
            kl=Option("auto"),
        ),
    )


@case("genmath.kl_divergence")
def _(spec):
    q = D.Normal(x_of(spec), 0.5 + spec.rand(spec.batch, spec.dim, salt=3))
    p = D.Normal(torch.zeros(spec.dim, dtype=spec.dtype), torch.ones(spec.dim, dtype=spec.dtype))
    return Call(
        genmath.kl_divergence,
        dict(q=q, p=p, method=Option("mc"), n_samples=Count(3), generator=Gen(spec.generator(3))),
    )


@case("genmath.diagonal_gaussian_kl")
def _(spec):
    return Call(
        genmath.diagonal_gaussian_kl,
        dict(
            mean=Data(x_of(spec), mix=True),
            std=Scale(0.5 + spec.rand(spec.batch, spec.dim, salt=3), tensor=True),
            prior_mean=Real(0.0),
            prior_std=Scale(1.0),
        ),
    )


@case("genmath.score_function_surrogate")
def _(spec):
    f = spec.randn(3, spec.batch, salt=4)
    return Call(
        genmath.score_function_surrogate,
        dict(
            f=Data(f, batch=False, event=False),
            log_q=Partner(spec.randn(3, spec.batch, salt=5)),
            baseline=Option("leave_one_out", strings_only=False),
        ),
    )


@case("genmath.gaussian_path_elbo")
def _(spec):
    return Call(
        genmath.gaussian_path_elbo,
        dict(
            model=lambda xt, t: 0.5 * xt,
            x0=Data(x_of(spec)),
            path=PathKind(VP_PATH),
            parameterization=Option("eps"),
            n_t=Count(2),
            method=Option("mc"),
            sampling=Option("log_snr"),
            t_interval=Plain(None),
            generator=Gen(spec.generator(3)),
        ),
    )


@case("genmath.elbo_weighting")
def _(spec):
    return Call(
        genmath.elbo_weighting,
        dict(
            loss=Option("eps"),
            path=PathKind(VP_PATH),
            lam=Lam(torch.linspace(-3, 3, 5, dtype=spec.dtype)),
        ),
    )


# --------------------------------------------------------------------------- a user's schedule


def _user_schedule():
    import sympy as sp

    t = sp.Symbol("t", nonnegative=True)
    return genmath.schedules.Schedule.from_sympy(
        sp.cos(sp.pi * t / 2), sp.sin(sp.pi * t / 2), t, name="trig"
    )


USER_SCHEDULE = _user_schedule()


@case("genmath.schedules.Schedule.from_sympy")
def _(spec):
    import sympy as sp

    t = sp.Symbol("t", nonnegative=True)
    return Call(
        genmath.schedules.Schedule.from_sympy,
        dict(alpha=Plain(1 - t), sigma=Plain(t), t=Plain(t), min_scale=Unit(1e-3, open=True)),
    )


for _method in (*_SCHEDULE_METHODS,):

    def _build(spec, method=_method):
        return Call(getattr(USER_SCHEDULE, method), dict(t=Time(t_of(spec), poles=True)))

    case(f"genmath.schedules.Schedule.{_method}")(_build)


@case("genmath.schedules.Schedule.inverse_log_snr")
def _(spec):
    # no closed form: the inverse is a bisection
    return Call(
        USER_SCHEDULE.inverse_log_snr, dict(lam=Lam(USER_SCHEDULE.log_snr(t_of(spec, 0.3, 0.7))))
    )


@case("genmath.ReverseSDE.probability_flow")
def _(spec):
    return Call(_reverse(spec).probability_flow, {})


for _name, _path in (("CondOT", OT),):

    def _weighting(spec, path=_path):
        return Call(
            genmath.elbo_weighting,
            dict(
                loss=Option("velocity"),
                path=PathKind(path),
                lam=Lam(torch.linspace(-3, 3, 5, dtype=spec.dtype)),
            ),
        )

    case(f"genmath.elbo_weighting[{_name}]")(_weighting)
