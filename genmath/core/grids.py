"""Time grids for samplers: uniform in $t$, and the EDM/Karras $\\rho$-grid.

A grid is a 1-D tensor of strictly monotone times in $[0, 1]$; samplers run from $t = 1$
(noise) towards $t = 0$ (data), so their grids decrease. Where a grid belongs to a
Gaussian path, it must also stay inside the schedule's `safe_interval`
$[t_\\mathrm{lo}, t_\\mathrm{hi}]$, the interval inside which conversions that divide by
$\\alpha_t$ or $\\sigma_t$ are well conditioned. That is the one rule for the boundaries:
a default grid spans exactly the safe interval (or $[0, 1]$ when there is no path), and an
explicit grid that leaves it is rejected with the offending index.
"""

from __future__ import annotations

import math

import torch

from .._implements import implements, plumbing

__all__ = ["uniform_grid", "karras_grid", "log_snr_grid", "snr_focused_grid", "check_grid"]


def _interval(schedule) -> tuple[float, float]:
    if schedule is None:
        return 0.0, 1.0
    lo, hi = schedule.safe_interval
    return float(lo), float(hi)


@implements("D-time-grids")
def uniform_grid(
    steps: int,
    schedule=None,
    *,
    start: float | None = None,
    end: float | None = None,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """`steps + 1` equally spaced times from `start` down (or up) to `end`.

    The defaults are the ends of the schedule's safe interval, $t_\\mathrm{hi} \\to
    t_\\mathrm{lo}$, or $1 \\to 0$ without a schedule.
    """
    _check_steps(steps)
    lo, hi = _interval(schedule)
    start = hi if start is None else float(start)
    end = lo if end is None else float(end)
    grid = torch.linspace(start, end, steps + 1, dtype=dtype, device=device)
    return check_grid(grid, schedule)


@implements("D-time-grids")
def karras_grid(
    steps: int,
    schedule,
    *,
    rho: float = 7.0,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """The EDM time discretisation (Karras et al. 2022, eq. 5) mapped to genmath's $t$.

    EDM spaces its noise levels $s = \\sigma_t / \\alpha_t = e^{-\\lambda_t / 2}$
    ($\\lambda_t$ the log-SNR) as

    $$
    s_i = \\Big(s_\\mathrm{max}^{1/\\rho} + \\tfrac{i}{N}\\big(s_\\mathrm{min}^{1/\\rho}
    - s_\\mathrm{max}^{1/\\rho}\\big)\\Big)^{\\rho}, \\qquad i = 0, \\dots, N,
    $$

    with $s_\\mathrm{max}$, $s_\\mathrm{min}$ the noise levels at the ends of the safe
    interval; each $s_i$ is mapped back to a time by the schedule's inverse log-SNR,
    $t_i = \\lambda^{-1}(-2 \\log s_i)$. Any Gaussian path with a monotone log-SNR thereby
    gets the same grid in noise level as EDM, whatever its time parameterization. Unlike
    EDM, the grid ends at $t_\\mathrm{lo}$ rather than at $s = 0$ (the rule of the module).
    """
    _check_steps(steps)
    if schedule is None:
        raise ValueError(
            "the Karras grid is defined by noise levels: it needs a schedule, got None"
        )
    if not (isinstance(rho, int | float) and math.isfinite(rho) and rho > 0):
        raise ValueError(f"rho must be a positive number, got {rho!r}")
    lo, hi = _interval(schedule)
    ends = torch.tensor([hi, lo], dtype=torch.float64)
    log_snr = schedule.log_snr(ends).to(torch.float64)
    inv_rho_max, inv_rho_min = torch.exp(-log_snr / (2 * rho))  # s^(1/rho) at t_hi and t_lo
    fraction = torch.linspace(0.0, 1.0, steps + 1, dtype=torch.float64)
    noise_level = (inv_rho_max + fraction * (inv_rho_min - inv_rho_max)) ** rho
    grid = schedule.inverse_log_snr(-2.0 * torch.log(noise_level)).to(torch.float64)
    # The inverse is exact only up to round-off; pin the ends so the grid spans the interval.
    grid[0], grid[-1] = hi, lo
    return check_grid(grid.to(dtype=dtype or torch.get_default_dtype(), device=device), schedule)


@implements("D-time-grids")
def log_snr_grid(
    steps: int,
    schedule,
    *,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Times equally spaced in log-SNR $\\lambda_t$ across the schedule's safe interval: the
    spacing DPM-Solver recommends (Lu et al. 2022), on which its step $h = \\lambda_{i+1} -
    \\lambda_i$ is constant."""
    _check_steps(steps)
    if schedule is None:
        raise ValueError("the log-SNR grid needs a schedule, got None")
    lo, hi = _interval(schedule)
    start, end = schedule.log_snr(torch.tensor([hi, lo], dtype=torch.float64)).to(torch.float64)
    levels = torch.linspace(float(start), float(end), steps + 1, dtype=torch.float64)
    grid = schedule.inverse_log_snr(levels).to(
        torch.float64
    )
    grid[0], grid[-1] = hi, lo
    return check_grid(grid.to(dtype=dtype or torch.get_default_dtype(), device=device), schedule)


@implements("D-snr-focused-grid")
def snr_focused_grid(
    steps: int,
    schedule,
    *,
    center: float = 0.0,
    width: float = 4.0,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Times whose log-SNR $\\lambda_t$ is densest at `center`: uniform in
    $\\arctan((\\lambda - c)/w)$ across the safe interval, i.e. a Cauchy-shaped density of
    steps in $\\lambda$, $\\propto 1/(1 + ((\\lambda - c)/w)^2)$.

    At very high and very low noise the denoiser of any data with a finite scale varies
    slowly in $\\lambda$ (it tends to the data mean, and to the input itself), so steps there
    buy little; the structure of the data is resolved around the log-SNR of its own scale,
    $c = -2\\log\\sigma_\\mathrm{data}$ for data of per-coordinate standard
    deviation $\\sigma_\\mathrm{data}$ ($c = 0$ for standardised data, the default).
    `width` $w$ (in nats of log-SNR) sets how far the focus reaches; $w \\to \\infty$ gives
    `log_snr_grid`. Measured against the exact flow map of a Gaussian mixture in
    `benchmarks/bench_samplers.py`; derived in D-snr-focused-grid."""
    _check_steps(steps)
    if schedule is None:
        raise ValueError("the SNR-focused grid needs a schedule, got None")
    for name, value in (("center", center), ("width", width)):
        if not (isinstance(value, int | float) and math.isfinite(value)):
            raise ValueError(f"{name} must be a finite number, got {value!r}")
    if not width > 0:
        raise ValueError(f"width must be positive, got {width!r}")
    lo, hi = _interval(schedule)
    start, end = (
        float(v) for v in schedule.log_snr(torch.tensor([hi, lo], dtype=torch.float64))
    )
    a0, a1 = math.atan((start - center) / width), math.atan((end - center) / width)
    fraction = torch.linspace(0.0, 1.0, steps + 1, dtype=torch.float64)
    lam = center + width * torch.tan(a0 + fraction * (a1 - a0))
    grid = schedule.inverse_log_snr(lam).to(torch.float64)
    grid[0], grid[-1] = hi, lo
    return check_grid(grid.to(dtype=dtype or torch.get_default_dtype(), device=device), schedule)


@plumbing("validation of a time grid: shape, finiteness, monotonicity, the safe interval")
def check_grid(grid, schedule=None, *, name: str = "grid") -> torch.Tensor:
    """Validate a time grid: 1-D, at least two points, finite, strictly monotone, inside
    $[0, 1]$ and, given a schedule, inside its safe interval. Returns it as a tensor."""
    grid = torch.as_tensor(grid)
    if not grid.is_floating_point():
        grid = grid.to(torch.get_default_dtype())
    if grid.ndim != 1 or grid.numel() < 2:
        raise ValueError(
            f"{name} must be a 1-D tensor of at least 2 times, got shape {tuple(grid.shape)}"
        )
    if not torch.isfinite(grid).all():
        i = int((~torch.isfinite(grid)).nonzero()[0])
        raise ValueError(f"{name} must be finite, got {float(grid[i])} at index {i}")
    outside = (grid < 0) | (grid > 1)
    if outside.any():
        i = int(outside.nonzero()[0])
        raise ValueError(
            f"{name} must lie in [0, 1] (t = 0 data, t = 1 noise), got {float(grid[i])} at index {i}"
        )
    diffs = grid[1:] - grid[:-1]
    direction = 1 if diffs[0] > 0 else -1
    bad = diffs * direction <= 0
    if bad.any():
        i = int(bad.nonzero()[0])
        raise ValueError(
            f"{name} must be strictly monotone, got {float(grid[i])} then {float(grid[i + 1])} "
            f"at indices {i}, {i + 1}"
        )
    if schedule is not None:
        lo, hi = _interval(schedule)
        unsafe = (grid < lo) | (grid > hi)
        if unsafe.any():
            i = int(unsafe.nonzero()[0])
            raise ValueError(
                f"{name} must stay inside the schedule's safe interval [{lo:g}, {hi:g}], "
                f"got {float(grid[i]):g} at index {i}"
            )
    return grid


def _check_steps(steps) -> None:
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps!r}")
