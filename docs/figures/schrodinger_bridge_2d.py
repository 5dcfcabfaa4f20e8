"""The Schrödinger bridge between two 2-D Gaussians, and IMF (DSBM in exact form) reaching it.

Left panels: paths of the bridge's SDE $dX = f_t(X)\\,dt + \\sigma\\,dW$ (Euler–Maruyama with the
closed-form drift of `GaussianSchrodingerBridge`) from $\\mu_0$ to $\\mu_1$ for two noise
levels and for $\\sigma = 0$, the optimal-transport interpolation; the ellipses are the
closed-form marginals at $t = 0, \\tfrac12, 1$ (two standard deviations). Right: the distance
$\\|C_n - C_\\sigma\\|_F$ of the IMF iterates' couplings to the closed form, from the independent
coupling. Seeded: `python docs/figures/schrodinger_bridge_2d.py [--quick] [--out PATH]`.
"""

from __future__ import annotations

import argparse
import math
import pathlib

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from genmath.analytic import Gaussian  # noqa: E402
from genmath.families import schrodinger_bridge as sb  # noqa: E402

OUTPUT = pathlib.Path(__file__).with_suffix(".png")
F64 = torch.float64  # module-level tensors are built before main sets the default dtype
M0, M1 = torch.tensor([-2.0, 0.0], dtype=F64), torch.tensor([2.0, 0.5], dtype=F64)
S0 = torch.tensor([[0.6, 0.35], [0.35, 0.4]], dtype=F64)
S1 = torch.tensor([[0.3, -0.2], [-0.2, 0.8]], dtype=F64)


def ellipse(ax, mean, cov, color):
    values, vectors = torch.linalg.eigh(cov)
    angle = torch.linspace(0, 2 * math.pi, 100)
    circle = torch.stack([angle.cos(), angle.sin()], 1) * 2 * values.sqrt()
    points = mean + circle @ vectors.T
    ax.plot(points[:, 0], points[:, 1], color=color, linewidth=1.5)


def simulate(bridge, n, steps, generator):
    x = Gaussian(bridge.mean0, bridge.cov0).sample(n, generator)
    path, h = [x], 1.0 / steps
    for k in range(steps):
        t = k * h
        x = x + h * bridge.drift(x, t) + bridge.sigma * math.sqrt(h) * torch.randn(x.shape, generator=generator)
        path.append(x)
    return torch.stack(path)


def main(quick: bool = False, out: pathlib.Path = OUTPUT) -> pathlib.Path:
    torch.set_default_dtype(torch.float64)
    torch.set_num_threads(1)
    generator = torch.Generator().manual_seed(0)
    steps = 20 if quick else 200
    # two rows of two: four panels in one row were too small to read at the page's width
    fig, grid_axes = plt.subplots(2, 2, figsize=(11, 9.4))
    axes = list(grid_axes.flat)
    for ax, sigma in zip(axes[:3], (1.0, 0.3, 0.0), strict=True):
        bridge = sb.GaussianSchrodingerBridge(M0, S0, M1, S1, sigma)
        paths = simulate(bridge, 30, steps, generator)
        for i in range(paths.shape[1]):
            ax.plot(paths[:, i, 0], paths[:, i, 1], color="tab:blue", alpha=0.35, linewidth=0.7)
        for t, color in ((0.0, "tab:gray"), (0.5, "tab:purple"), (1.0, "tab:red")):
            ellipse(ax, bridge.mean(t), bridge.cov(t), color)
        name = "optimal transport (sigma = 0)" if sigma == 0 else f"Schrödinger bridge, sigma = {sigma:g}"
        ax.set_title(f"{name}\nE|X1 - X0|^2 = {float(bridge.transport_cost()):.3f}", fontsize=10)
        ax.set_aspect("equal")
        ax.set_xlim(-4.5, 4.5)
        ax.set_ylim(-3.0, 3.5)
    iterations = 3 if quick else 12
    for sigma, color in ((2.0, "tab:green"), (1.0, "tab:blue"), (0.5, "tab:orange")):
        target = sb.GaussianSchrodingerBridge(M0, S0, M1, S1, sigma)
        start = sb.GaussianBridgeMixture(M0, S0, M1, S1, torch.zeros(2, 2, dtype=F64), sigma)
        iterates = sb.iterative_markovian_fitting(start, iterations, steps=64 if quick else 128)
        gaps = [float((m.cross_cov - target.cross_cov).norm()) for m in iterates]
        axes[3].semilogy(gaps, "o-", color=color, label=f"sigma = {sigma:g}")
    axes[3].set_xlabel("IMF iteration (Markovian + reciprocal projection)")
    axes[3].set_title("IMF couplings: distance to the closed form", fontsize=10)
    axes[3].legend()
    fig.suptitle("Gaussian Schrödinger bridges: t = 0 (gray) to t = 1 (red),\nmarginals at t = 1/2 (purple)", fontsize=11)
    fig.tight_layout(rect=(0, 0, 1, 0.94))
    fig.subplots_adjust(hspace=0.38)  # the lower panels' titles clear the upper tick labels
    out = pathlib.Path(out)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a few iterations (for the tests)")
    parser.add_argument("--out", type=pathlib.Path, default=OUTPUT)
    args = parser.parse_args()
    print(main(args.quick, args.out))
