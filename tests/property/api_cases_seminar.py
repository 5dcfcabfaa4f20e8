"""Valid calls of the seminar families: distillation into a one-step generator (SDS, VSD, DMD)
and Gaussian Schrödinger bridges with iterative Markovian fitting."""

from __future__ import annotations

import torch
from api_cases_core import VP_PATH, t_of, velocity, x_of
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
    Scale,
    Time,
    case,
)

from genmath.families import distillation, schrodinger_bridge

# --------------------------------------------------------------------------- distillation


def _fake(spec):
    f = velocity(spec)
    return lambda x, t: 0.5 * f(x, t)


for _name, _fakes, _weighting in (
    ("sds_loss", False, Scale(1.0, zero_ok=True)),
    ("vsd_loss", True, Scale(1.0, zero_ok=True)),
    ("dmd_loss", True, Option("dmd", strings_only=False)),
):

    def _loss(spec, name=_name, fakes=_fakes, weighting=_weighting):
        models = dict(real=velocity(spec), **({"fake": _fake(spec)} if fakes else {}))
        return Call(
            getattr(distillation, name),
            dict(
                x=Data(x_of(spec)),
                **models,
                path=PathKind(VP_PATH),
                parameterization=Option("x0" if name == "dmd_loss" else "eps"),
                t=Time(t_of(spec), batch=spec.batch),
                weighting=weighting,
                eps=Partner(x_of(spec, 2)),
                generator=Gen(spec.generator(3)),
                reduction=Option("mean"),
            ),
        )

    case(f"genmath.families.distillation.{_name}")(_loss)


# --------------------------------------------------------------------------- Schrödinger bridges


def _ends(spec):
    d = spec.dim
    a = spec.randn(d, d, salt=21)
    b = spec.randn(d, d, salt=22)
    return dict(
        mean0=Param(spec.randn(d, salt=23)),
        cov0=Param(a @ a.T + torch.eye(d, dtype=spec.dtype)),
        mean1=Param(spec.randn(d, salt=24)),
        cov1=Param(b @ b.T + 0.5 * torch.eye(d, dtype=spec.dtype)),
    )


def _mixture(spec):
    ends = {k: v.value for k, v in _ends(spec).items()}
    bridge = schrodinger_bridge.GaussianSchrodingerBridge(**ends, sigma=0.8)
    return schrodinger_bridge.GaussianBridgeMixture(**ends, cross_cov=0.5 * bridge.cross_cov, sigma=0.8)


@case("genmath.families.schrodinger_bridge.GaussianBridgeMixture")
def _(spec):
    cross = torch.zeros(spec.dim, spec.dim, dtype=spec.dtype)
    return Call(
        schrodinger_bridge.GaussianBridgeMixture,
        dict(**_ends(spec), cross_cov=Param(cross), sigma=Scale(0.8, zero_ok=True)),
    )


@case("genmath.families.schrodinger_bridge.GaussianSchrodingerBridge")
def _(spec):
    return Call(schrodinger_bridge.GaussianSchrodingerBridge, dict(**_ends(spec), sigma=Scale(0.8, zero_ok=True)))


@case("genmath.families.schrodinger_bridge.schrodinger_bridge_cross_covariance")
def _(spec):
    ends = _ends(spec)
    return Call(
        schrodinger_bridge.schrodinger_bridge_cross_covariance,
        dict(cov0=ends["cov0"], cov1=ends["cov1"], sigma=Scale(0.8, zero_ok=True)),
    )


for _method in ("mean", "cov"):

    def _moment(spec, method=_method):
        return Call(getattr(_mixture(spec), method), dict(t=Time(0.3)))

    case(f"genmath.families.schrodinger_bridge.GaussianBridgeMixture.{_method}")(_moment)


@case("genmath.families.schrodinger_bridge.GaussianBridgeMixture.drift")
def _(spec):
    return Call(
        _mixture(spec).drift,
        dict(x=Data(x_of(spec), fixed=True, mix=True), t=Time(t_of(spec), batch=spec.batch)),
    )


@case("genmath.families.schrodinger_bridge.GaussianBridgeMixture.project")
def _(spec):
    return Call(_mixture(spec).project, dict(direction=Option("backward"), steps=Count(8)))


for _method in ("coupling", "transport_cost"):

    def _plain(spec, method=_method):
        return Call(getattr(_mixture(spec), method), dict())

    case(f"genmath.families.schrodinger_bridge.GaussianBridgeMixture.{_method}")(_plain)


@case("genmath.families.schrodinger_bridge.iterative_markovian_fitting")
def _(spec):
    return Call(
        schrodinger_bridge.iterative_markovian_fitting,
        dict(start=Plain(_mixture(spec)), iterations=Count(2), alternate=Plain(True), steps=Count(8)),
    )


@case("genmath.families.schrodinger_bridge.brownian_bridge")
def _(spec):
    return Call(
        schrodinger_bridge.brownian_bridge,
        dict(
            x0=Data(x_of(spec)),
            x1=Partner(x_of(spec, 2)),
            t=Time(t_of(spec), batch=spec.batch),
            sigma=Scale(0.8, zero_ok=True),
            generator=Gen(spec.generator(3)),
            noise=Partner(x_of(spec, 4)),
        ),
    )


@case("genmath.families.schrodinger_bridge.bridge_matching_loss")
def _(spec):
    return Call(
        schrodinger_bridge.bridge_matching_loss,
        dict(
            drift=velocity(spec),
            x0=Data(x_of(spec)),
            x1=Partner(x_of(spec, 2)),
            sigma=Scale(0.8, zero_ok=True),
            t=Time(t_of(spec), batch=spec.batch),
            generator=Gen(spec.generator(3)),
            reduction=Option("mean"),
            noise=Partner(x_of(spec, 4)),
        ),
    )
