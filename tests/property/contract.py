"""The input contract of genmath's public API, as data: one valid call of every public
callable, with each argument tagged by its *kind*, and the bad values of each kind.

A case (see `api_cases_*.py`) builds a valid call for a `Spec` (batch size, event size, dtype)
whose arguments are wrapped in kinds (`Data`, `Time`, `Scale`, `Option`, `Gen`, ...). The
contract says what a call must do when exactly one argument is replaced by one of its kind's
bad values:

* ``REJECT``: raise a ``ValueError``/``TypeError`` from genmath whose message names the
  argument;
* ``PROPAGATE`` (a NaN or inf in the data): raise as above, or return a result that is
  non-finite somewhere; a finite result made from non-finite input is a plausible lie;
* an empty batch (``B = 0``) is rejected like any invalid value (the rule of genmath: every
  function taking a batch needs at least one sample);
* ``ANY`` (an infinity in the data): raise as above, or return anything (a saturating
  function may map inf to a finite limit);
* ``SAME_DTYPE`` (float32 data for float64 parameters): raise as above, or return results
  all in the data's dtype;
* ``EDGE`` (a valid but extreme value: t = 0 or 1, a huge log-SNR): a finite result of the
  valid call's shapes, or a clear error (a conversion singular at that end);
* ``EVENTLESS`` (data of shape ``(B,)``): raise as above, or a finite result whose shapes
  drop the event dimensions.

`run_trial` classifies one trial: ``clear`` (the error the contract asks for), ``other``
(a raw torch/Python error, or a genmath error naming the wrong argument), ``nonfinite``
(NaN/inf returned; ``finite_input`` says whether the bad value itself was finite),
``shape`` (wrong shape or dtype), ``accepted`` (an invalid value accepted, or a NaN turned
into a finite output), ``ok`` (an allowed non-error outcome). The sweep
(``tools/bad_input_sweep.py``) runs every trial; the property tests draw them with
hypothesis.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import math
import pkgutil
import re
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

GENMATH_DIR = str(Path(__import__("genmath").__file__).resolve().parent)

REJECT, PROPAGATE, ANY, SAME_DTYPE, EDGE, EVENTLESS = (
    "reject",
    "propagate",
    "any",
    "same_dtype",
    "edge",
    "eventless",
)


@dataclasses.dataclass(frozen=True)
class Spec:
    """Sizes and dtype of one valid call."""

    batch: int = 4
    dim: int = 2
    dtype: torch.dtype = torch.float64
    seed: int = 0

    def generator(self, salt: int = 0) -> torch.Generator:
        return torch.Generator().manual_seed(1000 * self.seed + salt)

    def randn(self, *shape, salt: int = 0) -> torch.Tensor:
        return torch.randn(*shape, generator=self.generator(salt), dtype=self.dtype)

    def rand(self, *shape, salt: int = 0) -> torch.Tensor:
        return torch.rand(*shape, generator=self.generator(salt), dtype=self.dtype)


@dataclasses.dataclass(frozen=True)
class Mutation:
    label: str
    value: Any
    expect: str
    finite: bool = True  # the bad value carries no NaN/inf
    near: Any = None  # EDGE of a function with a pole there: the value just inside


# --------------------------------------------------------------------------- kinds


class Kind:
    """A tagged argument: ``value`` is valid; `mutations` lists the bad values to try."""

    def __init__(self, value):
        self.value = value

    def mutations(self, spec: Spec) -> list[Mutation]:
        return []


class Plain(Kind):
    """An argument that is not mutated."""


def _with(x: torch.Tensor, value: float) -> torch.Tensor:
    out = x.clone()
    out.view(-1)[-1] = value
    return out


class Data(Kind):
    """Float data ``(B, *event)``.

    ``event``: the function needs at least one event dimension (else ``(B,)`` is tried as
    EVENTLESS); ``fixed``: the function knows the event size (a wrong one must be rejected);
    ``mix``: the function holds parameters of its own (float32 data must not meet float64
    parameters silently); ``finite``: NaN must be rejected (a discrete output cannot carry
    it); ``batch``: whether dim 0 is the batch (empty batches are tried); ``ints_ok``:
    integer data are documented input (class values)."""

    def __init__(
        self, value, *, fixed=False, mix=False, finite=False, batch=True, event=True, ints_ok=False
    ):
        super().__init__(value)
        self.fixed, self.mix, self.finite, self.batch, self.event = fixed, mix, finite, batch, event
        self.ints_ok = ints_ok

    def mutations(self, spec):
        x = self.value
        out = [
            Mutation("nan", _with(x, math.nan), REJECT if self.finite else PROPAGATE, finite=False),
            Mutation("inf", _with(x, math.inf), REJECT if self.finite else ANY, finite=False),
            Mutation("not a tensor", x.tolist(), REJECT),
            Mutation("0-d", x.reshape(-1)[0].clone(), REJECT),
        ]
        if not self.ints_ok:
            out.append(Mutation("integer dtype", x.round().long(), REJECT))
        if self.batch:
            out.append(Mutation("empty batch", x[:0].clone(), REJECT))
        if self.event and x.ndim >= 2:
            out.append(
                Mutation("event-less (B,)", x.reshape(x.shape[0], -1)[:, 0].clone(), EVENTLESS)
            )
        if self.fixed:
            wider = torch.cat([x, x[..., :1]], dim=-1)
            out.append(Mutation("wrong event size", wider, REJECT))
        if self.mix and x.dtype == torch.float64:
            out.append(Mutation("float32 data", x.float(), SAME_DTYPE))
        return out


class Param(Kind):
    """A parameter tensor of a constructor (lists and ints are converted, as numpy would):
    non-finite entries must be rejected."""

    def mutations(self, spec):
        x = self.value
        return [
            Mutation("nan", _with(x, math.nan), REJECT, finite=False),
            Mutation("inf", _with(x, math.inf), REJECT, finite=False),
            Mutation("a string", "zeros", REJECT),
        ]


class Values(Kind):
    """Float values of any shape (log-densities, weights): NaN propagates."""

    def mutations(self, spec):
        x = self.value
        return [
            Mutation("nan", _with(x, math.nan), PROPAGATE, finite=False),
            Mutation("a string", "values", REJECT),
        ]


class Partner(Kind):
    """A tensor that must match another argument's shape (``eps`` of ``x0``, ``x1`` of ``x0``)."""

    def __init__(self, value, *, finite=False):
        super().__init__(value)
        self.finite = finite

    def mutations(self, spec):
        x = self.value
        nan_expect = REJECT if self.finite else PROPAGATE
        return [
            Mutation("nan", _with(x, math.nan), nan_expect, finite=False),
            Mutation("wrong batch", torch.cat([x, x[:1]]), REJECT),
            Mutation("not a tensor", x.tolist(), REJECT),
            Mutation("integer dtype", x.round().long(), REJECT),
        ]


class Tokens(Kind):
    """Integer token ids in ``[0, K)`` of shape ``(B, *event)`` (``null``: the id ``-1`` is a
    valid null label, so ``-2`` is the bad negative one)."""

    def __init__(self, value, categories: int | None, *, batch=True, null=False, lists_ok=False):
        super().__init__(value)
        self.categories, self.batch, self.null = categories, batch, null
        self.lists_ok = lists_ok

    def mutations(self, spec):
        x = self.value
        out = [
            Mutation("float dtype", x.to(spec.dtype), REJECT),
            Mutation("negative id", _with(x, -2 if self.null else -1), REJECT),
        ]
        if not self.lists_ok:
            out.append(Mutation("not a tensor", x.tolist(), REJECT))
        if self.categories is not None:
            out.append(Mutation("id out of range", _with(x, self.categories + 5), REJECT))
        if self.batch:
            out.append(Mutation("empty batch", x[:0].clone(), REJECT))
        return out


class Time(Kind):
    """A time in [0, 1]: a float, 0-d or ``(B,)`` tensor. ``edges``: t = 0 and t = 1 are
    tried as valid extremes; ``batched``: a ``(B+1,)`` tensor must be rejected; ``poles``:
    the function may have a pole at an end (a schedule's log-SNR at t = 0): there it may
    return +-inf, with the sign it has just inside [0, 1]."""

    def __init__(self, value, *, batch: int | None = None, edges=True, poles=False):
        super().__init__(value)
        self.batch, self.edges, self.poles = batch, edges, poles

    def mutations(self, spec):
        out = [
            Mutation("t < 0", -0.5, REJECT),
            Mutation("t > 1", 1.5, REJECT),
            Mutation("t = nan", math.nan, REJECT, finite=False),
            Mutation("t = inf", math.inf, REJECT, finite=False),
            Mutation(
                "t of shape (B, 2)", torch.full((self.batch or 3, 2), 0.5, dtype=spec.dtype), REJECT
            ),
            Mutation("t a string", "half", REJECT),
        ]
        if self.batch is not None:
            out.append(
                Mutation(
                    "t of wrong length",
                    torch.full((self.batch + 1,), 0.5, dtype=spec.dtype),
                    REJECT,
                )
            )
        if self.edges:
            inside = (1e-9, 1 - 1e-9) if self.poles else (None, None)
            out += [
                Mutation("t = 0", 0.0, EDGE, near=inside[0]),
                Mutation("t = 1", 1.0, EDGE, near=inside[1]),
            ]
        return out


class NetTime(Kind):
    """The time input of a network: any finite real (EDM's noise label, a solver probing past
    [0, 1]), a scalar or ``(B,)``."""

    def __init__(self, value, *, batch: int):
        super().__init__(value)
        self.batch = batch

    def mutations(self, spec):
        return [
            Mutation("t = nan", math.nan, REJECT, finite=False),
            Mutation("t = inf", math.inf, REJECT, finite=False),
            Mutation(
                "t of shape (B, 2)", torch.full((self.batch, 2), 0.5, dtype=spec.dtype), REJECT
            ),
            Mutation("t a string", "half", REJECT),
            Mutation(
                "t of wrong length", torch.full((self.batch + 1,), 0.5, dtype=spec.dtype), REJECT
            ),
            Mutation("t = 0", 0.0, EDGE),
            Mutation("t = 1", 1.0, EDGE),
        ]


class Scale(Kind):
    """A positive finite number (``zero_ok``: non-negative)."""

    def __init__(self, value, *, zero_ok=False, tensor=False):
        super().__init__(value)
        self.zero_ok, self.tensor = zero_ok, tensor

    def mutations(self, spec):
        def v(x):
            return torch.full_like(self.value, x) if self.tensor else x

        out = [
            Mutation("negative", v(-1.0), REJECT),
            Mutation("nan", v(math.nan), REJECT, finite=False),
            Mutation("inf", v(math.inf), REJECT, finite=False),
        ]
        if not self.zero_ok:
            out.append(Mutation("zero", v(0.0), REJECT))
        if not self.tensor:
            out.append(Mutation("a string", "one", REJECT))
        return out


class Unit(Kind):
    """A number in [0, 1] (``open``: in (0, 1))."""

    def __init__(self, value, *, open=False):
        super().__init__(value)
        self.open = open

    def mutations(self, spec):
        out = [
            Mutation("below 0", -0.25, REJECT),
            Mutation("above 1", 1.5, REJECT),
            Mutation("nan", math.nan, REJECT, finite=False),
        ]
        if self.open:
            out += [
                Mutation("0 (open interval)", 0.0, REJECT),
                Mutation("1 (open interval)", 1.0, REJECT),
            ]
        return out


class Real(Kind):
    """Any finite real number."""

    def mutations(self, spec):
        return [
            Mutation("nan", math.nan, REJECT, finite=False),
            Mutation("inf", math.inf, REJECT, finite=False),
            Mutation("a string", "one", REJECT),
        ]


class Count(Kind):
    """An integer of at least ``minimum``."""

    def __init__(self, value, minimum: int = 1):
        super().__init__(value)
        self.minimum = minimum

    def mutations(self, spec):
        return [
            Mutation("below minimum", self.minimum - 1, REJECT),
            Mutation("negative", -3, REJECT),
            Mutation("a float", self.value + 0.5, REJECT),
            Mutation("a bool", True if self.minimum > 1 else False, REJECT),
        ]


class Option(Kind):
    """One of a fixed set of strings (``strings_only=False``: other types mean something)."""

    def __init__(self, value, *, strings_only=True):
        super().__init__(value)
        self.strings_only = strings_only

    def mutations(self, spec):
        out = [Mutation("unknown option", "bogus", REJECT)]
        if self.strings_only:
            out.append(Mutation("not a string", 7, REJECT))
        return out


class Gen(Kind):
    """A ``torch.Generator`` or None."""

    def __init__(self, value=None):
        super().__init__(value)

    def mutations(self, spec):
        return [Mutation("an int", 42, REJECT), Mutation("a string", "seed", REJECT)]


class PathKind(Kind):
    """A `GaussianPath` (``schedule``: a `Schedule`)."""

    def __init__(self, value, *, schedule=False):
        super().__init__(value)
        self.schedule = schedule

    def mutations(self, spec):
        return [Mutation("a string", "bogus", REJECT), Mutation("a number", 3.0, REJECT)]


class Lam(Kind):
    """Log-SNR values; ``+-1e3`` are valid or out of the schedule's range."""

    def mutations(self, spec):
        return [
            Mutation("nan", math.nan, REJECT, finite=False),
            Mutation("very large", 1e3, EDGE),
            Mutation("very small", -1e3, EDGE),
        ]


# --------------------------------------------------------------------------- calls


@dataclasses.dataclass
class Call:
    """``fn(**kwargs)`` with tagged values; ``aliases`` maps an argument to other names an
    error may use for it (``x`` of a method called ``value``...)."""

    fn: Callable
    kwargs: dict
    aliases: dict = dataclasses.field(default_factory=dict)
    args: tuple = ()  # leading positional arguments (kinds allowed), e.g. for *bijections
    assertion_ok: bool = False  # a testing helper: AssertionError is its documented failure

    def valid(self) -> tuple[tuple, dict]:
        return (
            tuple(_unwrap(a) for a in self.args),
            {k: _unwrap(v) for k, v in self.kwargs.items()},
        )


def _unwrap(v):
    return v.value if isinstance(v, Kind) else v


@dataclasses.dataclass
class Case:
    name: str
    build: Callable[[Spec], Call]


CASES: list[Case] = []


def case(name: str):
    def decorate(build):
        CASES.append(Case(name, build))
        return build

    return decorate


# --------------------------------------------------------------------------- classification


@dataclasses.dataclass
class Outcome:
    case: str
    argument: str
    mutation: str
    expect: str
    category: str  # clear / other / nonfinite / shape / accepted / ok
    finite_input: bool
    detail: str = ""


def _tensors(result) -> list[torch.Tensor]:
    if isinstance(result, torch.Tensor):
        return [result]
    if isinstance(result, dict):
        return [t for v in result.values() for t in _tensors(v)]
    if isinstance(result, list | tuple):
        return [t for v in result for t in _tensors(v)]
    if dataclasses.is_dataclass(result) and not isinstance(result, type):
        return [t for f in dataclasses.fields(result) for t in _tensors(getattr(result, f.name))]
    if isinstance(result, torch.distributions.Distribution):
        while hasattr(result, "base_dist"):
            result = result.base_dist
        return [
            v
            for k, v in vars(result).items()
            if isinstance(v, torch.Tensor) and not k.startswith("_")
        ]
    return []


def _finite(tensors) -> bool:
    return all(bool(torch.isfinite(t).all()) for t in tensors if t.is_floating_point())


def _raised_in_genmath(error: BaseException) -> bool:
    frames = traceback.extract_tb(error.__traceback__)
    return bool(frames) and frames[-1].filename.startswith(GENMATH_DIR)


def _names(argument: str, aliases: dict) -> list[str]:
    return [argument, *aliases.get(argument, ())]


def _clear(error: BaseException, argument: str, call: Call) -> tuple[bool, str]:
    kinds = (
        (ValueError, TypeError, AssertionError) if call.assertion_ok else (ValueError, TypeError)
    )
    message = str(error)
    if not isinstance(error, kinds):
        return False, f"{type(error).__name__}: {message[:160]}"
    if isinstance(error, AssertionError):
        return True, ""  # a testing helper's documented failure: the report names its check
    if not _raised_in_genmath(error):
        return False, f"raw {type(error).__name__}: {message[:160]}"
    if not any(
        re.search(rf"(?<![\w.]){re.escape(n)}(?!\w)", message)
        for n in _names(argument, call.aliases)
    ):
        return False, f"does not name {argument!r}: {type(error).__name__}: {message[:160]}"
    return True, ""


def run_trial(name: str, call: Call, argument: str, mutation: Mutation, baseline) -> Outcome:
    args, kwargs = call.valid()
    if argument.startswith("*"):
        index = int(argument[1:])
        args = (*args[:index], mutation.value, *args[index + 1 :])
    else:
        kwargs[argument] = mutation.value
    record = dict(case=name, argument=argument, mutation=mutation.label, expect=mutation.expect)
    try:
        with torch.random.fork_rng():
            torch.manual_seed(0)
            result = call.fn(*args, **kwargs)
    except Exception as error:  # noqa: BLE001 - classifying every error is the point
        ok, why = _clear(error, argument.lstrip("*").split(":")[0], call)
        return Outcome(
            **record, category="clear" if ok else "other", finite_input=mutation.finite, detail=why
        )
    tensors = _tensors(result)
    finite = _finite(tensors)
    expect = mutation.expect
    if expect == REJECT:
        category = "nonfinite" if not finite else "accepted"
        return Outcome(**record, category=category, finite_input=mutation.finite, detail="returned")
    if expect == PROPAGATE:
        category = "ok" if not finite else "accepted"
        detail = "propagated" if not finite else "a finite result from non-finite input"
        return Outcome(**record, category=category, finite_input=False, detail=detail)
    if expect == ANY:
        return Outcome(**record, category="ok", finite_input=False)
    if expect == EDGE and mutation.near is not None and not finite:
        return _pole(record, call, argument, mutation, tensors)
    if not finite:
        return Outcome(
            **record, category="nonfinite", finite_input=mutation.finite, detail="returned"
        )
    if expect == SAME_DTYPE:
        wrong = [
            str(t.dtype) for t in tensors if t.is_floating_point() and t.dtype != torch.float32
        ]
        if wrong:
            return Outcome(**record, category="shape", finite_input=True, detail=f"dtypes {wrong}")
        return Outcome(**record, category="ok", finite_input=True)
    if expect == EVENTLESS:
        # event dimensions dropped: a result of the data's shape is (B,), a (B,) one stays
        base_tensors, _ = baseline
        got = [tuple(t.shape) for t in tensors]
        expected = [tuple(t.shape) for t in base_tensors]
        if len(got) != len(expected) or any(
            len(g) > len(e) for g, e in zip(got, expected, strict=True)
        ):
            return Outcome(**record, category="shape", finite_input=True, detail=f"shapes {got}")
    return Outcome(**record, category="ok", finite_input=True)


def _pole(record, call: Call, argument: str, mutation: Mutation, tensors) -> Outcome:
    """An infinity at an end is right where the function has a pole there: the same sign as
    just inside [0, 1], and never NaN."""
    args, kwargs = call.valid()
    kwargs[argument] = mutation.near
    inside = _tensors(call.fn(*args, **kwargs))
    for at_end, near in zip(tensors, inside, strict=True):
        if not at_end.is_floating_point():
            continue
        if bool(torch.isnan(at_end).any()):
            return Outcome(**record, category="nonfinite", finite_input=True, detail="NaN at the end")
        pole = torch.isinf(at_end)
        if bool((torch.sign(at_end[pole]) != torch.sign(near.expand_as(at_end)[pole])).any()):
            return Outcome(
                **record, category="nonfinite", finite_input=True, detail="a pole of the wrong sign"
            )
    return Outcome(**record, category="ok", finite_input=True, detail="a pole with its sign")


def baseline_of(call: Call, batch: int):
    args, kwargs = call.valid()
    with torch.random.fork_rng():
        torch.manual_seed(0)
        result = call.fn(*args, **kwargs)
    tensors = _tensors(result)
    if not _finite(tensors):
        raise AssertionError("the valid call returned non-finite values")
    return tensors, batch


def trials(call: Call, spec: Spec):
    """``(argument, mutation)`` for every tagged argument of ``call``."""
    out = []
    for i, a in enumerate(call.args):
        if isinstance(a, Kind):
            out += [(f"*{i}", m) for m in a.mutations(spec)]
    for key, value in call.kwargs.items():
        if isinstance(value, Kind):
            out += [(key, m) for m in value.mutations(spec)]
    return out


# --------------------------------------------------------------------------- coverage

# Interfaces, not callables with behaviour of their own: their subclasses are swept.
ABSTRACT = {
    "genmath.Bijection",
    "genmath.FieldWithDivergence",
    "genmath.VelocityWithDivergence",
    "genmath.testing.SamplerUnderTest",  # the adapters and as_sampler are driven
}


def public_callables() -> set[str]:
    """Dotted names of the public callables: ``__all__`` of genmath, its public modules and
    the family modules, and the public methods defined by public classes."""
    import genmath.families

    modules = [
        "genmath",
        "genmath.analytic",
        "genmath.testing",
        "genmath.nn",
        "genmath.schedules",
        "genmath.score_matching",
    ]
    modules += [
        f"genmath.families.{m.name}" for m in pkgutil.iter_modules(genmath.families.__path__)
    ]
    names = set()
    for module_name in modules:
        module = importlib.import_module(module_name)
        for name in getattr(module, "__all__", ()):
            obj = getattr(module, name)
            if inspect.ismodule(obj) or not callable(obj):
                continue
            if inspect.isclass(obj) and issubclass(obj, (dict, tuple)) or name.isupper():
                continue
            if inspect.isclass(obj) and issubclass(obj, BaseException):
                continue  # an exception class takes any message: it has no input contract
            if (
                inspect.isclass(obj)
                and getattr(obj, "__dataclass_fields__", None)
                and not any(callable(v) and not k.startswith("_") for k, v in vars(obj).items())
            ):
                continue  # a plain record (SampleResult, ODELikelihood, ...)
            if f"{module_name}.{name}" in ABSTRACT:
                continue
            names.add(f"{module_name}.{name}")
            if inspect.isclass(obj):
                for attr, value in vars(obj).items():
                    if attr.startswith("_") or attr in ("extra_repr", "definition"):
                        continue
                    if inspect.isfunction(value) or isinstance(value, classmethod | staticmethod):
                        names.add(f"{module_name}.{name}.{attr}")
    return names


def covered_names(case_names: list[str]) -> set[str]:
    out = set()
    for name in case_names:
        plain = re.sub(r"\[[^\]]*\]", "", name)
        out.add(plain)
        out.add(plain.rsplit(".", 1)[0])  # a method case covers its class
    return out
