"""SDS, VSD and DMD distilling 2-D Gaussian data into an affine one-step generator.

The generator is $G(z) = Az + b$, $z \\sim \\mathcal N(0, I)$; the real model is the exact
marginal of the data (`genmath.analytic`), and the fake model of VSD/DMD is the exact marginal
of the generator's current law $\\mathcal N(b, AA^\\top)$ — so the figure shows the distillation
gradients themselves, not a fake network's fitting error. Each method runs Adam on its surrogate
(`genmath.families.distillation`) from the same start; the right panel is the closed-form
$\\mathrm{KL}(p_G\\,\\|\\,p_\\mathrm{data})$ along training. SDS collapses to the mode (its
covariance shrinks to 0), VSD and DMD reach the data law.
Seeded: `python docs/figures/distillation_2d.py [--quick] [--out PATH]`.
"""

from __future__ import annotations

import argparse
import pathlib

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from torch.distributions import MultivariateNormal, kl_divergence  # noqa: E402

from genmath.analytic import Gaussian  # noqa: E402
from genmath.core.path import GaussianPath  # noqa: E402
from genmath.families import distillation as ds  # noqa: E402
from genmath.schedules import VP  # noqa: E402

OUTPUT = pathlib.Path(__file__).with_suffix(".png")
MEAN = torch.tensor([1.5, -0.5], dtype=torch.float64)
COV = torch.tensor([[1.0, 0.6], [0.6, 0.5]], dtype=torch.float64)


def train(method, iterations, generator, path, data):
    A = torch.tensor([[0.4, 0.0], [0.0, 0.4]], requires_grad=True)
    b = torch.tensor([-1.5, 1.0], requires_grad=True)
    optimizer = torch.optim.Adam([A, b], lr=0.03)
    real = data.marginal(path)
    history = []
    for _ in range(iterations):
        z = torch.randn(256, 2, generator=generator)
        x = z @ A.T + b
        fake = Gaussian(b.detach(), (A @ A.T).detach() + 1e-9 * torch.eye(2)).marginal(path)
        if method == "SDS":
            loss = ds.sds_loss(x, real.eps, path, generator=generator)
        elif method == "VSD":
            loss = ds.vsd_loss(x, real.eps, fake.eps, path, generator=generator)
        else:
            loss = ds.dmd_loss(x, real.denoise, fake.denoise, path, generator=generator)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        with torch.no_grad():
            law = MultivariateNormal(b, A @ A.T + 1e-12 * torch.eye(2))
            # floored for the log scale: VSD and DMD reach the data law to round-off
            history.append(max(float(kl_divergence(law, data.as_distribution())), 1e-16))
    return A.detach(), b.detach(), history


def main(quick: bool = False, out: pathlib.Path = OUTPUT) -> pathlib.Path:
    torch.set_default_dtype(torch.float64)
    torch.set_num_threads(1)
    generator = torch.Generator().manual_seed(0)
    path, data = GaussianPath(VP()), Gaussian(MEAN, COV)
    iterations = 10 if quick else 600
    grid = torch.linspace(-2.5, 4.0, 150)
    xx, yy = torch.meshgrid(grid, torch.linspace(-3.0, 2.5, 150), indexing="xy")
    density = data.log_prob(torch.stack([xx.flatten(), yy.flatten()], 1)).exp().reshape(xx.shape)
    # two rows of two: four panels in one row were too small to read at the page's width
    fig, grid_axes = plt.subplots(2, 2, figsize=(10, 9))
    axes = list(grid_axes.flat)
    colors = {"SDS": "tab:red", "VSD": "tab:blue", "DMD": "tab:green"}
    for k, method in enumerate(colors):
        A, b, history = train(method, iterations, generator, path, data)
        samples = torch.randn(800, 2, generator=torch.Generator().manual_seed(1)) @ A.T + b
        ax = axes[k]
        ax.contour(xx, yy, density, levels=6, colors="0.5", linewidths=0.8)
        ax.scatter(samples[:, 0], samples[:, 1], s=3, alpha=0.5, color=colors[method])
        ax.set_title(f"{method}: KL(p_G || p_data) = {history[-1]:.2g}", fontsize=10)
        ax.set_aspect("equal")
        ax.set_xlim(-2.5, 4.0)
        ax.set_ylim(-3.0, 2.5)
        axes[3].semilogy(history, color=colors[method], label=method)
    axes[3].set_xlabel("Adam step")
    axes[3].set_title("closed-form KL of the generator's law to the data", fontsize=10)
    axes[3].legend()
    fig.suptitle("Affine one-step generator distilled from exact Gaussian scores\n(VP path)", fontsize=11)
    fig.tight_layout(rect=(0, 0, 1, 0.94))
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
