"""Throughput of genmath's MAF and RealNVP against zuko's, side by side in one process.

Both libraries build flows of the same depth (number of layers), width (hidden layers) and
dimension, with a standard normal base, and are timed on the same batch:

* MAF: `Compose` of `MaskedAutoregressive` layers with alternating natural / reversed
  orderings vs `zuko.flows.MAF` (which alternates the same way);
* RealNVP: `Compose` of `AffineCoupling` layers with alternating checkerboard masks vs
  `zuko.flows.RealNVP` (same masks).

`log_prob` is the one-pass density direction; `sample` is sequential (d passes per layer) for
a MAF and one pass for RealNVP, in both libraries. On CPU times come from the harness
(`_harness.py`: thread CPU time, warm allocator, interleaved rounds, median ratio with its
interquartile range); on a GPU, synchronised wall time of the same interleaved rounds.

    python benchmarks/bench_flows.py [--quick] [--update] [--device cuda]
"""

from __future__ import annotations

import pathlib
import platform
import sys
import time

import torch
from torch.distributions import Independent, Normal

sys.path.insert(0, str(pathlib.Path(__file__).parent))
import _harness  # noqa: E402

from genmath.core.change_of_variables import (  # noqa: E402
    AffineCoupling,
    Compose,
    Flow,
    MaskedAutoregressive,
)


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


def _time_pair(fn_a, fn_b, rounds):
    """Interleaved rounds of the two (the harness on CPU; synchronised wall time on a GPU)."""
    if not (torch.cuda.is_available() and torch.cuda.is_initialized()):
        return _harness.compare({"genmath": fn_a, "zuko": fn_b}, rounds=rounds)
    fn_a(), fn_b()
    number = max(1, int(0.05 / max(_per_call(fn_a, 1), _per_call(fn_b, 1), 1e-6)))
    seconds = {"genmath": [], "zuko": []}
    for r in range(rounds):
        order = [("genmath", fn_a), ("zuko", fn_b)][:: 1 if r % 2 == 0 else -1]
        for name, fn in order:
            seconds[name].append(_per_call(fn, number))
    return _harness.Timings(seconds, number)


def run(cases, depth, hidden, rounds, device="cpu"):
    """``cases``: (d, batch) pairs."""
    import zuko

    rows = []
    for d, batch in cases:
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
            sequential = family == "MAF" and d > 16
            with torch.no_grad():
                lp = _time_pair(
                    lambda transform=transform, d=d, x=x: Flow(
                        transform, _base(d, x.device)
                    ).log_prob(x),
                    lambda zuko_flow=zuko_flow, x=x: zuko_flow().log_prob(x),
                    rounds,
                )
                sp = _time_pair(
                    lambda transform=transform, d=d, batch=batch: Flow(
                        transform, _base(d, device)
                    ).sample((batch,)),
                    lambda zuko_flow=zuko_flow, batch=batch: zuko_flow().sample((batch,)),
                    max(3, rounds // 3) if sequential else rounds,
                )
            rows.append((family, d, batch, "log_prob", lp, n_params))
            rows.append((family, d, batch, "sample", sp, n_params))
            print(
                f"{family:8s} d={d:3d} batch={batch:6d} log_prob {lp.ratio('genmath', 'zuko')}"
                f"  sample {sp.ratio('genmath', 'zuko')}",
                file=sys.stderr,
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


def write(rows, depth, hidden, env, device="cpu", accuracy=None, update=False):
    import zuko

    where = (
        "one CPU thread" if device == "cpu" else f"device {device} ({torch.cuda.get_device_name()})"
    )
    lines = [
        "# Flows: genmath vs zuko",
        "",
        _harness.describe(env) if device == "cpu" else "Synchronised wall time, interleaved rounds.",
        "",
        f"Generated by `python benchmarks/bench_flows.py`. Same depth ({depth} layers), hidden "
        f"widths {list(hidden)}, ReLU, standard normal base, float32, {where}; torch "
        f"{torch.__version__}, zuko {zuko.__version__}, {platform.processor() or platform.machine()}. "
        "Ratio = genmath time / zuko time (below 1: genmath faster).",
        "",
    ]
    body = [
        [
            family,
            str(d),
            str(batch),
            op,
            f"{timings.median('genmath') * 1e3:.2f}",
            f"{timings.median('zuko') * 1e3:.2f}",
            str(timings.ratio("genmath", "zuko")),
            f"{pa:,} / {pb:,}",
        ]
        for family, d, batch, op, timings, (pa, pb) in rows
    ]
    lines += _harness.table(
        [
            "flow",
            "d",
            "batch",
            "operation",
            "genmath (ms)",
            "zuko (ms)",
            "ratio [IQR]",
            "parameters (genmath / zuko)",
        ],
        body,
        "lrrlrrrr",
    )
    lines += [
        "",
        "Notes: both libraries parameterize each affine layer by a shift and a log-scale from the "
        "same network shapes; zuko's affine layer (`MonotonicAffineTransform`) enforces a "
        "documented minimum slope, genmath's has no bound unless `scale_clamp` is given. MAF "
        "sampling is sequential in both (d network passes per layer).",
        "",
    ]
    if accuracy is not None:
        lines += [
            f"Accuracy on {device} in float64 (round trip, log|det J| vs slogdet of the autograd "
            f"Jacobian): max error {accuracy:.1e}.",
            "",
        ]
    name = "flows" if device == "cpu" else f"flows_{torch.device(device).type}"
    _harness.write(name, "\n".join(lines), update)


def main():
    p = _harness.parser(__doc__.splitlines()[0])
    p.add_argument("--depth", type=int, default=4)
    p.add_argument("--hidden", type=int, nargs="+", default=[64, 64])
    p.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    args = p.parse_args()
    env = _harness.setup(torch.float32) if args.device == "cpu" else {}
    torch.set_default_dtype(torch.float32)
    hidden = tuple(args.hidden)
    accuracy = check_on(args.device)
    if args.quick:
        cases = [(2, 256), (16, 1024)]
        rows = run(cases, 2, (16, 16), 5, args.device)
    else:
        cases = [(2, 1024), (64, 1024), (16, 256), (16, 1024), (16, 4096), (16, 16384)]
        rows = run(cases, args.depth, hidden, 15, args.device)
    write(rows, args.depth, hidden, env, args.device, accuracy, args.update)


if __name__ == "__main__":
    main()
