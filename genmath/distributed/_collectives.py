"""Collectives that hold under data parallelism: who am I, gather rows of unequal batches,
a gather that autograd can differentiate, a mean whose averaged gradient is the global mean's,
and sums that are exact (so they do not depend on the world size).

Everything here is plain `torch.distributed`; with no process group initialised every
function is its single-process meaning (rank 0 of 1, the gather of one batch is the batch).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
import torch.distributed as dist

from .._implements import plumbing

# A metadata row is [rows, ndim, dtype code, *event shape padded with -1]; 16 event dimensions
# are more than any tensor a generative model batches.
_MAX_EVENT_DIMS = 16
_DTYPES = (
    torch.float16,
    torch.bfloat16,
    torch.float32,
    torch.float64,
    torch.complex64,
    torch.complex128,
    torch.uint8,
    torch.int8,
    torch.int16,
    torch.int32,
    torch.int64,
    torch.bool,
)


def is_distributed() -> bool:
    """Whether a `torch.distributed` process group is initialised (then the functions of
    `genmath.distributed` communicate; otherwise they are their single-process meaning)."""
    return dist.is_available() and dist.is_initialized()


def rank_and_world_size(group=None) -> tuple[int, int]:
    """``(rank, world_size)`` of this process in ``group`` (the default group when ``None``);
    ``(0, 1)`` when no process group is initialised."""
    if not is_distributed():
        return 0, 1
    return dist.get_rank(group), dist.get_world_size(group)


def _control_device(group) -> torch.device:
    """Where small control tensors (sizes, partial sums, permutations) travel: NCCL only moves
    CUDA tensors, every other backend (gloo, mpi, a mixed ``cpu:gloo,cuda:nccl``) takes CPU."""
    backend = str(dist.get_backend(group))
    if backend == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def _gather_control(values: torch.Tensor, group) -> list[torch.Tensor]:
    """All-gather a small 1-d tensor of the same length on every rank."""
    device = _control_device(group)
    local = values.to(device)
    out = [torch.empty_like(local) for _ in range(dist.get_world_size(group))]
    dist.all_gather(out, local, group=group)
    return [v.cpu() for v in out]


def _gather_variable_control(values: torch.Tensor, group) -> list[torch.Tensor]:
    """All-gather 1-d tensors whose length differs by rank (lengths first, then padded)."""
    lengths = _gather_control(torch.tensor([values.numel()], dtype=torch.int64), group)
    lengths = [int(n) for n in torch.cat(lengths)]
    padded = values.new_zeros(max(lengths + [1]))
    padded[: values.numel()] = values
    return [v[:n] for v, n in zip(_gather_control(padded, group), lengths, strict=True)]


def _metadata(x: torch.Tensor) -> torch.Tensor:
    event = tuple(x.shape[1:])
    if len(event) > _MAX_EVENT_DIMS:
        raise ValueError(
            f"can gather tensors with up to {_MAX_EVENT_DIMS} event dimensions, got shape "
            f"{tuple(x.shape)}"
        )
    code = _DTYPES.index(x.dtype) if x.dtype in _DTYPES else -1
    row = [x.shape[0], len(event), code, *event] + [-1] * (_MAX_EVENT_DIMS - len(event))
    return torch.tensor(row, dtype=torch.int64)


def _describe(row: torch.Tensor) -> str:
    ndim, code = int(row[1]), int(row[2])
    dtype = _DTYPES[code] if code >= 0 else "an unlisted dtype"
    return f"({int(row[0])}, {', '.join(str(int(s)) for s in row[3 : 3 + ndim])}) {dtype}"


def _gather_rows(x: torch.Tensor, group) -> tuple[torch.Tensor, list[int]]:
    """Concatenate every rank's ``x`` (shape ``(B_r, *event)``, ``B_r`` may differ, even be 0)
    along the batch in rank order; returns the gathered tensor and the list of ``B_r``.

    The event shape and dtype must agree on all ranks; every rank checks the same gathered
    metadata, so a mismatch raises the same ValueError everywhere (no rank is left waiting)."""
    if x.ndim < 1:
        raise ValueError("a gathered tensor needs a batch dimension (B, *event), got shape ()")
    rows = _gather_control(_metadata(x), group)
    if any(not torch.equal(row[1:], rows[0][1:]) for row in rows) or int(rows[0][2]) < 0:
        shapes = "; ".join(f"rank {r}: {_describe(row)}" for r, row in enumerate(rows))
        raise ValueError(
            f"all ranks must gather tensors of one event shape and one (listed) dtype, got {shapes}"
        )
    sizes = [int(row[0]) for row in rows]
    longest = max(sizes)
    local = x.contiguous()
    if local.shape[0] < longest:  # pad for transport only; the padding is cut off below
        local = torch.cat([local, local.new_zeros((longest - local.shape[0], *x.shape[1:]))])
    out = [torch.empty_like(local) for _ in sizes]
    dist.all_gather(out, local, group=group)
    return torch.cat([part[:n] for part, n in zip(out, sizes, strict=True)]), sizes


class _AllGather(torch.autograd.Function):
    """Forward: every rank's rows, concatenated. Backward: the incoming gradient summed over
    ranks (every rank differentiates its own loss of the gathered batch), then this rank's
    rows. After DDP averages the parameter gradients, each parameter sees the gradient of
    the average over ranks of the per-rank losses, as one process would compute it."""

    @staticmethod
    def forward(ctx, x, group):
        gathered, sizes = _gather_rows(x, group)
        rank = dist.get_rank(group)
        ctx.group, ctx.start, ctx.stop = group, sum(sizes[:rank]), sum(sizes[: rank + 1])
        return gathered

    @staticmethod
    def backward(ctx, grad):
        grad = grad.contiguous().clone()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM, group=ctx.group)
        return grad[ctx.start : ctx.stop], None


def all_gather(x: torch.Tensor, *, group=None) -> torch.Tensor:
    r"""The rows of every rank's ``x`` concatenated in rank order, shape $(\sum_r B_r,
    \ast\text{event})$, **differentiable**: for losses that couple samples across the batch
    (an MMD between pushforwards, a contrastive or moment-matching loss, a coupling).

    Batch sizes may differ by rank (the last, short batch of an epoch; a rank with no rows);
    the event shape and dtype must agree (else a ValueError on every rank). The backward
    pass sums the gradient of the gathered tensor over ranks and returns this rank's rows,
    so when every rank computes the same loss of the gathered batch and DDP (or FSDP)
    averages the parameter gradients, the result is the single-process gradient of that loss
    on the concatenated batch. Without a process group it returns ``x``.
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"all_gather needs a torch.Tensor, got {type(x).__name__}")
    if not is_distributed():
        return x
    return _AllGather.apply(x, group)


@plumbing("averages per-sample values over the ranks; the only arithmetic is the count")
def global_mean(values: torch.Tensor, *, group=None) -> torch.Tensor:
    r"""The mean of per-sample ``values`` (e.g. a loss with ``reduction="none"``) over the
    **global** batch, shaped for gradient averaging.

    DDP, FSDP, Lightning and accelerate average the parameter gradients over ranks. With
    per-rank means this is the global mean's gradient only when every rank holds the same
    number of samples; in general rank $r$ must contribute
    $\frac{W}{N}\sum_{i \in r} \ell_i$ ($W$ ranks, $N = \sum_r B_r$ samples), so that
    $\frac1W\sum_r \frac WN \nabla\sum_{i\in r}\ell_i = \nabla\frac1N\sum_i \ell_i$. That is
    the gradient of the returned 0-d tensor; its value is the global mean itself (computed in
    float64 and identical on all ranks), convenient for logging. Without a process group it
    is ``values.mean()``.
    """
    if not isinstance(values, torch.Tensor):
        raise TypeError(f"global_mean needs a torch.Tensor, got {type(values).__name__}")
    if not is_distributed():
        if values.numel() == 0:
            raise ValueError("global_mean of an empty tensor: there are no samples to average")
        return values.mean()
    world = dist.get_world_size(group)
    local_sum = values.sum()
    totals = torch.tensor(
        [float(local_sum.detach()), float(values.numel())],
        dtype=torch.float64,
        device=_control_device(group),
    )
    dist.all_reduce(totals, op=dist.ReduceOp.SUM, group=group)
    total, count = float(totals[0]), float(totals[1])
    if count == 0:
        raise ValueError("global_mean: no rank holds any sample to average")
    scaled = local_sum * (world / count)
    return scaled + (total / count - scaled).detach()


def _exact_partials(values: Iterable[float]) -> list[float]:
    """Non-overlapping floats whose exact (real-number) sum is the exact sum of ``values``
    (Shewchuk's expansion arithmetic, the algorithm behind `math.fsum`). Partials of several
    ranks can be merged by summing them all with `math.fsum`."""
    partials: list[float] = []
    for value in values:
        kept = 0
        for partial in partials:
            if abs(value) < abs(partial):
                value, partial = partial, value
            high = value + partial
            low = partial - (high - value)
            if low:
                partials[kept] = low
                kept += 1
            value = high
        partials[kept:] = [value]
    return partials


def exact_sum(values: torch.Tensor, *, group=None) -> float:
    """The correctly rounded float64 sum of ``values`` over all ranks: each rank reduces its
    own values to exact partials, the partials are gathered, and `math.fsum` rounds their
    sum once. The result is the same whatever the world size and the order of the values
    (a plain all-reduce of per-rank sums is not: float addition does not associate)."""
    if not isinstance(values, torch.Tensor):
        raise TypeError(f"exact_sum needs a torch.Tensor, got {type(values).__name__}")
    flat = values.detach().to(device="cpu", dtype=torch.float64).reshape(-1).tolist()
    if any(math.isnan(v) for v in flat):
        raise ValueError("exact_sum: the values contain NaN")
    if is_distributed():
        # expansions hold finite numbers; an infinity of each sign present is kept as is
        infinite = sorted({v for v in flat if math.isinf(v)})
        local = _exact_partials(v for v in flat if not math.isinf(v)) + infinite
        gathered = _gather_variable_control(torch.tensor(local, dtype=torch.float64), group)
        flat = [v for part in gathered for v in part.tolist()]
    if math.inf in flat and -math.inf in flat:
        raise ValueError("exact_sum: the values contain both +inf and -inf, whose sum is undefined")
    return math.fsum(flat)
