"""Valid calls of the families that are not paths: VAE, tokenizers, autoregressive models,
normalizing and residual flows, CNFs, GANs and energy-based models."""

from __future__ import annotations

import torch
from api_cases_core import OT, x_of
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
    Tokens,
    Unit,
    case,
)
from torch import nn

from genmath.families import autoregressive as ar
from genmath.families import cnf, ebm, flows, gan, residual, tokenizer, vae


def _seeded(spec, module):
    return module.to(spec.dtype)


# --------------------------------------------------------------------------- VAE


def _vae(spec, cls=vae.VAE, **kw):
    torch.manual_seed(spec.seed)
    encoder = vae.GaussianEncoder(spec.dim, 2, hidden=(8,))
    decoder = vae.GaussianDecoder(2, (spec.dim,), hidden=(8,), std=0.5)
    return _seeded(spec, cls(encoder, decoder, **kw))


for _method in ("elbo", "loss"):

    def _vae_call(spec, method=_method):
        model = _vae(spec)
        return Call(
            getattr(model, method),
            dict(
                x=Data(x_of(spec), fixed=True, mix=True, ints_ok=True),
                n_samples=Count(2),
                generator=Gen(spec.generator(3)),
            ),
        )

    case(f"genmath.families.vae.VAE.{_method}")(_vae_call)


@case("genmath.families.vae.VAE.kl")
def _(spec):
    return Call(
        _vae(spec).kl,
        dict(
            x=Data(x_of(spec), fixed=True, mix=True, ints_ok=True),
            method=Option("mc"),
            n_samples=Count(2),
            generator=Gen(spec.generator(3)),
        ),
    )


@case("genmath.families.vae.VAE.log_likelihood")
def _(spec):
    return Call(
        _vae(spec).log_likelihood,
        dict(
            x=Data(x_of(spec), fixed=True, mix=True, ints_ok=True),
            k=Count(4),
            generator=Gen(spec.generator(3)),
            chunk=Count(3),
        ),
    )


@case("genmath.families.vae.VAE.sample")
def _(spec):
    return Call(_vae(spec).sample, dict(n=Count(3), generator=Gen(spec.generator(3))))


@case("genmath.families.vae.VAE")
def _(spec):
    return Call(
        vae.VAE,
        dict(
            encoder=vae.GaussianEncoder(2, 2),
            decoder=vae.GaussianDecoder(2, 2),
            beta=Scale(1.0, zero_ok=True),
        ),
    )


@case("genmath.families.vae.IWAE.bound")
def _(spec):
    return Call(
        _vae(spec, vae.IWAE, k=3).bound,
        dict(
            x=Data(x_of(spec), fixed=True, mix=True, ints_ok=True), generator=Gen(spec.generator(3))
        ),
    )


@case("genmath.families.vae.IWAE")
def _(spec):
    return Call(
        vae.IWAE,
        dict(encoder=vae.GaussianEncoder(2, 2), decoder=vae.GaussianDecoder(2, 2), k=Count(3)),
    )


@case("genmath.families.vae.BetaVAE")
def _(spec):
    return Call(
        vae.BetaVAE,
        dict(
            encoder=vae.GaussianEncoder(2, 2),
            decoder=vae.GaussianDecoder(2, 2),
            beta=Scale(4.0, zero_ok=True),
        ),
    )


@case("genmath.families.vae.GaussianEncoder")
def _(spec):
    return Call(vae.GaussianEncoder, dict(in_features=Count(3), latent_dim=Count(2)))


@case("genmath.families.vae.GaussianEncoder.forward")
def _(spec):
    torch.manual_seed(spec.seed)
    enc = _seeded(spec, vae.GaussianEncoder(spec.dim, 2, hidden=(8,)))
    return Call(enc.forward, dict(x=Data(x_of(spec), fixed=True, mix=True, ints_ok=True)))


for _cls in ("GaussianDecoder", "BernoulliDecoder", "CategoricalDecoder"):

    def _decoder(spec, cls=_cls):
        torch.manual_seed(spec.seed)
        extra = dict(categories=4) if cls == "CategoricalDecoder" else {}
        dec = _seeded(spec, getattr(vae, cls)(2, (3,), hidden=(8,), **extra))
        return Call(
            dec.forward, dict(z=Data(spec.randn(spec.batch, 2, salt=1), fixed=True, mix=True))
        )

    case(f"genmath.families.vae.{_cls}.forward")(_decoder)


@case("genmath.families.vae.GaussianDecoder")
def _(spec):
    return Call(
        vae.GaussianDecoder, dict(latent_dim=Count(2), event_shape=Plain((3,)), std=Scale(0.5))
    )


@case("genmath.families.vae.LinearGaussianVAE")
def _(spec):
    return Call(
        vae.LinearGaussianVAE,
        dict(data_dim=Count(3), latent_dim=Count(2), generator=Gen(spec.generator(3))),
    )


@case("genmath.families.vae.LinearGaussianVAE.elbo_gap")
def _(spec):
    model = _seeded(spec, vae.LinearGaussianVAE(spec.dim + 1, 2, generator=spec.generator(3)))
    return Call(
        model.elbo_gap,
        dict(x=Data(spec.randn(spec.batch, spec.dim + 1, salt=1), fixed=True, mix=True)),
    )


@case("genmath.families.vae.ppca_maximum_likelihood")
def _(spec):
    return Call(
        vae.ppca_maximum_likelihood, dict(x=Data(spec.randn(16, 3, salt=1)), latent_dim=Count(1))
    )


# --------------------------------------------------------------------------- tokenizers


def _codebook(spec):
    return spec.randn(5, spec.dim, salt=41)


@case("genmath.families.tokenizer.nearest_code")
def _(spec):
    return Call(
        tokenizer.nearest_code,
        dict(
            z=Data(x_of(spec), fixed=True, mix=True, finite=True),
            codebook=Data(_codebook(spec), batch=False, finite=True),
        ),
    )


@case("genmath.families.tokenizer.lloyd_step")
def _(spec):
    return Call(
        tokenizer.lloyd_step,
        dict(
            codebook=Data(_codebook(spec), batch=False, finite=True),
            z=Data(x_of(spec), fixed=True, mix=True, finite=True),
        ),
    )


@case("genmath.families.tokenizer.straight_through")
def _(spec):
    return Call(
        tokenizer.straight_through, dict(z=Data(x_of(spec), event=False), q=Partner(x_of(spec, 2)))
    )


@case("genmath.families.tokenizer.VectorQuantizer")
def _(spec):
    return Call(
        tokenizer.VectorQuantizer,
        dict(
            num_codes=Count(4),
            dim=Count(2),
            beta=Scale(0.25, zero_ok=True),
            decay=Unit(0.9),
            generator=Gen(spec.generator(3)),
        ),
    )


@case("genmath.families.tokenizer.VectorQuantizer.forward")
def _(spec):
    vq = _seeded(spec, tokenizer.VectorQuantizer(5, spec.dim, generator=spec.generator(3)))
    return Call(vq.forward, dict(z=Data(x_of(spec), fixed=True, mix=True, finite=True)))


@case("genmath.families.tokenizer.VectorQuantizer.forward[ema]")
def _(spec):
    vq = _seeded(
        spec, tokenizer.VectorQuantizer(5, spec.dim, ema=True, generator=spec.generator(3))
    )
    return Call(vq.forward, dict(z=Data(x_of(spec), fixed=True, mix=True, finite=True)))


@case("genmath.families.tokenizer.FSQ")
def _(spec):
    return Call(tokenizer.FSQ, dict(levels=Plain([3, 4]), eps=Unit(1e-3, open=True)))


@case("genmath.families.tokenizer.FSQ.forward")
def _(spec):
    fsq = tokenizer.FSQ([3, 4] + [3] * (spec.dim - 2) if spec.dim >= 2 else [5])
    return Call(fsq.forward, dict(z=Data(x_of(spec), fixed=True, finite=True)))


@case("genmath.families.tokenizer.FSQ.bound")
def _(spec):
    fsq = tokenizer.FSQ([3, 4] + [3] * (spec.dim - 2) if spec.dim >= 2 else [5])
    return Call(fsq.bound, dict(z=Data(x_of(spec), fixed=True)))


@case("genmath.families.tokenizer.FSQ.indices_to_codes")
def _(spec):
    fsq = tokenizer.FSQ([3, 4])
    return Call(
        fsq.indices_to_codes,
        dict(indices=Tokens(torch.arange(spec.batch) % 12, 12, lists_ok=True), dtype=Plain(spec.dtype)),
    )


@case("genmath.families.tokenizer.FSQ.codes_to_indices")
def _(spec):
    fsq = tokenizer.FSQ([3, 4])
    codes = fsq.indices_to_codes(torch.arange(spec.batch) % 12, spec.dtype)
    return Call(fsq.codes_to_indices, dict(codes=Data(codes, fixed=True, finite=True)))


@case("genmath.families.tokenizer.VQVAE.forward")
def _(spec):
    torch.manual_seed(spec.seed)
    model = tokenizer.VQVAE(
        nn.Linear(spec.dim, 2),
        tokenizer.VectorQuantizer(4, 2, generator=spec.generator(3)),
        vae.GaussianDecoder(2, (spec.dim,), hidden=(8,), std=0.5),
    )
    return Call(
        # integer x is documented input (grey levels under a categorical decoder; the
        # encoder reads it): docs/figures/vq_digits.py trains on digits' integer pixels
        _seeded(spec, model).forward,
        dict(x=Data(x_of(spec), mix=True, finite=True, event=False, ints_ok=True)),
    )


# --------------------------------------------------------------------------- autoregressive


@case("genmath.families.autoregressive.MADE")
def _(spec):
    return Call(
        ar.MADE,
        dict(features=Count(3), conditional=Option("categorical"), categories=Count(2, minimum=2)),
    )


@case("genmath.families.autoregressive.MADE.log_prob")
def _(spec):
    torch.manual_seed(spec.seed)
    made = _seeded(spec, ar.MADE(spec.dim, (8,)))
    return Call(made.log_prob, dict(x=Data(x_of(spec), fixed=True, mix=True)))


@case("genmath.families.autoregressive.MADE.log_prob[categorical]")
def _(spec):
    torch.manual_seed(spec.seed)
    made = _seeded(spec, ar.MADE(3, (8,), conditional="categorical", categories=4))
    x = torch.randint(0, 4, (spec.batch, 3), generator=spec.generator(6))
    return Call(made.log_prob, dict(x=Tokens(x, 4)))


@case("genmath.families.autoregressive.MADE.sample")
def _(spec):
    torch.manual_seed(spec.seed)
    made = _seeded(spec, ar.MADE(spec.dim, (8,)))
    return Call(made.sample, dict(n=Count(3), generator=Gen(spec.generator(3))))


@case("genmath.families.autoregressive.GaussianAutoregression")
def _(spec):
    return Call(
        ar.GaussianAutoregression,
        dict(
            mean=Param(torch.zeros(2, dtype=spec.dtype)), cov=Plain(torch.eye(2, dtype=spec.dtype))
        ),
    )


def _gar(spec):
    a = spec.randn(spec.dim, spec.dim, salt=31)
    return ar.GaussianAutoregression(
        spec.randn(spec.dim, salt=32), a @ a.mT + torch.eye(spec.dim, dtype=spec.dtype)
    )


@case("genmath.families.autoregressive.GaussianAutoregression.log_prob")
def _(spec):
    return Call(_gar(spec).log_prob, dict(x=Data(x_of(spec), fixed=True, mix=True)))


@case("genmath.families.autoregressive.GaussianAutoregression.sample")
def _(spec):
    return Call(_gar(spec).sample, dict(n=Count(3), generator=Gen(spec.generator(3))))


@case("genmath.families.autoregressive.chain_rule_log_prob")
def _(spec):
    x = x_of(spec)
    return Call(
        ar.chain_rule_log_prob,
        dict(
            conditionals=torch.distributions.Normal(
                torch.zeros_like(x), torch.ones_like(x), validate_args=False
            ),
            x=Data(x, mix=True, ints_ok=True),
        ),
    )


@case("genmath.families.autoregressive.PixelCNN")
def _(spec):
    return Call(
        ar.PixelCNN,
        dict(
            channels=Count(1),
            categories=Count(4, minimum=2),
            hidden=Count(4),
            layers=Count(1, minimum=0),
            kernel_size=Count(3),
        ),
    )


@case("genmath.families.autoregressive.PixelCNN.log_prob")
def _(spec):
    torch.manual_seed(spec.seed)
    model = _seeded(spec, ar.PixelCNN(1, 4, 4, 1, 3))
    x = torch.randint(0, 4, (spec.batch, 1, 3, 3), generator=spec.generator(6))
    return Call(model.log_prob, dict(x=Tokens(x, 4)))


@case("genmath.families.autoregressive.PixelCNN.sample")
def _(spec):
    torch.manual_seed(spec.seed)
    model = _seeded(spec, ar.PixelCNN(1, 4, 4, 1, 3))
    return Call(
        model.sample, dict(n=Count(2), size=Plain((2, 2)), generator=Gen(spec.generator(3)))
    )


@case("genmath.families.autoregressive.MaskedConv2d")
def _(spec):
    return Call(
        ar.MaskedConv2d,
        dict(
            in_channels=Count(2),
            out_channels=Count(2),
            kernel_size=Count(3),
            mask_type=Option("A"),
            data_channels=Count(1),
        ),
    )


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
        torch.manual_seed(spec.seed)
        d = max(spec.dim, 2)
        model = _seeded(spec, make(d))
        return Call(
            model.log_prob, dict(x=Data(spec.randn(spec.batch, d, salt=1), fixed=True, mix=True))
        )

    def _sample(spec, make=_make):
        torch.manual_seed(spec.seed)
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
    torch.manual_seed(spec.seed)
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
    torch.manual_seed(spec.seed)
    layer = flows.ChannelCoupling(2, 4).to(spec.dtype)
    return Call(layer.forward, dict(x=Data(spec.randn(spec.batch, 2, 2, 2, salt=1), mix=True)))


@case("genmath.families.flows.RationalQuadraticCoupling.inverse")
def _(spec):
    torch.manual_seed(spec.seed)
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
    torch.manual_seed(spec.seed)
    block = residual.InvertibleResidualBlock(spec.dim, (8,), logdet="roulette").to(spec.dtype)
    return Call(
        block.forward_with_generator,
        dict(x=Data(x_of(spec), fixed=True, mix=True), generator=Gen(spec.generator(3))),
    )


@case("genmath.families.residual.InvertibleResidualBlock.inverse")
def _(spec):
    torch.manual_seed(spec.seed)
    block = residual.InvertibleResidualBlock(spec.dim, (8,), generator=spec.generator(3)).to(
        spec.dtype
    )
    return Call(block.inverse, dict(y=Data(x_of(spec), fixed=True, mix=True)))


# --------------------------------------------------------------------------- CNF


def _cnf(spec):
    torch.manual_seed(spec.seed)
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


# --------------------------------------------------------------------------- GAN


def _outputs(spec, salt=1):
    return Data(spec.randn(spec.batch, salt=salt), event=False, finite=True)


for _name in (
    "minimax_discriminator_loss",
    "least_squares_discriminator_loss",
    "hinge_discriminator_loss",
    "wasserstein_critic_loss",
    "relativistic_discriminator_loss",
    "relativistic_generator_loss",
):
    _real = "real_logits" if _name.startswith("minimax") else "real_outputs"
    _fake = "fake_logits" if _name.startswith("minimax") else "fake_outputs"

    def _pair(spec, name=_name, real=_real, fake=_fake):
        return Call(getattr(gan, name), {real: _outputs(spec), fake: _outputs(spec, 2)})

    case(f"genmath.families.gan.{_name}")(_pair)

for _name in (
    "minimax_generator_loss",
    "non_saturating_generator_loss",
    "least_squares_generator_loss",
    "hinge_generator_loss",
    "wasserstein_generator_loss",
):
    _fake = "fake_logits" if _name.startswith(("minimax", "non_sat")) else "fake_outputs"

    def _single(spec, name=_name, fake=_fake):
        return Call(getattr(gan, name), {fake: _outputs(spec, 2)})

    case(f"genmath.families.gan.{_name}")(_single)


for _name in ("fgan_bound", "fgan_discriminator_loss"):

    def _fgan(spec, name=_name):
        return Call(
            getattr(gan, name),
            dict(
                divergence=Option("js"), real_outputs=_outputs(spec), fake_outputs=_outputs(spec, 2)
            ),
        )

    case(f"genmath.families.gan.{_name}")(_fgan)


@case("genmath.families.gan.fgan_generator_loss")
def _(spec):
    return Call(
        gan.fgan_generator_loss, dict(divergence=Option("kl"), fake_outputs=_outputs(spec, 2))
    )


def _critic(spec):
    torch.manual_seed(spec.seed)
    return _seeded(spec, gan.MLP(spec.dim, None, hidden=8, depth=2))


@case("genmath.families.gan.gradient_penalty")
def _(spec):
    return Call(
        gan.gradient_penalty,
        dict(
            critic=_critic(spec),
            real=Data(x_of(spec), mix=True),
            fake=Partner(x_of(spec, 2)),
            weight=Scale(10.0),
            generator=Gen(spec.generator(3)),
        ),
    )


for _name, _arg in (("r1_penalty", "real"), ("r2_penalty", "fake")):

    def _penalty(spec, name=_name, arg=_arg):
        return Call(
            getattr(gan, name),
            {"discriminator": _critic(spec), arg: Data(x_of(spec), mix=True), "gamma": Scale(1.0)},
            aliases={arg: ("x",)},  # the critic names its own input x
        )

    case(f"genmath.families.gan.{_name}")(_penalty)


@case("genmath.families.gan.clip_weights")
def _(spec):
    return Call(gan.clip_weights, dict(module=nn.Linear(2, 2), clip=Scale(0.01)))


@case("genmath.families.gan.optimal_discriminator")
def _(spec):
    disc = gan.optimal_discriminator(
        "minimax", lambda x: -x.pow(2).sum(1), lambda x: -(x - 1).pow(2).sum(1)
    )
    return Call(disc, dict(x=Data(x_of(spec), ints_ok=True, event=False)))


@case("genmath.families.gan.MLP.forward")
def _(spec):
    return Call(_critic(spec).forward, dict(x=Data(x_of(spec), fixed=True, mix=True)))


@case("genmath.families.gan.train_gan")
def _(spec):
    torch.manual_seed(spec.seed)
    g_net = _seeded(spec, gan.MLP(2, spec.dim, hidden=8, depth=2))
    d_net = _critic(spec)
    return Call(
        gan.train_gan,
        dict(
            generator_net=g_net,
            discriminator=d_net,
            sample_data=lambda n, g: torch.randn(n, spec.dim, generator=g, dtype=spec.dtype),
            latent_dim=Count(2),
            loss=Option("hinge"),
            steps=Count(2),
            critic_steps=Count(1),
            batch_size=Count(4),
            lr=Scale(1e-3),
            generator=Gen(spec.generator(3)),
        ),
    )


# --------------------------------------------------------------------------- EBM


def _energy_model(spec):
    torch.manual_seed(spec.seed)
    return ebm.EnergyModel(_seeded(spec, ebm.GaussianEnergy(spec.dim)))


for _method in ("energy", "unnormalized_log_prob", "score"):

    def _energy(spec, method=_method):
        return Call(
            getattr(_energy_model(spec), method), dict(x=Data(x_of(spec), fixed=True, mix=True))
        )

    case(f"genmath.families.ebm.EnergyModel.{_method}")(_energy)


@case("genmath.families.ebm.EnergyModel[mlp].energy")
def _(spec):
    model = ebm.EnergyModel(_critic(spec))
    return Call(model.energy, dict(x=Data(x_of(spec), fixed=True, mix=True)))


@case("genmath.families.ebm.EnergyModel.sample")
def _(spec):
    return Call(
        _energy_model(spec).sample,
        dict(
            x=Data(x_of(spec), fixed=True, mix=True),
            steps=Count(3),
            step_size=Scale(0.05),
            method=Option("mala"),
            generator=Gen(spec.generator(3)),
        ),
    )


@case("genmath.families.ebm.langevin")
def _(spec):
    return Call(
        ebm.langevin,
        dict(
            score=lambda x: -x,
            x=Data(x_of(spec)),
            step_size=Scale(0.05),
            steps=Count(3),
            generator=Gen(spec.generator(3)),
        ),
    )


@case("genmath.families.ebm.mala")
def _(spec):
    return Call(
        ebm.mala,
        dict(
            log_prob=lambda x: -0.5 * x.pow(2).reshape(len(x), -1).sum(1),
            x=Data(x_of(spec)),
            step_size=Scale(0.05),
            steps=Count(3),
            generator=Gen(spec.generator(3)),
        ),
    )


@case("genmath.families.ebm.annealed_langevin")
def _(spec):
    return Call(
        ebm.annealed_langevin,
        dict(
            score=lambda x, s: -x / (1 + s**2),
            x=Data(x_of(spec)),
            sigmas=Plain([1.0, 0.5]),
            steps_per_level=Count(2),
            step_size=Scale(0.01),
            generator=Gen(spec.generator(3)),
        ),
    )


@case("genmath.families.ebm.ula_stationary_variance")
def _(spec):
    return Call(ebm.ula_stationary_variance, dict(variance=Scale(1.0), step_size=Scale(0.1)))


@case("genmath.families.ebm.contrastive_divergence_loss")
def _(spec):
    return Call(
        ebm.contrastive_divergence_loss,
        dict(
            energy=_energy_model(spec),
            data=Data(x_of(spec), mix=True),
            negatives=Data(x_of(spec, 2), mix=True),
        ),
    )


@case("genmath.families.ebm.ContrastiveDivergence")
def _(spec):
    return Call(
        ebm.ContrastiveDivergence,
        dict(
            model=_energy_model(spec),
            steps=Count(1),
            step_size=Scale(0.01),
            sampler=Option("langevin"),
        ),
    )


@case("genmath.families.ebm.ContrastiveDivergence.loss")
def _(spec):
    trainer = ebm.ContrastiveDivergence(_energy_model(spec), steps=2, step_size=0.01)
    return Call(
        trainer.loss,
        dict(data=Data(x_of(spec), fixed=True, mix=True), generator=Gen(spec.generator(3))),
        aliases={"data": ("x",)},  # the energy network names its own input x
    )


@case("genmath.families.ebm.score_matching_loss")
def _(spec):
    return Call(
        ebm.score_matching_loss,
        dict(
            model=_energy_model(spec),
            x=Data(x_of(spec), fixed=True, mix=True),
            method=Option("sliced"),
            generator=Gen(spec.generator(3)),
        ),
    )


@case("genmath.families.ebm.score_matching_loss[denoising]")
def _(spec):
    return Call(
        ebm.score_matching_loss,
        dict(
            model=_energy_model(spec),
            x=Data(x_of(spec), fixed=True, mix=True),
            method=Option("denoising"),
            path=OT,
            t=0.5,
        ),
    )


@case("genmath.families.ebm.GaussianEnergy")
def _(spec):
    return Call(ebm.GaussianEnergy, dict(dim=Count(3)))


# --------------------------------------------------------------------------- the rest of the surface


@case("genmath.families.autoregressive.GaussianAutoregression.conditionals")
def _(spec):
    return Call(_gar(spec).conditionals, dict(x=Data(x_of(spec), fixed=True, mix=True)))


def _pixelcnn(spec):
    torch.manual_seed(spec.seed)
    return _seeded(spec, ar.PixelCNN(1, 4, 4, 1, 3, num_classes=2))


for _method in ("forward", "conditionals"):

    def _pixel(spec, method=_method):
        x = torch.randint(0, 4, (spec.batch, 1, 3, 3), generator=spec.generator(6))
        return Call(
            getattr(_pixelcnn(spec), method),
            dict(x=Tokens(x, 4), y=Tokens(torch.arange(spec.batch) % 2, 2)),
        )

    case(f"genmath.families.autoregressive.PixelCNN.{_method}")(_pixel)


@case("genmath.families.autoregressive.MaskedConv2d.forward")
def _(spec):
    conv = _seeded(spec, ar.MaskedConv2d(1, 2, 3, "A"))
    return Call(conv.forward, dict(x=Data(spec.randn(spec.batch, 1, 3, 3, salt=1), mix=True)))


@case("genmath.families.autoregressive.ancestral_sample")
def _(spec):
    gar = _gar(spec)
    return Call(
        ar.ancestral_sample,
        dict(
            conditionals=gar.conditionals,
            x=Data(torch.zeros(3, spec.dim, dtype=spec.dtype), mix=True),
            positions=Plain([(i,) for i in range(spec.dim)]),
            generator=Gen(spec.generator(3)),
        ),
    )


@case("genmath.families.ebm.ContrastiveDivergence.negatives")
def _(spec):
    trainer = ebm.ContrastiveDivergence(
        _energy_model(spec), steps=2, step_size=0.01, persistent=True
    )
    return Call(
        trainer.negatives,
        dict(data=Data(x_of(spec), fixed=True, mix=True), generator=Gen(spec.generator(3))),
        aliases={"data": ("x",)},  # the energy network names its own input x
    )


@case("genmath.families.ebm.EnergyModel.forward")
def _(spec):
    return Call(_energy_model(spec).forward, dict(x=Data(x_of(spec), fixed=True, mix=True)))


@case("genmath.families.ebm.GaussianEnergy.forward")
def _(spec):
    return Call(
        _energy_model(spec).energy_net.forward, dict(x=Data(x_of(spec), fixed=True, mix=True))
    )


for _method in ("precision", "scale_tril"):

    def _energy_matrix(spec, method=_method):
        return Call(getattr(_energy_model(spec).energy_net, method), {})

    case(f"genmath.families.ebm.GaussianEnergy.{_method}")(_energy_matrix)


def _flow_model(spec):
    torch.manual_seed(spec.seed)
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


@case("genmath.families.gan.GANLoss.discriminator_loss")
def _(spec):
    return Call(
        gan.GAN_LOSSES["least_squares"].discriminator_loss,
        dict(real_outputs=_outputs(spec), fake_outputs=_outputs(spec, 2)),
    )


@case("genmath.families.gan.optimal_wasserstein_critic")
def _(spec):
    from genmath.analytic import Gaussian

    eye = torch.eye(spec.dim, dtype=spec.dtype)
    p = Gaussian(torch.ones(spec.dim, dtype=spec.dtype), eye)
    q = Gaussian(torch.zeros(spec.dim, dtype=spec.dtype), eye)
    return Call(
        gan.optimal_wasserstein_critic(p, q), dict(x=Data(x_of(spec), fixed=True, mix=True))
    )


def _block(spec):
    torch.manual_seed(spec.seed)
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
    torch.manual_seed(spec.seed)
    return residual.SpectralNormLinear(spec.dim, 3, 0.9).to(spec.dtype)


@case("genmath.families.residual.SpectralNormLinear.forward")
def _(spec):
    return Call(_spectral(spec).forward, dict(x=Data(x_of(spec), fixed=True, mix=True)))


@case("genmath.families.residual.SpectralNormLinear.normalized_weight")
def _(spec):
    return Call(_spectral(spec).normalized_weight, {})


@case("genmath.families.vae.GaussianEncoder.mean_and_std")
def _(spec):
    torch.manual_seed(spec.seed)
    enc = _seeded(spec, vae.GaussianEncoder(spec.dim, 2, hidden=(8,)))
    return Call(enc.mean_and_std, dict(x=Data(x_of(spec), fixed=True, mix=True, ints_ok=True)))


@case("genmath.families.vae.LinearGaussianVAE.as_ppca")
def _(spec):
    return Call(_seeded(spec, vae.LinearGaussianVAE(3, 2, generator=spec.generator(3))).as_ppca, {})


@case("genmath.families.vae.LinearGaussianVAE.from_ppca")
def _(spec):
    from genmath.analytic import PPCA

    ppca = PPCA(spec.randn(3, 2, salt=1), spec.randn(3, salt=2), 0.5)
    return Call(vae.LinearGaussianVAE.from_ppca, dict(ppca=Plain(ppca)))
