"""The input contract of genmath's public API, as data: one valid call of every public
callable, with each argument tagged by its *kind*, and the bad values of each kind.

A case (see `api_cases_*.py`) builds a valid call for a `Spec` (batch size, event size, dtype)
whose arguments are wrapped in kinds (`Data`, `Time`, `Scale`, `Option`, `Gen`, ...; defined in
`kinds.py`, importable from here). The
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
import pkgutil
import re
from collections.abc import Callable
from pathlib import Path

import torch
from kinds import (  # noqa: F401  (re-exported: the case files import the kinds from here)
    ANY,
    EDGE,
    EVENTLESS,
    PROPAGATE,
    REJECT,
    SAME_DTYPE,
    Count,
    Data,
    Flag,
    Gen,
    Kind,
    Lam,
    Mutation,
    NetTime,
    Option,
    Param,
    Partner,
    PathKind,
    Plain,
    Real,
    Scale,
    Spec,
    Time,
    Tokens,
    Unit,
    Values,
)

GENMATH_DIR = str(Path(__import__("genmath").__file__).resolve().parent)

def seed_cpu(seed: int) -> None:
    """``torch.manual_seed`` for the CPU generator alone (the cases run on the CPU): torch's
    own also seeds the accelerators, which before their first use records a stack trace per
    device at every call, the largest single cost of the sweep (8,000 calls)."""
    torch.default_generator.manual_seed(seed)


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
    # the innermost frame's file, without formatting the traceback (which reads every line of
    # source it names: a third of the time of classifying a clear error)
    tb = error.__traceback__
    if tb is None:
        return False
    while tb.tb_next is not None:
        tb = tb.tb_next
    return tb.tb_frame.f_code.co_filename.startswith(GENMATH_DIR)


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
        with torch.random.fork_rng(devices=[]):
            seed_cpu(0)
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
    with torch.random.fork_rng(devices=[]):
        seed_cpu(0)
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
        "genmath.ot",
        "genmath.testing",
        "genmath.nn",
        "genmath.schedules",
        "genmath.score_matching",
    ]
    modules += [
        f"genmath.families.{m.name}"
        for m in pkgutil.iter_modules(genmath.families.__path__)
        if not m.name.startswith("_")  # private siblings: their names are re-exported
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
