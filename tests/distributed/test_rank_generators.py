"""Per-rank generators: different noise on each rank, the same noise on a rerun and in any
process that rebuilds a rank's stream, and independent streams (not a shifted seed)."""

from __future__ import annotations

import pytest
import torch
import torch.distributed as dist
from _dist_launch import run_ranks

import genmath.distributed as gdist
from genmath.testing import assert_mean_matches

pytestmark = pytest.mark.skipif(not dist.is_available(), reason="no torch.distributed")

SEED = 1234
DRAWS = 20_000


def _rank_worker(rank, world_size):
    first = torch.randn(DRAWS, generator=gdist.rank_generator(SEED))
    again = torch.randn(DRAWS, generator=gdist.rank_generator(SEED))
    return {"first": first, "again": again, "rank": gdist.rank_and_world_size()}


@pytest.fixture(scope="module")
def runs():
    """Two separate runs of three ranks each."""
    return run_ranks(_rank_worker, 3), run_ranks(_rank_worker, 3)


def test_each_rank_knows_its_rank(runs):
    assert [r["rank"] for r in runs[0]] == [(0, 3), (1, 3), (2, 3)]


def test_ranks_draw_different_noise(runs):
    draws = [r["first"] for r in runs[0]]
    for i in range(3):
        for j in range(i + 1, 3):
            assert not torch.equal(draws[i][:10], draws[j][:10])


def test_same_noise_on_a_rerun_and_when_rebuilt_elsewhere(runs):
    for rank in range(3):
        first, second = runs[0][rank], runs[1][rank]
        assert torch.equal(first["first"], second["first"])
        assert torch.equal(first["first"], first["again"])
        rebuilt = torch.randn(DRAWS, generator=gdist.rank_generator(SEED, rank=rank))
        assert torch.equal(first["first"], rebuilt)


def test_rank_streams_are_uncorrelated(runs):
    """E[z_r z_s] = 0 for independent standard normals (two-sided, k from failure 1e-6, and
    Bonferroni over the three pairs); E[z_r^2] = 1 checks the statistic can see a dependence
    (a rank paired with itself)."""
    draws = [r["first"] for r in runs[0]]
    products = torch.stack([draws[0] * draws[1], draws[0] * draws[2], draws[1] * draws[2]], 1)
    # resolves a correlation of 0.05 between two ranks' streams (a rank with itself gives 1)
    assert_mean_matches(products, torch.zeros(3), precision=0.05, name="cross-rank correlation")
    with pytest.raises(AssertionError):
        assert_mean_matches((draws[0] * draws[0])[:, None], torch.zeros(1), precision=0.05)


def test_streams_are_not_a_shifted_seed():
    """Mixing by seed + rank would make rank 1 of seed s the stream of rank 0 of seed s + 1;
    SHA-256 mixing does not."""
    a = torch.randn(8, generator=gdist.rank_generator(SEED, rank=1))
    b = torch.randn(8, generator=gdist.rank_generator(SEED + 1, rank=0))
    assert not torch.equal(a, b)
    assert gdist.derive_seed(SEED, "rank", 1) != gdist.derive_seed(SEED + 1, "rank", 0)


def test_derive_seed_is_a_63_bit_integer_that_depends_on_every_key():
    seeds = {
        gdist.derive_seed(0),
        gdist.derive_seed(0, "rank", 0),
        gdist.derive_seed(0, "rank", 1),
        gdist.derive_seed(0, "batch", 0),
        gdist.derive_seed(1, "rank", 0),
        gdist.derive_seed(0, "rank", "0"),  # a string key is not the integer key
    }
    assert len(seeds) == 6
    assert all(0 <= s < 2**63 for s in seeds)


def test_no_process_group_means_rank_zero():
    assert gdist.rank_and_world_size() == (0, 1)
    assert not gdist.is_distributed()
    assert torch.equal(
        torch.randn(5, generator=gdist.rank_generator(SEED)),
        torch.randn(5, generator=gdist.rank_generator(SEED, rank=0)),
    )


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda: gdist.derive_seed(-1), ValueError, "seed must be a non-negative integer, got -1"),
        (lambda: gdist.derive_seed(1.5), ValueError, "seed must be a non-negative integer"),
        (lambda: gdist.derive_seed(True), ValueError, "seed must be a non-negative integer"),
        (lambda: gdist.derive_seed(0, 1.0), TypeError, "keys must be integers or strings"),
        (lambda: gdist.rank_generator(0, rank=-1), ValueError, "rank must be a non-negative"),
    ],
)
def test_bad_seeds_and_ranks_are_refused(call, error, match):
    with pytest.raises(error, match=match):
        call()
