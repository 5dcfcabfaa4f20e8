"""DDP gradients of each family's loss on a split batch equal one process's gradient on the
whole batch, on two gloo processes.

Each case is a module whose forward returns the loss (per-sample values, or a scalar for the
losses that only reduce by the mean); DDP wraps it, each rank evaluates its rows of one batch,
and the DDP-averaged parameter gradients are compared with the gradient one process computes
on all rows. Losses whose randomness can be passed in (times, noise) get the whole batch's
draws split by rows, so the reference is literally one call on the whole batch; losses that
draw from a generator get each rank's `rank_generator`, and the reference evaluates the same
rows with the same generators in one process, then averages over the whole batch.

Split 4 + 4, per-rank means averaged by DDP are the global mean; split 5 + 2 they are not,
and `global_mean` is what makes DDP's average the global mean's gradient (both tested, and the
naive per-rank mean is shown to be wrong there).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest
import torch
import torch.distributed as dist
from _dist_launch import run_ranks
from torch import distributions as D
from torch import nn
from torch.nn.parallel import DistributedDataParallel

import genmath
import genmath.distributed as gdist
from genmath import score_matching
from genmath.core.path import GaussianPath
from genmath.families import consistency, gan, meanflow
from genmath.families import diffusion as dif
from genmath.families import flow_matching as fm
from genmath.families.flows import RealNVP
from genmath.families.vae import GaussianDecoder, GaussianEncoder
from genmath.schedules import VP, CondOT

pytestmark = pytest.mark.skipif(not dist.is_available(), reason="no torch.distributed")

SEED = 2024


class TimeMLP(nn.Module):
    """A small network f(x, t) on (B, 2) inputs, any real t (EDM passes log noise levels)."""

    def __init__(self, dim: int = 2, hidden: int = 8):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(dim + 1, hidden), nn.SiLU(), nn.Linear(hidden, dim))

    def forward(self, x, t):
        t = torch.as_tensor(t, dtype=x.dtype).expand(x.shape[0])
        return self.net(torch.cat([x, t[:, None]], dim=1))


class Pair(nn.Module):
    def __init__(self, first: nn.Module, second: nn.Module):
        super().__init__()
        self.first, self.second = first, second


def _mmd2(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Squared MMD (biased V-statistic) with a unit Gaussian kernel: couples every sample."""

    def kernel(u, v):
        return torch.exp(-0.5 * torch.cdist(u, v).pow(2)).mean()

    return kernel(a, a) + kernel(b, b) - 2 * kernel(a, b)


VP_PATH = GaussianPath(VP())
OT_PATH = GaussianPath(CondOT())


@dataclass
class Case:
    name: str
    build: Callable[[], nn.Module]
    loss: Callable  # (module, rows: dict, generator) -> (B,) values or a scalar
    draws: bool = False  # the loss draws from `generator`
    per_sample: bool = True
    whole: Callable | None = None  # one process's loss of the whole batch, if not `loss`
    unused_parameters: bool = False


def _ddpm():
    return dif.DDPM(TimeMLP(), dif.DiscreteSchedule.from_path(VP_PATH, 10))


def _consistency():
    model = consistency.ConsistencyModel(TimeMLP(), OT_PATH)
    return Pair(model, model.target_copy())


def _prior():
    return D.Independent(D.Normal(torch.zeros(2), torch.ones(2)), 1)


CASES = {
    c.name: c
    for c in [
        Case(
            "cfm_loss",
            TimeMLP,
            lambda m, b, g: fm.cfm_loss(
                m, b["x"], OT_PATH, t=b["t"], noise=b["noise"], reduction="none"
            ),
        ),
        Case(
            "cfm_loss_x0_parameterization",
            TimeMLP,
            lambda m, b, g: fm.cfm_loss(
                m,
                b["x"],
                VP_PATH,
                parameterization="x0",
                t=b["t_inner"],
                noise=b["noise"],
                reduction="none",
            ),
        ),
        Case(
            "cfm_loss_global_ot",
            TimeMLP,
            lambda m, b, g: fm.cfm_loss(
                m,
                b["x"],
                OT_PATH,
                t=b["t"],
                noise=gdist.pair_by_ot(b["x"], b["noise"]),
                reduction="none",
            ),
            whole=lambda m, b: fm.cfm_loss(
                m, b["x"], OT_PATH, t=b["t"], noise=b["noise"], coupling="ot", reduction="none"
            ),
        ),
        Case(
            "DDPM.loss",
            _ddpm,
            lambda m, b, g: m.loss(b["x"], generator=g, reduction="none"),
            draws=True,
        ),
        Case(
            "EDM.loss",
            lambda: dif.EDM(TimeMLP()),
            lambda m, b, g: m.loss(b["x"], noise_level=b["s"], generator=g, reduction="none"),
            draws=True,
        ),
        Case(
            "score_matching.denoising",
            TimeMLP,
            lambda m, b, g: score_matching.denoising(
                m,
                b["x"],
                VP_PATH,
                t=b["t_inner"],
                parameterization="eps",
                generator=g,
                reduction="none",
            ),
            draws=True,
        ),
        Case(
            "elbo",
            lambda: Pair(GaussianEncoder(2, 2, hidden=(8,)), GaussianDecoder(2, (2,), hidden=(8,))),
            lambda m, b, g: -genmath.elbo(b["x"], m.first, m.second, _prior(), 2, generator=g),
            draws=True,
        ),
        Case(
            "iwae",
            lambda: Pair(GaussianEncoder(2, 2, hidden=(8,)), GaussianDecoder(2, (2,), hidden=(8,))),
            lambda m, b, g: -genmath.iwae(b["x"], m.first, m.second, _prior(), 3, generator=g),
            draws=True,
        ),
        Case(
            "flow NLL (RealNVP)", lambda: RealNVP(2, 2, (8,)), lambda m, b, g: -m.log_prob(b["x"])
        ),
        Case(
            "consistency_training_loss",
            _consistency,
            lambda m, b, g: consistency.consistency_training_loss(
                m.first, m.second, b["x"], OT_PATH, steps=6, generator=g, reduction="none"
            ),
            draws=True,
        ),
        Case(
            "meanflow_loss",
            lambda: meanflow.AverageVelocityMLP(2, hidden=8, depth=2),
            lambda m, b, g: meanflow.meanflow_loss(
                m, b["x"], r=b["r"], t=b["t"], noise=b["noise"], reduction="none"
            ),
        ),
        Case(
            "improved_meanflow_loss",
            lambda: meanflow.AverageVelocityMLP(2, hidden=8, depth=2),
            lambda m, b, g: meanflow.improved_meanflow_loss(
                m, b["x"], r=b["r"], t=b["t"], noise=b["noise"], reduction="none"
            ),
        ),
        Case(
            "GAN non-saturating generator loss",
            lambda: Pair(gan.MLP(2, 2, hidden=8, depth=2), gan.MLP(2, None, hidden=8, depth=2)),
            lambda m, b, g: gan.non_saturating_generator_loss(m.second(m.first(b["z"]))),
            per_sample=False,
        ),
        Case(
            "GAN minimax discriminator loss",
            lambda: Pair(gan.MLP(2, 2, hidden=8, depth=2), gan.MLP(2, None, hidden=8, depth=2)),
            lambda m, b, g: gan.minimax_discriminator_loss(
                m.second(b["x"]), m.second(m.first(b["z"]).detach())
            ),
            per_sample=False,
            unused_parameters=True,  # the generator gets no gradient from this loss
        ),
        Case(
            "MMD of pushforwards (all_gather)",
            lambda: gan.MLP(2, 2, hidden=8, depth=2),
            lambda m, b, g: _mmd2(gdist.all_gather(m(b["z"])), gdist.all_gather(b["x"])),
            per_sample=False,
            whole=lambda m, b: _mmd2(m(b["z"]), b["x"]),
        ),
    ]
}

# rows of the batch held by each of the two ranks, and how the per-rank loss is reduced
SPLITS = {
    "equal, per-rank mean": ((4, 4), "mean"),
    "unequal, global_mean": ((5, 2), "global_mean"),
    "unequal, per-rank mean (wrong)": ((5, 2), "mean"),
}


def _batch(rows: int) -> dict:
    g = torch.Generator().manual_seed(SEED)
    t = torch.rand(rows, generator=g)
    return {
        "x": torch.randn(rows, 2, generator=g) * torch.tensor([1.5, 0.5])
        + torch.tensor([1.0, -2.0]),
        "noise": torch.randn(rows, 2, generator=g),
        "z": torch.randn(rows, 2, generator=g),
        "t": t,
        "r": t * torch.rand(rows, generator=g),
        "t_inner": 0.05 + 0.9 * torch.rand(rows, generator=g),
        "s": torch.exp(torch.randn(rows, generator=g)),
    }


class _LossModule(nn.Module):
    def __init__(self, case: Case):
        super().__init__()
        self.case, self.inner = case, case.build()

    def forward(self, rows: dict, generator):
        return self.case.loss(self.inner, rows, generator)


def _model(case: Case) -> _LossModule:
    torch.manual_seed(0)  # the same initial parameters in every process
    return _LossModule(case)


def _rows(sizes, rank):
    start = sum(sizes[:rank])
    return slice(start, start + sizes[rank])


def _reduce(values: torch.Tensor, reduction: str, per_sample: bool) -> torch.Tensor:
    if not per_sample:
        return values
    return values.mean() if reduction == "mean" else gdist.global_mean(values)


def _gradients(module: nn.Module) -> list:
    return [None if p.grad is None else p.grad.clone() for p in module.parameters()]


def _rank_worker(rank, world_size, splits):
    out = {}
    for split, names in splits.items():
        sizes, reduction = SPLITS[split]
        out[split] = {}
        for name in names:
            case = CASES[name]
            module = _model(case)
            ddp = DistributedDataParallel(module, find_unused_parameters=case.unused_parameters)
            whole = _batch(sum(sizes))
            rows = {k: v[_rows(sizes, rank)] for k, v in whole.items()}
            generator = gdist.rank_generator(SEED) if case.draws else None
            _reduce(ddp(rows, generator), reduction, case.per_sample).backward()
            out[split][name] = _gradients(module)
    return out


def _single_process(case: Case, sizes) -> list:
    module = _model(case)
    whole = _batch(sum(sizes))
    if case.draws:  # the same rows with the same per-rank draws, averaged over the whole batch
        values = torch.cat(
            [
                case.loss(
                    module.inner,
                    {k: v[_rows(sizes, r)] for k, v in whole.items()},
                    gdist.rank_generator(SEED, rank=r),
                )
                for r in range(len(sizes))
            ]
        )
    else:
        values = (case.whole or (lambda m, b: case.loss(m, b, None)))(module.inner, whole)
    (values.mean() if case.per_sample else values).backward()
    return _gradients(module)


def _applies(case: Case, sizes) -> bool:
    # a loss that reduces by the mean inside needs equal batches; the coupled MMD is one loss
    # of the gathered batch, right for any split
    return case.per_sample or sizes[0] == sizes[1] or case.name.startswith("MMD")


@pytest.fixture(scope="module")
def distributed_gradients():
    """Every case and split on one pair of processes (one start-up for the whole module)."""
    splits = {
        split: [n for n, c in CASES.items() if _applies(c, sizes)]
        for split, (sizes, _) in SPLITS.items()
    }
    ranks = run_ranks(_rank_worker, 2, splits)
    return {split: (SPLITS[split][0], [r[split] for r in ranks]) for split in SPLITS}


def _assert_same(actual: list, expected: list, label: str) -> None:
    assert len(actual) == len(expected)
    for i, (a, e) in enumerate(zip(actual, expected, strict=True)):
        if e is None:
            assert a is None, f"{label}: parameter {i} got a gradient, one process gives none"
            continue
        assert a is not None, f"{label}: parameter {i} has no gradient"
        assert e.abs().max() > 0, f"{label}: parameter {i}'s gradient is zero: not a test"
        torch.testing.assert_close(a, e, rtol=1e-9, atol=1e-12, msg=f"{label}, parameter {i}")


@pytest.mark.parametrize(
    "name, split",
    [
        (name, split)
        for split in ("equal, per-rank mean", "unequal, global_mean")
        for name, case in CASES.items()
        if _applies(case, SPLITS[split][0])
    ],
)
def test_ddp_gradient_equals_single_process_gradient(distributed_gradients, name, split):
    sizes, ranks = distributed_gradients[split]
    expected = _single_process(CASES[name], sizes)
    for rank, result in enumerate(ranks):
        _assert_same(result[name], expected, f"{name}, {split}, rank {rank}")


def test_per_rank_means_of_unequal_batches_are_not_the_global_mean(distributed_gradients):
    """What `global_mean` is for: DDP's average of a 5-row mean and a 2-row mean weights the
    two rows of the second rank 5/2 times too much."""
    sizes, ranks = distributed_gradients["unequal, per-rank mean (wrong)"]
    expected = _single_process(CASES["cfm_loss"], sizes)
    actual = ranks[0]["cfm_loss"]
    assert (
        max(
            float((a - e).abs().max() / e.abs().max())
            for a, e in zip(actual, expected, strict=True)
        )
        > 1e-2
    )


class _NegativeLogLikelihood(nn.Module):
    def __init__(self, flow: nn.Module):
        super().__init__()
        self.flow = flow

    def forward(self, x):
        return -self.flow.log_prob(x).mean()


def _actnorm_worker(rank, world_size):
    """ActNorm initialises itself from the first batch it sees: each rank's own rows."""
    rows = _batch(8)["x"][_rows((4, 4), rank)]
    out = {}
    for order in ("wrap, then first batch", "first batch, then wrap"):
        torch.manual_seed(0)
        flow = RealNVP(2, 2, (8,), actnorm=True)
        if order == "first batch, then wrap":
            flow.log_prob(rows)  # initialise here; DDP's constructor broadcasts rank 0's state
        ddp = DistributedDataParallel(_NegativeLogLikelihood(flow))
        ddp(rows).backward()
        out[order] = [p.detach().clone() for p in flow.parameters()]
    return out


def test_actnorm_must_be_initialised_before_ddp_wraps_it():
    """DDP makes the ranks' parameters equal once, when it is built, and then only averages
    gradients: a data-dependent initialisation after that leaves each rank its own model."""
    first, second = run_ranks(_actnorm_worker, 2)
    late = "wrap, then first batch"
    assert any(not torch.equal(a, b) for a, b in zip(first[late], second[late], strict=True))
    early = "first batch, then wrap"
    assert all(torch.equal(a, b) for a, b in zip(first[early], second[early], strict=True))


@pytest.mark.parametrize("name", [n for n, c in CASES.items() if c.per_sample])
def test_per_sample_losses_do_not_couple_samples(name):
    """What lets the reference above evaluate a loss that draws its own noise shard by shard:
    example i's value depends on no other example, d loss_i / d x_j = 0 for i != j (the
    Jacobian is block diagonal), so the global batch's loss is the concatenation of the
    shards'. (A discrete coupling such as the OT plan has no derivative; it is checked
    against the concatenated batch directly.)"""
    case = CASES[name]
    module = _model(case)
    whole = _batch(7)

    def values(x):
        generator = gdist.rank_generator(SEED, rank=0)
        return (case.whole or (lambda m, b: case.loss(m, b, generator)))(
            module.inner, {**whole, "x": x}
        )

    jacobian = torch.autograd.functional.jacobian(values, whole["x"])  # (7, 7, 2)
    per_pair = jacobian.abs().sum(-1)
    diagonal = torch.eye(7, dtype=torch.bool)
    assert per_pair[diagonal].min() > 0, "some example's loss does not depend on it: not a test"
    assert torch.equal(per_pair[~diagonal], torch.zeros(42))
