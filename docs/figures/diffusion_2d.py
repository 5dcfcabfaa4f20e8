"""Diffusion on a 2-D Gaussian mixture: the forward path, reverse trajectories, samples
against the exact density, and bits/dim during training.

A small `MLPDenoiser` is trained with DDPM's L_simple on the VP path (T = 1000) and sampled
by ancestral sampling (trajectories: the deterministic DDIM sampler from the same starts); its exact log-likelihood comes from the probability-flow ODE
(`ScoreSDE.log_likelihood`). The mixture is `genmath.analytic.GaussianMixture`, so every
contour is the exact density of the path's marginal.

    python docs/figures/diffusion_2d.py [--quick] [--out PATH]
"""

from __future__ import annotations

import argparse
import math
import pathlib
import time

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from genmath.analytic import GaussianMixture  # noqa: E402
from genmath.core.path import GaussianPath  # noqa: E402
from genmath.families import diffusion  # noqa: E402
from genmath.families.denoisers import MLPDenoiser  # noqa: E402
from genmath.schedules import VP  # noqa: E402

HERE = pathlib.Path(__file__).parent


def _data() -> GaussianMixture:
    angles = torch.arange(6) * (2 * math.pi / 6)
    means = 2.5 * torch.stack([angles.cos(), angles.sin()], 1)
    covs = torch.stack([0.12 * torch.eye(2)] * 6)
    covs[::2] = torch.tensor([[0.3, 0.15], [0.15, 0.12]])
    return GaussianMixture(torch.full((6,), 1 / 6), means, covs)


def _contours(ax, log_prob, lim=4.5):
    axis = torch.linspace(-lim, lim, 200)
    xx, yy = torch.meshgrid(axis, axis, indexing="xy")
    with torch.no_grad():
        density = log_prob(torch.stack([xx.flatten(), yy.flatten()], 1)).exp().reshape(200, 200)
    ax.contour(xx, yy, density, levels=8, colors="tab:blue", linewidths=0.7)
    ax.set_xlim(-lim, lim)
    ax.set_ylim(-lim, lim)
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=pathlib.Path, default=HERE / "diffusion_2d.png")
    parser.add_argument("--quick", action="store_true", help="a few iterations (for tests)")
    args = parser.parse_args()
    torch.set_default_dtype(torch.float32)
    # small networks on a shared 2-core machine: one thread avoids contention between threads
    torch.set_num_threads(1)
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(0)
    start = time.time()

    data = _data()
    path = GaussianPath(VP())
    marginal = data.marginal(path)
    iterations = 30 if args.quick else 3000
    steps = 50 if args.quick else 1000
    checkpoints = {iterations} if args.quick else {200, 500, 1000, 2000, 3000}
    n_eval = 32 if args.quick else 256

    network = MLPDenoiser(2, hidden=128, depth=3)
    model = diffusion.DDPM(network, diffusion.DiscreteSchedule.from_path(path, steps))
    optimizer = torch.optim.Adam(network.parameters(), lr=2e-3)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, iterations)
    held_out = data.sample(n_eval, generator=generator)
    # the data's own bits/dim: -E[log p] / (d log 2), by a Monte-Carlo average of exact log p
    reference = data.sample(20000, generator=generator)
    data_bpd = float(-data.log_prob(reference).mean() / (2 * math.log(2)))

    bpd_curve = []
    for it in range(1, iterations + 1):
        loss = model.loss(data.sample(512, generator=generator), generator=generator)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        scheduler.step()
        if it in checkpoints:
            sde = diffusion.ScoreSDE(network, path, parameterization="eps")
            with torch.no_grad():
                log_prob = sde.log_likelihood(held_out, rtol=1e-4, atol=1e-4)
            bpd_curve.append((it, float(-log_prob.mean() / (2 * math.log(2)))))
            print(f"iteration {it}: loss {loss.item():.3f}, bits/dim {bpd_curve[-1][1]:.3f}")

    with torch.no_grad():
        noise = torch.randn(2000, 2, generator=generator)
        samples = model.sample(noise, generator=generator).x
        # the probability-flow trajectories (DDIM, eta = 0) of 50 of the same starts
        trajectory = diffusion.ddim_sample(
            network, noise[:50], path, steps=100, eta=0.0, keep_trajectory=True
        ).trajectory

    fig, axes = plt.subplots(2, 3, figsize=(11, 7.2))
    x0 = data.sample(1500, generator=generator)
    for ax, t in zip(axes[0], (0.0, 0.3, 1.0), strict=True):
        tt = torch.tensor(t)
        xt, _ = path.sample(x0, tt, generator=generator)
        _contours(ax, lambda x, tt=tt: marginal.log_prob(x, tt))
        ax.scatter(xt[:, 0], xt[:, 1], s=1, color="k", alpha=0.3)
        ax.set_title(f"forward path, t = {t:g}")

    ax = axes[1, 0]
    _contours(ax, data.log_prob)
    for k in range(trajectory.shape[1]):
        ax.plot(trajectory[:, k, 0], trajectory[:, k, 1], lw=0.6, color="tab:orange", alpha=0.8)
    ax.scatter(trajectory[-1, :, 0], trajectory[-1, :, 1], s=6, color="k", zorder=3)
    ax.set_title("reverse trajectories (DDIM, $\\eta = 0$)")

    ax = axes[1, 1]
    _contours(ax, data.log_prob)
    ax.scatter(samples[:, 0], samples[:, 1], s=1, color="k", alpha=0.4)
    ax.set_title(f"DDPM samples (T = {steps}) vs exact density")

    ax = axes[1, 2]
    its, bpds = zip(*bpd_curve, strict=True)
    ax.plot(its, bpds, "o-", label="model (probability-flow ODE)")
    ax.axhline(data_bpd, color="k", ls="--", lw=1, label="data: $-E\\log p/(d\\log 2)$")
    ax.set_xlabel("training iteration")
    ax.set_ylabel("bits / dim (held-out)")
    ax.set_title("exact likelihood during training")
    ax.legend(fontsize=8)

    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=110)
    print(f"wrote {args.out} in {time.time() - start:.1f} s")


if __name__ == "__main__":
    main()
