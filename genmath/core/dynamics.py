"""ODE and SDE dynamics of Gaussian paths, and the samplers that integrate them.

Time runs from $t = 1$ (noise) to $t = 0$ (data). For a Gaussian path
$x_t = \\alpha_t x_0 + \\sigma_t \\varepsilon$ with marginals $p_t$:

* the **forward SDE** $dx = f_t x\\,dt + g_t\\,dW$, $f_t = \\dot\\alpha_t/\\alpha_t$,
  $g_t^2 = \\tfrac{d}{dt}\\sigma_t^2 - 2 f_t \\sigma_t^2$, has the path's marginals
  ([`forward_sde`][genmath.core.dynamics.forward_sde]; the coefficients live in
  `GaussianPath.drift` / `GaussianPath.diffusion`);
* the **reverse-time family** (derivation D-reverse-sde-marginals)

$$
dx = \\Big[v_t(x) - \\frac{\\nu_t^2}{2} \\nabla \\log p_t(x)\\Big] dt + \\nu_t\\, d\\bar W,
$$

  integrated backwards in time, keeps the marginals $p_t$ for every $\\nu_t \\ge 0$, where
  $v_t$ is the marginal velocity; $\\nu = 0$ is the probability-flow ODE and $\\nu = g$ the
  classical reverse SDE of Anderson (1982) and Song et al. (2021)
  ([`ReverseSDE`][genmath.core.dynamics.ReverseSDE]).

A model may predict any of the five parameterizations (`"x0"`, `"eps"`, `"score"`,
`"velocity"`, `"v"`); the velocity and the score it implies come from the path's single
conversion table, `GaussianPath.convert`.

[`sample_ode`][genmath.core.dynamics.sample_ode] and
[`sample_sde`][genmath.core.dynamics.sample_sde] return a
[`SampleResult`][genmath.core.dynamics.SampleResult] with the samples and the number of
model evaluations.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
from collections.abc import Callable

import torch

from .._implements import implements
from . import _solvers
from ._shapes import check_batch, positive_int
from ._validate import (
    InputTypeError,
    check_finite,
    check_generator,
    check_option,
    check_tolerances,
    non_negative,
    positive,
)
from .grids import check_grid, karras_grid, log_snr_grid, snr_focused_grid, uniform_grid

__all__ = [
    "SampleResult",
    "ODE",
    "SDE",
    "ReverseSDE",
    "ProbabilityFlowODE",
    "forward_sde",
    "probability_flow_ode",
    "reparameterize",
    "sample_ode",
    "sample_sde",
    "ODE_METHODS",
    "SDE_METHODS",
]


@functools.cache
def _torchdiffeq_solvers() -> tuple[str, ...]:
    # imported on first use: torchdiffeq (and the scipy it imports) is not needed by
    # genmath's own methods
    return tuple(importlib.import_module("torchdiffeq._impl.odeint").SOLVERS)

_ADAPTIVE_RK = ("dopri8", "dopri5", "bosh3", "fehlberg2", "adaptive_heun")
ODE_METHODS = (*_solvers.FIXED_STEP_METHODS, *_solvers.EXPONENTIAL_METHODS)
"""genmath's own ODE methods; any other torchdiffeq method name (`"dopri5"`, ...) also works."""
SDE_METHODS = _solvers.SDE_METHODS
# grids of fewer steps than this run the multistep methods' last two steps at first order
_LOWER_ORDER_FINAL_BELOW = 15

Model = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclasses.dataclass(frozen=True)
class SampleResult:
    """What a sampler returns.

    Attributes:
        x: the samples at the last time of the grid, shape of `x1`.
        nfe: number of model (velocity, drift, denoiser or score) evaluations.
        grid: the time grid that was integrated, from first to last time.
        trajectory: the states at every grid time, shape `(len(grid), *x1.shape)`, when
            `keep_trajectory=True` (else `None`; adaptive methods report the states at
            the grid times, not at their internal steps).
    """

    x: torch.Tensor
    nfe: int
    grid: torch.Tensor
    trajectory: torch.Tensor | None = None


def reparameterize(model: Model, path, source: str, target: str) -> Model:
    """`(x, t) -> ` the prediction of `model` (which predicts `source`) converted to `target`
    through `path.convert` (one conversion table for the whole library)."""
    _check_parameterization(path, source, "source")
    _check_parameterization(path, target, "target")
    if source == target:
        return model
    _check_path(path)

    def converted(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return path.convert(model(x, t), x, t, source, target)

    return converted


def _check_parameterization(path, name: str, argument: str = "parameterization") -> None:
    try:
        known = importlib.import_module("genmath.core.path").PARAMETERIZATIONS
    except (ImportError, AttributeError):  # a duck-typed path: its convert validates names
        known = ()
    if known:
        check_option(name, known, argument)


def _check_path(path, name: str = "path"):
    """A Gaussian path, or anything with its ``convert`` and ``schedule`` (duck typing)."""
    if not (hasattr(path, "convert") and hasattr(path, "schedule")):
        raise InputTypeError(
            f"{name} must be a genmath.GaussianPath (anything with .convert and .schedule), "
            f"got {type(path).__name__}"
        )
    return path


def _resolve_grid(grid, steps, schedule, like: torch.Tensor, *, adaptive: bool) -> torch.Tensor:
    if isinstance(grid, str) or grid is None:
        kind = grid or "uniform"
        if steps is None:
            if not adaptive:
                raise ValueError(
                    "a fixed-step method needs `steps` (a positive integer) or an explicit grid, "
                    "got steps=None"
                )
            steps = 1  # an adaptive solver chooses its own steps between the two ends
        if kind == "uniform":
            out = uniform_grid(steps, schedule)
        elif kind == "karras":
            if schedule is None:
                raise ValueError("grid='karras' needs a path (its noise levels define the grid)")
            out = karras_grid(steps, schedule)
        elif kind == "log_snr":
            if schedule is None:
                raise ValueError("grid='log_snr' needs a path (its log-SNR defines the grid)")
            out = log_snr_grid(steps, schedule)
        elif kind == "snr_focused":
            if schedule is None:
                raise ValueError("grid='snr_focused' needs a path (its log-SNR defines the grid)")
            out = snr_focused_grid(steps, schedule)
        else:
            raise ValueError(
                "grid must be 'uniform', 'karras', 'log_snr', 'snr_focused' or a tensor of "
                f"times, got {grid!r}"
            )
    else:
        out = check_grid(grid, schedule)
    return out.to(dtype=like.dtype, device=like.device)


def _schedule_of(path):
    return None if path is None else path.schedule


@implements("D-runge-kutta-steps", "D-ddim-exponential-integrator", "D-dpm-solver-pp-2m")
def sample_ode(
    velocity: Model,
    x1: torch.Tensor,
    *,
    steps: int | None = None,
    method: str = "euler",
    grid=None,
    path=None,
    parameterization: str = "velocity",
    rtol: float = 1e-5,
    atol: float = 1e-5,
    keep_trajectory: bool = False,
) -> SampleResult:
    """Integrate $\\dot x = v_t(x)$ from the first to the last time of a grid (by default
    from $t = 1$, or the top of the path's safe interval, down to $0$ or its bottom).

    Arguments:
        velocity: the model, `velocity(x, t) -> tensor shaped like x`, `t` a 0-d tensor.
            With a `path`, it may predict any `parameterization`; it is then converted by
            `path.convert` (to the velocity, or to $\\hat x_0$ for the exponential
            integrators `ddim`, `dpm++2m`, `dpm++3m`, `unipc`).
        x1: the initial state `(B, *event)` (noise, for sampling).
        steps: number of steps of a fixed-step method (or of output intervals of an
            adaptive one).
        method: `"euler"`, `"midpoint"`, `"heun"` (order 2, EDM's second-order step),
            `"rk4"`; `"ddim"` (first-order exponential integrator, D-ddim-exponential-integrator)
            and `"dpm++2m"` (second-order multistep in log-SNR, Lu et al. 2022,
            D-dpm-solver-pp-2m); `"dpm++3m"` (third-order exponential Adams–Bashforth:
            the exact integral of the quadratic through the last three denoiser outputs,
            D-exponential-adams-3) and `"unipc"` (a UniPC-style predictor–corrector, Zhao
            et al. 2023: a two-output predictor corrected by the quadratic through the
            output at the predicted point, which the next step reuses, so one evaluation per
            step; third order, D-exponential-adams-2 and -3; on fewer than 15 steps the
            last two steps of both predict from the current output alone, like diffusers'
            `lower_order_final`), all needing a `path` and best on `grid="log_snr"`; or any torchdiffeq method name (`"dopri5"`, ...), adaptive
            ones controlled by `rtol`, `atol`.
        grid: `None` / `"uniform"` (uniform in $t$), `"karras"` (EDM's $\\rho = 7$ grid in
            noise level, needs a path), `"log_snr"` (uniform in log-SNR, DPM-Solver's choice,
            needs a path), `"snr_focused"` (densest at log-SNR 0, `snr_focused_grid`; pass
            `snr_focused_grid(n, schedule, center=...)` as the grid for data of another
            scale) or an explicit strictly monotone tensor of times.
            With a path, a grid must stay inside `path.schedule.safe_interval`.
        keep_trajectory: also return the state at every grid time.

    Returns:
        [`SampleResult`][genmath.core.dynamics.SampleResult] (`.x`, `.nfe`, `.grid`,
        `.trajectory`).

    Raises `ValueError` for an unknown method, a grid outside $[0, 1]$ (or the safe
    interval) or not monotone, a model output of the wrong shape, and a non-finite state
    (naming the step and its times).
    """
    x1 = check_finite(check_batch(x1, "x1"), "x1", "the start of an integration")
    check_option(method, (*ODE_METHODS, *_torchdiffeq_solvers()), "method")
    if method not in ODE_METHODS:  # an adaptive torchdiffeq method: its tolerances matter
        check_tolerances(rtol, atol)
    if path is not None:
        _check_path(path)
    _check_parameterization(path, parameterization)
    if path is None and parameterization != "velocity":
        raise ValueError(
            f"a model predicting {parameterization!r} needs the path to convert it to a velocity; "
            "got path=None (pass path=GaussianPath(...) or a velocity model)"
        )
    exponential = method in _solvers.EXPONENTIAL_METHODS
    if exponential and path is None:
        raise ValueError(
            f"method {method!r} integrates the probability-flow ODE of a Gaussian path: "
            "it needs path=GaussianPath(...), got path=None"
        )
    adaptive = method not in ODE_METHODS
    schedule = _schedule_of(path)
    times = _resolve_grid(grid, steps, schedule, x1, adaptive=adaptive)

    if exponential:
        denoiser = _solvers.CountedField(
            reparameterize(velocity, path, parameterization, "x0"), "model"
        )
        alpha, sigma = path.alpha(times), path.sigma(times)
        # few steps: the multistep methods' last two steps first order (diffusers'
        # `lower_order_final`, below the same 15 steps; `_multistep.multistep_plan`)
        final = 2 if times.numel() - 1 < _LOWER_ORDER_FINAL_BELOW else 0
        x, trajectory = _solvers.integrate_exponential(
            method, denoiser, x1, times, alpha, sigma, keep_trajectory, final
        )
        nfe = denoiser.nfe
    else:
        field = _solvers.CountedField(
            reparameterize(velocity, path, parameterization, "velocity"), "velocity"
        )
        if adaptive:
            x, trajectory = _integrate_torchdiffeq(method, field, x1, times, rtol, atol)
            trajectory = trajectory if keep_trajectory else None
        else:
            x, trajectory = _solvers.integrate_fixed(method, field, x1, times, keep_trajectory)
        nfe = field.nfe
    if trajectory is not None and not isinstance(trajectory, torch.Tensor):
        trajectory = torch.stack(trajectory)
    return SampleResult(x=x, nfe=nfe, grid=times, trajectory=trajectory)


def _integrate_torchdiffeq(method, field: _solvers.CountedField, x1, times, rtol, atol):
    from torchdiffeq import odeint

    def rhs(t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        if not torch.isfinite(x).all():
            raise ValueError(
                f"non-finite state at evaluation {field.nfe} (t = {float(t):.6g}); "
                "expected finite values: check the model near this time or tighten rtol/atol"
            )
        return field(x, t)

    # Adaptive Runge–Kutta solvers step past the last output time and interpolate back;
    # forcing steps to end on the grid keeps every evaluation inside the validated interval.
    options = {"step_t": times} if method in _ADAPTIVE_RK else None
    states = odeint(rhs, x1, times, method=method, rtol=rtol, atol=atol, options=options)
    if not torch.isfinite(states[-1]).all():
        raise ValueError(f"non-finite final state at t = {float(times[-1]):.6g}")
    return states[-1], states


@implements("D-euler-maruyama", "D-langevin-corrector")
def sample_sde(
    drift: Model,
    diffusion: Callable[[torch.Tensor], torch.Tensor | float],
    x1: torch.Tensor,
    *,
    steps: int | None = None,
    grid=None,
    generator: torch.Generator | None = None,
    method: str = "euler_maruyama",
    score: Model | None = None,
    snr: float = 0.16,
    corrector_steps: int = 1,
    path=None,
    keep_trajectory: bool = False,
) -> SampleResult:
    """Simulate $dx = b_t(x)\\,dt + \\nu_t\\,dW$ along a time grid, by default from $t = 1$
    (or the top of the path's safe interval) down to $t = 0$ (or its bottom).

    On a decreasing grid the Brownian increments are those of reverse time ($d\\bar W$), so
    `drift` is written in forward-time convention: for the reverse family use
    [`ReverseSDE`][genmath.core.dynamics.ReverseSDE], whose `.drift` and `.diffusion` are
    exactly these arguments.

    Arguments:
        drift: `drift(x, t) -> tensor shaped like x`, `t` a 0-d tensor.
        diffusion: `diffusion(t) ->` a scalar, a `(B,)` tensor or a tensor shaped like x.
        x1: the initial state `(B, *event)`.
        steps: number of steps of the time grid, as in
            [`sample_ode`][genmath.core.dynamics.sample_ode].
        grid: the time grid, as in `sample_ode` (an increasing grid simulates forward in time).
        path: the Gaussian path whose safe interval bounds the default grid, as in `sample_ode`.
        generator: the source of the Gaussian increments.
        method: `"euler_maruyama"`, or `"pc"`: Euler–Maruyama predictor followed at each
            new time by `corrector_steps` Langevin corrector steps using `score(x, t)`,
            with step $\\epsilon = 2 (r \\overline{\\lVert z\\rVert} /
            \\overline{\\lVert \\nabla\\log p_t\\rVert})^2$, $r$ = `snr`, norms averaged
            over the batch (Song et al. 2021, Algorithm 4 and their code, without the
            VP-specific factor $\\alpha_i$, which tends to 1 as steps shrink).

    Returns:
        [`SampleResult`][genmath.core.dynamics.SampleResult]; `nfe` counts drift and score
        evaluations.
    """
    x1 = check_finite(check_batch(x1, "x1"), "x1", "the start of an integration")
    check_option(method, SDE_METHODS, "method")
    check_generator(generator)
    if path is not None:
        _check_path(path)
    if method == "pc":
        if score is None:
            raise ValueError("method 'pc' needs score(x, t) for its Langevin corrector, got None")
        positive(snr, "snr")
        positive_int(corrector_steps, "corrector_steps")
    times = _resolve_grid(grid, steps, _schedule_of(path), x1, adaptive=False)
    drift_field = _solvers.CountedField(drift, "drift")
    score_field = _solvers.CountedField(score, "score") if method == "pc" else None
    x, trajectory = _solvers.integrate_sde(
        method,
        drift_field,
        diffusion,
        score_field,
        x1,
        times,
        generator,
        float(snr),
        corrector_steps,
        keep_trajectory,
    )
    nfe = drift_field.nfe + (score_field.nfe if score_field is not None else 0)
    if trajectory is not None:
        trajectory = torch.stack(trajectory)
    return SampleResult(x=x, nfe=nfe, grid=times, trajectory=trajectory)


class ODE:
    """An ODE $\\dot x = v_t(x)$; `.sample(x1, ...)` integrates it with
    [`sample_ode`][genmath.core.dynamics.sample_ode]."""

    def __init__(self, velocity: Model):
        self._velocity = velocity

    def velocity(self, x: torch.Tensor, t) -> torch.Tensor:
        return self._velocity(x, t)

    def sample(self, x1: torch.Tensor, **options) -> SampleResult:
        return sample_ode(self.velocity, x1, **options)


class SDE:
    """An SDE $dx = b_t(x)\\,dt + \\nu_t\\,dW$; `.sample(x, ...)` simulates it with
    [`sample_sde`][genmath.core.dynamics.sample_sde] (by default from $t = 1$ to $0$; pass an
    increasing grid to simulate forward in time)."""

    def __init__(self, drift: Model, diffusion: Callable):
        self._drift = drift
        self._diffusion = diffusion

    def drift(self, x: torch.Tensor, t) -> torch.Tensor:
        return self._drift(x, t)

    def diffusion(self, t):
        return self._diffusion(t)

    def sample(self, x: torch.Tensor, **options) -> SampleResult:
        check_finite(check_batch(x, "x"), "x", "the start of an integration")
        return sample_sde(self.drift, self.diffusion, x, **options)


def forward_sde(path) -> SDE:
    """The forward SDE $dx = f_t x\\,dt + g_t\\,dW$ of a Gaussian path (coefficients from
    `path.drift` and `path.diffusion`), whose marginals are the path's: simulate it with an
    increasing grid, e.g. `forward_sde(path).sample(x0, grid=uniform_grid(n, start=0, end=1))`."""
    if not (hasattr(path, "drift") and hasattr(path, "diffusion")):
        raise InputTypeError(
            f"path must be a genmath.GaussianPath (with .drift and .diffusion), got {type(path).__name__}"
        )
    return SDE(path.drift, path.diffusion)


class ReverseSDE(SDE):
    """The reverse-time SDE family of a Gaussian path, for a model in any parameterization.

    $$
    dx = \\Big[v_t(x) - \\frac{\\nu_t^2}{2} \\nabla\\log p_t(x)\\Big] dt + \\nu_t\\, d\\bar W
    $$

    keeps the path's marginals for every $\\nu_t \\ge 0$ (derivation D-reverse-sde-marginals).
    `noise` sets $\\nu_t$: a number $c$ gives $\\nu_t = c\\, g_t$ ($c = 1$: the classical
    reverse SDE, $c = 0$: the probability-flow ODE), a callable `noise(t)` gives $\\nu_t$
    directly. Velocity and score come from one model evaluation through `path.convert`.
    """

    def __init__(self, path, model: Model, parameterization: str = "eps", noise=1.0):
        _check_path(path)
        _check_parameterization(path, parameterization)
        if callable(noise):
            nu = noise
        else:
            scale = non_negative(noise, "noise")

            def nu(t):
                return scale * path.diffusion(t)

        self.path = path
        self.model = model
        self.parameterization = parameterization
        super().__init__(self._reverse_drift, nu)

    def velocity(self, x: torch.Tensor, t) -> torch.Tensor:
        """The marginal velocity $v_t(x)$ implied by the model."""
        check_batch(x, "x")
        return self.path.convert(self.model(x, t), x, t, self.parameterization, "velocity")

    def score(self, x: torch.Tensor, t) -> torch.Tensor:
        """The score $\\nabla \\log p_t(x)$ implied by the model."""
        check_batch(x, "x")
        return self.path.convert(self.model(x, t), x, t, self.parameterization, "score")

    def _reverse_drift(self, x: torch.Tensor, t) -> torch.Tensor:
        prediction = self.model(x, t)
        convert = self.path.convert
        velocity = convert(prediction, x, t, self.parameterization, "velocity")
        score = convert(prediction, x, t, self.parameterization, "score")
        nu = _solvers._broadcast(self.diffusion(t), x)
        return velocity - 0.5 * nu**2 * score

    def sample(self, x1: torch.Tensor, **options) -> SampleResult:
        """Simulate from `x1` (default grid: the path's safe interval, top to bottom); with
        `method="pc"` the model's score drives the Langevin corrector."""
        options.setdefault("path", self.path)
        if options.get("method") == "pc":
            options.setdefault("score", self.score)
        return sample_sde(self.drift, self.diffusion, x1, **options)

    def probability_flow(self) -> ProbabilityFlowODE:
        """The $\\nu = 0$ member: the probability-flow ODE of the same model."""
        return ProbabilityFlowODE(self.path, self.model, self.parameterization)


class ProbabilityFlowODE(ODE):
    """The probability-flow ODE $\\dot x = v_t(x)$ of a Gaussian path for a model in any
    parameterization; `.sample` accepts every `sample_ode` method, the exponential integrators
    included (the model is converted to $\\hat x_0$ for those)."""

    def __init__(self, path, model: Model, parameterization: str = "eps"):
        _check_path(path)
        _check_parameterization(path, parameterization)
        self.path = path
        self.model = model
        self.parameterization = parameterization
        super().__init__(reparameterize(model, path, parameterization, "velocity"))

    def sample(self, x1: torch.Tensor, **options) -> SampleResult:
        return sample_ode(
            self.model, x1, path=self.path, parameterization=self.parameterization, **options
        )


def probability_flow_ode(path, model: Model, parameterization: str = "eps") -> ProbabilityFlowODE:
    """The probability-flow ODE of `path` for a model predicting `parameterization`."""
    return ProbabilityFlowODE(path, model, parameterization)
