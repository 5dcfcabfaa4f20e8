r"""Samplers under test: what a check needs to know about someone's sampler.

A check draws exact start points, runs the sampler with a perfect model, and compares the end
points with the exact answer. It needs three things from the sampler, whatever library it comes
from: where it starts and where it ends, as **noise levels** $(a, b)$ of its own state
$x = a\,x_0 + b\,\varepsilon$ (`Oracle.time_of_level` places them on the oracle's path), and a
way to run it with the oracle's exact prediction. `SamplerUnderTest` is that contract; the
adapters (`diffusers_sampler`, `k_diffusion_sampler`, `flow_matching_sampler`,
`torchdiffeq_sampler`) and `as_sampler` / `genmath_sampler` implement it.
"""

from __future__ import annotations

import contextlib
import contextvars
import inspect
from collections.abc import Callable

import torch

from ..core._shapes import scalar_time
from ..core._validate import check_callable, check_flag, check_option, check_text, non_negative

__all__ = ["SamplerUnderTest", "CountingModel", "as_sampler", "genmath_sampler"]

Level = tuple[float, float]


class CountingModel:
    """Wraps ``fn`` and counts its calls (the sampler's number of function evaluations).

    It also counts **repeated** evaluations: calls whose arguments equal those of the call just
    before, exactly. A sampler makes one on a zero-length step, such as a noise level listed
    twice in its grid (diffusers' Karras sigmas once ended with a duplicated last level): the
    evaluation is paid for and changes nothing. The checks report them.
    """

    def __init__(self, fn: Callable):
        self.fn = check_callable(fn, "fn", "the model to count (a callable)")
        self.calls = 0
        self.repeated = 0
        self._previous = None
        watching = _WATCHING.get()
        if watching is not None:
            watching.append(self)

    def __call__(self, *args, **kwargs):
        self.calls += 1
        inputs = (_snapshot(args), _snapshot(sorted(kwargs.items())))
        if self._previous is not None and _same_inputs(inputs, self._previous):
            self.repeated += 1
        self._previous = inputs
        return self.fn(*args, **kwargs)


_WATCHING: contextvars.ContextVar[list | None] = contextvars.ContextVar(
    "genmath_counting_models", default=None
)


@contextlib.contextmanager
def _watch_models():
    """Collect every `CountingModel` created inside the block (by an adapter's ``run``)."""
    models: list[CountingModel] = []
    token = _WATCHING.set(models)
    try:
        yield models
    finally:
        _WATCHING.reset(token)


def _snapshot(value):
    if isinstance(value, torch.Tensor):
        return value.detach().clone()
    if isinstance(value, list | tuple):
        return tuple(_snapshot(v) for v in value)
    return value


def _same_inputs(a, b) -> bool:
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return (
            isinstance(a, torch.Tensor)
            and isinstance(b, torch.Tensor)
            and a.shape == b.shape
            and a.dtype == b.dtype
            and torch.equal(a, b)
        )
    if isinstance(a, tuple) and isinstance(b, tuple):
        return len(a) == len(b) and all(_same_inputs(x, y) for x, y in zip(a, b, strict=True))
    try:
        return bool(a is b or a == b)
    except Exception:  # objects whose == is not a truth value
        return False


def _repeated_note(models: list[CountingModel], steps: int) -> str | None:
    repeated = sum(m.repeated for m in models)
    if not repeated:
        return None
    return (
        f"at {steps} steps the model was evaluated {repeated} time(s) on exactly the inputs of the "
        "call before: a zero-length step (a noise level listed twice in the grid?) costs an "
        "evaluation, counted in the NFE, and does nothing"
    )


class SamplerUnderTest:
    """The contract between a sampler and the checks.

    Subclasses set ``name`` and ``stochastic`` and implement:

    * ``levels(oracle, steps) -> ((a0, b0), (a1, b1))``: the noise levels of the sampler's own
      state where it starts and where it ends;
    * ``run(oracle, x_start, steps, generator) -> (x_end, nfe)``: run from ``x_start`` (a state
      at the start level, in the sampler's coordinates) with the oracle's exact prediction,
      returning the end state and the number of model evaluations.
    """

    name: str = "sampler"
    stochastic: bool = False

    def levels(self, oracle, steps: int) -> tuple[Level, Level]:
        raise NotImplementedError

    def run(self, oracle, x_start: torch.Tensor, steps: int, generator) -> tuple[torch.Tensor, int]:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"


class _GenmathConvention(SamplerUnderTest):
    """A sampler written in genmath's conventions: ``fn(model, x_start, steps[, generator])``,
    ``model(x, t)`` predicting ``parameterization`` on the oracle's path, from ``t_start`` to
    ``t_end``."""

    def __init__(self, fn, parameterization, t_start, t_end, stochastic, name):
        from ..core.path import check_parameterization

        self.fn = check_callable(fn, "fn", "the sampler, a function (model, x_start, steps)")
        self.parameterization = check_parameterization(parameterization)
        self.t_start = None if t_start is None else scalar_time(t_start, "t_start")
        self.t_end = None if t_end is None else scalar_time(t_end, "t_end")
        self.stochastic = check_flag(stochastic, "stochastic")
        self.name = check_text(name, "name") or getattr(fn, "__name__", type(fn).__name__)
        try:
            self._takes_generator = "generator" in inspect.signature(fn).parameters
        except (TypeError, ValueError):
            self._takes_generator = False

    def _times(self, oracle) -> tuple[float, float]:
        lo, hi = oracle.safe_interval
        start = hi if self.t_start is None else float(self.t_start)
        end = lo if self.t_end is None else float(self.t_end)
        return start, end

    def levels(self, oracle, steps):
        start, end = self._times(oracle)
        return oracle.level(start), oracle.level(end)

    def run(self, oracle, x_start, steps, generator):
        model = CountingModel(oracle.model(self.parameterization))
        if self._takes_generator:
            out = self.fn(model, x_start, steps, generator=generator)
        else:
            out = self.fn(model, x_start, steps)
        x_end = getattr(out, "x", out)  # a genmath SampleResult or a tensor
        return x_end, model.calls


def as_sampler(
    fn: Callable,
    *,
    parameterization: str = "velocity",
    t_start: float | None = None,
    t_end: float | None = None,
    stochastic: bool = False,
    name: str | None = None,
) -> SamplerUnderTest:
    """Make a check-able sampler from ``fn(model, x_start, steps)`` (or with a ``generator=``
    keyword, for a stochastic one) written in genmath's conventions: ``model(x, t)`` predicts
    ``parameterization`` on the oracle's path, time runs from ``t_start`` (default: the top of
    the path's safe interval) down to ``t_end`` (default: its bottom), and ``fn`` returns the
    end state (a tensor, or anything with an ``.x`` such as `genmath.SampleResult`)."""
    return _GenmathConvention(fn, parameterization, t_start, t_end, stochastic, name)


_GRIDS = ("uniform", "karras", "log_snr", "snr_focused")  # sample_ode's named grids


class _GenmathSampler(SamplerUnderTest):
    def __init__(self, method, parameterization, grid, noise, name):
        from ..core.dynamics import ODE_METHODS, _torchdiffeq_solvers
        from ..core.grids import check_grid
        from ..core.path import check_parameterization

        check_parameterization(parameterization)
        check_option(method, (*ODE_METHODS, *_torchdiffeq_solvers()), "method")
        if noise is not None:
            noise = non_negative(noise, "noise")
        if isinstance(grid, str):
            check_option(grid, _GRIDS, "grid")
        elif grid is not None:
            grid = check_grid(grid)
        check_text(name, "name")
        self.method = method
        self.parameterization = parameterization
        self.grid = grid
        self.noise = noise
        self.stochastic = noise is not None
        self.name = name or (
            f"genmath {method}" if noise is None else f"genmath reverse SDE (noise {noise:g})"
        )

    def levels(self, oracle, steps):
        lo, hi = oracle.safe_interval
        if isinstance(self.grid, torch.Tensor):
            hi, lo = float(self.grid[0]), float(self.grid[-1])
        return oracle.level(hi), oracle.level(lo)

    def run(self, oracle, x_start, steps, generator):
        from ..core.dynamics import ReverseSDE, sample_ode

        model = CountingModel(oracle.model(self.parameterization))
        if self.noise is None:
            out = sample_ode(
                model,
                x_start,
                steps=steps,
                method=self.method,
                grid=self.grid,
                path=oracle.path,
                parameterization=self.parameterization,
            )
        else:
            sde = ReverseSDE(oracle.path, model, self.parameterization, noise=self.noise)
            out = sde.sample(x_start, steps=steps, grid=self.grid, generator=generator)
        return out.x, model.calls


def genmath_sampler(
    method: str = "heun",
    *,
    parameterization: str = "x0",
    grid=None,
    noise: float | None = None,
    name: str | None = None,
) -> SamplerUnderTest:
    """One of genmath's own samplers as a sampler under test: `genmath.sample_ode` with
    ``method`` (``"euler"``, ``"heun"``, ``"ddim"``, ``"dpm++2m"``, ...) and ``grid``, or, with
    ``noise`` set, `genmath.ReverseSDE` with that noise scale (Euler–Maruyama; stochastic)."""
    return _GenmathSampler(method, parameterization, grid, noise, name)
