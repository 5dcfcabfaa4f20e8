"""Figure for docs/core/elbo.md: the weighting w(lambda) by which each standard diffusion loss
weights the ELBO (Kingma & Gao 2023), on the CondOT and cosine-VP paths.

No randomness, no training: evaluates `genmath.core.elbo.elbo_weighting`. Writes the PNG next
to this script. `--quick` uses a coarser grid.
"""

import argparse
import pathlib

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from genmath.core.elbo import LOSSES, elbo_weighting  # noqa: E402
from genmath.core.path import GaussianPath  # noqa: E402
from genmath.core.schedules import CondOT, CosineVP  # noqa: E402

OUT = pathlib.Path(__file__).with_suffix(".png")


def main(quick: bool = False, out: pathlib.Path = OUT) -> None:
    torch.set_default_dtype(torch.float64)
    lam = torch.linspace(-10, 10, 41 if quick else 401)
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), sharey=True)
    cases = (("CondOT", CondOT()), ("cosine VP", CosineVP()))
    for ax, (name, schedule) in zip(axes, cases, strict=True):
        path = GaussianPath(schedule)
        lo, hi = (float(v) for v in path.log_snr(torch.tensor(schedule.safe_interval)))
        grid = lam[(lam >= hi) & (lam <= lo)]
        for loss in LOSSES:
            ax.semilogy(grid, elbo_weighting(loss, path, grid), label=f"{loss}-MSE")
        ax.axhline(1.0, color="k", lw=0.8, ls="--", label="ELBO (w = 1)")
        ax.set_title(name)
        ax.set_xlabel(r"log-SNR $\lambda$")
    axes[0].set_ylabel(r"$w(\lambda)$")
    axes[1].legend(fontsize=8, loc="lower left")
    fig.tight_layout()
    fig.savefig(out, dpi=110)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=pathlib.Path, default=OUT)
    args = parser.parse_args()
    main(args.quick, args.out)
