"""Valid calls of the flow-map API: the identity residuals of `genmath.core.flow_map`, the exact
oracle `genmath.analytic.ExactFlowMap`, the losses and sampler of
`genmath.families.flow_maps` and IMM's of `genmath.families.flow_maps_imm`, each argument
tagged with its kind (see `contract.py`). All on the closed-form 2-D Gaussian map, whose
event size is fixed at 2."""

from __future__ import annotations

import torch
from api_cases_core import OT
from api_cases_testing import NOT_CALLABLE, Bad, _points
from contract import Call, Count, Data, Gen, Option, Scale, Spec, Time, Unit, case

import genmath
from genmath.analytic import ExactFlowMap, Gaussian
from genmath.families import flow_maps, flow_maps_imm

_REDUCTION = ("a bad reduction", "sum")
# what the model and the core residuals call the data, the noise and sCM's start time
_ALIASES = {"x0": ["x"], "noise": ["x"], "t": ["s"]}


def _marginal(spec: Spec):
    cov = torch.tensor([[0.6, 0.25], [0.25, 0.3]], dtype=spec.dtype)
    return Gaussian(torch.tensor([0.5, -1.0], dtype=spec.dtype), cov).marginal(OT)


def _exact(spec: Spec):
    return ExactFlowMap(_marginal(spec))


def _model(spec: Spec):
    return Bad(_exact(spec), NOT_CALLABLE, ("a two-argument model", lambda x, t: x))


def _teacher(spec: Spec):
    return Bad(_marginal(spec).velocity, NOT_CALLABLE)


def _x(spec: Spec, salt: int = 1, *, finite: bool = False):
    """States of the 2-D map; ``finite``: the callable refuses NaN (a loss or the sampler,
    which start trajectories there), else NaN propagates."""
    return Data(_points(spec, salt), fixed=True, mix=True, finite=finite)


@case("genmath.semigroup_residual")
def _(spec):
    return Call(genmath.semigroup_residual, dict(
        model=_model(spec), x=_x(spec), s=Time(0.8), u=Time(0.5), t=Time(0.2)))


@case("genmath.lagrangian_residual")
def _(spec):
    return Call(genmath.lagrangian_residual, dict(
        model=_model(spec), velocity=_teacher(spec), x=_x(spec), s=Time(0.8), t=Time(0.2)))


@case("genmath.eulerian_residual")
def _(spec):
    return Call(genmath.eulerian_residual, dict(
        model=_model(spec), velocity=_teacher(spec), x=_x(spec), s=Time(0.8), t=Time(0.2)))


@case("genmath.analytic.ExactFlowMap")
def _(spec):
    return Call(ExactFlowMap, dict(
        marginal=Bad(_marginal(spec), ("not a marginal", 3)), steps=Count(8),
        method=Option("rk4")))


@case("genmath.analytic.ExactFlowMap.velocity")
def _(spec):
    return Call(_exact(spec).velocity, dict(x=_x(spec), t=Time(0.5)))


@case("genmath.analytic.ExactFlowMap.average_velocity")
def _(spec):
    return Call(_exact(spec).average_velocity, dict(x=_x(spec), s=Time(0.8), t=Time(0.3)))


@case("genmath.analytic.ExactFlowMap.consistency_function")
def _(spec):
    return Call(_exact(spec).consistency_function, dict(x=_x(spec), t=Time(0.8)))


@case("genmath.families.flow_maps.sample_interval")
def _(spec):
    return Call(flow_maps.sample_interval, dict(n=Count(4), generator=Gen()))


def _loss_call(fn, spec, *, teacher=True, **extra):
    kwargs = dict(model=_model(spec), x0=_x(spec, finite=True), s=Time(0.8), t=Time(0.3),
                  reduction=Bad("mean", _REDUCTION))
    if teacher:
        kwargs["teacher"] = _teacher(spec)
    # the model and the core residuals see the interpolant of x0 as x
    return Call(fn, {**kwargs, **extra}, aliases=_ALIASES)


@case("genmath.families.flow_maps.lagrangian_distillation_loss")
def _(spec):
    return _loss_call(flow_maps.lagrangian_distillation_loss, spec)


@case("genmath.families.flow_maps.eulerian_distillation_loss")
def _(spec):
    return _loss_call(flow_maps.eulerian_distillation_loss, spec)


@case("genmath.families.flow_maps.shortcut_loss")
def _(spec):
    return _loss_call(flow_maps.shortcut_loss, spec)


@case("genmath.families.flow_maps.scm_tangent")
def _(spec):
    return Call(flow_maps.scm_tangent, dict(
        model=_model(spec), x0=_x(spec, finite=True), t=Time(0.5),
        noise=Data(_points(spec, 2), fixed=True, finite=True)), aliases=_ALIASES)


@case("genmath.families.flow_maps.scm_loss")
def _(spec):
    call = _loss_call(flow_maps.scm_loss, spec, tangent_normalization=Scale(0.1))
    call.kwargs.pop("s")
    return call


@case("genmath.families.flow_maps.sample")
def _(spec):
    return Call(flow_maps.sample, dict(model=_model(spec), noise=_x(spec, finite=True), steps=Count(2)),
                aliases=_ALIASES)


@case("genmath.families.flow_maps_imm.gaussian_rbf_kernel_mean")
def _(spec):
    m = _marginal(spec)
    return Call(flow_maps_imm.gaussian_rbf_kernel_mean, dict(
        mean1=Bad(m.mean(0.0), ("a wrong shape", torch.zeros(2, 2))), cov1=Bad(m.cov(0.0), ("a wrong shape", torch.eye(3))),
        mean2=Bad(m.mean(0.5), ("a wrong shape", torch.zeros(2, 2))), cov2=Bad(m.cov(0.5), ("a wrong shape", torch.eye(3))),
        bandwidth=Scale(1.0)))


@case("genmath.families.flow_maps_imm.gaussian_rbf_mmd")
def _(spec):
    m = _marginal(spec)
    return Call(flow_maps_imm.gaussian_rbf_mmd, dict(
        mean1=Bad(m.mean(0.0), ("a wrong shape", torch.zeros(2, 2))), cov1=Bad(m.cov(0.0), ("a wrong shape", torch.eye(3))),
        mean2=Bad(m.mean(0.5), ("a wrong shape", torch.zeros(2, 2))), cov2=Bad(m.cov(0.5), ("a wrong shape", torch.eye(3))),
        bandwidth=Scale(1.0)))


@case("genmath.families.flow_maps_imm.mmd_unbiased")
def _(spec):
    a = spec.randn(2, 4, 2, salt=3)
    return Call(flow_maps_imm.mmd_unbiased, dict(
        a=Bad(a, ("one per group", a[:, :1]), ("a list", a.tolist())),
        b=Bad(a + 0.5, ("a wrong shape", a[:1])), bandwidth=Scale(1.0)))


@case("genmath.families.flow_maps_imm.imm_loss")
def _(spec):
    x0 = spec.randn(8, 2, salt=4)
    return Call(flow_maps_imm.imm_loss, dict(
        model=_model(spec), x0=Data(x0, fixed=True, mix=True, finite=True),
        group_size=Count(4, minimum=2), bandwidth=Scale(1.0), gap=Unit(0.5, open=True),
        generator=Gen(), reduction=Bad("mean", _REDUCTION)), aliases=_ALIASES)
