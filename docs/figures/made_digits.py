"""MADE and PixelCNN on scikit-learn's 8x8 digits, binarised: exact test log-likelihoods by the
chain rule, and ancestral samples.

Seeded; about a minute on 2 CPU cores. ``--quick`` runs a few iterations (used by the tests).

    python docs/figures/made_digits.py [--quick] [--out docs/figures/made_digits.png]
"""

import argparse
import pathlib
import time

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402

from genmath.families.autoregressive import MADE, PixelCNN  # noqa: E402


def fit(log_prob, parameters, data, steps, g, lr=2e-3):
    optimiser = torch.optim.Adam(parameters, lr=lr)
    for _ in range(steps):
        batch = data[torch.randint(0, len(data), (64,), generator=g)]
        optimiser.zero_grad()
        (-log_prob(batch).mean()).backward()
        optimiser.step()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a few iterations only")
    parser.add_argument("--out", default=str(pathlib.Path(__file__).with_suffix(".png")))
    args = parser.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(1)
    torch.set_default_dtype(torch.float32)
    g = torch.Generator().manual_seed(0)
    digits = (torch.as_tensor(load_digits().images) >= 8).long()  # binarised, (1797, 8, 8)
    order = torch.randperm(len(digits), generator=g)
    train, test = digits[order[:1500]], digits[order[1500:]]
    steps = 10 if args.quick else 2500

    start = time.time()
    made = MADE(64, (512, 512), conditional="bernoulli")
    fit(lambda x: made.log_prob(x.reshape(len(x), 64).float()), made.parameters(), train, steps, g)
    pixelcnn = PixelCNN(channels=1, categories=2, hidden=32, layers=3, kernel_size=5)
    fit(lambda x: pixelcnn.log_prob(x[:, None]), pixelcnn.parameters(), train, steps // 2, g)
    with torch.no_grad():
        nll_made = -made.log_prob(test.reshape(len(test), 64).float()).mean()
        nll_pixelcnn = -pixelcnn.log_prob(test[:, None]).mean()
        made_samples = made.sample(10, generator=g).reshape(10, 8, 8)
        pixelcnn_samples = pixelcnn.sample(10, (8, 8), generator=g)[:, 0]
    print(
        f"trained in {time.time() - start:.0f}s; test NLL: MADE {nll_made:.2f}, "
        f"PixelCNN {nll_pixelcnn:.2f} nats per image (exact, chain rule)"
    )

    fig, axes = plt.subplots(3, 10, figsize=(10, 3.4))
    rows = [
        ("data", test[:10]),
        (f"MADE\n{nll_made:.1f} nats", made_samples),
        (f"PixelCNN\n{nll_pixelcnn:.1f} nats", pixelcnn_samples),
    ]
    for r, (name, images) in enumerate(rows):
        for c in range(10):
            ax = axes[r, c]
            ax.imshow(images[c], cmap="gray_r", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
        axes[r, 0].set_ylabel(name, fontsize=8)
    fig.suptitle(
        "Binarised 8×8 digits: ancestral samples, with exact test NLL per image (chain rule)",
        fontsize=9,
    )
    fig.tight_layout()
    fig.savefig(args.out, dpi=110)


if __name__ == "__main__":
    main()
