"""Valid calls of optimal transport (`genmath.ot`) and of the guidance beyond classifier-free
(classifier guidance, autoguidance, CFG++ and the exact Gaussian laws)."""

from __future__ import annotations

import torch
from api_cases_core import VP_PATH, t_of, velocity, x_of
from contract import Call, Count, Data, Option, Param, PathKind, Plain, Real, Scale, Time, case

from genmath import ot
from genmath.families import diffusion

# --------------------------------------------------------------------------- optimal transport


def _weights(spec, n, salt):
    w = spec.rand(n, salt=salt) + 0.1
    return w / w.sum()


def _marginals(spec):
    n, m = spec.batch, spec.batch + 1
    return dict(
        a=Param(_weights(spec, n, 31)),
        b=Param(_weights(spec, m, 32)),
        cost=Param(spec.rand(n, m, salt=33) * 2),
    )


@case("genmath.ot.discrete_ot")
def _(spec):
    return Call(ot.discrete_ot, _marginals(spec))


@case("genmath.ot.sinkhorn")
def _(spec):
    return Call(
        ot.sinkhorn,
        dict(**_marginals(spec), epsilon=Scale(0.5), tol=Scale(1e-9), max_iter=Count(10_000)),
    )


@case("genmath.ot.wasserstein")
def _(spec):
    return Call(
        ot.wasserstein,
        dict(x=Data(x_of(spec), finite=True), y=Data(x_of(spec, 2)[:-1], finite=True), p=Scale(2.0)),
    )


@case("genmath.ot.wasserstein[weighted]")
def _(spec):
    return Call(
        ot.wasserstein,
        dict(
            x=Plain(x_of(spec)),
            y=Plain(x_of(spec, 2)),
            x_weights=Param(_weights(spec, spec.batch, 34)),
            y_weights=Param(_weights(spec, spec.batch, 35)),
        ),
    )


@case("genmath.ot.assignment")
def _(spec):
    return Call(ot.assignment, dict(cost=Param(spec.rand(spec.batch, spec.batch, salt=36)), backend=Option("scipy")))


def _spd(spec, salt):
    a = spec.randn(spec.dim, spec.dim, salt=salt)
    return a @ a.T + 0.5 * torch.eye(spec.dim, dtype=spec.dtype)


def _gaussians(spec):
    return dict(
        m0=Param(spec.randn(spec.dim, salt=37)),
        S0=Param(_spd(spec, 38)),
        m1=Param(spec.randn(spec.dim, salt=39)),
        S1=Param(_spd(spec, 40)),
    )


@case("genmath.ot.gaussian_w2")
def _(spec):
    return Call(ot.gaussian_w2, _gaussians(spec))


@case("genmath.ot.gaussian_ot_map")
def _(spec):
    return Call(ot.gaussian_ot_map, _gaussians(spec))


@case("genmath.ot.psd_sqrt")
def _(spec):
    return Call(ot.psd_sqrt, dict(matrix=Param(_spd(spec, 41))))


# --------------------------------------------------------------------------- guidance


@case("genmath.families.diffusion.classifier_guidance")
def _(spec):
    def classifier(x, t):
        return -0.5 * (x - 1).pow(2).sum(1)

    return Call(
        diffusion.classifier_guidance,
        dict(score=Plain(lambda x, t: -x), classifier=Plain(classifier), scale=Real(2.0)),
    )


@case("genmath.families.diffusion.classifier_guidance[field]")
def _(spec):
    field = diffusion.classifier_guidance(lambda x, t: -x, lambda x, t: -0.5 * (x - 1).pow(2).sum(1), 2.0)
    return Call(field, dict(x=Plain(x_of(spec)), t=Plain(0.5)))  # a model: samplers validate states


@case("genmath.families.diffusion.autoguidance")
def _(spec):
    return Call(
        diffusion.autoguidance,
        dict(model=Plain(velocity(spec)), weak_model=Plain(lambda x, t: 0.5 * x), scale=Real(2.0)),
    )


@case("genmath.families.diffusion.cfgpp_sample")
def _(spec):
    return Call(
        diffusion.cfgpp_sample,
        dict(
            conditional=Plain(lambda x, t: 0.5 * x),
            unconditional=Plain(lambda x, t: 0.3 * x),
            x1=Data(x_of(spec), finite=True),
            path=PathKind(VP_PATH),
            scale=Scale(0.5, zero_ok=True),
            steps=Count(3),
            parameterization=Option("eps"),
        ),
    )


def _laws_arguments(spec):
    return dict(
        mean=Param(spec.randn(spec.dim, salt=42)),
        variance=Param(spec.rand(spec.dim, salt=43) + 0.5),
        likelihood_variance=Param(spec.rand(spec.dim, salt=44) + 0.2),
        condition=Param(spec.randn(spec.dim, salt=45)),
    )


@case("genmath.families.diffusion.gaussian_guidance_laws")
def _(spec):
    return Call(diffusion.gaussian_guidance_laws, dict(**_laws_arguments(spec), scale=Scale(2.0, zero_ok=True)))


@case("genmath.families.diffusion.GaussianGuidanceLaws.guided_score")
def _(spec):
    laws = diffusion.gaussian_guidance_laws(
        **{k: v.value for k, v in _laws_arguments(spec).items()}, scale=2.0
    )
    return Call(
        laws.guided_score,
        dict(
            x=Data(x_of(spec), fixed=True, mix=True),
            t=Time(t_of(spec), batch=spec.batch),
            path=PathKind(VP_PATH),
        ),
    )
