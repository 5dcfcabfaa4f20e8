"""Stochastic diffusion samplers: genmath vs diffusers, fed the same exact ε oracle.

Complements `bench_samplers.py` (deterministic ODE samplers) with the samplers of the
diffusion family: DDPM ancestral sampling (respaced), DDIM with η = 1, and EDM's
stochastic sampler with churn. Data: an 8-D Gaussian with a full covariance, so the exact
distribution at the end time is known (`genmath.analytic`). Path: VP(0.1, 20) observed at
t_i = i/1000, whose alphas_cumprod are fed to diffusers as `trained_betas` (its timestep
i is genmath's t = (i + 1)/1000). All samplers start from the same exact draws of p_1.

Error: W2 between the Gaussian fit of the samples and the exact data Gaussian (both sides
at their own end time: genmath's EDM stops at the bottom of the safe interval). Time: the
harness (`_harness.py`: thread CPU time, the genmath sampler and its diffusers counterpart
alternated in interleaved rounds, median ratio with its interquartile range), oracle
included.

`python benchmarks/bench_diffusion_samplers.py [--quick] [--update]`.
"""

from __future__ import annotations

import pathlib
import sys
import warnings

import numpy as np
import scipy.linalg
import torch

sys.path.insert(0, str(pathlib.Path(__file__).parent))
import _harness  # noqa: E402

from genmath.analytic import Gaussian  # noqa: E402
from genmath.core.path import GaussianPath  # noqa: E402
from genmath.families import diffusion  # noqa: E402
from genmath.schedules import VP  # noqa: E402

TRAIN_STEPS = 1000


def _data(dim: int) -> Gaussian:
    generator = torch.Generator().manual_seed(0)
    factor = torch.randn(dim, dim, generator=generator) / dim**0.5 + torch.eye(dim) * 0.5
    return Gaussian(torch.linspace(-2.0, 2.0, dim), factor @ factor.T)


def _w2_to(x: torch.Tensor, mean: torch.Tensor, cov: torch.Tensor) -> float:
    fit_mean, fit_cov = x.mean(0), torch.cov(x.T)
    root = scipy.linalg.sqrtm(cov.numpy())
    cross = scipy.linalg.sqrtm(root @ fit_cov.numpy() @ root).real
    value = float((fit_mean - mean).square().sum()) + float(
        np.trace(fit_cov.numpy() + cov.numpy() - 2 * cross)
    )
    return max(value, 0.0) ** 0.5


def _diffusers_loop(scheduler, oracle, x1, generator, **step_options):
    x = x1.clone()
    for timestep in scheduler.timesteps:
        t = torch.tensor((float(timestep) + 1) / TRAIN_STEPS, dtype=x1.dtype)
        eps = oracle(x, t)
        x = scheduler.step(eps, timestep, x, generator=generator, **step_options).prev_sample
    return x


def main(quick: bool = False, env: dict | None = None) -> str:
    warnings.filterwarnings("ignore")
    from diffusers import DDIMScheduler, DDPMScheduler

    dim, batch = 8, (2048 if quick else 8192)
    data, path = _data(dim), GaussianPath(VP())
    marginal = data.marginal(path)
    generator = torch.Generator().manual_seed(1)
    x1, _ = path.sample(data.sample(batch, generator=generator), 1.0, generator=generator)
    schedule = diffusion.DiscreteSchedule.from_path(path, TRAIN_STEPS)
    betas = schedule.betas.numpy()
    ddpm = diffusion.DDPM(marginal.eps, schedule, variance="beta_tilde")
    edm_path = GaussianPath(VP())
    config = dict(num_train_timesteps=TRAIN_STEPS, trained_betas=betas, clip_sample=False)

    def g_ddpm(n):
        return ddpm.respaced(n).sample(x1, generator=torch.Generator().manual_seed(2)).x

    def g_ddim(n):
        grid = schedule.respace(n).times.flip(0)
        return diffusion.ddim_sample(
            marginal.eps, x1, path, grid=grid, eta=1.0, generator=torch.Generator().manual_seed(2)
        ).x

    def g_edm(n):
        return diffusion.edm_sample(
            marginal.eps,
            x1,
            edm_path,
            steps=max(n // 2, 1),
            parameterization="eps",
            churn=0.5 * n,
            generator=torch.Generator().manual_seed(2),
        ).x

    def d_ddpm(n):
        scheduler = DDPMScheduler(
            **config, variance_type="fixed_small", timestep_spacing="trailing"
        )
        scheduler.set_timesteps(n)
        return _diffusers_loop(scheduler, marginal.eps, x1, torch.Generator().manual_seed(2))

    def d_ddim(n):
        scheduler = DDIMScheduler(**config, set_alpha_to_one=True, timestep_spacing="trailing")
        scheduler.set_timesteps(n)
        return _diffusers_loop(
            scheduler, marginal.eps, x1, torch.Generator().manual_seed(2), eta=1.0
        )

    samplers = {
        "genmath DDPM ancestral (respaced)": (g_ddpm, "diffusers DDPMScheduler"),
        "diffusers DDPMScheduler": (d_ddpm, None),
        "genmath ddim_sample eta=1": (g_ddim, "diffusers DDIMScheduler eta=1"),
        "diffusers DDIMScheduler eta=1": (d_ddim, None),
        "genmath edm_sample churn (Karras grid)": (g_edm, None),
    }
    nfes = [10, 50] if quick else [10, 20, 50, 100, 250]
    rounds = 3 if quick else 7
    rows, ratios = [], {}
    for name, (run, partner) in samplers.items():
        for nfe in nfes:
            x = run(nfe)
            rows.append((name, nfe, _w2_to(x, data.mean, data.cov)))
            if partner is not None:
                timings = _harness.compare(
                    {"genmath": lambda run=run, nfe=nfe: run(nfe),
                     "diffusers": lambda p=samplers[partner][0], nfe=nfe: p(nfe)},
                    rounds=rounds,
                    warmup=1,
                    number=1,
                )
                ratios[name, nfe] = timings.ratio("genmath", "diffusers")

    lines = [
        "# Stochastic diffusion samplers: genmath vs diffusers (exact ε oracle, 8-D Gaussian, VP)",
        "",
        _harness.describe(env) if env else "",
        "",
        f"Batch {batch}, float64, one CPU thread. W2: 2-Wasserstein distance between the Gaussian "
        "fit of the samples and the exact data distribution (the Monte-Carlo error of the fit "
        f"is of order d/√n ≈ {dim / batch**0.5:.2f}). Time ratio: genmath / diffusers for the "
        "matching sampler at the same NFE, oracle included. EDM uses 2 NFE per step (Heun).",
        "",
        "| sampler | NFE | W2 | time ratio [IQR] |",
        "| --- | ---: | ---: | ---: |",
    ]
    for name, nfe, w2 in rows:
        ratio = str(ratios[name, nfe]) if (name, nfe) in ratios else ""
        lines.append(f"| {name} | {nfe} | {w2:.3f} | {ratio} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    args = _harness.parser(__doc__.splitlines()[0]).parse_args()
    environment = _harness.setup(torch.float64)
    _harness.write("diffusion_samplers", main(args.quick, environment), args.update)
