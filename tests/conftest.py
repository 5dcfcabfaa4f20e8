"""Test conventions: float64 by default, fixed seeds, slow tests behind --runslow."""

import pytest
import torch


def pytest_addoption(parser):
    parser.addoption("--runslow", action="store_true", default=False, help="run slow tests")


def pytest_configure(config):
    # The suite works on small tensors, where torch's intra-op thread synchronisation costs far
    # more than the arithmetic (measured: 20x the cost of a small softmax on 2 busy cores).
    torch.set_num_threads(1)


def pytest_collection_modifyitems(config, items):
    if config.getoption("--runslow"):
        return
    skip = pytest.mark.skip(reason="slow: pass --runslow to run")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _float64_and_seed():
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    torch.manual_seed(0)
    yield
    torch.set_default_dtype(previous)


@pytest.fixture
def generator():
    """A seeded torch.Generator for stochastic functions under test."""
    return torch.Generator().manual_seed(1234)
