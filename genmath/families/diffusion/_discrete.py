"""DDPM's discrete schedules: linear and cosine betas, `DiscreteSchedule`, the discretised decoder."""

from __future__ import annotations

import math

import torch

from ..._implements import implements, plumbing
from ...core._shapes import as_time, check_batch, positive_int
from ...core.path import GaussianPath, check_gaussian_path, gaussian_posterior_coefficients
from ...core.schedules import CosineVP
from ._common import _sum_event

_VP_TOLERANCE = 1e-6  # |alpha^2 + sigma^2 - 1| allowed on a DDPM's times (round-off of the path)


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


@implements("D-ddpm-discrete-schedule")
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
    @plumbing("the uniform grid t_i = i/T; from_times holds the formula")
    def from_path(cls, path: GaussianPath, steps: int) -> DiscreteSchedule:
        """The path at $t_i = i/T$, $i = 0..T$."""
        positive_int(steps, "steps")
        return cls.from_times(path, torch.linspace(0.0, 1.0, steps + 1))

    @classmethod
    @implements("D-ddpm-discrete-schedule")
    def from_times(cls, path: GaussianPath, times) -> DiscreteSchedule:
        r"""The path at the given increasing times $0 = t_0 < \dots < t_T \le 1$; e.g.
        $t_{1..T}$ equally spaced in log-SNR (`genmath.core.grids.log_snr_grid`, reversed),
        on which the per-step KLs converge to the continuous-time ELBO as $T$ grows."""
        check_gaussian_path(path)
        times = torch.as_tensor(times)
        times = times if times.is_floating_point() else times.to(torch.get_default_dtype())
        return cls(path.alpha(times) ** 2, times, path)

    @classmethod
    @implements("D-ddpm-discrete-schedule")
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
    @plumbing("the number of steps T, a count")
    def steps(self) -> int:
        """$T$."""
        return self.times.numel() - 1

    @property
    @implements("D-ddpm-discrete-schedule")
    def betas(self) -> torch.Tensor:
        r"""$\beta_i = 1 - \bar\alpha_i/\bar\alpha_{i-1}$, shape ``(T,)`` (entry ``i - 1``)."""
        return 1 - self.alphas_cumprod[1:] / self.alphas_cumprod[:-1]

    @implements("D-ddpm-posterior")
    def posterior_coefficients(self) -> tuple[torch.Tensor, ...]:
        r"""The tables of $q(x_{i-1} \mid x_i, x_0)$ for $i = 1..T$, each of shape ``(T,)``
        (entry ``i - 1``): ``(c_x0, c_xi, variance, d_xi, d_eps)`` of core's
        `gaussian_posterior_coefficients` at $\alpha^2 = \bar\alpha_{i-1}$, $\bar\alpha_i$
        (D-ddpm-posterior, the case of D-gaussian-path-posterior): mean
        $c_{x_0}x_0 + c_{x_i}x_i = d_{x_i}x_i + d_\varepsilon\varepsilon$, variance
        $\tilde\beta_i$."""
        abar = self.alphas_cumprod
        return gaussian_posterior_coefficients(
            abar[:-1].sqrt(), (1 - abar[:-1]).sqrt(), abar[1:].sqrt(), (1 - abar[1:]).sqrt()
        )

    @property
    def posterior_variance(self) -> torch.Tensor:
        r"""$\tilde\beta_i = \frac{1-\bar\alpha_{i-1}}{1-\bar\alpha_i}\beta_i$, shape ``(T,)``
        (D-ddpm-posterior); $\tilde\beta_1 = 0$."""
        return self.posterior_coefficients()[2]

    @property
    @implements("D-ddpm-discrete-schedule")
    def snr(self) -> torch.Tensor:
        r"""$\bar\alpha_i / (1 - \bar\alpha_i)$, shape ``(T+1,)`` ($+\infty$ at $i = 0$)."""
        return self.alphas_cumprod / (1 - self.alphas_cumprod)

    @plumbing(
        "selects the schedule's own abar at the rounded indices round(kT/K): no new formula "
        "(the betas of the result are the bound `betas`)"
    )
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


@implements("D-ddpm-discretized-decoder")
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
    # standardised bin edges; the end bins reach to -inf and +inf
    lower = torch.where(x < -1 + half_bin, -math.inf, (x - half_bin - mean) / std)
    upper = torch.where(x > 1 - half_bin, math.inf, (x + half_bin - mean) / std)
    # log(Phi(b) - Phi(a)) from log-CDFs, accurate in both tails (a bin far above the mean
    # is the mirror image of one far below): never a difference of two numbers near 1
    above = lower > 0
    a, b = torch.where(above, -upper, lower), torch.where(above, -lower, upper)
    log_b, log_a = torch.special.log_ndtr(b), torch.special.log_ndtr(a)
    log_mass = log_b + torch.log1p(-torch.exp(log_a - log_b))
    return _sum_event(log_mass)
