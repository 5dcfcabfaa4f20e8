"""Valid calls of the flow families: normalizing flows, residual flows and CNFs (and the
methods of their layers), each argument tagged with its kind (see `contract.py`)."""

from __future__ import annotations

import torch
from api_cases_core import x_of
from api_cases_models import _seeded
from contract import (
    Call,
    Count,
    Data,
    Gen,
    Option,
    Param,
    Partner,
    Plain,
    Scale,
    Unit,
    case,
    seed_cpu,
)

from genmath.families import cnf, flows, residual

# --------------------------------------------------------------------------- flows


_FLOWS = {
    "RealNVP": lambda d: flows.RealNVP(d, 2, (8,)),
    "MAF": lambda d: flows.MAF(d, 2, (8,)),
    "IAF": lambda d: flows.IAF(d, 2, (8,)),
    "PlanarFlow": lambda d: flows.PlanarFlow(d, 2, generator=torch.Generator().manual_seed(5)),
    "NSF": lambda d: flows.NSF(d, 2, (8,)),
    "ResidualFlow": lambda d: residual.ResidualFlow(
        d, 2, (8,), generator=torch.Generator().manual_seed(5)
    ),
}

for _name, _make in _FLOWS.items():

    def _log_prob(spec, make=_make):
        seed_cpu(spec.seed)
        d = max(spec.dim, 2)
        model = _seeded(spec, make(d))
        return Call(
            model.log_prob, dict(x=Data(spec.randn(spec.batch, d, salt=1), fixed=True, mix=True))
        )

    def _sample(spec, make=_make):
        seed_cpu(spec.seed)
        model = _seeded(spec, make(max(spec.dim, 2)))
        return Call(model.sample_and_log_prob, dict(n=Count(3), generator=Gen(spec.generator(3))))

    case(f"genmath.families.flows.{_name}.log_prob")(_log_prob)
    case(f"genmath.families.flows.{_name}.sample_and_log_prob")(_sample)


@case("genmath.families.flows.RealNVP")
def _(spec):
    return Call(
        flows.RealNVP,
        dict(
            features=Count(3, minimum=2),
            layers=Count(2),
            hidden=Plain((8,)),
            scale_clamp=Scale(3.0),
        ),
    )


@case("genmath.families.flows.NSF")
def _(spec):
    return Call(
        flows.NSF,
        dict(
            features=Count(3, minimum=2),
            layers=Count(2),
            hidden=Plain((8,)),
            bins=Count(4, minimum=2),
            bound=Scale(3.0),
        ),
    )


@case("genmath.families.flows.PlanarFlow")
def _(spec):
    return Call(
        flows.PlanarFlow,
        dict(
            features=Count(3),
            layers=Count(2),
            explicit=Option("density"),
            generator=Gen(spec.generator(3)),
        ),
    )


@case("genmath.families.flows.checkerboard_mask")
def _(spec):
    return Call(
        flows.checkerboard_mask, dict(features=Count(4, minimum=2), parity=Plain(1))
    )


def _glow(spec):
    seed_cpu(spec.seed)
    return _seeded(spec, flows.Glow((2, 2, 2), 1, 4, generator=spec.generator(3)))


@case("genmath.families.flows.Glow.log_prob")
def _(spec):
    return Call(
        _glow(spec).log_prob,
        dict(x=Data(spec.randn(spec.batch, 2, 2, 2, salt=1), fixed=True, mix=True)),
    )


@case("genmath.families.flows.Glow.sample")
def _(spec):
    return Call(_glow(spec).sample, dict(n=Count(2), generator=Gen(spec.generator(3))))


@case("genmath.families.flows.Glow")
def _(spec):
    return Call(
        flows.Glow,
        dict(
            shape=Plain((2, 2, 2)),
            steps=Count(1),
            hidden=Count(4),
            generator=Gen(spec.generator(3)),
        ),
    )


@case("genmath.families.flows.InvertibleConv1x1.inverse")
def _(spec):
    conv = flows.InvertibleConv1x1(2, generator=spec.generator(3)).to(spec.dtype)
    return Call(conv.inverse, dict(y=Data(spec.randn(spec.batch, 2, 2, 2, salt=1), mix=True)))


@case("genmath.families.flows.InvertibleConv1x1.forward")
def _(spec):
    conv = flows.InvertibleConv1x1(2, generator=spec.generator(3)).to(spec.dtype)
    return Call(conv.forward, dict(x=Data(spec.randn(spec.batch, 2, 2, 2, salt=1), mix=True)))


@case("genmath.families.flows.InvertibleConv1x1.from_matrix")
def _(spec):
    w = spec.randn(2, 2, salt=3) + 2 * torch.eye(2, dtype=spec.dtype)
    return Call(flows.InvertibleConv1x1.from_matrix, dict(matrix=Param(w)))


@case("genmath.families.flows.ChannelCoupling.forward")
def _(spec):
    seed_cpu(spec.seed)
    layer = flows.ChannelCoupling(2, 4).to(spec.dtype)
    return Call(layer.forward, dict(x=Data(spec.randn(spec.batch, 2, 2, 2, salt=1), mix=True)))


@case("genmath.families.flows.RationalQuadraticCoupling.inverse")
def _(spec):
    seed_cpu(spec.seed)
    layer = flows.RationalQuadraticCoupling(3, bins=4, hidden=(8,)).to(spec.dtype)
    return Call(
        layer.inverse, dict(y=Data(spec.randn(spec.batch, 3, salt=1), fixed=True, mix=True))
    )


# --------------------------------------------------------------------------- residual


@case("genmath.families.residual.SpectralNormLinear")
def _(spec):
    return Call(
        residual.SpectralNormLinear,
        dict(in_features=Count(3), out_features=Count(3), coefficient=Scale(0.9)),
    )


@case("genmath.families.residual.power_series_logdet_bound")
def _(spec):
    return Call(
        residual.power_series_logdet_bound,
        dict(lipschitz=Unit(0.9, open=True), terms=Count(4), features=Count(3)),
    )


@case("genmath.families.residual.InvertibleResidualBlock")
def _(spec):
    return Call(
        residual.InvertibleResidualBlock,
        dict(
            features=Count(3),
            lipschitz=Unit(0.9, open=True),
            activation=Option("elu"),
            logdet=Option("roulette"),
            trace=Option("exact"),
            terms=Count(4),
            roulette_continue=Unit(0.5, open=True),
            probes=Count(1),
            noise=Option("gaussian"),
            inverse_tol=Scale(1e-9),
            max_iter=Count(50),
            generator=Gen(spec.generator(3)),
        ),
    )


@case("genmath.families.residual.InvertibleResidualBlock.forward_with_generator")
def _(spec):
    seed_cpu(spec.seed)
    block = residual.InvertibleResidualBlock(spec.dim, (8,), logdet="roulette").to(spec.dtype)
    return Call(
        block.forward_with_generator,
        dict(x=Data(x_of(spec), fixed=True, mix=True), generator=Gen(spec.generator(3))),
    )


@case("genmath.families.residual.InvertibleResidualBlock.inverse")
def _(spec):
    seed_cpu(spec.seed)
    block = residual.InvertibleResidualBlock(spec.dim, (8,), generator=spec.generator(3)).to(
        spec.dtype
    )
    return Call(block.inverse, dict(y=Data(x_of(spec), fixed=True, mix=True)))


# --------------------------------------------------------------------------- CNF


def _cnf(spec):
    seed_cpu(spec.seed)
    return _seeded(spec, cnf.CNF(spec.dim, hidden=8))


@case("genmath.families.cnf.CNF")
def _(spec):
    return Call(
        cnf.CNF, dict(dim=Count(2), hidden=Count(8), depth=Count(1), activation=Option("tanh"))
    )


@case("genmath.families.cnf.CNF.log_prob")
def _(spec):
    return Call(
        _cnf(spec).log_prob,
        dict(
            x=Data(x_of(spec), fixed=True, mix=True),
            divergence=Option("hutchinson"),
            method=Option("rk4"),
            probes=Count(1),
            noise=Option("gaussian"),
            generator=Gen(spec.generator(3)),
            options=Plain({"step_size": 0.25}),
        ),
    )


for _method in ("encode", "decode"):

    def _transport(spec, method=_method):
        name = "x" if method == "encode" else "z"
        return Call(
            getattr(_cnf(spec), method),
            {
                name: Data(x_of(spec), fixed=True, mix=True),
                "steps": Count(3),
                "method": Option("rk4"),
            },
        )

    case(f"genmath.families.cnf.CNF.{_method}")(_transport)


@case("genmath.families.cnf.CNF.sample")
def _(spec):
    return Call(
        _cnf(spec).sample,
        dict(n=Count(3), generator=Gen(spec.generator(3)), steps=Count(3), method=Option("rk4")),
    )


@case("genmath.families.cnf.CNF.regularizers")
def _(spec):
    return Call(
        _cnf(spec).regularizers,
        dict(
            x=Data(x_of(spec), fixed=True, mix=True),
            steps=Count(3),
            method=Option("rk4"),
            probes=Count(1),
            noise=Option("gaussian"),
            generator=Gen(spec.generator(3)),
        ),
    )


@case("genmath.families.cnf.ffjord_loss")
def _(spec):
    return Call(
        cnf.ffjord_loss,
        dict(
            cnf=_cnf(spec),
            x=Data(x_of(spec), fixed=True, mix=True),
            divergence=Option("hutchinson"),
            kinetic=Scale(0.1, zero_ok=True),
            jacobian=Scale(0.1, zero_ok=True),
            regularizer_steps=Count(2),
            generator=Gen(spec.generator(3)),
            method=Option("rk4"),
            options=Plain({"step_size": 0.5}),
        ),
    )


def _flow_model(spec):
    seed_cpu(spec.seed)
    d = max(spec.dim, 2)
    layer = flows.RealNVP(d, 1, (8,), context_features=1).transform
    return _seeded(spec, flows.FlowModel(layer, d)), d


@case("genmath.families.flows.FlowModel")
def _(spec):
    from genmath import Affine

    return Call(flows.FlowModel, dict(transform=Affine(2), event_shape=Plain((2,))))


@case("genmath.families.flows.FlowModel.log_prob")
def _(spec):
    model, d = _flow_model(spec)
    return Call(
        model.log_prob,
        dict(
            x=Data(spec.randn(spec.batch, d, salt=1), fixed=True, mix=True),
            context=Partner(spec.randn(spec.batch, 1, salt=2)),
        ),
    )


for _method in ("sample", "sample_and_log_prob"):

    def _flow_sample(spec, method=_method):
        model, _ = _flow_model(spec)
        return Call(
            getattr(model, method),
            dict(
                n=Count(3), context=Plain(spec.randn(1, salt=2)), generator=Gen(spec.generator(3))
            ),
        )

    case(f"genmath.families.flows.FlowModel.{_method}")(_flow_sample)


@case("genmath.families.flows.FlowModel.distribution")
def _(spec):
    model, _ = _flow_model(spec)
    return Call(model.distribution, dict(context=Plain(spec.randn(spec.batch, 1, salt=2))))


@case("genmath.families.flows.FlowModel.base")
def _(spec):
    return Call(_flow_model(spec)[0].base, {})


@case("genmath.families.flows.GlowStep")
def _(spec):
    return Call(
        flows.GlowStep,
        dict(channels=Count(2, minimum=2), hidden=Count(4), generator=Gen(spec.generator(3))),
    )


@case("genmath.families.flows.InvertibleConv1x1.weight")
def _(spec):
    return Call(flows.InvertibleConv1x1(2, generator=spec.generator(3)).weight, {})

def _block(spec):
    seed_cpu(spec.seed)
    return residual.InvertibleResidualBlock(spec.dim, (8,), generator=spec.generator(3)).to(
        spec.dtype
    )


@case("genmath.families.residual.InvertibleResidualBlock.residual")
def _(spec):
    return Call(_block(spec).residual, dict(x=Data(x_of(spec), fixed=True, mix=True)))


@case("genmath.families.residual.InvertibleResidualBlock.lipschitz_bound")
def _(spec):
    return Call(_block(spec).lipschitz_bound, {})


@case("genmath.families.residual.ResidualFlow")
def _(spec):
    return Call(
        residual.ResidualFlow,
        dict(
            features=Count(2), blocks=Count(1), hidden=Plain((8,)), lipschitz=Unit(0.9, open=True)
        ),
    )


def _spectral(spec):
    seed_cpu(spec.seed)
    return residual.SpectralNormLinear(spec.dim, 3, 0.9).to(spec.dtype)


@case("genmath.families.residual.SpectralNormLinear.forward")
def _(spec):
    return Call(_spectral(spec).forward, dict(x=Data(x_of(spec), fixed=True, mix=True)))


@case("genmath.families.residual.SpectralNormLinear.normalized_weight")
def _(spec):
    return Call(_spectral(spec).normalized_weight, {})
