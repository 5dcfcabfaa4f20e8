"""The conformance table: other libraries' samplers against the exact flow map of a 2-D mixture.

Runs `genmath.testing`'s checks on diffusers' schedulers, k-diffusion's samplers and
flow_matching's ODE solver (and a few of genmath's own, for reference), each with the exact
denoiser of a three-component 2-D Gaussian mixture, at about 5, 10, 20 and 50 model evaluations,
and writes ``benchmarks/results/conformance.json`` (every report) and
``benchmarks/results/conformance.md`` (the table the docs page "Conformance of other libraries"
includes). The docs build never runs it; rerun it with

    python benchmarks/conformance_table.py            # a few minutes on one core
    python benchmarks/conformance_table.py --quick    # 2 NFE targets, fewer samples (smoke run)

after ``make dev`` (which installs the conformance extra: diffusers, k-diffusion's samplers,
flow_matching).
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import time
from importlib.metadata import version
from pathlib import Path

import torch

from genmath import testing

RESULTS = Path(__file__).resolve().parent / "results"
NFE_TARGETS = (5, 10, 20, 50, 100, 200)


def _samplers():
    """(name, library, factory(steps-per-NFE aware) , evaluations per step, method order)."""
    import diffusers as d

    def ds(cls, **config):
        return lambda: testing.diffusers_sampler(cls(**config))

    deterministic = [
        # name, library, make sampler, model calls per step (for choosing steps), method order
        ("DDIM (clip_sample=False)", "diffusers", ds(d.DDIMScheduler, clip_sample=False), 1, 1),
        ("Euler", "diffusers", ds(d.EulerDiscreteScheduler), 1, 1),
        ("Heun", "diffusers", ds(d.HeunDiscreteScheduler), 2, 2),
        ("DPM-Solver++(2M)", "diffusers", ds(d.DPMSolverMultistepScheduler), 1, 2),
        (
            "DPM-Solver++(2M), lower_order_final=False",
            "diffusers",
            ds(d.DPMSolverMultistepScheduler, lower_order_final=False),
            1,
            2,
        ),
        (
            "DPM-Solver++(2M), euler_at_final=True",
            "diffusers",
            ds(d.DPMSolverMultistepScheduler, euler_at_final=True),
            1,
            2,
        ),
        (
            "DPM-Solver++(2M), lower_order_final=False, final_sigmas_type='sigma_min'",
            "diffusers",
            ds(d.DPMSolverMultistepScheduler, lower_order_final=False, final_sigmas_type="sigma_min"),
            1,
            2,
        ),
        (
            "DPM-Solver++(2M), final_sigmas_type='sigma_min'",
            "diffusers",
            ds(d.DPMSolverMultistepScheduler, final_sigmas_type="sigma_min"),
            1,
            2,
        ),
        (
            "DPM-Solver++(2M), Karras sigmas",
            "diffusers",
            ds(d.DPMSolverMultistepScheduler, use_karras_sigmas=True),
            1,
            2,
        ),
        ("UniPC (bh2, order 2)", "diffusers", ds(d.UniPCMultistepScheduler), 1, 3),
        ("FlowMatchEuler", "diffusers", ds(d.FlowMatchEulerDiscreteScheduler), 1, 1),
        ("Euler (Karras sigmas)", "k-diffusion", lambda: testing.k_diffusion_sampler("euler"), 1, 1),
        ("Heun (Karras sigmas)", "k-diffusion", lambda: testing.k_diffusion_sampler("heun"), 2, 2),
        ("DPM++(2M) (Karras sigmas)", "k-diffusion", lambda: testing.k_diffusion_sampler("dpmpp_2m"), 1, 2),
        ("ODESolver euler", "flow_matching", lambda: testing.flow_matching_sampler("euler"), 1, 1),
        ("ODESolver midpoint", "flow_matching", lambda: testing.flow_matching_sampler("midpoint"), 2, 2),
        ("sample_ode heun", "genmath", lambda: testing.genmath_sampler("heun"), 2, 2),
        ("sample_ode dpm++2m (log-SNR grid)", "genmath", lambda: testing.genmath_sampler("dpm++2m", grid="log_snr"), 1, 2),
    ]
    stochastic = [
        ("Euler ancestral", "diffusers", ds(d.EulerAncestralDiscreteScheduler), 1),
        ("DPM++(2S) ancestral (Karras sigmas)", "k-diffusion", lambda: testing.k_diffusion_sampler("dpmpp_2s_ancestral"), 2),
        ("ReverseSDE Euler-Maruyama", "genmath", lambda: testing.genmath_sampler(noise=1.0), 1),
    ]
    return deterministic, stochastic


def _steps_for(target: int, per_step: int) -> int:
    return max(1, round((target + per_step - 1) / per_step))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: 2 NFE targets, fewer samples")
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for conformance.json/.md")
    args = parser.parse_args()
    torch.set_num_threads(1)
    # The oracle and the states are float64; torch's default dtype stays float32, as in a user's
    # session (diffusers' UniPC fails under a float64 default: its linalg.solve mixes dtypes).
    targets = NFE_TARGETS[:2] if args.quick else NFE_TARGETS
    n = 64 if args.quick else 512
    n_law = 1000 if args.quick else 25000
    oracle = testing.mixture_2d()
    deterministic, stochastic = _samplers()
    started = time.thread_time()
    records = []
    for name, library, make, per_step, method_order in deterministic:
        steps = tuple(dict.fromkeys(_steps_for(t, per_step) for t in targets))
        report = testing.check_sampler(
            make(), oracle, steps=steps, n=n, expected_order=method_order,
            generator=torch.Generator().manual_seed(0),
        )
        records.append({"name": name, "library": library, "kind": "deterministic", "method_order": method_order, "report": report.as_dict()})
        print(report, "\n", flush=True)
    for name, library, make, per_step in stochastic:
        steps = tuple(dict.fromkeys(_steps_for(t, per_step) for t in (*targets[:4], 500)))
        report = testing.check_stochastic_sampler(
            make(), oracle, steps=steps, n=n_law, precision=0.05, log_density_precision=0.05,
            generator=torch.Generator().manual_seed(0),
        )
        records.append({"name": name, "library": library, "kind": "stochastic", "report": report.as_dict()})
        print(report, "\n", flush=True)
    seconds = time.thread_time() - started
    meta = {
        "oracle": repr(oracle),
        "mixture": {
            "weights": oracle.data.weights.tolist(),
            "means": oracle.data.means.tolist(),
            "covs": oracle.data.covs.tolist(),
        },
        "reference": f"exact velocity integrated by dopri5 at rtol = atol = {oracle.rtol:g} (float64)",
        "samples": {"deterministic": n, "stochastic": n_law},
        "versions": {pkg: version(pkg) for pkg in ("torch", "diffusers", "k-diffusion", "flow-matching", "genmath")},
        "python": platform.python_version(),
        "thread_cpu_seconds": round(seconds, 1),
        "quick": args.quick,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "conformance.json").write_text(json.dumps({"meta": meta, "records": records}, indent=1) + "\n")
    (args.out / "conformance.md").write_text(_markdown(meta, records, targets))
    print(f"wrote {args.out / 'conformance.md'} ({seconds:.0f} s of CPU)")


def _fmt(value, digits=2) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}e}" if abs(value) < 1e-2 or abs(value) >= 1e3 else f"{value:.{digits + 1}g}"
    return str(value)


def _markdown(meta: dict, records: list[dict], targets) -> str:
    v = meta["versions"]
    lines = [
        "## Deterministic samplers: error against the exact flow map",
        "",
        f"RMS over {meta['samples']['deterministic']} start points of the per-sample error "
        "$\\lVert \\hat x - X(x)\\rVert$ at the sampler's own end level, in the coordinates of "
        "the oracle's CondOT path; NFE in brackets where a method's step count cannot hit the "
        "target. *Order*: least-squares slope of $-\\log e$ against $\\log \\mathrm{NFE}$ over "
        "the row; *last*: the local order between its two largest NFEs; *method*: the order the "
        "method has in theory. Versions: "
        + ", ".join(f"{k} {val}" for k, val in v.items())
        + f"; Python {meta['python']}; float64; reference: {meta['reference']}.",
        "",
        "| library | sampler | " + " | ".join(f"NFE ≈ {t}" for t in targets) + " | order | last | method | start t | end t |",
        "| --- | --- | " + " | ".join("---:" for _ in targets) + " | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in records:
        if r["kind"] != "deterministic":
            continue
        rows, summary = r["report"]["rows"], r["report"]["summary"]
        cells = []
        for target, row in zip(targets, rows, strict=False):
            text = _fmt(row["rms_error"])
            cells.append(text if row["nfe"] == target else f"{text} ({row['nfe']})")
        cells += ["–"] * (len(targets) - len(cells))
        lines.append(
            f"| {r['library']} | {r['name']} | " + " | ".join(cells)
            + f" | {_fmt(summary.get('order'))} | {_fmt(summary.get('finest_local_order'))} | {r['method_order']} "
            f"| {rows[0]['t_start']:.4g} | {rows[0]['t_end']:.4g} |"
        )
    lines += [
        "",
        "## Stochastic samplers: the law of their samples",
        "",
        f"{meta['samples']['stochastic']} samples per row, started from the exact marginal at the "
        "sampler's first level. *Moment bias*: the largest standardised first or second moment "
        "bias ($y = L^{-1}(x - \\mu)$ under the exact end law; 0 is exact), with its z-score; "
        "*log-density bias*: $\\mathbb E \\log p(\\hat x) - \\mathbb E \\log p(x)$ in nats, against "
        "independent exact draws. A row conforms when no bias is significant (two-sided, one in a "
        "million, Bonferroni) and the test resolves 0.05 in both.",
        "",
        "| library | sampler | NFE | worst moment | moment bias (z) | log-density bias (z) | conforms |",
        "| --- | --- | ---: | --- | ---: | ---: | --- |",
    ]
    for r in records:
        if r["kind"] != "stochastic":
            continue
        for row in r["report"]["rows"]:
            lines.append(
                f"| {r['library']} | {r['name']} | {row['nfe']} | {row['worst_moment']} | "
                f"{row['moment_bias']:+.3f} ({row['moment_z']:.1f}) | "
                f"{row['log_density_bias']:+.3f} ({row['log_density_z']:.1f}) | "
                f"{'yes' if row['conforms'] else '**no**'} |"
            )
    lines += ["", f"*{meta['thread_cpu_seconds']} s of thread CPU time{' (quick run)' if meta['quick'] else ''}.*", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
