"""The exact flow map of a 2-D Gaussian mixture, and what its identities look like when a map
is wrong.

Left: trajectories $t \\mapsto X(x, 1, t)$ of the exact map (`genmath.analytic.ExactFlowMap`,
48 RK4 steps of the exact mixture velocity) from noise to data over the density contours.
Middle: one jump $X(x, 1, 0)$ of the exact map (samples of the data law) and of a perturbed
map. Right: the Lagrangian, Eulerian and semigroup residuals (`genmath.lagrangian_residual`,
...) of both maps against the end time: zero to ODE tolerance for the exact map, of order one
for the perturbed one. Seeded: `python docs/figures/flow_maps_2d.py [--quick] [--out PATH]`.
"""

from __future__ import annotations

import argparse
import pathlib

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

import genmath  # noqa: E402
from genmath.analytic import ExactFlowMap, GaussianMixture  # noqa: E402
from genmath.core.path import GaussianPath  # noqa: E402
from genmath.families import flow_maps  # noqa: E402
from genmath.schedules import CondOT  # noqa: E402

OUTPUT = pathlib.Path(__file__).with_suffix(".png")
DTYPE = torch.float64


def data() -> GaussianMixture:
    return GaussianMixture(
        torch.tensor([0.3, 0.4, 0.3], dtype=DTYPE),
        torch.tensor([[-2.0, 0.0], [1.5, 1.5], [1.0, -2.0]], dtype=DTYPE),
        torch.tensor([[[0.25, 0.1], [0.1, 0.2]], [[0.3, -0.1], [-0.1, 0.2]],
                      [[0.15, 0.0], [0.0, 0.4]]], dtype=DTYPE),
    )


def main(out: pathlib.Path, quick: bool = False) -> None:
    torch.set_num_threads(1)
    law = data()
    marginal = law.marginal(GaussianPath(CondOT()))
    # 48 RK4 steps: the exact map's residuals sit at the RK4 error (about 1e-6), far below
    # the perturbed map's; --quick only checks that the script runs
    exact = ExactFlowMap(marginal, steps=8 if quick else 48)

    def perturbed(y, s, t):
        return exact(y, s, t) + 0.6 * (t - s)[:, None] * torch.sin(y)

    gen = torch.Generator().manual_seed(0)
    noise = torch.randn(100 if quick else 600, 2, generator=gen, dtype=DTYPE)
    grid = torch.linspace(-4.5, 4.5, 160, dtype=DTYPE)
    xx, yy = torch.meshgrid(grid, grid, indexing="xy")
    density = law.log_prob(torch.stack([xx.ravel(), yy.ravel()], 1)).exp().reshape(xx.shape)

    fig = plt.figure(figsize=(10.5, 9.6))
    grid = fig.add_gridspec(2, 2)
    # two maps side by side, the curves below at full width: read at page width
    axes = [fig.add_subplot(grid[0, 0]), fig.add_subplot(grid[0, 1]), fig.add_subplot(grid[1, :])]
    ax = axes[0]
    ax.contour(xx, yy, density, levels=8, colors="0.7", linewidths=0.7)
    times = torch.linspace(1.0, 0.0, 5 if quick else 21, dtype=DTYPE)
    start = noise[:60]
    path = torch.stack([exact(start, 1.0, float(t)) for t in times])
    for i in range(start.shape[0]):
        ax.plot(path[:, i, 0], path[:, i, 1], color="tab:blue", lw=0.6, alpha=0.7)
    ax.scatter(path[-1, :, 0], path[-1, :, 1], s=6, color="k", zorder=3)
    ax.set_title("exact flow map: $t \\mapsto X(x, 1, t)$")

    ax = axes[1]
    ax.contour(xx, yy, density, levels=8, colors="0.7", linewidths=0.7)
    for model, colour, name in ((exact, "tab:blue", "exact"), (perturbed, "tab:red", "perturbed")):
        x = flow_maps.sample(model, noise, steps=1).x
        logp = float(law.log_prob(x).mean())
        ax.scatter(x[:, 0], x[:, 1], s=4, color=colour, alpha=0.6,
                   label=f"{name} map, mean log p = {logp:.2f}")
    ax.set_title(f"one jump $X(z, 1, 0)$ (data: mean log p = "
                 f"{float(law.log_prob(law.sample(4000, generator=gen)).mean()):.2f})")
    ax.legend(loc="lower left", fontsize=8)
    for a in axes[:2]:
        a.set_xlim(-4.5, 4.5)
        a.set_ylim(-4.5, 4.5)
        a.set_aspect("equal")

    ax = axes[2]
    batch = 8 if quick else 32
    x = 1.2 * torch.randn(batch, 2, generator=gen, dtype=DTYPE)
    s = torch.full((batch,), 0.9, dtype=DTYPE)
    ends = torch.linspace(0.05, 0.85, 2 if quick else 7, dtype=DTYPE)
    for model, style, name in ((exact, "-", "exact"), (perturbed, "--", "perturbed")):
        rows = {"Lagrangian": [], "Eulerian": [], "semigroup": []}
        for t in ends:
            t = t.expand(batch)
            rows["Lagrangian"].append(genmath.lagrangian_residual(model, marginal.velocity, x, s, t))
            rows["Eulerian"].append(genmath.eulerian_residual(model, marginal.velocity, x, s, t))
            rows["semigroup"].append(genmath.semigroup_residual(model, x, s, 0.5 * (s + t), t))
        for (label, values), colour in zip(rows.items(), ("tab:blue", "tab:orange", "tab:green"),
                                           strict=True):
            norms = [float(v.norm(dim=1).mean()) for v in values]
            ax.semilogy(ends, norms, style, color=colour, label=f"{label} ({name})")
    ax.set_xlabel("end time t (start s = 0.9)")
    ax.set_ylabel("mean residual norm")
    ax.set_title("identity residuals: exact vs perturbed map")
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    print(f"wrote {out}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=pathlib.Path, default=OUTPUT)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    main(args.out, args.quick)
