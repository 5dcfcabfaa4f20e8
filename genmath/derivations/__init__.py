"""Sympy-verified derivations: the engine, the registry, and the topics that fill it.

See [How verification works](../verification.md). A derivation is cited by its id, e.g.
``D-elbo-gap``; `genmath verify` checks them all.
"""

from ._engine import CITED, NUMERIC, SYMBOLIC, Check, Derivation, Result, Step, StepResult
from ._registry import by_topic, checks, derivations, get, register, run, select
from ._render import render_markdown

__all__ = [
    "CITED",
    "NUMERIC",
    "SYMBOLIC",
    "Check",
    "Derivation",
    "Result",
    "Step",
    "StepResult",
    "by_topic",
    "checks",
    "derivations",
    "get",
    "register",
    "render_markdown",
    "run",
    "select",
]
