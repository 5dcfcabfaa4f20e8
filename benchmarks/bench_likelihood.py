"""Exact-divergence ODE likelihood: genmath vs Meta's flow_matching vs a torch.func baseline.

Run: ``python benchmarks/bench_likelihood.py [--quick] [--update] [--memory]``.

Everything runs in one process on the same inputs: float32, batch 256 (32 at d = 512),
d in {2, 8, 32, 128, 512},
torchdiffeq ``dopri5`` with rtol = atol = 1e-5 for every contender, one CPU thread (the
machine is shared; ratios are what matter). Contenders:

* ``genmath``: `genmath.core.likelihood.ode_log_likelihood` with a plain function as velocity,
  so the divergence is the generic exact one (autograd);
* ``genmath-structured``: the same call with `genmath.nn.VelocityMLP` itself, whose exact
  divergence comes from the structure of its Jacobian (MLP velocity only);
* ``flow_matching``: `ODESolver(velocity_model).compute_likelihood(exact_divergence=True)`
  (data at t = 1 in its convention, so its velocity is ``-v(x, 1 - t)``);
* ``torch.func``: the same augmented ODE with ``vmap(jacrev)`` Jacobians and their traces.

Velocities: the exact marginal velocity of Gaussian data ``N(mu, diag(s^2))`` along the
conditional-OT path (coordinate-wise DESIGN.md closed form; the exact log-density is known),
and a `VelocityMLP` (two hidden layers of width 256, softplus). Peak memory is measured with
the torch profiler (``profile_memory=True``): the largest running sum of tensor allocations
minus frees during one call, i.e. tensor memory only, not Python objects (with
``--memory``). Times come from the harness (`_harness.py`): thread CPU time, contenders
alternated in interleaved rounds, median of per-round ratios with the interquartile range.
"""

from __future__ import annotations

import math
import pathlib
import sys

import torch
from torch.func import jacrev, vmap
from torchdiffeq import odeint

sys.path.insert(0, str(pathlib.Path(__file__).parent))
import _harness  # noqa: E402

from genmath.core.likelihood import ode_log_likelihood  # noqa: E402
from genmath.nn import VelocityMLP  # noqa: E402

RTOL = ATOL = 1e-5
METHOD = "dopri5"
BATCH = 256


def _standard_normal(x: torch.Tensor) -> torch.Tensor:
    return -0.5 * (x**2).sum(-1) - 0.5 * x.shape[-1] * math.log(2 * math.pi)


class _GaussianCondOT:
    """Exact velocity of N(mu, diag(s^2)) data along x_t = (1 - t) x_0 + t eps (t = 0 data)."""

    def __init__(self, dim: int, gen: torch.Generator) -> None:
        self.mu = torch.randn(dim, generator=gen)
        self.s = 0.5 + torch.rand(dim, generator=gen)

    def velocity(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        var_t = (1 - t) ** 2 * self.s**2 + t**2
        gain = (t - (1 - t) * self.s**2) / var_t
        return -self.mu + gain * (x - (1 - t) * self.mu)

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        z = (x - self.mu) / self.s
        return _standard_normal(z) - self.s.log().sum()

    def sample(self, n: int, gen: torch.Generator) -> torch.Tensor:
        return self.mu + self.s * torch.randn(n, self.mu.numel(), generator=gen)


def _torch_func_log_likelihood(velocity, x):
    def dynamics(t, state):
        x_t = state[0]
        v = velocity(x_t, t)
        jac = vmap(jacrev(lambda xi: velocity(xi[None], t)[0]))(x_t)
        return v, jac.diagonal(dim1=-2, dim2=-1).sum(-1)

    with torch.no_grad():
        xs, div = odeint(
            dynamics,
            (x, torch.zeros(x.shape[0])),
            torch.tensor([0.0, 1.0]),
            method=METHOD,
            rtol=RTOL,
            atol=ATOL,
            options={"step_t": torch.tensor([1.0])},
        )
    return _standard_normal(xs[-1]) + div[-1]


class _Counted:
    """Counts evaluations of a velocity (and of its structured divergence, if it has one)."""

    def __init__(self, velocity) -> None:
        self.velocity, self.calls = velocity, 0

    def __call__(self, x, t):
        self.calls += 1
        return self.velocity(x, t)


class _CountedStructured(_Counted):
    def velocity_and_divergence(self, x, t):
        self.calls += 1
        return self.velocity.velocity_and_divergence(x, t)


def _contenders(velocity, structured_model=None, with_torch_func=True):
    from flow_matching.solver import ODESolver

    counted = _Counted(velocity)
    velocity = counted

    class _FlowMatchingModel(torch.nn.Module):  # data at t = 1 in flow_matching
        def forward(self, x, t):
            return -velocity(x, 1 - t)

    solver = ODESolver(velocity_model=_FlowMatchingModel())

    def genmath_generic(x):
        with torch.no_grad():
            return ode_log_likelihood(
                lambda y, t: velocity(y, t),
                x,
                _standard_normal,
                method=METHOD,
                rtol=RTOL,
                atol=ATOL,
            )

    def flow_matching(x):
        _, log_p = solver.compute_likelihood(
            x_1=x,
            log_p0=_standard_normal,
            step_size=None,
            method=METHOD,
            atol=ATOL,
            rtol=RTOL,
            exact_divergence=True,
        )
        return log_p

    out = {"genmath": genmath_generic, "flow_matching": flow_matching}
    if structured_model is not None:
        structured = _CountedStructured(structured_model)

        def genmath_structured(x):
            with torch.no_grad():
                return ode_log_likelihood(
                    structured, x, _standard_normal, method=METHOD, rtol=RTOL, atol=ATOL
                )

        out["genmath-structured"] = genmath_structured
    if with_torch_func:
        out["torch.func"] = lambda x: _torch_func_log_likelihood(velocity, x)
    counters = {name: counted for name in out}
    if structured_model is not None:
        counters["genmath-structured"] = structured
    return out, counters


def _peak_tensor_memory(fn, x) -> float:
    """Peak of (allocated - freed) tensor bytes during one call, from the torch profiler's
    allocation events (tensor memory only; Python objects are not counted)."""
    from torch._C._profiler import _EventType
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn(x)
    allocations = []
    stack = list(prof.profiler.kineto_results.experimental_event_tree())
    while stack:
        node = stack.pop()
        if node.tag == _EventType.Allocation:
            allocations.append((node.start_time_ns, node.extra_fields.alloc_size))
        stack.extend(node.children)
    running = peak = 0
    for _, size in sorted(allocations):
        running += size
        peak = max(peak, running)
    return float(peak)


def run(dims, rounds_for, memory: bool) -> list[dict]:
    rows = []
    for dim in dims:
        gen = torch.Generator().manual_seed(dim)
        batch = BATCH if dim <= 128 else 32
        gaussian = _GaussianCondOT(dim, gen)
        torch.manual_seed(dim)
        mlp = VelocityMLP(dim, hidden=256, depth=2).float()
        small = dim <= 32
        cases = [
            ("Gaussian (exact velocity)", *_contenders(gaussian.velocity, None, small), gaussian),
            ("MLP 2x256", *_contenders(mlp, mlp, small), None),
        ]
        for field, contenders, counters, oracle in cases:
            x = oracle.sample(batch, gen) if oracle else torch.randn(batch, dim, generator=gen)
            exact = oracle.log_prob(x) if oracle else None
            results = {}
            for name, fn in contenders.items():
                counters[name].calls = 0
                log_p = fn(x).detach()  # also a warm-up call
                nfe = counters[name].calls  # velocity evaluations of one call
                peak = _peak_tensor_memory(fn, x) if memory else float("nan")
                results[name] = [log_p, peak, nfe]
            timings = _harness.compare(
                {name: (lambda fn=fn, x=x: fn(x)) for name, fn in contenders.items()},
                rounds=rounds_for(dim),
                warmup=1,
                number=1,
            )
            reference = results["flow_matching"]
            for name, (log_p, peak, nfe) in results.items():
                ratio = timings.ratio(name, "flow_matching")
                print(f"d={dim:4d} {field:26s} {name:20s} ratio {ratio}", file=sys.stderr)
                rows.append(
                    {
                        "d": dim,
                        "batch": batch,
                        "field": field,
                        "contender": name,
                        "ms": timings.median(name) * 1e3,
                        "nfe": nfe,
                        "ratio": ratio,
                        "mem_vs_fm": peak / reference[1] if reference[1] == reference[1] else float("nan"),
                        "peak_mib": peak / 2**20,
                        "err_exact": float((log_p - exact).abs().max()) if oracle else None,
                        "diff_fm": float((log_p - reference[0]).abs().max()),
                    }
                )
    return rows


def _markdown(rows: list[dict], env: dict) -> str:
    lines = [
        "# Exact-divergence ODE likelihood: genmath vs flow_matching vs torch.func",
        "",
        _harness.describe(env),
        "",
        f"float32, torchdiffeq `{METHOD}` rtol = atol = {RTOL:g} for every contender, batch "
        f"{BATCH} (32 at d = 512). `ratio` = contender time / flow_matching time (< 1: faster "
        "than flow_matching). `genmath` is the generic exact divergence (autograd) of a plain "
        "function; `genmath-structured` is `VelocityMLP`'s own divergence. `max |err|` is "
        "against the exact log-density (Gaussian data); `max |Δ fm|` is the largest difference "
        "from flow_matching's answer; memory columns only with `--memory`. Generated by "
        "`benchmarks/bench_likelihood.py`.",
        "",
    ]
    body = []
    for r in rows:
        err = "—" if r["err_exact"] is None else f"{r['err_exact']:.1e}"
        body.append(
            [
                str(r["d"]),
                r["field"],
                r["contender"],
                str(r["nfe"]),
                f"{r['ms']:.1f}",
                str(r["ratio"]),
                f"{r['mem_vs_fm']:.2f}",
                err,
                f"{r['diff_fm']:.1e}",
            ]
        )
    lines += _harness.table(
        [
            "d",
            "velocity",
            "contender",
            "velocity calls",
            "time (ms)",
            "ratio vs flow_matching [IQR]",
            "memory vs flow_matching",
            "max \\|err\\| vs exact",
            "max \\|Δ fm\\|",
        ],
        body,
        "rlllrrrrr",
    )
    return "\n".join(lines) + "\n"


def main() -> None:
    p = _harness.parser(__doc__.splitlines()[0])
    p.add_argument("--memory", action="store_true", help="also profile peak tensor memory")
    args = p.parse_args()
    env = _harness.setup(torch.float32)
    dims = (2, 8) if args.quick else (2, 8, 32, 128, 512)

    def rounds_for(dim: int) -> int:
        if args.quick:
            return 3
        return 15 if dim <= 8 else 9 if dim <= 32 else 5 if dim <= 128 else 3

    rows = run(dims, rounds_for, memory=args.memory)
    _harness.write("likelihood", _markdown(rows, env), args.update)


if __name__ == "__main__":
    main()
