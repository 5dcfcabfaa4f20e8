"""The flow families are what `bench_flows.py` measures: this checks it, and times what that
benchmark does not cover.

`benchmarks/bench_flows.py` (genmath vs zuko, MAF and RealNVP, d in {2, 16, 64}) builds its
genmath flows as `Compose` stacks of core layers. `genmath.families.flows.MAF` and
`RealNVP` build the very same stacks (same orderings / masks, same parameter shapes), so that
benchmark's ratios are the families' ratios; this script asserts the equivalence (same
parameter count, and identical outputs once the state dicts are shared) and measures the
overhead of the family wrapper (`FlowModel.log_prob` / `sample`) over the bare core `Flow`.
It also reports throughput of the families with no zuko counterpart in that benchmark
(residual flow, CNF), absolute and therefore only indicative on a shared machine.

    python benchmarks/bench_flow_families.py [--quick]
"""

from __future__ import annotations

import argparse
import pathlib
import sys

import torch

sys.path.insert(0, str(pathlib.Path(__file__).parent))
import bench_flows  # noqa: E402

from genmath.core.change_of_variables import Flow  # noqa: E402
from genmath.families.cnf import CNF  # noqa: E402
from genmath.families.flows import MAF, RealNVP  # noqa: E402
from genmath.families.residual import ResidualFlow  # noqa: E402


def _same_stack(family_model, core_transform, d):
    core_params = sum(p.numel() for p in core_transform.parameters())
    family_params = sum(p.numel() for p in family_model.parameters())
    assert core_params == family_params, (core_params, family_params)
    core_transform.load_state_dict(family_model.transform.state_dict())
    x = torch.randn(8, d)
    with torch.no_grad():
        a, b = family_model.transform(x), core_transform(x)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    bench_flows._harness.setup(torch.float32)
    torch.manual_seed(0)
    depth, hidden = 4, (64, 64)
    dims = (2,) if args.quick else (2, 16, 64)
    batch = 256 if args.quick else 1024
    repeats = 3 if args.quick else 11
    print(f"depth {depth}, hidden {list(hidden)}, batch {batch}, float32, one thread")
    print("family wrapper / bare core Flow (1.00 = no overhead; median [IQR] of interleaved rounds):")
    for d in dims:
        for name, family, core in (
            ("MAF", MAF(d, depth, hidden), bench_flows.genmath_maf(d, depth, hidden)),
            ("RealNVP", RealNVP(d, depth, hidden), bench_flows.genmath_realnvp(d, depth, hidden)),
        ):
            _same_stack(family, core, d)
            x = torch.randn(batch, d)
            with torch.no_grad():
                lp = bench_flows._time_pair(
                    lambda family=family, x=x: family.log_prob(x),
                    lambda core=core, d=d, x=x: Flow(core, bench_flows._base(d)).log_prob(x),
                    repeats,
                )
                sp = bench_flows._time_pair(
                    lambda family=family: family.sample(batch),
                    lambda core=core, d=d: Flow(core, bench_flows._base(d)).sample((batch,)),
                    repeats,
                )
            print(
                f"  {name:8s} d={d:3d}  log_prob {lp.ratio('genmath', 'zuko')}  "
                f"sample {sp.ratio('genmath', 'zuko')}"
                "  (same stack as bench_flows: checked)"
            )
    print("families without a zuko counterpart (absolute, indicative):")
    for d in dims[:2]:
        x = torch.randn(batch, d)
        residual = ResidualFlow(d, 4, hidden, logdet="roulette")
        cnf = CNF(d, hidden=64)
        with torch.no_grad():
            t_res = bench_flows._harness.compare(
                {"residual": lambda m=residual, x=x: m.log_prob(x)}, rounds=3, number=1
            ).median("residual")
            t_cnf = bench_flows._per_call(
                lambda m=cnf, x=x: m.log_prob(x, method="rk4", options={"step_size": 0.125}), 3
            )
        print(
            f"  d={d:3d}  residual flow (roulette) log_prob {batch / t_res:,.0f} samples/s;"
            f"  CNF (RK4, 8 steps, exact structured divergence) log_prob {batch / t_cnf:,.0f} samples/s"
        )


if __name__ == "__main__":
    main()
