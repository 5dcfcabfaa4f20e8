r"""Inductive moment matching (IMM, Zhou, Ermon & Song 2025): a flow-map model trained by the
maximum mean discrepancy between two pushforwards of the same time-$s$ law.

For $s < r < t$ and one data point and noise per sample, $x_t = \alpha_t x_0 + \sigma_t
\varepsilon$ and $x_r = \alpha_r x_0 + \sigma_r\varepsilon$ (the DDIM step of the pair); the
exact map pushes both the law of $x_t$ and that of $x_r$ to $p_s$, so
$\mathrm{MMD}^2\big(X_\theta(x_t, t, s)_\#,\ \mathrm{sg}\,X_\theta(x_r, r, s)_\#\big)$ vanishes there.
`imm_loss` estimates it per group of ``group_size`` samples sharing the times, by the unbiased
U-statistic `mmd_unbiased`, whose expectation is exactly zero at the exact map (the value of
one group is not). With the RBF kernel $k(a, b) = \exp(-\|a - b\|^2/(2\ell^2))$ the MMD between
two Gaussians has a closed form (`gaussian_rbf_mmd`, D-gaussian-rbf-mmd).
"""

from __future__ import annotations

import torch

from .._implements import implements, plumbing
from ..core._shapes import as_time, check_batch, reduce_batch
from ..core._validate import check_finite, in_unit_interval, positive, positive_int
from ..core.flow_map import call_flow_map
from .flow_maps import _start
from .flow_matching import interpolate

__all__ = ["gaussian_rbf_kernel_mean", "gaussian_rbf_mmd", "mmd_unbiased", "imm_loss"]


def _gaussian_args(mean, cov, index):
    mean = torch.as_tensor(mean)
    if not mean.is_floating_point() or mean.ndim != 1:
        raise ValueError(f"mean{index} must be a floating (d,) tensor, got {tuple(mean.shape)}")
    check_finite(mean, f"mean{index}")
    cov = torch.as_tensor(cov, dtype=mean.dtype)
    if cov.shape != (mean.shape[0], mean.shape[0]):
        raise ValueError(
            f"cov{index} must have shape ({mean.shape[0]}, {mean.shape[0]}) like mean{index}, "
            f"got {tuple(cov.shape)}"
        )
    check_finite(cov, f"cov{index}")
    return mean, cov


@implements("D-gaussian-rbf-mmd")
def gaussian_rbf_kernel_mean(mean1, cov1, mean2, cov2, bandwidth: float) -> torch.Tensor:
    r"""$\mathbb E\,k(X, Y)$ for independent $X \sim \mathcal N(\mu_1, \Sigma_1)$,
    $Y \sim \mathcal N(\mu_2, \Sigma_2)$ and the RBF kernel of bandwidth $\ell$:
    $\det(I + S/\ell^2)^{-1/2}\exp(-\tfrac12\delta^\top(S + \ell^2 I)^{-1}\delta)$,
    $S = \Sigma_1 + \Sigma_2$, $\delta = \mu_1 - \mu_2$ (D-gaussian-rbf-mmd)."""
    mean1, cov1 = _gaussian_args(mean1, cov1, 1)
    mean2, cov2 = _gaussian_args(mean2, cov2, 2)
    if mean2.shape != mean1.shape:
        raise ValueError(f"mean2 must have the shape of mean1, {tuple(mean1.shape)}, "
                         f"got {tuple(mean2.shape)}")
    ell2 = positive(bandwidth, "bandwidth") ** 2
    eye = torch.eye(mean1.shape[0], dtype=mean1.dtype)
    total = cov1 + cov2 + ell2 * eye
    delta = mean1 - mean2
    quadratic = delta @ torch.linalg.solve(total, delta)
    return torch.exp(-0.5 * quadratic) / torch.sqrt(torch.linalg.det(total / ell2))


@implements("D-gaussian-rbf-mmd")
def gaussian_rbf_mmd(mean1, cov1, mean2, cov2, bandwidth: float) -> torch.Tensor:
    r"""$\mathrm{MMD}^2 = \mathbb E k(X, X') + \mathbb E k(Y, Y') - 2\,\mathbb E k(X, Y)$
    between two Gaussians, in closed form by `gaussian_rbf_kernel_mean`."""
    # validated here so that an error names this call's arguments, not the inner calls'
    gaussian_rbf_kernel_mean(mean1, cov1, mean2, cov2, bandwidth)
    xx = gaussian_rbf_kernel_mean(mean1, cov1, mean1, cov1, bandwidth)
    yy = gaussian_rbf_kernel_mean(mean2, cov2, mean2, cov2, bandwidth)
    return xx + yy - 2 * gaussian_rbf_kernel_mean(mean1, cov1, mean2, cov2, bandwidth)


@implements("D-gaussian-rbf-mmd")
def mmd_unbiased(a: torch.Tensor, b: torch.Tensor, bandwidth: float) -> torch.Tensor:
    r"""The unbiased U-statistic of $\mathrm{MMD}^2$ between samples ``a``, ``b`` of shape
    ``(G, M, d)`` (``G`` groups of ``M`` each, ``M >= 2``), shape ``(G,)``:
    $\frac{1}{M(M-1)}\sum_{i \ne j} k(a_i, a_j) + k(b_i, b_j) - k(a_i, b_j) - k(b_i, a_j)$."""
    if not isinstance(a, torch.Tensor) or a.ndim != 3 or a.shape[1] < 2:
        raise ValueError(f"a must be a (G, M, d) tensor with M >= 2, got "
                         f"{tuple(a.shape) if isinstance(a, torch.Tensor) else type(a).__name__}")
    if not isinstance(b, torch.Tensor) or b.shape != a.shape:
        raise ValueError(f"b must have the shape of a, {tuple(a.shape)}")
    ell2 = positive(bandwidth, "bandwidth") ** 2

    def kernel(u, w):
        return torch.exp(-torch.cdist(u, w).pow(2) / (2 * ell2))

    m = a.shape[1]
    off = 1.0 - torch.eye(m, dtype=a.dtype, device=a.device)
    total = kernel(a, a) + kernel(b, b) - kernel(a, b) - kernel(b, a)
    return (total * off).sum((1, 2)) / (m * (m - 1))


@plumbing("composes interpolate, call_flow_map and mmd_unbiased; the times r = t - gap (t - s) are bookkeeping")
def imm_loss(
    model,
    x0: torch.Tensor,
    path=None,
    *,
    group_size: int = 4,
    bandwidth: float = 1.0,
    gap: float = 0.1,
    s=None,
    t=None,
    noise: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    reduction: str = "mean",
) -> torch.Tensor:
    r"""The IMM loss: per group of ``group_size`` consecutive samples sharing ``(s, t)`` (the
    group's first entries are used), $\widehat{\mathrm{MMD}}^2$ between
    $X_\theta(x_t, t, s)$ and $\mathrm{sg}\,X_\theta(x_r, r, s)$, $r = t - \text{gap}\,(t - s)$.
    Here ``s`` is the *target* time and ``t`` the start ($s \le t$; default $t \sim U(0, 1)$,
    $s \sim U(0, t)$). ``reduction="none"`` gives ``(B // group_size,)``, one per group."""
    check_batch(x0, "x0", event=True)
    group_size = positive_int(group_size, "group_size", minimum=2)
    if x0.shape[0] % group_size:
        raise ValueError(
            f"the batch size {x0.shape[0]} must be a multiple of group_size = {group_size}"
        )
    gap = in_unit_interval(gap, "gap", open_low=True, open_high=True)
    positive(bandwidth, "bandwidth")
    groups = x0.shape[0] // group_size
    if (s is None) != (t is None):
        raise ValueError("give both s and t, or neither (they are then drawn)")
    if t is None:
        start = torch.rand(groups, generator=generator, dtype=x0.dtype, device=x0.device)
        target = start * torch.rand(groups, generator=generator, dtype=x0.dtype, device=x0.device)
        t, s = start.repeat_interleave(group_size), target.repeat_interleave(group_size)
    s, t = as_time(s, like=x0, name="s"), as_time(t, like=x0, name="t")
    if bool((s > t).any()):
        raise ValueError("imm_loss maps from t down to s: it needs s <= t")
    if noise is None:
        noise = torch.randn(x0.shape, generator=generator, dtype=x0.dtype, device=x0.device)
    # the starts at t and at r share the data and the noise: the DDIM step of the pair
    path, x_t, _, t, s = _start(model, x0, path, t, s, noise, generator, reduction)
    r = t - gap * (t - s)
    x_r, _ = interpolate(x0, noise, r, path)
    pushed = call_flow_map(model, x_t, t, s)
    with torch.no_grad():
        target = call_flow_map(model, x_r, r, s)
    shape = (groups, group_size, -1)
    return reduce_batch(mmd_unbiased(pushed.reshape(shape), target.reshape(shape), bandwidth),
                        reduction)
