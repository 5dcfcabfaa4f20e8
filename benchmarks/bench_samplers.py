"""Deterministic samplers: genmath vs diffusers' schedulers, fed the same exact ε oracle.

Data: an 8-D Gaussian with a full covariance, so that the probability-flow ODE's end point
for a given start and the marginal at every time are known exactly (`genmath.analytic`).
Path: genmath's VP(0.1, 20). diffusers works on 1000 discrete timesteps; its betas are
built so that its `alphas_cumprod[i]` equals genmath's $\\alpha_t^2$ at $t_i = (i + 1)/1000$,
and its model output at timestep $i$ is the exact ε at $t_i$. All samplers start from the
same draws of the exact $p_1$ (diffusers with `timestep_spacing="trailing"` starts at
timestep 999, $t = 1$).

Errors, per sampler, against its own end time $t_\\mathrm{end}$ (diffusers denoises to
$\\sigma = 0$; genmath stops at the bottom of the safe interval, $\\sigma = 10^{-3}$):

* **ODE error**: RMS distance to the exact probability-flow end point of the same start;
* **W2**: 2-Wasserstein distance between the Gaussian fits of the samples and of the exact
  end points of the same starts (so the Monte-Carlo noise of the fit mostly cancels).

Per-step overhead: wall time per step with a model that returns a stored tensor, as a ratio
genmath / diffusers for the matching pair (ddim/DDIM, dpm++2m/DPMSolverMultistep,
euler/EulerDiscrete), on the same uniform-in-t steps.

`python benchmarks/bench_samplers.py [--quick]` writes `benchmarks/results/samplers.md`.
"""

from __future__ import annotations

import argparse
import pathlib
import time
import warnings

import numpy as np
import scipy.linalg
import torch

from genmath.analytic import Gaussian
from genmath.core.dynamics import sample_ode
from genmath.core.path import GaussianPath
from genmath.schedules import VP

RESULTS = pathlib.Path(__file__).parent / "results" / "samplers.md"
TRAIN_STEPS = 1000


class _TimedModel:
    """The ε oracle, with the time spent inside it accumulated (to isolate overhead)."""

    def __init__(self, fn):
        self.fn, self.seconds, self.calls = fn, 0.0, 0

    def __call__(self, x, t):
        start = time.perf_counter()
        out = self.fn(x, t)
        self.seconds += time.perf_counter() - start
        self.calls += 1
        return out


def _data(dim: int) -> Gaussian:
    generator = torch.Generator().manual_seed(0)
    factor = torch.randn(dim, dim, generator=generator) / dim**0.5 + torch.eye(dim) * 0.5
    return Gaussian(torch.linspace(-2.0, 2.0, dim), factor @ factor.T)


def _w2_gaussian(mean1, cov1, mean2, cov2) -> float:
    root = scipy.linalg.sqrtm(cov2.numpy())
    cross = scipy.linalg.sqrtm(root @ cov1.numpy() @ root).real
    value = float((mean1 - mean2).square().sum()) + float(
        np.trace(cov1.numpy() + cov2.numpy() - 2 * cross)
    )
    return max(value, 0.0) ** 0.5


def _diffusers_betas(path: GaussianPath) -> np.ndarray:
    times = torch.arange(1, TRAIN_STEPS + 1, dtype=torch.float64) / TRAIN_STEPS
    cumprod = (path.alpha(times) ** 2).numpy()
    previous = np.concatenate([[1.0], cumprod[:-1]])
    return 1.0 - cumprod / previous


def _run_diffusers(scheduler_cls, betas, oracle, x1, nfe, **config):
    scheduler = scheduler_cls(
        num_train_timesteps=TRAIN_STEPS,
        trained_betas=betas,
        timestep_spacing="trailing",
        **config,
    )
    scheduler.set_timesteps(nfe)
    model = _TimedModel(oracle)
    start = time.perf_counter()
    euler = scheduler_cls.__name__ == "EulerDiscreteScheduler"
    # Euler works on x / alpha (variance-exploding scale): multiply by sqrt(s^2 + 1) = 1/alpha
    x = x1 * (scheduler.sigmas[0] ** 2 + 1) ** 0.5 if euler else x1.clone()
    for timestep in scheduler.timesteps:
        model_input = scheduler.scale_model_input(x, timestep)
        t = torch.tensor((float(timestep) + 1) / TRAIN_STEPS, dtype=x1.dtype)
        eps = model(model_input, t)
        x = scheduler.step(eps, timestep, x).prev_sample
    total = time.perf_counter() - start
    return x, 0.0, model, total  # every diffusers sampler here denoises to sigma = 0 (t = 0)


def _run_genmath(method, path, oracle, x1, nfe, grid):
    steps = nfe // 2 if method == "heun" else nfe
    model = _TimedModel(oracle)
    start = time.perf_counter()
    result = sample_ode(
        model, x1, steps=steps, method=method, grid=grid, path=path, parameterization="eps"
    )
    total = time.perf_counter() - start
    return result.x, float(result.grid[-1]), model, total


def main(quick: bool = False) -> str:
    torch.set_default_dtype(torch.float64)
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore")
    from diffusers import DDIMScheduler, DPMSolverMultistepScheduler, EulerDiscreteScheduler

    dim, batch, repeats = 8, (1024 if quick else 4096), (3 if quick else 9)
    data, path = _data(dim), GaussianPath(VP())
    marginal = data.marginal(path)
    generator = torch.Generator().manual_seed(1)
    start_time = path.schedule.safe_interval[1]  # = 1, diffusers' timestep 999
    x1, _ = path.sample(data.sample(batch, generator=generator), start_time, generator=generator)
    betas = _diffusers_betas(path)

    def mine(method, grid):
        return lambda n: _run_genmath(method, path, marginal.eps, x1, n, grid)

    def theirs(cls, **config):
        return lambda n: _run_diffusers(cls, betas, marginal.eps, x1, n, **config)

    samplers = {
        "genmath ddim (uniform t)": mine("ddim", "uniform"),
        "genmath dpm++2m (uniform t)": mine("dpm++2m", "uniform"),
        "genmath dpm++2m (log-SNR grid)": mine("dpm++2m", "log_snr"),
        "genmath heun (Karras grid)": mine("heun", "karras"),
        "genmath euler (uniform t)": mine("euler", "uniform"),
        "diffusers DDIMScheduler": theirs(DDIMScheduler, set_alpha_to_one=True, clip_sample=False),
        "diffusers DPMSolverMultistepScheduler (2M++)": theirs(
            DPMSolverMultistepScheduler, algorithm_type="dpmsolver++", solver_order=2
        ),
        "diffusers EulerDiscreteScheduler": theirs(EulerDiscreteScheduler),
    }
    nfes = [6, 10, 20, 50] if quick else [6, 10, 20, 30, 50]
    rows = []
    for name, run in samplers.items():
        for nfe in nfes:
            x, t_end, model, _ = run(nfe)
            exact = data.flow_map(path, x1, start_time, torch.tensor(t_end))
            ode_error = float((x - exact).square().sum(1).mean().sqrt())
            # the exact end points of the same starts share the samples' Monte-Carlo noise
            w2 = _w2_gaussian(x.mean(0), torch.cov(x.T), exact.mean(0), torch.cov(exact.T))
            rows.append((name, nfe, model.calls, ode_error, w2))

    lines = [
        "# Samplers: genmath vs diffusers (exact ε oracle, 8-D Gaussian, VP)",
        "",
        f"Batch {batch}, float64 states, one CPU thread. ODE error: RMS distance to the exact "
        "probability-flow end point of the same start (each sampler against its own end time: "
        "diffusers denoises to t = 0, genmath stops at the bottom of the safe interval, "
        "sigma = 1e-3). W2: 2-Wasserstein distance between the Gaussian fits of the samples and "
        "of those exact end points.",
        "",
        "| sampler | NFE | ODE error | W2 |",
        "| --- | ---: | ---: | ---: |",
    ]
    for name, _nfe, calls, ode_error, w2 in rows:
        lines.append(f"| {name} | {calls} | {ode_error:.2e} | {w2:.3f} |")
    # Overhead: the same samplers with a model that returns a stored tensor (no model cost),
    # 50 steps, fastest of `repeats` runs (the machine is shared; timing noise is one-sided).
    constant = torch.randn(x1.shape, generator=generator)
    null_samplers = {
        "ddim": lambda: _run_genmath("ddim", path, lambda x, t: constant, x1, 50, "uniform"),
        "dpm++2m": lambda: _run_genmath("dpm++2m", path, lambda x, t: constant, x1, 50, "uniform"),
        "euler": lambda: _run_genmath("euler", path, lambda x, t: constant, x1, 50, "uniform"),
        "DDIMScheduler": lambda: _run_diffusers(
            DDIMScheduler,
            betas,
            lambda x, t: constant,
            x1,
            50,
            set_alpha_to_one=True,
            clip_sample=False,
        ),
        "DPMSolverMultistepScheduler": lambda: _run_diffusers(
            DPMSolverMultistepScheduler,
            betas,
            lambda x, t: constant,
            x1,
            50,
            algorithm_type="dpmsolver++",
            solver_order=2,
        ),
        "EulerDiscreteScheduler": lambda: _run_diffusers(
            EulerDiscreteScheduler, betas, lambda x, t: constant, x1, 50
        ),
    }
    per_call = {}
    for name, run in null_samplers.items():
        best = float("inf")
        for _ in range(repeats):
            _, _, model, total = run()
            best = min(best, (total - model.seconds) / model.calls)
        per_call[name] = best
    lines += [
        "",
        f"Per-step overhead (model returns a stored tensor; 50 steps; batch {batch}; fastest of "
        f"{repeats} runs):",
        "",
        "| genmath | µs / step | diffusers | µs / step | ratio genmath / diffusers |",
        "| --- | ---: | --- | ---: | ---: |",
    ]
    for mine_name, theirs_name in (
        ("ddim", "DDIMScheduler"),
        ("dpm++2m", "DPMSolverMultistepScheduler"),
        ("euler", "EulerDiscreteScheduler"),
    ):
        a, b = per_call[mine_name], per_call[theirs_name]
        lines.append(
            f"| {mine_name} | {a * 1e6:.0f} | {theirs_name} | {b * 1e6:.0f} | {a / b:.2f} |"
        )
    text = "\n".join(lines) + "\n"
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(text)
    return text


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    print(main(**vars(parser.parse_args())))
