"""genmath.distributed without a process group: every function is its single-process meaning;
sharding, exact sums and input checks tested directly."""

from __future__ import annotations

import math
import random

import pytest
import torch
from torch.utils.data import IterableDataset

import genmath
import genmath.distributed as gdist
from genmath.distributed._collectives import _exact_partials
from genmath.families.flow_matching import ot_coupling


def test_lazy_attribute_of_genmath():
    assert genmath.distributed is gdist


@pytest.mark.parametrize("world_size", [1, 2, 3, 5])
@pytest.mark.parametrize("batch_size", [1, 2, 4])
def test_shard_batches_covers_every_example_exactly_once(world_size, batch_size):
    for n in range(0, 23):
        shards = [
            gdist.shard_batches(n, batch_size, rank=r, world_size=world_size)
            for r in range(world_size)
        ]
        indices = sorted(i for shard in shards for batch in shard for i in batch)
        assert indices == list(range(n))  # no padding, no duplicate, none missing
        # the batches are those of one process, whatever the world size
        batches = sorted((b.start, b.stop) for shard in shards for b in shard)
        assert batches == [(s, min(n, s + batch_size)) for s in range(0, n, batch_size)]
        counts = [len(shard) for shard in shards]
        assert max(counts) - min(counts) <= 1


def test_shard_batches_without_a_group_is_everything():
    assert gdist.shard_batches(7, 3) == [range(0, 3), range(3, 6), range(6, 7)]


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"n": -1, "batch_size": 2}, "n must be an integer >= 0"),
        ({"n": 4, "batch_size": 0}, "batch_size must be a positive integer"),
        ({"n": 4, "batch_size": 2, "rank": 2, "world_size": 2}, "rank must be < world_size"),
        ({"n": 4, "batch_size": 2, "world_size": 0}, "world_size must be a positive integer"),
    ],
)
def test_shard_batches_refuses_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        gdist.shard_batches(**kwargs)


def test_exact_partials_sum_to_the_correctly_rounded_sum():
    rng = random.Random(0)
    for _ in range(200):
        values = [
            rng.choice([-1, 1]) * 10 ** rng.uniform(-20, 20) for _ in range(rng.randint(0, 40))
        ]
        values += [-v for v in values[: rng.randint(0, len(values))]]  # cancellations
        rng.shuffle(values)
        partials = _exact_partials(values)
        assert math.fsum(partials) == math.fsum(values)
        # in two halves, merged: what ranks do
        half = len(values) // 2
        merged = _exact_partials(values[:half]) + _exact_partials(values[half:])
        assert math.fsum(merged) == math.fsum(values)


def test_exact_sum_without_a_group():
    values = torch.tensor([1e16, 1.0, -1e16, 1.0])
    assert gdist.exact_sum(values) == 2.0 != float(values.sum())
    assert gdist.exact_sum(torch.tensor([1.0, math.inf])) == math.inf
    with pytest.raises(ValueError, match="contain NaN"):
        gdist.exact_sum(torch.tensor([1.0, math.nan]))
    with pytest.raises(ValueError, match="both \\+inf and -inf"):
        gdist.exact_sum(torch.tensor([math.inf, -math.inf]))
    with pytest.raises(TypeError, match="needs a torch.Tensor"):
        gdist.exact_sum([1.0])


def test_global_mean_and_all_gather_without_a_group():
    x = torch.randn(5, 2, requires_grad=True)
    assert gdist.all_gather(x) is x
    v = x.pow(2).sum(1)
    assert torch.equal(gdist.global_mean(v), v.mean())
    with pytest.raises(ValueError, match="empty tensor"):
        gdist.global_mean(torch.zeros(0))
    with pytest.raises(TypeError, match="needs a torch.Tensor"):
        gdist.global_mean(1.0)
    with pytest.raises(TypeError, match="needs a torch.Tensor"):
        gdist.all_gather([1.0])


def test_pair_by_ot_without_a_group_is_the_family_coupling():
    g = torch.Generator().manual_seed(0)
    x0, x1 = torch.randn(6, 2, generator=g) + 3, torch.randn(6, 2, generator=g)
    expected = x1[ot_coupling(x0, x1)]
    assert not torch.equal(expected, x1)  # the plan is not the identity: a real test
    for scope in gdist.SCOPES:
        assert torch.equal(gdist.pair_by_ot(x0, x1, scope=scope), expected)
    with pytest.raises(ValueError, match="scope must be one of"):
        gdist.pair_by_ot(x0, x1, scope="world")
    with pytest.raises(ValueError, match="x1 must have the shape of x0"):
        gdist.pair_by_ot(x0, x1[:3])


def _log_prob(x):
    return -0.5 * x.pow(2).sum(1)


def test_progress_bar_on_stderr(capsys):
    gdist.dataset_log_likelihood(_log_prob, torch.randn(10, 2), batch_size=3, progress=True)
    err = capsys.readouterr().err
    assert "log-likelihood [" in err and "4/4 batches" in err and err.endswith("\n")
    gdist.dataset_log_likelihood(_log_prob, torch.randn(10, 2), batch_size=3, progress=False)
    assert capsys.readouterr().err == ""


def test_one_example_has_no_standard_error():
    result = gdist.dataset_log_likelihood(_log_prob, torch.ones(1, 2), batch_size=3)
    assert (result.count, result.mean, result.total) == (1, -1.0, -1.0)
    assert math.isnan(result.std_error)


def test_device_moves_nested_batches():
    seen = []

    def fn(batch):
        seen.append(batch["x"].device)
        return _log_prob(batch["x"])

    class Dicts(torch.utils.data.Dataset):
        def __len__(self):
            return 3

        def __getitem__(self, i):
            return {"x": torch.full((2,), float(i))}

    result = gdist.dataset_log_likelihood(fn, Dicts(), batch_size=2, device="cpu")
    assert result.total == -0.5 * (0 + 2 + 8)
    assert seen == [torch.device("cpu")] * 2


class _Stream(IterableDataset):
    def __iter__(self):
        yield torch.zeros(2)


@pytest.mark.parametrize(
    "fn, dataset, kwargs, error, match",
    [
        (_log_prob, torch.zeros(4, 2), {"batch_size": 0}, ValueError, "batch_size must be"),
        (_log_prob, torch.zeros(0, 2), {"batch_size": 2}, ValueError, "the dataset is empty"),
        (_log_prob, torch.tensor(1.0), {"batch_size": 2}, ValueError, "needs a batch dimension"),
        (_log_prob, _Stream(), {"batch_size": 2}, TypeError, "map-style dataset"),
        (_log_prob, 3, {"batch_size": 2}, TypeError, "got int"),
        ("log p", torch.zeros(4, 2), {"batch_size": 2}, TypeError, "log_prob_fn must be callable"),
        (
            lambda x: x.sum(),
            torch.zeros(4, 2),
            {"batch_size": 3},
            ValueError,
            r"a tensor of shape \(3,\), for the batch of examples 0..2; got \(\)",
        ),
        (
            lambda x: [0.0] * len(x),
            torch.zeros(4, 2),
            {"batch_size": 3},
            ValueError,
            "got list",
        ),
        (
            lambda x: torch.full((len(x),), math.nan),
            torch.zeros(4, 2),
            {"batch_size": 3},
            ValueError,
            r"returned NaN for examples \[0, 1, 2\]",
        ),
        (_log_prob, torch.zeros(4, 2), {"batch_size": 2, "seed": 0}, TypeError, "generator"),
        (_log_prob, torch.zeros(4, 2), {"batch_size": 2, "seed": -3}, ValueError, "seed must"),
        (
            _log_prob,
            torch.zeros(4, 2),
            {"batch_size": 2, "num_workers": -1},
            ValueError,
            "num_workers",
        ),
    ],
)
def test_dataset_log_likelihood_refuses_bad_input(fn, dataset, kwargs, error, match):
    with pytest.raises(error, match=match):
        gdist.dataset_log_likelihood(fn, dataset, **kwargs)


def test_dataset_bits_per_dim_needs_dims_for_non_tensor_batches():
    pairs = [(torch.zeros(2), 0), (torch.zeros(2), 1)]
    with pytest.raises(ValueError, match="dims is needed when batches are not tensors"):
        gdist.dataset_bits_per_dim(lambda b: _log_prob(b[0]), pairs, batch_size=2)
    result = gdist.dataset_bits_per_dim(lambda b: _log_prob(b[0]), pairs, batch_size=2, dims=2)
    assert result.mean == pytest.approx(8.0)  # log p = 0 on [0, 1]^2 with 256 levels: 8 bits
    with pytest.raises(ValueError, match="dims must be a positive integer"):
        gdist.dataset_bits_per_dim(_log_prob, torch.zeros(2, 2), batch_size=2, dims=0)
    with pytest.raises(ValueError, match="levels must be an integer >= 2"):
        gdist.dataset_bits_per_dim(_log_prob, torch.zeros(2, 2), batch_size=2, levels=1)
