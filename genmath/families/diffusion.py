r"""Diffusion models: DDPM, DDIM, score SDEs, EDM and classifier-free guidance — one Gaussian
path, one reverse-SDE family, one ELBO.

**Composition.** Every model here is a Gaussian path (`genmath.GaussianPath` with a VP,
cosine, sub-VP or VE schedule) + a network predicting one of the five parameterizations,
converted by the path's one table (`GaussianPath.convert`) + the reverse-SDE family and the
probability-flow ODE of `genmath.core.dynamics` for sampling + the ELBO
(`genmath.core.elbo`: `diagonal_gaussian_kl` for the discrete bound,
`gaussian_path_elbo` for its continuous-time limit) + `ode_log_likelihood` and
`bits_per_dim` (`genmath.core.likelihood`) for exact likelihoods. What lives here is the
bookkeeping of each paper:

| model | what it adds to the core | derivations |
| --- | --- | --- |
| `DDPM` | a *discrete* schedule: the path observed at times $t_0 = 0 < t_1 < \dots < t_T$ (`DiscreteSchedule`); ancestral sampling; the discrete-time bound with per-step KLs and a (discretised) decoder; respacing | D-ddpm-posterior, D-ddpm-bound-simple |
| `ddim_sample` | DDIM($\eta$): the non-Markovian process with the path's marginals; $\eta = 0$ is core's `"ddim"` ODE step, $\eta = 1$ DDPM's ancestral step | D-ddim-marginals |
| `ScoreSDE` | VP / sub-VP / VE as paths (`sub_vp`); Euler–Maruyama and predictor–corrector sampling of `ReverseSDE`; exact likelihood by the probability-flow ODE | D-sub-vp-sde, D-reverse-sde-marginals |
| `EDM` | the preconditioning $c_\mathrm{skip}, c_\mathrm{out}, c_\mathrm{in}, c_\mathrm{noise}$, the loss weight, log-normal noise levels, and Heun / stochastic-churn sampling on the $\rho$-grid | D-edm-preconditioning, D-edm-loss-weight |
| `guide` | classifier-free guidance in any parameterization; training by condition dropout | D-cfg-not-a-marginal |

Time runs as everywhere in genmath: $t = 0$ data, $t = 1$ noise,
$x_t = \alpha_t x_0 + \sigma_t\varepsilon$. A DDPM step index $i \in \{1, \dots, T\}$ is the
time $t_i$; its $\bar\alpha_i = \alpha_{t_i}^2$ and $\beta_i = 1 - \bar\alpha_i/\bar\alpha_{i-1}$.
EDM's noise level is $s_t = \sigma_t/\alpha_t = e^{-\lambda_t/2}$ on any path, and its state
is the scaled $x_t/\alpha_t = x_0 + s_t\varepsilon$.

Models are called ``model(x, t)`` with ``t`` a ``(B,)`` tensor of times (or a 0-d tensor in
the core samplers), or ``model(x, t, condition)`` when a condition is given.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import sympy as sp
import torch
from torch import nn

from ..core import score as _score
from ..core._shapes import as_time, check_batch, expand_time, positive_int
from ..core.dynamics import ReverseSDE, SampleResult, reparameterize
from ..core.elbo import diagonal_gaussian_kl
from ..core.grids import check_grid, karras_grid, uniform_grid
from ..core.likelihood import bits_per_dim, ode_log_likelihood
from ..core.path import GaussianPath, check_gaussian_path, check_parameterization
from ..core.schedules import VE, CosineVP, Schedule
from .denoisers import NULL_LABEL
from .flow_matching import guided as _guided_combination

__all__ = [
    "VARIANCES",
    "DECODERS",
    "linear_betas",
    "cosine_betas",
    "DiscreteSchedule",
    "DDPM",
    "discretized_gaussian_log_likelihood",
    "ddim_sample",
    "sub_vp",
    "ScoreSDE",
    "edm_preconditioning",
    "edm_loss_weight",
    "lognormal_noise_levels",
    "EDM",
    "edm_sample",
    "drop_condition",
    "guide",
]

VARIANCES = ("beta", "beta_tilde", "learned")
"""Reverse-kernel variances of `DDPM`: $\\beta_i$, the posterior $\\tilde\\beta_i$, or learned
interpolation between their logarithms (Nichol & Dhariwal 2021)."""
DECODERS = ("gaussian", "discretized")
"""Decoders $p(x_0 \\mid x_1)$ of the DDPM bound: a Gaussian density (continuous data) or
Ho et al.'s discretised Gaussian on 256 levels in $[-1, 1]$ (images)."""

Model = Callable[..., torch.Tensor]

_VP_TOLERANCE = 1e-6  # |alpha^2 + sigma^2 - 1| allowed on a DDPM's times (round-off of the path)


# --------------------------------------------------------------------------- small helpers


def _bind_condition(model: Model, condition, batch: int) -> Callable:
    """``(x, t) -> model(x, t[, condition])``, with the condition's batch size checked."""
    if condition is None:
        return model
    if not isinstance(condition, torch.Tensor) or condition.ndim < 1:
        raise ValueError(
            f"condition must be a tensor with a batch dimension, got {type(condition).__name__}"
        )
    if condition.shape[0] != batch:
        raise ValueError(
            f"condition has batch size {condition.shape[0]} but x has batch size {batch}: "
            "expected one condition per sample"
        )

    def bound(x: torch.Tensor, t) -> torch.Tensor:
        if x.shape[0] != condition.shape[0]:
            raise ValueError(
                f"condition has batch size {condition.shape[0]} but the model was called on "
                f"a batch of {x.shape[0]}"
            )
        return model(x, t, condition)

    return bound


def _per_sample_times(t: torch.Tensor, batch: int) -> torch.Tensor:
    return t.expand(batch) if t.ndim == 0 else t


def _sum_event(values: torch.Tensor) -> torch.Tensor:
    return values.flatten(1).sum(1)


# --------------------------------------------------------------------------- DDPM schedules


def linear_betas(steps: int, beta_start: float = 1e-4, beta_end: float = 0.02) -> torch.Tensor:
    r"""Ho et al. (2020)'s linear schedule: $\beta_i$ equally spaced from ``beta_start`` to
    ``beta_end``, $i = 1..T$; shape ``(T,)``. Its continuous-time limit is the VP SDE with
    $\beta(t) = T\beta_{start} + t\,T(\beta_{end} - \beta_{start})$, i.e. ``VP(0.1, 20)`` for
    the defaults at $T = 1000$ (Song et al. 2021)."""
    positive_int(steps, "steps")
    if not 0 < beta_start <= beta_end < 1:
        raise ValueError(
            f"need 0 < beta_start <= beta_end < 1, got beta_start={beta_start}, beta_end={beta_end}"
        )
    return torch.linspace(beta_start, beta_end, steps, dtype=torch.get_default_dtype())


def cosine_betas(steps: int, s: float = 0.008, max_beta: float = 0.999) -> torch.Tensor:
    r"""Nichol & Dhariwal (2021)'s cosine schedule, shape ``(T,)``: $\bar\alpha_i$ is
    `CosineVP(s)`'s $\alpha^2$ at $t = i/T$, and $\beta_i = \min(1 - \bar\alpha_i /
    \bar\alpha_{i-1}, \beta_{max})$ — the clipping keeps the last steps from being pure noise."""
    positive_int(steps, "steps")
    if not 0 < max_beta < 1:
        raise ValueError(f"max_beta must lie in (0, 1), got {max_beta}")
    times = torch.linspace(0.0, 1.0, steps + 1, dtype=torch.get_default_dtype())
    abar = CosineVP(s).alpha(times) ** 2
    return (1 - abar[1:] / abar[:-1]).clamp(max=max_beta)


class DiscreteSchedule:
    r"""A DDPM schedule: a VP-type Gaussian path observed at times $0 = t_0 < t_1 < \dots < t_T$.

    $\bar\alpha_i = \alpha_{t_i}^2$ (and $\sigma_{t_i}^2 = 1 - \bar\alpha_i$), so the network
    is called at the continuous time $t_i$ and every conversion between parameterizations is
    the path's. Build one from

    * a path: `DiscreteSchedule.from_path(path, T)`, $t_i = i/T$ (the path discretised), or
      `DiscreteSchedule.from_times(path, times)` at times of your choice;
    * a list of $\beta_i$: `DiscreteSchedule.from_betas(betas, path)`, $t_i$ the time at which
      the path's log-SNR equals $\log(\bar\alpha_i/(1 - \bar\alpha_i))$ — the default path,
      `CosineVP()`, has log-SNRs from $+\infty$ to $-\infty$, so any $\beta$ list has times.

    Attributes:
        path: the `GaussianPath`.
        times: ``(T+1,)`` tensor $t_0..t_T$.
        alphas_cumprod: ``(T+1,)`` tensor $\bar\alpha_0 = 1, \dots, \bar\alpha_T$.
    """

    def __init__(self, alphas_cumprod: torch.Tensor, times: torch.Tensor, path: GaussianPath):
        self.path = check_gaussian_path(path)
        abar = torch.as_tensor(alphas_cumprod)
        times = torch.as_tensor(times, dtype=abar.dtype)
        if abar.ndim != 1 or abar.numel() < 2 or times.shape != abar.shape:
            raise ValueError(
                "alphas_cumprod and times must be 1-D of equal length T + 1 >= 2, got shapes "
                f"{tuple(abar.shape)} and {tuple(times.shape)}"
            )
        alpha, sigma = path.alpha(times), path.sigma(times)
        gap = (alpha**2 - abar).abs().max()
        off_vp = (alpha**2 + sigma**2 - 1).abs().max()
        if not (gap <= _VP_TOLERANCE and off_vp <= _VP_TOLERANCE):
            raise ValueError(
                "DDPM needs a variance-preserving path whose alpha^2 at the times equals "
                f"alphas_cumprod: max |alpha^2 - abar| = {float(gap):.3g}, "
                f"max |alpha^2 + sigma^2 - 1| = {float(off_vp):.3g} for {path!r}"
            )
        if float(abar[0]) != 1.0 or float(times[0]) != 0.0:
            raise ValueError(
                f"a DDPM schedule starts at the data: need alphas_cumprod[0] = 1 and times[0] = 0, "
                f"got {float(abar[0])} and {float(times[0])}"
            )
        if (abar[1:] >= abar[:-1]).any():
            raise ValueError("alphas_cumprod must decrease strictly from 1")
        # the reverse mean divides by sqrt(1 - beta_i) = alpha_i / alpha_{i-1}: the boundary
        # rule of the schedule (min_scale) applies to this ratio
        ratio = (abar[1:] / abar[:-1]).sqrt()
        min_scale = path.schedule.min_scale
        if not (ratio >= min_scale).all():
            i = int((~(ratio >= min_scale)).nonzero()[0]) + 1
            raise ValueError(
                f"every beta_i < 1 - min_scale^2 is needed (the reverse mean divides by "
                f"sqrt(1 - beta_i) >= min_scale = {min_scale:g}); got beta_{i} = "
                f"{float(1 - ratio[i - 1] ** 2):.6g}. Clip the betas (cosine_betas does) or "
                "use a path with alpha_1 > 0"
            )
        as_time(times, name="times")
        if (times[1:] <= times[:-1]).any():
            raise ValueError(f"times must increase strictly, got {times.tolist()[:8]}...")
        self.alphas_cumprod = abar
        self.times = times

    @classmethod
    def from_path(cls, path: GaussianPath, steps: int) -> DiscreteSchedule:
        """The path at $t_i = i/T$, $i = 0..T$."""
        positive_int(steps, "steps")
        return cls.from_times(path, torch.linspace(0.0, 1.0, steps + 1))

    @classmethod
    def from_times(cls, path: GaussianPath, times) -> DiscreteSchedule:
        r"""The path at the given increasing times $0 = t_0 < \dots < t_T \le 1$; e.g.
        $t_{1..T}$ equally spaced in log-SNR (`genmath.core.grids.log_snr_grid`, reversed),
        on which the per-step KLs converge to the continuous-time ELBO as $T$ grows."""
        check_gaussian_path(path)
        times = torch.as_tensor(times)
        times = times if times.is_floating_point() else times.to(torch.get_default_dtype())
        return cls(path.alpha(times) ** 2, times, path)

    @classmethod
    def from_betas(cls, betas, path: GaussianPath | None = None) -> DiscreteSchedule:
        r"""$\bar\alpha_i = \prod_{j \le i}(1 - \beta_j)$ on the path's times of equal log-SNR."""
        betas = torch.as_tensor(betas)
        if not betas.is_floating_point():
            betas = betas.to(torch.get_default_dtype())
        if betas.ndim != 1 or betas.numel() < 1 or not ((betas > 0) & (betas < 1)).all():
            raise ValueError(f"betas must be a 1-D tensor of values in (0, 1), got {betas}")
        path = GaussianPath(CosineVP()) if path is None else check_gaussian_path(path)
        abar = torch.cat([betas.new_ones(1), torch.cumprod(1 - betas, 0)])
        # log(abar / (1 - abar)), accurate for abar near 1 where 1 - abar is tiny
        log_snr = torch.log(abar[1:]) - torch.log1p(-abar[1:])
        times = torch.cat([betas.new_zeros(1), path.schedule.inverse_log_snr(log_snr)])
        return cls(abar, times, path)

    @property
    def steps(self) -> int:
        """$T$."""
        return self.times.numel() - 1

    @property
    def betas(self) -> torch.Tensor:
        r"""$\beta_i = 1 - \bar\alpha_i/\bar\alpha_{i-1}$, shape ``(T,)`` (entry ``i - 1``)."""
        return 1 - self.alphas_cumprod[1:] / self.alphas_cumprod[:-1]

    @property
    def posterior_variance(self) -> torch.Tensor:
        r"""$\tilde\beta_i = \frac{1-\bar\alpha_{i-1}}{1-\bar\alpha_i}\beta_i$, shape ``(T,)``
        (D-ddpm-posterior); $\tilde\beta_1 = 0$."""
        abar = self.alphas_cumprod
        return (1 - abar[:-1]) / (1 - abar[1:]) * self.betas

    @property
    def snr(self) -> torch.Tensor:
        r"""$\bar\alpha_i / (1 - \bar\alpha_i)$, shape ``(T+1,)`` ($+\infty$ at $i = 0$)."""
        return self.alphas_cumprod / (1 - self.alphas_cumprod)

    def respace(self, steps: int) -> DiscreteSchedule:
        r"""The schedule on ``steps`` of its own times, evenly spaced in index (Nichol &
        Dhariwal 2021, sec. 4): $\bar\alpha'_k = \bar\alpha_{\tau_k}$ with
        $\tau_k = \mathrm{round}(kT/K)$, hence $\beta'_k = 1 - \bar\alpha'_k/\bar\alpha'_{k-1}$.
        The path's marginals at the kept times are unchanged, so a model trained on the full
        schedule samples with fewer steps."""
        positive_int(steps, "steps")
        if steps > self.steps:
            raise ValueError(f"cannot respace {self.steps} steps to more ({steps})")
        index = torch.linspace(0, self.steps, steps + 1, dtype=torch.float64).round().long()
        return DiscreteSchedule(self.alphas_cumprod[index], self.times[index], self.path)

    def __repr__(self) -> str:
        return f"DiscreteSchedule(T={self.steps}, path={self.path!r})"


def discretized_gaussian_log_likelihood(
    x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor, levels: int = 256
) -> torch.Tensor:
    r"""$\log P(x)$ of Ho et al. (2020)'s discretised decoder, summed over event dims, ``(B,)``.

    Data are on a grid of ``levels`` values in $[-1, 1]$ (bin width $\Delta = 2/(L-1)$); each
    value owns the mass of $\mathcal N(\mu, s^2)$ on $[x - \Delta/2, x + \Delta/2]$, the end
    bins extended to $\mp\infty$, so the masses of the $L$ values sum to one.
    """
    check_batch(x, "x")
    if mean.shape != x.shape or std.shape != x.shape:
        raise ValueError(
            f"mean and std must have the shape of x {tuple(x.shape)}, got "
            f"{tuple(mean.shape)} and {tuple(std.shape)}"
        )
    if (x < -1 - 1e-6).any() or (x > 1 + 1e-6).any():
        raise ValueError("discretised data must lie in [-1, 1]")
    half_bin = 1.0 / (levels - 1)
    normal = torch.distributions.Normal(mean, std)
    upper = torch.where(x > 1 - half_bin, torch.ones_like(x), normal.cdf(x + half_bin))
    lower = torch.where(x < -1 + half_bin, torch.zeros_like(x), normal.cdf(x - half_bin))
    # in the far tails the difference of CDFs underflows; the density times the bin width is
    # then the mass to round-off
    mass = upper - lower
    tiny = mass < 1e-12
    log_mass = torch.where(
        tiny,
        normal.log_prob(x) + math.log(2 * half_bin),
        torch.log(mass.clamp_min(torch.finfo(x.dtype).tiny)),
    )
    return _sum_event(log_mass)


# --------------------------------------------------------------------------- DDPM


class DDPM(nn.Module):
    r"""Denoising diffusion probabilistic model (Ho et al. 2020; Nichol & Dhariwal 2021).

    Forward process $q(x_i \mid x_{i-1}) = \mathcal N(\sqrt{1-\beta_i}\,x_{i-1}, \beta_i I)$ on
    a `DiscreteSchedule`; reverse kernels $p(x_{i-1} \mid x_i) = \mathcal N(\mu_\theta(x_i, i),
    \Sigma_i)$ with the posterior mean of the predicted $\hat x_0$ (D-ddpm-posterior)

    $$
    \mu_\theta(x_i, i) = \tilde\mu_i(x_i, \hat x_0) = \frac{1}{\sqrt{1-\beta_i}}\Big(x_i -
    \frac{\beta_i}{\sqrt{1-\bar\alpha_i}}\hat\varepsilon\Big),
    $$

    and $\Sigma_i = \beta_i$, $\tilde\beta_i$, or $\exp(v\log\beta_i + (1-v)\log\tilde\beta_i)$
    with $v$ from ``variance_model`` (Nichol & Dhariwal 2021, eq. 15; $\tilde\beta_1 = 0$ is
    replaced by $\tilde\beta_2$ in the logarithm, as there).

    Arguments:
        model: ``model(x, t[, condition])`` predicting ``parameterization`` at the times
            $t_i$ of the schedule (``t`` of shape ``(B,)``).
        schedule: a `DiscreteSchedule`.
        parameterization: what the model predicts; converted by ``schedule.path.convert``.
        variance: one of `VARIANCES`.
        variance_model: ``(x, t[, condition]) -> v`` shaped like ``x``, for ``"learned"``.
    """

    def __init__(
        self,
        model: Model,
        schedule: DiscreteSchedule,
        parameterization: str = "eps",
        variance: str = "beta_tilde",
        variance_model: Model | None = None,
    ):
        super().__init__()
        if not isinstance(schedule, DiscreteSchedule):
            raise ValueError(f"schedule must be a DiscreteSchedule, got {type(schedule).__name__}")
        if variance not in VARIANCES:
            raise ValueError(f"variance must be one of {VARIANCES}, got {variance!r}")
        if (variance == "learned") != (variance_model is not None):
            raise ValueError(
                "variance='learned' needs variance_model (and only it takes one); got "
                f"variance={variance!r}, variance_model={variance_model!r}"
            )
        self.model = model
        self.variance_model = variance_model
        self.schedule = schedule
        self.path = schedule.path
        self.parameterization = check_parameterization(parameterization)
        self.variance = variance

    # -- the reverse kernel ----------------------------------------------------------------

    def _steps(self, i, batch: int, device) -> torch.Tensor:
        i = torch.as_tensor(i, device=device)
        if i.is_floating_point() or i.is_complex():
            raise ValueError(f"timesteps must be integers, got dtype {i.dtype}")
        if i.ndim == 0:
            i = i.expand(batch)
        if i.shape != (batch,):
            raise ValueError(
                f"timesteps must be a scalar or have shape ({batch},), got {tuple(i.shape)}"
            )
        T = self.schedule.steps
        if ((i < 1) | (i > T)).any():
            bad = i[(i < 1) | (i > T)]
            raise ValueError(f"timesteps must lie in 1..{T}, got {bad.tolist()[:5]}")
        return i.long()

    def _coefficient(self, table: torch.Tensor, i, x: torch.Tensor):
        """``table[i]`` for an integer ``i`` (0-d) or a ``(B,)`` index, broadcastable to x."""
        return expand_time(table.to(dtype=x.dtype, device=x.device)[i], x)

    def predict_eps(self, x: torch.Tensor, i, condition=None) -> torch.Tensor:
        """The model's prediction at step ``i`` converted to $\\hat\\varepsilon$."""
        i = self._steps(i, x.shape[0], x.device)
        t = self.schedule.times.to(dtype=x.dtype, device=x.device)[i]
        prediction = _bind_condition(self.model, condition, x.shape[0])(x, t)
        return self.path.convert(prediction, x, t, self.parameterization, "eps")

    def reverse_mean(self, x: torch.Tensor, i, eps: torch.Tensor) -> torch.Tensor:
        r"""$\tilde\mu_i(x_i, \hat x_0)$ in its $\varepsilon$-form (D-ddpm-posterior), for step
        ``i`` (an integer or a ``(B,)`` tensor in 1..T)."""
        beta = self._coefficient(self.schedule.betas, i - 1, x)
        abar = self._coefficient(self.schedule.alphas_cumprod, i, x)
        return (x - beta / torch.sqrt(1 - abar) * eps) / torch.sqrt(1 - beta)

    def reverse_variance(self, x: torch.Tensor, i, condition=None) -> torch.Tensor:
        r"""$\Sigma_i$, broadcastable against ``x``."""
        i = self._steps(i, x.shape[0], x.device)
        beta = self._coefficient(self.schedule.betas, i - 1, x)
        if self.variance == "beta":
            return beta
        tilde = self.schedule.posterior_variance
        if self.variance == "beta_tilde":
            return self._coefficient(tilde, i - 1, x)
        clipped = torch.cat([tilde[1:2], tilde[1:]]) if tilde.numel() > 1 else self.schedule.betas
        log_tilde = self._coefficient(torch.log(clipped), i - 1, x)
        t = self.schedule.times.to(dtype=x.dtype, device=x.device)[i]
        v = _bind_condition(self.variance_model, condition, x.shape[0])(x, t)
        return torch.exp(v * torch.log(beta) + (1 - v) * log_tilde)

    def reverse_kernel(self, x: torch.Tensor, i, condition=None):
        """``(mean, variance)`` of $p_\\theta(x_{i-1} \\mid x_i)$."""
        i = self._steps(i, x.shape[0], x.device)
        eps = self.predict_eps(x, i, condition)
        return self.reverse_mean(x, i, eps), self.reverse_variance(x, i, condition)

    # -- training ----------------------------------------------------------------------------

    def loss(
        self,
        x0: torch.Tensor,
        condition=None,
        *,
        condition_dropout: float = 0.0,
        vlb_weight: float = 0.0,
        generator: torch.Generator | None = None,
        reduction: str = "mean",
    ) -> torch.Tensor:
        r"""$L_\mathrm{simple} = \mathbb E_{i, x_0, \varepsilon}\|y - f_\theta(x_i, t_i)\|^2$,
        $i \sim U\{1..T\}$, with $y$ the parameterization's target (for ``"eps"``: Ho et al.'s
        $\|\varepsilon - \hat\varepsilon\|^2$, the per-step KL without its weight,
        D-ddpm-bound-simple). Computed by core's `genmath.score_matching.denoising` (twice
        its $\tfrac12$-scaled value). With a condition, entries are dropped to `NULL_LABEL`
        with probability ``condition_dropout`` (classifier-free guidance training).
        ``vlb_weight`` $\lambda > 0$ adds Nichol & Dhariwal's $\lambda L_\mathrm{vlb}$ for a
        learned variance: $T$ times one random per-step KL term with the mean held fixed.
        """
        x0 = check_batch(x0, "x0")
        if condition is not None:
            condition = drop_condition(condition, condition_dropout, generator=generator)
        batch = x0.shape[0]
        model = _bind_condition(self.model, condition, batch)
        i = torch.randint(1, self.schedule.steps + 1, (batch,), generator=generator)
        t = self.schedule.times.to(dtype=x0.dtype)[i].to(x0.device)
        values = 2 * _score.denoising(
            model,
            x0,
            self.path,
            t=t,
            parameterization=self.parameterization,
            generator=generator,
            reduction="none",
        )
        if vlb_weight:
            if self.variance != "learned":
                raise ValueError("vlb_weight applies to variance='learned' only")
            values = values + vlb_weight * self._vlb_term(x0, condition, generator)
        return values.mean() if reduction == "mean" else values

    def _vlb_term(self, x0, condition, generator) -> torch.Tensor:
        batch = x0.shape[0]
        if self.schedule.steps < 2:
            return x0.new_zeros(batch)
        # steps 2..T only: step 1 is the decoder, whose variance is beta_1 for every choice
        i = torch.randint(2, self.schedule.steps + 1, (batch,), generator=generator)
        xi, _ = self.path.sample(x0, self.schedule.times.to(x0)[i], generator=generator)
        with torch.no_grad():
            eps = self.predict_eps(xi, i, condition)
        mean = self.reverse_mean(xi, i, eps)
        variance = self.reverse_variance(xi, i, condition).expand_as(xi)
        return (self.schedule.steps - 1) * self._step_kl(x0, xi, i, mean, variance)

    # -- the bound -------------------------------------------------------------------------

    def _step_kl(self, x0, xi, i, mean, variance) -> torch.Tensor:
        r"""$\mathrm{KL}(q(x_{i-1} \mid x_i, x_0)\,\|\,p_\theta(x_{i-1} \mid x_i))$, ``(B,)``."""
        sched = self.schedule
        abar = sched.alphas_cumprod.to(xi)
        beta = self._coefficient(sched.betas, i - 1, xi)
        coef_x0 = expand_time(abar[i - 1].sqrt(), xi) * beta / expand_time(1 - abar[i], xi)
        coef_xi = torch.sqrt(1 - beta) * expand_time((1 - abar[i - 1]) / (1 - abar[i]), xi)
        true_mean = coef_x0 * x0 + coef_xi * xi
        true_std = self._coefficient(sched.posterior_variance, i - 1, xi).sqrt().expand_as(xi)
        return diagonal_gaussian_kl(true_mean, true_std, mean, variance.sqrt().expand_as(xi))

    def elbo(
        self,
        x0: torch.Tensor,
        condition=None,
        *,
        decoder: str = "gaussian",
        generator: torch.Generator | None = None,
        terms: bool = False,
        chunk: int = 100,
    ):
        r"""The discrete-time variational bound (Sohl-Dickstein et al. 2015; Ho et al. 2020),
        $\log p(x_0) \ge -(L_T + \sum_{i=2}^T L_{i-1} + L_0)$, shape ``(B,)``, with

        * prior $L_T = \mathrm{KL}(q(x_T \mid x_0)\,\|\,\mathcal N(0, I))$, exact;
        * per-step $L_{i-1} = \mathrm{KL}(q(x_{i-1} \mid x_i, x_0)\,\|\,p_\theta(x_{i-1}\mid
          x_i))$ (closed-form Gaussian KL by core's `diagonal_gaussian_kl`), at one draw of
          $x_i \sim q(x_i \mid x_0)$ for every $i$;
        * decoder $L_0 = -\log p_\theta(x_0 \mid x_1)$: $\mathcal N(\mu_\theta(x_1, 1),
          \beta_1)$ (``"gaussian"``) or its discretised version on 256 levels
          (``"discretized"``, data in $[-1, 1]$, `discretized_gaussian_log_likelihood`).

        Exact Gaussian data make the gap explicit: averaged over $x_0 \sim q$,
        $\mathbb E[\log q(x_0)] - \mathbb E[\mathrm{bound}] = \mathrm{KL}(q(x_T)\,\|\,\mathcal
        N(0, I)) + \sum_{i=1}^T\mathbb E\,\mathrm{KL}(q(x_{i-1}\mid x_i)\,\|\,p_\theta(x_{i-1}
        \mid x_i))$ (tested). ``terms=True`` also returns ``{"prior": (B,), "steps": (B, T-1)
        for i = 2..T, "decoder": (B,)}``. ``chunk`` steps are evaluated per model call.
        """
        x0 = check_batch(x0, "x0")
        if decoder not in DECODERS:
            raise ValueError(f"decoder must be one of {DECODERS}, got {decoder!r}")
        positive_int(chunk, "chunk")
        batch, T = x0.shape[0], self.schedule.steps
        abar = self.schedule.alphas_cumprod.to(x0)
        abar_T = abar[-1]
        prior = diagonal_gaussian_kl(
            abar_T.sqrt() * x0, (1 - abar_T).sqrt().expand_as(x0), 0.0, 1.0
        )
        step_terms = []
        for start in range(2, T + 1, chunk):
            idx = torch.arange(start, min(start + chunk, T + 1), device=x0.device)
            i = idx.repeat_interleave(batch)
            x_rep = x0.repeat(idx.numel(), *([1] * (x0.ndim - 1)))
            c_rep = (
                None
                if condition is None
                else condition.repeat(idx.numel(), *([1] * (condition.ndim - 1)))
            )
            xi, _ = self.path.sample(x_rep, self.schedule.times.to(x0)[i], generator=generator)
            mean, variance = self.reverse_kernel(xi, i, c_rep)
            kl = self._step_kl(x_rep, xi, i, mean, variance.expand_as(xi))
            step_terms.append(kl.reshape(idx.numel(), batch).T)
        steps = torch.cat(step_terms, 1) if step_terms else x0.new_zeros(batch, 0)

        one = torch.ones(batch, dtype=torch.long, device=x0.device)
        x1, _ = self.path.sample(x0, self.schedule.times.to(x0)[one], generator=generator)
        mean, _ = self.reverse_kernel(x1, one, condition)
        std = self.schedule.betas[0].to(x0).sqrt().expand_as(x0)
        if decoder == "gaussian":
            log_likelihood = _sum_event(torch.distributions.Normal(mean, std).log_prob(x0))
        else:
            log_likelihood = discretized_gaussian_log_likelihood(x0, mean, std)
        decoder_term = -log_likelihood
        value = -(prior + steps.sum(1) + decoder_term)
        if terms:
            return value, {"prior": prior, "steps": steps, "decoder": decoder_term}
        return value

    # -- sampling ----------------------------------------------------------------------------

    def sample(
        self,
        xT: torch.Tensor,
        condition=None,
        *,
        generator: torch.Generator | None = None,
        keep_trajectory: bool = False,
    ) -> SampleResult:
        r"""Ancestral sampling (Ho et al. 2020, Algorithm 2) from $x_T$ (pass
        $\mathcal N(0, I)$ draws): $x_{i-1} = \mu_\theta(x_i, i) + \Sigma_i^{1/2} z$, no noise at
        the last step. Returns a `SampleResult` with ``grid`` the times $t_T..t_0$."""
        x = check_batch(xT, "xT")
        trajectory = [x] if keep_trajectory else None
        model = _bind_condition(self.model, condition, x.shape[0])
        sched = self.schedule
        times = sched.times.to(dtype=x.dtype, device=x.device)
        nfe = 0
        for step in range(sched.steps, 0, -1):
            # every sample is at the same step: 0-d times and Python-float coefficients keep
            # the loop as cheap as the model call
            t = times[step]
            eps = self.path.convert(model(x, t), x, t, self.parameterization, "eps")
            nfe += 1
            mean = self.reverse_mean(x, step, eps)
            if step > 1:
                index = torch.full((x.shape[0],), step, dtype=torch.long, device=x.device)
                variance = self.reverse_variance(x, index, condition)
                z = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
                x = mean + variance.sqrt() * z
            else:
                x = mean
            if not torch.isfinite(x).all():
                raise ValueError(f"non-finite state after DDPM step {step}; check the model")
            if keep_trajectory:
                trajectory.append(x)
        grid = self.schedule.times.flip(0).to(dtype=x.dtype, device=x.device)
        return SampleResult(
            x=x,
            nfe=nfe,
            grid=grid,
            trajectory=torch.stack(trajectory) if keep_trajectory else None,
        )

    def respaced(self, steps: int) -> DDPM:
        """The same model on `DiscreteSchedule.respace` ``(steps)``."""
        return DDPM(
            self.model,
            self.schedule.respace(steps),
            self.parameterization,
            self.variance,
            self.variance_model,
        )


# --------------------------------------------------------------------------- DDIM


def ddim_sample(
    model: Model,
    x1: torch.Tensor,
    path: GaussianPath,
    *,
    steps: int | None = None,
    grid=None,
    eta: float = 0.0,
    parameterization: str = "eps",
    condition=None,
    clip_denoised: tuple[float, float] | None = None,
    generator: torch.Generator | None = None,
    keep_trajectory: bool = False,
) -> SampleResult:
    r"""DDIM($\eta$) (Song, Meng & Ermon 2021) on any Gaussian path, from $t$ to $s < t$:

    $$
    x_s = \alpha_s\hat x_0 + \sqrt{\sigma_s^2 - c^2}\,\hat\varepsilon + c\,z, \qquad
    c = \eta\,\sigma_s\sqrt{1 - e^{\lambda_t - \lambda_s}},
    $$

    the mean of the non-Markovian $q_\eta(x_s \mid x_t, x_0)$ with the path's marginals
    (D-ddim-marginals). $\eta = 0$ is the deterministic DDIM step, the first-order
    exponential integrator of the probability-flow ODE (core's ``sample_ode(...,
    method="ddim")``); $\eta = 1$ makes $c^2$ the posterior variance, i.e. DDPM's ancestral
    step with $\tilde\beta$. As the steps shrink, $c^2 \approx \eta^2 g_t^2\,|dt|$: DDIM($\eta$)
    discretises the member $\nu = \eta g$ of the reverse-SDE family (`ReverseSDE`).

    Arguments:
        model: ``model(x, t[, condition])`` predicting ``parameterization``.
        x1: the start at the first grid time, ``(B, *event)``.
        path: the `GaussianPath`.
        steps: number of uniform steps over the schedule's safe interval (without ``grid``).
        grid: an explicit decreasing grid in $[0, 1]$; it may end at $0$ (the model is only
            called at the other times, each of which must allow the conversions to ``"x0"``
            and ``"eps"``).
        eta: $\eta \in [0, 1]$.
        clip_denoised: ``(low, high)`` clamps $\hat x_0$ to the data range and recomputes
            $\hat\varepsilon = (x_t - \alpha_t\hat x_0)/\sigma_t$ (Ho et al.'s clipping for
            images): near $t = 1$, $\hat x_0 = (x_t - \sigma_t\hat\varepsilon)/\alpha_t$
            multiplies a trained network's error by $1/\alpha_t$. ``None``: no clipping.
    """
    x = check_batch(x1, "x1")
    check_gaussian_path(path)
    check_parameterization(parameterization)
    if not (isinstance(eta, int | float) and 0 <= eta <= 1):
        raise ValueError(f"eta must lie in [0, 1], got {eta!r}")
    if grid is None:
        if steps is None:
            raise ValueError("ddim_sample needs steps (a positive integer) or an explicit grid")
        grid = uniform_grid(positive_int(steps, "steps"), path.schedule)
    grid = check_grid(grid).to(dtype=x.dtype, device=x.device)
    if grid[1] > grid[0]:
        raise ValueError("ddim_sample runs from noise to data: the grid must decrease")
    field = _bind_condition(model, condition, x.shape[0])
    alpha, sigma = path.alpha(grid), path.sigma(grid)
    log_snr = path.log_snr(grid)
    trajectory = [x] if keep_trajectory else None
    for k in range(grid.numel() - 1):
        t = grid[k]
        prediction = field(x, t)
        x0 = path.convert(prediction, x, t, parameterization, "x0")
        if clip_denoised is not None:
            x0 = x0.clamp(*clip_denoised)
            eps = path.convert(x0, x, t, "x0", "eps")
        else:
            eps = path.convert(prediction, x, t, parameterization, "eps")
        # exp(lambda_t - lambda_s) -> 0 as s -> 0 (lambda_s -> +inf): c -> eta * sigma_s -> 0
        c = eta * sigma[k + 1] * torch.sqrt(-torch.expm1(log_snr[k] - log_snr[k + 1]))
        x = alpha[k + 1] * x0 + torch.sqrt((sigma[k + 1] ** 2 - c**2).clamp_min(0)) * eps
        if eta > 0:
            x = x + c * torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
        if not torch.isfinite(x).all():
            raise ValueError(f"non-finite state after DDIM step {k} (t = {float(t):.6g})")
        if keep_trajectory:
            trajectory.append(x)
    return SampleResult(
        x=x,
        nfe=grid.numel() - 1,
        grid=grid,
        trajectory=torch.stack(trajectory) if keep_trajectory else None,
    )


# --------------------------------------------------------------------------- score SDEs


def sub_vp(beta_min: float = 0.1, beta_max: float = 20.0) -> Schedule:
    r"""The sub-VP SDE of Song et al. (2021) as a Gaussian path: $\alpha_t = e^{-B_t/2}$,
    $\sigma_t = 1 - e^{-B_t}$, $B_t = \beta_{min}t + \tfrac12(\beta_{max}-\beta_{min})t^2$.
    Its forward SDE (the path's, `GaussianPath.drift`/`diffusion`) has
    $f = -\beta_t/2$ and $g^2 = \beta_t(1 - e^{-2B_t})$, below VP's $\beta_t$
    (D-sub-vp-sde)."""
    for name, value in (("beta_min", beta_min), ("beta_max", beta_max)):
        if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
            raise ValueError(f"{name} must be a positive number, got {value!r}")
    if not beta_min < beta_max:
        raise ValueError(f"need beta_min < beta_max, got {beta_min}, {beta_max}")
    t = sp.Symbol("t", nonnegative=True)
    integral = sp.nsimplify(beta_min) * t + sp.nsimplify(beta_max - beta_min) / 2 * t**2
    # the compiler rewrites 1 - exp(-B) to -expm1(-B), accurate where sigma_t is tiny
    return Schedule.from_sympy(sp.exp(-integral / 2), 1 - sp.exp(-integral), t, name="subVP")


def _standard_log_prob(x: torch.Tensor, std) -> torch.Tensor:
    flat = x.flatten(1)
    std = torch.as_tensor(std, dtype=x.dtype, device=x.device)
    return _sum_event(torch.distributions.Normal(torch.zeros_like(flat), std).log_prob(flat))


class ScoreSDE:
    r"""Score-based generative modelling through SDEs (Song et al. 2021): a Gaussian path (VP,
    `sub_vp`, VE), a model in any parameterization, and the reverse-SDE family of the core.

    * `loss`: denoising score matching with $\lambda(t) = \sigma_t^2$ (their likelihood-free
      weighting; for the score parameterization this is $\|\sigma_t s_\theta +
      \varepsilon\|^2$), via core's `genmath.score_matching.denoising`;
    * `sample`: ``"euler_maruyama"`` or ``"pc"`` (predictor–corrector, Langevin corrector) on
      `ReverseSDE` with $\nu = g$, or any `sample_ode` method on the probability-flow ODE;
    * `log_likelihood` / `bits_per_dim`: `ode_log_likelihood` on the probability-flow ODE over
      the safe interval $[t_{lo}, t_{hi}]$, prior $\mathcal N(0, \sigma_{t_{hi}}^2 I)$ unless
      given (the usual approximation of $p_{t_{hi}}$; pass the exact one where it is known).
    """

    def __init__(self, model: Model, path: GaussianPath, parameterization: str = "score"):
        self.model = model
        self.path = check_gaussian_path(path)
        self.parameterization = check_parameterization(parameterization)

    def loss(
        self,
        x0: torch.Tensor,
        condition=None,
        *,
        generator: torch.Generator | None = None,
        reduction: str = "mean",
    ) -> torch.Tensor:
        model = _bind_condition(self.model, condition, x0.shape[0])
        weighting = (
            (lambda t: self.path.sigma(t) ** 2) if self.parameterization == "score" else None
        )
        return _score.denoising(
            model,
            x0,
            self.path,
            parameterization=self.parameterization,
            weighting=weighting,
            generator=generator,
            reduction=reduction,
        )

    def _reverse_sde(
        self, condition=None, batch: int | None = None, noise: float = 1.0
    ) -> ReverseSDE:
        model = self.model if condition is None else _bind_condition(self.model, condition, batch)
        return ReverseSDE(self.path, model, self.parameterization, noise=noise)

    def sample(
        self,
        x1: torch.Tensor,
        condition=None,
        *,
        steps: int = 500,
        method: str = "euler_maruyama",
        generator: torch.Generator | None = None,
        **options,
    ) -> SampleResult:
        """Sample from ``x1`` (draws of the prior at the top of the safe interval)."""
        sde = self._reverse_sde(condition, x1.shape[0])
        if method in ("euler_maruyama", "pc"):
            return sde.sample(x1, steps=steps, method=method, generator=generator, **options)
        return sde.probability_flow().sample(x1, steps=steps, method=method, **options)

    def prior_log_prob(self, x: torch.Tensor) -> torch.Tensor:
        r"""$\log\mathcal N(x; 0, \sigma_{t_{hi}}^2 I)$, shape ``(B,)``."""
        t_hi = self.path.schedule.safe_interval[1]
        return _standard_log_prob(x, self.path.sigma(torch.tensor(t_hi, dtype=x.dtype)))

    def log_likelihood(self, x: torch.Tensor, condition=None, *, prior_log_prob=None, **options):
        r"""$\log p_{t_{lo}}(x)$ by the probability-flow ODE, shape ``(B,)``."""
        model = _bind_condition(self.model, condition, x.shape[0])
        velocity = reparameterize(model, self.path, self.parameterization, "velocity")
        t_lo, t_hi = self.path.schedule.safe_interval
        return ode_log_likelihood(
            velocity,
            x,
            prior_log_prob or self.prior_log_prob,
            t0=t_lo,
            t1=t_hi,
            **options,
        )

    def bits_per_dim(
        self,
        x: torch.Tensor,
        condition=None,
        *,
        levels: int = 256,
        data_range=(0.0, 1.0),
        **options,
    ) -> torch.Tensor:
        """Bits per dimension of uniformly dequantized data (core's `bits_per_dim`)."""
        log_prob = self.log_likelihood(x, condition, **options)
        return bits_per_dim(log_prob, tuple(x.shape[1:]), levels=levels, data_range=data_range)


# --------------------------------------------------------------------------- EDM


def _check_sigma_data(sigma_data) -> float:
    if not (isinstance(sigma_data, int | float) and math.isfinite(sigma_data) and sigma_data > 0):
        raise ValueError(f"sigma_data must be a positive number, got {sigma_data!r}")
    return float(sigma_data)


def edm_preconditioning(noise_level: torch.Tensor, sigma_data: float = 0.5):
    r"""EDM's $(c_\mathrm{skip}, c_\mathrm{out}, c_\mathrm{in}, c_\mathrm{noise})$ at noise level
    $s$ (Karras et al. 2022, Table 1; D-edm-preconditioning):
    $c_\mathrm{skip} = \sigma_d^2/(s^2+\sigma_d^2)$, $c_\mathrm{out} = s\sigma_d/\sqrt{s^2+
    \sigma_d^2}$, $c_\mathrm{in} = 1/\sqrt{s^2+\sigma_d^2}$, $c_\mathrm{noise} = \tfrac14\ln s$."""
    sigma_data = _check_sigma_data(sigma_data)
    s = torch.as_tensor(noise_level)
    if (s <= 0).any() or not torch.isfinite(s).all():
        raise ValueError(f"noise levels must be positive and finite, got min {float(s.min())}")
    total = s**2 + sigma_data**2
    return sigma_data**2 / total, s * sigma_data / total.sqrt(), 1 / total.sqrt(), s.log() / 4


def edm_loss_weight(noise_level: torch.Tensor, sigma_data: float = 0.5) -> torch.Tensor:
    r"""$\lambda(s) = (s^2 + \sigma_d^2)/(s\,\sigma_d)^2 = 1/c_\mathrm{out}^2$: the weight that
    makes EDM's loss an unweighted regression of the network onto a unit-variance target
    (D-edm-loss-weight)."""
    sigma_data = _check_sigma_data(sigma_data)
    s = torch.as_tensor(noise_level)
    return (s**2 + sigma_data**2) / (s * sigma_data) ** 2


def lognormal_noise_levels(
    n: int,
    p_mean: float = -1.2,
    p_std: float = 1.2,
    *,
    generator: torch.Generator | None = None,
    dtype: torch.dtype | None = None,
    device=None,
) -> torch.Tensor:
    r"""EDM's training noise levels, $\ln s \sim \mathcal N(P_\mathrm{mean}, P_\mathrm{std}^2)$,
    shape ``(n,)``."""
    positive_int(n, "n")
    if not p_std > 0:
        raise ValueError(f"p_std must be positive, got {p_std}")
    z = torch.randn(n, generator=generator, dtype=dtype, device=device)
    return torch.exp(p_mean + p_std * z)


class EDM(nn.Module):
    r"""EDM (Karras et al. 2022): the denoiser $D(\tilde x; s) = c_\mathrm{skip}\tilde x +
    c_\mathrm{out}F(c_\mathrm{in}\tilde x, c_\mathrm{noise})$ on the scaled state
    $\tilde x = x_t/\alpha_t = x_0 + s_t\varepsilon$ of any Gaussian path (default
    ``VE(0.002, 80)``, where $\tilde x = x_t$ and $s_t = \sigma_t$).

    As a path model, ``edm(x, t)`` is the ``"x0"`` prediction $D(x/\alpha_t; s_t)$, so every
    core sampler and `ode_log_likelihood` take it with ``parameterization="x0"``.

    Arguments:
        network: $F(x, c_\mathrm{noise}[, condition])$, shaped like ``x``.
        path: the `GaussianPath` that maps times to noise levels.
        sigma_data: $\sigma_d$, the data's standard deviation.
    """

    def __init__(self, network: Model, path: GaussianPath | None = None, sigma_data: float = 0.5):
        super().__init__()
        self.network = network
        self.path = GaussianPath(VE(0.002, 80.0)) if path is None else check_gaussian_path(path)
        self.sigma_data = _check_sigma_data(sigma_data)

    def noise_level(self, t) -> torch.Tensor:
        r"""$s_t = \sigma_t/\alpha_t$."""
        return self.path.sigma(t) / self.path.alpha(t)

    def time_of(self, noise_level: torch.Tensor) -> torch.Tensor:
        r"""The time with $s_t$ = ``noise_level`` (the path's inverse log-SNR at $-2\ln s$)."""
        return self.path.schedule.inverse_log_snr(-2 * torch.log(noise_level))

    def denoise(self, x_scaled: torch.Tensor, noise_level, condition=None) -> torch.Tensor:
        r"""$D(\tilde x; s)$ on the scaled state (EDM's own coordinates)."""
        check_batch(x_scaled, "x")
        s = torch.as_tensor(noise_level, dtype=x_scaled.dtype, device=x_scaled.device)
        s = _per_sample_times(s, x_scaled.shape[0])
        c_skip, c_out, c_in, c_noise = (
            expand_time(c, x_scaled) if k < 3 else c
            for k, c in enumerate(edm_preconditioning(s, self.sigma_data))
        )
        network = _bind_condition(self.network, condition, x_scaled.shape[0])
        return c_skip * x_scaled + c_out * network(c_in * x_scaled, c_noise)

    def forward(self, x: torch.Tensor, t, condition=None) -> torch.Tensor:
        """The ``"x0"`` prediction at path state ``x`` and time ``t``."""
        tt = as_time(t, like=x)
        alpha = expand_time(self.path.alpha(tt), x)
        return self.denoise(x / alpha, self.noise_level(tt), condition)

    def network_target(self, x0_prediction: torch.Tensor, x_scaled: torch.Tensor, noise_level):
        r"""The network output $F = (D - c_\mathrm{skip}\tilde x)/c_\mathrm{out}$ that produces a
        given denoiser: for the ideal $D$ on $\mathcal N(0, \sigma_d^2 I)$ data it is $0$."""
        s = _per_sample_times(torch.as_tensor(noise_level, dtype=x_scaled.dtype), x_scaled.shape[0])
        c_skip, c_out, _, _ = edm_preconditioning(s, self.sigma_data)
        return (x0_prediction - expand_time(c_skip, x_scaled) * x_scaled) / expand_time(
            c_out, x_scaled
        )

    def loss(
        self,
        x0: torch.Tensor,
        condition=None,
        *,
        noise_level=None,
        condition_dropout: float = 0.0,
        p_mean: float = -1.2,
        p_std: float = 1.2,
        generator: torch.Generator | None = None,
        reduction: str = "mean",
    ) -> torch.Tensor:
        r"""$\lambda(s)\,\|D(x_0 + s\,n; s) - x_0\|^2$ with $\ln s \sim \mathcal N(P_\mathrm{mean},
        P_\mathrm{std}^2)$ (or the given ``noise_level``), summed over event dims. It equals
        $\|F - (x_0 - c_\mathrm{skip}\tilde x)/c_\mathrm{out}\|^2$ (D-edm-loss-weight)."""
        x0 = check_batch(x0, "x0")
        batch = x0.shape[0]
        if noise_level is None:
            s = lognormal_noise_levels(
                batch, p_mean, p_std, generator=generator, dtype=x0.dtype, device=x0.device
            )
        else:
            s = _per_sample_times(torch.as_tensor(noise_level, dtype=x0.dtype), batch)
        if condition is not None:
            condition = drop_condition(condition, condition_dropout, generator=generator)
        noise = torch.randn(x0.shape, generator=generator, dtype=x0.dtype, device=x0.device)
        x_scaled = x0 + expand_time(s, x0) * noise
        denoised = self.denoise(x_scaled, s, condition)
        values = edm_loss_weight(s, self.sigma_data) * _sum_event((denoised - x0) ** 2)
        return values.mean() if reduction == "mean" else values

    def sample(self, x1: torch.Tensor, condition=None, **options) -> SampleResult:
        """`edm_sample` of this denoiser."""
        model = self if condition is None else _bind_condition(self, condition, x1.shape[0])
        return edm_sample(model, x1, self.path, parameterization="x0", **options)


def edm_sample(
    model: Model,
    x1: torch.Tensor,
    path: GaussianPath,
    *,
    steps: int = 18,
    parameterization: str = "x0",
    rho: float = 7.0,
    churn: float = 0.0,
    s_tmin: float = 0.0,
    s_tmax: float = math.inf,
    s_noise: float = 1.0,
    generator: torch.Generator | None = None,
    keep_trajectory: bool = False,
) -> SampleResult:
    r"""EDM's samplers (Karras et al. 2022, Algorithms 1–2) on any Gaussian path.

    In the noise level $s$ and the scaled state $\tilde x = x/\alpha$ the probability-flow ODE
    is $d\tilde x/ds = (\tilde x - D(\tilde x; s))/s$; it is integrated by Heun's method on the
    $\rho$-grid of core's `karras_grid` (its times mapped to $s_i = \sigma/\alpha$). With
    ``churn`` $> 0$, each step whose $s_i \in [s_{tmin}, s_{tmax}]$ first raises the noise to
    $\hat s = s_i(1 + \gamma)$, $\gamma = \min(\mathrm{churn}/N, \sqrt2 - 1)$, by adding
    $\sqrt{\hat s^2 - s_i^2}\,S_\mathrm{noise}\,z$ (a step along the forward SDE), then takes
    the Heun step from $\hat s$ — the stochastic sampler; $\hat s$ is capped at the top of the
    safe interval so that it has a time. Every step is second order (the grid ends at the
    bottom of the safe interval, $s > 0$). Returns the state in path coordinates
    $x = \alpha\tilde x$ at $t_\mathrm{lo}$; ``nfe`` counts model calls ($2N$).
    """
    x = check_batch(x1, "x1")
    check_gaussian_path(path)
    check_parameterization(parameterization)
    positive_int(steps, "steps")
    for name, value in (("churn", churn), ("s_noise", s_noise), ("rho", rho)):
        if not (isinstance(value, int | float) and value >= 0):
            raise ValueError(f"{name} must be a number >= 0, got {value!r}")
    times = karras_grid(steps, path.schedule, rho=rho, dtype=x.dtype, device=x.device)
    alpha, sigma = path.alpha(times), path.sigma(times)
    levels = sigma / alpha
    s_cap = float(levels[0])
    gamma = min(churn / steps, math.sqrt(2) - 1)
    to_x0 = reparameterize(model, path, parameterization, "x0")
    nfe = 0

    def denoised(x_scaled: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        nonlocal nfe
        nfe += 1
        return to_x0(path.alpha(t) * x_scaled, t)

    x_scaled = x / alpha[0]
    trajectory = [x] if keep_trajectory else None
    for k in range(steps):
        s, s_next, t, t_next = levels[k], levels[k + 1], times[k], times[k + 1]
        if gamma > 0 and s_tmin <= float(s) <= s_tmax:
            s_hat = torch.clamp(s * (1 + gamma), max=s_cap)
            t_hat = path.schedule.inverse_log_snr(-2 * torch.log(s_hat)).clamp(max=times[0])
            z = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
            x_scaled = x_scaled + torch.sqrt((s_hat**2 - s**2).clamp_min(0)) * s_noise * z
            s, t = s_hat, t_hat
        slope = (x_scaled - denoised(x_scaled, t)) / s
        x_euler = x_scaled + (s_next - s) * slope
        slope_next = (x_euler - denoised(x_euler, t_next)) / s_next
        x_scaled = x_scaled + (s_next - s) * 0.5 * (slope + slope_next)
        if not torch.isfinite(x_scaled).all():
            raise ValueError(f"non-finite state after EDM step {k} (s = {float(s):.4g})")
        if keep_trajectory:
            trajectory.append(alpha[k + 1] * x_scaled)
    return SampleResult(
        x=alpha[-1] * x_scaled,
        nfe=nfe,
        grid=times,
        trajectory=torch.stack(trajectory) if keep_trajectory else None,
    )


# --------------------------------------------------------------------------- guidance


def drop_condition(condition: torch.Tensor, p: float, *, generator=None) -> torch.Tensor:
    r"""Replace each label by `NULL_LABEL` with probability ``p`` (Ho & Salimans 2021): one
    network learns the conditional and, on the dropped entries, the unconditional model."""
    if not 0 <= p <= 1:
        raise ValueError(f"condition dropout p must lie in [0, 1], got {p}")
    if not isinstance(condition, torch.Tensor) or condition.ndim != 1:
        raise ValueError(
            "condition dropout works on a (B,) tensor of integer labels, got "
            f"{tuple(condition.shape) if isinstance(condition, torch.Tensor) else type(condition).__name__}"
        )
    if p == 0:
        return condition
    drop = torch.rand(condition.shape, generator=generator) < p
    return torch.where(drop.to(condition.device), torch.full_like(condition, NULL_LABEL), condition)


def guide(
    model: Model,
    condition: torch.Tensor,
    scale: float,
    *,
    unconditional: Model | None = None,
) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    r"""Classifier-free guidance: ``(x, t) ->`` $f_w = f_\varnothing + w\,(f_c - f_\varnothing)$.

    Works in any parameterization: each is affine in the prediction with coefficients that
    do not depend on the model (`GaussianPath.convert`), and $(1-w) + w = 1$, so guiding then
    converting equals converting then guiding — guided $\varepsilon$ gives the guided score
    $\nabla\log p_t(x) + w\,(\nabla\log p_t(x \mid c) - \nabla\log p_t(x))$. That score is
    **not** the score of any path marginal in general (D-cfg-not-a-marginal): guided sampling
    does not sample $p(x_0 \mid c)^w p(x_0)^{1-w}$ pushed along the path.

    Arguments:
        model: ``model(x, t, condition)``; with ``unconditional=None`` its unconditional branch
            is ``model(x, t, None)``, available when ``model.has_null_condition`` (trained
            with `drop_condition`).
        condition: one condition per sample, batch size that of ``x``.
        scale: $w$; $w = 1$ needs no unconditional branch.
        unconditional: an explicit ``(x, t) ->`` unconditional model.
    """
    if not (isinstance(scale, int | float) and math.isfinite(scale)):
        raise ValueError(f"guidance scale must be a finite number, got {scale!r}")
    if not isinstance(condition, torch.Tensor) or condition.ndim < 1:
        raise ValueError(f"condition must be a tensor with a batch dimension, got {condition!r}")
    batch = condition.shape[0]
    conditional = _bind_condition(model, condition, batch)
    if scale == 1:
        return conditional
    if unconditional is None:
        if not getattr(model, "has_null_condition", False):
            raise ValueError(
                f"guidance scale {scale} != 1 needs an unconditional branch: pass "
                "unconditional=... or a model with has_null_condition=True (trained with "
                "condition dropout), got neither"
            )

        def unconditional(x: torch.Tensor, t) -> torch.Tensor:
            return model(x, t, None)

    return _guided_combination(conditional, unconditional, float(scale))
