r"""Generative adversarial networks: each loss is a variational bound on a divergence.

**Composition.** A GAN = a generator $G$ pushing noise $z$ to a sample distribution $q$ + a
discriminator (critic) $D$ + a loss whose inner maximum over $D$ is a divergence between the
data law $p$ and $q$. The only core piece used is the autograd gradient of a per-sample
scalar function (`genmath.core.score.score_from_log_prob`), which the gradient penalties
(WGAN-GP, R1, R2) take of the critic. Everything else in this file is the divergence bounds
themselves, which no other part of genmath needs.

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
import math
from collections.abc import Callable

import torch
from torch import nn
from torch.nn import functional as F

from .._implements import implements, plumbing
from ..analytic import Gaussian
from ..core._shapes import check_batch
from ..core.score import score_from_log_prob

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

LogDensity = Callable[[torch.Tensor], torch.Tensor]
_FGAN_DERIVATIONS = tuple(
    f"D-fgan-bound-{name}" for name in ("kl", "reverse_kl", "js", "pearson", "squared_hellinger")
)


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
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        layers: list[nn.Module] = []
        width = in_dim
        for _ in range(depth - 1):
            layers += [nn.Linear(width, hidden), activation()]
            width = hidden
        layers.append(nn.Linear(width, 1 if out_dim is None else out_dim))
        self.net = nn.Sequential(*layers)
        self.scalar_output = out_dim is None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.net(x)
        return out[:, 0] if self.scalar_output else out


# --- input checks ------------------------------------------------------------------------


def _outputs(values: torch.Tensor, name: str) -> torch.Tensor:
    """A discriminator's raw outputs: one finite value per sample, shape ``(B,)``."""
    if not isinstance(values, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(values).__name__}")
    if values.ndim == 2 and values.shape[1] == 1:
        values = values[:, 0]
    if values.ndim != 1:
        raise ValueError(
            f"{name} must hold one discriminator output per sample, shape (B,) or (B, 1), "
            f"got shape {tuple(values.shape)}"
        )
    if not torch.isfinite(values).all():
        raise ValueError(f"{name} must be finite, got non-finite discriminator outputs")
    return values


def _same_event_shape(real: torch.Tensor, fake: torch.Tensor) -> None:
    check_batch(real, "real")
    check_batch(fake, "fake")
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
    _same_event_shape(real, fake)
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
    real = check_batch(real, "real").detach()
    return 0.5 * gamma * _squared_norm(_critic_gradient(discriminator, real)).mean()


@implements("D-gradient-penalties")
def r2_penalty(
    discriminator: Callable[[torch.Tensor], torch.Tensor], fake: torch.Tensor, gamma: float = 1.0
) -> torch.Tensor:
    r"""R2: $\tfrac{\gamma}{2}\mathbb E_q\|\nabla_x D(x)\|^2$ on generated samples (Mescheder
    et al. 2018; Huang et al. 2024)."""
    gamma = _positive(gamma, "gamma")
    fake = check_batch(fake, "fake").detach()
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


# --- f-GAN ---------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class FDivergence:
    r"""One row of Nowozin et al. (2016), Tables 1 and 2: the generator $f$ of
    $D_f(p\,\|\,q) = \int q\, f(p/q)$, its convex conjugate $f^*$, the output activation
    $g_f$ mapping a raw output onto the domain of $f^*$, and $f'$, which gives the optimal
    critic $T^* = f'(p/q)$ (derivation D-fgan-bound-<name>).

    ``conjugate_of_activation`` is $f^*(g_f(v))$ simplified by hand so that it stays finite
    where $g_f(v)$ rounds onto the edge of the domain of $f^*$ (JS: $\operatorname{softplus}(v)
    - \log 2$; squared Hellinger: $e^v - 1$; reverse KL: $v - 1$); the check
    C-fgan-conjugates compares it with the composition."""

    name: str
    f: Callable[[torch.Tensor], torch.Tensor]
    conjugate: Callable[[torch.Tensor], torch.Tensor]
    activation: Callable[[torch.Tensor], torch.Tensor]
    derivative: Callable[[torch.Tensor], torch.Tensor]
    conjugate_of_activation: Callable[[torch.Tensor], torch.Tensor]
    derivation: str


F_DIVERGENCES: dict[str, FDivergence] = {
    "kl": FDivergence(
        "kl",
        f=lambda u: u * torch.log(u),
        conjugate=lambda t: torch.exp(t - 1),
        activation=lambda v: v,
        derivative=lambda u: 1 + torch.log(u),
        conjugate_of_activation=lambda v: torch.exp(v - 1),
        derivation="D-fgan-bound-kl",
    ),
    "reverse_kl": FDivergence(
        "reverse_kl",
        f=lambda u: -torch.log(u),
        conjugate=lambda t: -1 - torch.log(-t),
        activation=lambda v: -torch.exp(-v),
        derivative=lambda u: -1 / u,
        conjugate_of_activation=lambda v: v - 1,
        derivation="D-fgan-bound-reverse_kl",
    ),
    "js": FDivergence(
        "js",
        f=lambda u: u * torch.log(u) - (u + 1) * torch.log((u + 1) / 2),
        conjugate=lambda t: -torch.log(2 - torch.exp(t)),
        activation=lambda v: math.log(2) - F.softplus(-v),
        derivative=lambda u: torch.log(2 * u / (u + 1)),
        conjugate_of_activation=lambda v: F.softplus(v) - math.log(2),
        derivation="D-fgan-bound-js",
    ),
    "pearson": FDivergence(
        "pearson",
        f=lambda u: (u - 1) ** 2,
        conjugate=lambda t: t**2 / 4 + t,
        activation=lambda v: v,
        derivative=lambda u: 2 * (u - 1),
        conjugate_of_activation=lambda v: v**2 / 4 + v,
        derivation="D-fgan-bound-pearson",
    ),
    "squared_hellinger": FDivergence(
        "squared_hellinger",
        f=lambda u: (torch.sqrt(u) - 1) ** 2,
        conjugate=lambda t: t / (1 - t),
        activation=lambda v: -torch.expm1(-v),
        derivative=lambda u: 1 - 1 / torch.sqrt(u),
        conjugate_of_activation=lambda v: torch.expm1(v),
        derivation="D-fgan-bound-squared_hellinger",
    ),
}
"""The f-divergences of the f-GAN family, keyed by name (Nowozin et al. 2016, Table 2)."""


def _f_divergence(name: str) -> FDivergence:
    if name not in F_DIVERGENCES:
        raise ValueError(f"divergence must be one of {tuple(F_DIVERGENCES)}, got {name!r}")
    return F_DIVERGENCES[name]


@implements(*_FGAN_DERIVATIONS)
def fgan_bound(
    divergence: str,
    real_outputs: torch.Tensor,
    fake_outputs: torch.Tensor,
    activated: bool = False,
) -> torch.Tensor:
    r"""The f-GAN variational bound (Nowozin et al. 2016, eq. 6),

    $$
    D_f(p\,\|\,q) \;\ge\; \mathbb E_p[T(x)] - \mathbb E_q[f^*(T(x))], \qquad T = g_f(v),
    $$

    Monte-Carlo estimated from raw outputs $v$ on real ($\sim p$) and fake ($\sim q$) samples;
    equality at $T^* = f'(p/q)$ (D-fgan-bound-<divergence>). With ``activated=True`` the
    inputs are $T$ itself (already in the domain of $f^*$)."""
    spec = _f_divergence(divergence)
    real = _outputs(real_outputs, "real_outputs")
    fake = _outputs(fake_outputs, "fake_outputs")
    t_real = real if activated else spec.activation(real)
    conjugate = spec.conjugate(fake) if activated else spec.conjugate_of_activation(fake)
    if not torch.isfinite(conjugate).all():
        raise ValueError(
            f"f*(T) is not finite for the {divergence!r} divergence: T must lie in the domain "
            f"of its conjugate (pass raw outputs with activated=False to apply g_f)"
        )
    return t_real.mean() - conjugate.mean()


@implements(*_FGAN_DERIVATIONS)
def fgan_discriminator_loss(divergence: str, real_outputs, fake_outputs) -> torch.Tensor:
    """Minus [`fgan_bound`][genmath.families.gan.fgan_bound] (the critic maximises the bound)."""
    return -fgan_bound(divergence, real_outputs, fake_outputs)


@implements(*_FGAN_DERIVATIONS)
def fgan_generator_loss(divergence: str, fake_outputs: torch.Tensor) -> torch.Tensor:
    r"""The part of the bound that depends on the generator, $-\mathbb E_q[f^*(g_f(v))]$
    (the saddle-point objective of Nowozin et al. 2016, eq. 7)."""
    spec = _f_divergence(divergence)
    return -spec.conjugate_of_activation(_outputs(fake_outputs, "fake_outputs")).mean()


# --- optimal discriminators -----------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class GANLoss:
    r"""A GAN loss written pointwise: the discriminator loss is
    $\mathbb E_p[\phi(v)] + \mathbb E_q[\psi(v)]$ in the raw output $v$.

    Attributes:
        name: the key in [`GAN_LOSSES`][genmath.families.gan.GAN_LOSSES].
        real_term: $\phi$, elementwise.
        fake_term: $\psi$, elementwise.
        generator_loss: the generator's loss from the raw outputs on its samples.
        optimal_output: $(\log p, \log q) \mapsto v^*$, elementwise in the two log-densities.
        minimised: the divergence the generator minimises at the optimal discriminator.
        derivation: the derivation id.
    """

    name: str
    real_term: Callable[[torch.Tensor], torch.Tensor]
    fake_term: Callable[[torch.Tensor], torch.Tensor]
    generator_loss: Callable[[torch.Tensor], torch.Tensor]
    optimal_output: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    minimised: str
    derivation: str

    @implements(
        "D-optimal-discriminator",
        "D-lsgan-optimal-discriminator",
        "D-hinge-optimal-discriminator",
        *_FGAN_DERIVATIONS,
    )
    def discriminator_loss(self, real_outputs: torch.Tensor, fake_outputs: torch.Tensor):
        """$\\mathbb E_p[\\phi(v)] + \\mathbb E_q[\\psi(v)]$, Monte-Carlo."""
        real = _outputs(real_outputs, "real_outputs")
        fake = _outputs(fake_outputs, "fake_outputs")
        return self.real_term(real).mean() + self.fake_term(fake).mean()


def _fgan_loss(spec: FDivergence) -> GANLoss:
    def optimal(log_p, log_q):
        # v* with g_f(v*) = f'(p/q): each activation is inverted on its range in closed form
        t = spec.derivative(torch.exp(log_p - log_q))
        return _inverse_activation(spec.name, t)

    return GANLoss(
        name=f"fgan_{spec.name}",
        real_term=lambda v: -spec.activation(v),
        fake_term=spec.conjugate_of_activation,
        generator_loss=lambda v: fgan_generator_loss(spec.name, v),
        optimal_output=optimal,
        minimised=f"the {spec.name} f-divergence D_f(p || q)",
        derivation=spec.derivation,
    )


def _inverse_activation(name: str, t: torch.Tensor) -> torch.Tensor:
    if name in ("kl", "pearson"):
        return t
    if name == "reverse_kl":  # t = -exp(-v)
        return -torch.log(-t)
    if name == "js":  # t = log 2 - softplus(-v)  <=>  v = -log(2 exp(-t) - 1)
        return -torch.log(2 * torch.exp(-t) - 1)
    if name == "squared_hellinger":  # t = 1 - exp(-v)
        return -torch.log1p(-t)
    raise AssertionError(name)


GAN_LOSSES: dict[str, GANLoss] = {
    "minimax": GANLoss(
        "minimax",
        real_term=lambda v: F.softplus(-v),
        fake_term=F.softplus,
        generator_loss=minimax_generator_loss,
        optimal_output=lambda log_p, log_q: log_p - log_q,
        minimised="2 JSD(p || q) - log 4",
        derivation="D-optimal-discriminator",
    ),
    "non_saturating": GANLoss(
        "non_saturating",
        real_term=lambda v: F.softplus(-v),
        fake_term=F.softplus,
        generator_loss=non_saturating_generator_loss,
        optimal_output=lambda log_p, log_q: log_p - log_q,
        minimised="KL(q || p) - KL(q || (p+q)/2) + log 2 (generator loss at D*)",
        derivation="D-non-saturating-generator",
    ),
    "least_squares": GANLoss(
        "least_squares",
        real_term=lambda v: 0.5 * (v - 1) ** 2,
        fake_term=lambda v: 0.5 * (v + 1) ** 2,
        generator_loss=least_squares_generator_loss,
        optimal_output=lambda log_p, log_q: torch.tanh((log_p - log_q) / 2),
        minimised="1/2 int (p - q)^2 / (p + q) (Pearson chi^2 of p + q against 2q, halved)",
        derivation="D-lsgan-optimal-discriminator",
    ),
    "hinge": GANLoss(
        "hinge",
        real_term=lambda v: F.relu(1 - v),
        fake_term=lambda v: F.relu(1 + v),
        generator_loss=hinge_generator_loss,
        optimal_output=lambda log_p, log_q: torch.sign(log_p - log_q),
        minimised="2 TV(p, q) - 2",
        derivation="D-hinge-optimal-discriminator",
    ),
    **{f"fgan_{name}": _fgan_loss(spec) for name, spec in F_DIVERGENCES.items()},
}
"""Every pointwise GAN loss, keyed by name; the f-GAN ones are ``"fgan_<divergence>"``."""


@implements(
    "D-optimal-discriminator",
    "D-non-saturating-generator",
    "D-lsgan-optimal-discriminator",
    "D-hinge-optimal-discriminator",
    *_FGAN_DERIVATIONS,
)
def optimal_discriminator(loss: str, log_p: LogDensity, log_q: LogDensity):
    r"""The optimal raw discriminator output $x \mapsto v^*(x)$ of ``loss`` for the data
    density $p$ and the generator density $q$ (given as log-densities ``(B, ...) -> (B,)``).

    $v^*$ minimises $p\,\phi(v) + q\,\psi(v)$ at each $x$; see the table of the module and
    the derivation of each loss. Plugging it into the loss gives the divergence the loss
    stands for. For the Wasserstein loss see
    [`optimal_wasserstein_critic`][genmath.families.gan.optimal_wasserstein_critic]."""
    if loss not in GAN_LOSSES:
        raise ValueError(f"loss must be one of {tuple(GAN_LOSSES)}, got {loss!r}")
    spec = GAN_LOSSES[loss]

    def discriminator(x: torch.Tensor) -> torch.Tensor:
        lp, lq = log_p(x), log_q(x)
        if lp.shape != lq.shape:
            raise ValueError(
                f"log_p and log_q must return the same shape, got {tuple(lp.shape)} and "
                f"{tuple(lq.shape)}"
            )
        return spec.optimal_output(lp, lq)

    return discriminator


@implements("D-wgan-gaussian-translates")
def optimal_wasserstein_critic(p, q):
    r"""The optimal 1-Lipschitz critic between two Gaussians with equal covariance,
    $f^*(x) = \langle \mu_p - \mu_q, x\rangle / \|\mu_p - \mu_q\|$, for which
    $\mathbb E_p f^* - \mathbb E_q f^* = \|\mu_p - \mu_q\| = W_1(p, q)$
    (D-wgan-gaussian-translates; one law is a translate of the other, and the translation
    coupling attains the bound).

    Arguments:
        p, q: `genmath.analytic.Gaussian` with the same covariance and different means.
    """
    for name, law in (("p", p), ("q", q)):
        if not isinstance(law, Gaussian):
            raise ValueError(
                f"{name} must be a genmath.analytic.Gaussian, got {type(law).__name__}"
            )
    if p.mean.shape != q.mean.shape or not torch.allclose(p.cov, q.cov):
        raise ValueError(
            "the closed-form critic needs two Gaussians with the same covariance (translates of "
            "each other); got different covariances or dimensions"
        )
    shift = p.mean - q.mean
    length = torch.linalg.vector_norm(shift)
    if length == 0:
        raise ValueError("p and q are equal: every constant critic is optimal (W_1 = 0)")
    direction = shift / length

    def critic(x: torch.Tensor) -> torch.Tensor:
        return check_batch(x) @ direction.to(x)

    return critic


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
    if loss not in _TRAINABLE and not (loss.startswith("fgan_") and loss in GAN_LOSSES):
        known = (*_TRAINABLE, *(k for k in GAN_LOSSES if k.startswith("fgan_")))
        raise ValueError(f"loss must be one of {known}, got {loss!r}")
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
