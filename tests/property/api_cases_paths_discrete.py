"""Valid calls of discrete diffusion (D3PM, masked diffusion, SEDD, discrete flow matching) and
of the denoiser networks, each argument tagged with its kind (see `contract.py`)."""

from __future__ import annotations

import torch
from api_cases_core import t_of, x_of
from api_cases_paths_flows import _average, _consistency, _flow_matching
from contract import (
    Call,
    Count,
    Data,
    Gen,
    NetTime,
    PathKind,
    Plain,
    Scale,
    Time,
    Tokens,
    case,
    seed_cpu,
)

import genmath
from genmath.families import denoisers, diffusion, meanflow
from genmath.families import discrete_diffusion as dd
from genmath.schedules import VP

# --------------------------------------------------------------------------- discrete diffusion

K = 3
_MASK = genmath.MaskPath(K)
_UNIFORM = genmath.UniformPath(K)


def _token_mlp(spec, path, length=3):
    seed_cpu(spec.seed)
    return dd.TokenMLP(length, path.num_states, K, hidden=8, mask_id=path.mask_id).to(spec.dtype)


def _x0(spec, length=3):
    return torch.randint(0, K, (spec.batch, length), generator=spec.generator(6))


for _pname, _dpath in (("MaskPath", _MASK), ("UniformPath", _UNIFORM)):

    def _d3pm(spec, path=_dpath):
        return dd.D3PM(_token_mlp(spec, path), path, 4)

    def _loss(spec, path=_dpath):
        return Call(
            _d3pm(spec, path).loss, dict(x0=Tokens(_x0(spec), K), generator=Gen(spec.generator(3)))
        )

    def _nelbo(spec, path=_dpath):
        return Call(
            _d3pm(spec, path).negative_elbo,
            dict(x0=Tokens(_x0(spec), K), generator=Gen(spec.generator(3))),
        )

    def _dsample(spec, path=_dpath):
        return Call(
            _d3pm(spec, path).sample,
            dict(n=Count(2), event_shape=Plain((3,)), generator=Gen(spec.generator(3))),
        )

    def _dfm(spec, path=_dpath):
        return Call(
            dd.dfm_loss,
            dict(
                denoiser=_token_mlp(spec, path),
                path=PathKind(path),
                x0=Tokens(_x0(spec), K),
                generator=Gen(spec.generator(3)),
            ),
        )

    def _dfm_sample(spec, path=_dpath):
        return Call(
            dd.dfm_euler_sample,
            dict(
                denoiser=_token_mlp(spec, path),
                path=PathKind(path),
                n=Count(2),
                event_shape=Plain((3,)),
                steps=Count(3),
                generator=Gen(spec.generator(3)),
                dtype=Plain(spec.dtype),
            ),
        )

    def _entropy(spec, path=_dpath):
        def log_score(xt, t):
            return torch.zeros(*xt.shape, path.num_states, dtype=spec.dtype)

        return Call(
            dd.score_entropy_loss,
            dict(
                score_model=log_score,
                path=PathKind(path),
                x0=Tokens(_x0(spec), K),
                t=Time(t_of(spec), batch=spec.batch, edges=False),
                generator=Gen(spec.generator(3)),
            ),
        )

    def _ancestral(spec, path=_dpath):
        return Call(
            dd.ancestral_sample,
            dict(
                denoiser=_token_mlp(spec, path),
                path=PathKind(path),
                n=Count(2),
                event_shape=Plain((3,)),
                steps=Count(3),
                generator=Gen(spec.generator(3)),
                dtype=Plain(spec.dtype),
            ),
        )

    for _label, _build in (
        ("D3PM.loss", _loss),
        ("D3PM.negative_elbo", _nelbo),
        ("D3PM.sample", _dsample),
        ("dfm_loss", _dfm),
        ("dfm_euler_sample", _dfm_sample),
        ("score_entropy_loss", _entropy),
        ("ancestral_sample", _ancestral),
    ):
        case(f"genmath.families.discrete_diffusion.{_label}[{_pname}]")(_build)


@case("genmath.families.discrete_diffusion.masked_diffusion_nelbo")
def _(spec):
    return Call(
        dd.masked_diffusion_nelbo,
        dict(
            denoiser=_token_mlp(spec, _MASK),
            path=PathKind(_MASK),
            x0=Tokens(_x0(spec), K),
            t=Time(t_of(spec), batch=spec.batch, edges=False),
            generator=Gen(spec.generator(3)),
        ),
    )


def _probs(spec, length=3):
    p = spec.rand(spec.batch, length, K, salt=7) + 0.1
    return p / p.sum(-1, keepdim=True)


@case("genmath.families.discrete_diffusion.denoiser_probs")
def _(spec):
    xt = _UNIFORM.sample(_x0(spec), 0.5, generator=spec.generator(8))
    return Call(
        dd.denoiser_probs,
        dict(
            path=PathKind(_UNIFORM),
            logits=Data(spec.randn(spec.batch, 3, K, salt=1), fixed=True, mix=True),
            xt=Plain(xt),
        ),
    )


@case("genmath.families.discrete_diffusion.reverse_probs")
def _(spec):
    xt = _UNIFORM.sample(_x0(spec), 0.5, generator=spec.generator(8))
    return Call(
        dd.reverse_probs,
        dict(
            path=PathKind(_UNIFORM),
            x0_probs=Data(_probs(spec), fixed=True),
            xt=Plain(xt),
            s=Time(0.3, edges=False),
            t=Time(0.6, edges=False),
        ),
    )


@case("genmath.families.discrete_diffusion.dfm_rates")
def _(spec):
    xt = _UNIFORM.sample(_x0(spec), 0.5, generator=spec.generator(8))
    return Call(
        dd.dfm_rates,
        dict(
            path=PathKind(_UNIFORM),
            x0_probs=Data(_probs(spec), fixed=True),
            xt=Plain(xt),
            t=Time(0.6, edges=False),
        ),
    )


@case("genmath.families.discrete_diffusion.concrete_score")
def _(spec):
    xt = _UNIFORM.sample(_x0(spec), 0.5, generator=spec.generator(8))
    return Call(
        dd.concrete_score,
        dict(
            path=PathKind(_UNIFORM),
            x0_probs=Data(_probs(spec), fixed=True),
            xt=Plain(xt),
            t=Time(0.6, edges=False),
        ),
    )


@case("genmath.families.discrete_diffusion.TokenMLP")
def _(spec):
    return Call(
        dd.TokenMLP,
        dict(length=Count(3), num_states=Count(4), num_categories=Count(3), hidden=Count(8)),
    )


@case("genmath.families.discrete_diffusion.D3PM")
def _(spec):
    return Call(
        dd.D3PM,
        dict(
            denoiser=lambda x, t: x,
            path=PathKind(_MASK),
            steps=Count(4),
            aux_weight=Scale(0.1, zero_ok=True),
        ),
    )


# --------------------------------------------------------------------------- denoisers


@case("genmath.families.denoisers.TimeEmbedding")
def _(spec):
    return Call(
        denoisers.TimeEmbedding, dict(features=Count(8), width=Count(8), max_frequency=Scale(100.0))
    )


@case("genmath.families.denoisers.TimeEmbedding.forward")
def _(spec):
    seed_cpu(spec.seed)
    embed = denoisers.TimeEmbedding(8, 8).to(spec.dtype)
    return Call(embed.forward, dict(t=Data(t_of(spec), event=False, mix=True, ints_ok=True)))


@case("genmath.families.denoisers.MLPDenoiser")
def _(spec):
    return Call(
        denoisers.MLPDenoiser,
        dict(
            dim=Count(2),
            hidden=Count(8),
            depth=Count(1),
            classes=Count(3),
            max_frequency=Scale(100.0),
        ),
    )


@case("genmath.families.denoisers.MLPDenoiser.forward")
def _(spec):
    seed_cpu(spec.seed)
    net = denoisers.MLPDenoiser(spec.dim, 8, 1, classes=3).to(spec.dtype)
    return Call(
        net.forward,
        dict(
            x=Data(x_of(spec), fixed=True, mix=True),
            t=NetTime(t_of(spec), batch=spec.batch),
            condition=Tokens(torch.arange(spec.batch) % 3, 3, null=True),
        ),
    )


@case("genmath.families.denoisers.UNet8.forward")
def _(spec):
    seed_cpu(spec.seed)
    net = denoisers.UNet8(1, 8).to(spec.dtype)
    return Call(
        net.forward,
        dict(
            x=Data(spec.randn(spec.batch, 1, 8, 8, salt=1), mix=True),
            t=NetTime(t_of(spec), batch=spec.batch),
        ),
    )


@case("genmath.families.diffusion.DiscreteSchedule.from_betas[VP]")
def _(spec):
    return Call(
        diffusion.DiscreteSchedule.from_betas,
        dict(
            betas=Plain(diffusion.linear_betas(1000).to(spec.dtype)),
            path=PathKind(genmath.GaussianPath(VP(0.1, 20.1355))),
        ),
    )


@case("genmath.families.consistency.ConsistencyModel.target_copy")
def _(spec):
    return Call(_consistency(spec).target_copy, {})


@case("genmath.families.discrete_diffusion.TokenMLP.forward")
def _(spec):
    net = _token_mlp(spec, _MASK)
    xt = _MASK.sample(_x0(spec), 0.5, generator=spec.generator(8))
    return Call(net.forward, dict(xt=Plain(xt), t=NetTime(t_of(spec), batch=spec.batch)))


@case("genmath.families.flow_matching.FlowMatching.forward")
def _(spec):
    return Call(
        _flow_matching(spec).forward,
        dict(x=Data(x_of(spec), fixed=True, mix=True), t=NetTime(t_of(spec), batch=spec.batch)),
    )


def _meanflow_model(spec):
    return meanflow.MeanFlow(_average(spec))


@case("genmath.families.meanflow.MeanFlow.forward")
def _(spec):
    return Call(
        _meanflow_model(spec).forward,
        dict(
            z=Data(x_of(spec), fixed=True, mix=True),
            r=Time(0.2, edges=False),
            t=Time(0.8, edges=False),
        ),
    )


@case("genmath.families.meanflow.MeanFlow.velocity")
def _(spec):
    return Call(
        _meanflow_model(spec).velocity, dict(z=Data(x_of(spec), fixed=True, mix=True), t=Time(0.8))
    )


@case("genmath.families.meanflow.MeanFlow.sample")
def _(spec):
    return Call(
        _meanflow_model(spec).sample,
        dict(noise=Data(x_of(spec), fixed=True, mix=True), steps=Count(2)),
        aliases={"noise": ("z",)},  # the network names its own input z
    )
