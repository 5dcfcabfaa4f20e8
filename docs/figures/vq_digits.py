"""VQ-VAE on scikit-learn's 8x8 digits: reconstructions through 4 discrete tokens per image,
and codebook usage, for a vector quantizer (EMA codebook) and for FSQ.

Seeded; about a minute on 2 CPU cores. ``--quick`` runs a few iterations (used by the tests).

    python docs/figures/vq_digits.py [--quick] [--out docs/figures/vq_digits.png]
"""

import argparse
import pathlib
import time

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402
from torch import distributions as D  # noqa: E402
from torch import nn  # noqa: E402

from genmath.families.tokenizer import FSQ, VQVAE, VectorQuantizer  # noqa: E402

TOKENS, DIM = 4, 4  # tokens per image, code dimension


class Encoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, TOKENS * DIM))

    def forward(self, x):
        return self.net(x.reshape(len(x), 64).float() / 8 - 1).reshape(len(x), TOKENS, DIM)


class Decoder(nn.Module):
    """Categorical over the 17 grey levels of each pixel."""

    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(TOKENS * DIM, 256), nn.ReLU(), nn.Linear(256, 64 * 17))

    def forward(self, zq):
        logits = self.net(zq.reshape(len(zq), -1)).reshape(len(zq), 8, 8, 17)
        return D.Independent(D.Categorical(logits=logits), 2)


def train(quantizer, data, steps, g):
    model = VQVAE(Encoder(), quantizer, Decoder())
    optimiser = torch.optim.Adam(model.parameters(), lr=2e-3)
    for _ in range(steps):
        batch = data[torch.randint(0, len(data), (128,), generator=g)]
        optimiser.zero_grad()
        model.loss(batch).backward()
        optimiser.step()
    return model.eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a few iterations only")
    parser.add_argument("--out", default=str(pathlib.Path(__file__).with_suffix(".png")))
    args = parser.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(1)
    torch.set_default_dtype(torch.float32)
    g = torch.Generator().manual_seed(0)
    digits = torch.as_tensor(load_digits().images, dtype=torch.long)
    order = torch.randperm(len(digits), generator=g)
    train_set, test = digits[order[:1500]], digits[order[1500:]]
    steps = 20 if args.quick else 1000

    start = time.time()
    quantizers = {
        "VQ (64 codes, EMA)": VectorQuantizer(64, DIM, ema=True, decay=0.95, generator=g),
        "FSQ (levels 4·4·2·2)": FSQ([4, 4, 2, 2]),
    }
    results = {}
    for name, quantizer in quantizers.items():
        model = train(quantizer, train_set, steps, g)
        with torch.no_grad():
            out = model(test)
            nll = -out.reconstruction.log_prob(test).mean()
            probs = out.reconstruction.base_dist.probs
            recon = (probs * torch.arange(17, dtype=probs.dtype)).sum(-1)  # expected grey level
        results[name] = (recon, out.quantization, nll)
        print(
            f"{name}: test reconstruction NLL {nll:.1f} nats, perplexity "
            f"{out.quantization.perplexity:.1f} of {quantizer.codebook_size} codes"
        )
    print(f"trained in {time.time() - start:.0f}s")

    fig = plt.figure(figsize=(11, 4.3))
    fig.subplots_adjust(top=0.8, bottom=0.1, left=0.04, right=0.98)
    outer = fig.add_gridspec(1, 2, width_ratios=[2.2, 1], wspace=0.15)
    images_grid = outer[0].subgridspec(3, 8, wspace=0.05, hspace=0.1)
    bars_grid = outer[1].subgridspec(2, 1, hspace=0.6)
    rows = [("data", test[:8])] + [(n.split(" ")[0], r[0][:8]) for n, r in results.items()]
    for r, (name, images) in enumerate(rows):
        for c in range(8):
            ax = fig.add_subplot(images_grid[r, c])
            ax.imshow(images[c], cmap="gray_r", vmin=0, vmax=16)
            ax.set_xticks([])
            ax.set_yticks([])
            if c == 0:
                ax.set_ylabel(name, fontsize=9)
    for i, (name, (_, quantization, nll)) in enumerate(results.items()):
        ax = fig.add_subplot(bars_grid[i])
        usage = quantization.usage.sort(descending=True).values
        ax.bar(range(len(usage)), usage, width=1.0, color=f"C{i}")
        ax.set_title(
            f"{name}\nperplexity {quantization.perplexity:.0f}, NLL {nll:.0f} nats", fontsize=8
        )
        ax.set_xlabel("code (sorted by use)", fontsize=7)
        ax.set_ylabel("usage", fontsize=7)
        ax.tick_params(labelsize=6)
    fig.suptitle(
        "VQ-VAE on 8×8 digits: 4 tokens per image; reconstructions and codebook usage", fontsize=9
    )
    fig.savefig(args.out, dpi=110)


if __name__ == "__main__":
    main()
