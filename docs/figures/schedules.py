"""Figure for docs/core/paths.md: alpha_t, sigma_t and the log-SNR of each built-in schedule.

No randomness and no training: the curves are the compiled schedule functions on a grid
(t = 0 data, t = 1 noise), with each schedule's safe interval marked. Writes the PNG next to
this script. ``--quick`` uses a coarser grid.

    python docs/figures/schedules.py [--quick] [--out docs/figures/schedules.png]
"""

import argparse
import pathlib

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from genmath.schedules import VE, VP, CondOT, CosineVP  # noqa: E402

OUT = pathlib.Path(__file__).with_suffix(".png")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="coarser grid")
    parser.add_argument("--out", type=pathlib.Path, default=OUT)
    args = parser.parse_args()

    t = torch.linspace(0.0, 1.0, 101 if args.quick else 1001, dtype=torch.float64)
    schedules = [
        ("CondOT", CondOT()),
        ("VP(0.1, 20)", VP(0.1, 20.0)),
        ("CosineVP(s=0.008)", CosineVP(0.008)),
        ("VE(0.01, 50)", VE(0.01, 50.0)),
    ]
    fig, axes = plt.subplots(1, 3, figsize=(12, 4.2), constrained_layout=True)
    for (name, schedule), colour in zip(schedules, ("C0", "C1", "C2", "C3"), strict=True):
        alpha, sigma = schedule.alpha(t), schedule.sigma(t)
        axes[0].plot(t, alpha, color=colour, label=name)
        axes[1].plot(t, sigma, color=colour, label=name)
        lo, hi = schedule.safe_interval
        inside = (t >= lo) & (t <= hi)
        axes[2].plot(t[inside], schedule.log_snr(t[inside]), color=colour, label=name)
    axes[0].set_title(r"$\alpha_t$ (data coefficient)")
    axes[1].set_title(r"$\sigma_t$ (noise coefficient, log scale)")
    axes[1].set_yscale("log")
    axes[1].set_ylim(1e-3, 60)
    axes[2].set_title(r"$\lambda_t = \log(\alpha_t^2/\sigma_t^2)$ on the safe interval")
    for ax in axes:
        ax.set_xlabel("t   (0 = data, 1 = noise)")
        ax.grid(alpha=0.3)
    axes[0].legend(frameon=False)
    fig.savefig(args.out, dpi=110)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
