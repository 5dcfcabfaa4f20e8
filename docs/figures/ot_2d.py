"""Discrete optimal transport between two weighted 2-D point clouds, exact and entropic.

Left: the exact plan of `genmath.ot.discrete_ot` (a line per pair carrying mass, width by mass;
at most n + m - 1 of them, a vertex of the transport polytope), points sized by weight. Middle:
Sinkhorn's plan at eps = 0.05 (`genmath.ot.sinkhorn`), every pair carrying some mass. Right: as
eps shrinks, Sinkhorn's transport cost <P, C> and its objective approach the exact optimum (the
primal = dual value of the left panel); the gap of the cost closes like eps log(1/eps).
Seeded: `python docs/figures/ot_2d.py [--quick] [--out PATH]`.
"""

from __future__ import annotations

import argparse
import pathlib

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from genmath import ot  # noqa: E402

OUTPUT = pathlib.Path(__file__).with_suffix(".png")


def clouds(generator, n, m):
    angle = torch.rand(n, generator=generator) * 6.283
    x = torch.stack([angle.cos(), angle.sin()], 1) * (1 + 0.1 * torch.randn(n, 1, generator=generator))
    y = torch.randn(m, 2, generator=generator) * torch.tensor([0.35, 0.8]) + torch.tensor([2.8, 0.0])
    a, b = torch.rand(n, generator=generator) + 0.2, torch.rand(m, generator=generator) + 0.2
    return x, y, a / a.sum(), b / b.sum()


def draw_plan(ax, x, y, a, b, plan, title):
    scale = 3.0 / float(plan.max())
    for i, j in torch.nonzero(plan > 1e-4 * float(plan.max())).tolist():
        ax.plot([x[i, 0], y[j, 0]], [x[i, 1], y[j, 1]], color="0.35", linewidth=scale * float(plan[i, j]), alpha=0.8)
    ax.scatter(x[:, 0], x[:, 1], s=2500 * a, color="tab:blue", zorder=3, label="source $a$")
    ax.scatter(y[:, 0], y[:, 1], s=2500 * b, color="tab:orange", zorder=3, label="target $b$")
    ax.set_title(title)
    ax.set_aspect("equal")
    ax.legend(loc="lower left", fontsize=8)


def main(quick: bool = False, out: pathlib.Path = OUTPUT) -> pathlib.Path:
    torch.set_default_dtype(torch.float64)
    torch.set_num_threads(1)
    generator = torch.Generator().manual_seed(0)
    n, m = (8, 7) if quick else (14, 12)
    x, y, a, b = clouds(generator, n, m)
    cost = torch.cdist(x, y) ** 2
    exact = ot.discrete_ot(a, b, cost)
    fig = plt.figure(figsize=(12, 10))
    grid = fig.add_gridspec(2, 2)
    # two maps side by side, the curves below at full width: read at page width
    axes = [fig.add_subplot(grid[0, 0]), fig.add_subplot(grid[0, 1]), fig.add_subplot(grid[1, :])]
    support = int((exact.plan > 1e-12).sum())
    draw_plan(axes[0], x, y, a, b, exact.plan,
              f"exact plan: {support} pairs (n + m - 1 = {n + m - 1}); cost = dual = {exact.cost:.4f}")
    entropic = ot.sinkhorn(a, b, cost, 0.05)
    draw_plan(axes[1], x, y, a, b, entropic.plan, f"Sinkhorn, $\\varepsilon = 0.05$: cost {entropic.cost:.4f}")
    epsilons = torch.logspace(0, -2.5 if quick else -3, 6 if quick else 12)
    costs, objectives = [], []
    for eps in epsilons.tolist():
        result = ot.sinkhorn(a, b, cost, eps, tol=1e-10, max_iter=200_000)
        costs.append(float(result.cost) - float(exact.cost))
        objectives.append(float(result.objective) - float(exact.cost))
    ax = axes[2]
    ax.loglog(epsilons, costs, "o-", label=r"$\langle P_\varepsilon, C\rangle - \mathrm{OT}$")
    ax.loglog(epsilons, [max(o, 1e-16) for o in objectives], "s--", label=r"$\mathrm{OT}_\varepsilon - \mathrm{OT}$")
    ax.set_xlabel(r"$\varepsilon$")
    ax.set_title("entropic OT tends to the exact optimum")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=pathlib.Path, default=OUTPUT)
    args = parser.parse_args()
    print(main(args.quick, args.out))
