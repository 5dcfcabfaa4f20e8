"""Valid calls of flow matching, consistency models and MeanFlow, each argument tagged with its
kind (see `contract.py`)."""

from __future__ import annotations

import torch
from api_cases_core import OT, PATHS, VP_PATH, t_of, velocity, x_of
from api_cases_paths import _levels
from contract import (
    Call,
    Count,
    Data,
    Gen,
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
    seed_cpu,
)

import genmath
from genmath.families import consistency, meanflow
from genmath.families import flow_matching as fm


@case("genmath.families.flow_matching.sample_times")
def _(spec):
    return Call(
        fm.sample_times,
        dict(
            n=Count(4),
            distribution=Option("logit_normal"),
            location=Real(0.0),
            scale=Scale(1.0),
            generator=Gen(spec.generator(3)),
            dtype=Plain(spec.dtype),
        ),
    )


@case("genmath.families.flow_matching.interpolate")
def _(spec):
    return Call(
        fm.interpolate,
        dict(
            x0=Data(x_of(spec), event=False),
            x1=Partner(x_of(spec, 2)),
            t=Time(t_of(spec), batch=spec.batch, edges=False),
            path=PathKind(OT),
            noise_scale=Scale(0.1, zero_ok=True),
            generator=Gen(spec.generator(3)),
        ),
    )


@case("genmath.families.flow_matching.cfm_loss")
def _(spec):
    return Call(
        fm.cfm_loss,
        dict(
            model=velocity(spec),
            x0=Data(x_of(spec)),
            path=PathKind(OT),
            parameterization=Option("velocity"),
            t=Plain(None),
            noise=Partner(x_of(spec, 2)),
            coupling=Option("ot"),
            noise_scale=Scale(0.0, zero_ok=True),
            time_distribution=Option("logit_normal"),
            logit_location=Real(0.0),
            logit_scale=Scale(1.0),
            generator=Gen(spec.generator(3)),
            reduction=Option("mean"),
        ),
    )


@case("genmath.families.flow_matching.cfm_loss[t]")
def _(spec):
    return Call(
        fm.cfm_loss,
        dict(
            model=velocity(spec),
            x0=Data(x_of(spec)),
            path=PathKind(VP_PATH),
            parameterization=Option("eps"),
            t=Time(t_of(spec), batch=spec.batch),
            reduction=Option("none"),
        ),
    )


@case("genmath.families.flow_matching.ot_coupling")
def _(spec):
    return Call(
        fm.ot_coupling,
        dict(x0=Data(x_of(spec), finite=True), x1=Partner(x_of(spec, 2), finite=True)),
    )


@case("genmath.families.flow_matching.reflow_pairs")
def _(spec):
    return Call(
        fm.reflow_pairs,
        dict(
            model=velocity(spec),
            noise=Data(x_of(spec), event=False),
            steps=Count(3),
            method=Option("rk4"),
        ),
    )


@case("genmath.families.flow_matching.straightness")
def _(spec):
    result = genmath.sample_ode(velocity(spec), x_of(spec), steps=3, keep_trajectory=True)
    return Call(fm.straightness, dict(result=Plain(result)))


@case("genmath.families.flow_matching.sample")
def _(spec):
    return Call(
        fm.sample,
        dict(
            model=velocity(spec),
            noise=Data(x_of(spec), event=False),
            steps=Count(3),
            method=Option("midpoint"),
        ),
    )


@case("genmath.families.flow_matching.standard_normal_log_prob")
def _(spec):
    return Call(fm.standard_normal_log_prob, dict(x=Data(x_of(spec))))


@case("genmath.families.flow_matching.guided")
def _(spec):
    return Call(
        fm.guided(velocity(spec), lambda x, t: x, 2.0),
        dict(x=Plain(x_of(spec)), t=Plain(0.5)),  # a model: the samplers validate states
    )


def _flow_matching(spec, parameterization="velocity", path=None):
    seed_cpu(spec.seed)
    net = genmath.nn.VelocityMLP(spec.dim, 8).to(spec.dtype)
    return fm.FlowMatching(net, path, parameterization)


@case("genmath.families.flow_matching.FlowMatching")
def _(spec):
    return Call(
        fm.FlowMatching,
        dict(network=lambda x, t: x, path=PathKind(OT), parameterization=Option("velocity")),
    )


@case("genmath.families.flow_matching.FlowMatching.loss")
def _(spec):
    return Call(
        _flow_matching(spec).loss,
        dict(
            x0=Data(x_of(spec), fixed=True, mix=True),
            generator=Gen(spec.generator(3)),
            reduction=Option("none"),
        ),
        aliases={"x0": ("x",)},  # the network names its own input x
    )


@case("genmath.families.flow_matching.FlowMatching.velocity")
def _(spec):
    return Call(
        _flow_matching(spec, "x0", VP_PATH).velocity,
        dict(x=Data(x_of(spec), fixed=True, mix=True), t=Time(t_of(spec), batch=spec.batch)),
    )


@case("genmath.families.flow_matching.FlowMatching.sample")
def _(spec):
    return Call(
        _flow_matching(spec).sample,
        dict(noise=Data(x_of(spec), fixed=True, mix=True), steps=Count(3), method=Option("euler")),
        aliases={"noise": ("x",)},  # the network names its own input x
    )


@case("genmath.families.flow_matching.FlowMatching.log_prob")
def _(spec):
    return Call(
        _flow_matching(spec).log_prob,
        dict(
            x=Data(x_of(spec), fixed=True, mix=True),
            method=Option("rk4"),
            options=Plain({"step_size": 0.25}),
        ),
    )


# --------------------------------------------------------------------------- consistency


def _consistency(spec):
    seed_cpu(spec.seed)
    net = genmath.nn.VelocityMLP(spec.dim, 8).to(spec.dtype)
    return consistency.ConsistencyModel(net, PATHS["VE"])


@case("genmath.families.consistency.boundary_coefficients")
def _(spec):
    return Call(
        consistency.boundary_coefficients,
        dict(
            s=Scale(_levels(spec) + 0.01, tensor=True, zero_ok=True),
            s_min=Scale(0.01, zero_ok=True),
            sigma_data=Scale(0.5),
        ),
    )


@case("genmath.families.consistency.ConsistencyModel")
def _(spec):
    return Call(
        consistency.ConsistencyModel,
        dict(network=lambda x, t: x, path=PathKind(PATHS["VE"]), sigma_data=Scale(0.5)),
    )


@case("genmath.families.consistency.ConsistencyModel.forward")
def _(spec):
    model = _consistency(spec)
    return Call(
        model.forward,
        dict(x=Data(x_of(spec), fixed=True, mix=True), t=Time(t_of(spec), batch=spec.batch)),
    )


@case("genmath.families.consistency.ConsistencyModel.noise_level")
def _(spec):
    return Call(_consistency(spec).noise_level, dict(t=Time(t_of(spec))))


@case("genmath.families.consistency.ema_update")
def _(spec):
    model = _consistency(spec)
    return Call(
        consistency.ema_update, dict(target=model.target_copy(), online=model, decay=Unit(0.9))
    )


@case("genmath.families.consistency.training_steps")
def _(spec):
    return Call(
        consistency.training_steps,
        dict(k=Count(3, minimum=0), total=Count(10), s0=Count(2), s1=Count(150)),
    )


@case("genmath.families.consistency.ema_decay")
def _(spec):
    return Call(
        consistency.ema_decay, dict(steps=Count(10), s0=Count(2), mu0=Unit(0.95))
    )


@case("genmath.families.consistency.consistency_training_loss")
def _(spec):
    model = _consistency(spec)
    return Call(
        consistency.consistency_training_loss,
        dict(
            model=model,
            target_model=model.target_copy(),
            x0=Data(x_of(spec), fixed=True, mix=True),
            path=PathKind(PATHS["VE"]),
            steps=Count(6),
            metric=Option("pseudo_huber"),
            huber_c=Scale(0.01),
            generator=Gen(spec.generator(3)),
            reduction=Option("mean"),
        ),
        aliases={"x0": ("x",)},  # the network names its own input x
    )


@case("genmath.families.consistency.consistency_distillation_loss")
def _(spec):
    model = _consistency(spec)
    return Call(
        consistency.consistency_distillation_loss,
        dict(
            model=model,
            target_model=model.target_copy(),
            x0=Data(x_of(spec), fixed=True, mix=True),
            path=PathKind(PATHS["VE"]),
            teacher=lambda x, t: 0.5 * x,
            grid=Count(6),
            solver=Option("euler"),
            teacher_parameterization=Option("x0"),
            metric=Option("l2"),
            generator=Gen(spec.generator(3)),
            reduction=Option("none"),
        ),
        aliases={"x0": ("x",)},  # the network names its own input x
    )


@case("genmath.families.consistency.sample")
def _(spec):
    model = _consistency(spec)
    return Call(
        consistency.sample,
        dict(
            model=model,
            noise=Data(x_of(spec), fixed=True, mix=True),
            times=Plain([0.5]),
            generator=Gen(spec.generator(3)),
        ),
        aliases={"noise": ("x",)},  # the network names its own input x
    )


# --------------------------------------------------------------------------- MeanFlow


def _average(spec):
    seed_cpu(spec.seed)
    return meanflow.AverageVelocityMLP(spec.dim, 8, 2).to(spec.dtype)


@case("genmath.families.meanflow.AverageVelocityMLP")
def _(spec):
    return Call(meanflow.AverageVelocityMLP, dict(dim=Count(2), hidden=Count(8), depth=Count(2)))


@case("genmath.families.meanflow.AverageVelocityMLP.forward")
def _(spec):
    return Call(
        _average(spec).forward,
        dict(
            z=Data(x_of(spec), fixed=True, mix=True),
            r=Time(0.2 * t_of(spec), batch=spec.batch, edges=False),
            t=Time(0.9, edges=False),
        ),
    )


@case("genmath.families.meanflow.sample_time_pairs")
def _(spec):
    return Call(
        meanflow.sample_time_pairs,
        dict(
            n=Count(4),
            distribution=Option("uniform"),
            equal_fraction=Unit(0.5),
            location=Real(-0.4),
            scale=Scale(1.0),
            generator=Gen(spec.generator(3)),
            dtype=Plain(spec.dtype),
        ),
    )


@case("genmath.families.meanflow.meanflow_target")
def _(spec):
    return Call(
        meanflow.meanflow_target,
        dict(
            model=_average(spec),
            z=Data(x_of(spec), fixed=True, mix=True),
            r=Time(0.2, edges=False),
            t=Time(0.7, edges=False),
            v=Partner(x_of(spec, 2)),
        ),
    )


@case("genmath.families.meanflow.adaptive_weight")
def _(spec):
    return Call(
        meanflow.adaptive_weight,
        dict(
            squared_error=Values(spec.rand(spec.batch, salt=1)),
            power=Scale(1.0, zero_ok=True),
            c=Scale(1e-3),
        ),
    )


for _name in ("meanflow_loss", "improved_meanflow_loss"):

    def _loss(spec, name=_name):
        return Call(
            getattr(meanflow, name),
            dict(
                model=_average(spec),
                x=Data(x_of(spec), fixed=True, mix=True),
                path=PathKind(OT),
                noise=Partner(x_of(spec, 2)),
                adaptive_power=Scale(1.0, zero_ok=True),
                adaptive_c=Scale(1e-3),
                generator=Gen(spec.generator(3)),
                reduction=Option("mean"),
            ),
        )

    case(f"genmath.families.meanflow.{_name}")(_loss)


@case("genmath.families.meanflow.sample")
def _(spec):
    return Call(
        meanflow.sample,
        dict(model=_average(spec), noise=Data(x_of(spec), fixed=True, mix=True), steps=Count(2)),
        aliases={"noise": ("z",)},  # the network names its own input z
    )


@case("genmath.families.meanflow.average_velocity_from_flow_map")
def _(spec):
    from genmath.analytic import Gaussian

    marginal = Gaussian(
        torch.zeros(spec.dim, dtype=spec.dtype), torch.eye(spec.dim, dtype=spec.dtype)
    ).marginal(OT)
    u = meanflow.average_velocity_from_flow_map(marginal.flow_map, marginal.velocity)
    return Call(
        u,
        dict(z=Data(x_of(spec), fixed=True), r=Time(0.2, edges=False), t=Time(0.8, edges=False)),
        aliases={"z": ("x",)},  # the flow map names its own input x
    )


@case("genmath.families.meanflow.MeanFlow.loss")
def _(spec):
    model = meanflow.MeanFlow(_average(spec))
    return Call(
        model.loss,
        dict(x=Data(x_of(spec), fixed=True, mix=True), generator=Gen(spec.generator(3))),
        aliases={"x": ("z",)},  # the network names its own input z
    )
