"""The exact average velocity of a 2-D Gaussian mixture: what the MeanFlow losses say about
it, and what it samples in one, two and four steps.

The exact flow map $X(x, s, t)$ of the mixture (`genmath.analytic.ExactFlowMap`, RK4 steps of
the exact velocity, as in `flow_maps_2d.py`) gives MeanFlow's exact average velocity
$u(z, r, t) = (z - X(z, t, r))/(t - r)$ (`meanflow.average_velocity_from_flow_map`), and the
perturbed map $X + \\epsilon (t - s) \\sin x$ the perturbed $u_\\epsilon = u + \\epsilon \\sin z$.

Top: the losses against $\\epsilon$ on one batch, $(r, t)$ uniform with $r < t$, plain squared
error (adaptive power 0); dotted: their value at the exact $u$. With the marginal velocity
$v(z_t, t)$ as tangent and in the target (`meanflow_target`), the MeanFlow loss is zero (to
the map's tolerance) at the exact $u$ and grows as $\\epsilon^2$. As trained, with the
conditional velocity $\\varepsilon - x$, it is large at the exact $u$ and even falls with
$\\epsilon$: its target has the right conditional mean, so its expected gradient is that of
the marginal loss, but its value is no measure of the error. The improved loss sits on the
flow-matching floor $E\\|\\varepsilon - x - v(z_t, t)\\|^2$ at the exact $u$ and rises above it.
Bottom: `meanflow.sample` with 1, 2 and 4 steps from the same noise, exact and perturbed
($\\epsilon = 0.6$), over the density contours, with the squared energy distance of each
sample to a data sample; the exact $u$ gives the same points whatever the steps (the
semigroup property). Seeded: `python docs/figures/meanflow_exact.py [--quick] [--out PATH]`.
"""

from __future__ import annotations

import argparse
import pathlib

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from genmath.analytic import ExactFlowMap, GaussianMixture  # noqa: E402
from genmath.core.path import GaussianPath  # noqa: E402
from genmath.families import meanflow as mf  # noqa: E402
from genmath.schedules import CondOT  # noqa: E402
from genmath.testing import energy_distance  # noqa: E402

OUTPUT = pathlib.Path(__file__).with_suffix(".png")
STEPS = (1, 2, 4)


def data() -> GaussianMixture:
    # the mixture of flow_maps_2d.py
    return GaussianMixture(
        torch.tensor([0.3, 0.4, 0.3]),
        torch.tensor([[-2.0, 0.0], [1.5, 1.5], [1.0, -2.0]]),
        torch.tensor([[[0.25, 0.1], [0.1, 0.2]], [[0.3, -0.1], [-0.1, 0.2]],
                      [[0.15, 0.0], [0.0, 0.4]]]),
    )



def average_velocity(exact: ExactFlowMap, eps: float):
    """$u_\\epsilon(z, r, t) = u(z, r, t) + \\epsilon \\sin z$, the average velocity of the map
    $X(z, t, r) - \\epsilon (t - r) \\sin z$."""
    u = mf.average_velocity_from_flow_map(exact, exact.velocity)
    if eps == 0.0:
        return u
    return lambda z, r, t: u(z, r, t) + eps * torch.sin(z)


def main(out: pathlib.Path, quick: bool = False) -> None:
    torch.set_num_threads(1)
    torch.set_default_dtype(torch.float64)
    law, path = data(), GaussianPath(CondOT())
    marginal = law.marginal(path)
    # 48 RK4 steps (flow_maps_2d.py): one jump from 1 to 0 and the composition of two or four
    # agree to 1e-4 at worst (panel b's titles); --quick only checks that the script runs.
    # Every loss takes a forward-mode derivative through the RK4 steps.
    exact = ExactFlowMap(marginal, steps=8 if quick else 48)
    gen = torch.Generator().manual_seed(0)
    batch = 64 if quick else 384
    x = law.sample(batch, generator=gen)
    noise = torch.randn(batch, 2, generator=gen)
    r, t = mf.sample_time_pairs(batch, "uniform", equal_fraction=0.0, generator=gen)
    z = (1 - t)[:, None] * x + t[:, None] * noise  # CondOT's z_t, as the losses draw it
    v = marginal.velocity(z, t)
    floor = float((noise - x - v).pow(2).sum(1).mean())
    sizes = [0.03, 0.3] if quick else [0.01, 0.03, 0.1, 0.3, 1.0]

    def losses(u):
        common = dict(r=r, t=t, noise=noise, adaptive_power=0.0)
        value, target = mf.meanflow_target(u, z, r, t, v)
        return {
            "MeanFlow, marginal velocity $v(z_t, t)$ as tangent": (value - target.detach())
            .pow(2).sum(1).mean(),
            "MeanFlow as trained (tangent $\\varepsilon - x$)": mf.meanflow_loss(u, x, **common),
            "improved MeanFlow as trained": mf.improved_meanflow_loss(u, x, **common),
        }

    at_exact = {k: float(val) for k, val in losses(average_velocity(exact, 0.0)).items()}
    curves = {k: [] for k in at_exact}
    for eps in sizes:
        for k, val in losses(average_velocity(exact, eps)).items():
            curves[k].append(float(val))
    for name, values in curves.items():
        print(f"{name}: {at_exact[name]:.3g} at the exact one; at eps = "
              + ", ".join(f"{e:g}: {val:.3g}" for e, val in zip(sizes, values, strict=True)))

    fig = plt.figure(figsize=(10.5, 7.6))
    grid = fig.add_gridspec(2, 3, height_ratios=[1.0, 1.05])
    ax = fig.add_subplot(grid[0, :])
    for (name, values), colour in zip(curves.items(), ("tab:blue", "tab:orange", "tab:purple"),
                                      strict=True):
        ax.loglog(sizes, values, "o-", color=colour, ms=3, label=name)
        ax.axhline(at_exact[name], color=colour, ls=":", lw=1)
        ax.annotate(f"{at_exact[name]:.1e}", (sizes[0], at_exact[name]), color=colour,
                    fontsize=8, xytext=(-4, 3), textcoords="offset points", ha="right")
    ax.axhline(floor, color="0.3", ls="-.", lw=0.8,
               label="flow-matching floor $E\\|\\varepsilon - x - v(z_t, t)\\|^2$")
    first = curves["MeanFlow, marginal velocity $v(z_t, t)$ as tangent"]
    ax.loglog(sizes, [first[-1] * (e / sizes[-1]) ** 2 for e in sizes], "k--", lw=0.7,
              label="$\\propto \\epsilon^2$")
    ax.set_xlim(sizes[0] / 3, sizes[-1] * 1.3)
    ax.set_ylim(top=1e3)
    ax.set_xlabel("perturbation size $\\epsilon$ of $u_\\epsilon = u + \\epsilon \\sin z$")
    ax.set_ylabel("loss (squared error, adaptive power 0)")
    ax.set_title("(a) MeanFlow losses at perturbed average velocities; dotted: at the exact one")
    ax.legend(fontsize=8, loc="center right")

    n_samples = 100 if quick else 2000
    start = torch.randn(n_samples, 2, generator=gen)
    y = law.sample(n_samples, generator=gen)
    reference = float(energy_distance(law.sample(n_samples, generator=gen), y))
    lims = torch.linspace(-4.5, 4.5, 160)
    xx, yy = torch.meshgrid(lims, lims, indexing="xy")
    density = law.log_prob(torch.stack([xx.ravel(), yy.ravel()], 1)).exp().reshape(xx.shape)
    one_step = mf.sample(average_velocity(exact, 0.0), start, steps=1).x
    for col, steps in enumerate(STEPS):
        ax = fig.add_subplot(grid[1, col])
        ax.contour(xx, yy, density, levels=8, colors="0.7", linewidths=0.7)
        for eps, colour, name in ((0.0, "tab:blue", "exact $u$"), (0.6, "tab:red", "$u_{0.6}$")):
            sample = mf.sample(average_velocity(exact, eps), start, steps=steps).x
            ax.scatter(sample[:, 0], sample[:, 1], s=2, color=colour, alpha=0.4,
                       label=f"{name}: $D_E^2$ = {float(energy_distance(sample, y)):.3f}")
            if eps == 0.0:
                moved = float((sample - one_step).norm(dim=1).max())
        ax.set_title("(b) 1 step" if steps == 1 else f"(b) {steps} steps; exact: max "
                     f"$|x_{steps} - x_1|$ = {moved:.0e}", fontsize=9)
        ax.set_xlim(-4.5, 4.5)
        ax.set_ylim(-4.5, 4.5)
        ax.set_aspect("equal")
        ax.legend(loc="lower left", fontsize=7, markerscale=3)
    fig.suptitle(f"exact average velocity of a 3-mode mixture (CondOT); $D_E^2$: squared "
                 f"energy distance to {n_samples} data draws (another {n_samples}: "
                 f"{reference:.3f})", fontsize=10)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    print(f"wrote {out}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=pathlib.Path, default=OUTPUT)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    main(args.out, args.quick)
