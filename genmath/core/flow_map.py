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
