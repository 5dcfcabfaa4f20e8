"""Rectified flow and reflow on a 2-D Gaussian mixture: trajectories straighten.

Trains a velocity MLP by conditional flow matching on the CondOT path (1-rectified flow),
draws its deterministic coupling with `reflow_pairs`, and trains the 2-rectified flow on
those pairs (initialised from the first, as in Liu et al. 2023). The panels show the
trajectories of the exact marginal velocity (`genmath.analytic`), of both learned flows with
their straightness, and their one-step Euler samples over the exact density contours.
Seeded: `python docs/figures/reflow_2d.py [--quick] [--out PATH]`.
"""

from __future__ import annotations

import argparse
import copy
import pathlib

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from genmath.analytic import GaussianMixture  # noqa: E402
from genmath.core.dynamics import sample_ode  # noqa: E402
from genmath.core.path import GaussianPath  # noqa: E402
from genmath.families import flow_matching as fm  # noqa: E402
from genmath.nn import VelocityMLP  # noqa: E402
from genmath.schedules import CondOT  # noqa: E402

OUTPUT = pathlib.Path(__file__).with_suffix(".png")


def data() -> GaussianMixture:
    return GaussianMixture(
        torch.tensor([0.35, 0.35, 0.3]),
        torch.tensor([[-2.5, 1.5], [2.5, 1.5], [0.0, -2.5]]),
        torch.tensor([[[0.15, 0.0], [0.0, 0.15]]] * 3),
    )


def train(model, batches, path, iterations, generator, noise=None, data_pairs=None, lr=3e-3):
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, iterations)
    for _ in range(iterations):
        if data_pairs is None:
            x0, x1 = batches(256), None
        else:
            index = torch.randint(0, data_pairs[0].shape[0], (256,), generator=generator)
            x0, x1 = data_pairs[0][index], data_pairs[1][index]
        loss = fm.cfm_loss(model, x0, path, noise=x1, generator=generator)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        scheduler.step()
    return model


def main(quick: bool = False, out: pathlib.Path = OUTPUT) -> pathlib.Path:
    torch.set_default_dtype(torch.float64)
    torch.set_num_threads(1)  # small networks: extra threads only wait on a shared machine
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(0)
    mixture, path = data(), GaussianPath(CondOT())
    iterations = 30 if quick else 2500
    pairs = 512 if quick else 20000

    first = VelocityMLP(2, hidden=128, depth=2, activation="silu")
    train(first, lambda n: mixture.sample(n, generator), path, iterations, generator)
    noise = torch.randn(pairs, 2, generator=generator)
    x0, x1 = fm.reflow_pairs(first, noise, steps=100, method="rk4")
    second = train(
        copy.deepcopy(first), None, path, iterations, generator, data_pairs=(x0, x1), lr=1e-3
    )

    shown = torch.randn(60, 2, generator=torch.Generator().manual_seed(1))
    flows = {
        "exact marginal velocity\n(1-rectified flow of the data)": mixture.marginal(path).velocity,
        "learned 1-rectified flow": first,
        "learned 2-rectified flow (reflow)": second,
    }
    grid = torch.linspace(-4.5, 4.5, 200)
    xx, yy = torch.meshgrid(grid, grid, indexing="xy")
    density = mixture.log_prob(torch.stack([xx.flatten(), yy.flatten()], 1)).exp().reshape(xx.shape)
    cloud = torch.randn(2000, 2, generator=torch.Generator().manual_seed(2))

    fig, axes = plt.subplots(2, 3, figsize=(12, 8), sharex=True, sharey=True)
    for column, (title, velocity) in enumerate(flows.items()):
        with torch.no_grad():
            result = sample_ode(velocity, shown, steps=50, method="rk4", keep_trajectory=True)
            s = float(fm.straightness(result).mean())
            one_step = sample_ode(velocity, cloud, steps=1, method="euler").x
        ax = axes[0, column]
        ax.contour(xx, yy, density, levels=6, colors="0.6", linewidths=0.7)
        traj = result.trajectory
        for i in range(traj.shape[1]):
            ax.plot(traj[:, i, 0], traj[:, i, 1], color="tab:blue", alpha=0.5, linewidth=0.8)
        ax.scatter(shown[:, 0], shown[:, 1], s=6, color="tab:gray")
        ax.scatter(result.x[:, 0], result.x[:, 1], s=6, color="tab:red")
        ax.set_title(f"{title}\nstraightness S = {s:.3f}", fontsize=10)
        ax = axes[1, column]
        ax.contour(xx, yy, density, levels=6, colors="0.35", linewidths=0.8)
        ax.scatter(one_step[:, 0], one_step[:, 1], s=2, alpha=0.4, color="tab:red")
        ax.set_title("one Euler step (NFE = 1)", fontsize=10)
    for ax in axes.flat:
        ax.set_aspect("equal")
        ax.set_xlim(-4.5, 4.5)
        ax.set_ylim(-4.5, 4.5)
    fig.suptitle(
        "CondOT path, t = 1 noise (gray) to t = 0 data (red); contours: exact data density",
        fontsize=11,
    )
    fig.tight_layout(rect=(0, 0, 1, 0.93))  # room for the suptitle
    out = pathlib.Path(out)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a few iterations (for the tests)")
    parser.add_argument("--out", type=pathlib.Path, default=OUTPUT)
    args = parser.parse_args()
    print(main(args.quick, args.out))
