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

Times come from the harness (`_harness.py`: thread CPU time, warm allocator, contenders
alternated in interleaved rounds, median ratio with its interquartile range).
`python benchmarks/bench_flow_matching.py [--quick] [--update]`.
"""

from __future__ import annotations

import pathlib
import sys

import torch

sys.path.insert(0, str(pathlib.Path(__file__).parent))
import _harness  # noqa: E402

from genmath.analytic import Gaussian, GaussianMixture  # noqa: E402
from genmath.core.dynamics import sample_ode  # noqa: E402
from genmath.core.path import GaussianPath  # noqa: E402
from genmath.families import flow_matching as fm  # noqa: E402
from genmath.nn import VelocityMLP  # noqa: E402
from genmath.schedules import CondOT  # noqa: E402


def _training_rows(quick: bool, batch: int = 256, with_cfm: bool = True):
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

    def ours_ot_scipy():
        paired = noise.index_select(0, fm.ot_coupling(x0, noise, backend="scipy"))
        step(fm.cfm_loss(model, x0, path, t=t, noise=paired))

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
    rounds = 5 if quick else 21
    rows = []
    if with_cfm:
        timings = _harness.compare(
            {"genmath": ours, "torchcfm": lambda: torchcfm_step(cfm), "flow_matching": meta},
            rounds=rounds,
        )
        rows += [
            (f"CFM step vs torchcfm, batch {batch}", timings, "genmath", "torchcfm"),
            (f"CFM step vs flow_matching, batch {batch}", timings, "genmath", "flow_matching"),
        ]
    timings = _harness.compare(
        {
            "genmath (OT)": ours_ot,
            "genmath (OT, scipy)": ours_ot_scipy,
            "torchcfm (OT)": lambda: torchcfm_step(ot_cfm),
        },
        rounds=max(5, rounds // 2),
    )
    backend = "POT" if batch >= fm._POT_FROM else "scipy"
    rows += [
        (
            f"OT-CFM step vs torchcfm, batch {batch} (genmath default: {backend})",
            timings,
            "genmath (OT)",
            "torchcfm (OT)",
        ),
        (
            f"OT-CFM step vs torchcfm, batch {batch} (genmath forced to scipy)",
            timings,
            "genmath (OT, scipy)",
            "torchcfm (OT)",
        ),
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
    rounds = 3 if quick else 9
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
            timings = _harness.compare({"ours": ours, "theirs": theirs}, rounds=rounds)
            rows.append(
                (
                    method,
                    result.nfe,
                    float((result.x - exact).norm(dim=1).mean()),
                    float((x_meta - exact).norm(dim=1).mean()),
                    timings,
                )
            )
    return rows


def main() -> None:
    args = _harness.parser(__doc__.splitlines()[0]).parse_args()
    env = _harness.setup(torch.float64)
    training, agreement = _training_rows(args.quick)
    ot_rows, _ = _training_rows(args.quick, batch=512, with_cfm=False)
    training += ot_rows
    sampling = _sampling_rows(args.quick)
    lines = [
        "# Flow matching: genmath vs torchcfm and flow_matching",
        "",
        _harness.describe(env),
        "",
        "## Training step (loss + backward + Adam), VelocityMLP(2, 128, depth 2), float64",
        "",
        "OT-CFM: genmath's `coupling=\"ot\"` (exact assignment: scipy below batch 192, POT's "
        "network simplex from there on, the same plan) against torchcfm's "
        "`ExactOptimalTransportConditionalFlowMatcher` (POT's `emd`, then pairs drawn from the "
        "plan).",
        "",
    ]
    body = [
        [
            name,
            f"{timings.median(ours) * 1e3:.3f}",
            f"{timings.median(theirs) * 1e3:.3f}",
            str(timings.ratio(ours, theirs)),
        ]
        for name, timings, ours, theirs in training
    ]
    lines += ["<!-- --8<-- [start:training] -->"]
    lines += _harness.table(["comparison", "genmath (ms)", "anchor (ms)", "ratio [IQR]"], body, "lrrr")
    lines += ["<!-- --8<-- [end:training] -->"]
    lines += [
        "",
        f"Loss agreement genmath vs flow_matching on the same batch: |difference| = {agreement:.1e}.",
        "",
        "## Sampling with the exact velocity of 8-D Gaussian data, error vs the exact flow map",
        "",
    ]
    body = [
        [
            method,
            str(nfe),
            f"{err_ours:.2e}",
            f"{err_meta:.2e}",
            f"{timings.median('ours') * 1e3:.2f}",
            f"{timings.median('theirs') * 1e3:.2f}",
            str(timings.ratio("ours", "theirs")),
        ]
        for method, nfe, err_ours, err_meta, timings in sampling
    ]
    lines += _harness.table(
        [
            "method",
            "NFE",
            "genmath error",
            "flow_matching error",
            "genmath (ms)",
            "flow_matching (ms)",
            "ratio [IQR]",
        ],
        body,
        "lrrrrrr",
    )
    _harness.write("flow_matching", "\n".join(lines), args.update)


if __name__ == "__main__":
    main()
