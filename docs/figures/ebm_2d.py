"""An energy-based model on a 2-D Gaussian mixture: energy landscape and Langevin samples.

Left: the exact log-density of the mixture (`genmath.analytic.GaussianMixture`) with ULA and
MALA samples drawn with its exact score. Middle: the energy $E_\\theta$ of an MLP trained by
persistent contrastive divergence (ULA negatives). Right: ULA samples of the trained EBM
from uniform noise, over the exact contours.
Seeded: `python docs/figures/ebm_2d.py [--quick] [--out PATH]`.
"""

from __future__ import annotations

import argparse
import pathlib

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from genmath.analytic import GaussianMixture  # noqa: E402
from genmath.core.score import score_from_log_prob  # noqa: E402
from genmath.families import ebm  # noqa: E402
from genmath.families.gan import MLP  # noqa: E402

OUTPUT = pathlib.Path(__file__).with_suffix(".png")
LIMIT = 3.0


def data() -> GaussianMixture:
    centres = torch.tensor([[-1.5, -1.5], [-1.5, 1.5], [1.5, -1.5], [1.5, 1.5]])
    return GaussianMixture(torch.full((4,), 0.25), centres, torch.eye(2).expand(4, 2, 2) * 0.12)


def grid(n: int = 150):
    axis = torch.linspace(-LIMIT, LIMIT, n)
    xx, yy = torch.meshgrid(axis, axis, indexing="xy")
    return xx, yy, torch.stack([xx.flatten(), yy.flatten()], 1)


def main(quick: bool = False, out: pathlib.Path = OUTPUT) -> pathlib.Path:
    torch.set_default_dtype(torch.float64)
    # small tensors: intra-op threads cost more than they save on a shared CPU
    torch.set_num_threads(1)
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(0)
    law = data()
    iterations = 10 if quick else 1500
    sampler_steps = 10 if quick else 200

    # exact score: ULA (biased for a finite step) and MALA (exact)
    start = 2 * LIMIT * (torch.rand(2000, 2, generator=generator) - 0.5)
    step = 0.05
    ula = ebm.langevin(
        score_from_log_prob(law.log_prob),
        start,
        step_size=step,
        steps=sampler_steps,
        generator=generator,
    ).x
    mala = ebm.mala(law.log_prob, start, step_size=step, steps=sampler_steps, generator=generator)

    # persistent contrastive divergence with ULA negatives
    model = ebm.EnergyModel(MLP(2, None, hidden=64, depth=3))
    chains = law.sample(1000, generator)
    cd = ebm.ContrastiveDivergence(model, steps=20, step_size=0.01, persistent=True, init=chains)
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    for _ in range(iterations):
        batch = law.sample(256, generator)
        # reinitialise 5% of the chains from noise each update so that PCD keeps exploring
        fresh = torch.rand(cd.chains.shape[0], generator=generator) < 0.05
        noise = 2 * LIMIT * (torch.rand(cd.chains.shape, generator=generator) - 0.5)
        cd.chains = torch.where(fresh[:, None], noise, cd.chains)
        negatives = cd.negatives(batch, generator)
        loss = ebm.contrastive_divergence_loss(model, batch, negatives)
        # a small penalty on the energies' magnitude keeps them bounded (Du & Mordatch 2019)
        regulariser = 0.1 * (
            model.energy(batch).pow(2).mean() + model.energy(negatives).pow(2).mean()
        )
        optimizer.zero_grad()
        (loss + regulariser).backward()
        optimizer.step()

    start = 2 * LIMIT * (torch.rand(1000, 2, generator=generator) - 0.5)
    samples = ebm.langevin(
        model.score, start, step_size=0.01, steps=300 if not quick else 5, generator=generator
    ).x

    xx, yy, points = grid()
    exact = law.log_prob(points).reshape(xx.shape)
    with torch.no_grad():
        energy = model.energy(points).reshape(xx.shape)

    fig, axes = plt.subplots(1, 3, figsize=(13, 4.3))
    axes[0].contourf(xx, yy, exact.clamp_min(-12), levels=25, cmap="Blues")
    axes[0].scatter(*ula.T, s=2, c="tab:red", alpha=0.5, label=f"ULA, step {step}")
    axes[0].scatter(*mala.x.T, s=2, c="k", alpha=0.5, label="MALA")
    axes[0].set_title("exact log-density, exact-score Langevin")
    axes[0].legend(loc="upper right", fontsize=8, markerscale=4)
    panel = axes[1].contourf(xx, yy, energy, levels=25, cmap="viridis")
    fig.colorbar(panel, ax=axes[1], fraction=0.046)
    axes[1].set_title("learned energy $E_\\theta$ (PCD)")
    axes[2].contour(xx, yy, exact.exp(), levels=6, colors="0.5", linewidths=0.6)
    axes[2].scatter(*samples.T, s=2, c="tab:green", alpha=0.6)
    axes[2].set_title("ULA samples of the trained EBM")
    for ax in axes:
        ax.set_xlim(-LIMIT, LIMIT)
        ax.set_ylim(-LIMIT, LIMIT)
        ax.set_aspect("equal")
    fig.tight_layout()
    out = pathlib.Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a few iterations (for the tests)")
    parser.add_argument("--out", type=pathlib.Path, default=OUTPUT)
    args = parser.parse_args()
    print(main(args.quick, args.out))
