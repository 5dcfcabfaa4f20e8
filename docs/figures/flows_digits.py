"""A masked autoregressive flow on scikit-learn's 8×8 digits (17 grey levels, 64 dimensions).

Preprocessing (the assumptions `genmath.bits_per_dim` is told about): each grey level
k ∈ {0, …, 16} is dequantized uniformly, x = (k + u)/17 with u ~ U[0, 1), so x ∈ [0, 1)^64 and
every integer owns a cell of side 1/17. The flow then composes, data → noise, three core
bijections: a fixed `ElementwiseAffine` squeezing [0, 1] into [α, 1 − α] (α = 0.05), a
`Logit` onto R^64, and a `MAF` stack (five `MaskedAutoregressive` layers, alternating
orderings). Every log-determinant is the one the core class computes; `log_prob` is the
density of x on [0, 1)^64, so

    bits/dim = bits_per_dim(log_prob, 64, levels=17, data_range=(0, 1))

upper-bounds (in expectation over u) the discrete model's bits per dimension. Trained by
maximum likelihood (Adam, cosine learning rate, 3000 batches of 128); the 297 test digits are
held out. MADEs of width (128, 128): wider ones (256, 256) overfit the 1500 training digits.
Seeded; about half a minute on 2 CPU cores. ``--quick`` runs a few iterations (for the tests).

    python docs/figures/flows_digits.py [--quick] [--out PATH]
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
from sklearn.datasets import load_digits  # noqa: E402

from genmath import Compose, ElementwiseAffine, Logit, bits_per_dim  # noqa: E402
from genmath.families.flows import MAF, FlowModel  # noqa: E402

OUTPUT = pathlib.Path(__file__).with_suffix(".png")
LEVELS = 17  # grey levels 0..16 of load_digits
D = 64
ALPHA = 0.05  # logit margin: [0, 1] -> [ALPHA, 1 - ALPHA] before the logit


def dequantize(k: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """x = (k + u) / L with u ~ U[0, 1): the uniform dequantization `bits_per_dim` assumes."""
    return (k + torch.rand(k.shape, generator=generator)) / LEVELS


def digit_flow(layers: int, hidden: tuple[int, ...]) -> FlowModel:
    """Squeeze (fixed) -> Logit -> MAF, as one data-to-noise `Compose`."""
    squeeze = ElementwiseAffine(
        D,
        log_scale=torch.full((D,), math.log(1 - 2 * ALPHA)),
        shift=torch.full((D,), ALPHA),
    )
    squeeze.requires_grad_(False)
    maf = MAF(D, layers, hidden, scale_clamp=3.0)
    return FlowModel(Compose(squeeze, Logit(), maf.transform), D)


def main(quick: bool = False, out: pathlib.Path = OUTPUT) -> pathlib.Path:
    torch.set_default_dtype(torch.float32)
    torch.set_num_threads(1)  # small matrices on a shared machine
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(0)

    digits = torch.as_tensor(load_digits().data, dtype=torch.float32)  # (1797, 64), 0..16
    order = torch.randperm(len(digits), generator=generator)
    train, test = digits[order[:1500]], digits[order[1500:]]

    flow = digit_flow(layers=5, hidden=(128, 128))
    iterations = 5 if quick else 3000
    optimizer = torch.optim.Adam([p for p in flow.parameters() if p.requires_grad], lr=1e-3)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, iterations)
    start = time.time()
    for _ in range(iterations):
        batch = train[torch.randint(0, len(train), (128,), generator=generator)]
        loss = -flow.log_prob(dequantize(batch, generator)).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        scheduler.step()
    seconds = time.time() - start

    def bpd(k: torch.Tensor) -> float:
        with torch.no_grad():
            log_prob = flow.log_prob(dequantize(k, generator))
        return float(bits_per_dim(log_prob, D, levels=LEVELS, data_range=(0.0, 1.0)).mean())

    test_bpd, train_bpd = bpd(test), bpd(train)
    with torch.no_grad():
        samples = flow.sample(20, generator=generator).clamp(0, 1).reshape(20, 8, 8)
    print(
        f"MAF on digits: trained {iterations} iterations in {seconds:.0f}s; "
        f"bits/dim train {train_bpd:.3f}, test {test_bpd:.3f} "
        f"(uniform dequantization, {LEVELS} levels; uniform model: {math.log2(LEVELS):.3f})"
    )

    fig, axes = plt.subplots(4, 10, figsize=(10, 4.6))
    rows = [test[:20].reshape(20, 8, 8) / (LEVELS - 1), samples]
    for r in range(4):
        images = rows[r // 2][(r % 2) * 10 : (r % 2) * 10 + 10]
        for c in range(10):
            ax = axes[r, c]
            ax.imshow(images[c], cmap="gray_r", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
        axes[r, 0].set_ylabel("test data" if r < 2 else "MAF samples", fontsize=8)
    fig.suptitle(
        f"MAF (5 layers) on 8×8 digits, 17 grey levels: test {test_bpd:.2f} bits/dim "
        f"(uniform dequantization; uniform model {math.log2(LEVELS):.2f})",
        fontsize=9,
    )
    fig.tight_layout()
    out = pathlib.Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a few iterations (smoke test)")
    parser.add_argument("--out", type=pathlib.Path, default=OUTPUT)
    args = parser.parse_args()
    main(args.quick, args.out)
