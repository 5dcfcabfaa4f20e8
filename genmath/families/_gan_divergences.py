"""The divergence side of GANs: f-GAN's variational bounds (Nowozin et al. 2016), every
loss as a pointwise `GANLoss` with its optimal discriminator for two known densities, and the
optimal Wasserstein critic between Gaussian translates (re-exported by
`genmath.families.gan`)."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

import torch
from torch.nn import functional as F

from .._implements import implements
from ..analytic import Gaussian
from ..core._shapes import check_batch
from ..core._validate import check_dtype
from ._gan_losses import (
    _outputs,
    hinge_generator_loss,
    least_squares_generator_loss,
    minimax_generator_loss,
    non_saturating_generator_loss,
)

LogDensity = Callable[[torch.Tensor], torch.Tensor]
_FGAN_DERIVATIONS = tuple(
    f"D-fgan-bound-{name}" for name in ("kl", "reverse_kl", "js", "pearson", "squared_hellinger")
)

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
        check_batch(x, "x")
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
        check_batch(x, "x")
        if x.ndim != 2 or x.shape[1] != direction.shape[0]:
            raise ValueError(f"x must have shape (B, {direction.shape[0]}), got {tuple(x.shape)}")
        check_dtype(x, direction.dtype, "x", "the critic (its Gaussians)")
        return x @ direction

    return critic
