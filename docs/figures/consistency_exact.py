"""The exact consistency function of a 2-D Gaussian mixture: what the consistency losses say
about it, and what it samples in one, two and four steps.

The exact flow map $X(x, s, t)$ of the mixture (`genmath.analytic.ExactFlowMap`, RK4 steps of
the exact velocity, as in `flow_maps_2d.py`) gives the exact consistency function
$f(x, t) = X(x, t, t_\\mathrm{min})$, written here as a `ConsistencyModel` (Song et al.'s
$c_\\mathrm{skip} x + c_\\mathrm{out} F$, with the $F$ that makes it exact), and a perturbed
one from the perturbed map $X + \\epsilon (t - s) \\sin x$, $f_\\epsilon = f - \\epsilon
(t - t_\\mathrm{min}) \\sin x$, which keeps the boundary condition.

Top: the losses against $\\epsilon$ (dotted: their value at the exact function). Consistency
distillation with the exact map as teacher step is zero (to the map's tolerance) at the exact
function and grows as $\\epsilon^2$; with one Heun teacher step its floor is the teacher's
error; consistency training's one-sample loss is far from zero at the exact function and
barely moves with $\\epsilon$. Bottom: `consistency.sample` with 1, 2 and 4 steps from the
same noise, exact and perturbed ($\\epsilon = 0.6$), over the density contours, with the
squared energy distance of each sample to a data sample (the mean exact log-density would
reward the perturbed function, which shrinks the modes). Seeded:
`python docs/figures/consistency_exact.py [--quick] [--out PATH]`.
"""

from __future__ import annotations

import argparse
import pathlib

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from genmath.analytic import ExactFlowMap, GaussianMixture  # noqa: E402
from genmath.core.path import GaussianPath  # noqa: E402
from genmath.families import consistency as cm  # noqa: E402
from genmath.schedules import CondOT  # noqa: E402
from genmath.testing import energy_distance  # noqa: E402

OUTPUT = pathlib.Path(__file__).with_suffix(".png")
SAMPLE_TIMES = {1: None, 2: [0.5], 4: [0.75, 0.5, 0.25]}


def data() -> GaussianMixture:
    # the mixture of flow_maps_2d.py
    return GaussianMixture(
        torch.tensor([0.3, 0.4, 0.3]),
        torch.tensor([[-2.0, 0.0], [1.5, 1.5], [1.0, -2.0]]),
        torch.tensor([[[0.25, 0.1], [0.1, 0.2]], [[0.3, -0.1], [-0.1, 0.2]],
                      [[0.15, 0.0], [0.0, 0.4]]]),
    )


class _Residual(nn.Module):
    """The network $F$ with $c_\\mathrm{skip} x + c_\\mathrm{out} F = f$ for a given function
    $f(x, t)$: $F = (f - c_\\mathrm{skip} x)/c_\\mathrm{out}$ where $c_\\mathrm{out} > 0$ (at
    $t_\\mathrm{min}$, where $c_\\mathrm{out} = 0$, the model returns $x$ whatever $F$)."""

    def __init__(self, f, path: GaussianPath, s_min: float) -> None:
        super().__init__()
        self.f, self.path, self.s_min = f, path, s_min

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        s = self.path.sigma(t) / self.path.alpha(t)
        c_skip, c_out = (c[:, None] for c in cm.boundary_coefficients(s, self.s_min))
        inside = c_out > 0
        safe = torch.where(inside, c_out, torch.ones_like(c_out))
        return torch.where(inside, (self.f(x, t) - c_skip * x) / safe, torch.zeros_like(x))


def consistency_model(exact: ExactFlowMap, path: GaussianPath, eps: float) -> cm.ConsistencyModel:
    """$f_\\epsilon(x, t) = X(x, t, t_\\mathrm{min}) - \\epsilon (t - t_\\mathrm{min}) \\sin x$ as
    a `ConsistencyModel` on ``path`` (its default time range, the safe interval)."""
    probe = cm.ConsistencyModel(nn.Identity(), path)
    t_min = probe.t_min

    def f(x, t):
        return exact(x, t, torch.full_like(t, t_min)) - eps * (t - t_min)[:, None] * torch.sin(x)

    return cm.ConsistencyModel(_Residual(f, path, probe.s_min), path)



def main(out: pathlib.Path, quick: bool = False) -> None:
    torch.set_num_threads(1)
    # float64: the Karras grid is built in the default dtype, and the exact loss is ~1e-14
    torch.set_default_dtype(torch.float64)
    law, path = data(), GaussianPath(CondOT())
    marginal = law.marginal(path)
    # 48 RK4 steps (flow_maps_2d.py): the distillation loss with the exact map as teacher step
    # is then ~1e-14 at the exact function; --quick only checks that the script runs
    exact = ExactFlowMap(marginal, steps=8 if quick else 48)
    gen = torch.Generator().manual_seed(0)
    batch = 128 if quick else 1024
    x0 = law.sample(batch, generator=gen)
    noise = torch.randn(batch, 2, generator=gen)
    sizes = [0.03, 0.3] if quick else [0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0]

    def losses(model):
        # one draw of the adjacent times (seed 1) and one noise for every model and loss
        def draw():
            return torch.Generator().manual_seed(1)
        return {
            "distillation, exact map as teacher step (N = 18)": cm.consistency_distillation_loss(
                model, model, x0, path, None, grid=18, solver=exact, noise=noise,
                generator=draw()),
            "distillation, one Heun teacher step (N = 18)": cm.consistency_distillation_loss(
                model, model, x0, path, marginal.velocity, grid=18, solver="heun", noise=noise,
                generator=draw()),
            "training (N = 18)": cm.consistency_training_loss(
                model, model, x0, path, steps=18, noise=noise, generator=draw()),
            "training (N = 150)": cm.consistency_training_loss(
                model, model, x0, path, steps=150, noise=noise, generator=draw()),
        }

    at_exact = {k: float(v) for k, v in losses(consistency_model(exact, path, 0.0)).items()}
    curves = {k: [] for k in at_exact}
    for eps in sizes:
        for k, v in losses(consistency_model(exact, path, eps)).items():
            curves[k].append(float(v))
    for name, values in curves.items():
        print(f"{name}: {at_exact[name]:.3g} at the exact one; at eps = "
              + ", ".join(f"{e:g}: {val:.3g}" for e, val in zip(sizes, values, strict=True)))

    fig = plt.figure(figsize=(10.5, 7.6))
    grid = fig.add_gridspec(2, 3, height_ratios=[1.0, 1.05])
    ax = fig.add_subplot(grid[0, :])
    colours = ("tab:blue", "tab:green", "tab:orange", "tab:purple")
    for (name, values), colour in zip(curves.items(), colours, strict=True):
        ax.loglog(sizes, values, "o-", color=colour, ms=3, label=name)
        ax.axhline(at_exact[name], color=colour, ls=":", lw=1)
        ax.annotate(f"{at_exact[name]:.1e}", (sizes[0], at_exact[name]), color=colour,
                    fontsize=8, xytext=(-4, 3), textcoords="offset points", ha="right")
    first = curves["distillation, exact map as teacher step (N = 18)"]
    ax.loglog(sizes, [first[-1] * (e / sizes[-1]) ** 2 for e in sizes], "k--", lw=0.7,
              label="$\\propto \\epsilon^2$")
    ax.set_xlim(sizes[0] / 3, sizes[-1] * 1.3)
    ax.set_xlabel("perturbation size $\\epsilon$ of $f_\\epsilon = f - \\epsilon\\,"
                  "(t - t_\\mathrm{min}) \\sin x$")
    ax.set_ylabel("loss (squared distance)")
    ax.set_title("(a) consistency losses at perturbed functions; dotted: at the exact one")
    ax.legend(fontsize=8, loc="center right")

    n_samples = 100 if quick else 2000
    z = torch.randn(n_samples, 2, generator=gen)
    y = law.sample(n_samples, generator=gen)
    reference = float(energy_distance(law.sample(n_samples, generator=gen), y))
    lims = torch.linspace(-4.5, 4.5, 160)
    xx, yy = torch.meshgrid(lims, lims, indexing="xy")
    density = law.log_prob(torch.stack([xx.ravel(), yy.ravel()], 1)).exp().reshape(xx.shape)
    models = ((consistency_model(exact, path, 0.0), "tab:blue", "exact $f$"),
              (consistency_model(exact, path, 0.6), "tab:red", "$f_{0.6}$"))
    for col, (steps, times) in enumerate(SAMPLE_TIMES.items()):
        ax = fig.add_subplot(grid[1, col])
        ax.contour(xx, yy, density, levels=8, colors="0.7", linewidths=0.7)
        for model, colour, name in models:
            x = cm.sample(model, z, times=times, generator=torch.Generator().manual_seed(2)).x
            ax.scatter(x[:, 0], x[:, 1], s=2, color=colour, alpha=0.4,
                       label=f"{name}: $D_E^2$ = {float(energy_distance(x, y)):.3f}")
        ax.set_title(f"(b) {steps} step{'s' if steps > 1 else ''}" +
                     (f", re-noised at t = {', '.join(str(t) for t in times)}" if times else ""),
                     fontsize=9)
        ax.set_xlim(-4.5, 4.5)
        ax.set_ylim(-4.5, 4.5)
        ax.set_aspect("equal")
        ax.legend(loc="lower left", fontsize=7, markerscale=3)
    fig.suptitle(f"exact consistency function of a 3-mode mixture (CondOT); $D_E^2$: squared "
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
