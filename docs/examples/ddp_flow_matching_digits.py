"""Flow matching on scikit-learn's 8×8 digits with DDP, then the test set's bits/dim evaluated
across the ranks without padding.

Data: the 1797 digits (integers 0..16 per pixel, so L = 17 levels), uniformly dequantized to
x = 2 (k + u) / 17 - 1 in [-1, 1], shape (B, 1, 8, 8); the first 1500 train, the last 297 are
the test set. Model: a `UNet8` velocity on the CondOT path, wrapped in DistributedDataParallel.
Each step, every rank draws its share of the global batch (images, dequantization noise,
times, source noise) from its own `rank_generator(seed)`; the loss is `cfm_loss` with either
independent noise or the OT coupling of the *global* batch (`pair_by_ot`), reduced by
`global_mean` (exact for any split of the batch). Evaluation: `dataset_bits_per_dim` of the
exact likelihood (`ode_log_likelihood`, Hutchinson divergence, fixed-step RK4) with per-batch
generators, so the number does not depend on how many processes compute it.

    torchrun --nproc_per_node=2 docs/examples/ddp_flow_matching_digits.py --save flow.pt
    torchrun --nproc_per_node=3 docs/examples/ddp_flow_matching_digits.py --evaluate flow.pt
    python docs/examples/ddp_flow_matching_digits.py --quick      # one process, seconds

On CPU the processes use the gloo backend (torchrun sets the rendezvous variables; on a
machine whose host name does not resolve, add --master_addr=127.0.0.1).
"""

from __future__ import annotations

import argparse
import math
import os
import pathlib
import time

import torch
import torch.distributed as dist
from sklearn.datasets import load_digits
from torch.nn.parallel import DistributedDataParallel

import genmath
import genmath.distributed as gdist
from genmath.core.path import GaussianPath
from genmath.families import flow_matching as fm
from genmath.families.denoisers import UNet8
from genmath.schedules import CondOT

LEVELS = 17  # digits' pixels are integers 0..16
TRAIN = 1500


def _digits() -> tuple[torch.Tensor, torch.Tensor]:
    """Pixel counts k (integers stored as float32), shape (N, 1, 8, 8): train, test."""
    images = torch.as_tensor(load_digits().images, dtype=torch.float32)[:, None]
    return images[:TRAIN], images[TRAIN:]


def _dequantize(k: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    u = torch.rand(k.shape, generator=generator, dtype=k.dtype)
    return 2 * (k + u) / LEVELS - 1


def _say(*words) -> None:
    if gdist.rank_and_world_size()[0] == 0:
        print(*words, flush=True)


def train(model, train_set, *, steps, batch_size, coupling, seed, lr):
    rank, world = gdist.rank_and_world_size()
    if batch_size % world:
        raise SystemExit(f"--batch-size {batch_size} must be divisible by the {world} ranks")
    local = batch_size // world
    ddp = DistributedDataParallel(model) if gdist.is_distributed() else model
    path = GaussianPath(CondOT())
    generator = gdist.rank_generator(seed)  # this rank's stream: reproducible, independent
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, lr, total_steps=steps)
    start = time.thread_time()
    for step in range(1, steps + 1):
        k = train_set[torch.randint(len(train_set), (local,), generator=generator)]
        x = _dequantize(k, generator)
        noise = torch.randn(x.shape, generator=generator)
        if coupling == "global-ot":
            noise = gdist.pair_by_ot(x, noise)  # the plan of all ranks' samples together
        values = fm.cfm_loss(ddp, x, path, noise=noise, generator=generator, reduction="none")
        loss = gdist.global_mean(values)  # its value: the loss of the global batch
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
        if step % max(1, steps // 10) == 0 or step == steps:
            cpu = (time.thread_time() - start) / step
            _say(
                f"step {step:5d}  loss {float(loss.detach()):.4f}  ({cpu * 1e3:.0f} ms CPU/step on rank 0)"
            )
    return model


def bits_per_dim(model, test_set, *, batch_size, steps, seed):
    """Test-set bits/dim of the dequantized model (an upper bound on the discrete one)."""

    def log_prob(k, generator):
        x = _dequantize(k, generator)
        return genmath.ode_log_likelihood(
            model,
            x,
            fm.standard_normal_log_prob,
            divergence="hutchinson",
            generator=generator,
            method="rk4",
            options={"step_size": 1.0 / steps},
        )

    with torch.no_grad():
        return gdist.dataset_bits_per_dim(
            log_prob,
            test_set,
            batch_size=batch_size,
            levels=LEVELS,
            data_range=(-1.0, 1.0),
            seed=seed,
            progress=None,
        )


def main(argv=None) -> gdist.DatasetAverage:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a few steps on a few images")
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--batch-size", type=int, default=128, help="global, over all ranks")
    parser.add_argument("--coupling", choices=["independent", "global-ot"], default="independent")
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--ode-steps", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--save", type=pathlib.Path, help="write the trained weights here")
    parser.add_argument("--evaluate", type=pathlib.Path, help="evaluate these weights only")
    args = parser.parse_args(argv)
    if args.quick:
        args.steps, args.width, args.ode_steps, args.batch_size = 4, 8, 2, 16

    torch.set_num_threads(1)
    torch.set_default_dtype(torch.float32)
    launched = int(os.environ.get("WORLD_SIZE", "1")) > 1  # by torchrun
    if launched and not dist.is_initialized():
        dist.init_process_group("gloo")  # the rendezvous variables come from torchrun
    try:
        rank, world = gdist.rank_and_world_size()
        _say(f"{world} process(es), backend {dist.get_backend() if launched else 'none'}")
        train_set, test_set = _digits()
        if args.quick:
            test_set = test_set[:10]
        torch.manual_seed(args.seed)  # the same initial weights everywhere (DDP checks)
        model = UNet8(channels=1, width=args.width)
        if args.evaluate:
            model.load_state_dict(torch.load(args.evaluate, weights_only=True))
        else:
            train(
                model,
                train_set,
                steps=args.steps,
                batch_size=args.batch_size,
                coupling=args.coupling,
                seed=args.seed,
                lr=args.lr,
            )
            if args.save and rank == 0:
                torch.save(model.state_dict(), args.save)
        start = time.thread_time()
        result = bits_per_dim(
            model, test_set, batch_size=50, steps=args.ode_steps, seed=args.seed + 1
        )
        cpu = time.thread_time() - start
        _say(
            f"test bits/dim {result.mean:.6f} ± {result.std_error:.6f} over {result.count} "
            f"images ({math.log2(LEVELS):.3f} for uniform pixels), {cpu:.1f} s CPU on rank 0"
        )
        return result
    finally:
        if launched:
            dist.destroy_process_group()


if __name__ == "__main__":
    main()
