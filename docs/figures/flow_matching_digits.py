"""Flow matching and MeanFlow on scikit-learn's 8×8 digits: multi-step and one-step samples.

Both models live on genmath's CondOT path $x_t = (1 - t) x_0 + tε$ (t = 0 data) and
are trained from data (pixels scaled to [-1, 1], shape (B, 1, 8, 8)):

(a) flow matching: a `UNet8` velocity network trained with `cfm_loss` (uniform times,
    independent coupling), sampled with `flow_matching.sample` (the core ODE sampler) by
    20 Heun steps and by a single Euler step;
(b) MeanFlow: an average-velocity network u(z, r, t) built from the blocks of a `UNet8` with
    a second time embedding for t - r, trained with `meanflow_loss` (JVP target, adaptive
    weight, default logit-normal time pairs), sampled in one step x = eps - u(eps, 0, 1).

The generated rows start from the same noise. Seeded:

    python docs/figures/flow_matching_digits.py [--quick] [--out PATH]
"""

from __future__ import annotations

import argparse
import pathlib
import time

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402
from torch import nn  # noqa: E402
from torch.nn import functional as F  # noqa: E402

from genmath.core.path import GaussianPath  # noqa: E402
from genmath.families import flow_matching as fm  # noqa: E402
from genmath.families import meanflow as mf  # noqa: E402
from genmath.families.denoisers import TimeEmbedding, UNet8  # noqa: E402
from genmath.schedules import CondOT  # noqa: E402

OUTPUT = pathlib.Path(__file__).with_suffix(".png")


class AverageVelocityUNet8(nn.Module):
    """u(z, r, t) for 8×8 images: `UNet8`'s blocks, conditioned on the sum of an embedding of
    t (UNet8's own) and one of t - r. Smooth and forward-mode differentiable (the JVP)."""

    def __init__(self, width: int = 16):
        super().__init__()
        self.unet = UNet8(channels=1, width=width)
        self.gap = TimeEmbedding(64, 4 * width)

    def forward(self, z: torch.Tensor, r: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        n, e = self.unet, self.unet.time(t) + self.gap(t - r)
        h8 = n.down8(n.stem(z), e)
        h4 = n.down4(F.avg_pool2d(h8, 2), e)
        h2 = n.middle(F.avg_pool2d(h4, 2), e)
        u4 = n.up4(torch.cat([F.interpolate(h2, scale_factor=2.0), h4], 1), e)
        u8 = n.up8(torch.cat([F.interpolate(u4, scale_factor=2.0), h8], 1), e)
        return n.head(u8)


def _fit(name, module, loss_fn, iterations, lr):
    optimizer = torch.optim.Adam(module.parameters(), lr=lr)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, lr, total_steps=iterations)
    start = time.time()
    for it in range(1, iterations + 1):
        loss = loss_fn()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        scheduler.step()
        if it % 200 == 0 or it == iterations:
            print(f"{name} iteration {it}: loss {loss.item():.3f}")
    seconds = time.time() - start
    print(f"{name}: {iterations} iterations in {seconds:.1f} s")
    return seconds


def main(quick: bool = False, out: pathlib.Path = OUTPUT) -> pathlib.Path:
    torch.set_default_dtype(torch.float32)
    torch.set_num_threads(1)  # small convolutions on a shared machine
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(0)
    images = torch.as_tensor(load_digits().images, dtype=torch.float32)[:, None] / 8 - 1
    path = GaussianPath(CondOT())
    batch_size = 128

    def batch():
        return images[torch.randint(len(images), (batch_size,), generator=generator)]

    velocity = UNet8(channels=1, width=16)
    fm_seconds = _fit(
        "flow matching",
        velocity,
        lambda: fm.cfm_loss(velocity, batch(), path, generator=generator),
        5 if quick else 1000,
        2e-3,
    )
    meanflow = mf.MeanFlow(AverageVelocityUNet8(width=16), path)
    mf_seconds = _fit(
        "MeanFlow",
        meanflow,
        lambda: meanflow.loss(batch(), generator=generator),
        3 if quick else 500,
        2e-3,
    )

    columns = 16
    noise = torch.randn(columns, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    real = images[torch.randperm(len(images), generator=torch.Generator().manual_seed(2))[:columns]]
    with torch.no_grad():
        many = fm.sample(velocity, noise, steps=20, method="heun")
        one = fm.sample(velocity, noise, steps=1, method="euler")
        jump = meanflow.sample(noise, steps=1)
    rows = {
        f"flow matching, 20 Heun steps (NFE = {many.nfe})": many.x,
        f"flow matching, 1 Euler step (NFE = {one.nfe})": one.x,
        f"MeanFlow, 1 step (NFE = {jump.nfe})": jump.x,
        "real digits": real,
    }
    fig, axes = plt.subplots(len(rows), 1, figsize=(9, 1.45 * len(rows)))
    for ax, (title, x) in zip(axes, rows.items(), strict=True):
        tiles = x.clamp(-1, 1).reshape(columns, 8, 8).permute(1, 0, 2).reshape(8, columns * 8)
        ax.imshow(tiles, cmap="gray_r", vmin=-1, vmax=1)
        for k in range(1, columns):
            ax.axvline(8 * k - 0.5, color="white", linewidth=1.5)
        ax.set_title(title, fontsize=10)
        ax.set_axis_off()
    fig.suptitle(
        f"8×8 digits on the CondOT path: flow matching ({fm_seconds:.0f} s of training) "
        f"and MeanFlow ({mf_seconds:.0f} s), one CPU thread",
        fontsize=10,
    )
    fig.tight_layout()
    out = pathlib.Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a few iterations (for the tests)")
    parser.add_argument("--out", type=pathlib.Path, default=OUTPUT)
    args = parser.parse_args()
    print(main(args.quick, args.out))
