"""Valid calls of the latent-variable and autoregressive families: VAE, tokenizers and
autoregressive models (the flows are in `api_cases_models_flows.py`, GANs and energy models in
`api_cases_models_adversarial.py`)."""

from __future__ import annotations

import torch
from api_cases_core import x_of
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
    seed_cpu,
)
from torch import nn

from genmath.families import autoregressive as ar
from genmath.families import tokenizer, vae


def _seeded(spec, module):
    return module.to(spec.dtype)


# --------------------------------------------------------------------------- VAE


def _vae(spec, cls=vae.VAE, **kw):
    seed_cpu(spec.seed)
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
    seed_cpu(spec.seed)
    enc = _seeded(spec, vae.GaussianEncoder(spec.dim, 2, hidden=(8,)))
    return Call(enc.forward, dict(x=Data(x_of(spec), fixed=True, mix=True, ints_ok=True)))


for _cls in ("GaussianDecoder", "BernoulliDecoder", "CategoricalDecoder"):

    def _decoder(spec, cls=_cls):
        seed_cpu(spec.seed)
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
    seed_cpu(spec.seed)
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
    seed_cpu(spec.seed)
    made = _seeded(spec, ar.MADE(spec.dim, (8,)))
    return Call(made.log_prob, dict(x=Data(x_of(spec), fixed=True, mix=True)))


@case("genmath.families.autoregressive.MADE.log_prob[categorical]")
def _(spec):
    seed_cpu(spec.seed)
    made = _seeded(spec, ar.MADE(3, (8,), conditional="categorical", categories=4))
    x = torch.randint(0, 4, (spec.batch, 3), generator=spec.generator(6))
    return Call(made.log_prob, dict(x=Tokens(x, 4)))


@case("genmath.families.autoregressive.MADE.sample")
def _(spec):
    seed_cpu(spec.seed)
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
    seed_cpu(spec.seed)
    model = _seeded(spec, ar.PixelCNN(1, 4, 4, 1, 3))
    x = torch.randint(0, 4, (spec.batch, 1, 3, 3), generator=spec.generator(6))
    return Call(model.log_prob, dict(x=Tokens(x, 4)))


@case("genmath.families.autoregressive.PixelCNN.sample")
def _(spec):
    seed_cpu(spec.seed)
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


# --------------------------------------------------------------------------- the rest of the surface


@case("genmath.families.autoregressive.GaussianAutoregression.conditionals")
def _(spec):
    return Call(_gar(spec).conditionals, dict(x=Data(x_of(spec), fixed=True, mix=True)))


def _pixelcnn(spec):
    seed_cpu(spec.seed)
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


@case("genmath.families.vae.GaussianEncoder.mean_and_std")
def _(spec):
    seed_cpu(spec.seed)
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
