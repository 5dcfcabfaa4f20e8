"""A GAN on a 2-D Gaussian mixture: samples and the discriminator against the optimal one.

Trains an MLP generator and discriminator with the non-saturating loss and an R1 penalty
(`genmath.families.gan.train_gan`). Left: generated samples over the exact density contours
(`genmath.analytic.GaussianMixture`). Middle: the trained discriminator $D = \\sigma(v)$.
Right: the optimal discriminator $D^* = p/(p + q)$ against a broad Gaussian stand-in for
$q$ at initialisation, from `optimal_discriminator`, which the discriminator approximates
at each generator step.
Seeded: `python docs/figures/gan_2d.py [--quick] [--out PATH]`.
"""

from __future__ import annotations

import argparse
import pathlib

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from genmath.analytic import Gaussian, GaussianMixture  # noqa: E402
from genmath.families import gan  # noqa: E402

OUTPUT = pathlib.Path(__file__).with_suffix(".png")
LIMIT = 3.5


def data() -> GaussianMixture:
    angles = torch.arange(6) * (2 * torch.pi / 6)
    centres = 2.2 * torch.stack([angles.cos(), angles.sin()], 1)
    return GaussianMixture(torch.full((6,), 1 / 6), centres, torch.eye(2).expand(6, 2, 2) * 0.04)


def grid(n: int = 160):
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
    latent_dim = 4
    generator_net = gan.MLP(latent_dim, 2, hidden=128, depth=3)
    discriminator = gan.MLP(2, None, hidden=128, depth=3)
    history = gan.train_gan(
        generator_net,
        discriminator,
        lambda n, g: law.sample(n, g),
        latent_dim=latent_dim,
        loss="non_saturating",
        steps=10 if quick else 4000,
        batch_size=256,
        lr=1e-3,
        betas=(0.5, 0.99),
        r1_gamma=0.1,
        generator=generator,
    )

    with torch.no_grad():
        samples = generator_net(torch.randn(2000, latent_dim, generator=generator))
    xx, yy, points = grid()
    density = law.log_prob(points).exp().reshape(xx.shape)
    with torch.no_grad():
        learned = torch.sigmoid(discriminator(points)).reshape(xx.shape)
    broad = Gaussian(torch.zeros(2), 2.0 * torch.eye(2))
    optimal = gan.optimal_discriminator("minimax", law.log_prob, broad.log_prob)
    d_star = torch.sigmoid(optimal(points)).reshape(xx.shape)

    fig, axes = plt.subplots(1, 3, figsize=(13, 4.3))
    axes[0].contour(xx, yy, density, levels=6, colors="0.5", linewidths=0.6)
    axes[0].scatter(*samples.T, s=2, c="tab:red", alpha=0.5)
    axes[0].set_title(f"generated samples ({len(history.generator_loss)} generator steps)")
    for ax, field, title in (
        (axes[1], learned, "trained discriminator $D = \\sigma(v)$"),
        (axes[2], d_star, "optimal $D^* = p/(p+q)$, $q = \\mathcal{N}(0, 2I)$"),
    ):
        panel = ax.contourf(xx, yy, field, levels=20, cmap="RdBu_r", vmin=0, vmax=1)
        ax.contour(xx, yy, density, levels=4, colors="k", linewidths=0.4)
        fig.colorbar(panel, ax=ax, fraction=0.046)
        ax.set_title(title)
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
