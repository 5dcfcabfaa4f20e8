"""GaussianPath.convert and the exact marginal score against Meta's flow_matching.

Both libraries run in one process on the same inputs (the harness in `_harness.py`: thread
CPU time, warm allocator, interleaved rounds, median ratio with its interquartile range).
flow_matching puts data at t = 1 (``x_t = t x_1 + (1 - t) x_0`` for CondOT), so its time is
``1 - t`` here and its velocity is the negative of ours. Reported: the ratio genmath /
flow_matching (below 1: genmath faster), the largest difference between the two outputs, and
each one's largest error against the exact answer (x_t is built from known x_0 and eps, so
every parameterization of the *conditional* pair is known exactly).

For the marginal score of Gaussian data neither anchor has a call; the anchor is what a user
would reach for in torch: the score of `torch.distributions.MultivariateNormal` (the marginal
$\\mathcal N(\\alpha_t\\mu, \\alpha_t^2\\Sigma + \\sigma_t^2 I)$, one covariance per sample)
by autograd of its `log_prob`.

Usage: ``python benchmarks/bench_paths.py [--quick] [--update]``.
"""

from __future__ import annotations

import pathlib
import sys

import torch

sys.path.insert(0, str(pathlib.Path(__file__).parent))
import _harness  # noqa: E402

from genmath.core.path import GaussianPath  # noqa: E402
from genmath.schedules import CondOT  # noqa: E402


def _paired_times(ours, theirs, rounds: int):
    return _harness.compare({"genmath": ours, "anchor": theirs}, rounds=rounds)


def _convert_cases(fm_path, path, x0, eps, xt, t, t_fm):
    exact = {"x0": x0, "eps": eps, "velocity": eps - x0}
    # (name, genmath call, flow_matching call mapped back to our convention, exact answer)
    return [
        (
            "x0 → velocity",
            lambda: path.convert(x0, xt, t, "x0", "velocity"),
            lambda: -fm_path.target_to_velocity(x0, xt, t_fm),
            exact["velocity"],
        ),
        (
            "eps → velocity",
            lambda: path.convert(eps, xt, t, "eps", "velocity"),
            lambda: -fm_path.epsilon_to_velocity(eps, xt, t_fm),
            exact["velocity"],
        ),
        (
            "velocity → x0",
            lambda: path.convert(exact["velocity"], xt, t, "velocity", "x0"),
            lambda: fm_path.velocity_to_target(-exact["velocity"], xt, t_fm),
            x0,
        ),
        (
            "velocity → eps",
            lambda: path.convert(exact["velocity"], xt, t, "velocity", "eps"),
            lambda: fm_path.velocity_to_epsilon(-exact["velocity"], xt, t_fm),
            eps,
        ),
        (
            "eps → x0",
            lambda: path.convert(eps, xt, t, "eps", "x0"),
            lambda: fm_path.epsilon_to_target(eps, xt, t_fm),
            x0,
        ),
        (
            "x0 → eps",
            lambda: path.convert(x0, xt, t, "x0", "eps"),
            lambda: fm_path.target_to_epsilon(x0, xt, t_fm),
            eps,
        ),
    ]


def run(quick: bool = False) -> str:
    from flow_matching.path import AffineProbPath
    from flow_matching.path.scheduler import CondOTScheduler

    generator = torch.Generator().manual_seed(0)
    fm_path = AffineProbPath(scheduler=CondOTScheduler())
    path = GaussianPath(CondOT())
    lo, hi = path.schedule.safe_interval
    rounds = 5 if quick else 21
    rows = []
    for batch, dim in [(256, 2), (1024, 16), (4096, 64)]:
        x0 = torch.randn(batch, dim, generator=generator)
        eps = torch.randn(batch, dim, generator=generator)
        t = lo + (hi - lo) * torch.rand(batch, generator=generator)
        xt = (1 - t)[:, None] * x0 + t[:, None] * eps
        t_fm = (1 - t)[:, None]  # flow_matching: data at t = 1, t broadcast by hand
        for name, ours, theirs, exact in _convert_cases(fm_path, path, x0, eps, xt, t, t_fm):
            timings = _paired_times(ours, theirs, rounds)
            a, b = ours(), theirs()
            rows.append(
                (
                    f"convert {name}",
                    f"{batch}×{dim}",
                    timings,
                    float((a - b).abs().max()),
                    float((a - exact).abs().max()),
                    float((b - exact).abs().max()),
                )
            )

    rows.extend(_score_rows(path, generator, rounds))
    return _table(rows)


def _score_rows(path, generator, rounds):
    from genmath.analytic import Gaussian

    rows = []
    dim, batch = 8, 4096
    factor = torch.randn(dim, dim, generator=generator) / dim**0.5
    cov = factor @ factor.T + 0.5 * torch.eye(dim)
    mean = torch.randn(dim, generator=generator)
    marginal = Gaussian(mean, cov).marginal(path)
    x = torch.randn(batch, dim, generator=generator)
    lo, hi = path.schedule.safe_interval
    t = lo + (hi - lo) * torch.rand(batch, generator=generator)
    eye = torch.eye(dim)

    def anchor():
        alpha, sigma = path.alpha(t), path.sigma(t)
        cov_t = alpha[:, None, None] ** 2 * cov + sigma[:, None, None] ** 2 * eye
        point = x.detach().requires_grad_(True)
        normal = torch.distributions.MultivariateNormal(alpha[:, None] * mean, cov_t)
        (score,) = torch.autograd.grad(normal.log_prob(point).sum(), point)
        return score

    ours = lambda: marginal.score(x, t)  # noqa: E731
    timings = _paired_times(ours, anchor, max(5, rounds // 2))
    a, b = ours(), anchor()
    # exact answer in float64 by a dense solve, the reference both are checked against
    alpha, sigma = 1 - t, t
    cov_t = alpha[:, None, None] ** 2 * cov + sigma[:, None, None] ** 2 * eye
    exact = -torch.linalg.solve(cov_t, (x - alpha[:, None] * mean).unsqueeze(-1)).squeeze(-1)
    rows.append(
        (
            "marginal.score (Gaussian, full cov) vs MultivariateNormal + autograd",
            f"{batch}×{dim}",
            timings,
            float((a - b).abs().max()),
            float((a - exact).abs().max()),
            float((b - exact).abs().max()),
        )
    )
    return rows


def _table(rows) -> str:
    lines = [
        "# Probability paths: genmath vs flow_matching",
        "",
        _harness.describe(ENV),
        "",
        "float64, schedule CondOT; flow_matching time = 1 − t.",
        "",
    ]
    body = [
        [
            name,
            size,
            f"{timings.median('genmath') * 1e6:.1f}",
            f"{timings.median('anchor') * 1e6:.1f}",
            str(timings.ratio("genmath", "anchor")),
            f"{diff:.1e}",
            f"{err_ours:.1e}",
            f"{err_theirs:.1e}",
        ]
        for name, size, timings, diff, err_ours, err_theirs in rows
    ]
    lines += _harness.table(
        [
            "operation",
            "batch × dim",
            "genmath (µs)",
            "anchor (µs)",
            "ratio [IQR]",
            "max abs diff",
            "genmath error",
            "anchor error",
        ],
        body,
        "llrrrrrr",
    )
    return "\n".join(lines) + "\n"


ENV: dict = {}


def main() -> None:
    args = _harness.parser(__doc__.splitlines()[0]).parse_args()
    ENV.update(_harness.setup(torch.float64))
    table = run(quick=args.quick)
    _harness.write("paths", table, args.update)
    print(table)


if __name__ == "__main__":
    main()
