"""DDIM(eta) on any Gaussian path."""

from __future__ import annotations

import torch

from ..._implements import implements
from ...core._shapes import check_batch, positive_int
from ...core.dynamics import SampleResult
from ...core.grids import check_grid, uniform_grid
from ...core.path import GaussianPath, check_gaussian_path, check_parameterization
from ._common import Model, _bind_condition


@implements("D-ddim-marginals")
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

    a draw of the non-Markovian $q_\eta(x_s \mid x_t, x_0)$ with the path's marginals
    (D-ddim-marginals); $c^2$ is $\eta^2$ times the posterior variance of
    `GaussianPath.posterior_coefficients` (D-gaussian-path-posterior). $\eta = 0$ is the deterministic DDIM step, the first-order
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
    # c^2 = eta^2 times the posterior variance sigma_s^2 (1 - e^{lambda_t - lambda_s}) of
    # q(x_s | x_t, x_0), the path's one formula; it is 0 at s = 0 (sigma_s = 0)
    _, _, posterior_variance, _, _ = path.posterior_coefficients(grid[1:], grid[:-1], like=x)
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
        c = eta * posterior_variance[k].sqrt()
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
