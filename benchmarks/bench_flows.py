"""Throughput of genmath's MAF and RealNVP against zuko's, side by side in one process.

Both libraries build flows of the same depth (number of layers), width (hidden layers) and
dimension, with a standard normal base, and are timed on the same batch:

* MAF: `Compose` of `MaskedAutoregressive` layers with alternating natural / reversed
  orderings vs `zuko.flows.MAF` (which alternates the same way);
* RealNVP: `Compose` of `AffineCoupling` layers with alternating checkerboard masks vs
  `zuko.flows.RealNVP` (same masks).

`log_prob` is the one-pass density direction; `sample` is sequential (d passes per layer) for
a MAF and one pass for RealNVP, in both libraries. Times are minima over interleaved
repeats of timed loops of at least 50 ms, with one CPU thread; ratios are genmath / zuko
(below 1: genmath faster).

    python benchmarks/bench_flows.py            # writes benchmarks/results/flows.md
    python benchmarks/bench_flows.py --quick    # a smoke run
"""

from __future__ import annotations

import argparse
import pathlib
import platform
import time

import torch
from torch.distributions import Independent, Normal

from genmath.core.change_of_variables import AffineCoupling, Compose, Flow, MaskedAutoregressive

RESULTS = pathlib.Path(__file__).parent / "results" / "flows.md"


def genmath_maf(d, depth, hidden):
    layers = [
        MaskedAutoregressive(
            d, hidden, ordering=torch.arange(d) if i % 2 == 0 else torch.arange(d).flip(0)
        )
        for i in range(depth)
    ]
    return Compose(*layers)


def genmath_realnvp(d, depth, hidden):
    checker = torch.arange(d) % 2 == 0
    return Compose(
        *[
            AffineCoupling(d, mask=checker if i % 2 == 0 else ~checker, hidden=hidden)
            for i in range(depth)
        ]
    )


def _base(d, device="cpu", dtype=None):
    zeros = torch.zeros(d, device=device, dtype=dtype)
    return Independent(Normal(zeros, torch.ones_like(zeros)), 1)


def _sync():
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()


def _per_call(fn, number):
    _sync()
    t0 = time.perf_counter()
    for _ in range(number):
        fn()
    _sync()
    return (time.perf_counter() - t0) / number


def _time_pair(fn_a, fn_b, repeats, budget=0.05):
    """Per-call seconds of ``fn_a`` and ``fn_b``: each repeat times a loop of at least
    ``budget`` seconds; repeats alternate between the two, and the minimum is kept (on a
    shared machine, other processes only ever add time)."""
    fn_a(), fn_b()  # warm-up
    number = max(1, int(budget / max(_per_call(fn_a, 1), _per_call(fn_b, 1), 1e-6)))
    a, b = [], []
    for _ in range(repeats):
        a.append(_per_call(fn_a, number))
        b.append(_per_call(fn_b, number))
    return min(a), min(b)


def run(dims, depth, hidden, batch, repeats, device="cpu"):
    import zuko

    rows = []
    for d in dims:
        for family, ours, theirs in (
            ("MAF", genmath_maf, zuko.flows.MAF),
            ("RealNVP", genmath_realnvp, zuko.flows.RealNVP),
        ):
            torch.manual_seed(0)
            transform = ours(d, depth, hidden).to(device)
            zuko_flow = theirs(d, transforms=depth, hidden_features=hidden).to(device)
            x = torch.randn(batch, d, device=device)
            n_params = (
                sum(p.numel() for p in transform.parameters()),
                sum(p.numel() for p in zuko_flow.parameters()),
            )
            with torch.no_grad():
                lp = _time_pair(
                    lambda transform=transform, d=d, x=x: Flow(
                        transform, _base(d, x.device)
                    ).log_prob(x),
                    lambda zuko_flow=zuko_flow, x=x: zuko_flow().log_prob(x),
                    repeats,
                )
                sp = _time_pair(
                    lambda transform=transform, d=d, x=x: Flow(
                        transform, _base(d, x.device)
                    ).sample((batch,)),
                    lambda zuko_flow=zuko_flow: zuko_flow().sample((batch,)),
                    repeats,
                )
            rows.append((family, d, "log_prob", *lp, n_params))
            rows.append((family, d, "sample", *sp, n_params))
            print(
                f"{family:8s} d={d:3d} log_prob ratio {lp[0] / lp[1]:.2f}  sample ratio {sp[0] / sp[1]:.2f}"
            )
    return rows


def check_on(device):
    """Accuracy on `device` in float64: round trip, and log|det J| against slogdet of the
    autograd Jacobian, for a MAF and a RealNVP; plus seeded sampling with a generator there."""
    worst = 0.0
    for build in (genmath_maf, genmath_realnvp):
        transform = build(5, 2, (16, 16)).to(device=device, dtype=torch.float64)
        x = torch.randn(4, 5, device=device, dtype=torch.float64)
        y, logdet = transform.forward(x)
        x_back, logdet_back = transform.inverse(y)
        worst = max(
            worst, (x_back - x).abs().max().item(), (logdet + logdet_back).abs().max().item()
        )
        for i in range(4):
            jac = torch.autograd.functional.jacobian(lambda v, t=transform: t(v[None])[0][0], x[i])
            worst = max(worst, (torch.linalg.slogdet(jac)[1] - logdet[i]).abs().item())
        flow = Flow(transform, _base(5, device, torch.float64))
        g = torch.Generator(device=device)
        a = flow.sample((3,), generator=g.manual_seed(0))
        b = flow.sample((3,), generator=g.manual_seed(0))
        assert torch.equal(a, b) and a.device.type == torch.device(device).type
    print(f"accuracy on {device} (float64): max error {worst:.2e}")
    assert worst < 1e-10
    return worst


def write(rows, depth, hidden, batch, repeats, device="cpu", accuracy=None):
    import zuko

    lines = [
        "# Flows: genmath vs zuko",
        "",
        "Generated by `python benchmarks/bench_flows.py`. Same depth "
        f"({depth} layers), hidden widths {list(hidden)}, ReLU, standard normal base, batch "
        f"{batch}, float32, "
        + (
            "one CPU thread"
            if device == "cpu"
            else f"device {device} ({torch.cuda.get_device_name()})"
        )
        + f"; per-call time = minimum over {repeats} interleaved "
        "repeats of a timed loop of at least 50 ms (other processes on a shared machine only add "
        "time, so the minimum is the least noisy estimate). "
        "Ratio = genmath time / zuko time (below 1: genmath faster). Throughput in samples/s.",
        "",
        f"torch {torch.__version__}, zuko {zuko.__version__}, {platform.processor() or platform.machine()}. "
        "Absolute times on a shared machine are noise; ratios are the result.",
        "",
        "| flow | d | operation | genmath (ms) | zuko (ms) | ratio | genmath samples/s | zuko samples/s | parameters (genmath / zuko) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for family, d, op, ours, theirs, (pa, pb) in rows:
        lines.append(
            f"| {family} | {d} | {op} | {ours * 1e3:.2f} | {theirs * 1e3:.2f} | {ours / theirs:.2f} | "
            f"{batch / ours:,.0f} | {batch / theirs:,.0f} | {pa:,} / {pb:,} |"
        )
    lines += [
        "",
        "Notes: both libraries parameterize each affine layer by a shift and a log-scale from the "
        "same network shapes; zuko's affine layer (`MonotonicAffineTransform`) enforces a documented minimum slope, genmath's has no bound unless "
        "`scale_clamp` is given. MAF sampling is sequential in both (d network passes per layer).",
        "",
    ]
    if device == "cpu":
        lines += [
            "On a loaded shared CPU, single ratios move by up to about 0.3 from run to run even with "
            "the minimum estimator; compare across several runs (or the GPU table, "
            "`flows_cuda.md`, measured on a dedicated machine) before reading a single ratio.",
            "",
        ]
    if accuracy is not None:
        lines += [
            f"Accuracy on {device} in float64 (round trip, log|det J| vs slogdet of the autograd "
            f"Jacobian): max error {accuracy:.1e}.",
            "",
        ]
    out = RESULTS if device == "cpu" else RESULTS.with_name(f"flows_{torch.device(device).type}.md")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines))
    print(f"wrote {out}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small smoke run, no results file")
    parser.add_argument("--depth", type=int, default=4)
    parser.add_argument("--hidden", type=int, nargs="+", default=[64, 64])
    parser.add_argument("--batch", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    args = parser.parse_args()
    if args.device == "cpu":
        torch.set_num_threads(1)
    torch.set_default_dtype(torch.float32)
    hidden = tuple(args.hidden)
    accuracy = check_on(args.device)
    if args.quick:
        run((2, 16), 2, (16, 16), 64, 3, args.device)
        return
    rows = run((2, 16, 64), args.depth, hidden, args.batch, args.repeats, args.device)
    write(rows, args.depth, hidden, args.batch, args.repeats, args.device, accuracy)


if __name__ == "__main__":
    main()
