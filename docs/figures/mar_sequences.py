"""MAR and Diffusion Forcing with the exact denoiser of an AR(1) sequence, and the masked ELBO's
time samplers.

Left: Diffusion Forcing's schedule matrix (the pyramid, lag 1): the noise level of each token
along the sampler's iterations. Middle panels: the covariance $\\mathrm{Cov}(x^1, x^k)$ of the
sampled sequences against the closed form, for MAR with one token revealed per iteration
(exact), MAR revealing all tokens at once (independent given an empty context: the
covariances are lost), and Diffusion Forcing with lags 0 (full sequence) and 1 (pyramid).
Right: the one-sample masked-ELBO estimates of two tokens under uniform times (infinite
variance, a heavy right tail) and under the importance sampler $t = u^2$ (finite variance).
Seeded: `python docs/figures/mar_sequences.py [--quick] [--out PATH]`.
"""

from __future__ import annotations

import argparse
import pathlib

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from genmath import GaussianPath  # noqa: E402
from genmath.core.discrete import MaskPath  # noqa: E402
from genmath.families import mar  # noqa: E402
from genmath.families.discrete_diffusion import masked_diffusion_nelbo  # noqa: E402
from genmath.schedules import CondOT  # noqa: E402

OUTPUT = pathlib.Path(__file__).with_suffix(".png")
LENGTH = 8


def _first_token_covariance(x):
    centred = x[..., 0] - x[..., 0].mean(0)
    return (centred[:, :1] * centred).mean(0)


def main(quick: bool = False, out: pathlib.Path = OUTPUT) -> pathlib.Path:
    torch.set_num_threads(1)
    torch.set_default_dtype(torch.float64)
    n = 300 if quick else 4000
    path = GaussianPath(CondOT())
    seq = mar.GaussianSequence(LENGTH, 1, coefficient=0.9, offset=0.3, noise_std=0.5,
                               initial_mean=-0.5, initial_std=1.2)
    exact = seq.covariance()[0]
    # four panels over two rows: read at page width
    fig, axes = plt.subplots(2, 2, figsize=(12, 8.4))
    axes = axes.ravel()

    levels = mar.diffusion_forcing_schedule(LENGTH, 6, lag=1)
    image = axes[0].imshow(levels, aspect="auto", cmap="viridis", origin="upper")
    axes[0].set_xlabel("token k")
    axes[0].set_ylabel("iteration m")
    axes[0].set_title("Diffusion Forcing schedule (pyramid, lag 1):\nnoise level of each token", fontsize=10)
    fig.colorbar(image, ax=axes[0], fraction=0.046)

    g = torch.Generator().manual_seed(0)
    head = seq.head(path)
    k = torch.arange(1, LENGTH + 1)
    for ax, runs in (
        (axes[1], (("MAR, one token per iteration", dict(steps=LENGTH)), ("MAR, all tokens at once", dict(steps=1)))),
        (axes[2], (("Diffusion Forcing, lag 0", dict(lag=0)), ("Diffusion Forcing, lag 1", dict(lag=1)))),
    ):
        ax.plot(k, exact, "k-", linewidth=2, label="closed form")
        for (label, options), marker in zip(runs, ("o", "s"), strict=True):
            if "steps" in options:
                x = mar.mar_sample(seq.context, head, path, n, LENGTH, 1, options["steps"], g,
                                   ode_steps=8 if quick else 32)
            else:
                x = mar.diffusion_forcing_sample(seq.eps(path), path, n, LENGTH, 1, 3 if quick else 6, g,
                                                 lag=options["lag"], substeps=2 if quick else 4)
            ax.plot(k, _first_token_covariance(x), marker, label=label, alpha=0.8)
        ax.set_xlabel("token k")
        ax.set_ylabel("Cov(x^1, x^k)")
        ax.legend(fontsize=8)
    axes[1].set_title(f"MAR with the exact head ({n} samples)", fontsize=10)
    axes[2].set_title(f"Diffusion Forcing with the exact denoiser ({n} samples)", fontsize=10)

    masked = MaskPath(3)
    x0 = torch.tensor([1, 2]).expand(20 * n, 2).clone()
    table = torch.tensor([[0.5, 0.2, 0.3], [0.1, 0.6, 0.3]]).log()

    def denoiser(xt, t):
        return table.expand(xt.shape[0], 2, 3)

    for sampler, color in (("uniform", "tab:red"), ("importance", "tab:blue")):
        values = masked_diffusion_nelbo(denoiser, masked, x0, generator=g, sampler=sampler)
        axes[3].hist(values.clamp(max=60), bins=120, histtype="step", color=color, log=True,
                     label=f"{sampler}: mean {float(values.mean()):.3f}, var {float(values.var()):.1f}")
    axes[3].set_xlabel("one-sample estimate of -ELBO (nats), clipped at 60")
    axes[3].set_title("Masked ELBO estimates: uniform t vs t = u^2, weight 2 sqrt(t)", fontsize=10)
    axes[3].legend(fontsize=8)
    fig.tight_layout()
    out = pathlib.Path(out)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="few samples (for the tests)")
    parser.add_argument("--out", type=pathlib.Path, default=OUTPUT)
    args = parser.parse_args()
    print(main(args.quick, args.out))
