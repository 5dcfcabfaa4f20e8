"""Valid calls of the adversarial and energy-based families: GANs (losses, penalties, f-GAN,
optimal critics, training) and energy models, each argument tagged with its kind (see
`contract.py`)."""

from __future__ import annotations

import torch
from api_cases_core import OT, x_of
from api_cases_models import _seeded
from contract import (
    Call,
    Count,
    Data,
    Gen,
    Option,
    Partner,
    Plain,
    Scale,
    case,
    seed_cpu,
)
from torch import nn

from genmath.families import ebm, gan

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
    seed_cpu(spec.seed)
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
    seed_cpu(spec.seed)
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
    seed_cpu(spec.seed)
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
