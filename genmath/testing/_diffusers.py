r"""Adapter: any diffusers scheduler as a sampler under test.

The user passes the scheduler they run, configured as they run it. The adapter reads from the
scheduler itself which noise level its state and its model input are at, and feeds it the
oracle's exact prediction in the parameterization its config declares:

| scheduler state | examples | state $x = a x_0 + b\varepsilon$ | model input |
| --- | --- | --- | --- |
| variance-preserving, from $\bar\alpha$ | DDIM, DDPM | $(\sqrt{\bar\alpha_t}, \sqrt{1-\bar\alpha_t})$ | the state |
| variance-preserving, from $\sigma$ | DPM-Solver(++), UniPC, DEIS | `_sigma_to_alpha_sigma_t(sigma)` | the state |
| variance-exploding $\sigma$ | Euler, Heun, Euler ancestral, LMS | $(1, \sigma)$ | `scale_model_input`: $(1, \sigma)/\sqrt{1+\sigma^2}$ |
| flow matching | FlowMatchEuler, `use_flow_sigmas` | $(1-\sigma, \sigma)$ | the state |

``prediction_type``: ``epsilon`` $\hat\varepsilon$, ``sample`` $\hat x_0$, ``v_prediction``
$a\hat\varepsilon - b\hat x_0$ at the model input's level, ``flow_prediction`` (and the flow
schedulers) $\hat\varepsilon - \hat x_0$. The end level is where the scheduler's last step lands
(``final_alpha_cumprod`` for DDIM, the last entry of ``sigmas`` otherwise), so options such as
``final_sigmas_type`` change the target the sampler is compared with, as they change where it
stops.
"""

from __future__ import annotations

import copy
import inspect

import torch

from ..core._validate import InputTypeError, check_flag, check_kwargs, check_text
from ._requirements import require
from ._samplers import CountingModel, SamplerUnderTest

__all__ = ["diffusers_sampler"]

_STOCHASTIC_CLASSES = ("Ancestral", "DDPM", "SDE")


def _kind(scheduler) -> str:
    config = scheduler.config
    if type(scheduler).__name__.startswith("FlowMatch") or config.get("use_flow_sigmas", False):
        return "flow"
    if hasattr(scheduler, "_sigma_to_alpha_sigma_t") and hasattr(scheduler, "sigmas"):
        return "vp-sigma"
    if hasattr(scheduler, "sigmas") and hasattr(scheduler, "scale_model_input"):
        return "ve"
    if hasattr(scheduler, "alphas_cumprod"):
        return "vp-discrete"
    raise TypeError(
        f"{type(scheduler).__name__}: not a scheduler this adapter knows (no sigmas or "
        "alphas_cumprod); pass a diffusers scheduler"
    )


def _float(x) -> float:
    return float(x.item()) if isinstance(x, torch.Tensor) else float(x)


class _DiffusersSampler(SamplerUnderTest):
    def __init__(self, scheduler, stochastic, step_kwargs, name):
        require("diffusers", "diffusers")
        if not hasattr(scheduler, "config") or not hasattr(scheduler, "set_timesteps"):
            raise InputTypeError(
                "scheduler must be a diffusers scheduler instance (e.g. DDIMScheduler()), got "
                f"{type(scheduler).__name__} {scheduler!r:.40}"
            )
        self.scheduler = scheduler
        self.kind = _kind(scheduler)
        self.prediction = scheduler.config.get("prediction_type", "epsilon")
        if self.kind == "flow" and "prediction_type" not in scheduler.config:
            self.prediction = "flow_prediction"
        known = ("epsilon", "sample", "v_prediction", "flow_prediction")
        if self.prediction not in known:
            raise ValueError(f"prediction_type {self.prediction!r} is not one of {known}")
        check_flag(stochastic, "stochastic", optional=True)
        if stochastic is None:
            algorithm = str(scheduler.config.get("algorithm_type", ""))
            stochastic = any(c in type(scheduler).__name__ for c in _STOCHASTIC_CLASSES) or (
                algorithm.startswith("sde") or bool(scheduler.config.get("stochastic_sampling", False))
            )
        self.stochastic = bool(stochastic)
        self.step_kwargs = check_kwargs(step_kwargs, "step_kwargs")
        self._step_takes_generator = "generator" in inspect.signature(scheduler.step).parameters
        self.name = check_text(name, "name") or type(scheduler).__name__

    # -- noise levels --------------------------------------------------------------------

    def _level_of_sigma(self, sigma) -> tuple[float, float]:
        sigma = _float(sigma)
        if self.kind == "flow":
            return 1.0 - sigma, sigma
        if self.kind == "ve":
            return 1.0, sigma
        alpha_t, sigma_t = self.scheduler._sigma_to_alpha_sigma_t(torch.tensor(sigma, dtype=torch.float64))
        return _float(alpha_t), _float(sigma_t)

    def _level_of_timestep(self, timestep) -> tuple[float, float]:
        alpha_bar = _float(self.scheduler.alphas_cumprod[int(timestep)])
        return alpha_bar**0.5, (1 - alpha_bar) ** 0.5

    def _fresh(self, steps):
        scheduler = copy.deepcopy(self.scheduler)
        scheduler.set_timesteps(steps)
        return scheduler

    def levels(self, oracle, steps):
        scheduler = self._fresh(steps)
        if self.kind == "vp-discrete":
            start = self._level_of_timestep(scheduler.timesteps[0])
            final = _float(getattr(scheduler, "final_alpha_cumprod", 1.0))
            return start, (final**0.5, (1 - final) ** 0.5)
        return self._level_of_sigma(scheduler.sigmas[0]), self._level_of_sigma(scheduler.sigmas[-1])

    # -- running -------------------------------------------------------------------------

    def _prediction(self, oracle, x_in, level):
        a, b = level
        x0_hat, eps_hat = oracle.posterior_at_level(x_in, a, b)
        if self.prediction == "epsilon":
            return eps_hat
        if self.prediction == "sample":
            return x0_hat
        if self.prediction == "v_prediction":
            return a * eps_hat - b * x0_hat
        return eps_hat - x0_hat  # flow: d/d(sigma) of (1 - sigma) x0 + sigma eps

    def run(self, oracle, x_start, steps, generator):
        scheduler = self._fresh(steps)
        model = CountingModel(self._prediction)
        x = x_start
        for i, timestep in enumerate(scheduler.timesteps):
            if self.kind == "ve":
                x_in = scheduler.scale_model_input(x, timestep)
                index = scheduler.step_index if scheduler.step_index is not None else i
                s = _float(scheduler.sigmas[index])
                level = (1 / (1 + s * s) ** 0.5, s / (1 + s * s) ** 0.5)
            elif self.kind == "vp-discrete":
                x_in = x
                level = self._level_of_timestep(timestep)
            else:
                x_in = x
                index = getattr(scheduler, "step_index", None)
                level = self._level_of_sigma(scheduler.sigmas[i if index is None else index])
            prediction = model(oracle, x_in, level).to(x.dtype)
            kwargs = dict(self.step_kwargs)
            if self._step_takes_generator and generator is not None:
                kwargs["generator"] = generator
            x = scheduler.step(prediction, timestep, x, return_dict=True, **kwargs).prev_sample
        return x, model.calls


def diffusers_sampler(
    scheduler,
    *,
    stochastic: bool | None = None,
    step_kwargs: dict | None = None,
    name: str | None = None,
) -> SamplerUnderTest:
    """A diffusers scheduler as a sampler under test (see the module for the conventions).

    Arguments:
        scheduler: any diffusers scheduler instance, configured as it is used; it is copied
            and ``set_timesteps(steps)`` is called on the copy for each number of steps.
        stochastic: whether its steps draw noise (default: read from the class and config:
            ancestral, DDPM and SDE variants are stochastic).
        step_kwargs: extra keyword arguments of ``scheduler.step`` (e.g. ``{"eta": 1.0}`` for
            DDIM).
        name: shown in reports (default: the class name).

    The samplers start from the exact marginal at the scheduler's first noise level (not from
    ``init_noise_sigma`` times a standard normal, which is only approximately that law), so a
    check measures the integrator alone.
    """
    return _DiffusersSampler(scheduler, stochastic, step_kwargs, name)
