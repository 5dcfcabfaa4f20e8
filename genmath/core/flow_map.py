r"""Flow maps: the solution operator of an ODE, $X(x, s, t)$, and its parameterizations.

For a velocity field $v(x, t)$ the flow map $X(x, s, t)$ is the state at time $t$ of the
trajectory of $\dot x = v(x, \tau)$ through $x$ at time $s$. It is the object every few-step
generator learns (Boffi et al. 2025), in one of three equivalent forms, converted here in one
place (derivation D-flow-map):

* the **map** itself, $X(x, s, t)$, with $X(x, s, s) = x$;
* the **average velocity** $u(x, s, t) = (X(x, s, t) - x)/(t - s)$, so that $X = x + (t - s)\,u$
  (MeanFlow's $u(z_t, r, t)$ is $u(z_t, t, r)$ here: the jump from $t$ back to $r$), with
  $u(x, t, t) = v(x, t)$;
* the **consistency function** $f(x, t) = X(x, t, 0)$, the map to the data end.

It satisfies the semigroup property $X(X(x, s, u), u, t) = X(x, s, t)$, the Lagrangian
equation $\partial_t X = v(X, t)$ and the Eulerian equation $\partial_s X + \nabla_x X\,v(x, s)
= 0$ (D-flow-map-identities).

The three identities are computed, for any flow-map model, by `semigroup_residual`,
`lagrangian_residual` and `eulerian_residual` (each zero exactly when the identity holds; the
derivatives are one forward-mode product, `flow_map_jvp`): the few-step losses of
`genmath.families.flow_maps` are squared norms of these residuals.

`flow_map` evaluates $X$ for any velocity by the core ODE solvers (`genmath.sample_ode`):
with per-sample times $s, t$ of shape ``(B,)`` it integrates in the normalised time
$\tau \in [0, 1]$, $y(\tau) = X(x, s, s + \tau(t - s))$, $\dot y = (t - s)\,v(y, s + \tau(t - s))$,
so one solve serves a batch with different intervals.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from .._implements import implements
from ._shapes import as_time, check_batch, expand_time, scalar_time
from ._validate import check_callable, check_finite, positive_int
from .dynamics import sample_ode

__all__ = [
    "flow_map",
    "average_velocity_from_map",
    "map_from_average_velocity",
    "consistency_function_from_map",
    "call_flow_map",
    "flow_map_jvp",
    "semigroup_residual",
    "lagrangian_residual",
    "eulerian_residual",
]

Velocity = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
FlowMap = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def _interval(s, t, x: torch.Tensor, names=("s", "t")) -> tuple[torch.Tensor, torch.Tensor]:
    """``(s, t)`` as ``(B,)`` tensors in [0, 1] in the dtype/device of ``x`` (``names``: what
    the caller calls them, for the errors)."""
    batch = x.shape[0]
    out = []
    for name, value in zip(names, (s, t), strict=True):
        value = as_time(value, like=x, name=name)
        if value.ndim == 0:
            value = value.expand(batch)
        elif value.shape != (batch,):
            raise ValueError(
                f"{name} must be a float or have shape ({batch},), got {tuple(value.shape)}"
            )
        out.append(value)
    return out[0], out[1]


@implements("D-flow-map", "D-flow-map-identities")
def flow_map(
    velocity: Velocity,
    x: torch.Tensor,
    s,
    t,
    *,
    steps: int = 32,
    method: str = "rk4",
    rtol: float = 1e-7,
    atol: float = 1e-9,
) -> torch.Tensor:
    r"""$X(x, s, t)$: the state at time $t$ of the trajectory of $\dot x = v(x, \tau)$ through
    ``x`` at time ``s`` (D-flow-map), for any event shape.

    Arguments:
        velocity: ``velocity(x, t) -> tensor shaped like x``, called with per-sample times
            ``t`` of shape ``(B,)``.
        x: the states at time ``s``, ``(B, *event)``.
        s, t: start and end times in $[0, 1]$, floats or ``(B,)`` tensors (per-sample
            intervals; $t < s$ integrates backwards, $t = s$ returns ``x``).
        steps, method, rtol, atol: the solver of `genmath.sample_ode` in the normalised
            time $\tau \in [0, 1]$ (``steps`` fixed steps of ``"euler"``, ``"heun"``,
            ``"midpoint"``, ``"rk4"``; or an adaptive torchdiffeq method such as
            ``"dopri5"`` with tolerances ``rtol``, ``atol``).

    Raises ``ValueError`` for times outside $[0, 1]$ or of the wrong shape, and for a
    velocity whose output does not have the shape of ``x``.
    """
    # named here: sample_ode would call them x1 and grid
    check_finite(check_batch(x, "x"), "x", "the start of the trajectory")
    positive_int(steps, "steps")
    s, t = _interval(s, t, x)
    length = expand_time(t - s, x)

    def normalised(y: torch.Tensor, tau: torch.Tensor) -> torch.Tensor:
        out = velocity(y, s + tau * (t - s))
        if not isinstance(out, torch.Tensor) or out.shape != y.shape:
            got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise ValueError(
                f"velocity(x, t) must return a tensor of the shape of x, {tuple(y.shape)}; "
                f"got {got}"
            )
        return length * out

    grid = torch.linspace(0.0, 1.0, steps + 1, dtype=x.dtype, device=x.device)
    return sample_ode(normalised, x, method=method, grid=grid, rtol=rtol, atol=atol).x


@implements("D-flow-map")
def average_velocity_from_map(flow: FlowMap, velocity: Velocity | None = None) -> FlowMap:
    r"""The average velocity of a flow map, $u(x, s, t) = (X(x, s, t) - x)/(t - s)$
    (D-flow-map); at $s = t$ it is ``velocity(x, t)`` (the limit), which must then be given.

    ``flow(x, s, t)`` takes ``(B,)`` times (e.g. ``lambda x, s, t: flow_map(v, x, s, t)`` or a
    Gaussian oracle's ``marginal.flow_map``)."""
    check_callable(flow, "flow", "a flow map (x, s, t) -> X(x, s, t)")
    if velocity is not None:
        check_callable(velocity, "velocity", "a velocity (x, t) -> v(x, t)")

    def u(x: torch.Tensor, s, t) -> torch.Tensor:
        check_batch(x, "x")
        s, t = _interval(s, t, x)
        gap = expand_time(t - s, x)
        equal = gap == 0
        if bool(equal.any()) and velocity is None:
            raise ValueError("u(x, t, t) is the velocity v(x, t): pass velocity= for s = t")
        chord = (flow(x, s, t) - x) / torch.where(equal, torch.ones_like(gap), gap)
        if velocity is None:
            return chord
        return torch.where(equal, velocity(x, t), chord)

    return u


@implements("D-flow-map")
def map_from_average_velocity(average_velocity: FlowMap) -> FlowMap:
    r"""The flow map of an average velocity, $X(x, s, t) = x + (t - s)\,u(x, s, t)$
    (D-flow-map): one network evaluation per jump."""
    check_callable(average_velocity, "average_velocity", "an average velocity (x, s, t) -> u")

    def flow(x: torch.Tensor, s, t) -> torch.Tensor:
        check_batch(x, "x")
        s, t = _interval(s, t, x)
        return x + expand_time(t - s, x) * average_velocity(x, s, t)

    return flow


@implements("D-flow-map")
def consistency_function_from_map(flow: FlowMap, end: float = 0.0) -> Velocity:
    r"""The consistency function of a flow map, $f(x, t) = X(x, t, t_\mathrm{end})$, the map
    to the data end ($t_\mathrm{end} = 0$; a consistency model's $t_\mathrm{min}$)."""
    check_callable(flow, "flow", "a flow map (x, s, t) -> X(x, s, t)")
    end = scalar_time(end, "end")

    def f(x: torch.Tensor, t) -> torch.Tensor:
        check_batch(x, "x")
        s, _ = _interval(t, end, x, names=("t", "end"))
        return flow(x, s, torch.full_like(s, float(end)))

    return f


def call_flow_map(model: FlowMap, x: torch.Tensor, s, t, name: str = "model") -> torch.Tensor:
    """``model(x, s, t)`` with ``(B,)`` times, refusing a model of the wrong signature or one
    whose output does not have the shape of ``x``, by name."""
    s, t = _interval(s, t, x)
    try:
        out = model(x, s, t)
    except TypeError as error:
        raise ValueError(
            f"{name} must be a flow-map model X(x, s, t) taking the states and two (B,) times; "
            f"calling it failed: {error}"
        ) from error
    if not isinstance(out, torch.Tensor) or out.shape != x.shape:
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ValueError(
            f"{name}(x, s, t) must return a tensor of the shape of x, {tuple(x.shape)}; got {got}"
        )
    return out


def flow_map_jvp(
    model: FlowMap, x: torch.Tensor, s, t, tangent: tuple, name: str = "model"
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""``(X(x, s, t), dX)``: the map and its directional derivative along
    ``tangent = (dx, ds, dt)`` (``dx`` shaped like ``x``; ``ds``, ``dt`` numbers or ``(B,)``),
    one `torch.func.jvp` of the model. Differentiable in the model's parameters."""
    s, t = _interval(s, t, x)
    dx, ds, dt = tangent
    dx = torch.zeros_like(x) if dx is None else dx
    ds = torch.as_tensor(ds, dtype=x.dtype, device=x.device).expand_as(s)
    dt = torch.as_tensor(dt, dtype=x.dtype, device=x.device).expand_as(t)
    try:
        out, derivative = torch.func.jvp(model, (x, s.clone(), t.clone()), (dx, ds, dt))
    except TypeError as error:
        raise ValueError(
            f"{name} must be a flow-map model X(x, s, t) taking the states and two (B,) times, "
            f"differentiable in forward mode; calling it failed: {error}"
        ) from error
    except (RuntimeError, NotImplementedError) as error:
        raise ValueError(
            f"{name} must be differentiable in forward mode (torch.func.jvp) for this identity; "
            f"differentiating it failed: {type(error).__name__}: {error}"
        ) from error
    check_like_shape(out, x, f"{name}(x, s, t)")
    return out, derivative


@implements("D-flow-map-identities")
def semigroup_residual(model: FlowMap, x: torch.Tensor, s, u, t) -> torch.Tensor:
    r"""$X(X(x, s, u), u, t) - X(x, s, t)$: zero for a flow map (D-flow-map-identities)."""
    check_callable(model, "model", "a flow-map model (x, s, t) -> X(x, s, t)")
    check_batch(x, "x")
    s, u = _interval(s, u, x, names=("s", "u"))
    _, t = _interval(s, t, x)
    middle = call_flow_map(model, x, s, u)
    return call_flow_map(model, middle, u, t) - call_flow_map(model, x, s, t)


@implements("D-flow-map-identities")
def lagrangian_residual(
    model: FlowMap, velocity: Velocity, x: torch.Tensor, s, t
) -> torch.Tensor:
    r"""$\partial_t X(x, s, t) - v(X(x, s, t), t)$, the Lagrangian equation's residual
    (D-flow-map-identities); the time derivative is one JVP with tangent $(0, 0, 1)$."""
    check_callable(model, "model", "a flow-map model (x, s, t) -> X(x, s, t)")
    check_callable(velocity, "velocity", "a velocity (x, t) -> v(x, t)")
    check_batch(x, "x")
    s, t = _interval(s, t, x)
    mapped, d_t = flow_map_jvp(model, x, s, t, (None, 0.0, 1.0))
    return d_t - velocity(mapped, t)


@implements("D-flow-map-identities", "D-flow-map-eulerian-average-velocity")
def eulerian_residual(
    model: FlowMap, velocity: Velocity, x: torch.Tensor, s, t
) -> torch.Tensor:
    r"""$\partial_s X(x, s, t) + \nabla_x X(x, s, t)\,v(x, s)$, the Eulerian equation's
    residual (D-flow-map-identities): one JVP with tangent $(v(x, s), 1, 0)$, the derivative
    of the map along the trajectory through its start. For $X = x + (t - s)\,u$ it is
    MeanFlow's identity in $u$ (D-flow-map-eulerian-average-velocity)."""
    check_callable(model, "model", "a flow-map model (x, s, t) -> X(x, s, t)")
    check_callable(velocity, "velocity", "a velocity (x, t) -> v(x, t)")
    check_batch(x, "x")
    s, t = _interval(s, t, x)
    along = velocity(x, s)
    check_like_shape(along, x, "velocity(x, s)")
    return flow_map_jvp(model, x, s, t, (along.detach(), 1.0, 0.0))[1]


def check_like_shape(value, x: torch.Tensor, name: str) -> torch.Tensor:
    """``value`` if it is a tensor of the shape of ``x``."""
    if not isinstance(value, torch.Tensor) or value.shape != x.shape:
        got = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
        raise ValueError(f"{name} must be a tensor of the shape of x, {tuple(x.shape)}; got {got}")
    return value
