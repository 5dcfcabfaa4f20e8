"""Markdown pages for derivations, rendered from the same sympy expressions that were verified."""

from __future__ import annotations

import importlib
import inspect
import textwrap

import sympy as sp

from ._engine import CITED, NUMERIC, SYMBOLIC, Derivation, Result

_REL = {"=": "=", "<=": r"\le", ">=": r"\ge"}


def latex(expr) -> str:
    """LaTeX of a sympy expression as shown on the site."""
    return sp.latex(expr)


def _assumption_text(symbol: sp.Symbol) -> str:
    facts = [
        name
        for name in ("positive", "nonnegative", "negative", "integer", "real")
        if getattr(symbol, f"is_{name}")
    ]
    # positive implies real and nonnegative: say the strongest fact only
    for strong, weak in (("positive", "nonnegative"), ("positive", "real"), ("negative", "real")):
        if strong in facts and weak in facts:
            facts.remove(weak)
    if "integer" in facts and "real" in facts:
        facts.remove("real")
    return ", ".join(facts) if facts else "complex (no assumption)"


def _resolve(dotted: str):
    module_name, _, attr = dotted.rpartition(".")
    while module_name:
        try:
            obj = importlib.import_module(module_name)
            break
        except ImportError:
            module_name, _, head = module_name.rpartition(".")
            attr = f"{head}.{attr}"
    else:
        return None
    for part in attr.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            return None
    return obj


def _source_block(dotted: str) -> str:
    obj = _resolve(dotted)
    if obj is None:
        return f"- `{dotted}` (not found: this page is stale or the name moved)\n"
    try:
        source = textwrap.dedent(inspect.getsource(obj))
        file = inspect.getsourcefile(obj) or ""
        file = file[file.rfind("genmath/") :] if "genmath/" in file else file
    except (OSError, TypeError):
        return f"- `{dotted}`\n"
    body = textwrap.indent(f"```python\n{source.rstrip()}\n```", "    ")
    return f'??? abstract "`{dotted}` ({file})"\n\n{body}\n\n'


def render_markdown(derivation: Derivation, result: Result | None = None) -> str:
    """A derivation page: statement, verified result, steps with reasons and tags, code, tests."""
    from ..references import format_reference

    d = derivation
    chain = d.chain()
    lines = [f"# {d.title}", "", f"**Id:** `{d.id}` · cite as *genmath {d.id}*", ""]
    if result is not None:
        counts = ", ".join(
            f"{result.count(t)} {t}" for t in (SYMBOLIC, NUMERIC, CITED) if result.count(t)
        )
        if result.ok:
            lines += [f'!!! success "Verified at build time ({counts}; {result.seconds:.2f} s)"', ""]
        else:
            lines += [f'!!! failure "Verification FAILED ({counts})"', ""]
            for s in result.failures():
                lines.append(f"    Step {s.index}: residual `{s.residual}`")
            lines.append("")
    lines += ["## Statement", "", d.statement.strip(), ""]
    # The displayed result is the chain's first expression related to its last: exactly what
    # the steps established (every step must be '=' for the chain to give an equality).
    relations = {step.relation for _, step in chain if step.lhs is None} - {"="}
    rel = _REL[relations.pop()] if len(relations) == 1 else "="
    if all(step.lhs is None for _, step in chain) and len(relations) <= 1:
        lines += ["$$", f"{latex(d.start)} {rel} {latex(chain[-1][1].rhs)}", "$$", ""]
    if d.symbols:
        lines += ["**Symbols and assumptions.**", ""]
        for s in d.symbols:
            lines.append(f"- ${latex(s)}$: {_assumption_text(s)}")
        lines.append("")
    lines += ["## Steps", ""]
    by_index = {s.index: s for s in result.steps} if result is not None else {}
    for i, (lhs, step) in enumerate(chain, 1):
        tag = step.tag
        status = by_index.get(i)
        how = f"{tag}"
        if status is not None and tag != CITED:
            how += f", {status.method}" + ("" if status.ok else " — **FAILED**")
        if tag == CITED:
            how += f": {step.theorem}"
        lines.append(f"**{i}.** {step.reason.strip()} *({how})*")
        lines += ["", "$$", f"{latex(lhs)} {_REL[step.relation]} {latex(step.rhs)}", "$$", ""]
    if d.code:
        lines += ["## Code that implements it", ""]
        for name in d.code:
            lines.append(_source_block(name))
    if d.tests:
        lines += ["## Tests that check it", ""]
        lines += [f"- `{t}`" for t in d.tests]
        lines.append("")
    if d.references:
        lines += ["## References", ""]
        lines += [f"- {format_reference(k)} (`genmath cite {k}`)" for k in d.references]
        lines.append("")
    return "\n".join(lines)
