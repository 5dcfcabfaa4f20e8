"""The shortcuts that keep `genmath verify` fast decide what the slow way decides: each is
checked against the slow way, and a planted wrong formula still fails through it."""

import pytest
import sympy as sp
import torch

from genmath import derivations as registry
from genmath.derivations import Binding, Derivation, Step, Uniform
from genmath.derivations._rewrites import _put_values

u, s = sp.symbols("u s", real=True)
f = sp.Function("f")


@pytest.fixture
def registered():
    """Register derivations and bindings for one test, and take them out again."""
    added = []

    def add(*items):
        for item in items:
            registry.register(item)
            added.append(item)

    yield add
    for item in added:
        if isinstance(item, Binding):
            registry._registry._BINDINGS.get(item.derivation, []).remove(item)
        else:
            registry._registry._DERIVATIONS.pop(item.id, None)


@pytest.mark.parametrize(
    "expr, where",
    [
        (u * (1 - u) + sp.exp(u) / (1 + u**2), {u: s**2}),
        (u + s, {u: s, s: u}),  # simultaneous: a swap, not u -> s -> u
        (sp.Derivative(f(u), u) + u, {u: s + 1}),  # binds u: goes through subs
        (sp.Integral(u * s, (u, 0, 1)), {u: s}),  # u is bound: not replaced
        (f(u) * u, {f(u): sp.exp(u)}),  # a non-symbol key
    ],
    ids=["plain", "swap", "derivative", "integral", "function key"],
)
def test_where_is_put_in_as_subs_puts_it(expr, where):
    assert _put_values(expr, where) == expr.subs(where, simultaneous=True)


def _where_case(code_value):
    """A derivation u (1 - u) = u - u^2 bound at u = s^2 through CondOT's alpha (1 - t)."""
    derivation = Derivation(
        id="D-test-where-fast",
        title="u (1 - u) at u = s^2",
        statement="test",
        start=u * (1 - u),
        steps=[Step(rhs=u - u**2, reason="expand")],
        symbols=(u,),
    )

    def evaluate(points):
        from genmath.core.schedules import CondOT

        return code_value(points[s], CondOT().alpha(points[s] ** 2))

    binding = Binding(
        derivation=derivation.id,
        code=("genmath.core.schedules.CondOT.definition",),
        expression=derivation.start,
        where={u: s**2},
        evaluate=evaluate,
        domain={s: Uniform(-1, 1)},
        samples=8,
    )
    return derivation, binding


def test_a_binding_with_where_passes_right_code_and_fails_a_planted_wrong_one(registered):
    derivation, right = _where_case(lambda s_, alpha: s_**2 * alpha)
    registered(derivation, right)
    assert right.verify().ok
    _, wrong = _where_case(lambda s_, alpha: s_ * alpha)  # s (1 - s^2): u put in as s
    result = wrong.verify()
    assert not result.ok and "!= derivation" in result.residual
    assert torch.isfinite(torch.tensor(result.max_error))


t = sp.Symbol("t", real=True)
g = sp.Function("g")


@pytest.mark.parametrize(
    "integral, skipped",
    [
        (sp.Integral(f(t) * g(t), (t, 0, 1)), True),
        (sp.Integral(f(t) * g(t) / sp.Integral(f(u), (u, 0, 1)), (t, 0, 1)), True),
        (sp.Integral(f(t) + t, (t, 0, 1)), False),  # the term t has an antiderivative
        (sp.Integral(f(t) * sp.Integral(f(u), (u, 0, t)), (t, 0, 1)), False),  # (F(t)^2/2)'
        (sp.Integral(f(t) * sp.Derivative(f(t), t), (t, 0, 1)), False),  # (f^2/2)'
        (sp.Integral(f(u) * t, (t, 0, 1)), False),  # f is not a function of t
    ],
)
def test_heurisch_is_skipped_only_where_no_antiderivative_exists(integral, skipped):
    from genmath.derivations._rewrites import _doit_cached, _skips_heurisch

    assert _skips_heurisch(integral) is skipped
    assert _doit_cached(integral) == integral.doit()


def test_a_planted_wrong_integral_step_fails_without_heurisch():
    import dataclasses

    from genmath.derivations._engine import _verify_step

    derivation = registry.get("D-noise-unconditional-target")
    (_, _), (lhs, step) = derivation.chain()
    R = sp.Function("R", real=True)
    assert _skips_heurisch_for(lhs) and _verify_step(derivation, 2, lhs, step, {}).ok
    for wrong in (step.rhs.subs(R(t), 2 * R(t)), step.rhs.subs(R(t), R(t) + 1)):
        checked = _verify_step(derivation, 2, lhs, dataclasses.replace(step, rhs=wrong), {})
        assert not checked.ok and checked.residual


def _skips_heurisch_for(expr):
    from genmath.derivations._rewrites import _skips_heurisch

    return _skips_heurisch(expr)


def _branches(rhs):
    return Derivation(
        id="D-test-piecewise-numeric",
        title="a closed form with branches",
        statement="test",
        start=sp.Piecewise((u, u < 0), (u**2, True)),
        steps=[Step(rhs=rhs, reason="the same branches", tag="numeric")],
        domain={u: Uniform(-1, 1)},
    )


def test_a_piecewise_numeric_step_is_compiled_and_a_planted_wrong_branch_fails():
    from genmath.derivations._numeric import _numeric_function

    right = _branches(sp.Piecewise((u**2, u >= 0), (u, True)))
    (step,) = right.verify(bindings=False).steps
    assert step.ok
    value = _numeric_function(right.start, [u])
    assert value({u: sp.Float(-0.5)}) == -0.5 and value({u: sp.Float(0.5)}) == 0.25
    for wrong in (
        sp.Piecewise((u**2 * (1 + sp.Float(1e-7)), u >= 0), (u, True)),  # off by 1e-7
        sp.Piecewise((u**2, u >= sp.Float(0.5)), (u, True)),  # the branch point moved
    ):
        (step,) = _branches(wrong).verify(bindings=False).steps
        assert not step.ok and "|lhs - rhs|" in step.residual


def test_an_implemented_function_is_compiled_in_numeric_steps_and_a_wrong_one_fails():
    from genmath.core._schedule_symbolic import _softplus
    from genmath.derivations._numeric import _numeric_function

    softplus = _softplus()

    def case(rhs):
        return Derivation(
            id="D-test-softplus-numeric",
            title="softplus",
            statement="test",
            start=softplus(u),
            steps=[Step(rhs=rhs, reason="its definition", tag="numeric")],
            domain={u: Uniform(-30, 30)},
        )

    (step,) = case(sp.log(1 + sp.exp(u))).verify(bindings=False).steps
    assert step.ok
    value = _numeric_function(softplus(u), [u])
    assert abs(value({u: sp.Float(0.0)}) - complex(sp.log(2).evalf(20))) < 1e-18
    for wrong in (sp.log(1 + sp.exp(u)) * (1 + sp.Float(1e-7)), sp.log(2 + sp.exp(u))):
        (step,) = case(wrong).verify(bindings=False).steps
        assert not step.ok and "|lhs - rhs|" in step.residual


def test_code_called_only_from_c_is_still_recorded_as_called(registered):
    derivation, _ = _where_case(lambda s_, alpha: s_**2 * alpha)

    def through_c(points):
        from genmath.core.schedules import CondOT

        schedule = CondOT()
        alphas = []
        # sorted() calls the key from C, and only there does the code run: the Python frames
        # under a C call are still profiled
        sorted([points[s] ** 2], key=lambda v: alphas.append(schedule.alpha(v)) or 0)
        return points[s] ** 2 * alphas[0]

    binding = Binding(
        derivation=derivation.id,
        code=("genmath.core.schedules.CondOT.definition",),
        expression=derivation.start,
        where={u: s**2},
        evaluate=through_c,
        domain={s: Uniform(-1, 1)},
        samples=8,
    )
    registered(derivation)
    result = binding.verify()
    assert result.ok, result.residual
    assert "genmath.core.schedules.CondOT.definition" in result.called
