r"""Few-step generators as losses on one object, the flow map $X(x, s, t)$ (Boffi et al. 2025).

A **flow-map model** is any callable ``model(x, s, t)`` returning the point at time $t$ of
the probability-flow trajectory through ``x`` at time $s$ (t = 0 data, t = 1 noise;
``s``, ``t`` of shape ``(B,)``). Each method below learns it through one identity of the
exact map (D-flow-map-identities), computed by the core residuals of `genmath.core.flow_map`,
so every loss here is zero at the exact map (`genmath.analytic.ExactFlowMap`) wherever its
target is the marginal velocity:

| method | parameterization | identity |
| --- | --- | --- |
| `lagrangian_distillation_loss` | map $X$ | $\partial_t X = v(X, t)$ (Lagrangian) |
| `eulerian_distillation_loss` | map $X$ | $\partial_s X + \nabla_x X\,v = 0$ (Eulerian) |
| `scm_loss` (sCM) | consistency function $X(x, t, 0)$ | Eulerian at the data end, $\tfrac{d}{dt}X(x_t, t, 0) = 0$ |
| `genmath.families.flow_maps_imm.imm_loss` | map $X$ | pushforwards of $p_t$ and $p_r$ agree at $s$ (MMD) |
| `shortcut_loss` | map $X$ (shortcut $x + (t - s)u$) | semigroup over two half-steps, and $\partial_t X\big\vert_{t=s} = v$ |
| `genmath.families.meanflow` | average velocity $u$ | Eulerian in $u$ (D-flow-map-eulerian-average-velocity) |
| `genmath.families.consistency` | consistency function $X(x, t, 0)$ | semigroup to the data end |

`sample` draws from any flow-map model in one or a few jumps along a decreasing grid.

Each loss takes ``(model, x0, path, *, ...)``: data ``x0``, the Gaussian path whose
interpolant $x_s = \alpha_s x_0 + \sigma_s\varepsilon$ starts the trajectory (default CondOT),
the times ``s``, ``t`` (default $s \sim U(0, 1)$, $t \sim U(0, s)$: towards the data), the
noise, a ``generator``, and ``reduction`` (``"mean"`` or ``"none"``, per-sample ``(B,)``).
A ``teacher`` velocity ``teacher(x, t)`` (a trained flow-matching model, or an oracle's
exact one) makes a loss a distillation; without one the shortcut loss uses the conditional
velocity of the path, an unbiased estimate of the marginal one.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from .._implements import implements, plumbing
from ..core._shapes import as_time, check_batch, check_like, check_reduction, reduce_batch
from ..core._validate import (
    check_callable,
    check_finite,
    check_generator,
    positive,
    positive_int,
)
from ..core.dynamics import SampleResult
from ..core.flow_map import (
    call_flow_map,
    eulerian_residual,
    flow_map_jvp,
    lagrangian_residual,
)
from ..core.grids import check_grid
from ..core.path import GaussianPath, check_gaussian_path
from ..core.schedules import CondOT, CosineVP
from .flow_matching import interpolate

__all__ = [
    "sample_interval",
    "lagrangian_distillation_loss",
    "eulerian_distillation_loss",
    "shortcut_loss",
    "scm_tangent",
    "scm_loss",
    "sample",
]

FlowMap = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
Velocity = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@plumbing("sampling bookkeeping: two uniform draws, the second scaled below the first")
def sample_interval(
    n: int,
    *,
    generator: torch.Generator | None = None,
    dtype: torch.dtype | None = None,
    device=None,
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""``(s, t)``, each ``(n,)``: $s \sim U(0, 1)$ and $t = s\,U'$, a jump towards the data."""
    positive_int(n, "n")
    check_generator(generator)
    s = torch.rand(n, generator=generator, dtype=dtype, device=device)
    return s, s * torch.rand(n, generator=generator, dtype=dtype, device=device)


def _start(model, x0, path, s, t, noise, generator, reduction):
    """Validate a loss's arguments once; draw the interval and the noise; return the path,
    the interpolant x_s, its conditional velocity and the times."""
    check_callable(model, "model", "a flow-map model (x, s, t) -> X(x, s, t)")
    check_batch(x0, "x0", event=True)
    check_finite(x0, "x0", "the loss starts trajectories at its interpolants")
    check_reduction(reduction)
    check_generator(generator)
    path = GaussianPath(CondOT()) if path is None else check_gaussian_path(path)
    if (s is None) != (t is None):
        raise ValueError("give both s and t, or neither (they are then drawn)")
    if s is None:
        s, t = sample_interval(x0.shape[0], generator=generator, dtype=x0.dtype, device=x0.device)
    s, t = (as_time(value, like=x0, name=name) for name, value in (("s", s), ("t", t)))
    s, t = (value.expand(x0.shape[0]) if value.ndim == 0 else value for value in (s, t))
    for name, value in (("s", s), ("t", t)):
        if value.shape != (x0.shape[0],):
            raise ValueError(
                f"{name} must be a float or have shape ({x0.shape[0]},), got {tuple(value.shape)}"
            )
    if noise is None:
        noise = torch.randn(x0.shape, generator=generator, dtype=x0.dtype, device=x0.device)
    else:
        check_finite(check_like(noise, x0, "noise", "x0"), "noise", "it makes the interpolant")
    x_s, conditional = interpolate(x0, noise, s, path)
    return path, x_s, conditional, s, t


def _squared(residual: torch.Tensor) -> torch.Tensor:
    return residual.pow(2).flatten(1).sum(1)


@implements("D-flow-map-losses")
def lagrangian_distillation_loss(
    model: FlowMap,
    x0: torch.Tensor,
    path: GaussianPath | None = None,
    *,
    teacher: Velocity,
    s=None,
    t=None,
    noise: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    reduction: str = "mean",
) -> torch.Tensor:
    r"""Lagrangian map distillation (LMD, Boffi et al. 2025):
    $\|\partial_t X_\theta(x_s, s, t) - v(X_\theta(x_s, s, t), t)\|^2$ with $v$ the teacher
    velocity; the time derivative is one JVP (`genmath.lagrangian_residual`). Zero at the
    exact map of the teacher's flow (D-flow-map-losses)."""
    check_callable(teacher, "teacher", "a velocity (x, t) -> v(x, t)")
    _, x_s, _, s, t = _start(model, x0, path, s, t, noise, generator, reduction)
    return reduce_batch(_squared(lagrangian_residual(model, teacher, x_s, s, t)), reduction)


@implements("D-flow-map-losses")
def eulerian_distillation_loss(
    model: FlowMap,
    x0: torch.Tensor,
    path: GaussianPath | None = None,
    *,
    teacher: Velocity,
    s=None,
    t=None,
    noise: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    reduction: str = "mean",
) -> torch.Tensor:
    r"""Eulerian map distillation (EMD, Boffi et al. 2025):
    $\|\partial_s X_\theta(x_s, s, t) + \nabla_x X_\theta(x_s, s, t)\,v(x_s, s)\|^2$, the
    derivative along the teacher's trajectory through the start, one JVP with tangent
    $(v, 1, 0)$ (`genmath.eulerian_residual`). Zero at the exact map (D-flow-map-losses)."""
    check_callable(teacher, "teacher", "a velocity (x, t) -> v(x, t)")
    _, x_s, _, s, t = _start(model, x0, path, s, t, noise, generator, reduction)
    return reduce_batch(_squared(eulerian_residual(model, teacher, x_s, s, t)), reduction)


@implements("D-flow-map-losses")
def shortcut_loss(
    model: FlowMap,
    x0: torch.Tensor,
    path: GaussianPath | None = None,
    *,
    teacher: Velocity | None = None,
    s=None,
    t=None,
    noise: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    reduction: str = "mean",
) -> torch.Tensor:
    r"""Shortcut models (Frans et al. 2025): self-consistency of two half-steps plus flow
    matching at zero step size,

    $$
    \|X_\theta(x_s, s, t) - \mathrm{sg}\,X_\theta(X_\theta(x_s, s, m), m, t)\|^2
    + \|\partial_t X_\theta(x_s, s, t)|_{t = s} - w\|^2, \qquad m = \tfrac{s + t}{2},
    $$

    with $w$ the teacher velocity $v(x_s, s)$ or, without a teacher, the conditional velocity
    $\dot\alpha_s x_0 + \dot\sigma_s\varepsilon$ (whose conditional mean is the marginal
    velocity: then the loss's expected gradient, not its value, vanishes at the exact map).
    For a shortcut model $X = x + (t - s)\,u(x, s, t)$ the second term is
    $\|u(x_s, s, s) - w\|^2$ (D-flow-map-losses)."""
    if teacher is not None:
        check_callable(teacher, "teacher", "a velocity (x, t) -> v(x, t)")
    _, x_s, conditional, s, t = _start(model, x0, path, s, t, noise, generator, reduction)
    middle = 0.5 * (s + t)
    with torch.no_grad():
        two_steps = call_flow_map(model, call_flow_map(model, x_s, s, middle), middle, t)
    one_step = call_flow_map(model, x_s, s, t)
    _, velocity = flow_map_jvp(model, x_s, s, s, (None, 0.0, 1.0))
    target = conditional if teacher is None else teacher(x_s, s)
    return reduce_batch(_squared(one_step - two_steps) + _squared(velocity - target), reduction)


@implements("D-flow-map-losses")
def scm_tangent(
    model: FlowMap,
    x0: torch.Tensor,
    path: GaussianPath | None = None,
    *,
    t,
    noise: torch.Tensor,
    teacher: Velocity | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""``(f, df/dt)``: the consistency function $f(x_t, t) = X(x_t, t, 0)$ at the interpolant
    and its derivative along the trajectory, one JVP with tangent $(\dot x_t, 1, 0)$
    (`genmath.eulerian_residual` at the data end). On the default TrigFlow path
    (`CosineVP(s=0)`: $x_t = \cos(\tfrac{\pi t}{2})x_0 + \sin(\tfrac{\pi t}{2})\varepsilon$,
    TrigFlow's $\tau = \pi t/2$ with $\sigma_d = 1$) $\dot x_t = \tfrac{\pi}{2}(\cos\tau\,
    \varepsilon - \sin\tau\,x_0)$, the conditional velocity; ``teacher`` replaces it by
    $v(x_t, t)$ (distillation)."""
    path = GaussianPath(CosineVP(0.0)) if path is None else path
    _, x_t, conditional, t, _ = _start(model, x0, path, t, 0.0, noise, None, "none")
    tangent = conditional if teacher is None else teacher(x_t, t)
    mapped, derivative = flow_map_jvp(model, x_t, t, torch.zeros_like(t), (tangent.detach(), 1.0, 0.0))
    return mapped, derivative


@implements("D-flow-map-losses")
def scm_loss(
    model: FlowMap,
    x0: torch.Tensor,
    path: GaussianPath | None = None,
    *,
    teacher: Velocity | None = None,
    tangent_normalization: float | None = None,
    t=None,
    noise: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    reduction: str = "mean",
) -> torch.Tensor:
    r"""Continuous-time consistency (sCM, Lu & Song 2025) on a flow-map model:
    $\|f_\theta - \mathrm{sg}(f_\theta - g)\|^2$ with $f_\theta(x_t, t) = X_\theta(x_t, t, 0)$
    and $g = \tfrac{d}{dt}f_\theta$ along the tangent of `scm_tangent` (stop-gradient), so
    the value is $\|g\|^2$ and the gradient $2 J_\theta^\top g$, sCM's. With
    ``tangent_normalization`` $c$ the target uses $g/(\|g\| + c)$ (sCM's $c = 0.1$; it biases
    the training gradient, off by default). Distillation (a ``teacher``) is zero at the exact
    map; training (the conditional tangent) has zero expected gradient there
    (D-flow-map-losses). Default path: TrigFlow, ``GaussianPath(CosineVP(0.0))``;
    default $t \sim U(0, 1)$."""
    if teacher is not None:
        check_callable(teacher, "teacher", "a velocity (x, t) -> v(x, t)")
    if tangent_normalization is not None:
        positive(tangent_normalization, "tangent_normalization")
    check_reduction(reduction)
    check_generator(generator)
    check_batch(x0, "x0", event=True)
    if t is None:
        t = torch.rand(x0.shape[0], generator=generator, dtype=x0.dtype, device=x0.device)
    if noise is None:
        noise = torch.randn(x0.shape, generator=generator, dtype=x0.dtype, device=x0.device)
    f, g = scm_tangent(model, x0, path, t=t, noise=noise, teacher=teacher)
    g = g.detach()
    if tangent_normalization is not None:
        norm = g.flatten(1).norm(dim=1).reshape(-1, *([1] * (g.ndim - 1)))
        g = g / (norm + tangent_normalization)
    return reduce_batch(_squared(f - (f - g).detach()), reduction)


@plumbing("the sampler composes model calls along a validated decreasing grid; no formula")
def sample(
    model: FlowMap,
    noise: torch.Tensor,
    *,
    steps: int = 1,
    grid=None,
    keep_trajectory: bool = False,
) -> SampleResult:
    r"""Few-step sampling from any flow-map model: $x_{t_{k+1}} = X(x_{t_k}, t_k, t_{k+1})$
    along a decreasing grid from $t = 1$ (``noise``) to $t = 0$ (default uniform, ``steps``
    jumps; ``steps`` network evaluations). With the exact map every grid gives the same
    sample, the exact trajectory's end (the semigroup property, D-flow-map-identities)."""
    check_callable(model, "model", "a flow-map model (x, s, t) -> X(x, s, t)")
    check_finite(check_batch(noise, "noise"), "noise", "the start of sampling")
    if grid is None:
        positive_int(steps, "steps")
        grid = torch.linspace(1.0, 0.0, steps + 1, dtype=noise.dtype, device=noise.device)
    grid = check_grid(grid).to(noise)
    if not bool((grid[1:] < grid[:-1]).all()):
        raise ValueError("a flow-map sampling grid must decrease (from noise at t = 1 to data)")
    x, trajectory = noise, [noise]
    for k in range(grid.numel() - 1):
        x = call_flow_map(model, x, grid[k], grid[k + 1])
        if not torch.isfinite(x).all():
            raise ValueError(f"non-finite state after jump {k} "
                             f"(t = {float(grid[k]):.4g} -> {float(grid[k + 1]):.4g})")
        trajectory.append(x)
    stacked = torch.stack(trajectory) if keep_trajectory else None
    return SampleResult(x=x, nfe=grid.numel() - 1, grid=grid, trajectory=stacked)
