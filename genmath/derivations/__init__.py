"""Sympy-verified derivations: the engine, the registry, and the topics that fill it.

See [How verification works](../verification.md). A derivation is cited by its id, e.g.
``D-elbo-gap``; `genmath verify` checks them all, runs every binding that holds the torch
code to a derivation, and audits the library for formulas that no binding covers.
"""

from ._audit import Audit, audit
from ._engine import (
    CITED,
    NUMERIC,
    SYMBOLIC,
    Binding,
    BindingResult,
    Check,
    Derivation,
    From,
    Integers,
    LogUniform,
    Result,
    Step,
    StepResult,
    Uniform,
    sound_rewrite,
    sound_rewrites,
)
from ._registry import (
    bindings,
    bindings_of,
    by_topic,
    checks,
    derivations,
    get,
    register,
    run,
    select,
)
from ._render import render_markdown

__all__ = [
    "Audit",
    "Binding",
    "BindingResult",
    "From",
    "Integers",
    "LogUniform",
    "Uniform",
    "audit",
    "sound_rewrite",
    "sound_rewrites",
    "bindings",
    "bindings_of",
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
