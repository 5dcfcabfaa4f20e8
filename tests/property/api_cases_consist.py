"""Valid calls of the consistency-model options (EDM inputs, Algorithm 1 re-noising, the
paper's N(k) grid) and of the noise-unconditional target of the exact marginals."""

from __future__ import annotations

import torch
from api_cases_core import PATHS, t_of, x_of
from contract import Call, Count, Data, Gen, Option, PathKind, Plain, Scale, Time, case

import genmath
from genmath.families import consistency


def _edm_consistency(spec):
    torch.manual_seed(spec.seed)
    net = genmath.nn.VelocityMLP(spec.dim, 8).to(spec.dtype)
    return consistency.ConsistencyModel(
        net, PATHS["VE"], input_scaling=True, noise_conditioning="edm"
    )


@case("genmath.families.consistency.ConsistencyModel")
def _(spec):
    return Call(
        consistency.ConsistencyModel,
        dict(
            network=lambda x, t: x,
            path=PathKind(PATHS["VP"]),
            sigma_data=Scale(0.5),
            input_scaling=Plain(True),
            noise_conditioning=Option("edm"),
        ),
    )


@case("genmath.families.consistency.ConsistencyModel.forward")
def _(spec):
    model = _edm_consistency(spec)
    return Call(
        model.forward,
        dict(x=Data(x_of(spec), fixed=True, mix=True), t=Time(t_of(spec), batch=spec.batch)),
    )


@case("genmath.families.consistency.renoise")
def _(spec):
    return Call(
        consistency.renoise,
        dict(
            x=Data(x_of(spec)),
            t_from=Time(t_of(spec, 0.1, 0.3), batch=spec.batch, edges=False),
            t_to=Time(0.6, edges=False),
            path=PathKind(PATHS["VE"]),
            rule=Option("algorithm1"),
            generator=Gen(spec.generator(3)),
        ),
    )


@case("genmath.families.consistency.training_grid")
def _(spec):
    return Call(
        consistency.training_grid,
        dict(
            k=Count(3, minimum=0),
            total=Count(10),
            path=PathKind(PATHS["VE"]),
            s0=Count(2, minimum=2),
            s1=Count(150),
            rho=Scale(7.0),
        ),
    )


@case("genmath.families.consistency.sample")
def _(spec):
    model = _edm_consistency(spec)
    return Call(
        consistency.sample,
        dict(
            model=model,
            noise=Data(x_of(spec), fixed=True, mix=True),
            times=Plain([0.5]),
            renoise=Option("algorithm1"),
            generator=Gen(spec.generator(3)),
        ),
        aliases={"noise": ("x",)},  # the network names its own input x
    )


# --------------------------------------------------------------------------- Sun et al.'s target


def _mixture_marginal(spec):
    d = spec.dim
    covs = torch.stack([torch.eye(d, dtype=spec.dtype) * s for s in (0.5, 1.5)])
    data = genmath.analytic.GaussianMixture(
        torch.tensor([0.3, 0.7], dtype=spec.dtype), spec.randn(2, d, salt=33), covs
    )
    return data.marginal(PATHS["VE"])


@case("genmath.analytic.noise_unconditional_target")
def _(spec):
    return Call(
        genmath.analytic.noise_unconditional_target,
        dict(
            marginal=_mixture_marginal(spec),
            x=Data(x_of(spec), fixed=True, mix=True),
            target=Option("velocity"),
            loss_weight=lambda t: 1 + t,
            panels=Count(4),
            order=Count(4),
        ),
    )


@case("genmath.analytic.time_posterior")
def _(spec):
    return Call(
        genmath.analytic.time_posterior,
        dict(
            marginal=_mixture_marginal(spec),
            x=Data(x_of(spec), fixed=True, mix=True),
            interval=Plain((0.1, 0.9)),
            panels=Count(4),
            order=Count(4),
        ),
    )
