r"""Consistency models: one network that maps every point of a probability-flow trajectory to
its end (Song et al. 2023).

**Composition.** Consistency model = Gaussian path (`genmath.GaussianPath`, any schedule) +
its probability-flow ODE (a teacher velocity in any parameterization, converted by
`GaussianPath.convert`; one Euler or Heun step of the core solvers) + EDM's time grid
(`genmath.core.grids.karras_grid`) + a boundary-respecting parameterization.

A consistency function $f(x_t, t)$ returns the point $x_{t_\mathrm{min}}$ of the ODE trajectory
through $x_t$: it is constant along trajectories and the identity at $t_\mathrm{min}$. The
boundary condition is built in (derivation D-consistency-boundary):

$$
f_\theta(x, t) = c_\mathrm{skip}(s)\,x + c_\mathrm{out}(s)\,F_\theta(x, t),\quad
c_\mathrm{skip}(s) = \frac{\sigma_d^2}{(s - s_\mathrm{min})^2 + \sigma_d^2},\quad
c_\mathrm{out}(s) = \frac{\sigma_d\,(s - s_\mathrm{min})}{\sqrt{\sigma_d^2 + s^2}},
$$

with $s = \sigma_t/\alpha_t$ the path's noise level (EDM's $\sigma$; $s = e^{-\lambda_t/2}$),
so $c_\mathrm{skip}(s_\mathrm{min}) = 1$ and $c_\mathrm{out}(s_\mathrm{min}) = 0$ exactly.
Consistency **distillation** regresses $f_\theta(x_{t_{n+1}}, t_{n+1})$ onto the EMA target
$f_{\theta^-}(\hat x_{t_n}, t_n)$, $\hat x_{t_n}$ one teacher ODE step from $x_{t_{n+1}}$;
consistency **training** replaces the teacher step by the same noise at the lower level,
$x_{t_n} = \alpha_{t_n} x_0 + \sigma_{t_n}\varepsilon$ (an unbiased one-sample estimate of the
teacher's velocity), with a step count $N(k)$ that grows during training.

**Options of the papers.** With ``input_scaling=True`` the network sees EDM's unit-variance
input $c_\mathrm{in}(s)\,x/\alpha_t$, with ``noise_conditioning="edm"`` EDM's noise label
$c_\mathrm{noise}(s) = \tfrac14\ln s$ instead of $t$ (Karras et al. 2022, Table 1; Song et al.
2023 use both), both taken from `genmath.families.diffusion.edm_preconditioning`
(D-edm-preconditioning). The multistep sampler re-noises either along the path
(``renoise="path"``) or by Song et al.'s Algorithm 1 exactly (``renoise="algorithm1"``,
`renoise`, D-consistency-renoise). `training_grid` gives the paper's $N(k)$ grid points.

**On the flow map.** A consistency function is the flow map to the data end,
$f(x, t) = X(x, t, t_\mathrm{min})$ (`genmath.consistency_function_from_map`); the
distillation teacher's step is a flow map too: the core `genmath.flow_map` of the teacher
velocity with one Euler or Heun step, or any exact map ``solver(x, s, t)``.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable

import torch
from torch import nn

from .._implements import implements
from ..core._shapes import as_time, check_batch, check_reduction, expand_time, reduce_batch
from ..core._validate import (
    InputTypeError,
    check_generator,
    check_int,
    check_option,
    in_unit_interval,
    non_negative,
    positive,
    positive_int,
    positive_tensor,
)
from ..core.dynamics import SampleResult, reparameterize
from ..core.flow_map import flow_map
from ..core.grids import check_grid, karras_grid
from ..core.path import GaussianPath, check_gaussian_path, check_parameterization
from .diffusion import edm_preconditioning
from .flow_matching import interpolate

__all__ = [
    "boundary_coefficients",
    "ConsistencyModel",
    "ema_update",
    "training_steps",
    "training_grid",
    "ema_decay",
    "consistency_distillation_loss",
    "consistency_training_loss",
    "renoise",
    "sample",
    "METRICS",
    "NOISE_CONDITIONING",
    "RENOISE_RULES",
]

METRICS = ("l2", "pseudo_huber")
#: what the network is told about the noise: the time t, or EDM's c_noise(s) = ln(s)/4
NOISE_CONDITIONING = ("time", "edm")
#: how the multistep sampler re-noises: along the path as if x were clean data, or Song et
#: al.'s Algorithm 1 (the exact marginal at the new level)
RENOISE_RULES = ("path", "algorithm1")

Model = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@implements("D-consistency-boundary")
def boundary_coefficients(
    s: torch.Tensor, s_min: float, sigma_data: float = 0.5
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""$(c_\mathrm{skip}(s), c_\mathrm{out}(s))$ of Song et al. (2023, App. C): EDM's skip and
    output scalings with $s$ shifted by $s_\mathrm{min}$ so that $c_\mathrm{skip}(s_\mathrm{min})
    = 1$, $c_\mathrm{out}(s_\mathrm{min}) = 0$ (D-consistency-boundary)."""
    sigma_data = positive(sigma_data, "sigma_data")
    s_min = non_negative(s_min, "s_min")
    s = positive_tensor(s, "s", zero_ok=True)
    shifted = s - s_min
    c_skip = sigma_data**2 / (shifted**2 + sigma_data**2)
    c_out = sigma_data * shifted / (sigma_data**2 + s**2).sqrt()
    return c_skip, c_out


class ConsistencyModel(nn.Module):
    r"""$f_\theta(x, t) = c_\mathrm{skip}\,x + c_\mathrm{out}\,F_\theta(x, t)$ on a Gaussian path.

    Arguments:
        network: $F_\theta(x, t)$, ``t`` of shape ``(B,)`` (e.g. `genmath.nn.VelocityMLP`).
        path: the `GaussianPath` whose probability-flow trajectories the model follows.
        t_min, t_max: the time range; default the schedule's `safe_interval` (where the noise
            level $s = \sigma_t/\alpha_t$ is finite and positive). $f(x, t_\mathrm{min}) = x$.
        sigma_data: $\sigma_d$ of the scalings (0.5 in Song et al.).
        input_scaling: if true the network sees EDM's unit-variance input
            $c_\mathrm{in}(s)\,x/\alpha_t$, $c_\mathrm{in}(s) = 1/\sqrt{s^2 + \sigma_d^2}$
            ($x/\alpha_t = x_0 + s\,\varepsilon$ is EDM's state; on a VE path $\alpha_t = 1$):
            what the papers' networks need when $s$ reaches 80. Default false: the raw $x$.
        noise_conditioning: ``"time"`` (the network's second argument is $t$, shape ``(B,)``)
            or ``"edm"`` (EDM's noise label $c_\mathrm{noise}(s) = \tfrac14\ln s$, shape
            ``(B,)``).

    $c_\mathrm{in}$ and $c_\mathrm{noise}$ are those of `edm_preconditioning`
    (D-edm-preconditioning); the skip and output scalings stay Song et al.'s shifted ones, so
    the boundary condition holds with either option (D-consistency-boundary).
    """

    def __init__(
        self,
        network: nn.Module,
        path: GaussianPath,
        *,
        t_min: float | None = None,
        t_max: float | None = None,
        sigma_data: float = 0.5,
        input_scaling: bool = False,
        noise_conditioning: str = "time",
    ) -> None:
        super().__init__()
        check_gaussian_path(path)
        sigma_data = positive(sigma_data, "sigma_data")
        if not isinstance(input_scaling, bool):
            raise InputTypeError(
                f"input_scaling must be True or False, got {type(input_scaling).__name__} "
                f"{input_scaling!r:.40}"
            )
        check_option(noise_conditioning, NOISE_CONDITIONING, "noise_conditioning")
        lo, hi = path.schedule.safe_interval
        t_min = float(lo if t_min is None else t_min)
        t_max = float(hi if t_max is None else t_max)
        if not lo <= t_min < t_max <= hi:
            raise ValueError(
                f"need safe_interval[0] = {lo:.6g} <= t_min < t_max <= safe_interval[1] = "
                f"{hi:.6g}, got t_min = {t_min}, t_max = {t_max}"
            )
        self.network, self.path = network, path
        self.t_min, self.t_max, self.sigma_data = t_min, t_max, float(sigma_data)
        self.input_scaling, self.noise_conditioning = input_scaling, noise_conditioning
        self.s_min = float(self.noise_level(torch.tensor(t_min, dtype=torch.float64)))

    @implements("D-consistency-boundary")
    def noise_level(self, t) -> torch.Tensor:
        r"""$s_t = \sigma_t/\alpha_t$, EDM's noise level of the path at $t$."""
        return self.path.sigma(t) / self.path.alpha(t)

    def _times(self, t, x: torch.Tensor) -> torch.Tensor:
        t = as_time(t, like=x)
        if t.ndim == 0:
            t = t.expand(x.shape[0])
        elif t.shape != (x.shape[0],):
            raise ValueError(
                f"t must be a scalar or have shape ({x.shape[0]},), got {tuple(t.shape)}"
            )
        # a relative slack absorbs the round-off of grids pinned to the interval's ends
        slack = 1e-12
        if bool(((t < self.t_min - slack) | (t > self.t_max + slack)).any()):
            raise ValueError(
                f"t must lie in [t_min, t_max] = [{self.t_min:.6g}, {self.t_max:.6g}], got t in "
                f"[{float(t.min()):.6g}, {float(t.max()):.6g}]"
            )
        return t

    def _network_inputs(self, x: torch.Tensor, t: torch.Tensor, s: torch.Tensor):
        r"""What $F_\theta$ is called with: ``(x, t)``, or EDM's $c_\mathrm{in}x/\alpha_t$ and
        $c_\mathrm{noise}$ where the options ask for them."""
        if not self.input_scaling and self.noise_conditioning == "time":
            return x, t
        _, _, c_in, c_noise = edm_preconditioning(s, self.sigma_data)
        if self.input_scaling:
            x = expand_time(c_in / self.path.alpha(t), x) * x
        return x, (c_noise if self.noise_conditioning == "edm" else t)

    @implements("D-consistency-boundary")
    def forward(self, x: torch.Tensor, t) -> torch.Tensor:
        check_batch(x)
        t = self._times(t, x)
        s = self.noise_level(t)
        c_skip, c_out = boundary_coefficients(s, self.s_min, self.sigma_data)
        network = self.network(*self._network_inputs(x, t, s))
        return expand_time(c_skip, x) * x + expand_time(c_out, x) * network

    def target_copy(self) -> ConsistencyModel:
        """A frozen copy for the EMA target $\\theta^-$ (update it with `ema_update`)."""
        target = copy.deepcopy(self)
        target.requires_grad_(False)
        return target


@implements("D-consistency-training-schedule")
@torch.no_grad()
def ema_update(target: nn.Module, online: nn.Module, decay: float) -> None:
    r"""$\theta^- \leftarrow \mu\,\theta^- + (1 - \mu)\,\theta$ in place, $\mu$ = ``decay``."""
    in_unit_interval(decay, "decay")
    for p_target, p_online in zip(target.parameters(), online.parameters(), strict=True):
        p_target.lerp_(p_online, 1.0 - decay)


@implements("D-consistency-training-schedule")
def training_steps(k: int, total: int, s0: int = 2, s1: int = 150) -> int:
    r"""Consistency training's step count $N(k) = \lceil\sqrt{k/K\,((s_1 + 1)^2 - s_0^2) +
    s_0^2} - 1\rceil + 1$ at iteration $k$ of $K$ (Song et al. 2023, App. C): the smallest
    integer above $g(k)$, where $g^2$ grows linearly from $s_0^2$ to $(s_1 + 1)^2$, so
    $N(0) = s_0$ and $N(K) = s_1 + 1$.

    $N$ is the paper's number of discretisation *points* $t_1 < \dots < t_N$ ($N - 1$
    intervals); `consistency_training_loss(steps=...)` counts intervals (it builds
    `karras_grid(steps)`, ``steps + 1`` points), so pass ``steps=training_steps(k, K) - 1``,
    or ``grid=training_grid(k, K, path)``, to train on the paper's grid."""
    k, total = check_int(k, "k", 0), check_int(total, "total", 1)
    s0, s1 = check_int(s0, "s0", 1), check_int(s1, "s1", 1)
    if not (0 <= k <= total and total >= 1 and 1 <= s0 <= s1):
        raise ValueError(f"need 0 <= k <= total, total >= 1, 1 <= s0 <= s1; got {k, total, s0, s1}")
    return math.ceil(math.sqrt(k / total * ((s1 + 1) ** 2 - s0**2) + s0**2) - 1) + 1


@implements("D-consistency-training-schedule")
def training_grid(
    k: int, total: int, path: GaussianPath, s0: int = 2, s1: int = 150, *, rho: float = 7.0
) -> torch.Tensor:
    r"""The paper's grid at iteration $k$ of $K$: the $N(k)$ = `training_steps` ``(k, total,
    s0, s1)`` points $t_\mathrm{max} = t_N > \dots > t_1 = t_\mathrm{min}$ of EDM's
    $\rho$-spacing (Song et al. 2023, App. C: $t_i = (\epsilon^{1/\rho} + \tfrac{i-1}{N-1}
    (T^{1/\rho} - \epsilon^{1/\rho}))^\rho$ in noise level), i.e. `karras_grid` with
    $N - 1$ intervals, decreasing, float64. Pass it as
    ``consistency_training_loss(..., grid=training_grid(k, K, path))``: the loss draws one of
    its $N - 1$ adjacent pairs, so the paper's $N$ is read as written."""
    # N(0) = s0 points: s0 = 1 would start with a single point and no interval to train on
    check_int(s0, "s0", 2)
    points = training_steps(k, total, s0, s1)
    check_gaussian_path(path)
    return karras_grid(points - 1, path.schedule, rho=rho, dtype=torch.float64)


@implements("D-consistency-training-schedule")
def ema_decay(steps: int, s0: int = 2, mu0: float = 0.95) -> float:
    r"""The EMA decay paired with $N$ steps, $\mu(N) = \exp(s_0 \log\mu_0 / N)$ (Song et al.
    2023): $\mu(N)^N = \mu_0^{s_0}$, so the target forgets at the same rate per sweep of the
    grid whatever $N$, and $\mu(s_0) = \mu_0$."""
    positive_int(steps, "steps")
    positive_int(s0, "s0")
    mu0 = in_unit_interval(mu0, "mu0", open_low=True)
    return math.exp(s0 * math.log(mu0) / steps)


def _distance(a: torch.Tensor, b: torch.Tensor, metric: str, huber_c: float | None) -> torch.Tensor:
    squared = (a - b).pow(2).flatten(1).sum(1)
    if metric == "l2":
        return squared
    c = huber_c if huber_c is not None else 0.00054 * math.sqrt(a[0].numel())
    return (squared + c**2).sqrt() - c


def _grid(grid, path: GaussianPath, like: torch.Tensor, name: str = "grid") -> torch.Tensor:
    if isinstance(grid, int) and not isinstance(grid, bool):
        grid = karras_grid(positive_int(grid, name), path.schedule)
    elif isinstance(grid, bool | float):
        raise InputTypeError(f"{name} must be an integer N or a tensor of times, got {grid!r}")
    grid = check_grid(grid, path.schedule).to(like)
    if not bool((grid[1:] < grid[:-1]).all()):
        raise ValueError("the consistency grid must decrease, from t_max to t_min")
    return grid


def _adjacent_times(grid, path, x0, generator, name="grid"):
    grid = _grid(grid, path, x0, name)
    n = torch.randint(0, grid.numel() - 1, (x0.shape[0],), generator=generator, device=x0.device)
    return grid[n], grid[n + 1]


def _noise(noise, x0: torch.Tensor, generator, like: str = "x0") -> torch.Tensor:
    if noise is None:
        return torch.randn(x0.shape, generator=generator, dtype=x0.dtype, device=x0.device)
    if not isinstance(noise, torch.Tensor) or noise.shape != x0.shape:
        got = tuple(noise.shape) if isinstance(noise, torch.Tensor) else type(noise).__name__
        raise ValueError(f"noise must have the shape of {like}, {tuple(x0.shape)}; got {got}")
    return noise.to(x0)


def _check_metric(metric: str, huber_c=None) -> None:
    check_option(metric, METRICS, "metric")
    if huber_c is not None:
        positive(huber_c, "huber_c")


def _loss(model, target_model, x_hi, t_hi, x_lo, t_lo, metric, huber_c, reduction):
    with torch.no_grad():
        anchor = target_model(x_lo, t_lo)
    return reduce_batch(_distance(model(x_hi, t_hi), anchor, metric, huber_c), reduction)


@implements("D-consistency-losses")
def consistency_distillation_loss(
    model: Model,
    target_model: Model,
    x0: torch.Tensor,
    path: GaussianPath,
    teacher,
    *,
    grid=18,
    solver="heun",
    teacher_parameterization: str = "velocity",
    metric: str = "l2",
    huber_c: float | None = None,
    noise: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    reduction: str = "mean",
) -> torch.Tensor:
    r"""Consistency distillation: $d\big(f_\theta(x_{t_{n+1}}, t_{n+1}),
    f_{\theta^-}(\hat x_{t_n}, t_n)\big)$ with $x_{t_{n+1}}$ drawn from the path and
    $\hat x_{t_n}$ one teacher step of the probability-flow ODE.

    Arguments:
        model, target_model: $f_\theta$ and the EMA target $f_{\theta^-}$ (`ConsistencyModel`).
        x0: data ``(B, *event)``.
        path: the `GaussianPath`.
        teacher: ``teacher(x, t)`` predicting ``teacher_parameterization``; its velocity
            comes from `GaussianPath.convert`.
        grid: a decreasing time grid inside the safe interval, or an int $N$ for
            `karras_grid(N, path.schedule)`; $n$ is uniform on its $N$ intervals.
        solver: ``"euler"``, ``"heun"``: one step of the core `genmath.flow_map` of the
            teacher's velocity from $t_{n+1}$ to $t_n$; or a flow-map model
            ``solver(x, s, t)`` $= X(x, s, t)$ with ``(B,)`` times (an exact map such as
            ``marginal.flow_map``, or ``lambda x, s, t: genmath.flow_map(v, x, s, t)``).
        metric: ``"l2"`` (squared) or ``"pseudo_huber"`` ($\sqrt{\|\cdot\|^2 + c^2} - c$,
            default $c = 0.00054\sqrt{d}$ for events of size $d$, Song & Dhariwal 2023).
        noise: the $\varepsilon$ of $x_{t_{n+1}}$ (default fresh standard normal).

    The target is held constant (stop-gradient): the gradient is
    $\partial_\theta d(f_\theta(x_{t_{n+1}}), a)$ at $a = f_{\theta^-}(\hat x_{t_n}, t_n)$
    only, even when $\theta^- = \theta$ (D-consistency-losses).
    """
    check_batch(x0, "x0", event=True)
    check_gaussian_path(path)
    _check_metric(metric, huber_c)
    check_reduction(reduction)
    check_generator(generator)
    if not callable(solver):
        check_option(solver, ("euler", "heun"), "solver")
        check_parameterization(teacher_parameterization, "teacher_parameterization")
    t_hi, t_lo = _adjacent_times(grid, path, x0, generator)
    x_hi, _ = interpolate(x0, _noise(noise, x0, generator), t_hi, path)
    if callable(solver):
        x_lo = solver(x_hi, t_hi, t_lo)
        if not isinstance(x_lo, torch.Tensor) or x_lo.shape != x_hi.shape:
            got = tuple(x_lo.shape) if isinstance(x_lo, torch.Tensor) else type(x_lo).__name__
            raise ValueError(
                f"solver(x, s, t) must return the map's value, shaped like x "
                f"{tuple(x_hi.shape)}; got {got}"
            )
    elif solver in ("euler", "heun"):
        velocity = reparameterize(teacher, path, teacher_parameterization, "velocity")
        with torch.no_grad():
            # the teacher's flow map X(x, t_{n+1}, t_n), approximated by one step of its ODE
            x_lo = flow_map(velocity, x_hi, t_hi, t_lo, steps=1, method=solver)
    else:
        raise ValueError(f"solver must be 'euler', 'heun' or a callable, got {solver!r}")
    return _loss(model, target_model, x_hi, t_hi, x_lo.detach(), t_lo, metric, huber_c, reduction)


@implements("D-consistency-losses")
def consistency_training_loss(
    model: Model,
    target_model: Model,
    x0: torch.Tensor,
    path: GaussianPath,
    *,
    steps: int = 18,
    grid=None,
    metric: str = "l2",
    huber_c: float | None = None,
    noise: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    reduction: str = "mean",
) -> torch.Tensor:
    r"""Consistency training from data: adjacent times of `karras_grid(steps)` (``steps``
    intervals) share the noise, $x_{t} = \alpha_t x_0 + \sigma_t\varepsilon$ at $t_{n+1}$ and
    $t_n$; loss $d(f_\theta(x_{t_{n+1}}, t_{n+1}), \mathrm{sg}(f_{\theta^-}(x_{t_n}, t_n)))$
    (D-consistency-losses). ``steps`` counts *intervals*: the paper's $N$ points are
    ``steps = N - 1``, or pass ``grid=training_grid(k, K, path)`` (its $N(k)$ points); set the
    EMA decay with `ema_decay`. ``grid`` (a
    decreasing time grid) replaces `karras_grid(steps)`; ``noise`` is $\varepsilon$ (default
    fresh standard normal); ``metric`` and ``huber_c`` as in `consistency_distillation_loss`."""
    check_batch(x0, "x0", event=True)
    check_gaussian_path(path)
    _check_metric(metric, huber_c)
    check_reduction(reduction)
    check_generator(generator)
    if grid is None and (isinstance(steps, bool) or not isinstance(steps, int)):
        positive_int(steps, "steps")  # raises: a count of steps, not a grid
    if grid is None:
        t_hi, t_lo = _adjacent_times(steps, path, x0, generator, "steps")
    else:
        t_hi, t_lo = _adjacent_times(grid, path, x0, generator)
    eps = _noise(noise, x0, generator)
    x_hi, _ = interpolate(x0, eps, t_hi, path)
    x_lo, _ = interpolate(x0, eps, t_lo, path)
    return _loss(model, target_model, x_hi, t_hi, x_lo, t_lo, metric, huber_c, reduction)


def _renoise(x, t_from, t_to, path, rule, z):
    if rule == "path":
        return interpolate(x, z, t_to, path)[0]
    # Algorithm 1 in the scaled state x / alpha = x_0 + s n: raise the noise level from s_from
    # to s_to by adding independent noise of variance s_to^2 - s_from^2, then scale back
    alpha_from, alpha_to = path.alpha(t_from), path.alpha(t_to)
    s_from, s_to = path.sigma(t_from) / alpha_from, path.sigma(t_to) / alpha_to
    if bool((s_to < s_from).any()):
        raise ValueError(
            "re-noising raises the noise level: need s(t_to) >= s(t_from), i.e. t_to >= t_from, "
            f"got s(t_from) = {s_from.tolist()} and s(t_to) = {s_to.tolist()}"
        )
    added = alpha_to * (s_to**2 - s_from**2).sqrt()
    return expand_time(alpha_to / alpha_from, x) * x + expand_time(added, x) * z


@implements("D-consistency-renoise")
def renoise(
    x: torch.Tensor,
    t_from,
    t_to,
    path: GaussianPath,
    *,
    rule: str = "algorithm1",
    noise: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    r"""One re-noising step of multistep consistency sampling, from a state ``x`` at time
    ``t_from`` (a consistency model's output, a point of $p_{t_\mathrm{min}}$) to time
    ``t_to`` (D-consistency-renoise).

    The $\sigma$ axis is EDM's noise level of the path, $s_t = \sigma_t/\alpha_t$, in the
    scaled state $x/\alpha_t = x_0 + s_t n$ (on a VE path $\alpha_t = 1$ and $s_t = \sigma_t$,
    Song et al.'s own axis).

    * ``rule="algorithm1"`` (Song et al. 2023, Algorithm 1):
      $x_\tau = \tfrac{\alpha_\tau}{\alpha_{t}}\,x + \alpha_\tau\sqrt{s_\tau^2 - s_{t}^2}\,z$,
      on VE $x + \sqrt{\tau^2 - \epsilon^2}\,z$: if $x \sim p_{t}$ then $x_\tau \sim p_\tau$
      exactly. Needs $s_\tau \ge s_t$ (``t_to >= t_from``).
    * ``rule="path"``: $x_\tau = \alpha_\tau x + \sigma_\tau z$ (`GaussianPath.sample`), which
      treats ``x`` as clean data: its variance exceeds that of $p_\tau$ by
      $\alpha_\tau^2\sigma_t^2$ per unit of noise in ``x``.

    ``t_from``, ``t_to``: floats or ``(B,)``; ``noise`` is $z$ (default fresh standard
    normal)."""
    check_batch(x, "x")
    check_gaussian_path(path)
    check_option(rule, RENOISE_RULES, "rule")
    check_generator(generator)
    t_from, t_to = as_time(t_from, like=x, name="t_from"), as_time(t_to, like=x, name="t_to")
    for name, value in (("t_from", t_from), ("t_to", t_to)):
        if value.ndim == 1 and value.shape != (x.shape[0],):
            raise ValueError(
                f"{name} must be a float or have shape ({x.shape[0]},), got {tuple(value.shape)}"
            )
    return _renoise(x, t_from, t_to, path, rule, _noise(noise, x, generator, "x"))


@implements("D-consistency-boundary", "D-consistency-renoise")
def sample(
    model: ConsistencyModel,
    noise: torch.Tensor,
    *,
    times=None,
    renoise: str = "path",
    generator: torch.Generator | None = None,
) -> SampleResult:
    r"""Multistep consistency sampling (Song et al. 2023, Alg. 1): $x = f(\sigma_{T} z, T)$ at
    $T$ = ``model.t_max``, then for each further time $\tau$ of the decreasing ``times``
    re-noise from $t_\mathrm{min}$ to $\tau$ and map back, $x = f(x_\tau, \tau)$.
    ``times=None`` is one step.

    ``renoise`` is the rule of `renoise` (D-consistency-renoise): ``"path"`` (default),
    $x_\tau = \alpha_\tau x + \sigma_\tau z$ as if $x$ were clean data; ``"algorithm1"``,
    the paper's $x_\tau = \tfrac{\alpha_\tau}{\alpha_{t_\mathrm{min}}}x + \alpha_\tau
    \sqrt{s_\tau^2 - s_\mathrm{min}^2}\,z$ on the noise-level axis $s = \sigma/\alpha$ (on VE,
    $x + \sqrt{\tau^2 - \epsilon^2}\,z$), under which $x \sim p_{t_\mathrm{min}}$ gives
    $x_\tau \sim p_\tau$ exactly."""
    check_batch(noise, "noise")
    if not isinstance(model, ConsistencyModel):
        raise InputTypeError(f"model must be a ConsistencyModel, got {type(model).__name__}")
    check_option(renoise, RENOISE_RULES, "renoise")
    check_generator(generator)
    t_max = torch.tensor(model.t_max, dtype=noise.dtype, device=noise.device)
    t_min = torch.tensor(model.t_min, dtype=noise.dtype, device=noise.device)
    grid = t_max.reshape(1)
    if times is not None:
        grid = torch.cat([grid, torch.as_tensor(times).to(noise).reshape(-1)])
        check_grid(grid, model.path.schedule, name="[t_max, *times]")
        if not bool((grid[1:] < grid[:-1]).all()):
            raise ValueError(f"times must decrease from below t_max = {model.t_max:.6g}")
        if bool((grid[1:] < model.t_min).any()):
            raise ValueError(f"times must lie in [t_min, t_max] = [{model.t_min:.6g}, "
                             f"{model.t_max:.6g}], got {grid[1:].tolist()}")
    x = model(model.path.sigma(t_max).to(noise) * noise, t_max)
    for tau in grid[1:]:
        z = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
        x = model(_renoise(x, t_min, tau, model.path, renoise, z), tau)
    return SampleResult(x=x, nfe=grid.numel(), grid=grid)
