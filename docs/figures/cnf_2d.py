"""A continuous normalizing flow (FFJORD) on a 2-D Gaussian mixture.

Trains `genmath.families.cnf.CNF` (a `VelocityMLP` with its structured exact divergence,
fixed-step RK4 through `genmath.ode_log_likelihood`) by maximum likelihood with a small
kinetic-energy regulariser, and plots the exact density, the learned density and samples
from `genmath.sample_ode` over the exact contours.
Seeded: `python docs/figures/cnf_2d.py [--quick] [--out PATH]`.
"""

from __future__ import annotations

import argparse
import pathlib

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from genmath.analytic import GaussianMixture  # noqa: E402
from genmath.families.cnf import CNF, ffjord_loss  # noqa: E402

OUTPUT = pathlib.Path(__file__).with_suffix(".png")
SOLVER = {"method": "rk4", "options": {"step_size": 0.125}}


def data() -> GaussianMixture:
    return GaussianMixture(
        torch.tensor([0.4, 0.35, 0.25]),
        torch.tensor([[-2.0, 1.0], [2.0, 1.5], [0.5, -2.0]]),
        torch.tensor(
            [[[0.5, 0.35], [0.35, 0.4]], [[0.2, 0.0], [0.0, 0.6]], [[0.8, -0.3], [-0.3, 0.2]]]
        ),
    )


def main(quick: bool = False, out: pathlib.Path = OUTPUT) -> pathlib.Path:
    torch.set_default_dtype(torch.float64)
    torch.manual_seed(0)
    torch.set_num_threads(1)
    generator = torch.Generator().manual_seed(0)
    mixture = data()
    cnf = CNF(2, hidden=64, depth=2, activation="softplus")
    iterations = 3 if quick else 1000
    optimizer = torch.optim.Adam(cnf.parameters(), lr=5e-3)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, max(iterations, 1))
    for _ in range(iterations):
        x = mixture.sample(256, generator=generator)
        loss = ffjord_loss(cnf, x, divergence="exact", kinetic=0.01, regularizer_steps=4, **SOLVER)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        scheduler.step()

    n = 50 if quick else 120
    axis = torch.linspace(-5, 5, n)
    grid = torch.stack(torch.meshgrid(axis, axis, indexing="xy"), -1).reshape(-1, 2)
    test = mixture.sample(2000 if quick else 10000, generator=generator)
    with torch.no_grad():
        learned = cnf.log_prob(grid, **SOLVER)
        nll = float(-cnf.log_prob(test, method="dopri5").mean())
        samples = cnf.sample(2000, generator=generator, steps=8, method="rk4")
    exact = mixture.log_prob(grid)
    exact_nll = float(-mixture.log_prob(test).mean())
    cell = float(axis[1] - axis[0]) ** 2

    fig, axes = plt.subplots(1, 3, figsize=(11, 4.2))
    for ax, log_prob, title in (
        (axes[0], exact, f"exact density\ntest NLL {exact_nll:.3f}"),
        (
            axes[1],
            learned,
            f"CNF density (RK4, 8 steps)\ntest NLL {nll:.3f} (dopri5), "
            f"mass {float(learned.exp().sum()) * cell:.3f}",
        ),
    ):
        ax.imshow(log_prob.exp().reshape(n, n), origin="lower", extent=(-5, 5, -5, 5), cmap="magma")
        ax.set_title(title, fontsize=9)
    axes[2].contour(axis, axis, exact.exp().reshape(n, n), levels=6, colors="k", linewidths=0.6)
    axes[2].scatter(samples[:, 0], samples[:, 1], s=1, alpha=0.4)
    axes[2].set_xlim(-5, 5)
    axes[2].set_ylim(-5, 5)
    axes[2].set_aspect("equal")
    axes[2].set_title(
        "samples (genmath.sample_ode, RK4, 8 steps)\nover the exact contours", fontsize=9
    )
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    out = pathlib.Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    print(f"exact test NLL {exact_nll:.4f}, CNF test NLL {nll:.4f}")
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a few iterations (smoke test)")
    parser.add_argument("--out", type=pathlib.Path, default=OUTPUT)
    args = parser.parse_args()
    main(args.quick, args.out)
