"""Masked diffusion on scikit-learn's 8x8 digits quantized to 4 grey levels (64 tokens, K = 4).

A time-independent MLP denoiser is trained on the continuous-time masked ELBO; the figure
shows the unmasking of a few samples over time, more samples, the training curve, and the
discrete-time D3PM bound of the same denoiser for several T against the continuous-time one.
Seeded; about a minute on 2 CPU cores. ``--quick`` runs a few iterations (used by the tests).

    python docs/figures/discrete_diffusion.py [--quick] [--out docs/figures/discrete_diffusion.png]
"""

import argparse
import pathlib
import time

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402

from genmath.core.discrete import MaskPath  # noqa: E402
from genmath.families.discrete_diffusion import (  # noqa: E402
    D3PM,
    TokenMLP,
    ancestral_sample,
    masked_diffusion_nelbo,
)

LEVELS = 4


def _show(ax, tokens, mask_id):
    image = tokens.reshape(8, 8).double()
    image = torch.where(tokens.reshape(8, 8) == mask_id, torch.nan, image)
    cmap = plt.get_cmap("gray_r").copy()
    cmap.set_bad("#d9534f")  # masked tokens in red
    ax.imshow(image, cmap=cmap, vmin=0, vmax=LEVELS - 1)
    ax.set_xticks([])
    ax.set_yticks([])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a few iterations only")
    parser.add_argument("--out", default=str(pathlib.Path(__file__).with_suffix(".png")))
    args = parser.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(0)

    pixels = torch.as_tensor(load_digits().data, dtype=torch.long)  # (1797, 64), 0..16
    tokens = pixels * LEVELS // 17
    order = torch.randperm(len(tokens), generator=g)
    train, test = tokens[order[:1500]], tokens[order[1500:]]
    if args.quick:
        test = test[:32]

    path = MaskPath(LEVELS)
    net = TokenMLP(
        64, path.num_states, LEVELS, hidden=512, time_conditioned=False, mask_id=path.mask_id
    )
    optimiser = torch.optim.Adam(net.parameters(), lr=1e-3)
    steps = 20 if args.quick else 1500
    curve = []
    start = time.time()
    for _ in range(steps):
        batch = train[torch.randint(0, len(train), (128,), generator=g)]
        optimiser.zero_grad()
        loss = masked_diffusion_nelbo(net, path, batch, generator=g).mean()
        loss.backward()
        optimiser.step()
        curve.append(float(loss.detach()))
    net.eval()
    seconds = time.time() - start

    with torch.no_grad():
        repeats = 2 if args.quick else 20
        held_out = test.repeat(repeats, 1)
        # stratified times: one per stratum of [0, 1], a lower-variance estimate of the integral
        strata = (torch.arange(len(held_out)) + torch.rand(len(held_out), generator=g)) / len(
            held_out
        )
        estimate = masked_diffusion_nelbo(net, path, held_out, t=strata, generator=g) / 64
        continuous = (float(estimate.mean()), float(estimate.std() / len(estimate) ** 0.5))
        step_counts = (2, 8) if args.quick else (2, 4, 8, 16, 64)
        discrete = []
        for T in step_counts:
            estimate = D3PM(net, path, T).negative_elbo(held_out, generator=g) / 64
            discrete.append((float(estimate.mean()), float(estimate.std() / len(estimate) ** 0.5)))
        sample_steps = 8 if args.quick else 64
        samples, trajectory, _ = ancestral_sample(
            net, path, 16, 64, sample_steps, g, time_independent=True, return_trajectory=True
        )

    figure = plt.figure(figsize=(11, 5.6))
    grid = figure.add_gridspec(4, 9, width_ratios=[1] * 6 + [0.3, 2.4, 0.1])
    shown = [round(f * sample_steps) for f in (0.0, 0.5, 0.75, 0.875, 0.95, 1.0)]
    for row in range(2):
        for col, index in enumerate(shown):
            ax = figure.add_subplot(grid[row, col])
            _show(ax, trajectory[index][row], path.mask_id)
            if row == 0:
                ax.set_title(f"t = {1 - index / sample_steps:.2f}", fontsize=9)
    for k in range(12):
        ax = figure.add_subplot(grid[2 + k // 6, k % 6])
        _show(ax, samples[2 + k], path.mask_id)
    ax = figure.add_subplot(grid[:2, 7])
    window = max(1, len(curve) // 50)
    smooth = torch.tensor(curve).unfold(0, window, window).mean(-1)
    ax.plot(torch.arange(len(smooth)) * window, smooth / 64)
    ax.set_xlabel("training step")
    ax.set_ylabel("masked −ELBO (nats / token)")
    ax.set_title(f"training ({seconds:.0f} s)", fontsize=9)
    ax = figure.add_subplot(grid[2:, 7])
    ax.errorbar(
        step_counts,
        [m for m, _ in discrete],
        yerr=[2 * se for _, se in discrete],
        fmt="o-",
        capsize=3,
        label="D3PM, T steps",
    )
    ax.axhline(continuous[0], color="k", ls="--", label="continuous")
    ax.axhspan(
        continuous[0] - 2 * continuous[1], continuous[0] + 2 * continuous[1], color="k", alpha=0.1
    )
    ax.set_xscale("log")
    ax.set_xticks(step_counts, [str(T) for T in step_counts])
    ax.minorticks_off()
    ax.set_xlabel("T")
    ax.set_ylabel("test −ELBO (nats / token)")
    ax.legend(fontsize=7, loc="upper right")
    figure.suptitle(
        "Masked diffusion on 8×8 digits (4 grey levels): unmasking over time (top), samples "
        "(bottom)",
        fontsize=10,
    )
    figure.tight_layout()
    figure.savefig(args.out, dpi=110)
    print(
        f"trained {steps} steps in {seconds:.1f} s; test -ELBO per token (mean, s.e.): "
        f"continuous {continuous[0]:.4f} ({continuous[1]:.4f}), D3PM "
        + ", ".join(
            f"T={T}: {m:.4f} ({se:.4f})" for T, (m, se) in zip(step_counts, discrete, strict=True)
        )
    )


if __name__ == "__main__":
    main()
