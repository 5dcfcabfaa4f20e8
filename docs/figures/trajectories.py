"""Probability-flow ODE and reverse-SDE trajectories on a 2-D Gaussian mixture.

Both samplers use the exact ε of `genmath.analytic` along a VP path; their end points are
drawn over the exact contours of the data density. Seeded and quick (a few seconds):
`python docs/figures/trajectories.py [--quick]` writes `docs/figures/trajectories.png`.
"""

from __future__ import annotations

import argparse
import pathlib

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from genmath.analytic import GaussianMixture  # noqa: E402
from genmath.core.dynamics import ReverseSDE  # noqa: E402
from genmath.core.path import GaussianPath  # noqa: E402
from genmath.schedules import VP  # noqa: E402

OUTPUT = pathlib.Path(__file__).with_suffix(".png")


def _data() -> GaussianMixture:
    return GaussianMixture(
        torch.tensor([0.3, 0.5, 0.2]),
        torch.tensor([[-2.0, 0.0], [1.5, 1.0], [0.5, -2.0]]),
        torch.tensor(
            [[[0.5, 0.2], [0.2, 0.3]], [[0.3, -0.1], [-0.1, 0.6]], [[0.2, 0.0], [0.0, 0.2]]]
        ),
    )


def main(quick: bool = False, out: pathlib.Path = OUTPUT) -> pathlib.Path:
    torch.set_default_dtype(torch.float64)
    generator = torch.Generator().manual_seed(0)
    data, path = _data(), GaussianPath(VP())
    marginal = data.marginal(path)
    n_samples, steps = (300, 40) if quick else (1500, 100)
    x1 = torch.randn(n_samples, 2, generator=generator)
    flow = ReverseSDE(path, marginal.eps, "eps", noise=0.0).probability_flow()
    runs = {
        "probability-flow ODE (DPM-Solver++(2M), 25 steps)": flow.sample(
            x1, steps=25, method="dpm++2m", grid="karras", keep_trajectory=True
        ),
        f"reverse SDE, $\\nu = g$ (Euler–Maruyama, {steps} steps)": ReverseSDE(
            path, marginal.eps, "eps", noise=1.0
        ).sample(x1, steps=steps, grid="karras", generator=generator, keep_trajectory=True),
    }

    grid = torch.linspace(-4.5, 4.5, 200)
    xx, yy = torch.meshgrid(grid, grid, indexing="xy")
    density = data.log_prob(torch.stack([xx.flatten(), yy.flatten()], 1)).exp().reshape(xx.shape)

    fig, axes = plt.subplots(1, 2, figsize=(10, 4.8), sharex=True, sharey=True)
    for ax, (title, result) in zip(axes, runs.items(), strict=True):
        ax.contour(xx, yy, density, levels=8, colors="0.35", linewidths=0.8)
        paths = result.trajectory[:, :15]
        for i in range(paths.shape[1]):
            ax.plot(paths[:, i, 0], paths[:, i, 1], color="tab:blue", alpha=0.35, linewidth=0.8)
        ax.scatter(x1[:15, 0], x1[:15, 1], s=8, color="tab:gray", label="$x_1$ (noise)")
        ax.scatter(result.x[:, 0], result.x[:, 1], s=3, color="tab:red", alpha=0.5, label="samples")
        ax.set_title(f"{title}\nNFE = {result.nfe}", fontsize=10)
        ax.set_aspect("equal")
        ax.set_xlim(-4.5, 4.5)
        ax.set_ylim(-4.5, 4.5)
    axes[0].legend(loc="lower left", fontsize=8)
    fig.suptitle(
        "VP path, exact ε from genmath.analytic; contours: exact data density", fontsize=10
    )
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer samples and steps")
    parser.add_argument("--out", type=pathlib.Path, default=OUTPUT)
    print(main(**vars(parser.parse_args())))
