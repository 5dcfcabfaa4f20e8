"""Test conventions: float64 by default, fixed seeds, slow tests behind --runslow."""

import pytest
import torch


def pytest_addoption(parser):
    parser.addoption("--runslow", action="store_true", default=False, help="run slow tests")


def pytest_configure(config):
    # The suite works on small tensors, where torch's intra-op thread synchronisation costs far
    # more than the arithmetic (measured: 20x the cost of a small softmax on 2 busy cores).
    torch.set_num_threads(1)


# Under pytest-xdist (`make test` runs `pytest -n auto --dist loadgroup`), a session fixture is
# built once per worker that runs a test needing it. The three expensive ones (the whole
# registry verified, every site page read by Chromium, every figure script run) would each be
# paid twice, so every test that needs one is kept in one group, sent to one worker; every other
# test stays with the rest of its file (module-scoped fixtures such as the distributed process
# groups are built once). The collection order is left as it is: reordering the items here made
# xdist 3.8 split the groups again.
_HEAVY_FIXTURES = {"probes": "browser", "verified": "verification", "quick_runs": "figures"}


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    group_of = {}
    for item in items:
        heavy = [g for f, g in _HEAVY_FIXTURES.items() if f in getattr(item, "fixturenames", ())]
        group_of[item] = heavy[0] if heavy else item.nodeid.split("::")[0]
        item.add_marker(pytest.mark.xdist_group(group_of[item]))

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


@pytest.fixture(scope="session")
def verified():
    """``verified(item_id)``: the registered derivation or check of that id, verified once per
    session. The tests that only read a registered item's result share one verification
    (`test_topics` and the seed tests both read every seed); a test that plants a bug or
    builds a changed copy calls ``.verify()`` itself, as before."""
    from genmath import derivations as registry
    from genmath.cli import _available_cores

    results: dict = {}

    def result_of(item_id: str):
        if not results:
            # everything at once, on every core as `genmath verify` does: the suite itself
            # runs in one process, so this is where CI's second core earns its keep
            items = registry.select()
            for item, result in zip(
                items, registry.run(items, jobs=_available_cores()), strict=True
            ):
                results[item.id] = result
        if item_id not in results:
            results[item_id] = registry.get(item_id).verify()
        return results[item_id]

    return result_of


@pytest.fixture
def generator():
    """A seeded torch.Generator for stochastic functions under test."""
    return torch.Generator().manual_seed(1234)
