r"""Exact log-likelihood of a continuous flow by the instantaneous change of variables.

If $\dot x_t = v(x_t, t)$ transports $p_0$ (data, $t = 0$) to $p_1$ (prior, $t = 1$), the
continuity equation gives $\frac{d}{dt}\log p_t(x_t) = -\nabla\cdot v(x_t, t)$ along a
trajectory (D-instantaneous-change-of-variables; Chen et al. 2018), hence

$$
\log p_0(x_0) = \log p_1(x_1) + \int_0^1 \nabla\cdot v(x_t, t)\,dt .
$$

[`ode_log_likelihood`][genmath.core.likelihood.ode_log_likelihood] integrates the augmented
state $(x_t, \int_0^t \nabla\cdot v)$ with `torchdiffeq.odeint`; the divergence is exact
(autograd, or the velocity's own structured divergence) or Hutchinson's estimate with one
probe fixed for the whole integration (FFJORD, Grathwohl et al. 2019), which keeps the
integrand a smooth function of $t$ so adaptive solvers behave.
[`bits_per_dim`][genmath.core.likelihood.bits_per_dim] turns a log-density of dequantized
data into bits per dimension with its assumptions in the signature (D-bits-per-dim).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

import torch

from .._implements import implements
from ._shapes import as_time, check_batch
from ._validate import (
    InputTypeError,
    check_finite,
    check_generator,
    check_option,
    check_tolerances,
)
from .divergence import (
    VelocityWithDivergence,
    _check_field,
    _check_method,
    _field_key,
    _hutchinson_from_graph,
    _TunedExact,
    draw_probes,
)

__all__ = ["ODELikelihood", "ode_log_likelihood", "bits_per_dim", "DEQUANTIZATIONS"]

DEQUANTIZATIONS = ("uniform", "none")
_ADAPTIVE_METHODS = ("dopri8", "dopri5", "bosh3", "fehlberg2", "adaptive_heun")


def _torchdiffeq_methods() -> tuple[str, ...]:
    from torchdiffeq._impl.odeint import SOLVERS  # imported on first use (it imports scipy)

    return tuple(SOLVERS)


@dataclasses.dataclass(frozen=True)
class ODELikelihood:
    r"""Everything `ode_log_likelihood(..., return_result=True)` computed.

    Attributes:
        log_prob: $\log p_{t_0}(x)$, shape `(B,)`.
        prior_log_prob: $\log p_{t_1}(x_{t_1})$ of the transported points, shape `(B,)`.
        integrated_divergence: $\int_{t_0}^{t_1}\nabla\cdot v(x_t, t)\,dt$, shape `(B,)`.
        x_end: the transported points $x_{t_1}$, shape of `x`.
        nfe: number of evaluations of the augmented dynamics (velocity and divergence).
    """

    log_prob: torch.Tensor
    prior_log_prob: torch.Tensor
    integrated_divergence: torch.Tensor
    x_end: torch.Tensor
    nfe: int


@implements("D-instantaneous-change-of-variables")
def ode_log_likelihood(
    velocity: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    prior_log_prob: Callable[[torch.Tensor], torch.Tensor],
    divergence: str = "exact",
    method: str = "dopri5",
    rtol: float = 1e-5,
    atol: float = 1e-5,
    *,
    t0: float = 0.0,
    t1: float = 1.0,
    probes: int = 1,
    noise: str = "rademacher",
    generator: torch.Generator | None = None,
    structured: bool = True,
    create_graph: bool | None = None,
    options: dict | None = None,
    return_result: bool = False,
) -> torch.Tensor | ODELikelihood:
    r"""$\log p_{t_0}(x)$ of the flow $\dot x = v(x, t)$ pushed from $t_0$ to the prior at $t_1$.

    Implements $\log p_0(x_0) = \log p_1(x_1) + \int_0^1 \nabla\cdot v(x_t, t)\,dt$
    (D-instantaneous-change-of-variables) on the augmented state, with `torchdiffeq.odeint`.

    Arguments:
        velocity: `velocity(x, t)` with `x` of shape `(B, *event)` and `t` a 0-d tensor,
            returning a tensor shaped like `x`. If it implements
            [`VelocityWithDivergence`][genmath.core.divergence.VelocityWithDivergence]
            (`velocity_and_divergence(x, t)`), `divergence="exact"` uses that.
        x: data points at $t_0$, shape `(B, *event)`.
        prior_log_prob: log-density at $t_1$: maps `(B, *event)` to `(B,)`.
        divergence: `"exact"` or `"hutchinson"` (one set of `probes` drawn once and kept for
            the whole integration).
        method, rtol, atol, options: passed to `torchdiffeq.odeint` (e.g. `method="rk4"`,
            `options={"step_size": 0.01}` for a fixed-step solver).
        t0, t1: the data and prior times (default $0 \to 1$, genmath's convention).
        probes, noise, generator: the Hutchinson probes (see `genmath.divergence`).
        structured: use the velocity's own exact divergence when it provides one.
        create_graph: keep the result differentiable w.r.t. `x` and the velocity's
            parameters (training by maximum likelihood). Default: whether grad mode is on
            at the call; under `torch.no_grad()` nothing is kept beyond one step's graph.
        return_result: return an [`ODELikelihood`][genmath.core.likelihood.ODELikelihood]
            (log-probability, prior term, integrated divergence, end points, NFE) instead of
            the `(B,)` tensor.

    Returns:
        `log p_{t0}(x)` with shape `(B,)` (or an `ODELikelihood`).

    Raises:
        ValueError: unknown divergence method, `t0 == t1`, a velocity or prior of the wrong
            shape, or non-finite states / velocities during integration (the message names
            the time and the evaluation count).
    """
    check_finite(check_batch(x, event=True), "x", "the start of an integration")
    _check_method(divergence, probes, noise, name="divergence")
    check_option(method, _torchdiffeq_methods(), "method")
    check_tolerances(rtol, atol)
    check_generator(generator)
    start = as_time(t0, like=x, name="t0")
    end = as_time(t1, like=x, name="t1")
    if start.ndim or end.ndim:
        raise ValueError(
            f"t0 and t1 must be scalars, got shapes {tuple(start.shape)}, {tuple(end.shape)}"
        )
    if float(start) == float(end):
        raise ValueError(
            f"t0 and t1 must differ (data time, prior time), got t0 = t1 = {float(start)}"
        )
    if create_graph is None:
        create_graph = torch.is_grad_enabled()
    use_hook = divergence == "exact" and structured and isinstance(velocity, VelocityWithDivergence)
    z = None if divergence == "exact" else draw_probes(x, probes, noise, generator)
    nfe = 0
    exact_divergence = _TunedExact(
        (_field_key(velocity), tuple(x.shape), x.dtype, x.device, bool(create_graph))
    )
    # Finiteness of each evaluation, kept as tensors and read once after the solve: a check
    # that converted to a Python bool every evaluation would wait for the device each time.
    # Per evaluation: the largest |entry| of the state, the velocity and the divergence (one
    # reduction each; a max-norm is finite exactly when every entry is, and unlike a sum it
    # cannot overflow on finite values), and t.
    health: list[tuple[torch.Tensor, torch.Tensor]] = []

    def augmented_dynamics(t: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor]):
        nonlocal nfe
        nfe += 1
        x_t = state[0]
        if use_hook:
            with torch.set_grad_enabled(create_graph):
                v, div = velocity.velocity_and_divergence(x_t, t)
            _check_field(v, div, x_t, "velocity.velocity_and_divergence", t)
        else:
            with torch.enable_grad():
                x_in = x_t if x_t.requires_grad else x_t.detach().requires_grad_(True)
                v = velocity(x_in, t)
                _check_field(v, None, x_t, "velocity", t)
                if not v.requires_grad:  # a velocity that ignores x has zero divergence
                    div = torch.zeros(x_t.shape[0], dtype=x_t.dtype, device=x_t.device)
                elif z is None:
                    div = exact_divergence(v, x_in, create_graph)
                else:
                    div = _hutchinson_from_graph(v, x_in, z, create_graph)
        with torch.no_grad():
            norms = (_max_norm(x_t), _max_norm(v), _max_norm(div))
            health.append((torch.stack(norms), t.detach()))
        if not create_graph:
            v, div = v.detach(), div.detach()
        return v, div

    times = torch.stack([start, end])
    solver_options = dict(options or {})
    if method in _ADAPTIVE_METHODS and "step_t" not in solver_options:
        # torchdiffeq's adaptive solvers step past the last time and interpolate back, which
        # would evaluate the velocity outside [t0, t1] (e.g. at t > 1, where a path's
        # velocity may be undefined); a forced step at t1 keeps every evaluation inside.
        solver_options["step_t"] = end.reshape(1)
    from torchdiffeq import odeint  # imported on first use (it imports scipy)

    initial = (x, torch.zeros(x.shape[0], dtype=x.dtype, device=x.device))
    with torch.set_grad_enabled(create_graph):
        try:
            xs, integrals = odeint(
                augmented_dynamics,
                initial,
                times,
                method=method,
                rtol=rtol,
                atol=atol,
                options=solver_options,
            )
        except (AssertionError, RuntimeError, ValueError):
            # a non-finite evaluation makes an adaptive solver fail on its step size: say why
            _raise_if_non_finite(health)
            raise
        _raise_if_non_finite(health)
        x_end, integrated = xs[-1], integrals[-1]
        prior = prior_log_prob(x_end)
    if not isinstance(prior, torch.Tensor) or prior.shape != x.shape[:1]:
        got = tuple(prior.shape) if isinstance(prior, torch.Tensor) else type(prior).__name__
        raise ValueError(f"prior_log_prob must return shape {tuple(x.shape[:1])}, got {got}")
    log_prob = prior + integrated
    if not return_result:
        return log_prob
    return ODELikelihood(log_prob, prior, integrated, x_end, nfe)


def _max_norm(tensor: torch.Tensor) -> torch.Tensor:
    return torch.linalg.vector_norm(tensor.detach(), math.inf)


def _raise_if_non_finite(health: list[tuple[torch.Tensor, torch.Tensor]]) -> None:
    """One read of every evaluation's finiteness (max-norms of state, velocity, divergence);
    a ValueError naming the first evaluation (its time and index) whose state, velocity or
    divergence was not finite."""
    if not health:
        return
    finite = torch.isfinite(torch.stack([norms for norms, _ in health]))
    flags = torch.stack((finite[:, 0], finite[:, 1:].all(dim=1)), dim=1)
    if bool(flags.all()):
        return
    first = int((~flags.all(dim=1)).nonzero()[0])
    t = health[first][1]
    when = f"t = {float(t):.6g} (evaluation {first + 1})"
    if not bool(flags[first, 0]):
        raise ValueError(
            f"non-finite state x_t at {when}: the flow blew up; check the model, or "
            "use tighter tolerances or a smaller step"
        )
    raise ValueError(f"velocity or its divergence is non-finite at {when}; expected finite values")


@implements("D-bits-per-dim")
def bits_per_dim(
    log_prob: torch.Tensor,
    dims: int | tuple[int, ...] | torch.Size,
    *,
    levels: int = 256,
    data_range: tuple[float, float] = (0.0, 1.0),
    dequantization: str = "uniform",
) -> torch.Tensor:
    r"""Bits per dimension of discrete data from a model's log-density (D-bits-per-dim).

    Assumptions, all in the signature:

    * the data are integers $k \in \{0, \dots, L-1\}^D$ with $L$ = `levels`;
    * `dequantization="uniform"`: the model saw $x = a + (b - a)(k + u)/L$ with
      $u \sim \mathcal U[0, 1)^D$ and $[a, b]$ = `data_range`, so each integer owns a cell of
      side $\Delta = (b - a)/L$ and `log_prob` is the continuous $\log p(x)$. Then
      $\log P(k) \ge \mathbb E_u[\log p(x)] + D\log\Delta$ (Jensen), and

    $$
    \mathrm{bpd} = -\frac{\log p(x) + D \log \Delta}{D \log 2},
    $$

      whose average over $u$ upper-bounds the discrete model's bits per dimension (for
      $[a, b] = [0, 1]$, $L = 256$: $-\log p(x)/(D\log 2) + 8$);
    * `dequantization="none"`: `log_prob` is already a discrete log-mass $\log P(k)$, and
      $\mathrm{bpd} = -\log P(k)/(D\log 2)$ (`levels` and `data_range` are not used).

    Arguments:
        log_prob: natural-log density (or mass), any shape (usually `(B,)`).
        dims: $D$, the number of dimensions of one sample (an int or an event shape).
        levels: $L$, the number of discrete values per dimension.
        data_range: $(a, b)$, the interval the dequantized data were scaled to.
        dequantization: `"uniform"` or `"none"`.
    """
    check_option(dequantization, DEQUANTIZATIONS, "dequantization")
    if not isinstance(log_prob, torch.Tensor | int | float | list | tuple) or isinstance(
        log_prob, bool
    ):
        raise InputTypeError(
            f"log_prob must be a tensor of log-densities, got {type(log_prob).__name__}"
        )
    n_dims = math.prod(dims) if isinstance(dims, (tuple, list, torch.Size)) else dims
    if isinstance(n_dims, bool) or not isinstance(n_dims, int) or n_dims < 1:
        raise ValueError(f"dims must be a positive integer or an event shape, got {dims!r}")
    if isinstance(levels, bool) or not isinstance(levels, int) or levels < 2:
        raise ValueError(f"levels must be an integer >= 2, got {levels!r}")
    low, high = (float(v) for v in data_range)
    if not high > low:
        raise ValueError(f"data_range must be (low, high) with high > low, got {data_range!r}")
    log_prob = torch.as_tensor(log_prob)
    log_mass = log_prob
    if dequantization == "uniform":
        log_mass = log_prob + n_dims * math.log((high - low) / levels)
    return -log_mass / (n_dims * math.log(2.0))
