r"""Energy-based models: a density $p_\theta(x) \propto e^{-E_\theta(x)}$, its score by autograd,
sampled by Langevin dynamics, trained by contrastive divergence or score matching.

**Composition.** EBM = an energy network + its score $-\nabla_x E_\theta$
(`genmath.core.score.score_from_energy`) + the Langevin SDE
$dx = \nabla\log p(x)\,dt + \sqrt 2\,dW$ simulated by the core SDE sampler
(`genmath.core.dynamics.sample_sde`, Euler–Maruyama) + either contrastive divergence or the
core score-matching objectives (`genmath.score_matching.implicit / sliced / denoising`).

* **Langevin SDE.** $p$ is its stationary density: the Fokker–Planck right-hand side
  $-\partial_x(p\,\partial_x\log p) + \partial_x^2 p$ vanishes (derivation
  D-langevin-stationary).
* **Unadjusted Langevin (ULA)** is the Euler–Maruyama chain of that SDE with step $\epsilon$,
  $x_{k+1} = x_k + \epsilon\nabla\log p(x_k) + \sqrt{2\epsilon}\,z_k$. It is biased: on
  $\mathcal N(m, s^2)$ its stationary law is $\mathcal N\big(m, s^2/(1 - \epsilon/(2s^2))\big)$
  for $0 < \epsilon < 2s^2$ (D-ula-stationary-variance).
* **MALA** (Roberts & Tweedie 1996) adds a Metropolis–Hastings correction to the ULA
  proposal, so $p$ is exactly invariant for every step size.
* **Annealed Langevin** (Song & Ermon 2019, Alg. 1) runs ULA at decreasing noise levels
  $\sigma_1 > \dots > \sigma_L$ with step $\epsilon\,\sigma_i^2/\sigma_L^2$.
* **Contrastive divergence** (Hinton 2002): the log-likelihood gradient is
  $-\mathbb E_\mathrm{data}[\nabla_\theta E] + \mathbb E_{p_\theta}[\nabla_\theta E]$; the
  second expectation is estimated from a few MCMC steps started at the data (CD-$k$) or at
  persistent chains (PCD, Tieleman 2008).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

import torch
from torch import nn

from .._implements import implements
from ..core._shapes import check_batch, positive_int
from ..core.dynamics import SampleResult, sample_sde
from ..core.grids import uniform_grid
from ..core.score import denoising, implicit, score_from_energy, score_from_log_prob, sliced

__all__ = [
    "EnergyModel",
    "GaussianEnergy",
    "langevin",
    "ula_stationary_variance",
    "MALAResult",
    "mala",
    "annealed_langevin",
    "contrastive_divergence_loss",
    "ContrastiveDivergence",
    "score_matching_loss",
    "SCORE_MATCHING_METHODS",
]

Score = Callable[[torch.Tensor], torch.Tensor]
SCORE_MATCHING_METHODS = ("implicit", "sliced", "denoising")
_SAMPLERS = ("langevin", "mala")


def _positive(value, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{name} must be a positive number, got {value!r}")
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")
    return float(value)


def _finite_energy(values: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    if not isinstance(values, torch.Tensor):
        raise TypeError(f"the energy must return a tensor, got {type(values).__name__}")
    if values.ndim == 2 and values.shape[1] == 1:
        values = values[:, 0]
    if values.shape != (x.shape[0],):
        raise ValueError(
            f"the energy must return one value per sample, shape ({x.shape[0]},), "
            f"got {tuple(values.shape)}"
        )
    if not torch.isfinite(values).all():
        bad = int((~torch.isfinite(values)).sum())
        raise ValueError(
            f"the energy must be finite: expected finite values, got {bad} non-finite of "
            f"{values.numel()}"
        )
    return values


class EnergyModel(nn.Module):
    r"""$p_\theta(x) \propto \exp(-E_\theta(x))$ from an energy network.

    Arguments:
        energy_net: ``(B, *event) -> (B,)`` (or ``(B, 1)``), e.g.
            `genmath.families.gan.MLP(d, None)`.
    """

    def __init__(self, energy_net: nn.Module):
        super().__init__()
        self.energy_net = energy_net

    def energy(self, x: torch.Tensor) -> torch.Tensor:
        """$E_\\theta(x)$, shape ``(B,)``; a non-finite energy raises `ValueError`."""
        x = check_batch(x)
        return _finite_energy(self.energy_net(x), x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.energy(x)

    @implements("D-langevin-stationary")
    def unnormalized_log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """$-E_\\theta(x) = \\log p_\\theta(x) + \\log Z_\\theta$."""
        return -self.energy(x)

    def score(self, x: torch.Tensor) -> torch.Tensor:
        """$\\nabla_x \\log p_\\theta = -\\nabla_x E_\\theta$ (by autograd, in the graph)."""
        return score_from_energy(self.energy)(x)

    def sample(
        self,
        x: torch.Tensor,
        *,
        steps: int,
        step_size: float,
        method: str = "langevin",
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Run ``steps`` ULA (``"langevin"``) or MALA (``"mala"``) steps from ``x``."""
        return _run_sampler(self, method, x, steps, step_size, generator)


class GaussianEnergy(nn.Module):
    r"""The Gaussian energy family $E(x) = \tfrac12 (x - \mu)^\top P (x - \mu)$, with
    $P = LL^\top$, $L$ lower triangular with a positive (log-parameterized) diagonal: an
    EBM whose maximum-likelihood parameters are known (sample mean, inverse sample
    covariance), for testing trainers."""

    def __init__(self, dim: int, dtype: torch.dtype | None = None):
        super().__init__()
        positive_int(dim, "dim")
        self.dim = dim
        self.mean = nn.Parameter(torch.zeros(dim, dtype=dtype))
        self.log_diagonal = nn.Parameter(torch.zeros(dim, dtype=dtype))
        self.off_diagonal = nn.Parameter(torch.zeros(dim * (dim - 1) // 2, dtype=dtype))

    @implements("D-gaussian-energy")
    def scale_tril(self) -> torch.Tensor:
        rows, cols = torch.tril_indices(self.dim, self.dim, -1)
        L = torch.diag_embed(self.log_diagonal.exp())
        return L.index_put((rows, cols), self.off_diagonal)

    @implements("D-gaussian-energy")
    def precision(self) -> torch.Tensor:
        L = self.scale_tril()
        return L @ L.mT

    @implements("D-gaussian-energy")
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = check_batch(x)
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(f"x must have shape (B, {self.dim}), got {tuple(x.shape)}")
        whitened = (x - self.mean) @ self.scale_tril()
        return 0.5 * whitened.pow(2).sum(1)


def _check_state(x: torch.Tensor, name: str = "x") -> torch.Tensor:
    x = check_batch(x, name)
    if not torch.isfinite(x).all():
        raise ValueError(f"{name} must be finite, got non-finite initial states")
    return x.detach()


@implements("D-ula-stationary-variance", "D-langevin-stationary")
def langevin(
    score: Score,
    x: torch.Tensor,
    *,
    step_size: float,
    steps: int,
    generator: torch.Generator | None = None,
    keep_trajectory: bool = False,
) -> SampleResult:
    r"""Unadjusted Langevin: ``steps`` Euler–Maruyama steps of $dx = \nabla\log p\,dt +
    \sqrt 2\,dW$ with step $\epsilon$,

    $$
    x_{k+1} = x_k + \epsilon\, s(x_k) + \sqrt{2\epsilon}\, z_k, \qquad z_k \sim \mathcal N(0, I).
    $$

    Simulated by `genmath.core.dynamics.sample_sde` on the unit time grid with $k/n$, $n$ =
    ``steps``: the Langevin SDE is time-homogeneous, so running it for a time
    $n\epsilon$ is running $dx = n\epsilon\, s\,d\tau + \sqrt{2n\epsilon}\,dW_\tau$ for
    $\tau \in [0, 1]$, whose Euler–Maruyama step $1/n$ is the ULA step above. Stationary law
    on a Gaussian: D-ula-stationary-variance.

    Arguments:
        score: ``x -> \nabla \log p(x)``, same shape as ``x`` (e.g. `EnergyModel.score`);
            its output is detached (sampling does not backpropagate).
        x: initial states ``(B, *event)``.
        step_size: $\epsilon > 0$.
        steps: number of steps.
    """
    step_size = _positive(step_size, "step_size")
    steps = positive_int(steps, "steps")
    x = _check_state(x)
    horizon = steps * step_size

    def drift(state: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        value = score(state)
        if not isinstance(value, torch.Tensor) or value.shape != state.shape:
            got = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
            raise ValueError(
                f"score must return a tensor of the state's shape {tuple(state.shape)}, got {got}"
            )
        return horizon * value.detach()

    grid = uniform_grid(steps, start=0.0, end=1.0, dtype=x.dtype, device=x.device)
    noise_scale = math.sqrt(2 * horizon)
    return sample_sde(
        drift,
        lambda t: noise_scale,
        x,
        grid=grid,
        generator=generator,
        keep_trajectory=keep_trajectory,
    )


@implements("D-ula-stationary-variance")
def ula_stationary_variance(variance, step_size: float):
    r"""The stationary variance $s^2/(1 - \epsilon/(2 s^2))$ of ULA with step $\epsilon$ on
    $\mathcal N(m, s^2)$ (D-ula-stationary-variance); finite only for $\epsilon < 2 s^2$.
    ``variance`` may be a tensor of per-direction (eigen)variances."""
    step_size = _positive(step_size, "step_size")
    variance = torch.as_tensor(variance)
    if (variance <= 0).any():
        raise ValueError(f"variance must be positive, got {variance}")
    if (step_size >= 2 * variance).any():
        raise ValueError(
            f"ULA on a Gaussian is stable only for step_size < 2 * variance; got step_size "
            f"{step_size} and variance {variance}"
        )
    return variance / (1 - step_size / (2 * variance))


@dataclasses.dataclass(frozen=True)
class MALAResult:
    """The final states, each chain's acceptance rate over the run, and (optionally) the
    trajectory ``(steps + 1, *x.shape)``."""

    x: torch.Tensor
    acceptance_rate: torch.Tensor
    trajectory: torch.Tensor | None = None


def _value_and_score(log_prob, x: torch.Tensor):
    value = log_prob(x)
    if value.shape != (x.shape[0],) or not torch.isfinite(value).all():
        raise ValueError(
            f"log_prob must return finite values of shape ({x.shape[0]},), got shape "
            f"{tuple(value.shape)} (finite: {bool(torch.isfinite(value).all())})"
        )
    return value.detach(), score_from_log_prob(log_prob)(x).detach()


@implements("D-mala-acceptance")
def _langevin_proposal(x, score, z, step_size: float) -> torch.Tensor:
    """The Langevin proposal $y = x + \\epsilon\\,s(x) + \\sqrt{2\\epsilon}\\,z$."""
    return x + step_size * score + (2 * step_size) ** 0.5 * z


@implements("D-mala-acceptance")
def _log_acceptance(x, proposal, z, current_lp, proposal_lp, proposal_score, step_size: float):
    r"""$\log\alpha = \log p(y) - \log p(x) - \|x - y - \epsilon s(y)\|^2/(4\epsilon) +
    \|z\|^2/2$: the normalising constants of the two Gaussian kernels cancel, and
    $y - x - \epsilon s(x) = \sqrt{2\epsilon}\,z$ in the forward kernel."""
    event_dims = tuple(range(1, x.ndim))
    forward = -z.pow(2).sum(event_dims) / 2  # log k(y|x) + const
    back = x - proposal - step_size * proposal_score
    backward = -back.pow(2).sum(event_dims) / (4 * step_size)  # log k(x|y) + the same const
    return proposal_lp - current_lp + backward - forward


@implements("D-mala-acceptance")
def mala(
    log_prob: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    *,
    step_size: float,
    steps: int,
    generator: torch.Generator | None = None,
    keep_trajectory: bool = False,
) -> MALAResult:
    r"""Metropolis-adjusted Langevin (Roberts & Tweedie 1996): propose the ULA step
    $y = x + \epsilon\nabla\log p(x) + \sqrt{2\epsilon}\,z$ and accept it with probability

    $$
    \min\Big(1, \frac{p(y)\, k(x \mid y)}{p(x)\, k(y \mid x)}\Big), \qquad
    k(y \mid x) \propto \exp\Big(-\frac{\|y - x - \epsilon\nabla\log p(x)\|^2}{4\epsilon}\Big),
    $$

    so $p$ is invariant exactly, whatever $\epsilon$ (detailed balance).

    Arguments:
        log_prob: an unnormalised log-density ``(B, *event) -> (B,)`` (e.g.
            `EnergyModel.unnormalized_log_prob`); the score comes from it by autograd.
        x: initial states; ``step_size`` $\epsilon > 0$; ``steps`` iterations.
    """
    step_size = _positive(step_size, "step_size")
    steps = positive_int(steps, "steps")
    x = _check_state(x)
    current_lp, current_score = _value_and_score(log_prob, x)
    accepted = torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
    trajectory = [x] if keep_trajectory else None
    for _ in range(steps):
        z = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
        proposal = _langevin_proposal(x, current_score, z, step_size)
        proposal_lp, proposal_score = _value_and_score(log_prob, proposal)
        log_ratio = _log_acceptance(
            x, proposal, z, current_lp, proposal_lp, proposal_score, step_size
        )
        u = torch.rand(x.shape[0], generator=generator, dtype=x.dtype, device=x.device)
        accept = torch.log(u) < log_ratio
        shaped = accept.reshape(-1, *([1] * (x.ndim - 1)))
        x = torch.where(shaped, proposal, x)
        current_lp = torch.where(accept, proposal_lp, current_lp)
        current_score = torch.where(shaped, proposal_score, current_score)
        accepted += accept.to(x.dtype)
        if keep_trajectory:
            trajectory.append(x)
    return MALAResult(
        x=x,
        acceptance_rate=accepted / steps,
        trajectory=torch.stack(trajectory) if keep_trajectory else None,
    )


@implements("D-annealed-langevin")
def annealed_langevin(
    score: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    sigmas,
    *,
    steps_per_level: int,
    step_size: float,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    r"""Annealed Langevin dynamics (Song & Ermon 2019, Algorithm 1): for noise levels
    $\sigma_1 > \dots > \sigma_L$, run ``steps_per_level`` ULA steps with the noise-conditional
    score $s(x, \sigma_i)$ and step $\alpha_i = \epsilon\,\sigma_i^2/\sigma_L^2$, each level
    starting from the previous one's end.

    Arguments:
        score: ``(x, sigma) -> \nabla\log p_\sigma(x)`` with ``sigma`` a 0-d tensor.
        sigmas: the decreasing positive noise levels (1-D).
        step_size: $\epsilon > 0$, the step at the smallest level.
    """
    step_size = _positive(step_size, "step_size")
    steps_per_level = positive_int(steps_per_level, "steps_per_level")
    x = _check_state(x)
    sigmas = torch.as_tensor(sigmas, dtype=x.dtype, device=x.device)
    if sigmas.ndim != 1 or sigmas.numel() < 1:
        raise ValueError(
            f"sigmas must be a non-empty 1-D sequence, got shape {tuple(sigmas.shape)}"
        )
    if not torch.isfinite(sigmas).all() or (sigmas <= 0).any():
        raise ValueError(f"sigmas must be positive and finite, got {sigmas.tolist()}")
    if (sigmas[1:] >= sigmas[:-1]).any():
        raise ValueError(f"sigmas must be strictly decreasing, got {sigmas.tolist()}")
    smallest = float(sigmas[-1])
    for sigma in sigmas:
        level_step = step_size * float(sigma) ** 2 / smallest**2
        x = langevin(
            lambda state, sigma=sigma: score(state, sigma),
            x,
            step_size=level_step,
            steps=steps_per_level,
            generator=generator,
        ).x
    return x


def _run_sampler(model, method, x, steps, step_size, generator) -> torch.Tensor:
    if method == "langevin":
        return langevin(model.score, x, step_size=step_size, steps=steps, generator=generator).x
    if method == "mala":
        return mala(
            model.unnormalized_log_prob, x, step_size=step_size, steps=steps, generator=generator
        ).x
    raise ValueError(f"method must be one of {_SAMPLERS}, got {method!r}")


def _energy(model, x: torch.Tensor) -> torch.Tensor:
    return _finite_energy(model(x), x)


@implements("D-contrastive-divergence")
def contrastive_divergence_loss(
    energy: Callable[[torch.Tensor], torch.Tensor], data: torch.Tensor, negatives: torch.Tensor
) -> torch.Tensor:
    r"""$\mathbb E_\mathrm{data}[E_\theta(x)] - \mathbb E_\mathrm{neg}[E_\theta(\tilde x)]$ with
    the negatives held fixed: its $\theta$-gradient is the contrastive-divergence estimate of
    $-\nabla_\theta \mathbb E_\mathrm{data}[\log p_\theta]$ (Hinton 2002), exact when the
    negatives are draws of $p_\theta$."""
    data = check_batch(data, "data")
    negatives = check_batch(negatives, "negatives")
    if data.shape[1:] != negatives.shape[1:]:
        raise ValueError(
            f"data and negatives must have the same event shape, got data {tuple(data.shape)} "
            f"and negatives {tuple(negatives.shape)}"
        )
    return _energy(energy, data).mean() - _energy(energy, negatives.detach()).mean()


class ContrastiveDivergence:
    """Contrastive divergence with ``k`` Langevin or MALA steps per update: chains restart
    at the data (CD-k, Hinton 2002) or persist across updates (PCD, Tieleman 2008).

    Arguments:
        model: an `EnergyModel` (or any module ``x -> (B,)`` energies).
        steps: MCMC steps per update ($k$).
        step_size: the sampler's $\\epsilon$.
        sampler: ``"langevin"`` (ULA) or ``"mala"``.
        persistent: keep the chains between calls (initialised from the first data batch,
            or from ``init``).
        init: initial persistent chains ``(n_chains, *event)``.
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        steps: int = 1,
        step_size: float = 0.01,
        sampler: str = "langevin",
        persistent: bool = False,
        init: torch.Tensor | None = None,
    ):
        if sampler not in _SAMPLERS:
            raise ValueError(f"sampler must be one of {_SAMPLERS}, got {sampler!r}")
        self.model = model if isinstance(model, EnergyModel) else EnergyModel(model)
        self.steps = positive_int(steps, "steps")
        self.step_size = _positive(step_size, "step_size")
        self.sampler = sampler
        self.persistent = persistent
        self.chains = None if init is None else _check_state(init, "init")

    def negatives(self, data: torch.Tensor, generator: torch.Generator | None = None):
        """Model samples after ``steps`` MCMC steps (from the data, or the persistent chains)."""
        data = _check_state(data, "data")
        start = data
        if self.persistent and self.chains is not None:
            if self.chains.shape[1:] != data.shape[1:]:
                raise ValueError(
                    f"persistent chains have event shape {tuple(self.chains.shape[1:])} but data "
                    f"has {tuple(data.shape[1:])}"
                )
            start = self.chains
        out = _run_sampler(self.model, self.sampler, start, self.steps, self.step_size, generator)
        if self.persistent:
            self.chains = out.detach()
        return out.detach()

    def loss(self, data: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """[`contrastive_divergence_loss`][genmath.families.ebm.contrastive_divergence_loss]
        with fresh negatives."""
        return contrastive_divergence_loss(self.model, data, self.negatives(data, generator))


def score_matching_loss(
    model: EnergyModel,
    x: torch.Tensor,
    method: str = "sliced",
    *,
    generator: torch.Generator | None = None,
    **options,
) -> torch.Tensor:
    """Train an EBM by score matching: the core objective ``method`` applied to the model's
    score $-\\nabla_x E_\\theta$ (`genmath.score_matching`). ``"implicit"`` (Hyvärinen 2005),
    ``"sliced"`` (Song et al. 2020; ``options`` go to `sliced`) or ``"denoising"`` (Vincent
    2011; needs ``path=`` and usually ``t=``, the energy then models the noisy marginal)."""
    if method == "implicit":
        return implicit(model.score, x, **options)
    if method == "sliced":
        return sliced(model.score, x, generator=generator, **options)
    if method == "denoising":
        if "path" not in options:
            raise ValueError("method 'denoising' needs path=GaussianPath(...), got no path")
        return denoising(
            lambda xt, t: model.score(xt),
            x,
            generator=generator,
            parameterization="score",
            **options,
        )
    raise ValueError(f"method must be one of {SCORE_MATCHING_METHODS}, got {method!r}")
