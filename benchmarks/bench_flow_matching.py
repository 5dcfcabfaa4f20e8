"""Flow matching: genmath against torchcfm and Meta's flow_matching, same model, same data.

1. **Training step** (CFM loss + backward + Adam step) of one `genmath.nn.VelocityMLP` on a
   batch of 2-D Gaussian-mixture data: genmath's `cfm_loss` on the CondOT path,
   torchcfm's `ConditionalFlowMatcher(sigma=0)` and `ExactOptimalTransportConditionalFlowMatcher`
   against genmath's `coupling="ot"`, and flow_matching's `AffineProbPath(CondOTScheduler())`.
   Both anchors put data at t = 1, so the network is called at ``1 - t`` and their velocity
   is the negative of ours; the networks, data, noise and times are identical.
2. **Sampling**: Gaussian data $\\mathcal N(\\mu, \\Sigma)$ in 8 dimensions, whose exact
   marginal velocity and exact flow map come from `genmath.analytic`. The exact velocity is
   integrated from noise to data by `genmath.sample_ode` and by flow_matching's `ODESolver`
   (same methods, same NFE); the error is the mean distance to the exact flow map's image
   $\\Phi_{1\\to 0}(x_1)$. torchcfm has no sampler of its own (its examples use torchdyn).

Times are best-of-repeats CPU time of this thread (torch single-threaded), the libraries
interleaved; ratio = genmath / anchor (below 1: genmath faster).
`python benchmarks/bench_flow_matching.py [--quick]` writes benchmarks/results/flow_matching.md.
"""

from __future__ import annotations

import argparse
import pathlib
import platform
import time

import torch

from genmath.analytic import Gaussian, GaussianMixture
from genmath.core.dynamics import sample_ode
from genmath.core.path import GaussianPath
from genmath.families import flow_matching as fm
from genmath.nn import VelocityMLP
from genmath.schedules import CondOT

RESULTS = pathlib.Path(__file__).parent / "results" / "flow_matching.md"


def _best_times(fns: dict, repeats: int, number: int) -> dict:
    for fn in fns.values():
        fn()  # warm-up
    best = dict.fromkeys(fns, float("inf"))
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.thread_time()
            for _ in range(number):
                fn()
            best[name] = min(best[name], (time.thread_time() - start) / number)
    return best


def _training_rows(quick: bool):
    from flow_matching.path import AffineProbPath
    from flow_matching.path.scheduler import CondOTScheduler
    from torchcfm.conditional_flow_matching import (
        ConditionalFlowMatcher,
        ExactOptimalTransportConditionalFlowMatcher,
    )

    generator = torch.Generator().manual_seed(0)
    mixture = GaussianMixture(
        torch.tensor([0.5, 0.5]),
        torch.tensor([[-2.0, 0.0], [2.0, 1.0]]),
        torch.tensor([[[0.3, 0.1], [0.1, 0.2]], [[0.2, 0.0], [0.0, 0.4]]]),
    )
    batch = 256
    x0 = mixture.sample(batch, generator)
    noise = torch.randn(batch, 2, generator=generator)
    t = torch.rand(batch, generator=generator)
    path = GaussianPath(CondOT())
    model = VelocityMLP(2, hidden=128, depth=2, activation="silu")
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    cfm = ConditionalFlowMatcher(sigma=0.0)
    ot_cfm = ExactOptimalTransportConditionalFlowMatcher(sigma=0.0)
    meta_path = AffineProbPath(scheduler=CondOTScheduler())

    def step(loss):
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    def ours():
        step(fm.cfm_loss(model, x0, path, t=t, noise=noise))

    def ours_ot():
        step(fm.cfm_loss(model, x0, path, t=t, noise=noise, coupling="ot"))

    def torchcfm_step(matcher):
        # torchcfm: x0 = source (noise), x1 = data, t = 1 is data
        _, xt, ut = matcher.sample_location_and_conditional_flow(noise, x0, 1 - t)
        step((model(xt, t) + ut).pow(2).sum(1).mean())

    def meta():
        sample = meta_path.sample(x_0=noise, x_1=x0, t=1 - t)
        step((model(sample.x_t, t) + sample.dx_t).pow(2).sum(1).mean())

    # the losses agree (same x_t, same target up to the time flip)
    with torch.no_grad():
        a = fm.cfm_loss(model, x0, path, t=t, noise=noise)
        sample = meta_path.sample(x_0=noise, x_1=x0, t=1 - t)
        b = (model(sample.x_t, t) + sample.dx_t).pow(2).sum(1).mean()
    repeats, number = (3, 5) if quick else (7, 20)
    times = _best_times(
        {
            "genmath": ours,
            "torchcfm": lambda: torchcfm_step(cfm),
            "flow_matching": meta,
            "genmath (OT)": ours_ot,
            "torchcfm (OT)": lambda: torchcfm_step(ot_cfm),
        },
        repeats,
        number,
    )
    rows = [
        ("CFM step vs torchcfm", times["genmath"], times["torchcfm"]),
        ("CFM step vs flow_matching", times["genmath"], times["flow_matching"]),
        ("OT-CFM step vs torchcfm (exact OT)", times["genmath (OT)"], times["torchcfm (OT)"]),
    ]
    return rows, float((a - b).abs())


def _sampling_rows(quick: bool):
    from flow_matching.solver import ODESolver
    from flow_matching.utils import ModelWrapper

    generator = torch.Generator().manual_seed(1)
    dim = 8
    factor = torch.randn(dim, dim, generator=generator) / dim**0.5
    data = Gaussian(
        torch.randn(dim, generator=generator), factor @ factor.T + 0.05 * torch.eye(dim)
    )
    path = GaussianPath(CondOT())
    marginal = data.marginal(path)
    x1 = torch.randn(2048 if quick else 8192, dim, generator=generator)
    exact = data.flow_map(path, x1, 1.0, 0.0)

    class Flipped(ModelWrapper):
        """flow_matching's convention: data at t = 1, velocity negated."""

        def __init__(self):
            super().__init__(torch.nn.Identity())
            self.nfe = 0

        def forward(self, x, t, **extras):
            self.nfe += 1
            return -marginal.velocity(x, 1 - t)

    rows = []
    repeats = 2 if quick else 5
    for method, meta_method in (("euler", "euler"), ("midpoint", "midpoint")):
        for steps in (1, 2, 4, 8, 16, 32) if not quick else (2, 8, 32):
            flipped = Flipped()
            solver = ODESolver(velocity_model=flipped)

            def ours(steps=steps, method=method):
                return sample_ode(marginal.velocity, x1, steps=steps, method=method)

            def theirs(steps=steps, solver=solver, meta_method=meta_method):
                grid = torch.linspace(0.0, 1.0, steps + 1, dtype=x1.dtype)
                return solver.sample(x_init=x1, step_size=None, method=meta_method, time_grid=grid)

            result = ours()
            flipped.nfe = 0
            x_meta = theirs()
            times = _best_times({"ours": ours, "theirs": theirs}, repeats, 1)
            rows.append(
                (
                    method,
                    result.nfe,
                    float((result.x - exact).norm(dim=1).mean()),
                    float((x_meta - exact).norm(dim=1).mean()),
                    times["ours"],
                    times["theirs"],
                )
            )
    return rows


def main(quick: bool = False) -> str:
    torch.set_default_dtype(torch.float64)
    torch.set_num_threads(1)
    training, agreement = _training_rows(quick)
    sampling = _sampling_rows(quick)
    lines = [
        "# Flow matching: genmath vs torchcfm and flow_matching",
        "",
        f"Generated by `benchmarks/bench_flow_matching.py{' --quick' if quick else ''}` "
        f"({platform.machine()}, torch {torch.__version__}, float64, one thread). "
        "Times: best-of-repeats CPU time; ratio = genmath / anchor (below 1: genmath faster).",
        "",
        "## Training step (loss + backward + Adam), batch 256, VelocityMLP(2, 128, depth 2)",
        "",
        "| comparison | genmath (ms) | anchor (ms) | ratio |",
        "| --- | ---: | ---: | ---: |",
    ]
    for name, ours, theirs in training:
        lines.append(f"| {name} | {1e3 * ours:.3f} | {1e3 * theirs:.3f} | {ours / theirs:.2f} |")
    lines += [
        "",
        f"Loss agreement genmath vs flow_matching on the same batch: |difference| = {agreement:.1e}.",
        "",
        "## Sampling with the exact velocity of 8-D Gaussian data, error vs the exact flow map",
        "",
        "| method | NFE | genmath error | flow_matching error | genmath (ms) | flow_matching (ms) | ratio |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for method, nfe, err_ours, err_meta, t_ours, t_meta in sampling:
        lines.append(
            f"| {method} | {nfe} | {err_ours:.2e} | {err_meta:.2e} | {1e3 * t_ours:.2f} | "
            f"{1e3 * t_meta:.2f} | {t_ours / t_meta:.2f} |"
        )
    text = "\n".join(lines) + "\n"
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(text)
    return text


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    print(main(parser.parse_args().quick))
