"""Couplings and reductions of the global batch on two gloo processes: the global OT pairing is
the single-process pairing of the concatenated batch; `all_gather` gathers unequal batches
and sums gradients over ranks; `global_mean` and `exact_sum` reduce over ranks."""

from __future__ import annotations

import math

import pytest
import torch
import torch.distributed as dist
from _dist_launch import run_ranks

import genmath.distributed as gdist
from genmath.families.flow_matching import ot_coupling

pytestmark = pytest.mark.skipif(not dist.is_available(), reason="no torch.distributed")

SPLITS = {"4 + 4 rows": (4, 4), "5 + 2 rows": (5, 2), "6 + 0 rows": (6, 0)}


def _batches(sizes, event=(2, 3)):
    g = torch.Generator().manual_seed(11)
    n = sum(sizes)
    x0 = torch.randn(n, *event, generator=g, dtype=torch.float64) + 2.0
    x1 = torch.randn(n, *event, generator=g, dtype=torch.float64)
    return x0, x1


def _rows(sizes, rank):
    start = sum(sizes[:rank])
    return slice(start, start + sizes[rank])


# adversarial for float addition: the exact sum is 3.0; a plain sum of rank sums is not
ADVERSARIAL = [[1e16, 1.0, -1e16, 0.5], [1.0, 1e-300, 0.5]]


def _rank_worker(rank, world_size):
    out = {}
    for split, sizes in SPLITS.items():
        x0, x1 = _batches(sizes)
        mine = _rows(sizes, rank)
        out[split] = {
            "global": gdist.pair_by_ot(x0[mine], x1[mine]),
            "local": gdist.pair_by_ot(x0[mine], x1[mine], scope="local") if sizes[rank] else None,
            "gathered": gdist.all_gather(x0[mine]),
        }
        # every rank differentiates its own loss of the gathered batch
        leaf = x0[mine].clone().requires_grad_(True)
        weights = torch.arange(1.0, 1.0 + x0[..., 0, 0].numel()) * (rank + 1)
        loss = (weights[:, None, None] * gdist.all_gather(leaf).pow(2)).sum()
        loss.backward()
        out[split]["gather_grad"] = leaf.grad
        # a global mean of per-sample values
        leaf = x0[mine, 0, 0].clone().requires_grad_(True)
        mean = gdist.global_mean(leaf.pow(2))
        mean.backward()
        out[split]["mean"] = (float(mean), leaf.grad)
        # a gradient of the OT-paired noise flows back to the rank that drew it
        noise = x1[mine].clone().requires_grad_(True)
        gdist.pair_by_ot(x0[mine], noise).sum().backward()
        out[split]["paired_noise_grad"] = noise.grad
    out["exact_sum"] = gdist.exact_sum(torch.tensor(ADVERSARIAL[rank], dtype=torch.float64))
    out["plain_sum"] = torch.tensor(ADVERSARIAL[rank], dtype=torch.float64).sum()
    dist.all_reduce(out["plain_sum"])
    for label, tensor in {
        "event shape": torch.zeros(2, 3 + rank),
        "dtype": torch.zeros(2, 3, dtype=torch.float32 if rank else torch.float64),
    }.items():
        try:
            gdist.all_gather(tensor)
        except ValueError as error:
            out[f"mismatch {label}"] = str(error)
    return out


@pytest.fixture(scope="module")
def ranks():
    return run_ranks(_rank_worker, 2)


@pytest.mark.parametrize("split", list(SPLITS))
def test_global_ot_coupling_is_the_coupling_of_the_concatenated_batch(ranks, split):
    sizes = SPLITS[split]
    x0, x1 = _batches(sizes)
    paired = x1[ot_coupling(x0, x1)]  # one process, the whole batch
    for rank, result in enumerate(ranks):
        assert torch.equal(result[split]["global"], paired[_rows(sizes, rank)])


def test_per_rank_ot_coupling_is_not_the_global_one(ranks):
    """The reason for the global option: each rank's own plan pairs only its own noise."""
    sizes = SPLITS["4 + 4 rows"]
    x0, x1 = _batches(sizes)
    paired = x1[ot_coupling(x0, x1)]
    local = torch.cat([r["4 + 4 rows"]["local"] for r in ranks])
    assert not torch.equal(local, paired)
    for rank, result in enumerate(ranks):  # the local plan only permutes the rank's rows
        mine = x1[_rows(sizes, rank)]
        assert torch.equal(
            result["4 + 4 rows"]["local"], mine[ot_coupling(x0[_rows(sizes, rank)], mine)]
        )


@pytest.mark.parametrize("split", list(SPLITS))
def test_all_gather_concatenates_in_rank_order(ranks, split):
    x0, _ = _batches(SPLITS[split])
    for result in ranks:
        assert torch.equal(result[split]["gathered"], x0)


@pytest.mark.parametrize("split", list(SPLITS))
def test_all_gather_gradient_is_summed_over_ranks(ranks, split):
    """Rank r's loss is sum_i w_i (r + 1) y_i^2 over the gathered y; the gradient reaching
    rank r's rows is the sum over ranks, sum_r' 2 w_i (r' + 1) y_i = 6 w_i y_i for two ranks."""
    sizes = SPLITS[split]
    x0, _ = _batches(sizes)
    weights = torch.arange(1.0, 1.0 + x0.shape[0])[:, None, None]
    expected = 2 * weights * x0 * (1 + 2)
    for rank, result in enumerate(ranks):
        torch.testing.assert_close(
            result[split]["gather_grad"], expected[_rows(sizes, rank)], rtol=1e-14, atol=0
        )


@pytest.mark.parametrize("split", list(SPLITS))
def test_global_mean_value_and_gradient(ranks, split):
    """Value: the mean over all rows; gradient on rank r: (W / N) d/dv sum_r v^2 = 2 W v / N,
    which DDP's average over the W ranks turns into the global mean's 2 v / N."""
    sizes = SPLITS[split]
    v = _batches(sizes)[0][:, 0, 0]
    n = v.numel()
    for rank, result in enumerate(ranks):
        value, grad = result[split]["mean"]
        assert value == pytest.approx(float(v.pow(2).mean()), rel=1e-14)
        torch.testing.assert_close(grad, 2 * 2 * v[_rows(sizes, rank)] / n, rtol=1e-14, atol=0)


@pytest.mark.parametrize("split", list(SPLITS))
def test_paired_noise_gradient_returns_to_its_rank(ranks, split):
    """Each rank differentiates the sum of its paired rows; every row of x1 is the partner of
    exactly one row of x0 on exactly one rank, so the gradient summed over the ranks' losses
    is 1 for every entry of every rank's x1 (also where the partner lives on the other rank)."""
    sizes = SPLITS[split]
    for rank, result in enumerate(ranks):
        grad = result[split]["paired_noise_grad"]
        assert grad is not None and grad.shape == (sizes[rank], 2, 3)
        assert torch.equal(grad, torch.ones_like(grad))


def test_exact_sum_is_correctly_rounded_over_ranks(ranks):
    exact = math.fsum(v for part in ADVERSARIAL for v in part)
    assert exact == 3.0
    for result in ranks:
        assert result["exact_sum"] == exact
        assert float(result["plain_sum"]) != exact  # what a plain all-reduce gives


def test_mismatched_event_shapes_or_dtypes_raise_on_every_rank(ranks):
    for result in ranks:
        assert result["mismatch event shape"] == (
            "all ranks must gather tensors of one event shape and one (listed) dtype, got "
            "rank 0: (2, 3) torch.float64; rank 1: (2, 4) torch.float64"
        )
        assert result["mismatch dtype"].endswith(
            "rank 0: (2, 3) torch.float64; rank 1: (2, 3) torch.float32"
        )
