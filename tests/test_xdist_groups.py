"""The suite's parallel layout works: under `pytest -n N --dist loadgroup` (as `make test` runs
it) every test carries its xdist group in its node id, so the tests sharing an expensive
session fixture (tests/conftest.py) run on one worker and the fixture is built once."""

import os

import pytest


def test_the_xdist_group_reaches_the_scheduler(request):
    if not os.environ.get("PYTEST_XDIST_WORKER") or not request.config.getvalue("loadgroup"):
        pytest.skip("only meaningful in a pytest-xdist worker under --dist loadgroup")
    # pytest-xdist groups by the '@group' suffix it appends to the node id; a pytest that
    # ignores the rename (9.2 with xdist 3.8) leaves every test its own group, silently
    assert request.node.nodeid.endswith("@tests/test_xdist_groups.py"), request.node.nodeid
