r"""Adapters for k-diffusion, Meta's flow_matching and torchdiffeq (diffusers: `_diffusers`).

* **k-diffusion** samplers integrate $dx/d\sigma = (x - D(x, \sigma))/\sigma$ on the state
  $x = x_0 + \sigma\varepsilon$ (level $(1, \sigma)$) with a denoiser $D$; the adapter gives them
  the oracle's exact $D$. k-diffusion's package ``__init__`` imports torchvision (through its
  training utilities); its samplers need none of it, so `load_k_diffusion_sampling` executes the
  installed ``k_diffusion/sampling.py`` file alone, inside a private parent package whose
  ``utils`` offers the one helper that file uses (``append_dims``, written here). Nothing of
  k-diffusion is copied.
* **flow_matching** puts data at $t = 1$ (Lipman et al.): its paths are
  $x_\tau = \alpha_\tau x_1 + \sigma_\tau x_0$ with $x_1$ the data, so its level at $\tau$ is
  $(\alpha_\tau, \sigma_\tau)$ from its own scheduler and its velocity is
  $\dot\alpha_\tau \hat x_1 + \dot\sigma_\tau \hat x_0$; genmath's $t$ is $1 - \tau$ on CondOT.
* **torchdiffeq**: ``odeint`` (or any function with its signature) integrating the oracle's exact
  velocity on a uniform grid in genmath's time.
"""

from __future__ import annotations

import importlib.util
import inspect
import sys
import types
from pathlib import Path

import torch

from ..core._validate import (
    InputTypeError,
    check_callable,
    check_flag,
    check_kwargs,
    check_option,
    check_text,
    positive,
    positive_int,
)
from ._requirements import _HINTS, require
from ._samplers import CountingModel, SamplerUnderTest

__all__ = [
    "load_k_diffusion_sampling",
    "k_diffusion_sampler",
    "flow_matching_sampler",
    "flow_matching_likelihood",
    "torchdiffeq_sampler",
]

_K_PARENT = "_genmath_k_diffusion"


def _append_dims(x: torch.Tensor, target_dims: int) -> torch.Tensor:
    """Trailing singleton dimensions up to ``target_dims`` (what k-diffusion's samplers ask of
    their ``utils``)."""
    missing = target_dims - x.ndim
    if missing < 0:
        raise ValueError(f"x has {x.ndim} dimensions, more than target_dims = {target_dims}")
    return x.reshape(*x.shape, *([1] * missing))


def load_k_diffusion_sampling():
    """The installed ``k_diffusion.sampling`` module, loaded without the package ``__init__``
    (which needs torchvision). Needs ``pip install --no-deps k-diffusion`` plus torchsde,
    torchdiffeq, scipy and tqdm."""
    name = f"{_K_PARENT}.sampling"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.find_spec("k_diffusion")  # locates the package without running it
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(f"k_diffusion is not installed; install it with: {_HINTS['k_diffusion']}")
    for module in ("torchsde", "tqdm", "scipy", "torchdiffeq"):
        require(module)
    path = Path(next(iter(spec.submodule_search_locations))) / "sampling.py"
    parent = types.ModuleType(_K_PARENT)
    parent.__path__ = []
    utils = types.ModuleType(f"{_K_PARENT}.utils")
    utils.append_dims = _append_dims
    parent.utils = utils
    sys.modules[_K_PARENT] = parent
    sys.modules[utils.__name__] = utils
    file_spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(file_spec)
    sys.modules[name] = module
    try:
        file_spec.loader.exec_module(module)
    except Exception:
        del sys.modules[name]
        raise
    parent.sampling = module
    return module


def _check_sigmas(sigmas):
    """A k-diffusion grid of noise levels: a function of the number of steps, or a 1-D tensor
    of finite levels >= 0."""
    if sigmas is None or callable(sigmas):
        return sigmas
    if not isinstance(sigmas, torch.Tensor | list | tuple):
        raise InputTypeError(
            "sigmas must be a 1-D tensor of noise levels or a function of the number of steps "
            f"returning one, got {type(sigmas).__name__} {sigmas!r:.40}"
        )
    tensor = torch.as_tensor(sigmas)
    if tensor.ndim != 1 or tensor.numel() < 2 or not tensor.is_floating_point():
        raise ValueError(
            f"sigmas must be a 1-D float tensor of at least 2 noise levels, got {tensor.dtype} "
            f"of shape {tuple(tensor.shape)}"
        )
    if not bool(torch.isfinite(tensor).all()) or bool((tensor < 0).any()):
        raise ValueError(f"sigmas must be finite noise levels >= 0, got {tensor.tolist()[:5]}")
    return tensor


def _ode_method(method, name: str = "method") -> str:
    """A torchdiffeq method name (what flow_matching's solver and odeint accept)."""
    from ..core.dynamics import _torchdiffeq_solvers

    return check_option(method, _torchdiffeq_solvers(), name)


class _KDiffusionSampler(SamplerUnderTest):
    def __init__(self, sampler, sigmas, sigma_min, sigma_max, rho, stochastic, kwargs, name):
        sampling = load_k_diffusion_sampling()
        if isinstance(sampler, str):
            attribute = sampler if sampler.startswith("sample_") else f"sample_{sampler}"
            if not hasattr(sampling, attribute):
                known = sorted(n[7:] for n in dir(sampling) if n.startswith("sample_"))
                raise ValueError(f"k-diffusion has no sampler {sampler!r}; known: {known}")
            sampler = getattr(sampling, attribute)
        check_callable(sampler, "sampler", "a k-diffusion sampler or its name")
        self.fn = sampler
        self.sampling = sampling
        self.sigmas = _check_sigmas(sigmas)
        self.sigma_min, self.sigma_max = positive(sigma_min, "sigma_min"), positive(sigma_max, "sigma_max")
        if not self.sigma_min < self.sigma_max:
            raise ValueError(f"sigma_min must be below sigma_max, got {sigma_min} and {sigma_max}")
        self.rho = positive(rho, "rho")
        parameters = inspect.signature(sampler).parameters
        self._noise_sampler = "noise_sampler" in parameters
        label = sampler.__name__
        check_flag(stochastic, "stochastic", optional=True)
        self.stochastic = ("ancestral" in label or "sde" in label) if stochastic is None else stochastic
        self.kwargs = check_kwargs(kwargs, "sampler_kwargs")
        self.name = check_text(name, "name") or f"k-diffusion {label}"

    def _sigmas(self, steps) -> torch.Tensor:
        if self.sigmas is not None:
            return self.sigmas(steps) if callable(self.sigmas) else torch.as_tensor(self.sigmas)
        return self.sampling.get_sigmas_karras(steps, self.sigma_min, self.sigma_max, rho=self.rho)

    def levels(self, oracle, steps):
        sigmas = self._sigmas(steps)
        return (1.0, float(sigmas[0])), (1.0, float(sigmas[-1]))

    def run(self, oracle, x_start, steps, generator):
        sigmas = self._sigmas(steps).to(x_start)

        def denoiser(x, sigma, **_):
            s = float(sigma.flatten()[0])
            if not torch.all(sigma == sigma.flatten()[0]):
                raise ValueError("the adapter expects one noise level per call")
            return oracle.posterior_at_level(x, 1.0, s)[0]

        model = CountingModel(denoiser)
        kwargs = {"disable": True, **self.kwargs}
        if self._noise_sampler and "noise_sampler" not in kwargs:
            kwargs["noise_sampler"] = lambda sigma, sigma_next: torch.randn(
                x_start.shape, generator=generator, dtype=x_start.dtype, device=x_start.device
            )
        return self.fn(model, x_start, sigmas, **kwargs), model.calls


def k_diffusion_sampler(
    sampler,
    *,
    sigmas=None,
    sigma_min: float = 0.002,
    sigma_max: float = 80.0,
    rho: float = 7.0,
    stochastic: bool | None = None,
    sampler_kwargs: dict | None = None,
    name: str | None = None,
) -> SamplerUnderTest:
    """A k-diffusion sampler (``sample_euler``, ``"dpmpp_2m"``, ...) as a sampler under test.

    ``sigmas``: a tensor, or a function of the number of steps returning one; default
    k-diffusion's own ``get_sigmas_karras(steps, sigma_min, sigma_max, rho)`` (ending at 0).
    Ancestral and SDE samplers are stochastic; their noise is drawn from the check's generator
    through their ``noise_sampler`` argument."""
    return _KDiffusionSampler(sampler, sigmas, sigma_min, sigma_max, rho, stochastic, sampler_kwargs, name)


def _flow_scheduler(path):
    if path is None:
        return require("flow_matching.path.scheduler", "flow-matching").CondOTScheduler()
    scheduler = getattr(path, "scheduler", path)
    if not callable(scheduler) or isinstance(scheduler, type):
        raise InputTypeError(
            "path must be a flow_matching AffineProbPath or its scheduler (e.g. "
            f"CondOTScheduler()), got {type(path).__name__} {path!r:.40}"
        )
    return scheduler


def _lipman_level(scheduler, tau: float):
    out = scheduler(torch.tensor(float(tau), dtype=torch.float64))
    return out


def _flow_velocity_model(oracle, scheduler):
    utils = require("flow_matching.utils", "flow-matching")

    class ExactVelocity(utils.ModelWrapper):
        """The oracle's exact velocity in flow_matching's time (data at 1)."""

        def __init__(self):
            super().__init__(torch.nn.Identity())
            self.calls = 0

        def forward(self, x, t, **extras):
            self.calls += 1
            level = scheduler(torch.as_tensor(t, dtype=torch.float64))
            a, b = float(level.alpha_t), float(level.sigma_t)
            x1_hat, x0_hat = oracle.posterior_at_level(x, a, b)
            return float(level.d_alpha_t) * x1_hat + float(level.d_sigma_t) * x0_hat

    return ExactVelocity()


def _solver(solver):
    if solver is None:
        return require("flow_matching.solver", "flow-matching").ODESolver
    return check_callable(solver, "solver", "a class with flow_matching ODESolver's interface")


class _FlowMatchingSampler(SamplerUnderTest):
    def __init__(self, method, path, solver, solver_kwargs, name):
        self.solver_class = _solver(solver)
        self.scheduler = _flow_scheduler(path)
        self.method = _ode_method(method)
        self.solver_kwargs = check_kwargs(solver_kwargs, "solver_kwargs")
        self.name = check_text(name, "name") or f"flow_matching ODESolver ({method})"

    def levels(self, oracle, steps):
        start, end = (_lipman_level(self.scheduler, tau) for tau in (0.0, 1.0))
        return (float(start.alpha_t), float(start.sigma_t)), (float(end.alpha_t), float(end.sigma_t))

    def run(self, oracle, x_start, steps, generator):
        model = _flow_velocity_model(oracle, self.scheduler)
        solver = self.solver_class(velocity_model=model)
        grid = torch.tensor([0.0, 1.0], dtype=x_start.dtype)
        x = solver.sample(
            x_init=x_start, step_size=1.0 / steps, method=self.method, time_grid=grid, **self.solver_kwargs
        )
        return x, model.calls


def flow_matching_sampler(
    method: str = "midpoint",
    *,
    path=None,
    solver=None,
    solver_kwargs: dict | None = None,
    name: str | None = None,
) -> SamplerUnderTest:
    """Meta flow_matching's ``ODESolver`` (or ``solver``, a class with its interface) sampling
    along ``path`` (a flow_matching ``AffineProbPath`` or its scheduler; default
    ``CondOTScheduler()``) from $\\tau = 0$ (noise) to $\\tau = 1$ (data) with ``step_size =
    1/steps`` and the oracle's exact velocity."""
    return _FlowMatchingSampler(method, path, solver, solver_kwargs, name)


def flow_matching_likelihood(
    steps: int = 50,
    *,
    method: str = "midpoint",
    path=None,
    exact_divergence: bool = True,
    solver=None,
):
    """An estimator for `check_likelihood` from flow_matching's ``ODESolver.compute_likelihood``:
    integrates the exact velocity from the data ($\\tau = 1$) to the noise ($\\tau = 0$), with
    the oracle's exact density there as ``log_p0``. ``exact_divergence=False`` uses its
    Hutchinson estimator (stochastic: check with ``stochastic=True``)."""
    steps = positive_int(steps, "steps")
    method = _ode_method(method)
    check_flag(exact_divergence, "exact_divergence")
    solver_class = _solver(solver)
    scheduler = _flow_scheduler(path)

    def flow_matching_compute_likelihood(x, oracle):
        noise = _lipman_level(scheduler, 0.0)
        t_noise, scale = oracle.time_of_level(float(noise.alpha_t), float(noise.sigma_t))

        def log_p0(z):
            return oracle.log_prob(z / scale, t_noise) - z.shape[1] * torch.log(torch.tensor(scale))

        model = _flow_velocity_model(oracle, scheduler)
        grid = torch.tensor([1.0, 0.0], dtype=x.dtype)
        _, log_likelihood = solver_class(velocity_model=model).compute_likelihood(
            x_1=x, log_p0=log_p0, step_size=1.0 / steps, method=method, time_grid=grid,
            exact_divergence=exact_divergence,
        )
        return log_likelihood

    return flow_matching_compute_likelihood


class _TorchdiffeqSampler(SamplerUnderTest):
    def __init__(self, method, odeint, odeint_kwargs, name):
        self.odeint = (
            require("torchdiffeq").odeint
            if odeint is None
            else check_callable(odeint, "odeint", "a function with torchdiffeq odeint's signature")
        )
        self.method = _ode_method(method)
        self.kwargs = check_kwargs(odeint_kwargs, "odeint_kwargs")
        self.name = check_text(name, "name") or f"torchdiffeq {method}"

    def _grid(self, oracle, steps):
        lo, hi = oracle.safe_interval
        return torch.linspace(hi, lo, steps + 1, dtype=oracle.dtype)

    def levels(self, oracle, steps):
        grid = self._grid(oracle, steps)
        return oracle.level(float(grid[0])), oracle.level(float(grid[-1]))

    def run(self, oracle, x_start, steps, generator):
        velocity = oracle.model("velocity")
        func = CountingModel(lambda t, x: velocity(x, t))
        states = self.odeint(func, x_start, self._grid(oracle, steps).to(x_start), method=self.method, **self.kwargs)
        return states[-1], func.calls


def torchdiffeq_sampler(
    method: str = "rk4",
    *,
    odeint=None,
    odeint_kwargs: dict | None = None,
    name: str | None = None,
) -> SamplerUnderTest:
    """``odeint(func, x, grid, method=method, **odeint_kwargs)`` (torchdiffeq's by default, or
    any function with its signature, e.g. ``odeint_adjoint``) integrating the exact velocity
    over ``steps`` uniform intervals of the oracle path's safe interval, from noise to data."""
    return _TorchdiffeqSampler(method, odeint, odeint_kwargs, name)
