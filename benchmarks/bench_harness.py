"""The timing harness against itself: identical work timed as two contenders must give ratio 1.

For three workloads (a RealNVP log-density, a CFM training step, a path conversion) the same
callable is timed twice, as if it were genmath and an anchor, and the whole measurement is
repeated several times; the spread of the reported ratios is what a ratio of any benchmark can
be trusted to. The old method (best of a few wall-clock timings, contenders one after the
other) is run on the same work for comparison.

    python benchmarks/bench_harness.py [--quick] [--update]
"""

from __future__ import annotations

import pathlib
import sys
import time

import torch

sys.path.insert(0, str(pathlib.Path(__file__).parent))
import _harness  # noqa: E402


def _workloads():
    from genmath.core.change_of_variables import AffineCoupling, Compose, Flow
    from genmath.core.path import GaussianPath
    from genmath.families import flow_matching as fm
    from genmath.nn import VelocityMLP
    from genmath.schedules import CondOT

    torch.manual_seed(0)
    checker = torch.arange(16) % 2 == 0
    flow = Flow(
        Compose(*[AffineCoupling(16, mask=checker if i % 2 else ~checker) for i in range(4)]),
        torch.distributions.Independent(
            torch.distributions.Normal(torch.zeros(16), torch.ones(16)), 1
        ),
    )
    x = torch.randn(1024, 16)
    path = GaussianPath(CondOT())
    model = VelocityMLP(2, hidden=128, depth=2)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    x0, noise, t = torch.randn(256, 2), torch.randn(256, 2), torch.rand(256)

    def cfm_step():
        optimizer.zero_grad()
        fm.cfm_loss(model, x0, path, t=t, noise=noise).backward()
        optimizer.step()

    def log_prob():
        with torch.no_grad():
            return flow.log_prob(x)

    xt = torch.randn(256, 2)
    return {
        "RealNVP log_prob (1024×16)": log_prob,
        "CFM training step (256×2)": cfm_step,
        "convert x0 → velocity (256×2)": lambda: path.convert(x0, xt, t, "x0", "velocity"),
    }


def _old_way(fn, repeats: int = 3) -> float:
    """The previous benchmarks' timing: best of a few wall-clock calls, A then B."""
    def best():
        out = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            fn()
            out = min(out, time.perf_counter() - start)
        return out

    fn()
    return best() / best()


def main() -> None:
    args = _harness.parser(__doc__.splitlines()[0]).parse_args()
    env = _harness.setup(torch.float32)
    measurements = 3 if args.quick else 7
    rounds = 7 if args.quick else 15
    rows = []
    for name, fn in _workloads().items():
        medians, spreads, old = [], [], []
        for _ in range(measurements):
            ratio = _harness.compare({"a": fn, "b": fn}, rounds=rounds).ratio("a", "b")
            medians.append(ratio.median)
            spreads.append(ratio.spread)
            old.append(_old_way(fn))
        rows.append(
            [
                name,
                f"{min(medians):.3f}–{max(medians):.3f}",
                f"{max(spreads):.3f}",
                f"{min(old):.2f}–{max(old):.2f}",
            ]
        )
        print(name, rows[-1], file=sys.stderr)
    lines = [
        "# The timing harness against itself",
        "",
        _harness.describe(env),
        "",
        f"Identical work timed as two contenders; {measurements} independent measurements of "
        f"{rounds} interleaved rounds each. A correct harness reports 1.00; the range of the "
        "median ratios over the measurements is how far any benchmark's ratio can be trusted. "
        "Old way: best of 3 wall-clock calls of one contender, then of the other (the "
        "previous benchmarks' method), on the same work.",
        "",
        *_harness.table(
            [
                "work",
                "harness: median ratio, range over measurements",
                "largest IQR within one",
                "old way: ratio range",
            ],
            rows,
            "lrrr",
        ),
    ]
    _harness.write("harness", "\n".join(lines), args.update)


if __name__ == "__main__":
    main()
