"""One-step generation on a 2-D Gaussian mixture: consistency distillation and MeanFlow next
to multi-step flow-matching samples.

Trains a flow-matching velocity (CondOT, CFM loss), distils a consistency model from it
(Heun teacher steps on the Karras grid, EMA target), and trains a MeanFlow average-velocity
network from data (JVP target, adaptive weight). Each panel shows samples over the exact
density contours with the average exact log-density of the samples (higher is better; the
data's own value is in the title). Seeded: `python docs/figures/one_step_2d.py [--quick]
[--out PATH]`.
"""

from __future__ import annotations

import argparse
import pathlib

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from genmath.analytic import GaussianMixture  # noqa: E402
from genmath.core.path import GaussianPath  # noqa: E402
from genmath.families import consistency as cm  # noqa: E402
from genmath.families import flow_matching as fm  # noqa: E402
from genmath.families import meanflow as mf  # noqa: E402
from genmath.nn import VelocityMLP  # noqa: E402
from genmath.schedules import CondOT  # noqa: E402

OUTPUT = pathlib.Path(__file__).with_suffix(".png")


def data() -> GaussianMixture:
    angles = torch.arange(6) * (2 * torch.pi / 6)
    means = 3.0 * torch.stack([angles.cos(), angles.sin()], 1)
    return GaussianMixture(torch.full((6,), 1 / 6), means, torch.eye(2).expand(6, 2, 2) * 0.12)


def _fit(parameters, loss_fn, iterations, lr, after_step=None):
    optimizer = torch.optim.Adam(parameters, lr=lr)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, iterations)
    for _ in range(iterations):
        loss = loss_fn()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        scheduler.step()
        if after_step is not None:
            after_step()


def main(quick: bool = False, out: pathlib.Path = OUTPUT) -> pathlib.Path:
    torch.set_default_dtype(torch.float64)
    torch.set_num_threads(1)  # small networks: extra threads only wait on a shared machine
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(0)
    mixture, path = data(), GaussianPath(CondOT())
    iterations = 20 if quick else 2500

    def batch():
        return mixture.sample(256, generator)

    teacher = VelocityMLP(2, hidden=128, depth=2, activation="silu")
    _fit(
        teacher.parameters(),
        lambda: fm.cfm_loss(teacher, batch(), path, generator=generator),
        iterations,
        3e-3,
    )
    teacher.requires_grad_(False)

    consistency = cm.ConsistencyModel(VelocityMLP(2, hidden=128, depth=2, activation="silu"), path)
    consistency.network.load_state_dict(teacher.state_dict())
    target = consistency.target_copy()
    _fit(
        consistency.parameters(),
        lambda: cm.consistency_distillation_loss(
            consistency, target, batch(), path, teacher, grid=18, solver="heun", generator=generator
        ),
        iterations,
        1e-3,
        after_step=lambda: cm.ema_update(target, consistency, 0.95),
    )

    meanflow = mf.MeanFlow(mf.AverageVelocityMLP(2, hidden=128, depth=3))
    _fit(
        meanflow.parameters(),
        lambda: meanflow.loss(
            batch(), generator=generator, distribution="uniform", equal_fraction=0.5
        ),
        iterations,
        3e-3,
    )

    noise = torch.randn(3000, 2, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        panels = {
            "flow matching, Euler, NFE = 50": fm.sample(teacher, noise, steps=50).x,
            "flow matching, Euler, NFE = 1": fm.sample(teacher, noise, steps=1).x,
            "consistency distillation, NFE = 1": cm.sample(target, noise).x,
            "MeanFlow, NFE = 1": meanflow.sample(noise, steps=1).x,
            "MeanFlow, NFE = 2": meanflow.sample(noise, steps=2).x,
        }
    grid = torch.linspace(-5, 5, 200)
    xx, yy = torch.meshgrid(grid, grid, indexing="xy")
    density = mixture.log_prob(torch.stack([xx.flatten(), yy.flatten()], 1)).exp().reshape(xx.shape)
    reference = float(mixture.log_prob(mixture.sample(3000, generator)).mean())

    # five panels over a 2 x 3 grid (the sixth axis removed), about 1150 px wide at 110 dpi:
    # readable at the page's width, where a row of five shrinks each panel's text
    fig, grid_axes = plt.subplots(
        2, 3, figsize=(10.5, 7.6), sharex=True, sharey=True, layout="constrained"
    )
    axes = grid_axes.flatten()
    axes[-1].remove()
    axes[2].tick_params(labelbottom=True)  # no panel below it to carry the x labels
    for ax, (title, x) in zip(axes[: len(panels)], panels.items(), strict=True):
        score = float(mixture.log_prob(x).mean())
        ax.contour(xx, yy, density, levels=5, colors="0.4", linewidths=0.7)
        ax.scatter(x[:, 0], x[:, 1], s=2, alpha=0.35, color="tab:red")
        ax.set_title(f"{title}\nmean log p(x) = {score:.2f}", fontsize=10)
        ax.set_aspect("equal")
        ax.set_xlim(-5, 5)
        ax.set_ylim(-5, 5)
    fig.suptitle(
        f"One-step generators vs multi-step flow samples (CondOT path); data: mean log p = {reference:.2f}",
        fontsize=11,
    )
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
