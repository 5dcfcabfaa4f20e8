r"""Heavy-tail diagnostic for Monte-Carlo samples: the generalised-Pareto shape of each tail.

A two-sided test of a mean compares $|\bar x - \mu|$ with $k$ standard errors *estimated from the
same samples*. That is sound only when the central limit theorem applies at the sample size used:
the variance must be finite, and the sample must already show it. An estimator with a
power-law tail $P(|X| > x) \sim x^{-a}$ has a finite variance only for $a > 2$; for $a \le 2$ its
sample standard deviation is dominated by the few largest draws, and a wrong mean hides inside
a standard error that grows with it (a masked-diffusion ELBO weighted by $1/\bar\alpha_t$ instead
of $1/(1 - \bar\alpha_t)$ has $a = 1$: means of 109 and 512 against exact values of 7.1 and 9.6
passed a 5-standard-error test, with standard errors of 24 and 395).

The diagnostic is the one of Pareto-smoothed importance sampling (Vehtari et al. 2024,
``genmath cite vehtari2024pareto``): fit a
generalised Pareto distribution to the $M = \min(n/5, 3\sqrt n)$ largest exceedances of each tail
(deviations above and below the median) and read its shape $\hat\xi = 1/a$. $\hat\xi < 1/2$ means a
finite variance; Vehtari et al. find Monte-Carlo estimates unreliable beyond $\hat\xi = 0.7$ at
any practical sample size, which is the default threshold here. The fit is the
profile-likelihood-weighted estimator of Zhang & Stephens (2009, ``zhang2009new``), which needs no
iteration.

Measured false-alarm rates at $\hat\xi > 0.7$ (2,000 replicates each): none for Gaussian,
$\chi^2_1$ and products of two Gaussians at $n \ge 500$ (one in 2,000 at $n = 300$), 0.2 % for
Student-$t_3$ at $n = 1000$; detection rates 40 % for $a = 1.5$ and over 90 % for $a = 1$ at
$n \ge 1000$. Below `MIN_TAIL_SAMPLES` draws the fit is too noisy and the diagnostic is skipped
(the power requirement still applies).
"""

from __future__ import annotations

import math

import torch

from ..core._validate import check_float_tensor

__all__ = ["MIN_TAIL_SAMPLES", "DEFAULT_MAX_TAIL_SHAPE", "tail_shape"]

MIN_TAIL_SAMPLES = 300
DEFAULT_MAX_TAIL_SHAPE = 0.7


def _pareto_shape(exceedances: torch.Tensor) -> torch.Tensor:
    """Zhang–Stephens estimate of the generalised-Pareto shape $\\xi$ of each column of
    ``exceedances`` (shape ``(M, C)``, non-negative, sorted ascending along dim 0).

    Zhang & Stephens parameterise the GPD by $\\theta = -\\xi/\\sigma$; for a given $\\theta$ the
    maximum-likelihood $\\xi$ is $\\overline{\\log(1 - \\theta x)}$, and the profile log-likelihood
    is $M(\\log(-\\theta/\\xi) - \\xi - 1)$. The estimate averages $\\theta$ over a fixed grid of
    candidates, weighted by their profile likelihood, and returns the $\\xi$ of that average.
    A column without spread in its tail (ties, a bounded lattice) gets $-\\infty$: not heavy."""
    m_exc = exceedances.shape[0]
    largest = exceedances[-1]
    quartile = exceedances[max(int(m_exc / 4 + 0.5) - 1, 0)]
    degenerate = (largest <= 0) | (quartile <= 0)
    largest = torch.where(degenerate, torch.ones_like(largest), largest)
    quartile = torch.where(degenerate, torch.ones_like(quartile), quartile)
    grid_size = 30 + int(math.sqrt(m_exc))
    j = torch.arange(1, grid_size + 1, dtype=exceedances.dtype, device=exceedances.device)
    theta = 1 / largest + (1 - torch.sqrt(grid_size / (j[:, None] - 0.5))) / (3 * quartile)
    xi = torch.log1p(-theta[:, None, :] * exceedances[None]).mean(1)  # (grid, C)
    profile = m_exc * (torch.log(-theta / xi) - xi - 1)
    profile = torch.where(torch.isfinite(profile), profile, torch.full_like(profile, -math.inf))
    weights = torch.softmax(profile, dim=0)
    weights = torch.where(torch.isfinite(weights), weights, torch.zeros_like(weights))
    theta_hat = (weights * theta).sum(0)
    shape = torch.log1p(-theta_hat * exceedances).mean(0)
    bad = degenerate | ~torch.isfinite(shape)
    return torch.where(bad, torch.full_like(shape, -math.inf), shape)


def tail_shape(samples: torch.Tensor) -> torch.Tensor | None:
    """The larger of the two tails' generalised-Pareto shapes $\\hat\\xi$ of each component of
    ``samples`` (``(n, ...)``; returns shape ``samples.shape[1:]``), or ``None`` when
    ``n < MIN_TAIL_SAMPLES``. $\\hat\\xi \\ge 1/2$ suggests an infinite variance, $\\hat\\xi > 0.7$ a
    sample on which a normal approximation of the mean cannot be trusted (see the module)."""
    samples = check_float_tensor(samples, "samples")
    if samples.ndim == 0:
        raise ValueError("samples must have shape (n, ...), one draw per row; got a 0-d tensor")
    n = samples.shape[0]
    if n < MIN_TAIL_SAMPLES:
        return None
    flat = samples.reshape(n, -1)
    m_exc = min(n // 5, math.ceil(3 * math.sqrt(n)))
    median = flat.median(0).values
    shapes = []
    for deviation in (flat - median, median - flat):
        top = deviation.topk(m_exc + 1, dim=0).values.flip(0)  # ascending, the threshold first
        shapes.append(_pareto_shape(top[1:] - top[:1]))
    return torch.stack(shapes).amax(0).reshape(samples.shape[1:])
