r"""Generative adversarial networks: each loss is a variational bound on a divergence.

**Composition.** A GAN = a generator $G$ pushing noise $z$ to a sample distribution $q$ + a
discriminator (critic) $D$ + a loss whose inner maximum over $D$ is a divergence between the
data law $p$ and $q$. The only core piece used is the autograd gradient of a per-sample
scalar function (`genmath.core.score.score_from_log_prob`), which the gradient penalties
(WGAN-GP, R1, R2) take of the critic. Everything else in this file and the private modules it re-exports (`_gan_losses`,
`_gan_divergences`) is the divergence bounds themselves, which no other part of genmath needs.

Every loss is written in terms of the discriminator's **raw output** $v = D(x) \in \mathbb R$
(a logit for the minimax loss). A discriminator loss is
$\mathbb E_p[\phi(v(x))] + \mathbb E_q[\psi(v(x))]$, so the optimal raw output at each $x$
minimises $p\,\phi(v) + q\,\psi(v)$ pointwise:

| loss | optimal output $v^*(x)$ | $-$(discriminator loss) at $v^*$ | derivation |
| --- | --- | --- | --- |
| `minimax` (Goodfellow et al. 2014) | $\log p - \log q$ (so $D^* = p/(p+q)$) | $-\log 4 + 2\,\mathrm{JSD}(p\,\|\,q)$ | D-optimal-discriminator |
| `non_saturating` | as minimax | as minimax (the generator's loss is $\mathrm{KL}(q\,\|\,p) - \mathrm{KL}(q\,\|\,m) + \log 2$) | D-non-saturating-generator |
| `least_squares` (Mao et al. 2017, $a=-1, b=1, c=0$) | $(p - q)/(p + q)$ | $-1 + \tfrac12\int (p-q)^2/(p+q)$ | D-lsgan-optimal-discriminator |
| `hinge` (Lim & Ye 2017) | $\operatorname{sign}(p - q)$ | $-2 + 2\,\mathrm{TV}(p, q)$ | D-hinge-optimal-discriminator |
| `wasserstein` (Arjovsky et al. 2017) | a 1-Lipschitz $f^*$ | $W_1(p, q)$ | D-wgan-gaussian-translates |
| f-GAN (Nowozin et al. 2016) | $g_f^{-1}(f'(p/q))$ | $D_f(p\,\|\,q)$ | D-fgan-bound-* |

[`GAN_LOSSES`][genmath.families.gan.GAN_LOSSES] holds each as a
[`GANLoss`][genmath.families.gan.GANLoss], with its optimal discriminator for two known
densities.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import torch
from torch import nn

from .._implements import plumbing
from ..core._shapes import check_batch
from ..core._validate import (
    check_dtype,
    check_generator,
    check_option,
    module_dtype,
    positive_int,
)
from ._gan_divergences import (
    F_DIVERGENCES,
    GAN_LOSSES,
    FDivergence,
    GANLoss,
    fgan_bound,
    fgan_discriminator_loss,
    fgan_generator_loss,
    optimal_discriminator,
    optimal_wasserstein_critic,
)
from ._gan_losses import (
    _positive,
    _same_event_shape,
    clip_weights,
    gradient_penalty,
    hinge_discriminator_loss,
    hinge_generator_loss,
    least_squares_discriminator_loss,
    least_squares_generator_loss,
    minimax_discriminator_loss,
    minimax_generator_loss,
    non_saturating_generator_loss,
    r1_penalty,
    r2_penalty,
    relativistic_discriminator_loss,
    relativistic_generator_loss,
    wasserstein_critic_loss,
    wasserstein_generator_loss,
)

__all__ = [
    "MLP",
    "GANLoss",
    "GAN_LOSSES",
    "F_DIVERGENCES",
    "FDivergence",
    "minimax_discriminator_loss",
    "minimax_generator_loss",
    "non_saturating_generator_loss",
    "least_squares_discriminator_loss",
    "least_squares_generator_loss",
    "hinge_discriminator_loss",
    "hinge_generator_loss",
    "wasserstein_critic_loss",
    "wasserstein_generator_loss",
    "clip_weights",
    "gradient_penalty",
    "r1_penalty",
    "r2_penalty",
    "relativistic_discriminator_loss",
    "relativistic_generator_loss",
    "fgan_bound",
    "fgan_discriminator_loss",
    "fgan_generator_loss",
    "optimal_discriminator",
    "optimal_wasserstein_critic",
    "TrainingHistory",
    "train_gan",
]


class MLP(nn.Module):
    """A small fully connected network ``(B, in_dim) -> (B, out_dim)`` (``out_dim=None``:
    ``(B,)``), for generators, discriminators and energies on low-dimensional data."""

    def __init__(
        self,
        in_dim: int,
        out_dim: int | None,
        hidden: int = 128,
        depth: int = 3,
        activation: type[nn.Module] = nn.SiLU,
    ):
        super().__init__()
        for name, value in (("in_dim", in_dim), ("hidden", hidden), ("depth", depth)):
            positive_int(value, name)
        if out_dim is not None:
            positive_int(out_dim, "out_dim")
        self.in_dim = in_dim
        layers: list[nn.Module] = []
        width = in_dim
        for _ in range(depth - 1):
            layers += [nn.Linear(width, hidden), activation()]
            width = hidden
        layers.append(nn.Linear(width, 1 if out_dim is None else out_dim))
        self.net = nn.Sequential(*layers)
        self.scalar_output = out_dim is None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_batch(x, "x")
        if x.ndim != 2 or x.shape[1] != self.in_dim:
            raise ValueError(f"x must have shape (B, {self.in_dim}), got {tuple(x.shape)}")
        check_dtype(x, module_dtype(self), "x", "MLP")
        out = self.net(x)
        return out[:, 0] if self.scalar_output else out


# --- training -------------------------------------------------------------------------------


@dataclasses.dataclass
class TrainingHistory:
    """Per generator step: the discriminator's last loss and the generator's loss."""

    discriminator_loss: list[float] = dataclasses.field(default_factory=list)
    generator_loss: list[float] = dataclasses.field(default_factory=list)


_TRAINABLE = ("minimax", "non_saturating", "least_squares", "hinge", "wasserstein", "relativistic")


@plumbing("a training loop: alternating optimiser steps on the bound losses and penalties")
def train_gan(
    generator_net: nn.Module,
    discriminator: nn.Module,
    sample_data: Callable[[int, torch.Generator | None], torch.Tensor],
    *,
    latent_dim: int,
    loss: str = "non_saturating",
    steps: int = 1000,
    critic_steps: int = 1,
    batch_size: int = 256,
    lr: float = 2e-4,
    betas: tuple[float, float] = (0.5, 0.9),
    gradient_penalty_weight: float | None = None,
    clip: float | None = None,
    r1_gamma: float | None = None,
    r2_gamma: float | None = None,
    generator: torch.Generator | None = None,
) -> TrainingHistory:
    """Alternate ``critic_steps`` discriminator updates and one generator update, ``steps``
    times, with Adam.

    Arguments:
        generator_net: ``z (B, latent_dim) -> x``.
        discriminator: ``x -> (B,)`` raw outputs.
        sample_data: ``(n, generator) -> n`` data samples.
        loss: one of ``"minimax"``, ``"non_saturating"``, ``"least_squares"``, ``"hinge"``,
            ``"wasserstein"`` (with ``clip`` and/or ``gradient_penalty_weight``),
            ``"relativistic"`` (R3GAN; use with ``r1_gamma`` and ``r2_gamma``) or
            ``"fgan_<divergence>"``.
        generator: seeds the latent draws, the data draws and the penalty's interpolation.
    """
    known = (*_TRAINABLE, *(k for k in GAN_LOSSES if k.startswith("fgan_")))
    check_option(loss, known, "loss")
    positive_int(latent_dim, "latent_dim")
    check_generator(generator)
    for name, value in (
        ("steps", steps),
        ("critic_steps", critic_steps),
        ("batch_size", batch_size),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    _positive(lr, "lr")
    d_opt = torch.optim.Adam(discriminator.parameters(), lr=lr, betas=betas)
    g_opt = torch.optim.Adam(generator_net.parameters(), lr=lr, betas=betas)
    reference = next(generator_net.parameters())
    history = TrainingHistory()

    def latent(n):
        return torch.randn(
            n, latent_dim, generator=generator, dtype=reference.dtype, device=reference.device
        )

    for _ in range(steps):
        for _ in range(critic_steps):
            real = sample_data(batch_size, generator)
            with torch.no_grad():
                fake = generator_net(latent(batch_size))
            _same_event_shape(real, fake)
            d_real, d_fake = discriminator(real), discriminator(fake)
            d_loss = _discriminator_loss(loss, d_real, d_fake)
            if gradient_penalty_weight is not None:
                d_loss = d_loss + gradient_penalty(
                    discriminator, real, fake, gradient_penalty_weight, generator
                )
            if r1_gamma is not None:
                d_loss = d_loss + r1_penalty(discriminator, real, r1_gamma)
            if r2_gamma is not None:
                d_loss = d_loss + r2_penalty(discriminator, fake, r2_gamma)
            d_opt.zero_grad()
            d_loss.backward()
            d_opt.step()
            if clip is not None:
                clip_weights(discriminator, clip)
        fake = generator_net(latent(batch_size))
        if loss == "relativistic":
            real = sample_data(batch_size, generator)
            g_loss = relativistic_generator_loss(discriminator(real), discriminator(fake))
        else:
            g_loss = _generator_loss(loss, discriminator(fake))
        g_opt.zero_grad()
        g_loss.backward()
        g_opt.step()
        history.discriminator_loss.append(d_loss.item())
        history.generator_loss.append(g_loss.item())
    return history


def _discriminator_loss(loss: str, d_real, d_fake) -> torch.Tensor:
    if loss == "wasserstein":
        return wasserstein_critic_loss(d_real, d_fake)
    if loss == "relativistic":
        return relativistic_discriminator_loss(d_real, d_fake)
    return GAN_LOSSES[loss].discriminator_loss(d_real, d_fake)


def _generator_loss(loss: str, d_fake) -> torch.Tensor:
    if loss == "wasserstein":
        return wasserstein_generator_loss(d_fake)
    return GAN_LOSSES[loss].generator_loss(d_fake)
