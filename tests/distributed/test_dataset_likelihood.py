"""Dataset likelihoods across ranks equal the single-process ones exactly (float64, bit for
bit), for dataset sizes not divisible by the world size and for more ranks than batches; the
single-process numbers themselves are checked against scipy and a hand-written bits/dim."""

from __future__ import annotations

import contextlib
import io
import math

import numpy as np
import pytest
import scipy.stats
import torch
import torch.distributed as dist
from _dist_launch import run_ranks
from torch import distributions as D
from torch.utils.data import Dataset

import genmath
import genmath.distributed as gdist
from genmath.analytic import Gaussian
from genmath.core.path import GaussianPath
from genmath.families import diffusion as dif
from genmath.families.flows import RealNVP
from genmath.families.vae import GaussianDecoder, GaussianEncoder
from genmath.nn import VelocityMLP
from genmath.schedules import VP

pytestmark = pytest.mark.skipif(not dist.is_available(), reason="no torch.distributed")

SEED = 7


def _data(n: int, dim: int = 3) -> torch.Tensor:
    g = torch.Generator().manual_seed(n)
    return torch.randn(n, dim, generator=g, dtype=torch.float64) * 1.3 + 0.4


def _gaussian() -> Gaussian:
    a = torch.tensor([[1.0, 0.0, 0.0], [0.6, 0.8, 0.0], [-0.3, 0.5, 0.7]], dtype=torch.float64)
    return Gaussian(torch.tensor([0.5, -0.2, 0.1], dtype=torch.float64), a @ a.T)


class _Labelled(Dataset):
    """A map-style dataset of (x, label) pairs: the collated batch is a list [x, labels]."""

    def __init__(self, x: torch.Tensor):
        self.x = x

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return self.x[i], i % 3


def _models():
    torch.manual_seed(3)
    velocity = VelocityMLP(3, hidden=8)
    ddpm = dif.DDPM(
        lambda x, t: torch.tanh(x) * (1 - t)[:, None],
        dif.DiscreteSchedule.from_path(GaussianPath(VP()), 8),
    )
    encoder, decoder = GaussianEncoder(3, 2, hidden=(8,)), GaussianDecoder(2, (3,), hidden=(8,))
    flow = RealNVP(3, 2, (8,))
    return velocity, ddpm, encoder, decoder, flow


def _standard_normal(x):
    return D.Normal(0.0, 1.0).log_prob(x).sum(1)


LEVELS = 17  # digits-like data: integers 0..16 per dimension


def _scenarios():
    """name -> (log_prob_fn, dataset, options), rebuilt identically in every process."""
    velocity, ddpm, encoder, decoder, flow = _models()
    prior = D.Independent(D.Normal(torch.zeros(2), torch.ones(2)), 1)
    counts = torch.randint(0, LEVELS, (13, 3), generator=torch.Generator().manual_seed(5))

    def dequantized_flow(k, generator):
        u = torch.rand(k.shape, generator=generator, dtype=torch.float64)
        return flow.log_prob((k + u) / LEVELS)

    return {
        "gaussian, 11 rows, batches of 3": (_gaussian().log_prob, _data(11), {"batch_size": 3}),
        "one batch, more ranks than batches": (
            _gaussian().log_prob,
            _data(2),
            {"batch_size": 4},
        ),
        "map-style dataset of (x, label)": (
            lambda batch: _gaussian().log_prob(batch[0]),
            _Labelled(_data(10)),
            {"batch_size": 4},
        ),
        "ODE likelihood, Hutchinson, adaptive dopri5": (
            lambda x, generator: genmath.ode_log_likelihood(
                velocity, x, _standard_normal, divergence="hutchinson", generator=generator
            ).detach(),
            _data(9),
            {"batch_size": 2, "seed": SEED},
        ),
        "DDPM.elbo": (
            lambda x, generator: ddpm.elbo(x, generator=generator).detach(),
            _data(7),
            {"batch_size": 3, "seed": SEED},
        ),
        "iwae": (
            lambda x, generator: genmath.iwae(x, encoder, decoder, prior, 4, generator).detach(),
            _data(8),
            {"batch_size": 3, "seed": SEED},
        ),
        "bits/dim, dequantized flow": (dequantized_flow, counts, {"batch_size": 4, "seed": SEED}),
    }


def _evaluate(name):
    fn, dataset, options = _scenarios()[name]
    if name.startswith("bits/dim"):
        with torch.no_grad():
            return gdist.dataset_bits_per_dim(
                fn, dataset, levels=LEVELS, return_values=True, **options
            )
    return gdist.dataset_log_likelihood(fn, dataset, return_values=True, **options)


def _rank_worker(rank, world_size):
    out = {name: _evaluate(name) for name in _scenarios()}
    # the progress bar is rank 0's alone
    stream = io.StringIO()
    with contextlib.redirect_stderr(stream):
        fn, dataset, options = _scenarios()["gaussian, 11 rows, batches of 3"]
        gdist.dataset_log_likelihood(fn, dataset, progress=True, **options)
    out["stderr"] = stream.getvalue()

    # a rank that fails makes every rank raise (rather than leave the others waiting)
    def broken(x):  # NaN for example 9, in batch 3 (rows 9..10): rank 0 of 3, rank 1 of 2
        return _gaussian().log_prob(x).masked_fill(x[:, 0] > 1e5, math.nan)

    x = _data(11)
    x[9, 0] = 1e6
    try:
        gdist.dataset_log_likelihood(broken, x, batch_size=3)
    except Exception as error:  # noqa: BLE001 - the test looks at what each rank raised
        out["failure"] = f"{type(error).__name__}: {error}"
    try:
        gdist.dataset_log_likelihood(_gaussian().log_prob, _data(5 + rank), batch_size=2)
    except Exception as error:  # noqa: BLE001
        out["mismatch"] = f"{type(error).__name__}: {error}"
    return out


@pytest.fixture(scope="module", params=[2, 3], ids=lambda w: f"{w} ranks")
def distributed(request):
    return request.param, run_ranks(_rank_worker, request.param)


@pytest.mark.parametrize("name", list(_scenarios()))
def test_distributed_equals_single_process_exactly(distributed, name):
    world_size, ranks = distributed
    single = _evaluate(name)
    for rank, result in enumerate(ranks):
        got = result[name]
        assert got.count == single.count == len(_scenarios()[name][1])
        # bit for bit: the same batches, the same draws, exact sums
        assert (got.mean, got.total, got.std_error) == (
            single.mean,
            single.total,
            single.std_error,
        ), f"{name}, rank {rank} of {world_size}: {got} != {single}"
        assert torch.equal(got.values, single.values)


def test_single_process_average_matches_scipy():
    """The reductions themselves: mean, total and standard error of exact log-densities."""
    x = _data(11)
    result = gdist.dataset_log_likelihood(_gaussian().log_prob, x, batch_size=3, return_values=True)
    g = _gaussian()
    exact = scipy.stats.multivariate_normal(g.mean.numpy(), g.cov.numpy()).logpdf(x.numpy())
    np.testing.assert_allclose(result.values.numpy(), exact, rtol=1e-12)
    assert result.count == 11
    assert result.total == pytest.approx(exact.sum(), rel=1e-12)
    assert result.mean == pytest.approx(exact.mean(), rel=1e-12)
    assert result.std_error == pytest.approx(exact.std(ddof=1) / math.sqrt(11), rel=1e-10)


def test_bits_per_dim_is_the_dequantized_log_likelihood_in_bits():
    """bits/dim = -(log p(x) + D log(1/L)) / (D log 2), written out here, from the same
    log-likelihoods (the same seed gives the same dequantization noise)."""
    fn, counts, options = _scenarios()["bits/dim, dequantized flow"]
    with torch.no_grad():
        bits = gdist.dataset_bits_per_dim(fn, counts, levels=LEVELS, return_values=True, **options)
        nats = gdist.dataset_log_likelihood(fn, counts, return_values=True, **options)
    dims = counts.shape[1]
    by_hand = -(nats.values.numpy() + dims * math.log(1 / LEVELS)) / (dims * math.log(2))
    np.testing.assert_allclose(bits.values.numpy(), by_hand, rtol=1e-12)
    assert bits.mean == pytest.approx(by_hand.mean(), rel=1e-12)
    assert bits.std_error == pytest.approx(nats.std_error / (dims * math.log(2)), rel=1e-9)


def test_progress_bar_only_on_rank_zero(distributed):
    world_size, ranks = distributed
    assert "4/4 batches" not in ranks[0]["stderr"]  # rank 0 holds only its own batches
    assert "log-likelihood (rank 0 of" in ranks[0]["stderr"]
    assert ranks[0]["stderr"].rstrip().endswith("s")
    assert all(r["stderr"] == "" for r in ranks[1:])


def test_a_failing_rank_makes_every_rank_raise(distributed):
    world_size, ranks = distributed
    owner = 3 % world_size  # batch 3 holds example 9
    for rank, result in enumerate(ranks):
        if rank == owner:
            assert result["failure"] == "ValueError: log_prob_fn returned NaN for examples [9]"
        else:
            assert result["failure"].startswith("RuntimeError: the dataset evaluation failed on")
            assert f"rank(s) [{owner}]" in result["failure"]


def test_ranks_with_different_datasets_are_refused(distributed):
    world_size, ranks = distributed
    expected = list(range(5, 5 + world_size))
    for result in ranks:
        assert result["mismatch"] == (
            f"ValueError: every rank must pass the same dataset; the ranks' lengths are {expected}"
        )
