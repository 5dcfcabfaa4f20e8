"""The shared validators of genmath's entry points: numbers, options, generators, dtypes and
finiteness. Shapes and times live in `genmath.core._shapes`.

Every entry point validates its arguments once, with these functions, so that each rule of
the input contract (CONTRIBUTING.md, "Input rules") lives in one place:

* a bad *type* (a string where a number goes, ``generator=42``, float32 data for float64
  parameters) raises `InputTypeError`, which is a ``TypeError`` and also a ``ValueError``
  (DESIGN.md promises a ``ValueError`` for every bad input, and code written against that
  promise keeps working); a bad *value* (a negative scale, an unknown option, a non-finite
  tolerance) raises ``ValueError``;
* every message names the argument as the caller wrote it, says what was expected and
  what was given.

None of these functions copies or converts a tensor; each costs at most one reduction.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable

import torch

from .._implements import plumbing

__all__ = [
    "InputTypeError",
    "check_generator",
    "check_option",
    "check_int",
    "positive_int",
    "check_real",
    "positive",
    "non_negative",
    "in_unit_interval",
    "check_float_tensor",
    "as_parameter",
    "check_finite",
    "positive_tensor",
    "check_tolerances",
    "module_dtype",
    "check_dtype",
    "same_dtype",
    "check_callable",
    "check_floating_dtype",
    "check_kwargs",
    "check_text",
    "check_flag",
]


class InputTypeError(TypeError, ValueError):
    """An argument of the wrong type: a ``TypeError``, and a ``ValueError`` like every other
    rejection of bad input."""


def check_generator(generator, name: str = "generator") -> torch.Generator | None:
    """``generator`` if it is ``None`` or a `torch.Generator`, else a TypeError."""
    if generator is not None and not isinstance(generator, torch.Generator):
        raise InputTypeError(
            f"{name} must be a torch.Generator or None, got {type(generator).__name__} "
            f"{generator!r:.40}; make one with torch.Generator().manual_seed(seed)"
        )
    return generator


def check_option(value, choices: Iterable[str], name: str) -> str:
    """``value`` if it is one of the strings ``choices``, else a ValueError naming ``name``."""
    choices = tuple(choices)
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")
    return value


def check_int(value, name: str, minimum: int | None = None, maximum: int | None = None) -> int:
    """``value`` if it is an integer (not a bool) within ``[minimum, maximum]``."""
    if maximum is None:
        expected = (
            "an integer"
            if minimum is None
            else "a positive integer"
            if minimum == 1
            else f"an integer >= {minimum}"
        )
    elif minimum is None:
        expected = f"an integer <= {maximum}"
    else:
        expected = f"an integer in [{minimum}, {maximum}]"
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise InputTypeError(f"{name} must be {expected}, got {type(value).__name__} {value!r:.40}")
    value = int(value)
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        raise ValueError(f"{name} must be {expected}, got {value}")
    return value


def positive_int(value, name: str, minimum: int = 1) -> int:
    """``value`` if it is an integer (not a bool) of at least ``minimum``."""
    return check_int(value, name, minimum)


def _number(value, name: str) -> float:
    if isinstance(value, torch.Tensor) and value.ndim == 0 and not value.dtype == torch.bool:
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise InputTypeError(f"{name} must be a real number, got {type(value).__name__} {value!r:.40}")
    return float(value)


def check_real(value, name: str, *, finite: bool = True) -> float:
    """``value`` as a float if it is a real number (finite unless ``finite=False``)."""
    value = _number(value, name)
    if math.isnan(value) or (finite and math.isinf(value)):
        raise ValueError(f"{name} must be a finite number, got {value}")
    return value


def positive(value, name: str, *, finite: bool = True) -> float:
    """``value`` as a float if it is a number > 0 (and finite unless ``finite=False``)."""
    value = _number(value, name)
    if not value > 0:
        raise ValueError(f"{name} must be a positive number, got {value}")
    if finite and math.isinf(value):
        raise ValueError(f"{name} must be a positive number, got {value} (it must be finite)")
    return value


def non_negative(value, name: str, *, finite: bool = True) -> float:
    """``value`` as a float if it is a number >= 0 (and finite unless ``finite=False``)."""
    value = _number(value, name)
    if not value >= 0:
        raise ValueError(f"{name} must be a number >= 0, got {value}")
    if finite and math.isinf(value):
        raise ValueError(f"{name} must be a number >= 0, got {value} (it must be finite)")
    return value


@plumbing("input validation: comparisons of an argument with the ends of [0, 1], no formula")
def in_unit_interval(value, name: str, *, open_low: bool = False, open_high: bool = False) -> float:
    """``value`` as a float if it lies in [0, 1] (with the ends excluded as asked)."""
    value = _number(value, name)
    low_ok = value > 0 if open_low else value >= 0
    high_ok = value < 1 if open_high else value <= 1
    if not (low_ok and high_ok):
        interval = ("(" if open_low else "[") + "0, 1" + (")" if open_high else "]")
        raise ValueError(f"{name} must lie in {interval}, got {value}")
    return value


def check_float_tensor(x, name: str) -> torch.Tensor:
    """``x`` if it is a floating-point tensor (TypeError for other types, ValueError for
    other dtypes)."""
    if not isinstance(x, torch.Tensor):
        raise InputTypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise ValueError(f"{name} must be floating point, got dtype {x.dtype}")
    return x


def as_parameter(value, name: str) -> torch.Tensor:
    """A constructor's parameter as a finite floating tensor: tensors keep their dtype, numbers
    and nested lists are converted (ints to the default dtype, as numpy would convert them)."""
    if isinstance(value, str | bool) or not isinstance(value, torch.Tensor | numbers.Real | list | tuple):
        raise InputTypeError(f"{name} must be a tensor (or numbers), got {type(value).__name__}")
    try:
        tensor = torch.as_tensor(value)
    except (TypeError, ValueError, RuntimeError):
        raise InputTypeError(f"{name} must be a tensor (or numbers), got {value!r:.40}") from None
    if not tensor.is_floating_point():
        tensor = tensor.to(torch.get_default_dtype())
    return check_finite(tensor, name)


@plumbing("input validation: counts the non-finite entries for the error message, no formula")
def check_finite(x: torch.Tensor, name: str, why: str = "") -> torch.Tensor:
    """``x`` if every entry is finite (one reduction), else a ValueError naming ``name``.

    For the functions that cannot carry a NaN honestly into their result (a code index, an
    assignment, a sampler's start): elsewhere non-finite data propagate."""
    if not bool(torch.isfinite(x).all()):
        bad = int((~torch.isfinite(x)).sum())
        reason = f" ({why})" if why else ""
        raise ValueError(
            f"{name} must be finite{reason}, got {bad} non-finite of {x.numel()} entries"
        )
    return x


def positive_tensor(values, name: str, *, like: torch.Tensor | None = None, zero_ok: bool = False):
    """``values`` (a number or a tensor) as a tensor of finite entries > 0 (>= 0 with
    ``zero_ok``), in the dtype and device of ``like`` when given (numbers adopt the data's
    dtype; a tensor must already have it)."""
    if isinstance(values, torch.Tensor):
        if not values.is_floating_point():
            values = values.to(like.dtype if like is not None else torch.get_default_dtype())
        elif like is not None and values.dtype != like.dtype:
            raise InputTypeError(
                f"{name} has dtype {values.dtype} but the data have dtype {like.dtype}; "
                f"convert one of them (e.g. {name}.to({like.dtype}))"
            )
    else:
        if isinstance(values, bool) or not isinstance(values, numbers.Real):
            raise InputTypeError(
                f"{name} must be a number or a tensor, got {type(values).__name__} {values!r:.40}"
            )
        dtype = like.dtype if like is not None else torch.get_default_dtype()
        values = torch.tensor(float(values), dtype=dtype, device=None if like is None else like.device)
    bad = ~torch.isfinite(values) | ((values < 0) if zero_ok else (values <= 0))
    if bool(bad.any()):
        expected = "non-negative and finite" if zero_ok else "positive and finite"
        raise ValueError(f"{name} must be {expected}, got {values[bad].flatten()[:5].tolist()}")
    return values


def check_tolerances(rtol, atol) -> tuple[float, float]:
    """An adaptive solver's tolerances: finite and > 0. A zero ``atol`` makes the error test
    of a component that passes through 0 (a log-density starting at 0) impossible to pass
    (torchdiffeq's step size underflows), and a zero ``rtol`` is no tolerance to scale by:
    both are refused rather than left to fail deep in the solver."""
    return positive(rtol, "rtol"), positive(atol, "atol")


def module_dtype(module) -> torch.dtype | None:
    """The floating dtype of a module's first floating parameter or buffer (None if none)."""
    for tensor in (*module.parameters(), *module.buffers()):
        if tensor.is_floating_point():
            return tensor.dtype
    return None


def check_dtype(x: torch.Tensor, dtype: torch.dtype | None, name: str, owner: str) -> torch.Tensor:
    """``x`` if it has ``dtype`` (or ``dtype`` is None): genmath never mixes float32 data
    with float64 parameters silently (CONTRIBUTING.md, "Input rules")."""
    if dtype is not None and x.is_floating_point() and x.dtype != dtype:
        raise InputTypeError(
            f"{name} has dtype {x.dtype} but {owner} computes in {dtype}; convert one of them "
            f"(e.g. {name}.to({dtype}), or .to({x.dtype}) on {owner})"
        )
    return x


def same_dtype(x: torch.Tensor, reference: torch.Tensor, name: str, reference_name: str):
    """``x`` if it has the floating dtype of ``reference`` (two tensors of one computation)."""
    if x.is_floating_point() and reference.is_floating_point() and x.dtype != reference.dtype:
        raise InputTypeError(
            f"{name} has dtype {x.dtype} but {reference_name} has dtype {reference.dtype}; "
            "tensors of one computation must share a dtype (convert one of them)"
        )
    return x


def check_callable(value, name: str, what: str = "a callable"):
    """``value`` if it is callable, else a TypeError naming ``name`` (``what`` says what is
    expected, e.g. ``"a function (x, t) -> prediction"``)."""
    if not callable(value):
        raise InputTypeError(f"{name} must be {what}, got {type(value).__name__} {value!r:.40}")
    return value


def check_floating_dtype(dtype, name: str = "dtype") -> torch.dtype:
    """``dtype`` if it is a floating-point `torch.dtype` (``torch.float32``, ``torch.float64``)."""
    if not isinstance(dtype, torch.dtype):
        raise InputTypeError(
            f"{name} must be a torch.dtype such as torch.float64, got {type(dtype).__name__} "
            f"{dtype!r:.40}"
        )
    if not dtype.is_floating_point:
        raise ValueError(f"{name} must be a floating-point dtype, got {dtype}")
    return dtype


def check_kwargs(value, name: str) -> dict:
    """Extra keyword arguments for a third-party call: a dict with string keys (``None`` is
    an empty one), returned as a copy."""
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise InputTypeError(
            f"{name} must be a dict of keyword arguments (or None), got {type(value).__name__} "
            f"{value!r:.40}"
        )
    return dict(value)


def check_text(value, name: str, *, optional: bool = True) -> str | None:
    """``value`` if it is a string (or ``None`` when ``optional``): a label shown in reports."""
    if (value is None and optional) or isinstance(value, str):
        return value
    raise InputTypeError(f"{name} must be a string, got {type(value).__name__} {value!r:.40}")


def check_flag(value, name: str, *, optional: bool = False) -> bool | None:
    """``value`` if it is a bool (or ``None`` when ``optional``: "decide for me"). A string
    such as ``"no"`` is truthy: taken as a flag it would switch the option on."""
    if (value is None and optional) or isinstance(value, bool):
        return value
    raise InputTypeError(f"{name} must be True or False, got {type(value).__name__} {value!r:.40}")
