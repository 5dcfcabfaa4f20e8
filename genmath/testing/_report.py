"""The result object every conformance check returns: a table, a verdict, and what went wrong."""

from __future__ import annotations

import dataclasses
import json
import math

from ..core._validate import InputTypeError

__all__ = ["Report", "ConformanceError"]


class ConformanceError(AssertionError):
    """Raised by a check in strict mode (or by `Report.raise_if_failed`): the code under test
    does not match the exact answer; the message names each defect found."""


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if value == 0 or 1e-3 <= abs(value) < 1e4:
            return f"{value:.4g}"
        return f"{value:.3e}"
    return str(value)


def _plain(value):
    """JSON-safe copy (tensors to lists, non-finite floats to strings)."""
    if hasattr(value, "tolist"):
        value = value.tolist()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _strings(value, name: str) -> list[str]:
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise InputTypeError(f"{name} must be a list of strings, got {value!r:.60}")
    return value if isinstance(value, list) else list(value)  # the caller's list, not a copy


@dataclasses.dataclass
class Report:
    """What a conformance check found.

    Attributes:
        check: which check ran (``"deterministic sampler"``, ...).
        subject: what was checked (a name).
        columns: the table's column names.
        rows: one dict per row (per NFE, per time, ...).
        failures: one message per defect found; empty when the code conforms.
        summary: headline numbers (e.g. the estimated order of convergence).
        notes: context that is not a failure (the oracle, the levels, skipped parts).

    ``print(report)`` shows a table; `as_dict` is JSON-ready; `raise_if_failed` raises
    `ConformanceError` with every failure message.
    """

    check: str
    subject: str
    columns: list[str]
    rows: list[dict]
    failures: list[str] = dataclasses.field(default_factory=list)
    summary: dict = dataclasses.field(default_factory=dict)
    notes: list[str] = dataclasses.field(default_factory=list)

    def __post_init__(self):
        # a report is read by people and by CI: a malformed one would fail only when printed
        for name in ("check", "subject"):
            if not isinstance(getattr(self, name), str):
                value = getattr(self, name)
                raise InputTypeError(f"{name} must be a string, got {type(value).__name__} {value!r:.40}")
        for name in ("columns", "failures", "notes"):
            setattr(self, name, _strings(getattr(self, name), name))
        if not isinstance(self.rows, list | tuple) or not all(isinstance(r, dict) for r in self.rows):
            raise InputTypeError(f"rows must be a list of dicts (one per row), got {self.rows!r:.60}")
        if isinstance(self.rows, tuple):
            self.rows = list(self.rows)
        if not isinstance(self.summary, dict):
            raise InputTypeError(f"summary must be a dict, got {type(self.summary).__name__}")

    @property
    def passed(self) -> bool:
        return not self.failures

    def __bool__(self) -> bool:
        return self.passed

    def as_dict(self) -> dict:
        return _plain(
            {
                "check": self.check,
                "subject": self.subject,
                "passed": self.passed,
                "summary": self.summary,
                "columns": self.columns,
                "rows": self.rows,
                "failures": self.failures,
                "notes": self.notes,
            }
        )

    def to_json(self, **kwargs) -> str:
        return json.dumps(self.as_dict(), **kwargs)

    def table(self) -> str:
        """The rows as an aligned plain-text table."""
        cells = [[_cell(row.get(c)) for c in self.columns] for row in self.rows]
        widths = [max([len(c), *(len(r[i]) for r in cells)]) for i, c in enumerate(self.columns)]
        lines = ["  ".join(c.rjust(w) for c, w in zip(self.columns, widths, strict=True))]
        lines += ["  ".join(v.rjust(w) for v, w in zip(r, widths, strict=True)) for r in cells]
        return "\n".join(lines)

    def __str__(self) -> str:
        verdict = "PASSED" if self.passed else "FAILED"
        head = f"{self.check}: {self.subject} — {verdict}"
        parts = [head, self.table()]
        if self.summary:
            parts.append(", ".join(f"{k} = {_cell(v)}" for k, v in self.summary.items()))
        parts += [f"note: {n}" for n in self.notes]
        parts += [f"FAIL: {f}" for f in self.failures]
        return "\n".join(parts)

    def raise_if_failed(self) -> Report:
        if self.failures:
            raise ConformanceError(
                f"{self.check} {self.subject!r} does not conform:\n- "
                + "\n- ".join(self.failures)
                + "\n"
                + self.table()
            )
        return self
