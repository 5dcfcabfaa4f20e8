"""The classical GAN losses in the discriminator's raw output, the gradient penalties and
the relativistic pair, with the input checks every GAN loss shares (the public names are
re-exported by `genmath.families.gan`, whose module docstring tabulates them)."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn
from torch.nn import functional as F

from .._implements import implements, plumbing
from ..core._shapes import check_batch
from ..core._validate import (
    InputTypeError,
    check_dtype,
    check_finite,
    check_generator,
    module_dtype,
)
from ..core.score import score_from_log_prob

# --- input checks ------------------------------------------------------------------------


def _outputs(values: torch.Tensor, name: str) -> torch.Tensor:
    """A discriminator's raw outputs: one finite value per sample, shape ``(B,)``."""
    if not isinstance(values, torch.Tensor):
        raise InputTypeError(f"{name} must be a torch.Tensor, got {type(values).__name__}")
    if not values.is_floating_point():
        raise ValueError(f"{name} must be floating point (raw outputs), got dtype {values.dtype}")
    if values.ndim == 2 and values.shape[1] == 1:
        values = values[:, 0]
    if values.ndim != 1:
        raise ValueError(
            f"{name} must hold one discriminator output per sample, shape (B,) or (B, 1), "
            f"got shape {tuple(values.shape)}"
        )
    if values.shape[0] == 0:
        raise ValueError(f"{name} must hold at least one output, got an empty batch")
    if not torch.isfinite(values).all():
        raise ValueError(f"{name} must be finite, got non-finite discriminator outputs")
    return values


def _same_event_shape(real: torch.Tensor, fake: torch.Tensor) -> None:
    check_batch(real, "real")
    check_batch(fake, "fake")
    if fake.dtype != real.dtype:
        raise InputTypeError(f"fake has dtype {fake.dtype} but real has dtype {real.dtype}")
    if real.shape[1:] != fake.shape[1:]:
        raise ValueError(
            f"real and fake samples must have the same event shape, got real "
            f"{tuple(real.shape)} and fake {tuple(fake.shape)}"
        )


def _positive(value: float, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ValueError(f"{name} must be a positive number, got {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return float(value)


# --- the classical losses ------------------------------------------------------------------


@implements("D-optimal-discriminator")
def minimax_discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor):
    r"""$-\big(\mathbb E_p[\log D] + \mathbb E_q[\log(1 - D)]\big)$, $D = \mathrm{sigmoid}(v)$,
    from logits $v$ (Goodfellow et al. 2014). Its minimum over $D$ is
    $\log 4 - 2\,\mathrm{JSD}(p\,\|\,q)$ at $D^* = p/(p+q)$ (D-optimal-discriminator)."""
    real = _outputs(real_logits, "real_logits")
    fake = _outputs(fake_logits, "fake_logits")
    # -log sigmoid(v) = softplus(-v) and -log(1 - sigmoid(v)) = softplus(v), stable for all v
    return F.softplus(-real).mean() + F.softplus(fake).mean()


@implements("D-optimal-discriminator")
def minimax_generator_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    r"""The generator's side of the minimax game, $\mathbb E_q[\log(1 - D(x))]$
    (it saturates when $D$ rejects the samples confidently)."""
    return -F.softplus(_outputs(fake_logits, "fake_logits")).mean()


@implements("D-non-saturating-generator")
def non_saturating_generator_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    r"""$-\mathbb E_q[\log D(x)]$ (Goodfellow et al. 2014, sec. 3). At $D^*$ it equals
    $\mathrm{KL}(q\,\|\,p) - \mathrm{KL}(q\,\|\,\tfrac{p+q}{2}) + \log 2$
    (D-non-saturating-generator)."""
    return F.softplus(-_outputs(fake_logits, "fake_logits")).mean()


@implements("D-lsgan-optimal-discriminator")
def least_squares_discriminator_loss(
    real_outputs: torch.Tensor, fake_outputs: torch.Tensor, a: float = -1.0, b: float = 1.0
) -> torch.Tensor:
    r"""Least-squares GAN (Mao et al. 2017), $\tfrac12\mathbb E_p[(v - b)^2] +
    \tfrac12\mathbb E_q[(v - a)^2]$; optimum $v^* = (bp + aq)/(p + q)$
    (D-lsgan-optimal-discriminator)."""
    real = _outputs(real_outputs, "real_outputs")
    fake = _outputs(fake_outputs, "fake_outputs")
    return 0.5 * (real - b).pow(2).mean() + 0.5 * (fake - a).pow(2).mean()


@implements("D-lsgan-optimal-discriminator")
def least_squares_generator_loss(fake_outputs: torch.Tensor, c: float = 0.0) -> torch.Tensor:
    r"""$\tfrac12\mathbb E_q[(v - c)^2]$. With $b - c = 1$, $b - a = 2$ (the defaults) the
    generator minimises $\tfrac12\int (p - q)^2/(p + q)$, Mao et al.'s
    $\tfrac12\chi^2_\mathrm{Pearson}(p + q\,\|\,2q)$ (D-lsgan-optimal-discriminator)."""
    return 0.5 * (_outputs(fake_outputs, "fake_outputs") - c).pow(2).mean()


@implements("D-hinge-optimal-discriminator")
def hinge_discriminator_loss(real_outputs: torch.Tensor, fake_outputs: torch.Tensor):
    r"""Hinge loss (Lim & Ye 2017), $\mathbb E_p[\max(0, 1 - v)] + \mathbb E_q[\max(0, 1 + v)]$;
    optimum $v^* = \operatorname{sign}(p - q)$, minimum $2 - 2\,\mathrm{TV}(p, q)$
    (D-hinge-optimal-discriminator)."""
    real = _outputs(real_outputs, "real_outputs")
    fake = _outputs(fake_outputs, "fake_outputs")
    return F.relu(1 - real).mean() + F.relu(1 + fake).mean()


@implements("D-wgan-gaussian-translates")
def hinge_generator_loss(fake_outputs: torch.Tensor) -> torch.Tensor:
    r"""$-\mathbb E_q[v(x)]$ (Lim & Ye 2017)."""
    return -_outputs(fake_outputs, "fake_outputs").mean()


@implements("D-wgan-gaussian-translates")
def wasserstein_critic_loss(real_outputs: torch.Tensor, fake_outputs: torch.Tensor):
    r"""$\mathbb E_q[f] - \mathbb E_p[f]$ (Arjovsky et al. 2017): minus the Kantorovich–Rubinstein
    bound, whose maximum over 1-Lipschitz $f$ is $W_1(p, q)$. The Lipschitz constraint comes
    from [`clip_weights`][genmath.families.gan.clip_weights] or
    [`gradient_penalty`][genmath.families.gan.gradient_penalty]."""
    real = _outputs(real_outputs, "real_outputs")
    fake = _outputs(fake_outputs, "fake_outputs")
    return fake.mean() - real.mean()


@implements("D-wgan-gaussian-translates")
def wasserstein_generator_loss(fake_outputs: torch.Tensor) -> torch.Tensor:
    r"""$-\mathbb E_q[f]$ (Arjovsky et al. 2017)."""
    return -_outputs(fake_outputs, "fake_outputs").mean()


@plumbing("a projection of the parameters onto the box [-c, c] (weight clipping), no formula")
def clip_weights(module: nn.Module, clip: float = 0.01) -> None:
    """Clamp every parameter of ``module`` to $[-c, c]$ in place (WGAN, Arjovsky et al. 2017):
    a crude way to keep the critic $K$-Lipschitz for some $K$."""
    clip = _positive(clip, "clip")
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.clamp_(-clip, clip)


def _penalty_data(critic, x: torch.Tensor, name: str) -> torch.Tensor:
    """Data where a penalty takes the critic's gradient: finite, in the critic's dtype."""
    check_batch(x, name)
    if isinstance(critic, nn.Module):
        check_dtype(x, module_dtype(critic), name, "the critic")
    return check_finite(x, name, "a gradient penalty evaluates the critic there")


def _critic_gradient(critic: Callable, x: torch.Tensor) -> torch.Tensor:
    # The gradient of a per-sample scalar is computed in one place for the whole library
    # (score_from_log_prob is exactly that, kept in the graph for a second differentiation).
    return score_from_log_prob(lambda z: _outputs(critic(z), "critic output"))(x)


def _squared_norm(v: torch.Tensor) -> torch.Tensor:
    return v.pow(2).flatten(1).sum(1)


@implements("D-gradient-penalties")
def gradient_penalty(
    critic: Callable[[torch.Tensor], torch.Tensor],
    real: torch.Tensor,
    fake: torch.Tensor,
    weight: float = 10.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    r"""WGAN-GP (Gulrajani et al. 2017): $\lambda\,\mathbb E_{\hat x}\big[(\|\nabla f(\hat x)\|
    - 1)^2\big]$ at $\hat x = u\,x_\mathrm{real} + (1 - u)\,x_\mathrm{fake}$, $u \sim U[0, 1]$
    per sample. Zero exactly when the critic has unit gradient norm at every $\hat x$ (the
    optimal critic's property along transport lines)."""
    weight = _positive(weight, "weight")
    check_generator(generator)
    _same_event_shape(real, fake)
    _penalty_data(critic, real, "real")
    _penalty_data(critic, fake, "fake")
    if real.shape != fake.shape:
        raise ValueError(
            f"gradient_penalty interpolates pairs: real and fake must have the same shape, got "
            f"{tuple(real.shape)} and {tuple(fake.shape)}"
        )
    u = torch.rand(real.shape[0], generator=generator, dtype=real.dtype, device=real.device)
    u = u.reshape(-1, *([1] * (real.ndim - 1)))
    mixed = u * real.detach() + (1 - u) * fake.detach()
    norm = _squared_norm(_critic_gradient(critic, mixed)).sqrt()
    return weight * (norm - 1).pow(2).mean()


@implements("D-gradient-penalties")
def r1_penalty(
    discriminator: Callable[[torch.Tensor], torch.Tensor], real: torch.Tensor, gamma: float = 1.0
) -> torch.Tensor:
    r"""R1 (Mescheder et al. 2018): $\tfrac{\gamma}{2}\mathbb E_p\|\nabla_x D(x)\|^2$ on real data;
    R3GAN (Huang et al. 2024) pairs it with R2 and the relativistic loss."""
    gamma = _positive(gamma, "gamma")
    real = _penalty_data(discriminator, real, "real").detach()
    return 0.5 * gamma * _squared_norm(_critic_gradient(discriminator, real)).mean()


@implements("D-gradient-penalties")
def r2_penalty(
    discriminator: Callable[[torch.Tensor], torch.Tensor], fake: torch.Tensor, gamma: float = 1.0
) -> torch.Tensor:
    r"""R2: $\tfrac{\gamma}{2}\mathbb E_q\|\nabla_x D(x)\|^2$ on generated samples (Mescheder
    et al. 2018; Huang et al. 2024)."""
    gamma = _positive(gamma, "gamma")
    fake = _penalty_data(discriminator, fake, "fake").detach()
    return 0.5 * gamma * _squared_norm(_critic_gradient(discriminator, fake)).mean()


def _paired(real_outputs, fake_outputs):
    real = _outputs(real_outputs, "real_outputs")
    fake = _outputs(fake_outputs, "fake_outputs")
    if real.shape != fake.shape:
        raise ValueError(
            f"a relativistic loss pairs real and fake samples: their outputs must have the same "
            f"shape, got {tuple(real.shape)} and {tuple(fake.shape)}"
        )
    return real, fake


@implements("D-relativistic-pairing")
def relativistic_discriminator_loss(real_outputs: torch.Tensor, fake_outputs: torch.Tensor):
    r"""The relativistic pairing loss of R3GAN (Huang et al. 2024),
    $\mathbb E\big[\operatorname{softplus}(D(x_\mathrm{fake}) - D(x_\mathrm{real}))\big]$."""
    real, fake = _paired(real_outputs, fake_outputs)
    return F.softplus(fake - real).mean()


@implements("D-relativistic-pairing")
def relativistic_generator_loss(real_outputs: torch.Tensor, fake_outputs: torch.Tensor):
    r"""$\mathbb E\big[\operatorname{softplus}(D(x_\mathrm{real}) - D(x_\mathrm{fake}))\big]$
    (Huang et al. 2024)."""
    real, fake = _paired(real_outputs, fake_outputs)
    return F.softplus(real - fake).mean()
