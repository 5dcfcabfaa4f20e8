"""EDM (Karras et al. 2022): preconditioning, loss weight, log-normal noise levels, Heun / churn sampling."""

from __future__ import annotations

import math

import torch
from torch import nn

from ..._implements import implements
from ...core._shapes import as_time, check_batch, expand_time, positive_int
from ...core.dynamics import SampleResult, reparameterize
from ...core.grids import karras_grid
from ...core.path import GaussianPath, check_gaussian_path, check_parameterization
from ...core.schedules import VE
from ._common import Model, _bind_condition, _per_sample_times, _sum_event
from ._guidance import drop_condition


def _check_sigma_data(sigma_data) -> float:
    if not (isinstance(sigma_data, int | float) and math.isfinite(sigma_data) and sigma_data > 0):
        raise ValueError(f"sigma_data must be a positive number, got {sigma_data!r}")
    return float(sigma_data)


@implements("D-edm-preconditioning", "D-edm-sampler")
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


@implements("D-edm-loss-weight")
def edm_loss_weight(noise_level: torch.Tensor, sigma_data: float = 0.5) -> torch.Tensor:
    r"""$\lambda(s) = (s^2 + \sigma_d^2)/(s\,\sigma_d)^2 = 1/c_\mathrm{out}^2$: the weight that
    makes EDM's loss an unweighted regression of the network onto a unit-variance target
    (D-edm-loss-weight)."""
    sigma_data = _check_sigma_data(sigma_data)
    s = torch.as_tensor(noise_level)
    return (s**2 + sigma_data**2) / (s * sigma_data) ** 2


@implements("D-edm-noise-levels")
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

    @implements("D-edm-sampler")
    def noise_level(self, t) -> torch.Tensor:
        r"""$s_t = \sigma_t/\alpha_t$."""
        return self.path.sigma(t) / self.path.alpha(t)

    @implements("D-edm-sampler")
    def time_of(self, noise_level: torch.Tensor) -> torch.Tensor:
        r"""The time with $s_t$ = ``noise_level`` (the path's inverse log-SNR at $-2\ln s$)."""
        return self.path.schedule.inverse_log_snr(-2 * torch.log(noise_level))

    @implements("D-edm-loss-weight")
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

    @implements("D-edm-loss-weight")
    def forward(self, x: torch.Tensor, t, condition=None) -> torch.Tensor:
        """The ``"x0"`` prediction at path state ``x`` and time ``t``."""
        tt = as_time(t, like=x)
        alpha = expand_time(self.path.alpha(tt), x)
        return self.denoise(x / alpha, self.noise_level(tt), condition)

    @implements("D-edm-preconditioning")
    def network_target(self, x0_prediction: torch.Tensor, x_scaled: torch.Tensor, noise_level):
        r"""The network output $F = (D - c_\mathrm{skip}\tilde x)/c_\mathrm{out}$ that produces a
        given denoiser: for the ideal $D$ on $\mathcal N(0, \sigma_d^2 I)$ data it is $0$."""
        s = _per_sample_times(torch.as_tensor(noise_level, dtype=x_scaled.dtype), x_scaled.shape[0])
        c_skip, c_out, _, _ = edm_preconditioning(s, self.sigma_data)
        return (x0_prediction - expand_time(c_skip, x_scaled) * x_scaled) / expand_time(
            c_out, x_scaled
        )

    @implements("D-edm-loss-weight")
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


@implements("D-edm-sampler", "D-edm-churn")
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
