"""Normalizing flows on a 2-D Gaussian mixture: learned densities against the exact one.

Trains RealNVP, MAF, a neural spline flow and a residual flow (exact log-det, d = 2) by maximum likelihood on
samples of a `genmath.analytic.GaussianMixture`, and plots each model's density next to the
exact density, with the test negative log-likelihood of each (the exact model's is the
floor). Seeded: `python docs/figures/flows_2d.py [--quick] [--out PATH]`.
"""

from __future__ import annotations

import argparse
import pathlib

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from genmath.analytic import GaussianMixture  # noqa: E402
from genmath.families.flows import MAF, NSF, RealNVP  # noqa: E402
from genmath.families.residual import ResidualFlow  # noqa: E402

OUTPUT = pathlib.Path(__file__).with_suffix(".png")


def data() -> GaussianMixture:
    return GaussianMixture(
        torch.tensor([0.4, 0.35, 0.25]),
        torch.tensor([[-2.0, 1.0], [2.0, 1.5], [0.5, -2.0]]),
        torch.tensor(
            [[[0.5, 0.35], [0.35, 0.4]], [[0.2, 0.0], [0.0, 0.6]], [[0.8, -0.3], [-0.3, 0.2]]]
        ),
    )


def train(model, mixture, iterations, generator, batch=256, lr=2e-3):
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, max(iterations, 1))
    for _ in range(iterations):
        loss = -model.log_prob(mixture.sample(batch, generator=generator)).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        scheduler.step()
    return model


def main(quick: bool = False, out: pathlib.Path = OUTPUT) -> pathlib.Path:
    torch.set_default_dtype(torch.float64)
    torch.manual_seed(0)
    torch.set_num_threads(1)
    generator = torch.Generator().manual_seed(0)
    mixture = data()
    iterations = 3 if quick else 1500
    models = {
        "RealNVP (8 couplings)": RealNVP(2, 8, (64, 64), scale_clamp=3.0),
        "MAF (5 layers)": MAF(2, 5, (64, 64), scale_clamp=3.0),
        "NSF (4 spline couplings)": NSF(2, 4, (64, 64), bins=8, bound=5.0),
        "Residual flow (10 blocks)": ResidualFlow(
            2, 10, (64, 64), lipschitz=0.97, logdet="exact", activation="lipswish"
        ),
    }
    for model in models.values():
        train(model, mixture, iterations, generator)

    test = mixture.sample(2000 if quick else 20000, generator=generator)
    n = 60 if quick else 200
    axis = torch.linspace(-5, 5, n)
    grid = torch.stack(torch.meshgrid(axis, axis, indexing="xy"), -1).reshape(-1, 2)
    panels = {"exact": mixture.log_prob(grid)}
    nll = {"exact": float(-mixture.log_prob(test).mean())}
    with torch.no_grad():
        for name, model in models.items():
            panels[name] = model.log_prob(grid)
            nll[name] = float(-model.log_prob(test).mean())

    # five panels over a 2 x 3 grid (the sixth axis removed), about 1150 px wide at 110 dpi:
    # readable at the page's width, where a row of five shrinks each panel's text
    fig, grid_axes = plt.subplots(2, 3, figsize=(10.5, 7.4), layout="constrained")
    axes = grid_axes.flatten()
    axes[-1].remove()
    cell = float(axis[1] - axis[0]) ** 2
    for ax, (name, log_prob) in zip(axes[: len(panels)], panels.items(), strict=True):
        density = log_prob.exp().reshape(n, n)
        ax.imshow(density, origin="lower", extent=(-5, 5, -5, 5), cmap="magma")
        ax.contour(
            axis, axis, panels["exact"].exp().reshape(n, n), levels=6, colors="w", linewidths=0.5
        )
        mass = float(density.sum()) * cell
        ax.set_title(f"{name}\ntest NLL {nll[name]:.3f}, mass {mass:.3f}", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    out = pathlib.Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    for name, value in nll.items():
        print(f"{name}: test NLL {value:.4f}")
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a few iterations (smoke test)")
    parser.add_argument("--out", type=pathlib.Path, default=OUTPUT)
    args = parser.parse_args()
    main(args.quick, args.out)
