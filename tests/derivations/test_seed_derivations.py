"""The seed derivations: registered, passing, real chains, and able to fail.

The generic engine is tested in test_engine.py; here each seed derivation is checked to pass,
to be a chain (several steps, at least one checked by sympy or numerically), and, for a
selection, to be reported as failed with a residual once a step is deliberately corrupted
(a sign flipped or a factor of 2), so a passing derivation is not passing vacuously.
"""

import dataclasses
import importlib
import importlib.util

import mpmath
import numpy as np
import pytest
import sympy as sp
from numpy.polynomial import hermite_e
from scipy import integrate

from genmath.derivations import CITED, NUMERIC, SYMBOLIC, Derivation, Step, derivations, get
from genmath.derivations.denoising_score_matching import _gaussian_expectation, _std_normal
from genmath.derivations.elbo_gap import _Integral

SEED_IDS = (
    "D-kl-gaussian",
    "D-kl-vae",
    "D-elbo-gap",
    "D-elbo-recon-kl",
    "D-change-of-variables-1d",
    "D-flow-coupling-logdet",
    "D-tweedie",
    "D-ddpm-posterior",
    "D-parameterizations",
    "D-continuity-gaussian-path",
    "D-forward-sde",
    "D-probability-flow-ode",
    "D-optimal-discriminator",
    "D-denoising-score-matching",
    "D-instantaneous-change-of-variables",
    "D-edm-preconditioning",
)


@pytest.fixture(scope="module")
def results():
    """Verify every seed once; the tests below read the results."""
    return {item_id: get(item_id).verify() for item_id in SEED_IDS}


def test_every_seed_is_registered():
    registered = {d.id for d in derivations()}
    missing = sorted(set(SEED_IDS) - registered)
    assert not missing, f"seed derivations not registered: {missing}"


@pytest.mark.parametrize("item_id", SEED_IDS)
def test_seed_passes_verification(item_id, results):
    result = results[item_id]
    failures = [(s.index, s.residual) for s in result.failures()]
    assert result.ok, f"{item_id} failed at steps {failures}"


@pytest.mark.parametrize("item_id", SEED_IDS)
def test_seed_is_a_checked_chain(item_id, results):
    derivation = get(item_id)
    assert isinstance(derivation, Derivation)
    assert len(derivation.steps) >= 2, f"{item_id} is a single assertion, not a chain"
    result = results[item_id]
    assert result.count(SYMBOLIC) + result.count(NUMERIC) >= 1
    for step in derivation.steps:
        assert len(step.reason.strip()) > 20, f"{item_id}: a step without a real reason"


@pytest.mark.parametrize("item_id", SEED_IDS)
def test_seed_names_references_code_and_tests(item_id):
    from genmath.references import format_reference

    derivation = get(item_id)
    assert derivation.references and derivation.code and derivation.tests
    for key in derivation.references:
        assert format_reference(key)  # raises on an unknown key


def _find_spec(module_name: str):
    try:
        return importlib.util.find_spec(module_name)
    except ModuleNotFoundError:  # a parent is not a package
        return None


def _resolve_or_skip(dotted: str):
    """The object behind a dotted name; skip if it names a submodule not written yet, fail if
    its module exists but the name does not (a stale `code=` entry)."""
    parts = dotted.split(".")
    cut = len(parts)
    while cut > 1 and _find_spec(".".join(parts[:cut])) is None:
        cut -= 1
    obj = importlib.import_module(".".join(parts[:cut]))
    for depth, attr in enumerate(parts[cut:]):
        if not hasattr(obj, attr) and depth == 0 and hasattr(obj, "__path__"):
            pytest.skip(f"{dotted}: module {obj.__name__}.{attr} not written yet")
        assert hasattr(obj, attr), f"{dotted}: {obj!r} has no attribute {attr!r}"
        obj = getattr(obj, attr)
    return obj


@pytest.mark.parametrize(
    "dotted",
    sorted({name for item_id in SEED_IDS for name in get(item_id).code}),
)
def test_code_names_resolve(dotted):
    assert _resolve_or_skip(dotted) is not None


@pytest.mark.parametrize("check_id", ["C-kl-vae", "C-parameterizations-table"])
def test_exact_numeric_checks_tie_the_code_to_the_seeds(check_id):
    pytest.importorskip("genmath.core.path")
    result = get(check_id).verify()
    assert result.ok, result.steps[0].residual


# --- Planted errors: a corrupted copy must fail, with the residual reported. ----------------


def _corrupted(item_id: str, index: int, **changes) -> Derivation:
    """A copy of step ``index`` (1-based) of the derivation, changed: the copy starts from the
    left-hand side the chain gives that step (cited padding keeps the index), so only the
    corrupted claim is re-verified, and the uncorrupted copy (no changes) verifies."""
    derivation = get(item_id)
    lhs, step = derivation.chain()[index - 1]
    padding = [
        Step(rhs=lhs, reason="padding: keeps the step's index", tag=CITED, theorem="padding",
             reference="cover2006elements")
    ] * (index - 1)
    changed = dataclasses.replace(step, lhs=None, **changes)
    return dataclasses.replace(derivation, start=lhs, steps=[*padding, changed])


def _rhs(item_id: str, index: int):
    return get(item_id).steps[index - 1].rhs


PLANTED = [
    # (id, step, change) — each change a sign flip or a factor of 2
    ("D-kl-vae", 2, lambda r: 2 * r),
    ("D-elbo-gap", 4, lambda r: -r),
    ("D-flow-coupling-logdet", 2, lambda r: 2 * r),
    ("D-tweedie", 5, lambda r: -r),
    ("D-ddpm-posterior", 2, lambda r: 2 * r),
    # the conditional score and velocity of the last row with the noise's sign flipped
    ("D-parameterizations", 2, lambda r: r.subs(sp.Symbol("epsilon", real=True), -sp.Symbol("epsilon", real=True))),
    ("D-continuity-gaussian-path", 4, lambda r: 2 * r),
    ("D-forward-sde", 2, lambda r: 2 * r),
    ("D-probability-flow-ode", 2, lambda r: -r),
    ("D-denoising-score-matching", 2, lambda r: 2 * r),
    ("D-instantaneous-change-of-variables", 3, lambda r: -r),
    ("D-edm-preconditioning", 3, lambda r: 2 * r),
    ("D-change-of-variables-1d", 2, lambda r: -r),
]


@pytest.mark.parametrize(("item_id", "index", "change"), PLANTED, ids=[p[0] for p in PLANTED])
def test_planted_error_is_reported(item_id, index, change):
    original = _rhs(item_id, index)
    corrupted_rhs = change(original)
    assert sp.sympify(corrupted_rhs - original) != 0 or isinstance(original, sp.MatrixBase)
    assert _corrupted(item_id, index).verify(bindings=False).ok, "the uncorrupted copy must verify"
    result = _corrupted(item_id, index, rhs=corrupted_rhs).verify(bindings=False)
    assert not result.ok
    failed = result.failures()
    assert [s.index for s in failed] == [index]
    assert failed[0].residual, "a failed step must report the residual it could not reduce"


def test_planted_error_in_a_numeric_step_is_reported():
    """A factor 2 in a numeric step (the logistic-normal density by the change of variables)."""
    result = _corrupted("D-change-of-variables-1d", 2, rhs=2 * _rhs("D-change-of-variables-1d", 2)).verify()
    assert not result.ok
    (failed,) = result.failures()
    assert failed.tag == NUMERIC and "|lhs - rhs|" in failed.residual


def test_planted_error_in_an_inequality_is_reported():
    """Jensen's bound reversed: the ELBO is not above the log-evidence."""
    result = _corrupted("D-elbo-gap", 5, relation="<=").verify()
    assert not result.ok
    assert [s.index for s in result.failures()] == [5]


def test_planted_error_in_the_optimal_discriminator_sign():
    """The second derivative is not non-negative: claiming convexity must fail."""
    result = _corrupted("D-optimal-discriminator", 2, relation=">=").verify()
    assert not result.ok


# --- The two integration helpers the seeds rely on, against scipy. ----------------------------


def test_gaussian_moment_helper_matches_quadrature():
    z, e = sp.symbols("z e", real=True)
    polynomial = (1.3 * z + 0.4 * e - 0.7) ** 2 * (z - 0.2) ** 2 + e**3 - 2 * z
    integral = _Integral(
        _std_normal(z) * _std_normal(e) * polynomial, (z, -sp.oo, sp.oo), (e, -sp.oo, sp.oo)
    )
    value = float(_gaussian_expectation(integral))
    # Gauss–Hermite (probabilists') with 10 nodes is exact for polynomials of degree <= 19.
    nodes, weights = hermite_e.hermegauss(10)
    weights = weights / np.sqrt(2 * np.pi)
    f = sp.lambdify((z, e), polynomial)
    grid_z, grid_e = np.meshgrid(nodes, nodes, indexing="ij")
    expected = float((np.outer(weights, weights) * f(grid_z, grid_e)).sum())
    assert value == pytest.approx(expected, rel=1e-12)


def test_quadrature_integral_matches_scipy_and_stays_unevaluated():
    z = sp.Symbol("z", real=True)
    integrand = sp.exp(-((z - 0.3) ** 2) / 2.5) * sp.log(1 + z**2)
    integral = _Integral(integrand, (z, -sp.oo, sp.oo))
    assert integral.doit() is integral  # sympy's integrator is never called
    f = sp.lambdify(z, integrand)
    expected, _ = integrate.quad(f, -sp.oo, sp.oo, epsabs=1e-13)
    assert float(sp.N(integral, 20)) == pytest.approx(expected, rel=1e-10)
    with mpmath.workdps(15):
        assert sp.N(_Integral(integrand * sp.Symbol("c"), (z, -sp.oo, sp.oo))).has(_Integral)
