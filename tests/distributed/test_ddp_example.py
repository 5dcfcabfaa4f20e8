"""The worked example, docs/examples/ddp_flow_matching_digits.py, in --quick mode: trained by
DDP on two gloo processes started as torchrun starts them, with the global OT coupling, and
its test bits/dim, computed on two ranks, equals the single-process evaluation of the saved
weights exactly (no padding, per-batch generators, exact sums)."""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import io
import math
import pathlib
import subprocess
import sys

import pytest
import torch.distributed as dist
from _dist_launch import free_port, run_ranks

pytestmark = pytest.mark.skipif(not dist.is_available(), reason="no torch.distributed")

SCRIPT = (
    pathlib.Path(__file__).resolve().parents[2]
    / "docs"
    / "examples"
    / "ddp_flow_matching_digits.py"
)


def _example():
    spec = importlib.util.spec_from_file_location("ddp_flow_matching_digits", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


EXAMPLE = _example()


def _train_on_rank(rank, world_size, weights):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        result = EXAMPLE.main(["--quick", "--coupling", "global-ot", "--save", str(weights)])
    return dataclasses.asdict(result), out.getvalue()


def test_example_trains_with_ddp_and_evaluates_like_one_process(tmp_path):
    weights = tmp_path / "flow.pt"
    ranks = run_ranks(_train_on_rank, 2, weights, like_torchrun=True)
    (first, printed), (second, quiet) = ranks
    assert printed.startswith("2 process(es), backend gloo\n")
    assert "step     4  loss" in printed and "test bits/dim" in printed
    assert quiet == ""  # only rank 0 prints
    assert first == second  # every rank holds the same evaluation
    assert first["count"] == 10 and math.isfinite(first["mean"])
    single = dataclasses.asdict(EXAMPLE.main(["--quick", "--evaluate", str(weights)]))
    assert (single["mean"], single["std_error"], single["total"]) == (
        first["mean"],
        first["std_error"],
        first["total"],
    )


@pytest.mark.slow
def test_example_under_torchrun(tmp_path):
    """The launcher itself (about 10 s of start-up per process): run with --runslow."""
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node=2",
        "--master_addr=127.0.0.1",
        f"--master_port={free_port()}",
        str(SCRIPT),
        "--quick",
        "--coupling",
        "global-ot",
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "2 process(es), backend gloo" in done.stdout
    assert done.stdout.count("test bits/dim") == 1
