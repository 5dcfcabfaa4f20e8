r"""genmath under data parallelism (plain `torch.distributed`, so it works the same from
``torchrun``, Lightning, accelerate or a hand-written ``init_process_group``).

Three things do not come for free when a batch is split over ranks, and this module gives
each one:

* **Dataset likelihoods without padding.** `dataset_log_likelihood` and
  `dataset_bits_per_dim` evaluate any genmath likelihood over a dataset sharded across
  ranks: batch $k$ of the dataset goes to rank $k \bmod W$ (`shard_batches`), each example
  is counted exactly once (a padding `DistributedSampler` counts some twice), random draws
  come from per-batch generators (`derive_seed`), and the float64 sums are exact
  (`exact_sum`), so the result is the single-process one, bit for bit, for any world size.
* **Couplings of the global batch.** `all_gather` is a differentiable gather of unequal
  batches for losses that couple samples (an MMD between pushforwards, say); `pair_by_ot`
  is the minibatch OT coupling of the concatenated batch, next to the per-rank one;
  `global_mean` is a mean whose DDP-averaged gradient is the global mean's even when ranks
  hold different numbers of samples.
* **Per-rank randomness.** `rank_generator(seed)` seeds each rank's generator from
  SHA-256 of ``(seed, rank)``: reproducible runs, independent noise on each rank.

Without an initialised process group every function is its single-process meaning, so the
same script runs with ``python`` and with ``torchrun``. This module is not imported by
``import genmath``; use ``import genmath.distributed`` (or the attribute
``genmath.distributed``, loaded on first use).
"""

from ._collectives import (
    all_gather,
    exact_sum,
    global_mean,
    is_distributed,
    rank_and_world_size,
)
from ._coupling import SCOPES, pair_by_ot
from ._dataset import DatasetAverage, dataset_bits_per_dim, dataset_log_likelihood, shard_batches
from ._seeding import derive_seed, rank_generator

__all__ = [
    # dataset likelihoods
    "dataset_log_likelihood",
    "dataset_bits_per_dim",
    "DatasetAverage",
    "shard_batches",
    # couplings and reductions of the global batch
    "all_gather",
    "global_mean",
    "exact_sum",
    "pair_by_ot",
    "SCOPES",
    # randomness
    "rank_generator",
    "derive_seed",
    # where am I
    "is_distributed",
    "rank_and_world_size",
]
