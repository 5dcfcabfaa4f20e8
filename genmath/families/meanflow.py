r"""MeanFlow: one-step generation by learning the average velocity of a flow (Geng et al. 2025).

**Composition.** MeanFlow = Gaussian path (CondOT by default: $z_t = (1-t)x + t\varepsilon$,
t = 0 data, genmath's `GaussianPath(CondOT())`) + its conditional velocity
(`GaussianPath.conditional_velocity`, $v = \varepsilon - x$ for CondOT) + a forward-mode
derivative along the probability-flow ODE. The average velocity over $[r, t]$ is

$$
u(z_t, r, t) = \frac{1}{t - r}\int_r^t v(z_\tau, \tau)\,d\tau,
\qquad z_r = z_t - (t - r)\,u(z_t, r, t),
$$

so one evaluation jumps from $t$ to $r$. Differentiating $(t - r)\,u = \int_r^t v$ in $t$
along the trajectory gives the **MeanFlow identity** (derivation D-meanflow-identity)

$$
u(z_t, r, t) = v(z_t, t) - (t - r)\,\frac{d}{dt}u(z_t, r, t), \qquad
\frac{d}{dt}u = v\,\partial_z u + \partial_t u,
$$

whose total derivative is one Jacobian–vector product of the network with tangent
$(v, 0, 1)$ over $(z, r, t)$ (`torch.func.jvp`). The loss regresses $u_\theta$ onto the
stop-gradient target built from it, with the adaptive weighting
$w = 1/(\|\Delta\|^2 + c)^p$; at $r = t$ it is flow matching. The improved variant
(`improved_meanflow_loss`) regresses the velocity reconstructed through $u_\theta$,
$V_\theta = u_\theta + (t - r)\,\mathrm{sg}(\tfrac{d}{dt}u_\theta)$, onto the conditional
velocity, with the tangent taken from the model's own $u_\theta(z, t, t)$.

For Gaussian data the average velocity is exact: the probability-flow map $\Phi_{t\to r}$ is
affine (D-gaussian-flow-map) and $u = (z - \Phi_{t\to r}(z))/(t - r)$
(`average_velocity_from_flow_map`).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from .._implements import implements, plumbing
from ..core._shapes import (
    as_time,
    check_batch,
    check_like,
    check_reduction,
    expand_time,
    reduce_batch,
)
from ..core._validate import (
    InputTypeError,
    check_dtype,
    check_finite,
    check_generator,
    module_dtype,
    non_negative,
    positive,
    positive_int,
)
from ..core.dynamics import SampleResult
from ..core.flow_map import average_velocity_from_map
from ..core.grids import check_grid
from ..core.path import GaussianPath
from ..core.schedules import CondOT
from .flow_matching import TIME_DISTRIBUTIONS, interpolate, sample_times

__all__ = [
    "AverageVelocityMLP",
    "average_velocity_from_flow_map",
    "sample_time_pairs",
    "meanflow_target",
    "adaptive_weight",
    "meanflow_loss",
    "improved_meanflow_loss",
    "sample",
    "MeanFlow",
]

AverageVelocity = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


# The small constant c of MeanFlow's adaptive weight 1 / (||Δ||² + c)^p (Geng et al. 2025),
# one default shared by `adaptive_weight` and both losses.
ADAPTIVE_C = 1e-3

def _time_pair(r, t, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(r, t)`` as ``(B,)`` tensors in [0, 1] with ``r <= t``."""
    batch = like.shape[0]
    r, t = as_time(r, like=like, name="r"), as_time(t, like=like, name="t")
    pair = []
    for name, value in (("r", r), ("t", t)):
        if value.ndim == 0:
            value = value.expand(batch).clone()  # a real (B,) tensor: jvp writes its tangents
        elif value.shape != (batch,):
            raise ValueError(
                f"{name} must be a scalar or have shape ({batch},), got {tuple(value.shape)}"
            )
        pair.append(value)
    r, t = pair
    if bool((r > t).any()):
        i = int((r > t).nonzero()[0])
        raise ValueError(
            f"the average velocity u(z, r, t) needs r <= t (it jumps from t back to r), got "
            f"r = {float(r[i]):.6g} > t = {float(t[i]):.6g} at index {i}"
        )
    return r, t


class AverageVelocityMLP(nn.Module):
    r"""A small MLP $u_\theta(z, r, t)$ on flat vectors; the times enter as the two input
    columns $(t, t - r)$. Smooth activations (``SiLU``) keep it differentiable in forward
    mode, as the MeanFlow JVP needs.

    Arguments:
        dim: event size; inputs ``z`` have shape ``(B, dim)``.
        hidden: width of the hidden layers.
        depth: number of hidden layers.
    """

    def __init__(self, dim: int, hidden: int = 128, depth: int = 3) -> None:
        super().__init__()
        for name, value in (("dim", dim), ("hidden", hidden), ("depth", depth)):
            positive_int(value, name)
        layers: list[nn.Module] = []
        width = dim + 2
        for _ in range(depth):
            layers += [nn.Linear(width, hidden), nn.SiLU()]
            width = hidden
        layers.append(nn.Linear(width, dim))
        self.dim = dim
        self.net = nn.Sequential(*layers)

    @plumbing("network architecture: an MLP on the columns (z, t, t - r)")
    def forward(self, z: torch.Tensor, r, t) -> torch.Tensor:
        check_batch(z, "z")
        if z.ndim != 2 or z.shape[1] != self.dim:
            raise ValueError(f"z must have shape (B, {self.dim}), got {tuple(z.shape)}")
        check_dtype(z, module_dtype(self), "z", "AverageVelocityMLP")
        r, t = _time_pair(r, t, z)
        return self.net(torch.cat([z, t[:, None], (t - r)[:, None]], dim=1))


@implements("D-meanflow-identity")
def average_velocity_from_flow_map(
    flow_map: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor],
    velocity: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
) -> AverageVelocity:
    r"""The exact average velocity of a flow with a known map:
    $u(z, r, t) = (z - \Phi_{t\to r}(z))/(t - r)$ for $r < t$ and $u(z, t, t) = v(z, t)$.

    Arguments:
        flow_map: ``flow_map(z, t_from, t_to)``, e.g. ``Gaussian(...).marginal(path).flow_map``
            (exact and affine for Gaussian data, D-gaussian-flow-map).
        velocity: ``velocity(z, t)``, the instantaneous velocity (the limit $r \to t$).
    """

    # the core conversion (D-flow-map) with the jump from t back to r:
    # (X(z, t, r) - z) / (r - t) = (z - X(z, t, r)) / (t - r)
    average = average_velocity_from_map(flow_map, velocity)

    def u(z: torch.Tensor, r, t) -> torch.Tensor:
        check_batch(z, "z")
        r, t = _time_pair(r, t, z)
        return average(z, t, r)

    return u


@plumbing("sampling bookkeeping: sorts two draws of `sample_times` into r <= t and ties a fraction of the pairs; no formula")
def sample_time_pairs(
    n: int,
    distribution: str = "logit_normal",
    *,
    equal_fraction: float = 0.75,
    location: float = -0.4,
    scale: float = 1.0,
    generator: torch.Generator | None = None,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""``(r, t)``, each ``(n,)``, with $r \le t$: two draws of `sample_times` sorted, then
    $r = t$ for a fraction ``equal_fraction`` of the batch (Geng et al. 2025 use logit-normal
    times with $m = -0.4$, $s = 1$ and $r \ne t$ for 25% of the batch). The $r = t$ samples
    are plain flow matching."""
    if distribution not in TIME_DISTRIBUTIONS:
        raise ValueError(f"distribution must be one of {TIME_DISTRIBUTIONS}, got {distribution!r}")
    if not 0.0 <= equal_fraction <= 1.0:
        raise ValueError(f"equal_fraction must lie in [0, 1], got {equal_fraction!r}")
    kwargs = dict(location=location, scale=scale, generator=generator, dtype=dtype, device=device)
    a = sample_times(n, distribution, **kwargs)
    b = sample_times(n, distribution, **kwargs)
    t, r = torch.maximum(a, b), torch.minimum(a, b)
    equal = torch.rand(n, generator=generator, dtype=t.dtype, device=t.device) < equal_fraction
    return torch.where(equal, t, r), t


@implements("D-meanflow-target")
def meanflow_target(
    model: AverageVelocity, z: torch.Tensor, r, t, v: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""``(u, target)``: the model's $u_\theta(z, r, t)$ (differentiable in its parameters) and
    the MeanFlow target $v - (t - r)\,(v\,\partial_z u_\theta + \partial_t u_\theta)$
    (D-meanflow-identity, not detached), from one `torch.func.jvp` with tangent
    $(v, 0, 1)$ over $(z, r, t)$.

    Raises ``ValueError`` if ``r > t``, a time is outside [0, 1], ``v`` has the wrong shape,
    or the model cannot be differentiated in forward mode.
    """
    check_batch(z, "z")
    check_like(v, z, "v", "z")
    if isinstance(model, nn.Module):
        check_dtype(z, module_dtype(model), "z", "the model")
    r, t = _time_pair(r, t, z)
    try:
        u, du_dt = torch.func.jvp(model, (z, r, t), (v, torch.zeros_like(r), torch.ones_like(t)))
    except (RuntimeError, NotImplementedError, TypeError) as error:
        raise ValueError(
            "the MeanFlow target needs the forward-mode derivative (torch.func.jvp) of the model "
            f"u(z, r, t), but differentiating it failed: {type(error).__name__}: {error}. "
            "Use differentiable torch operations (no .item(), numpy, or autograd.Function "
            "without a jvp)."
        ) from error
    if not isinstance(u, torch.Tensor) or u.shape != z.shape:
        got = tuple(u.shape) if isinstance(u, torch.Tensor) else type(u).__name__
        raise ValueError(
            f"the model must return a tensor of the shape of z {tuple(z.shape)}, got {got}"
        )
    if not torch.isfinite(du_dt).all():
        # say why when the input itself is the reason (checked only on this failure path)
        check_finite(z, "z", "the MeanFlow target differentiates the model there")
        check_finite(v, "v", "it is the tangent of the MeanFlow target")
        raise ValueError("the model's forward-mode derivative d/dt u is not finite")
    return u, v - expand_time(t - r, z) * du_dt


def adaptive_weight(
    squared_error: torch.Tensor, power: float = 1.0, c: float = ADAPTIVE_C
) -> torch.Tensor:
    r"""MeanFlow's adaptive loss weight $\mathrm{sg}\big(1/(\|\Delta\|^2 + c)^p\big)$;
    $p = 0$ gives the plain squared error, $p = 1/2$ a pseudo-Huber-like loss."""
    return _adaptive_weight(squared_error, non_negative(power, "power"), positive(c, "c"))


@implements("D-meanflow-losses")
def _adaptive_weight(squared_error, power: float, c: float) -> torch.Tensor:
    # the formula, shared by `adaptive_weight` and the losses, which validate their own
    # arguments once
    if not isinstance(squared_error, torch.Tensor):
        raise InputTypeError(f"squared_error must be a tensor, got {type(squared_error).__name__}")
    return (squared_error.detach() + c).pow(-power)


def _draw_pair(x, path, r, t, noise, generator, pair_options, reduction, power, c):
    """Validate a MeanFlow loss's arguments once, then draw (r, t), the noise and z_t. The data
    must be finite: the loss differentiates the model at them and refuses a non-finite
    derivative anyway."""
    check_batch(x, "x", event=True)
    check_finite(x, "x", "the MeanFlow loss differentiates the model at its interpolants")
    check_reduction(reduction)
    non_negative(power, "adaptive_power")
    positive(c, "adaptive_c")
    check_generator(generator)
    path = path if path is not None else GaussianPath(CondOT())
    if not isinstance(path, GaussianPath):
        raise InputTypeError(f"path must be a genmath.GaussianPath, got {type(path).__name__}")
    if (r is None) != (t is None):
        raise ValueError("give both r and t, or neither (they are then drawn)")
    if t is None:
        r, t = sample_time_pairs(
            x.shape[0], generator=generator, dtype=x.dtype, device=x.device, **pair_options
        )
    r, t = _time_pair(r, t, x)
    if noise is None:
        noise = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
    else:
        check_like(noise, x, "noise", "x")
        check_finite(noise, "noise", "the MeanFlow loss differentiates the model at its interpolants")
    z, v = interpolate(x, noise, t, path)
    return path, r, t, z, v


@implements("D-meanflow-losses")
def meanflow_loss(
    model: AverageVelocity,
    x: torch.Tensor,
    *,
    path: GaussianPath | None = None,
    r=None,
    t=None,
    noise: torch.Tensor | None = None,
    guidance_scale: float = 1.0,
    unconditional: AverageVelocity | None = None,
    adaptive_power: float = 1.0,
    adaptive_c: float = ADAPTIVE_C,
    generator: torch.Generator | None = None,
    reduction: str = "mean",
    **pair_options,
) -> torch.Tensor:
    r"""The MeanFlow loss $w\,\|u_\theta(z_t, r, t) - \mathrm{sg}(u_\mathrm{tgt})\|^2$ with
    $u_\mathrm{tgt} = \tilde v - (t - r)\,\frac{d}{dt}u_\theta$ along the tangent
    $(\tilde v, 0, 1)$ (D-meanflow-identity) and $w$ = `adaptive_weight`.

    Arguments:
        model: ``model(z, r, t)`` with ``r, t`` of shape ``(B,)`` (class conditioning, if any,
            closed over).
        x: data, ``(B, *event)``.
        path: the Gaussian path (default CondOT, $z_t = (1-t)x + t\varepsilon$).
        r, t: times with $r \le t$ (default: `sample_time_pairs`, options ``pair_options``).
        noise: $\varepsilon$ (default fresh standard normal).
        guidance_scale, unconditional: classifier-free guidance folded into the target
            (Geng et al. 2025, eq. 19): $\tilde v = \omega v + (1 - \omega)\,
            \mathrm{sg}(u_\theta(z_t, t, t \mid \varnothing))$, ``unconditional`` giving the
            latter; $\omega = 1$ is no guidance ($\tilde v = v$, the conditional velocity).
        adaptive_power, adaptive_c: $p$ and $c$ of the weight.
        reduction: ``"mean"`` or ``"none"`` (``(B,)``).
    """
    path, r, t, z, v = _draw_pair(
        x, path, r, t, noise, generator, pair_options, reduction, adaptive_power, adaptive_c
    )
    if guidance_scale != 1.0:
        if unconditional is None:
            raise ValueError("guidance_scale != 1 needs the unconditional model u(z, r, t | ∅)")
        with torch.no_grad():
            v = guidance_scale * v + (1 - guidance_scale) * unconditional(z, t, t)
    u, target = meanflow_target(model, z, r, t, v)
    squared = (u - target.detach()).pow(2).flatten(1).sum(1)
    return reduce_batch(_adaptive_weight(squared, adaptive_power, adaptive_c) * squared, reduction)


@implements("D-meanflow-losses")
def improved_meanflow_loss(
    model: AverageVelocity,
    x: torch.Tensor,
    *,
    path: GaussianPath | None = None,
    r=None,
    t=None,
    noise: torch.Tensor | None = None,
    adaptive_power: float = 1.0,
    adaptive_c: float = ADAPTIVE_C,
    generator: torch.Generator | None = None,
    reduction: str = "mean",
    **pair_options,
) -> torch.Tensor:
    r"""The improved-MeanFlow loss: the velocity reconstructed through $u_\theta$,
    $V_\theta = u_\theta(z_t, r, t) + (t - r)\,\mathrm{sg}\big(\tfrac{d}{dt}u_\theta\big)$,
    regressed onto the conditional velocity $v$; the JVP tangent is the model's own
    instantaneous velocity $\mathrm{sg}(u_\theta(z_t, t, t))$, a function of $z_t$ alone, so
    the regression target is a plain conditional velocity whose conditional mean is the
    marginal one (by D-meanflow-identity, $V = v$ exactly when $u_\theta$ is the average
    velocity of the marginal flow)."""
    path, r, t, z, v = _draw_pair(
        x, path, r, t, noise, generator, pair_options, reduction, adaptive_power, adaptive_c
    )
    with torch.no_grad():
        tangent = model(z, t, t)
    u, target = meanflow_target(model, z, r, t, tangent)
    # target = tangent - (t - r) du/dt, so (t - r) du/dt = tangent - target
    reconstructed = u + (tangent - target).detach()
    squared = (reconstructed - v).pow(2).flatten(1).sum(1)
    return reduce_batch(_adaptive_weight(squared, adaptive_power, adaptive_c) * squared, reduction)


@implements("D-meanflow-sampler")
def sample(
    model: AverageVelocity,
    noise: torch.Tensor,
    *,
    steps: int = 1,
    grid=None,
    keep_trajectory: bool = False,
) -> SampleResult:
    r"""One- or few-step sampling: $z_{t_{k+1}} = z_{t_k} - (t_k - t_{k+1})\,
    u(z_{t_k}, t_{k+1}, t_k)$ along a decreasing grid from $t = 1$ to $0$ (default uniform,
    ``steps`` intervals); one step is $x = \varepsilon - u(\varepsilon, 0, 1)$."""
    check_finite(check_batch(noise, "noise"), "noise", "the start of sampling")
    if isinstance(model, nn.Module):
        check_dtype(noise, module_dtype(model), "noise", "the model")
    if grid is None:
        positive_int(steps, "steps")
        grid = torch.linspace(1.0, 0.0, steps + 1, dtype=noise.dtype, device=noise.device)
    grid = check_grid(grid).to(noise)
    if not bool((grid[1:] < grid[:-1]).all()):
        raise ValueError("a MeanFlow sampling grid must decrease (from noise at t = 1 to data)")
    z, trajectory = noise, [noise]
    for k in range(grid.numel() - 1):
        t, r = grid[k], grid[k + 1]
        z = z - (t - r) * model(z, r.expand(z.shape[0]), t.expand(z.shape[0]))
        if not torch.isfinite(z).all():
            raise ValueError(
                f"non-finite state after step {k} (t = {float(t):.4g} -> {float(r):.4g})"
            )
        trajectory.append(z)
    stacked = torch.stack(trajectory) if keep_trajectory else None
    return SampleResult(x=z, nfe=grid.numel() - 1, grid=grid, trajectory=stacked)


class MeanFlow(nn.Module):
    r"""A MeanFlow model: a network $u_\theta(z, r, t)$ on a Gaussian path (default CondOT).

    ``loss`` is `meanflow_loss` (``improved=True``: `improved_meanflow_loss`), ``sample`` the
    one/few-step sampler, ``velocity(z, t)`` $= u_\theta(z, t, t)$, the instantaneous velocity.
    """

    def __init__(self, network: nn.Module, path: GaussianPath | None = None) -> None:
        super().__init__()
        self.network = network
        self.path = path if path is not None else GaussianPath(CondOT())

    def forward(self, z: torch.Tensor, r, t) -> torch.Tensor:
        return self.network(z, r, t)

    def velocity(self, z: torch.Tensor, t) -> torch.Tensor:
        check_batch(z, "z")
        as_time(t, like=z, name="t")  # named as the caller passed it (the network has r and t)
        return self.network(z, t, t)

    def loss(self, x: torch.Tensor, *, improved: bool = False, **options) -> torch.Tensor:
        fn = improved_meanflow_loss if improved else meanflow_loss
        return fn(self.network, x, path=self.path, **options)

    def sample(self, noise: torch.Tensor, **options) -> SampleResult:
        return sample(self.network, noise, **options)
