"""Valid calls of `genmath.testing`'s statistical assertions, its exact oracle (with the models
it returns, driven as returned under a ``[returned]`` case name) and its reports, each argument
tagged with its kind (see `contract.py`). The conformance checks and the adapters are in
`api_cases_testing_checks.py`."""

from __future__ import annotations

import functools
import math

import torch
from api_cases_core import OT
from contract import (
    REJECT,
    Call,
    Count,
    Data,
    Gen,
    Kind,
    Mutation,
    Option,
    PathKind,
    Plain,
    Real,
    Scale,
    Spec,
    Time,
    Unit,
    Values,
    case,
)

from genmath import testing


class Bad(Kind):
    """An argument with hand-picked bad values, each of which must be refused by name."""

    def __init__(self, value, *bad: tuple[str, object]):
        super().__init__(value)
        self.bad = bad

    def mutations(self, spec):
        return [Mutation(label, value, REJECT) for label, value in self.bad]


def _level(value):
    """A noise level ``(a, b)`` of ``x = a x0 + b eps``."""
    return Bad(
        value,
        ("a string", "bogus"),
        ("three numbers", (1.0, 0.5, 0.2)),
        ("a negative entry", (1.0, -0.5)),
        ("a nan entry", (math.nan, 0.5)),
        ("both zero", (0.0, 0.0)),
    )


STEPS_BAD = (
    ("an int", 4),
    ("a string", "bogus"),
    ("no steps", ()),
    ("a zero step", (0, 2)),
    ("a float step", (2.5, 4)),
)
NOT_CALLABLE = ("not callable", 3)
KWARGS_BAD = (("a string", "bogus"), ("a list", [1, 2]))


@functools.cache
def _oracle_of(dtype: torch.dtype):
    return testing.gaussian_2d(dtype=dtype)


def _oracle(spec: Spec):
    # an oracle holds no state a call could change: one per dtype serves every trial
    return _oracle_of(spec.dtype)


def _points(spec: Spec, salt: int = 1):
    """States of the 2-D oracle (its event size is fixed at 2, whatever ``spec.dim`` is)."""
    return spec.randn(spec.batch, 2, salt=salt)


def _euler(spec: Spec):
    return testing.genmath_sampler("euler", parameterization="velocity")


# --------------------------------------------------------------------------- oracle


@case("genmath.testing.Oracle")
def _(spec):
    data = _oracle(spec).data
    return Call(
        testing.Oracle,
        dict(
            data=Bad(data, ("a string", "bogus"), ("a tensor", torch.zeros(2))),
            path=PathKind(OT),
            rtol=Scale(1e-10),
            atol=Scale(1e-10),
        ),
    )


for _name in ("gaussian_2d", "mixture_2d"):

    def _preset(spec, name=_name):
        return Call(
            getattr(testing, name),
            dict(
                path=PathKind(OT),
                dtype=Bad(
                    spec.dtype, ("a string", "float64"), ("an integer dtype", torch.int64)
                ),
            ),
        )

    case(f"genmath.testing.{_name}")(_preset)


for _method in ("level", "mean", "cov"):

    def _at_time(spec, method=_method):
        return Call(getattr(_oracle(spec), method), dict(t=Time(0.4)))

    case(f"genmath.testing.Oracle.{_method}")(_at_time)


@case("genmath.testing.Oracle.sample")
def _(spec):
    return Call(
        _oracle(spec).sample,
        dict(n=Count(spec.batch), t=Time(0.4), generator=Gen(spec.generator(3))),
    )


@case("genmath.testing.Oracle.log_prob")
def _(spec):
    return Call(
        _oracle(spec).log_prob, dict(x=Data(_points(spec), fixed=True, mix=True), t=Time(0.4))
    )


@case("genmath.testing.Oracle.prior_log_prob")
def _(spec):
    return Call(_oracle(spec).prior_log_prob, dict(t=Time(1.0)))


@case("genmath.testing.Oracle.prior_log_prob[returned]")
def _(spec):
    return Call(
        _oracle(spec).prior_log_prob(0.9), dict(x=Data(_points(spec), fixed=True, mix=True))
    )


for _parameterization in ("x0", "v"):

    def _predict(spec, parameterization=_parameterization):
        return Call(
            _oracle(spec).predict,
            dict(
                x=Data(_points(spec), fixed=True, mix=True),
                t=Time(0.4),
                parameterization=Option(parameterization),
            ),
        )

    case(f"genmath.testing.Oracle.predict[{_parameterization}]")(_predict)


@case("genmath.testing.Oracle.model")
def _(spec):
    return Call(_oracle(spec).model, dict(parameterization=Option("eps")))


@case("genmath.testing.Oracle.model[returned]")
def _(spec):
    return Call(
        _oracle(spec).model("velocity"),
        dict(x=Data(_points(spec), fixed=True, mix=True), t=Time(0.4)),
    )


@case("genmath.testing.Oracle.time_of_level")
def _(spec):
    return Call(_oracle(spec).time_of_level, dict(a=Scale(0.8, zero_ok=True), b=Scale(0.5, zero_ok=True)))


@case("genmath.testing.Oracle.posterior_at_level")
def _(spec):
    return Call(
        _oracle(spec).posterior_at_level,
        dict(x=Data(_points(spec), fixed=True, mix=True), a=Scale(0.8, zero_ok=True), b=Scale(0.5, zero_ok=True)),
    )


for _label, _make in (("gaussian", testing.gaussian_2d), ("mixture", testing.mixture_2d)):

    def _flow(spec, make=_make):
        oracle = make(dtype=spec.dtype)
        return Call(
            oracle.flow_map,
            dict(
                x=Data(_points(spec), fixed=True, mix=True),
                t_from=Time(0.7, edges=False),
                t_to=Time(0.3, edges=False),
            ),
        )

    case(f"genmath.testing.Oracle.flow_map[{_label}]")(_flow)


@case("genmath.testing.Oracle.flow_map_between_levels")
def _(spec):
    return Call(
        _oracle(spec).flow_map_between_levels,
        dict(
            x=Data(_points(spec), fixed=True, mix=True),
            level_from=_level((0.5, 0.9)),
            level_to=_level((0.9, 0.3)),
        ),
    )


# --------------------------------------------------------------------------- assertions


def _samples(spec: Spec, n: int = 64):
    return spec.randn(n, 2, salt=1)


for _name in ("compare_mean", "compare_means", "assert_means_match"):

    def _means(spec, name=_name):
        samples = _samples(spec)
        second = (
            dict(reference=Values(spec.randn(64, 2, salt=2)))
            if name != "compare_mean"
            else dict(expected=Plain(torch.zeros(2, dtype=spec.dtype)))
        )
        return Call(
            getattr(testing, name),
            dict(
                samples=Values(samples),
                **second,
                precision=Scale(2.0, zero_ok=True),  # 2 resolves at 64 draws (k se ~ 0.7)
                rtol=Scale(0.1, zero_ok=True),
                failure_prob=Unit(1e-6, open=True),
                max_tail_shape=Real(0.7),
            ),
            assertion_ok=name.startswith("assert"),
        )

    case(f"genmath.testing.{_name}")(_means)


def _comparison(spec: Spec):
    return testing.compare_mean(_samples(spec), torch.zeros(2, dtype=spec.dtype), precision=2.0)


for _method in ("as_dict", "message", "raise_if_failed", "required_samples", "worst"):

    def _on_comparison(spec, method=_method):
        return Call(getattr(_comparison(spec), method), {})

    case(f"genmath.testing.MeanComparison.{_method}")(_on_comparison)


@case("genmath.testing.tail_shape")
def _(spec):
    return Call(testing.tail_shape, dict(samples=Values(spec.randn(400, 2, salt=1))))


# --------------------------------------------------------------------------- reports


def _report(spec: Spec):
    return testing.check_field(
        _oracle(spec).model("x0"), _oracle(spec), parameterization="x0", times=(0.5,), n=8
    )


@case("genmath.testing.Report")
def _(spec):
    return Call(
        testing.Report,
        dict(
            check=Bad("field model", ("a number", 3)),
            subject=Bad("mine", ("a number", 3)),
            columns=Bad(["t"], ("a string", "t"), ("numbers", [1, 2])),
            rows=Bad([{"t": 0.5}], ("a string", "rows"), ("a list of numbers", [1.0])),
            failures=Bad([], ("a string", "failed"), ("a list of numbers", [1])),
            summary=Bad({}, ("a list", [1])),
            notes=Bad([], ("a string", "note")),
        ),
    )


for _method in ("as_dict", "table", "raise_if_failed"):

    def _on_report(spec, method=_method):
        return Call(getattr(_report(spec), method), {})

    case(f"genmath.testing.Report.{_method}")(_on_report)


@case("genmath.testing.Report.to_json")
def _(spec):
    return Call(_report(spec).to_json, dict(indent=Plain(1)))


@case("genmath.testing.energy_distance")
def _(spec):
    return Call(
        testing.energy_distance,
        dict(
            x=Data(_points(spec), fixed=True, mix=True, finite=True),
            y=Data(_points(spec, salt=2), fixed=True, mix=True, finite=True),
        ),
    )
