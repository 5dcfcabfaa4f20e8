r"""Dataset likelihoods over ranks without padding: each example is evaluated exactly once,
inside the same batch and with the same random draws whatever the world size, and the
float64 reductions are exact, so a distributed evaluation returns the single-process numbers.
"""

from __future__ import annotations

import inspect
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from .._implements import plumbing
from ..core._shapes import positive_int
from ..core.likelihood import bits_per_dim
from ._collectives import (
    _gather_control,
    _gather_variable_control,
    exact_sum,
    is_distributed,
    rank_and_world_size,
)
from ._seeding import derive_seed


@dataclass(frozen=True)
class DatasetAverage:
    r"""The average of a per-example quantity over a dataset.

    Attributes:
        mean: $\bar v = \frac1N\sum_i v_i$ (float64).
        std_error: $s/\sqrt N$ with $s^2 = \frac{1}{N-1}\sum_i (v_i - \bar v)^2$, the standard
            error of the mean over examples (NaN when $N = 1$). It does not include the
            Monte-Carlo noise *within* a stochastic estimate of $v_i$ beyond what shows in
            the spread of the $v_i$.
        total: $\sum_i v_i$, correctly rounded.
        count: $N$, the number of examples (each counted once).
        values: the $N$ per-example values in dataset order (float64, CPU), when asked for
            with ``return_values=True``; otherwise ``None``.
    """

    mean: float
    std_error: float
    total: float
    count: int
    values: torch.Tensor | None = field(default=None, repr=False)


@plumbing("index ranges of batches; no formula")
def shard_batches(
    n: int,
    batch_size: int,
    *,
    rank: int | None = None,
    world_size: int | None = None,
    group=None,
) -> list[range]:
    r"""The batches of a dataset of ``n`` examples that rank ``rank`` evaluates.

    The dataset is cut into $K = \lceil n / b\rceil$ batches of consecutive examples
    (``range(k b, min(n, (k+1) b))``; only the last may be short), independent of the world
    size; batch $k$ goes to rank $k \bmod W$. Every example belongs to exactly one batch of
    exactly one rank: no padding, no duplicate, and a rank may get no batch at all when
    $K < W$. Ranks hold at most one batch more than each other.

    ``rank`` and ``world_size`` default to this process's in ``group``.
    """
    n = positive_int(n, "n", minimum=0)
    batch_size = positive_int(batch_size, "batch_size")
    own_rank, own_world = rank_and_world_size(group)
    world_size = own_world if world_size is None else positive_int(world_size, "world_size")
    rank = own_rank if rank is None else positive_int(rank, "rank", minimum=0)
    if rank >= world_size:
        raise ValueError(f"rank must be < world_size = {world_size}, got {rank}")
    starts = range(rank * batch_size, n, world_size * batch_size)
    return [range(start, min(n, start + batch_size)) for start in starts]


class _Progress:
    """A one-line progress bar on stderr (no dependency), redrawn at most 5 times a second."""

    def __init__(self, total: int, label: str, enabled: bool) -> None:
        self.total, self.label, self.enabled = total, label, enabled and total > 0
        self.start = self.drawn = time.monotonic()
        self.done = 0
        if self.enabled:
            self._draw()

    def step(self) -> None:
        self.done += 1
        now = time.monotonic()
        if self.enabled and (now - self.drawn >= 0.2 or self.done == self.total):
            self.drawn = now
            self._draw()
            if self.done == self.total:
                sys.stderr.write("\n")
                sys.stderr.flush()

    def _draw(self) -> None:
        elapsed = time.monotonic() - self.start
        filled = round(20 * self.done / self.total)
        left = ""
        if 0 < self.done < self.total:
            left = f", ~{elapsed / self.done * (self.total - self.done):.0f} s left"
        sys.stderr.write(
            f"\r{self.label} [{'#' * filled}{'.' * (20 - filled)}] {self.done}/{self.total} "
            f"batches, {elapsed:.0f} s{left}   "
        )
        sys.stderr.flush()


def _batches(dataset, ranges: list[range], collate_fn, num_workers: int):
    """The rank's batches in order: slices of a tensor, or a DataLoader over the rank's index
    lists for a map-style dataset (so ``num_workers`` and ``collate_fn`` apply)."""
    if isinstance(dataset, torch.Tensor):
        return (dataset[r.start : r.stop] for r in ranges)
    from torch.utils.data import DataLoader

    return iter(
        DataLoader(
            dataset,
            batch_sampler=[list(r) for r in ranges],
            collate_fn=collate_fn,
            num_workers=num_workers,
        )
    )


def _dataset_length(dataset) -> int:
    from torch.utils.data import IterableDataset

    if isinstance(dataset, torch.Tensor):
        if dataset.ndim < 1:
            raise ValueError("a tensor dataset needs a batch dimension (N, *event), got shape ()")
        return dataset.shape[0]
    if isinstance(dataset, IterableDataset) or not (
        hasattr(dataset, "__len__") and hasattr(dataset, "__getitem__")
    ):
        raise TypeError(
            "dataset must be a tensor (N, *event) or a map-style dataset (with __len__ and "
            f"__getitem__), so that examples can be assigned to ranks by index; got "
            f"{type(dataset).__name__}"
        )
    return len(dataset)


def _to_device(batch, device):
    if device is None:
        return batch
    if isinstance(batch, torch.Tensor):
        return batch.to(device)
    if isinstance(batch, (list, tuple)):
        return type(batch)(_to_device(b, device) for b in batch)
    if isinstance(batch, dict):
        return {k: _to_device(v, device) for k, v in batch.items()}
    return batch


def _check_values(values, rows: int, start: int) -> torch.Tensor:
    if not isinstance(values, torch.Tensor) or values.shape != (rows,):
        got = tuple(values.shape) if isinstance(values, torch.Tensor) else type(values).__name__
        raise ValueError(
            f"log_prob_fn must return one value per example, a tensor of shape ({rows},), for "
            f"the batch of examples {start}..{start + rows - 1}; got {got}"
        )
    if torch.isnan(values).any():
        bad = (start + torch.nonzero(torch.isnan(values)).flatten()).tolist()
        raise ValueError(f"log_prob_fn returned NaN for examples {bad[:10]}")
    return values.detach().to(device="cpu", dtype=torch.float64)


def _call(log_prob_fn: Callable, takes_generator: bool):
    if not takes_generator:
        return lambda batch, generator: log_prob_fn(batch)
    try:
        signature = inspect.signature(log_prob_fn)
    except (TypeError, ValueError):  # a builtin or C callable: trust the caller
        return lambda batch, generator: log_prob_fn(batch, generator=generator)
    parameters = signature.parameters.values()
    if not any(
        p.name == "generator" or p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters
    ):
        raise TypeError(
            "with seed=..., log_prob_fn is called as log_prob_fn(batch, generator=...) so its "
            "draws come from the batch's own generator; it takes no 'generator' argument"
        )
    return lambda batch, generator: log_prob_fn(batch, generator=generator)


def _agree_on_length(n: int, group) -> None:
    """Every rank must pass the same dataset; compare lengths before any work."""
    lengths = _gather_control(torch.tensor([n], dtype=torch.int64), group)
    lengths = [int(v) for v in torch.cat(lengths)]
    if len(set(lengths)) > 1:
        raise ValueError(f"every rank must pass the same dataset; the ranks' lengths are {lengths}")


def _raise_together(error: BaseException | None, group) -> None:
    """A rank that failed tells the others, so that all raise instead of some waiting forever
    in the next collective."""
    flags = _gather_control(torch.tensor([error is not None], dtype=torch.int64), group)
    failed = [r for r, flag in enumerate(flags) if int(flag)]
    if error is not None:
        raise error
    if failed:
        raise RuntimeError(f"the dataset evaluation failed on rank(s) {failed} (see their error)")


def _evaluate(
    log_prob_fn,
    dataset,
    *,
    batch_size,
    seed,
    generator_device,
    device,
    collate_fn,
    num_workers,
    progress,
    group,
    return_values,
    label,
) -> DatasetAverage:
    n = _dataset_length(dataset)
    if n == 0:
        raise ValueError("the dataset is empty: there is no example to average over")
    batch_size = positive_int(batch_size, "batch_size")
    num_workers = positive_int(num_workers, "num_workers", minimum=0)
    if seed is not None:
        derive_seed(seed)  # validates the seed before any work
    call = _call(log_prob_fn, seed is not None)
    rank, world = rank_and_world_size(group)
    distributed = is_distributed()
    if distributed:
        _agree_on_length(n, group)
    ranges = shard_batches(n, batch_size, rank=rank, world_size=world)
    show = (sys.stderr.isatty() if progress is None else bool(progress)) and rank == 0
    where = f" (rank 0 of {world})" if world > 1 else ""
    pieces, error = [], None
    try:
        bar = _Progress(len(ranges), label + where, show)
        batches = _batches(dataset, ranges, collate_fn, num_workers)
        for r, batch in zip(ranges, batches, strict=True):
            generator = None
            if seed is not None:
                generator = torch.Generator(device=generator_device or "cpu")
                generator.manual_seed(derive_seed(seed, "batch", r.start // batch_size))
            values = call(_to_device(batch, device), generator)
            pieces.append(_check_values(values, len(r), r.start))
            bar.step()
    except Exception as failure:  # noqa: BLE001 - re-raised below, on every rank
        if not distributed:
            raise
        error = failure
    if distributed:
        _raise_together(error, group)
    local = torch.cat(pieces) if pieces else torch.zeros(0, dtype=torch.float64)

    total = exact_sum(local, group=group)
    mean = total / n
    squares = exact_sum((local - mean).pow(2), group=group)
    std_error = math.sqrt(squares / (n - 1) / n) if n > 1 else math.nan
    values = _gather_in_order(local, n, batch_size, world, group) if return_values else None
    return DatasetAverage(mean, std_error, total, n, values)


def _gather_in_order(local: torch.Tensor, n: int, batch_size: int, world: int, group):
    """Every rank's values put back in dataset order (batch k came from rank k mod W)."""
    parts = _gather_variable_control(local, group) if is_distributed() else [local]
    values = torch.empty(n, dtype=torch.float64)
    for rank, part in enumerate(parts):
        offset = 0
        for r in shard_batches(n, batch_size, rank=rank, world_size=world):
            values[r.start : r.stop] = part[offset : offset + len(r)]
            offset += len(r)
    return values


@plumbing("averages per-example values over the dataset; no formula of its own")
def dataset_log_likelihood(
    log_prob_fn: Callable,
    dataset,
    *,
    batch_size: int,
    seed: int | None = None,
    generator_device: torch.device | str | None = None,
    device: torch.device | str | None = None,
    collate_fn: Callable | None = None,
    num_workers: int = 0,
    progress: bool | None = None,
    group=None,
    return_values: bool = False,
) -> DatasetAverage:
    r"""The average log-likelihood (or bound) of a dataset, evaluated across ranks.

    ``log_prob_fn(batch)`` returns one value per example, shape ``(B,)``: any genmath
    likelihood, e.g. ``flow.log_prob``, ``lambda x: genmath.ode_log_likelihood(velocity, x,
    prior)``, ``genmath.elbo``/``genmath.iwae`` bounds, or ``DDPM.elbo``. The dataset is cut
    into batches of consecutive examples, batch $k$ is evaluated by rank $k \bmod W$
    (`shard_batches`): **no padding**, each example counted exactly once whatever the world
    size. Per-example values are reduced in float64 with exact sums (`exact_sum`), so the
    result, down to the last bit, does not depend on the number of ranks (given kernels that
    are deterministic for a fixed batch).

    Arguments:
        log_prob_fn: ``batch -> (B,)`` values; with ``seed``, called as
            ``log_prob_fn(batch, generator=g_k)``.
        dataset: a tensor ``(N, *event)`` (sliced into batches) or a map-style torch
            ``Dataset`` (batched by a `DataLoader` over this rank's indices; ``collate_fn``
            and ``num_workers`` are passed to it). Every rank passes the same dataset.
        batch_size: examples per call of ``log_prob_fn``.
        seed: for stochastic estimates (Hutchinson divergence, ELBO/IWAE draws, the DDPM
            bound, dequantization noise): batch $k$ gets a generator seeded with
            `derive_seed(seed, "batch", k)`, so the draws, too, are independent of the world
            size. Without ``seed``, ``log_prob_fn`` is called with the batch only.
        generator_device: device of those generators (CPU by default).
        device: if given, each batch (tensors, or tuples/lists/dicts of them) is moved there.
        progress: a progress bar on stderr of rank 0; ``None`` shows it when stderr is a
            terminal.
        group: the process group (the default group when ``None``); without an initialised
            process group this is a plain single-process evaluation.
        return_values: also gather the per-example values, in dataset order, on every rank.

    Returns:
        a `DatasetAverage` (``mean``, ``std_error``, ``total``, ``count``, ``values``),
        identical on every rank.
    """
    if not callable(log_prob_fn):
        raise TypeError(f"log_prob_fn must be callable, got {type(log_prob_fn).__name__}")
    return _evaluate(
        log_prob_fn,
        dataset,
        batch_size=batch_size,
        seed=seed,
        generator_device=generator_device,
        device=device,
        collate_fn=collate_fn,
        num_workers=num_workers,
        progress=progress,
        group=group,
        return_values=return_values,
        label="log-likelihood",
    )


@plumbing("maps each log-likelihood by core's bits_per_dim and averages; no formula of its own")
def dataset_bits_per_dim(
    log_prob_fn: Callable,
    dataset,
    *,
    batch_size: int,
    dims: int | tuple[int, ...] | None = None,
    levels: int = 256,
    data_range: tuple[float, float] = (0.0, 1.0),
    dequantization: str = "uniform",
    seed: int | None = None,
    generator_device: torch.device | str | None = None,
    device: torch.device | str | None = None,
    collate_fn: Callable | None = None,
    num_workers: int = 0,
    progress: bool | None = None,
    group=None,
    return_values: bool = False,
) -> DatasetAverage:
    r"""The average bits per dimension of a dataset, evaluated across ranks like
    `dataset_log_likelihood` (the arguments it shares mean the same).

    Each example's value is core's `genmath.bits_per_dim` of its log-likelihood
    (D-bits-per-dim; ``levels``, ``data_range`` and ``dequantization`` as there), and these
    values are averaged over the dataset, so ``mean`` is the bits/dim of the average
    log-likelihood and ``std_error`` its standard error. For ``dequantization="uniform"``,
    ``log_prob_fn`` evaluates the uniformly dequantized data $x = a + (b - a)(k + u)/L$ the
    model was trained on; draw $u$ from the ``generator`` it receives when ``seed`` is given,
    so that the estimate is reproducible and independent of the world size.

    Arguments:
        dims: $D$, an int or an event shape; read from tensor batches ``(B, *event)`` when
            ``None`` (batches of another type need it).
    """
    if not callable(log_prob_fn):
        raise TypeError(f"log_prob_fn must be callable, got {type(log_prob_fn).__name__}")
    settings = {"levels": levels, "data_range": data_range, "dequantization": dequantization}
    if dims is not None:
        bits_per_dim(torch.zeros(1, dtype=torch.float64), dims, **settings)  # validates once
    call = _call(log_prob_fn, seed is not None)

    def bits(batch, generator=None):
        event = dims
        if event is None:
            if not isinstance(batch, torch.Tensor):
                raise ValueError(
                    "dims is needed when batches are not tensors (B, *event); got a batch of "
                    f"type {type(batch).__name__}"
                )
            event = tuple(batch.shape[1:]) or 1
        log_prob = call(batch, generator)
        if not isinstance(log_prob, torch.Tensor):
            return log_prob  # _check_values reports what it got
        return bits_per_dim(log_prob, event, **settings)

    return _evaluate(
        bits if seed is not None else (lambda batch: bits(batch)),
        dataset,
        batch_size=batch_size,
        seed=seed,
        generator_device=generator_device,
        device=device,
        collate_fn=collate_fn,
        num_workers=num_workers,
        progress=progress,
        group=group,
        return_values=return_values,
        label="bits/dim",
    )
