"""What a verification returns: the step tags and statuses, and the result records of a
step, a binding, a derivation or check (split from `_engine`, which re-exports them)."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

__all__ = [
    "SYMBOLIC", "NUMERIC", "CITED", "VERIFIED", "FAILED", "StepResult", "BindingResult", "Result",
]

SYMBOLIC = "symbolic"
NUMERIC = "numeric"
CITED = "cited"
_TAGS = (SYMBOLIC, NUMERIC, CITED)
_RELATIONS = ("=", "<=", ">=")

# Statuses of a step: a cited step is never "verified".
VERIFIED = "verified"
FAILED = "failed"


@dataclasses.dataclass(frozen=True)
class StepResult:
    index: int
    tag: str
    ok: bool
    method: str
    residual: str | None
    seconds: float
    status: str = VERIFIED  # "verified", "cited" or "failed"


@dataclasses.dataclass(frozen=True)
class BindingResult:
    derivation: str
    code: tuple[str, ...]
    called: tuple[str, ...]
    ok: bool
    max_error: float
    residual: str | None
    samples: int
    domain: dict[str, str]
    where: dict[str, str]
    generated: bool
    description: str
    seconds: float

    def as_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["max_error"] = None if not math.isfinite(self.max_error) else self.max_error
        out["seconds"] = round(self.seconds, 4)
        return out


@dataclasses.dataclass(frozen=True)
class Result:
    id: str
    title: str
    kind: str
    steps: list[StepResult]
    seconds: float
    bindings: list[BindingResult] = dataclasses.field(default_factory=list)

    @property
    def ok(self) -> bool:
        """No step and no binding failed (cited steps do not fail, nor do they verify)."""
        return all(s.ok for s in self.steps) and all(b.ok for b in self.bindings)

    @property
    def bound(self) -> bool:
        return self.kind == "check" or bool(self.bindings)

    @property
    def status(self) -> str:
        """``"verified"``, ``"verified, cites"`` (some step is cited), ``"unbound"`` or
        ``"failed"``."""
        if not self.ok:
            return "failed"
        if not self.bound:
            return "unbound"
        return "verified, cites" if self.count(CITED) else "verified"

    def count(self, tag: str) -> int:
        return sum(1 for s in self.steps if s.tag == tag)

    def failures(self) -> list[StepResult]:
        return [s for s in self.steps if not s.ok]

    def binding_failures(self) -> list[BindingResult]:
        return [b for b in self.bindings if not b.ok]

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "kind": self.kind,
            "ok": self.ok,
            "status": self.status,
            "seconds": round(self.seconds, 4),
            "steps": [dataclasses.asdict(s) for s in self.steps],
            "bindings": [b.as_dict() for b in self.bindings],
            "counts": {tag: self.count(tag) for tag in (*_TAGS, "exact-numeric")},
        }
