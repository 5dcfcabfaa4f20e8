"""Valid calls of the change-of-variables API (bijections, `Flow`, adapters), the exact
oracles (`genmath.analytic`), `genmath.testing` and `genmath.nn`."""

from __future__ import annotations

import torch
from api_cases_core import OT, PATHS, VP_PATH, t_of, x_of
from contract import (
    Call,
    Count,
    Data,
    Gen,
    NetTime,
    Option,
    Param,
    Partner,
    PathKind,
    Plain,
    Scale,
    Spec,
    Time,
    Tokens,
    Unit,
    Values,
    case,
    seed_cpu,
)
from torch import distributions as D

import genmath
from genmath import analytic, testing
from genmath.nn import VelocityMLP


def _params(spec: Spec, module):
    return module.to(spec.dtype)


def _bijections(spec: Spec) -> dict:
    d = spec.dim if spec.dim >= 2 else 2
    seed_cpu(spec.seed)
    w = spec.randn(d, d, salt=21) + 2 * torch.eye(d, dtype=spec.dtype)
    return {
        "Affine": (genmath.Affine.from_matrix(w, spec.randn(d, salt=22)), d),
        "ElementwiseAffine": (
            genmath.ElementwiseAffine(
                d, log_scale=spec.randn(d, salt=23), shift=spec.randn(d, salt=24)
            ).to(spec.dtype),
            d,
        ),
        "ActNorm": (genmath.ActNorm(d).to(spec.dtype), d),
        "AffineCoupling": (genmath.AffineCoupling(d, hidden=(8,)).to(spec.dtype), d),
        "MaskedAutoregressive": (genmath.MaskedAutoregressive(d, (8,)).to(spec.dtype), d),
        "Planar": (genmath.Planar(d, generator=spec.generator(25)).to(spec.dtype), d),
        "Sigmoid": (genmath.Sigmoid(), d),
        "Compose": (
            genmath.Compose(
                genmath.ElementwiseAffine(d).to(spec.dtype), genmath.Affine(d).to(spec.dtype)
            ),
            d,
        ),
        "Inverse": (genmath.Inverse(genmath.Affine(d).to(spec.dtype)), d),
    }


for _name in (
    "Affine",
    "ElementwiseAffine",
    "ActNorm",
    "AffineCoupling",
    "MaskedAutoregressive",
    "Planar",
    "Sigmoid",
    "Compose",
    "Inverse",
):

    def _forward(spec, name=_name):
        bijection, d = _bijections(spec)[name]
        x = spec.randn(spec.batch, d, salt=1)
        return Call(
            bijection.forward, dict(x=Data(x, fixed=name != "Sigmoid", mix=name != "Sigmoid"))
        )

    def _inverse(spec, name=_name):
        bijection, d = _bijections(spec)[name]
        x = spec.randn(spec.batch, d, salt=1)
        y = bijection.forward(x)[0].detach()
        return Call(
            bijection.inverse, dict(y=Data(y, fixed=name != "Sigmoid", mix=name != "Sigmoid"))
        )

    case(f"genmath.{_name}.forward")(_forward)
    case(f"genmath.{_name}.inverse")(_inverse)


@case("genmath.Logit.forward")
def _(spec):
    return Call(
        genmath.Logit().forward, dict(x=Data(0.1 + 0.8 * spec.rand(spec.batch, spec.dim, salt=1)))
    )


@case("genmath.Affine")
def _(spec):
    return Call(
        genmath.Affine, dict(features=Count(3), permutation=Plain(None), diagonal=Option("signed"))
    )


@case("genmath.Affine.from_matrix")
def _(spec):
    w = spec.randn(3, 3, salt=21) + 2 * torch.eye(3, dtype=spec.dtype)
    return Call(genmath.Affine.from_matrix, dict(matrix=Param(w), bias=Plain(None)))


@case("genmath.ElementwiseAffine")
def _(spec):
    return Call(genmath.ElementwiseAffine, dict(param_shape=Count(3), event_dim=Count(1)))


@case("genmath.ActNorm")
def _(spec):
    return Call(genmath.ActNorm, dict(param_shape=Count(3), event_dim=Count(1)))


@case("genmath.ActNorm.initialize")
def _(spec):
    return Call(
        genmath.ActNorm(spec.dim).to(spec.dtype).initialize,
        dict(x=Data(x_of(spec), fixed=True, mix=True)),
    )


@case("genmath.AffineCoupling")
def _(spec):
    return Call(
        genmath.AffineCoupling,
        dict(features=Count(4, minimum=2), split=Count(2), scale_clamp=Scale(3.0)),
    )


@case("genmath.MaskedAutoregressive")
def _(spec):
    return Call(genmath.MaskedAutoregressive, dict(features=Count(3), scale_clamp=Scale(3.0)))


@case("genmath.Planar")
def _(spec):
    return Call(genmath.Planar, dict(features=Count(3), generator=Gen(spec.generator(3))))


@case("genmath.Sigmoid")
def _(spec):
    return Call(genmath.Sigmoid, dict(event_dim=Count(1, minimum=0)))


@case("genmath.Logit")
def _(spec):
    return Call(genmath.Logit, dict(event_dim=Count(1, minimum=0)))


def _flow(spec):
    d = max(spec.dim, 2)
    transform = genmath.Affine.from_matrix(
        spec.randn(d, d, salt=21) + 2 * torch.eye(d, dtype=spec.dtype)
    )
    zeros = torch.zeros(d, dtype=spec.dtype)
    return genmath.Flow(transform, D.Independent(D.Normal(zeros, torch.ones_like(zeros)), 1)), d


@case("genmath.Flow.log_prob")
def _(spec):
    flow, d = _flow(spec)
    return Call(
        flow.log_prob, dict(value=Data(spec.randn(spec.batch, d, salt=1), fixed=True, mix=True))
    )


for _method in ("sample", "rsample", "sample_and_log_prob", "rsample_and_log_prob"):

    def _draw(spec, method=_method):
        flow, _ = _flow(spec)
        return Call(
            getattr(flow, method),
            dict(sample_shape=Plain((spec.batch,)), generator=Gen(spec.generator(3))),
        )

    case(f"genmath.Flow.{_method}")(_draw)


@case("genmath.as_transform")
def _(spec):
    bijection, d = _bijections(spec)["Affine"]
    transform = genmath.as_transform(bijection)
    return Call(transform, dict(x=Data(spec.randn(spec.batch, d, salt=1), fixed=True, mix=True)))


@case("genmath.from_transform")
def _(spec):
    bijection = genmath.from_transform(D.transforms.ExpTransform())
    return Call(bijection.forward, dict(x=Data(x_of(spec))))


# --------------------------------------------------------------------------- analytic


def _gaussian(spec, d=None):
    d = d or spec.dim
    a = spec.randn(d, d, salt=31)
    return analytic.Gaussian(spec.randn(d, salt=32), a @ a.mT + torch.eye(d, dtype=spec.dtype))


def _mixture(spec):
    d = spec.dim
    covs = torch.stack([torch.eye(d, dtype=spec.dtype) * s for s in (0.5, 1.5)])
    return analytic.GaussianMixture(
        torch.tensor([0.3, 0.7], dtype=spec.dtype), spec.randn(2, d, salt=33), covs
    )


def _ppca(spec):
    return analytic.PPCA(
        spec.randn(spec.dim + 1, 2, salt=34), spec.randn(spec.dim + 1, salt=35), 0.5
    )


@case("genmath.analytic.Gaussian")
def _(spec):
    return Call(
        analytic.Gaussian,
        dict(mean=Param(spec.randn(2, salt=1)), cov=Plain(torch.eye(2, dtype=spec.dtype))),
    )


@case("genmath.analytic.Gaussian.log_prob")
def _(spec):
    return Call(_gaussian(spec).log_prob, dict(x=Data(x_of(spec), fixed=True, mix=True)))


@case("genmath.analytic.Gaussian.sample")
def _(spec):
    return Call(
        _gaussian(spec).sample,
        dict(n=Count(spec.batch, minimum=0), generator=Gen(spec.generator(3))),
    )


@case("genmath.analytic.Gaussian.marginal")
def _(spec):
    return Call(_gaussian(spec).marginal, dict(path=PathKind(OT)))


@case("genmath.analytic.Gaussian.flow_map")
def _(spec):
    return Call(
        _gaussian(spec).flow_map,
        dict(
            path=PathKind(VP_PATH),
            x=Data(x_of(spec), fixed=True, mix=True),
            t_from=Time(0.7, edges=False),
            t_to=Time(0.3, edges=False),
        ),
    )


@case("genmath.analytic.GaussianMixture")
def _(spec):
    return Call(
        analytic.GaussianMixture,
        dict(
            weights=Param(torch.tensor([0.3, 0.7], dtype=spec.dtype)),
            means=Plain(torch.zeros(2, 2, dtype=spec.dtype)),
            covs=Plain(torch.eye(2, dtype=spec.dtype).expand(2, 2, 2).clone()),
        ),
    )


@case("genmath.analytic.GaussianMixture.log_prob")
def _(spec):
    return Call(_mixture(spec).log_prob, dict(x=Data(x_of(spec), fixed=True, mix=True)))


for _method in ("sample", "sample_with_components"):

    def _msample(spec, method=_method):
        return Call(
            getattr(_mixture(spec), method),
            dict(n=Count(spec.batch, minimum=0), generator=Gen(spec.generator(3))),
        )

    case(f"genmath.analytic.GaussianMixture.{_method}")(_msample)


for _label, _make in (("GaussianMarginal", _gaussian), ("MixtureMarginal", _mixture)):
    for _method in ("log_prob", "responsibilities", "score", "denoise", "eps", "velocity"):

        def _marginal(spec, make=_make, method=_method):
            marginal = make(spec).marginal(PATHS["VP"])
            return Call(
                getattr(marginal, method),
                dict(
                    x=Data(x_of(spec), fixed=True, mix=True), t=Time(t_of(spec), batch=spec.batch)
                ),
            )

        case(f"genmath.analytic.{_label}.{_method}")(_marginal)


for _method in ("mean", "cov"):

    def _moment(spec, method=_method):
        return Call(getattr(_gaussian(spec).marginal(OT), method), dict(t=Time(t_of(spec))))

    case(f"genmath.analytic.GaussianMarginal.{_method}")(_moment)


@case("genmath.analytic.GaussianMarginal.flow_map")
def _(spec):
    return Call(
        _gaussian(spec).marginal(OT).flow_map,
        dict(x=Data(x_of(spec), fixed=True, mix=True), t_from=Time(0.7), t_to=Time(0.2)),
    )


@case("genmath.analytic.PPCA")
def _(spec):
    return Call(
        analytic.PPCA,
        dict(
            W=Plain(torch.ones(3, 2, dtype=spec.dtype)),
            b=Plain(torch.zeros(3, dtype=spec.dtype)),
            noise_std=Scale(0.5),
        ),
    )


for _method in ("log_prob", "posterior", "posterior_distribution"):

    def _ppca_method(spec, method=_method):
        return Call(
            getattr(_ppca(spec), method),
            dict(x=Data(spec.randn(spec.batch, spec.dim + 1, salt=1), fixed=True, mix=True)),
        )

    case(f"genmath.analytic.PPCA.{_method}")(_ppca_method)


@case("genmath.analytic.PPCA.likelihood")
def _(spec):
    return Call(
        _ppca(spec).likelihood,
        dict(z=Data(spec.randn(spec.batch, 2, salt=1), fixed=True, mix=True)),
    )


@case("genmath.analytic.PPCA.log_joint")
def _(spec):
    return Call(
        _ppca(spec).log_joint,
        dict(
            x=Data(spec.randn(spec.batch, spec.dim + 1, salt=1), fixed=True, mix=True),
            z=Partner(spec.randn(spec.batch, 2, salt=2)),
        ),
    )


for _method in ("sample", "sample_joint"):

    def _ppca_sample(spec, method=_method):
        return Call(
            getattr(_ppca(spec), method),
            dict(n=Count(spec.batch, minimum=0), generator=Gen(spec.generator(3))),
        )

    case(f"genmath.analytic.PPCA.{_method}")(_ppca_sample)


def _categorical(spec):
    probs = spec.rand(3, 3, salt=36) + 0.1
    return analytic.Categorical(probs / probs.sum())


@case("genmath.analytic.Categorical")
def _(spec):
    return Call(
        analytic.Categorical, dict(probs=Param(torch.full((3, 3), 1 / 9, dtype=spec.dtype)))
    )


@case("genmath.analytic.Categorical.from_logits")
def _(spec):
    return Call(analytic.Categorical.from_logits, dict(logits=Param(spec.randn(3, 3, salt=1))))


for _method in ("index", "log_prob"):

    def _cat(spec, method=_method):
        x = torch.randint(0, 3, (spec.batch, 2), generator=spec.generator(6))
        return Call(getattr(_categorical(spec), method), dict(x=Tokens(x, 3)))

    case(f"genmath.analytic.Categorical.{_method}")(_cat)


@case("genmath.analytic.Categorical.sample")
def _(spec):
    return Call(
        _categorical(spec).sample,
        dict(n=Count(spec.batch, minimum=0), generator=Gen(spec.generator(3))),
    )


# --------------------------------------------------------------------------- testing


@case("genmath.testing.z_threshold")
def _(spec):
    return Call(testing.z_threshold, dict(failure_prob=Unit(1e-6, open=True), comparisons=Count(2)))


@case("genmath.testing.assert_mean_matches")
def _(spec):
    samples = spec.randn(64, 2, salt=1)
    return Call(
        testing.assert_mean_matches,
        dict(
            samples=Values(samples),
            expected=Plain(samples.mean(0)),
            precision=Plain(1.0),  # what 64 draws resolve (k se = 0.7)
            failure_prob=Unit(1e-6, open=True),
        ),
        assertion_ok=True,
    )


@case("genmath.testing.assert_variance_matches")
def _(spec):
    samples = spec.randn(64, 2, salt=1)
    return Call(
        testing.assert_variance_matches,
        dict(
            samples=Values(samples),
            expected_variance=Plain(samples.var(0)),
            precision=Plain(2.0),  # what 64 draws resolve (k se = 1.3)
            failure_prob=Unit(1e-6, open=True),
        ),
        assertion_ok=True,
    )


@case("genmath.testing.assert_close")
def _(spec):
    a = spec.randn(3, salt=1)
    return Call(
        testing.assert_close,
        dict(
            actual=Values(a),
            expected=Plain(a + 1e-5),  # a difference float32 still sees (atol = 0 fails)
            atol=Scale(1e-3),
            rtol=Scale(0.0, zero_ok=True),
        ),
        assertion_ok=True,
    )


# --------------------------------------------------------------------------- nn


@case("genmath.nn.VelocityMLP")
def _(spec):
    return Call(
        VelocityMLP, dict(dim=Count(2), hidden=Count(8), depth=Count(1), activation=Option("tanh"))
    )


def _mlp(spec):
    seed_cpu(spec.seed)
    return VelocityMLP(spec.dim, 8).to(spec.dtype)


@case("genmath.nn.VelocityMLP.forward")
def _(spec):
    return Call(
        _mlp(spec).forward,
        dict(x=Data(x_of(spec), fixed=True, mix=True), t=NetTime(t_of(spec), batch=spec.batch)),
    )


@case("genmath.nn.VelocityMLP.velocity_and_divergence")
def _(spec):
    return Call(
        _mlp(spec).velocity_and_divergence,
        dict(x=Data(x_of(spec), fixed=True, mix=True), t=NetTime(t_of(spec), batch=spec.batch)),
    )


@case("genmath.nn.VelocityMLP.at")
def _(spec):
    return Call(
        lambda x: _mlp(spec).at(0.5).value_and_divergence(x),
        dict(x=Data(x_of(spec), fixed=True, mix=True)),
    )


@case("genmath.Affine.matrix")
def _(spec):
    return Call(_bijections(spec)["Affine"][0].matrix, {})


@case("genmath.Planar.u_hat")
def _(spec):
    return Call(_bijections(spec)["Planar"][0].u_hat, {})


@case("genmath.analytic.Categorical.enumerate")
def _(spec):
    return Call(_categorical(spec).enumerate, {})


@case("genmath.analytic.Categorical.token_marginals")
def _(spec):
    return Call(_categorical(spec).token_marginals, {})


@case("genmath.analytic.Gaussian.as_distribution")
def _(spec):
    return Call(_gaussian(spec).as_distribution, {})


@case("genmath.analytic.GaussianMixture.marginal")
def _(spec):
    return Call(_mixture(spec).marginal, dict(path=PathKind(OT)))
