"""Class-conditional diffusion on scikit-learn's 8×8 digits with classifier-free guidance.

A small `UNet8` with a class embedding is trained with DDPM's L_simple on Nichol & Dhariwal's
cosine β schedule (T = 1000), dropping the label with probability 0.1 so that the same
network is also the unconditional model. Samples: deterministic DDIM (50 steps) from the
same noise, with x0-hat clipped to [-1, 1], for guidance scales w = 0 (unconditional),
1 (conditional) and 3.

    python docs/figures/diffusion_digits.py [--quick] [--out PATH]
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

from genmath.families import diffusion  # noqa: E402
from genmath.families.denoisers import UNet8  # noqa: E402

HERE = pathlib.Path(__file__).parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=pathlib.Path, default=HERE / "diffusion_digits.png")
    parser.add_argument("--quick", action="store_true", help="a few iterations (for tests)")
    args = parser.parse_args()
    torch.set_default_dtype(torch.float32)
    torch.set_num_threads(1)  # small convolutions on a shared machine
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(0)
    start = time.time()

    digits = load_digits()
    images = torch.as_tensor(digits.images, dtype=torch.float32)[:, None] / 8 - 1  # [-1, 1]
    labels = torch.as_tensor(digits.target, dtype=torch.long)

    schedule = diffusion.DiscreteSchedule.from_betas(diffusion.cosine_betas(1000))
    network = UNet8(channels=1, width=16, classes=10)
    model = diffusion.DDPM(network, schedule)
    iterations = 5 if args.quick else 1500
    sampling_steps = 5 if args.quick else 50
    optimizer = torch.optim.Adam(network.parameters(), lr=2e-3)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, 2e-3, total_steps=iterations)
    for it in range(1, iterations + 1):
        batch = torch.randint(len(images), (96,), generator=generator)
        loss = model.loss(images[batch], labels[batch], condition_dropout=0.1, generator=generator)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        scheduler.step()
        if it % 100 == 0 or it == iterations:
            print(f"iteration {it}: L_simple {loss.item():.4f}")

    per_class = 3
    classes = torch.arange(10).repeat_interleave(per_class)
    noise = torch.randn(len(classes), 1, 8, 8, generator=generator)
    scales = (0.0, 1.0, 3.0)
    # one grid per row (each is 80 x 24 pixels, 10 classes wide): side by side the three made
    # a strip too wide for the page's column
    fig, axes = plt.subplots(len(scales), 1, figsize=(10.5, 10.4), layout="constrained")
    network.eval()
    with torch.no_grad():
        for ax, scale in zip(axes, scales, strict=True):
            guided = diffusion.guide(network, classes, scale)
            # clip x0-hat to the data range, as for images (Ho et al. 2020): near t = 1
            # the cosine path's alpha is 1e-3 and x0-hat would amplify the network's error
            x = diffusion.ddim_sample(
                guided, noise, schedule.path, steps=sampling_steps, clip_denoised=(-1.0, 1.0)
            ).x
            tiles = x.clamp(-1, 1).reshape(10, per_class, 8, 8).permute(1, 2, 0, 3)
            ax.imshow(tiles.reshape(per_class * 8, 10 * 8), cmap="gray_r", vmin=-1, vmax=1)
            ax.set_title(f"guidance w = {scale:g}" + (" (unconditional)" if scale == 0 else ""))
            ax.set_xticks([8 * k + 3.5 for k in range(10)], [str(k) for k in range(10)])
            ax.set_yticks([])
    fig.suptitle("DDIM samples of a class-conditional U-Net (columns: requested class)")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=110)
    print(f"wrote {args.out} in {time.time() - start:.1f} s")


if __name__ == "__main__":
    main()
