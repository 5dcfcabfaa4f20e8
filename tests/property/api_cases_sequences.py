"""Valid calls of the sequence methods: MAR and Diffusion Forcing on continuous tokens
(`genmath.families.mar`), and the masked ELBO's time sampler and ReMDM remasking
(`genmath.families.discrete_diffusion`), each argument tagged with its kind."""

from __future__ import annotations

import torch
from api_cases_paths_discrete import _MASK, K, _probs, _token_mlp
from contract import Call, Count, Data, Gen, Option, PathKind, Plain, Scale, Time, Unit, case

import genmath
from genmath.families import discrete_diffusion as dd
from genmath.families import mar
from genmath.schedules import CondOT

_PATH = genmath.GaussianPath(CondOT())
_L, _D = 3, 2


def _seq():
    return mar.GaussianSequence(_L, _D, 0.8, 0.1, 0.5, 0.2, 1.1)


def _x(spec, salt=1):
    return spec.randn(spec.batch, _L, _D, salt=salt)


def _context(x, known):
    return x  # shape-agnostic models: a wrong event size is valid input for the losses


def _head(xt, t, z):
    return 0.5 * xt + 0.1 * z


def _denoiser(xt, t):
    return 0.5 * xt


def _known(spec):
    known = torch.zeros(spec.batch, _L, dtype=torch.bool)
    known[:, 0] = True
    return known


# ----------------------------------------------------------------------------------- MAR


@case("genmath.families.mar.GaussianSequence")
def _(spec):
    return Call(
        mar.GaussianSequence,
        dict(length=Count(_L), dim=Count(_D), noise_std=Scale(0.5), initial_std=Scale(1.1)),
    )


@case("genmath.families.mar.GaussianSequence.sample")
def _(spec):
    return Call(_seq().sample, dict(n=Count(spec.batch), generator=Gen(spec.generator(3))))


@case("genmath.families.mar.GaussianSequence.mean")
def _(spec):
    return Call(_seq().mean, dict(dtype=Plain(spec.dtype)))


@case("genmath.families.mar.GaussianSequence.covariance")
def _(spec):
    return Call(_seq().covariance, dict(dtype=Plain(spec.dtype)))


for _method in ("conditional", "context"):

    def _cond(spec, method=_method):
        return Call(
            getattr(_seq(), method), dict(x=Data(_x(spec), fixed=True), known=Plain(_known(spec)))
        )

    case(f"genmath.families.mar.GaussianSequence.{_method}")(_cond)


@case("genmath.families.mar.GaussianSequence.head")
def _(spec):
    return Call(_seq().head, dict(path=PathKind(_PATH)))


@case("genmath.families.mar.GaussianSequence.eps")
def _(spec):
    return Call(_seq().eps, dict(path=PathKind(_PATH)))


@case("genmath.families.mar.mar_mask")
def _(spec):
    return Call(mar.mar_mask, dict(n=Count(spec.batch), length=Count(_L), generator=Gen(spec.generator(3))))


@case("genmath.families.mar.mar_loss")
def _(spec):
    return Call(
        mar.mar_loss,
        dict(
            context=Plain(_context),
            head=Plain(_head),
            path=PathKind(_PATH),
            x0=Data(_x(spec)),
            generator=Gen(spec.generator(3)),
            known=Plain(_known(spec)),
            t=Time(0.4, edges=False),
        ),
    )


@case("genmath.families.mar.mar_sample")
def _(spec):
    seq = _seq()
    return Call(
        mar.mar_sample,
        dict(
            context=Plain(seq.context),
            head=Plain(seq.head(_PATH)),
            path=PathKind(_PATH),
            n=Count(2),
            length=Count(_L),
            dim=Count(_D),
            steps=Count(_L),
            generator=Gen(spec.generator(3)),
            ode_steps=Count(4),
            dtype=Plain(spec.dtype),
        ),
    )


@case("genmath.families.mar.diffusion_forcing_loss")
def _(spec):
    return Call(
        mar.diffusion_forcing_loss,
        dict(
            denoiser=Plain(_denoiser),
            path=PathKind(_PATH),
            x0=Data(_x(spec)),
            t=Time(0.4, edges=False),
            generator=Gen(spec.generator(3)),
        ),
    )


@case("genmath.families.mar.diffusion_forcing_schedule")
def _(spec):
    return Call(mar.diffusion_forcing_schedule, dict(length=Count(_L), steps=Count(3), lag=Count(1, 0)))


@case("genmath.families.mar.diffusion_forcing_sample")
def _(spec):
    return Call(
        mar.diffusion_forcing_sample,
        dict(
            denoiser=Plain(_seq().eps(_PATH)),
            path=PathKind(_PATH),
            n=Count(2),
            length=Count(_L),
            dim=Count(_D),
            steps=Count(2),
            generator=Gen(spec.generator(3)),
            lag=Count(1, 0),
            substeps=Count(1),
            dtype=Plain(spec.dtype),
        ),
    )


# ----------------------------------------------------------------- masked sampling, ReMDM


@case("genmath.families.discrete_diffusion.masked_elbo_times")
def _(spec):
    return Call(
        dd.masked_elbo_times,
        dict(
            n=Count(spec.batch),
            generator=Gen(spec.generator(3)),
            sampler=Option("stratified_importance"),
            power=Unit(0.5),
            dtype=Plain(spec.dtype),
        ),
    )


@case("genmath.families.discrete_diffusion.remdm_sigma")
def _(spec):
    return Call(
        dd.remdm_sigma,
        dict(
            path=PathKind(_MASK),
            s=Time(0.3, edges=False),
            t=Time(0.6, edges=False),
            schedule=Option("rescale"),
            eta=Unit(0.5),
        ),
    )


@case("genmath.families.discrete_diffusion.remdm_probs")
def _(spec):
    xt = _MASK.sample(torch.randint(0, K, (spec.batch, 3), generator=spec.generator(6)), 0.5,
                      generator=spec.generator(8))
    return Call(
        dd.remdm_probs,
        dict(
            path=PathKind(_MASK),
            x0_probs=Data(_probs(spec), fixed=True),
            xt=Plain(xt),
            s=Time(0.3, edges=False),
            t=Time(0.6, edges=False),
            sigma=Plain(0.1),
        ),
    )


@case("genmath.families.discrete_diffusion.remdm_sample")
def _(spec):
    return Call(
        dd.remdm_sample,
        dict(
            denoiser=_token_mlp(spec, _MASK),
            path=PathKind(_MASK),
            n=Count(2),
            event_shape=Plain((3,)),
            steps=Count(3),
            generator=Gen(spec.generator(3)),
            schedule=Option("cap"),
            eta=Scale(0.1, zero_ok=True),
            dtype=Plain(spec.dtype),
        ),
    )


