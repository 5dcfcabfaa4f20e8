"""The verification chain: bindings hold the code to the derivations, and the engine refuses
what it should not accept (planted errors, each in a test)."""

import json

import sympy as sp
import torch

from genmath import derivations as registry
from genmath.cli import main
from genmath.derivations import Binding, Derivation, From, Step, Uniform

x = sp.Symbol("x", real=True)
a, b = sp.symbols("a b", positive=True)


def _cited(claim_lhs, claim_rhs, relation="="):
    return Derivation(
        id="D-test-cited-claim",
        title="a cited claim",
        statement="test",
        start=claim_lhs,
        steps=[
            Step(
                rhs=claim_rhs,
                relation=relation,
                reason="cited",
                tag="cited",
                theorem="a theorem",
                reference="cover2006elements",
            )
        ],
    )


def test_a_cited_falsehood_is_never_reported_verified():
    result = _cited(sp.Integer(1), sp.Integer(2)).verify(bindings=False)
    (step,) = result.steps
    assert step.tag == "cited" and step.status != "verified"
    assert not result.ok and "fails at a point" in step.residual  # caught as contradicted


def test_a_cited_claim_is_counted_as_cited_in_the_summary(capsys):
    d = _cited(sp.Integral(sp.Function("q")(x), (x, -sp.oo, sp.oo)), sp.Integer(1))
    registry.register(d)
    try:
        main(["verify", "--json", "--only", d.id])
        payload = json.loads(capsys.readouterr().out)
        assert payload["summary"]["steps"]["cited"] == 1
        assert payload["summary"]["steps"]["symbolic"] == 0
        (result,) = payload["results"]
        assert result["steps"][0]["status"] == "cited"
        assert result["status"] == "unbound"  # and no binding: never "verified"
        assert payload["ok"] is False
    finally:
        registry._registry._DERIVATIONS.pop(d.id)


def test_a_value_substituting_method_is_refused():
    # sin x = x "proved" by a rewrite that puts x = 0
    d = Derivation(
        id="D-test-substitution",
        title="sin x = x",
        statement="test",
        start=sp.sin(x),
        steps=[Step(rhs=x, reason="a rewrite", method=lambda e: e.subs(x, 0))],
    )
    (step,) = d.verify(bindings=False).steps
    assert not step.ok and step.method == "unsound method"
    assert "changes the value" in step.residual


def test_an_unjustified_force_is_refused_and_a_justified_one_accepted():
    y = sp.Symbol("y", real=True)  # not positive: log(x y) = log x + log y is unjustified
    wrong = Derivation(
        id="D-test-force",
        title="log of a product",
        statement="test",
        start=sp.log(x * y),
        steps=[
            Step(
                rhs=sp.log(x) + sp.log(y),
                reason="split",
                method=lambda e: sp.expand_log(e, force=True),
            )
        ],
        domain={x: Uniform(-3, -0.5), y: Uniform(-3, -0.5)},
    )
    assert not wrong.verify(bindings=False).ok
    right = Derivation(
        id="D-test-force-ok",
        title="log of a product",
        statement="test",
        start=sp.log(a * b),
        steps=[
            Step(
                rhs=sp.log(a) + sp.log(b),
                reason="split",
                method=lambda e: sp.expand_log(e, force=True),
            )
        ],
    )
    assert right.verify(bindings=False).ok


def _two_chains(second_lhs):
    return Derivation(
        id="D-test-chains",
        title="two chains",
        statement="test",
        start=(a + b) ** 2,
        steps=[
            Step(rhs=a**2 + 2 * a * b + b**2, reason="expand"),
            Step(lhs=second_lhs, rhs=a**2 - b**2, reason="a second part"),
        ],
    )


def test_an_unbound_free_chain_start_fails():
    (_, second) = _two_chains((a - b) * (a + b)).verify(bindings=False).steps
    assert second.status == "failed" and second.method == "free chain start"
    assert "From(" in second.residual


def test_a_chain_start_from_another_derivation_is_accepted():
    base = _two_chains((a - b) * (a + b))
    registry.register(
        Derivation(
            id="D-test-base",
            title="base",
            statement="test",
            start=(a - b) * (a + b),
            steps=[Step(rhs=a**2 - b**2, reason="expand")],
        )
    )
    try:
        d = Derivation(
            id="D-test-from",
            title="from",
            statement="test",
            start=base.start,
            steps=[
                base.steps[0],
                Step(lhs=From("D-test-base", {b: 2 * b}), rhs=a**2 - 4 * b**2, reason="use it"),
            ],
        )
        assert d.verify(bindings=False).ok
        broken = Derivation(
            id="D-test-from-missing",
            title="from",
            statement="test",
            start=From("D-no-such-derivation"),
            steps=[Step(rhs=x, reason="r")],
        )
        result = broken.verify(bindings=False)
        assert not result.ok and "no derivation" in result.steps[0].residual
    finally:
        registry._registry._DERIVATIONS.pop("D-test-base")


def test_a_chain_may_start_from_an_earlier_step_of_its_own_derivation_only():
    def derivation(step):
        return Derivation(
            id="D-test-own",
            title="own",
            statement="test",
            start=(a - b) * (a + b),
            steps=[
                Step(rhs=a**2 - b**2, reason="expand"),
                Step(lhs=From("D-test-own", {b: 2 * b}, step=step), rhs=a**2 - 4 * b**2, reason="b -> 2b"),
            ],
        )

    registry.register(earlier := derivation(1))
    try:
        assert earlier.verify(bindings=False).ok
    finally:
        registry._registry._DERIVATIONS.pop("D-test-own")
    registry.register(circular := derivation(2))  # the step would start from itself
    try:
        second = circular.verify(bindings=False).steps[1]
        assert second.status == "failed" and second.method == "circular chain start"
    finally:
        registry._registry._DERIVATIONS.pop("D-test-own")


def test_inequalities_are_between_real_numbers():
    z = sp.Symbol("z", real=True)
    # sqrt(z) <= 10 "holds" on the real parts when z < 0; it must not pass as an inequality
    d = Derivation(
        id="D-test-complex",
        title="complex side",
        statement="test",
        start=sp.sqrt(z),
        steps=[Step(rhs=sp.Integer(10), relation="<=", reason="r", tag="numeric")],
        domain={z: Uniform(-4, -1)},
    )
    (step,) = d.verify(bindings=False).steps
    assert not step.ok and "complex" in step.residual


# --- bindings -------------------------------------------------------------------------------


def test_the_posterior_bindings_pass_and_record_what_they_called():
    result = registry.get("D-gaussian-path-posterior").verify()
    assert result.ok and result.status == "verified" and len(result.bindings) >= 3
    called = set().union(*(b.called for b in result.bindings))
    assert "genmath.core.path.GaussianPath.posterior" in called
    assert "genmath.core.path.gaussian_posterior_coefficients" in called


def test_a_sign_flipped_in_a_bound_family_formula_fails_verify_at_that_binding(
    monkeypatch, capsys
):
    from genmath.families.diffusion import _ddpm

    def reverse_mean(self, x, i, eps):  # DDPM's reverse mean with the noise term's sign flipped
        _, _, _, d_x, d_eps = self.schedule.posterior_coefficients()
        return self._coefficient(d_x, i - 1, x) * x - self._coefficient(d_eps, i - 1, x) * eps

    monkeypatch.setattr(_ddpm.DDPM, "reverse_mean", reverse_mean)
    assert main(["verify", "--only", "D-ddpm-posterior"]) == 1
    out = capsys.readouterr().out
    assert "FAILED D-ddpm-posterior binding of" in out
    assert "genmath.families.diffusion.DDPM.reverse_mean" in out
    assert "!= derivation" in out


def test_a_binding_that_never_calls_its_code_fails():
    binding = Binding(
        derivation="D-gaussian-path-posterior",
        code=("genmath.core.path.GaussianPath.posterior",),
        expression=registry.get("D-gaussian-path-posterior").start,
        evaluate=lambda points: torch.zeros(8),
        domain={s: Uniform(0.1, 1) for s in registry.get("D-gaussian-path-posterior").start.free_symbols},
        samples=8,
    )
    result = binding.verify()
    assert not result.ok and "never calls" in result.residual


def test_a_binding_to_an_expression_the_derivation_does_not_establish_fails():
    binding = Binding(
        derivation="D-gaussian-path-posterior",
        code=("genmath.core.path.gaussian_posterior_coefficients",),
        expression=sp.Symbol("alpha_s", positive=True) ** 3 + 1,  # a parallel, re-typed formula
        evaluate=lambda points: torch.zeros(8),
        domain={sp.Symbol("alpha_s", positive=True): Uniform(0.1, 1)},
        samples=8,
    )
    result = binding.verify()
    assert not result.ok and "not one the derivation establishes" in result.residual


def test_numeric_steps_sample_the_domain_a_binding_declares():
    d = registry.get("D-ddpm-posterior")
    domain = d.effective_domain()
    alpha_t = next(s for s in d.symbols if s.name == "alpha_t")
    low, high = domain[alpha_t].bounds
    assert low <= 1e-5 and high >= 0.999  # the code's domain, wider than the page's (0.05, 0.95)


def test_the_audit_finds_formulas_without_a_binding(tmp_path):
    from genmath.derivations._audit import formula_functions

    source = tmp_path / "module.py"
    source.write_text(
        "from genmath._implements import implements, plumbing\n"
        "def bare(x):\n    return 2 * x + 1\n"
        "@implements('D-gaussian-path-posterior')\ndef bound(x):\n    return x.exp()\n"
        "@plumbing('shape bookkeeping')\ndef shapes(x):\n    return x.shape[0] - 1\n"
        "def no_formula(x):\n    return x\n"
        "class Model:\n    def forward(self, x):\n        return -x\n"
    )
    import genmath.derivations._audit as audit

    original_root = audit._ROOT
    try:
        audit._ROOT = tmp_path / "package"  # module names are taken relative to its parent
        found = {f.name.split("module.", 1)[1]: f for f in formula_functions([source])}
    finally:
        audit._ROOT = original_root
    assert set(found) == {"bare", "bound", "shapes", "Model.forward"}
    assert found["bare"].declared is None and found["Model.forward"].declared is None
    assert found["bound"].declared == "implements"
    assert found["bound"].derivations == ("D-gaussian-path-posterior",)
    assert found["shapes"].declared == "plumbing"


def test_parallel_verification_gives_the_serial_results():
    """`run(jobs=2)` splits topics between this process and a worker that imports only what
    its topics need (its bindings registered elsewhere included): every item must come back,
    in order, with the serial result's status and binding count."""
    items = [
        *registry.select("D-gaussian-path-posterior"),
        *registry.select("D-ddpm-posterior"),
        *registry.select("D-kl-gaussian"),
        *registry.select("D-score-sde-weighting"),
    ]
    assert len({_topic(i) for i in items}) >= 3  # at least one topic for each side
    serial = registry.run(items)
    parallel = registry.run(items, jobs=2)
    assert [r.id for r in parallel] == [i.id for i in items]
    assert [(r.status, len(r.bindings)) for r in parallel] == [
        (r.status, len(r.bindings)) for r in serial
    ]
    assert all(r.bindings for r in parallel)


def _topic(item):
    from genmath.derivations._registry import _TOPIC_OF

    return _TOPIC_OF[item.id]


def test_checks_and_messages_are_not_formulas():
    """The one rule the audit and the mutation pool share: arithmetic that only feeds a
    `raise`, a message, an argument check's condition or a discarded validator call is not a
    formula; a value that a formula also reads, or that a validator returns, is."""
    import ast

    from genmath.derivations._audit import check_spans, formula_lines

    source = (
        "def f(a, scale, tol):\n"
        "    asymmetry = (a - a.T).abs() / scale\n"  # 2: read only by the check
        "    if (asymmetry > tol).any():\n"  # 3: the check's condition
        "        raise ValueError(f'asymmetric by {float(asymmetry.max()) * 2}')\n"
        "    needed = 2 * a.sum() - 1\n"  # 5: read only by a message
        "    message = f'needs {needed}'\n"
        "    check_positive(a * 3, 'a')\n"  # 7: a discarded validator call
        "    grid = check_grid(a + 1)\n"  # 8: the validator returns it: a formula
        "    both = a * scale\n"  # 9: read by a check and by the result
        "    if both.sum() > tol:\n"
        "        raise ValueError(message)\n"
        "    return (a + a.T) / 2 + grid + both\n"  # 12
    )
    tree = ast.parse(source)
    fn = tree.body[0]
    assert formula_lines(fn) == {8, 9, 12}
    spans = check_spans(tree)
    assert any(span[0] == 2 for span in spans) and not any(span[0] == 12 for span in spans)
