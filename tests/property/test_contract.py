"""Property-based tests of genmath's input contract over the whole public API (issue 18).

Every public callable has a valid call (`api_cases_*.py`) whose arguments are tagged with
their kind; `contract.py` lists each kind's bad values and what the contract asks of them. Two
properties are checked:

* **valid input** gives finite results, and results in the data's dtype: drawn by hypothesis
  over batch sizes, event sizes, dtypes and seeds;
* **each bad value** (one argument at a time) gives a ValueError/TypeError from genmath that
  names the argument, or an outcome the contract allows (NaN propagated from NaN input, a
  pole with its sign at an end, float32 results for float32 data): every trial at the
  default sizes, and the trials of cases that hypothesis draws at other sizes and dtypes.

The sweep `tools/bad_input_sweep.py` runs the same trials and prints the counts.
"""

from __future__ import annotations

import warnings

import api_cases_consist  # noqa: F401
import api_cases_core  # noqa: F401  (registers cases)
import api_cases_core_estimators  # noqa: F401
import api_cases_flow_maps  # noqa: F401
import api_cases_flows  # noqa: F401
import api_cases_models  # noqa: F401
import api_cases_models_adversarial  # noqa: F401
import api_cases_models_flows  # noqa: F401
import api_cases_ot  # noqa: F401
import api_cases_paths  # noqa: F401
import api_cases_paths_discrete  # noqa: F401
import api_cases_paths_flows  # noqa: F401
import api_cases_seminar  # noqa: F401
import api_cases_sequences  # noqa: F401
import api_cases_testing  # noqa: F401
import api_cases_testing_checks  # noqa: F401
import pytest
import torch
from contract import (
    CASES,
    Data,
    Spec,
    baseline_of,
    covered_names,
    public_callables,
    run_trial,
    trials,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

ALLOWED = ("clear", "ok")

# deterministic (CI cannot flake) and small: the default-size pass below is exhaustive
PROPERTY = settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

specs = st.builds(
    Spec,
    batch=st.integers(2, 5),  # ActNorm's data initialisation needs two samples
    dim=st.integers(2, 3),  # a size-1 event broadcasts by design (ElementwiseAffine)
    dtype=st.sampled_from([torch.float32, torch.float64]),
    seed=st.integers(0, 50),
)


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # kl='auto' fallbacks, from_betas' axis notice
        yield


def _failures(case, spec: Spec) -> list[str]:
    call = case.build(spec)
    baseline = baseline_of(call, spec.batch)
    bad = []
    for argument, mutation in trials(call, spec):
        # a fresh call per trial: module state must not carry from one trial into the next
        outcome = run_trial(case.name, case.build(spec), argument, mutation, baseline)
        if outcome.category not in ALLOWED:
            bad.append(
                f"{argument}={mutation.label} ({mutation.expect}): {outcome.category}, "
                f"{outcome.detail}"
            )
    return bad


def test_every_public_callable_has_a_case():
    missing = public_callables() - covered_names([c.name for c in CASES])
    assert not missing, f"public callables the contract does not drive: {sorted(missing)}"


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_each_bad_argument_is_refused_by_name(case):
    bad = _failures(case, Spec())
    assert not bad, "\n".join(bad)


@PROPERTY
@given(case=st.sampled_from(CASES), spec=specs)
def test_valid_input_gives_finite_results_in_the_data_dtype(case, spec):
    call = case.build(spec)
    tensors, _ = baseline_of(call, spec.batch)  # raises if any result is non-finite
    takes_data = any(
        isinstance(v, Data) for v in (*call.args, *call.kwargs.values())
    )
    if takes_data:
        wrong = {t.dtype for t in tensors if t.is_floating_point() and t.dtype != spec.dtype}
        assert not wrong, f"{case.name}: results in {wrong} for {spec.dtype} data"


@PROPERTY
@given(case=st.sampled_from(CASES), spec=specs)
def test_bad_arguments_are_refused_at_any_size_and_dtype(case, spec):
    bad = _failures(case, spec)
    assert not bad, f"{case.name} at {spec}:\n" + "\n".join(bad)
