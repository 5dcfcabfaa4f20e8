"""Integration loops behind `sample_ode` and `sample_sde` (private).

Each loop walks a validated time grid $t_0, \\dots, t_N$ (decreasing for sampling), calls
the model through a `CountedField` that checks shapes and counts evaluations, and checks the
state after every step, so an error names the step index and the time at which it happened.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import torch

from .._implements import implements, plumbing

FIXED_STEP_METHODS = ("euler", "midpoint", "heun", "rk4")
EXPONENTIAL_METHODS = ("ddim", "dpm++2m", "dpm++3m", "unipc")
SDE_METHODS = ("euler_maruyama", "pc")


@dataclasses.dataclass
class CountedField:
    """A model call `fn(x, t)` that must return a tensor shaped like `x`; counts its calls."""

    fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    name: str
    nfe: int = 0
    step: int = 0

    @plumbing("counts model evaluations and checks the output's shape")
    def __call__(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        out = self.fn(x, t)
        self.nfe += 1
        if not isinstance(out, torch.Tensor) or out.shape != x.shape:
            got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise ValueError(
                f"{self.name} must return a tensor of the state's shape {tuple(x.shape)}, "
                f"got {got} at step {self.step} (t = {float(t):.6g})"
            )
        return out


def _check_state(x: torch.Tensor, step: int, t_from: torch.Tensor, t_to: torch.Tensor) -> None:
    # One reduction on the fast path: a NaN or an infinity makes the sum non-finite; a finite
    # state whose sum overflows is told apart by the exact check.
    if torch.isfinite(x.sum()) or torch.isfinite(x).all():
        return
    raise ValueError(
        f"non-finite state after step {step} (t = {float(t_from):.6g} -> {float(t_to):.6g}); "
        "expected finite values: check the model near this time or use more steps"
    )


def _fixed_step(method: str, field: CountedField, x, t, t_next):
    h = t_next - t
    # stages at the end of the step use t_next itself: t + h can round past the grid's end
    # (and out of the safe interval) in floating point
    if method == "euler":
        return x + h * field(x, t)
    if method == "midpoint":
        k1 = field(x, t)
        return x + h * field(x + 0.5 * h * k1, t + 0.5 * h)
    if method == "heun":
        k1 = field(x, t)
        k2 = field(x + h * k1, t_next)
        return x + 0.5 * h * (k1 + k2)
    if method == "rk4":
        k1 = field(x, t)
        k2 = field(x + 0.5 * h * k1, t + 0.5 * h)
        k3 = field(x + 0.5 * h * k2, t + 0.5 * h)
        k4 = field(x + h * k3, t_next)
        return x + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
    raise AssertionError(method)


@implements("D-runge-kutta-steps")
def integrate_fixed(method, field: CountedField, x, grid, keep_trajectory: bool):
    trajectory = [x] if keep_trajectory else None
    for k in range(grid.numel() - 1):
        field.step = k
        t, t_next = grid[k], grid[k + 1]
        x = _fixed_step(method, field, x, t, t_next)
        _check_state(x, k, t, t_next)
        if keep_trajectory:
            trajectory.append(x)
    return x, trajectory


@implements(
    "D-ddim-exponential-integrator", "D-dpm-solver-pp-2m", "D-exponential-adams-2",
    "D-exponential-adams-3",
)
def integrate_exponential(
    method, denoiser: CountedField, x, grid, alpha, sigma, keep_trajectory, lower_order_final=0
):
    """DDIM and DPM-Solver++(2M): exponential integrators of the probability-flow ODE in the
    data ($x_0$) prediction, with $\\lambda = \\log(\\alpha/\\sigma)$ (derivations
    D-ddim-exponential-integrator, D-dpm-solver-pp-2m):

    $$
    x_{k+1} = \\frac{\\sigma_{k+1}}{\\sigma_k} x_k - \\alpha_{k+1}\\big(e^{-h_k} - 1\\big) D_k,
    \\qquad h_k = \\lambda_{k+1} - \\lambda_k,
    $$

    with $D_k = \\hat x_0$ (DDIM) or, for 2M, $D_k = (1 + \\tfrac{1}{2r_k})\\hat x_0^{(k)} -
    \\tfrac{1}{2r_k}\\hat x_0^{(k-1)}$, $r_k = h_{k-1}/h_k$, on every step but the first and
    the last. The last 2M step is first order, like diffusers' `lower_order_final`: grids that
    end near the data have a long last step in $\\lambda$ across which the linear
    extrapolation is unreliable, and one first-order step leaves the global order at 2.

    `alpha`, `sigma` are the schedule's values on the grid (tensors of the grid's length);
    `lower_order_final`: for ``"dpm++3m"`` and ``"unipc"``, how many final steps predict from
    the current output alone (`genmath.core._multistep.multistep_plan`).
    """
    if method in ("dpm++3m", "unipc"):
        return _integrate_adams(
            method, denoiser, x, grid, alpha, sigma, keep_trajectory, lower_order_final
        )
    lam = torch.log(alpha) - torch.log(sigma)
    h = lam[1:] - lam[:-1]
    # every coefficient is known before the first step: compute them once, as Python floats
    state_coef = (sigma[1:] / sigma[:-1]).tolist()
    data_coef = (-alpha[1:] * torch.expm1(-h)).tolist()
    half_inverse_ratio = [0.0, *(h[1:] / (2 * h[:-1])).tolist()]  # 1/(2 r_k), r_k = h_{k-1}/h_k
    last = grid.numel() - 2
    second_order = method == "dpm++2m"
    trajectory = [x] if keep_trajectory else None
    previous_x0 = None
    for k in range(last + 1):
        denoiser.step = k
        x0 = denoiser(x, grid[k])
        if second_order and previous_x0 is not None and k < last:
            c = half_inverse_ratio[k]
            data = torch.add(x0 * (1 + c), previous_x0, alpha=-c)
        else:
            data = x0
        x = torch.add(x * state_coef[k], data, alpha=data_coef[k])
        _check_state(x, k, grid[k], grid[k + 1])
        previous_x0 = x0
        if keep_trajectory:
            trajectory.append(x)
    return x, trajectory


def _integrate_adams(
    method, denoiser: CountedField, x, grid, alpha, sigma, keep_trajectory, lower_order_final=0
):
    """Exponential Adams integrators (`genmath.core._multistep`): ``"dpm++3m"`` extrapolates
    the quadratic through the last three denoiser outputs (third order; the first two steps
    use the one and two outputs available); ``"unipc"`` predicts from the last two and corrects
    with the quadratic through them and the output at the predicted point, which the next
    step reuses (Zhao et al. 2023's predictor-corrector: no extra evaluation, third order)."""
    from ._multistep import multistep_plan

    lam64 = (torch.log(alpha) - torch.log(sigma)).to(torch.float64)
    plan = multistep_plan(method, lam64.tolist(), lower_order_final)
    state_coef = (sigma[1:] / sigma[:-1]).tolist()
    alpha_next = alpha[1:].tolist()
    trajectory = [x] if keep_trajectory else None
    outputs: list[torch.Tensor] = []  # denoiser outputs, newest first
    last = grid.numel() - 2
    for k in range(last + 1):
        denoiser.step = k
        if not outputs or plan[k - 1]["corrector"] is None:
            outputs.insert(0, denoiser(x, grid[k]))
        base = x * state_coef[k]
        predicted = _weighted(base, alpha_next[k], plan[k]["predictor"], outputs)
        corrector = plan[k]["corrector"]
        if corrector is None:
            x = predicted
        else:
            denoiser.step = k + 1
            new = denoiser(predicted, grid[k + 1])  # reused as the next step's D_k
            outputs.insert(0, new)
            x = _weighted(base, alpha_next[k], corrector, outputs)
        del outputs[3:]
        _check_state(x, k, grid[k], grid[k + 1])
        if keep_trajectory:
            trajectory.append(x)
    return x, trajectory


def _weighted(base: torch.Tensor, scale: float, weights, outputs) -> torch.Tensor:
    """``base + scale * sum_j weights[j] * outputs[j]``."""
    out = base
    for weight, value in zip(weights, outputs, strict=False):
        out = torch.add(out, value, alpha=scale * weight)
    return out
def _standard_normal(x: torch.Tensor, generator) -> torch.Tensor:
    """A standard Gaussian draw shaped like `x`: the one place the SDE loops draw noise."""
    return torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)


def _broadcast(value, x: torch.Tensor) -> torch.Tensor:
    """A diffusion coefficient (float, 0-d or (B,)) shaped to multiply `x`."""
    value = torch.as_tensor(value, dtype=x.dtype, device=x.device)
    if value.ndim == 0:
        return value
    if value.ndim == 1 and value.shape[0] == x.shape[0]:
        return value.reshape(-1, *([1] * (x.ndim - 1)))
    if value.shape == x.shape:
        return value
    raise ValueError(
        f"diffusion must return a scalar, a (B,) tensor or a tensor of the state's shape "
        f"{tuple(x.shape)}, got shape {tuple(value.shape)}"
    )


@implements("D-euler-maruyama", "D-langevin-corrector")
def integrate_sde(
    method,
    drift: CountedField,
    diffusion: Callable,
    score: CountedField | None,
    x,
    grid,
    generator,
    snr: float,
    corrector_steps: int,
    keep_trajectory: bool,
):
    """Euler–Maruyama on the grid (either direction), optionally followed at each new time by
    `corrector_steps` Langevin steps with the signal-to-noise step-size rule of Song et al.
    (2021, Algorithm 4): $\\epsilon = 2 (r \\overline{\\lVert z \\rVert} / \\overline{\\lVert s \\rVert})^2$,
    norms averaged over the batch."""
    trajectory = [x] if keep_trajectory else None
    batch = x.shape[0]
    for k in range(grid.numel() - 1):
        drift.step = k
        t, t_next = grid[k], grid[k + 1]
        h = t_next - t
        noise = _standard_normal(x, generator)
        scale = _broadcast(diffusion(t), x)
        x = x + h * drift(x, t) + scale * torch.sqrt(h.abs()) * noise
        _check_state(x, k, t, t_next)
        if method == "pc":
            score.step = k + 1
            for _ in range(corrector_steps):
                grad = score(x, t_next)
                z = _standard_normal(x, generator)
                # Norms averaged over the batch, as in Song et al.'s reference code: a per-sample
                # ratio explodes for samples sitting near a mode, where the score vanishes.
                # per-sample norms over the event (reshape: sum over () would sum the batch)
                grad_norm = grad.square().reshape(batch, -1).sum(-1).sqrt().mean()
                z_norm = z.square().reshape(batch, -1).sum(-1).sqrt().mean()
                step_size = 2 * (snr * z_norm / grad_norm.clamp_min(torch.finfo(x.dtype).tiny)) ** 2
                x = x + step_size * grad + torch.sqrt(2 * step_size) * z
                _check_state(x, k, t, t_next)
        if keep_trajectory:
            trajectory.append(x)
    return x, trajectory
