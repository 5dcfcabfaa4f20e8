"""Figure for docs/core/change_of_variables.md: the density of a small flow, computed by the
change-of-variables formula, against samples drawn through the inverse map.

No training: the layers have fixed, hand-set parameters. Seeded; writes the PNG next to
this script. `--quick` draws fewer samples on a coarser grid.
"""

import argparse
import pathlib

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from torch.distributions import Independent, Normal  # noqa: E402

from genmath.core.change_of_variables import Affine, Compose, Flow, Planar  # noqa: E402

OUT = pathlib.Path(__file__).with_suffix(".png")


def build_flow() -> Flow:
    torch.set_default_dtype(torch.float64)
    planars = []
    for w, u, b in (
        ([2.0, 0.5], [-1.8, 0.4], 0.0),
        ([0.3, 2.5], [0.6, -1.5], 0.5),
        ([1.5, -1.5], [1.2, 1.2], -0.3),
    ):
        layer = Planar(2)
        with torch.no_grad():
            layer.w.copy_(torch.tensor(w))
            layer.u.copy_(torch.tensor(u))
            layer.b.fill_(b)
        planars.append(layer)
    scale = Affine.from_matrix(torch.tensor([[1.4, 0.3], [-0.2, 1.1]]))
    return Flow(Compose(*planars, scale), Independent(Normal(torch.zeros(2), torch.ones(2)), 1))


def main(quick: bool = False, out: pathlib.Path = OUT) -> None:
    flow = build_flow()
    n, half = (261, 6.5) if quick else (521, 6.5)
    grid = torch.linspace(-half, half, n)
    xx, yy = torch.meshgrid(grid, grid, indexing="ij")
    with torch.no_grad():
        density = flow.log_prob(torch.stack([xx, yy], -1).reshape(-1, 2)).exp().reshape(n, n)
        samples = flow.sample(
            (1000 if quick else 3000,), generator=torch.Generator().manual_seed(0)
        )
    mass = torch.trapezoid(torch.trapezoid(density, grid, dim=1), grid).item()

    fig, axes = plt.subplots(1, 2, figsize=(9, 4.2), sharex=True, sharey=True)
    axes[0].contourf(xx, yy, density, levels=30, cmap="viridis")
    axes[0].set_title(
        f"exact density $p_Z(f(x))\\,|\\det J_f(x)|$ (grid mass {mass:.5f})", fontsize=9
    )
    axes[1].contour(xx, yy, density, levels=12, cmap="viridis", linewidths=0.8)
    axes[1].scatter(samples[:, 0], samples[:, 1], s=2, color="k", alpha=0.4)
    axes[1].set_title("samples $x = f^{-1}(z)$ over the same contours", fontsize=9)
    for ax in axes:
        ax.set_aspect("equal")
        ax.set_xlim(-half, half)
        ax.set_ylim(-half, half)
    fig.suptitle("Three planar layers and an affine map on a standard normal base", fontsize=10)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    print(f"wrote {out} (grid mass {mass:.6f})")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=pathlib.Path, default=OUT)
    args = parser.parse_args()
    main(args.quick, args.out)
