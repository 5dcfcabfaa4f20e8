"""Guided sampling of Gaussian data does not sample the tilted law p(x) p(c|x)^w.

Left: over the guidance scale w, the variance guided probability-flow sampling produces,
v^(1-w) a^w (`gaussian_guidance_laws(...).sampled_variance`, D-guided-gaussian-law), against the
tilted law's (1/v + w/r)^(-1) (D-guided-tilted-law); they meet only at w = 0 and w = 1.
Right: at w = 3, histogram of samples of the guided probability-flow ODE (DDIM, the ODE's
exponential integrator, on a VP path with the exact guided eps from `guide`) against the two
closed-form densities and the conditional. Seeded:
`python docs/figures/guidance_gaussian_gap.py [--quick] [--out PATH]`.
"""

from __future__ import annotations

import argparse
import math
import pathlib

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from genmath import GaussianPath  # noqa: E402
from genmath.analytic import Gaussian  # noqa: E402
from genmath.families.diffusion import ddim_sample, gaussian_guidance_laws, guide  # noqa: E402
from genmath.schedules import VP  # noqa: E402

OUTPUT = pathlib.Path(__file__).with_suffix(".png")
MEAN, VAR, NOISE, COND = 0.0, 1.0, 0.5, 1.5


def normal(x, m, v):
    return torch.exp(-((x - m) ** 2) / (2 * v)) / math.sqrt(2 * math.pi * v)


def main(quick: bool = False, out: pathlib.Path = OUTPUT) -> pathlib.Path:
    torch.set_default_dtype(torch.float64)
    torch.set_num_threads(1)
    generator = torch.Generator().manual_seed(0)
    t = lambda v: torch.tensor([v])  # noqa: E731
    ws = torch.linspace(0, 8, 81)
    sampled, tilted = [], []
    for w in ws.tolist():
        laws = gaussian_guidance_laws(t(MEAN), t(VAR), t(NOISE), t(COND), w)
        sampled.append(float(laws.sampled_variance))
        tilted.append(float(laws.tilted_variance))
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.4))
    ax = axes[0]
    ax.semilogy(ws, sampled, label=r"guided sampling: $v^{1-w}a^w$")
    ax.semilogy(ws, tilted, "--", label=r"tilted $p(x)p(c|x)^w$: $(1/v + w/r)^{-1}$")
    ax.set_xlabel("guidance scale $w$")
    ax.set_ylabel("variance")
    ax.set_title("the law guided sampling produces is not the tilted law")
    ax.legend()

    w = 3.0
    laws = gaussian_guidance_laws(t(MEAN), t(VAR), t(NOISE), t(COND), w)
    path = GaussianPath(VP())
    conditional = Gaussian(laws.conditional_mean, torch.diag(laws.conditional_variance)).marginal(path)
    unconditional = Gaussian(t(MEAN), torch.diag(t(VAR))).marginal(path)
    n, steps = (2000, 50) if quick else (40000, 400)
    field = guide(lambda x, tt, c: conditional.eps(x, tt), torch.zeros(n, dtype=torch.long), w,
                  unconditional=unconditional.eps)
    x1 = torch.randn(n, 1, generator=generator)
    samples = ddim_sample(field, x1, path, steps=steps).x[:, 0]
    grid = torch.linspace(-0.5, 3.0, 400)
    ax = axes[1]
    ax.hist(samples, bins=80, density=True, color="0.8", label=f"guided PF-ODE samples ({n})")
    ax.plot(grid, normal(grid, laws.sampled_mean, laws.sampled_variance), label="sampled law (closed form)")
    ax.plot(grid, normal(grid, laws.tilted_mean, laws.tilted_variance), "--", label="tilted law")
    ax.plot(grid, normal(grid, laws.conditional_mean, laws.conditional_variance), ":", label=r"$p(x \mid c)$")
    ax.set_title(f"$w = {w:g}$: samples follow the sampled law")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=pathlib.Path, default=OUTPUT)
    args = parser.parse_args()
    print(main(args.quick, args.out))
