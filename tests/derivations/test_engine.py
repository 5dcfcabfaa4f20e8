"""The derivation engine: correct steps pass, planted errors fail with their residual."""

import dataclasses
import json

import pytest
import sympy as sp

from genmath import derivations as registry
from genmath.cli import main
from genmath.derivations import Check, Derivation, Step

x = sp.Symbol("x", real=True)
a, b = sp.symbols("a b", positive=True)


def _square_chain(rhs_last=None):
    """(a + b)^2 - (a - b)^2 = 4ab, in two steps."""
    return Derivation(
        id="D-test-square",
        title="difference of squares",
        statement="test",
        start=(a + b) ** 2 - (a - b) ** 2,
        steps=[
            Step(rhs=a**2 + 2 * a * b + b**2 - (a**2 - 2 * a * b + b**2), reason="expand"),
            Step(rhs=4 * a * b if rhs_last is None else rhs_last, reason="collect"),
        ],
        symbols=(a, b),
    )


def test_correct_chain_passes():
    result = _square_chain().verify()
    assert result.ok
    assert result.count("symbolic") == 2


@pytest.mark.parametrize(
    "wrong, residual",
    [(-4 * a * b, "8*a*b"), (8 * a * b, "-4*a*b"), (2 * a * b, "2*a*b")],
    ids=["sign flipped", "factor 2 too big", "factor 2 too small"],
)
def test_planted_wrong_step_is_reported_with_its_residual(wrong, residual):
    result = _square_chain(rhs_last=wrong).verify()
    assert not result.ok
    (failure,) = result.failures()
    assert failure.index == 2
    assert sp.simplify(sp.sympify(failure.residual) - sp.sympify(residual)) == 0


def test_planted_error_in_a_registered_derivation_copy():
    original = registry.get("D-kl-gaussian")
    last = original.steps[-1]
    broken = dataclasses.replace(
        original,
        steps=[*original.steps[:-1], dataclasses.replace(last, rhs=-last.rhs)],
    )
    assert original.verify().ok
    result = broken.verify()
    assert not result.ok and result.failures()[0].residual


def test_numeric_step_checks_an_integral_and_catches_a_wrong_constant():
    s = sp.Symbol("s", positive=True)
    gaussian_mass = sp.Integral(sp.exp(-(x**2) / (2 * s**2)), (x, -sp.oo, sp.oo))
    good = Derivation(
        id="D-test-mass",
        title="Gaussian normaliser",
        statement="test",
        start=gaussian_mass,
        steps=[Step(rhs=sp.sqrt(2 * sp.pi) * s, reason="quadrature", tag="numeric", samples=3)],
    )
    assert good.verify().ok
    bad = dataclasses.replace(
        good, steps=[dataclasses.replace(good.steps[0], rhs=sp.sqrt(sp.pi) * s)]
    )
    result = bad.verify()
    assert not result.ok
    assert "|lhs - rhs|" in result.failures()[0].residual


def test_inequality_steps():
    # AM-GM: (a + b)/2 >= sqrt(ab), shown via (sqrt a - sqrt b)^2 >= 0
    gap = (a + b) / 2 - sp.sqrt(a * b)
    d = Derivation(
        id="D-test-amgm",
        title="AM-GM",
        statement="test",
        start=gap,
        steps=[
            Step(rhs=(sp.sqrt(a) - sp.sqrt(b)) ** 2 / 2, reason="complete the square"),
            Step(rhs=sp.Integer(0), reason="a square is non-negative", relation=">="),
        ],
    )
    assert d.verify().ok
    wrong = dataclasses.replace(
        d, steps=[d.steps[0], dataclasses.replace(d.steps[1], relation="<=")]
    )
    assert not wrong.verify().ok


def test_cited_step_needs_a_theorem_and_a_reference_and_is_never_verified():
    with pytest.raises(ValueError, match="theorem"):
        Step(rhs=x, reason="by a theorem", tag="cited", reference="cover2006elements")
    with pytest.raises(ValueError, match="reference"):
        Step(rhs=x, reason="by a theorem", tag="cited", theorem="Jensen's inequality")
    p = sp.Function("p", positive=True)
    claim = sp.Integral(sp.log(p(x)) * p(x), (x, -sp.oo, sp.oo))  # nothing here checks it
    d = Derivation(
        id="D-test-cited",
        title="cited",
        statement="test",
        start=claim,
        steps=[
            Step(
                rhs=sp.Integer(0),
                relation="<=",
                reason="a cited claim about an unknown density",
                tag="cited",
                theorem="Gibbs' inequality",
                reference="cover2006elements",
            )
        ],
    )
    result = d.verify(bindings=False)
    assert result.ok and result.count("cited") == 1
    assert result.steps[0].status == "cited"  # reported as cited, not as verified
    assert "verified" not in result.steps[0].status


def test_bad_definitions_raise_clear_errors():
    with pytest.raises(ValueError, match="tag"):
        Step(rhs=x, reason="r", tag="proved")
    with pytest.raises(ValueError, match="relation"):
        Step(rhs=x, reason="r", relation="<")
    with pytest.raises(ValueError, match="reason"):
        Step(rhs=x, reason="  ")
    with pytest.raises(ValueError, match="D-"):
        Derivation(id="kl", title="t", statement="s", start=x, steps=[Step(rhs=x, reason="r")])
    with pytest.raises(ValueError, match="no steps"):
        Derivation(id="D-empty", title="t", statement="s", start=x, steps=[])
    with pytest.raises(ValueError, match="C-"):
        Check(id="D-x", title="t", function=lambda: 0.0, tolerance=1e-9)


def test_duplicate_ids_are_refused():
    d = _square_chain()
    registry.register(d)
    try:
        with pytest.raises(ValueError, match="duplicate"):
            registry.register(dataclasses.replace(d))
    finally:
        registry._registry._DERIVATIONS.pop(d.id)


def test_check_passes_fails_and_reports_exceptions():
    assert Check(id="C-ok", title="t", function=lambda: 1e-15, tolerance=1e-12).verify().ok
    too_big = Check(id="C-big", title="t", function=lambda: 1e-3, tolerance=1e-12).verify()
    assert not too_big.ok and "1.000e-03" in too_big.steps[0].residual
    nan = Check(id="C-nan", title="t", function=lambda: float("nan"), tolerance=1.0).verify()
    assert not nan.ok

    def boom():
        raise RuntimeError("singular")

    raised = Check(id="C-raise", title="t", function=boom, tolerance=1.0).verify()
    assert not raised.ok and "singular" in raised.steps[0].residual


def test_rendered_page_shows_the_verified_expressions():
    d = _square_chain()
    page = registry.render_markdown(d, d.verify())
    assert 'Unbound (2 symbolic)' in page  # every step holds; no binding ties it to code
    from genmath.derivations._render import latex as site_latex  # the site's printer

    assert site_latex(4 * a * b) in page
    assert site_latex(d.start) in page


# --- the command line -----------------------------------------------------------------


def test_cli_verify_table_and_exit_status(capsys):
    assert main(["verify", "--only", "D-gaussian-path-posterior"]) == 0
    out = capsys.readouterr().out
    assert "D-gaussian-path-posterior" in out and "status" in out and "1 passed, 0 failed" in out
    assert "1 bound, 0 unbound" in out and "cited (not verified)" in out


def test_cli_verify_json(capsys):
    assert main(["verify", "--json", "--only", "D-gaussian-path-posterior"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["ok"] is True
    (result,) = payload["results"]
    assert result["id"] == "D-gaussian-path-posterior" and result["status"] == "verified"
    assert result["bindings"] and all(b["ok"] for b in result["bindings"])
    assert "genmath.core.path.gaussian_posterior_coefficients" in result["bindings"][0]["called"]
    assert payload["summary"]["bound_derivations"] == 1


def test_cli_verify_exits_nonzero_on_a_registered_failure(capsys):
    failing = Check(id="C-test-planted-failure", title="planted", function=lambda: 1.0, tolerance=1e-9)
    registry.register(failing)
    try:
        assert main(["verify", "--only", "C-test-planted*"]) == 1
        out = capsys.readouterr().out
        assert "FAILED" in out and "C-test-planted-failure" in out and "residual" in out
        assert main(["verify", "--json", "--only", "C-test-planted*"]) == 1
        assert json.loads(capsys.readouterr().out)["ok"] is False
    finally:
        registry._registry._CHECKS.pop(failing.id)


def test_cli_unknown_pattern_and_version(capsys):
    assert main(["verify", "--only", "no-such-derivation-xyz"]) == 2
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert "genmath 0.1.0" in capsys.readouterr().out


def test_cli_cite(capsys):
    assert main(["cite", "kingma2014auto"]) == 0
    assert capsys.readouterr().out.startswith("@inproceedings{kingma2014auto,")
    assert main(["cite", "no-such-key"]) == 2
    assert "unknown reference key" in capsys.readouterr().err
    assert main(["cite", "--all"]) == 0
    assert capsys.readouterr().out.count("@") >= 40


def test_every_reference_a_derivation_names_exists():
    from genmath import references

    for d in registry.derivations():
        for key in d.references:
            assert key in references.REFERENCES, f"{d.id} cites unknown key {key!r}"
            references.bibtex(key)


def test_the_fast_mpmath_compilation_keeps_nested_sums_signs():
    """`_lambdify.mpmath_function` prints sums unordered; sympy's own unordered printer turns
    a nested unevaluated sum that starts with a minus, (2p/q - 2), into - (2 + 2p/q)."""
    import mpmath
    import sympy as sp

    from genmath.derivations._lambdify import mpmath_function

    p, q = sp.symbols("p q", positive=True)
    inner = sp.Add(2 * p / q, -2, evaluate=False)
    expr = sp.Add(-p * inner, q * sp.Add(inner, inner**2 / 4, evaluate=False), evaluate=False)
    fn = mpmath_function([p, q], expr)
    with mpmath.workdps(30):
        got = fn(mpmath.mpf("0.3"), mpmath.mpf("0.7"))
    expected = sp.N(expr.subs({p: sp.Rational(3, 10), q: sp.Rational(7, 10)}), 30)
    assert abs(complex(got) - complex(expected)) < 1e-25
