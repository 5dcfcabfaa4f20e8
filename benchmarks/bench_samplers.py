"""Deterministic samplers at equal NFE: genmath against diffusers and k-diffusion, all fed the
exact denoiser of a Gaussian mixture, all ending at the same noise level.

Data: a three-component 2-D Gaussian mixture (unequal weights, full covariances); path:
genmath's VP(0.1, 20). Every sampler integrates the probability-flow ODE from the top of the
safe interval ($t = 1$) to its bottom $t_\\mathrm{lo}$ ($\\sigma = 10^{-3}$), from the same
draws of the exact $p_1$, and is scored by the RMS distance of its end points to the exact
flow map of the same starts, computed by an adaptive ODE solve of the exact velocity at
rtol = atol = 1e-11 (its own error, estimated against rtol = 1e-10, is stated).

Like for like:

* **diffusers** gets a 1000-entry table spanning exactly genmath's safe interval, so its
  smallest noise level is genmath's ($\\sigma = 10^{-3}$: `set_alpha_to_one=False` for DDIM,
  `final_sigmas_type="sigma_min"` for the multistep schedulers), and the model is evaluated at
  the very $\\sigma$ the scheduler steps with (`scheduler.sigmas[step_index]`, so rounded
  timesteps cost it nothing). DDIM (diffusers' Euler in $\\sigma$ is the same step),
  DPMSolverMultistep 2M/3M (Karras, uniform-$\\lambda$ `use_lu_lambdas`, and default spacing),
  UniPC order 2 and 3 (default and Karras).
* **k-diffusion**'s samplers (its `sampling.py`, loaded without torchvision) run on
  $\\sigma$-grids from $\\sigma_\\mathrm{max}$ down to the same $\\sigma_\\mathrm{min}$ (no
  appended zero): Karras $\\rho = 7$ and exponential (uniform $\\lambda$). Euler, Heun,
  DPM-Solver-2, LMS, DPM++(2M), DPM++(2S) and DPM++(3M) (`sample_dpmpp_3m_sde`, $\\eta = 0$);
  two-evaluation methods get half the steps.
* **genmath**: `sample_ode` with `ddim`, `dpm++2m`, `dpm++3m`, `unipc`, `heun` on each grid:
  uniform in t, log-SNR, Karras, and `snr_focused_grid` with its default centre (log-SNR 0)
  and centred on the data's own scale (log-SNR $-2\\log\bar s$, $\bar s$ the mixture
  components' mean standard deviation: a statistic of the data, like EDM's
  $\\sigma_\\mathrm{data}$, not a tuned constant).

The headline compares, at each NFE, genmath's best against the best of all anchors.
`python benchmarks/bench_samplers.py [--quick] [--update]`.
"""

from __future__ import annotations

import math
import sys
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
import _harness  # noqa: E402

from genmath.analytic import GaussianMixture  # noqa: E402
from genmath.core.dynamics import sample_ode  # noqa: E402
from genmath.core.grids import snr_focused_grid  # noqa: E402
from genmath.core.path import GaussianPath  # noqa: E402
from genmath.schedules import VP  # noqa: E402

TABLE = 1000


def _mixture() -> GaussianMixture:
    return GaussianMixture(
        torch.tensor([0.5, 0.3, 0.2]),
        torch.tensor([[-2.0, 0.5], [1.5, 1.5], [1.0, -2.0]]),
        torch.tensor(
            [
                [[0.30, 0.10], [0.10, 0.20]],
                [[0.20, -0.05], [-0.05, 0.40]],
                [[0.15, 0.0], [0.0, 0.10]],
            ]
        ),
    )


class _Setting:
    """The path, the exact oracle in each library's variables, and the reference end points."""

    def __init__(self, batch: int):
        self.path = GaussianPath(VP())
        self.schedule = self.path.schedule
        self.lo, self.hi = self.schedule.safe_interval
        data = _mixture()
        # the finest scale the sampler must resolve: the components' mean standard deviation
        component_std = torch.linalg.eigvalsh(data.covs).sqrt().mean()
        self.focus = float(-2 * torch.log(component_std))
        self.marginal = data.marginal(self.path)
        generator = torch.Generator().manual_seed(1)
        self.x1, _ = self.path.sample(data.sample(batch, generator=generator), self.hi, generator)
        self.reference = self._flow(1e-11)
        self.reference_error = _rms(self._flow(1e-10) - self.reference)
        # diffusers' table: times spanning the safe interval
        self.table_times = torch.linspace(self.lo, self.hi, TABLE, dtype=torch.float64)
        cumprod = self.path.alpha(self.table_times) ** 2
        previous = torch.cat([torch.ones(1, dtype=torch.float64), cumprod[:-1]])
        self.betas = (1 - cumprod / previous).numpy()
        self.s_min = float(self.noise_level(torch.tensor(self.lo)))
        self.s_max = float(self.noise_level(torch.tensor(self.hi)))

    def _flow(self, tol: float) -> torch.Tensor:
        result = sample_ode(
            self.marginal.velocity,
            self.x1,
            method="dopri5",
            rtol=tol,
            atol=tol,
            grid=torch.tensor([self.hi, self.lo], dtype=torch.float64),
            path=self.path,
        )
        return result.x

    def noise_level(self, t: torch.Tensor) -> torch.Tensor:
        """diffusers' and k-diffusion's sigma: sigma_t / alpha_t."""
        return self.path.sigma(t) / self.path.alpha(t)

    def time_of(self, s) -> torch.Tensor:
        """genmath's t of a noise level s = sigma/alpha (log-SNR -2 log s)."""
        s = torch.as_tensor(s, dtype=torch.float64)
        t = self.schedule.inverse_log_snr(-2 * torch.log(s))
        return t.clamp(self.lo, self.hi)


def _rms(diff: torch.Tensor) -> float:
    return float(diff.square().sum(1).mean().sqrt())


# ------------------------------------------------------------------------------- genmath
def _genmath(setting: _Setting, method: str, grid: str):
    def run(nfe: int):
        steps = nfe // 2 if method == "heun" else nfe
        times = grid
        if grid == "snr_focused (data scale)":
            times = snr_focused_grid(steps, setting.schedule, center=setting.focus)
        result = sample_ode(
            setting.marginal.denoise,
            setting.x1,
            steps=steps,
            method=method,
            grid=times,
            path=setting.path,
            parameterization="x0",
        )
        return result.x, result.nfe

    return run


# ------------------------------------------------------------------------------- diffusers
def _diffusers(setting: _Setting, cls_name: str, **config):
    import diffusers

    cls = getattr(diffusers, cls_name)

    def run(nfe: int):
        scheduler = cls(
            num_train_timesteps=TABLE,
            trained_betas=setting.betas,
            timestep_spacing="trailing",
            **config,
        )
        scheduler.set_timesteps(nfe)
        x, calls = setting.x1.clone(), 0
        sigmas = getattr(scheduler, "sigmas", None)
        for timestep in scheduler.timesteps:
            if sigmas is not None and cls_name != "DDIMScheduler":
                index = scheduler.step_index if scheduler.step_index is not None else 0
                t = setting.time_of(sigmas[index])
            else:  # DDIM steps between table entries: its time is the table's
                t = setting.table_times[int(timestep)]
            eps = setting.marginal.eps(x, t)
            calls += 1
            x = _step(scheduler, eps, timestep, x)
        return x, calls

    return run


def _step(scheduler, model_output, timestep, x):
    # UniPC builds part of its linear system with the default dtype and part with the
    # sample's: under a float64 default it fails to solve it; its step runs under float32's
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float32)
    try:
        return scheduler.step(model_output, timestep, x).prev_sample
    finally:
        torch.set_default_dtype(previous)


# ------------------------------------------------------------------------------- k-diffusion
def _k_diffusion(setting: _Setting, sampler: str, spacing: str, evaluations_per_step: int):
    sampling = _harness.k_diffusion_sampling()

    def run(nfe: int):
        steps = max(nfe // evaluations_per_step, 1)
        if spacing == "karras":  # k-diffusion's own grid, without its appended zero
            sigmas = sampling.get_sigmas_karras(steps + 1, setting.s_min, setting.s_max)[:-1]
        else:
            sigmas = sampling.get_sigmas_exponential(steps + 1, setting.s_min, setting.s_max)[:-1]
        sigmas = sigmas.to(torch.float64)
        calls = 0

        def denoiser(x_ve, sigma, **_):
            nonlocal calls
            calls += 1
            t = setting.time_of(sigma.reshape(-1)[0])
            return setting.marginal.denoise(x_ve * setting.path.alpha(t), t)

        x_ve = setting.x1 * math.sqrt(1 + setting.s_max**2)
        options = {"disable": True}
        if sampler in ("sample_dpmpp_3m_sde", "sample_dpmpp_2s_ancestral"):
            options.update(eta=0.0, noise_sampler=lambda *_: torch.zeros_like(x_ve))
        out = getattr(sampling, sampler)(denoiser, x_ve, sigmas, **options)
        return out / math.sqrt(1 + setting.s_min**2), calls

    return run


def _contenders(setting: _Setting):
    genmath = {
        f"genmath {method} ({grid})": _genmath(setting, method, grid)
        for method in ("ddim", "dpm++2m", "dpm++3m", "unipc")
        for grid in ("log_snr", "karras", "uniform", "snr_focused", "snr_focused (data scale)")
    }
    genmath["genmath heun (karras)"] = _genmath(setting, "heun", "karras")
    minimum = {"final_sigmas_type": "sigma_min"}
    diffusers = {
        "diffusers DDIM": _diffusers(
            setting, "DDIMScheduler", set_alpha_to_one=False, clip_sample=False
        ),
    }
    for order in (2, 3):
        for label, extra in (
            ("", {}),
            (", Karras", {"use_karras_sigmas": True}),
            (", lu_lambdas", {"use_lu_lambdas": True}),
        ):
            diffusers[f"diffusers DPMSolverMultistep {order}M{label}"] = _diffusers(
                setting,
                "DPMSolverMultistepScheduler",
                algorithm_type="dpmsolver++",
                solver_order=order,
                **minimum,
                **extra,
            )
        for label, extra in (("", {}), (", Karras", {"use_karras_sigmas": True})):
            diffusers[f"diffusers UniPC order {order}{label}"] = _diffusers(
                setting, "UniPCMultistepScheduler", solver_order=order, **minimum, **extra
            )
    k_diffusion = {}
    for sampler, per_step in (
        ("sample_euler", 1),
        ("sample_heun", 2),
        ("sample_dpm_2", 2),
        ("sample_lms", 1),
        ("sample_dpmpp_2m", 1),
        ("sample_dpmpp_2s_ancestral", 2),
        ("sample_dpmpp_3m_sde", 1),
    ):
        for spacing in ("karras", "exponential"):
            name = f"k-diffusion {sampler.removeprefix('sample_')} ({spacing})"
            k_diffusion[name] = _k_diffusion(setting, sampler, spacing, per_step)
    return genmath, {**diffusers, **k_diffusion}


def _overhead_rows(setting: _Setting, rounds: int):
    """Sampler cost beyond the model: a model returning a stored tensor, 20 steps, genmath
    and its diffusers counterpart alternated (thread CPU time)."""
    import diffusers

    stored = setting.marginal.eps(setting.x1, torch.tensor(0.5, dtype=torch.float64))
    x1, path = setting.x1, setting.path

    def ours(method):
        return lambda: sample_ode(
            lambda x, t: stored, x1, steps=20, method=method, path=path, parameterization="eps"
        )

    def theirs(cls_name, **config):
        cls = getattr(diffusers, cls_name)

        def run():
            scheduler = cls(
                num_train_timesteps=TABLE,
                trained_betas=setting.betas,
                timestep_spacing="trailing",
                **config,
            )
            scheduler.set_timesteps(20)
            x = x1
            for timestep in scheduler.timesteps:
                x = _step(scheduler, stored, timestep, x)
            return x

        return run

    pairs = [
        ("ddim", "DDIMScheduler", {"set_alpha_to_one": False, "clip_sample": False}),
        ("dpm++2m", "DPMSolverMultistepScheduler", {"solver_order": 2}),
        ("dpm++3m", "DPMSolverMultistepScheduler", {"solver_order": 3}),
        ("unipc", "UniPCMultistepScheduler", {"solver_order": 2}),
    ]
    rows = []
    for method, cls_name, config in pairs:
        timings = _harness.compare(
            {"genmath": ours(method), "diffusers": theirs(cls_name, **config)}, rounds=rounds
        )
        rows.append(
            [
                f"`{method}` vs {cls_name}",
                f"{timings.median('genmath') * 1e3:.2f}",
                f"{timings.median('diffusers') * 1e3:.2f}",
                str(timings.ratio("genmath", "diffusers")),
            ]
        )
    return rows


def main() -> None:
    args = _harness.parser(__doc__.splitlines()[0]).parse_args()
    env = _harness.setup(torch.float64)
    warnings.filterwarnings("ignore")
    setting = _Setting(256 if args.quick else 1024)
    nfes = [10, 20] if args.quick else [5, 10, 20, 50, 100]
    genmath, anchors = _contenders(setting)
    errors: dict[str, dict[int, tuple[float, int]]] = {}
    for name, run in {**genmath, **anchors}.items():
        errors[name] = {}
        for nfe in nfes:
            try:
                x, calls = run(nfe)
                errors[name][nfe] = (_rms(x - setting.reference), calls)
            except Exception as exc:  # an anchor that cannot run a configuration: say so
                errors[name][nfe] = (float("nan"), 0)
                print(f"{name} at NFE {nfe}: {type(exc).__name__}: {exc}", file=sys.stderr)
        print(name, {n: f"{e:.2e}/{c}" for n, (e, c) in errors[name].items()}, file=sys.stderr)

    def best(names, nfe):
        finite = [(errors[n][nfe][0], n) for n in names if math.isfinite(errors[n][nfe][0])]
        return min(finite)

    lines = [
        "# Samplers: genmath vs diffusers and k-diffusion (exact mixture denoiser, VP)",
        "",
        _harness.describe(env),
        "",
        f"Batch {setting.x1.shape[0]}, float64, a three-component 2-D Gaussian mixture on VP(0.1, 20); "
        f"every sampler runs from t = 1 (noise level σ/α = {setting.s_max:.1f}) to the bottom "
        f"of genmath's safe interval (σ/α = {setting.s_min:.2e}) and is scored by the RMS "
        "distance of its end points to the exact flow map of the same starts (adaptive solve "
        "of the exact velocity at rtol = atol = 1e-11; its own error against 1e-10: "
        f"{setting.reference_error:.1e}). Two-evaluation methods take NFE/2 steps.",
        "",
        "## Headline: best genmath sampler against the best anchor at each NFE",
        "",
    ]
    rows = []
    for nfe in nfes:
        ours_err, ours_name = best(genmath, nfe)
        theirs_err, theirs_name = best(anchors, nfe)
        rows.append(
            [
                str(nfe),
                f"{ours_err:.2e} ({ours_name.removeprefix('genmath ')})",
                f"{theirs_err:.2e} ({theirs_name})",
                f"{ours_err / theirs_err:.3f}",
            ]
        )
    lines += ["<!-- --8<-- [start:headline] -->"]
    lines += _harness.table(
        ["NFE", "genmath best error", "best anchor error", "ratio"], rows, "rllr"
    )
    lines += ["<!-- --8<-- [end:headline] -->"]
    lines += [
        "",
        "## Every sampler (RMS error against the exact flow map; evaluations in brackets "
        "where they differ from the NFE column)",
        "",
    ]
    header = ["sampler", *[f"NFE {n}" for n in nfes]]
    if len(nfes) >= 2:
        header.append(f"order ({nfes[-2]}→{nfes[-1]})")
    rows = []
    for name in errors:
        cells = [name]
        for nfe in nfes:
            err, calls = errors[name][nfe]
            cells.append(f"{err:.2e}" + ("" if calls == nfe else f" [{calls}]"))
        if len(nfes) >= 2:
            (e1, c1), (e2, c2) = errors[name][nfes[-2]], errors[name][nfes[-1]]
            order = math.log(e1 / e2) / math.log(c2 / c1) if e1 > 0 and e2 > 0 and c2 > c1 else float("nan")
            cells.append(f"{order:.2f}")
        rows.append(cells)
    lines += _harness.table(header, rows, "l" + "r" * (len(header) - 1))
    lines += [
        "",
        "Orders are the slopes between the last two NFE (`log(e1/e2)/log(n2/n1)`). diffusers' "
        "and k-diffusion's DPM-Solver++(3M) weight the quadratic term by half of what the "
        "quadratic interpolant needs (derivation D-dpm-solver-pp-3m-exact-weights), which "
        "shows as an order near 2; genmath's `dpm++3m` uses the exact weights.",
        "",
        "## Sampler cost beyond the model (20 steps, a model returning a stored tensor)",
        "",
    ]
    lines += _harness.table(
        ["pair", "genmath (ms)", "diffusers (ms)", "ratio"],
        _overhead_rows(setting, 5 if args.quick else 15),
        "lrrr",
    )
    _harness.write("samplers", "\n".join(lines), args.update)


if __name__ == "__main__":
    main()
