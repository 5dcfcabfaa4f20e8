"""Markdown pages for derivations, rendered from the same sympy expressions that were verified.

A page shows the verification's own record (``Result.as_dict()``): the status, each step's
check named in words, and the bindings that hold the torch code to the derivation (which
functions they called, on which domain, with what error). The math is printed by the site's
LaTeX printer (`genmath.derivations._latex`), long equations broken over lines.
"""

from __future__ import annotations

import html
import importlib
import inspect
import re
import textwrap

from . import _latex, _linebreak
from ._engine import CITED, NUMERIC, SYMBOLIC, Derivation, Result, sound_rewrites

_REL = {"=": "=", "<=": r"\le", ">=": r"\ge"}
#: display equations are broken to lines of about this many printed characters (the text
#: column of a derivation page at 1400 px is 688 px, some 62 characters as `_linebreak.tex_width`
#: counts them: the rest is margin for its estimate)
DISPLAY_WIDTH = 52

# what each of the engine's default strategies does, for a reader
_STRATEGY_WORDS = {
    "expand": "sympy's expand",
    "cancel": "sympy's cancel",
    "together": "sympy's together and cancel",
    "expand_log": "sympy's expand_log and cancel",
    "powsimp": "sympy's powsimp and cancel",
    "simplify": "sympy's simplify",
}


def latex(expr) -> str:
    """LaTeX of a sympy expression as shown on the site."""
    return _latex.latex(expr)


def _assumption_text(symbol) -> str:
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


def _md_text(text: str) -> str:
    """Plain text that Markdown shows as it is (a title with ``_``, ``*`` or ``[``)."""
    text = html.escape(text, quote=False)
    return re.sub(r"([\\`*_\[\]#])", r"\\\1", text)


#: ``canonical name -> (page, anchor)`` of the documented API (`_site.api_entries`); the
#: docs build sets it, so that code names link to their entries
API_ENTRIES: dict[str, tuple[str, str]] = {}


def _code_link(dotted: str) -> str:
    """The name linked to its API entry where a page documents it, else plain code."""
    from ._site import api_link

    found = api_link(dotted, API_ENTRIES) if API_ENTRIES else None
    if found is None:
        return f"`{dotted}`"
    page, anchor = found
    return f"[`{dotted}`](../{page}#{anchor})"


def _source_block(dotted: str) -> str:
    obj = _resolve(dotted)
    if obj is None:
        return f"- `{dotted}` (not found: this page is stale or the name moved)\n"
    try:
        source = textwrap.dedent(inspect.getsource(obj))
        file = inspect.getsourcefile(obj) or ""
        _, line = inspect.getsourcelines(obj)
        file = file[file.rfind("genmath/") :] if "genmath/" in file else file.rpartition("/")[2]
    except (OSError, TypeError):
        return f"- {_code_link(dotted)}\n"
    body = textwrap.indent(f"```python\n{source.rstrip()}\n```", "    ")
    return (
        f"- {_code_link(dotted)}, `{file}` line {line}\n\n"
        f'    ??? abstract "Source of {dotted}"\n\n{textwrap.indent(body, "    ")}\n\n'
    )


def _method_words(step, status: dict | None) -> str:
    """How a step was checked, in words: no ``<lambda>``, no private helper names."""
    if step.tag == CITED:
        return f"cited, not verified: {step.theorem}"
    if status is None:
        return step.tag
    if status.get("status") == "failed" or not status.get("ok", True):
        return f"{step.tag} — **FAILED** ({status.get('method', '')})"
    if step.tag == NUMERIC:
        return f"numeric: both sides agree at {status['method']}"
    method = status["method"]
    if method in _STRATEGY_WORDS:
        return f"symbolic: proved by {_STRATEGY_WORDS[method]}"
    fn = step.method
    if fn is not None:
        reason = sound_rewrites().get(f"{fn.__module__}.{fn.__qualname__}")
        if reason:
            return f"symbolic: proved by sympy after a sound rewrite ({reason})"
        return (
            "symbolic: proved by sympy after a rewrite whose value was checked at random points"
        )
    return "symbolic: proved by sympy"


_STEP_REF = re.compile(r"\bsteps?\s+(\d+)(?:\s*(?:[–-]|to|and)\s*(\d+))?", re.IGNORECASE)


def check_step_references(derivation: Derivation, text: str | None = None) -> None:
    """A statement that names its steps by number ("steps 5–7") names steps that exist."""
    n = len(derivation.steps)
    for m in _STEP_REF.finditer(text if text is not None else derivation.statement):
        for number in (m.group(1), m.group(2)):
            if number is not None and not 1 <= int(number) <= n:
                raise ValueError(
                    f"{derivation.id}: its statement refers to {m.group(0)!r} but it has "
                    f"{n} steps"
                )


def _as_dict(result) -> dict | None:
    if result is None or isinstance(result, dict):
        return result
    if isinstance(result, Result):
        return result.as_dict()
    raise TypeError(f"expected a Result or its as_dict(), got {type(result).__name__}")


def _counts_text(result: dict) -> str:
    words = {SYMBOLIC: "symbolic", NUMERIC: "numeric", CITED: "cited"}
    counts = result.get("counts", {})
    return ", ".join(f"{counts[t]} {w}" for t, w in words.items() if counts.get(t))


def _status_admonition(result: dict) -> list[str]:
    counts = _counts_text(result)
    status = result["status"]
    n_bindings = len(result.get("bindings", []))
    bound = f"{n_bindings} binding{'s' if n_bindings != 1 else ''}"
    if status == "verified":
        return [f'!!! success "Verified ({counts}; {bound})"', ""]
    if status == "verified, cites":
        return [
            f'!!! success "Verified, with cited steps ({counts}; {bound})"',
            "",
            "    The cited steps are taken from the literature and are not verified here.",
            "",
        ]
    if status == "unbound":
        return [
            f'!!! warning "Unbound ({counts})"',
            "",
            "    Every step holds, but no binding ties the derivation to the code yet.",
            "",
        ]
    lines = [f'!!! failure "Verification FAILED ({counts}; {bound})"', ""]
    for s in result["steps"]:
        if not s["ok"]:
            lines.append(f"    - Step {s['index']}: `{s['residual']}`")
    for b in result.get("bindings", []):
        if not b["ok"]:
            lines.append(f"    - Binding of `{', '.join(b['code'])}`: `{b['residual']}`")
    return [*lines, ""]


def _pager(neighbours: dict | None) -> list[str]:
    """Previous / index / next links (HTML: a title is text, never Markdown)."""
    parts = []
    if neighbours and neighbours.get("previous"):
        pid, ptitle = neighbours["previous"]
        parts.append(
            f'<a class="gm-prev" href="../{pid}/" title="{html.escape(ptitle)}">'
            f"← previous: {html.escape(ptitle)}</a>"
        )
    topic = html.escape(neighbours["topic"]) if neighbours else "derivations"
    parts.append(f'<a class="gm-up" href="../">all derivations</a> <span>({topic})</span>')
    if neighbours and neighbours.get("next"):
        nid, ntitle = neighbours["next"]
        parts.append(
            f'<a class="gm-next" href="../{nid}/" title="{html.escape(ntitle)}">'
            f"next: {html.escape(ntitle)} →</a>"
        )
    return ['<nav class="gm-pager">' + " ".join(parts) + "</nav>", ""]


def _binding_lines(bindings: list[dict]) -> list[str]:
    lines = ["## Bindings to the code", ""]
    if not bindings:
        return [*lines, "No binding yet: the code below is not checked against this derivation.", ""]
    lines += [
        "Each binding evaluates the torch code in float64 at random points of the whole domain "
        "it accepts and compares it with the derived expression.",
        "",
    ]
    for k, b in enumerate(bindings, 1):
        verdict = "holds" if b["ok"] else "**FAILED**"
        error = b.get("max_error")
        error_text = f"max error {error:.1e}" if isinstance(error, int | float) else "no error"
        lines.append(f"{k}. **{verdict}**: " + ", ".join(_code_link(c) for c in b["code"]))
        if b.get("description"):
            lines.append(f"    — {b['description'].strip()}")
        lines.append("")
        called = [c for c in b.get("called", ()) if c not in b["code"]]
        if called:
            lines.append("    - also called: " + ", ".join(_code_link(c) for c in called))
        if b.get("domain"):
            domain = "; ".join(f"`{s}` in {v}" for s, v in b["domain"].items())
            lines.append(f"    - domain: {domain}")
        if b.get("where"):
            where = "; ".join(f"`{s}` = `{v}`" for s, v in b["where"].items())
            lines.append(f"    - where {where}")
        lines.append(f"    - {b['samples']} random points, {error_text}")
        if b.get("generated"):
            lines.append(
                "    - the code is generated from the derived expression (compiled from sympy), "
                "so the binding checks the compilation"
            )
        if not b["ok"] and b.get("residual"):
            lines.append(f"    - failure: `{b['residual']}`")
        lines.append("")
    return lines


def _reference_line(key: str) -> str:
    from ..references import REFERENCES, format_reference

    fields = REFERENCES[key][1]
    links = []
    if fields.get("doi"):
        links.append(f"[doi:{fields['doi']}](https://doi.org/{fields['doi']})")
    if fields.get("eprint"):
        links.append(f"[arXiv:{fields['eprint']}](https://arxiv.org/abs/{fields['eprint']})")
    if fields.get("url") and not links:
        links.append(f"[link]({fields['url']})")
    tail = (" " + " · ".join(links)) if links else ""
    return f"- {format_reference(key)}{tail} (`genmath cite {key}`)"


def cite_block(derivation: Derivation) -> list[str]:
    """A BibTeX entry for the derivation, then those of the papers it rests on."""
    from .. import __version__
    from ..references import bibtex

    key = "genmath-" + derivation.id.removeprefix("D-")
    own = textwrap.dedent(
        f"""\
        @misc{{{key},
          title        = {{{{genmath}} {derivation.id}: {derivation.title.replace("{", "").replace("}", "")}}},
          author       = {{{{The genmath authors}}}},
          howpublished = {{genmath {__version__}, derivation {derivation.id}}},
          note         = {{Verified with sympy; `genmath verify --only {derivation.id}`}},
        }}"""
    )
    lines = ["## Cite this", "", "```bibtex", own]
    for ref in derivation.references:
        lines += ["", bibtex(ref)]
    return [*lines, "```", ""]


def render_markdown(
    derivation: Derivation, result: Result | dict | None = None, *, neighbours: dict | None = None
) -> str:
    """A derivation page: status, statement, result, steps with how each was checked,
    bindings, code, tests, references and a BibTeX entry. ``result`` is the verification's
    `Result` or its ``as_dict()``; ``neighbours`` the topic's previous/next derivations."""
    d = derivation
    check_step_references(d)
    record = _as_dict(result)
    chain = d.chain()
    lines = [f"# {_md_text(d.title)}", "", *_pager(neighbours)]
    lines += [f"**Id:** `{d.id}` · cite as *genmath {d.id}* (BibTeX [below](#cite-this))", ""]
    if record is not None:
        lines += _status_admonition(record)
    lines += ["## Statement", "", d.statement.strip(), ""]
    # The displayed result is the chain's first expression related to its last: exactly what
    # the steps established (every step must be '=' for the chain to give an equality).
    relations = {step.relation for _, step in chain if step.lhs is None} - {"="}
    rel = next(iter(relations)) if len(relations) == 1 else "="
    if all(step.lhs is None for _, step in chain) and len(relations) <= 1:
        # the chain's first lhs: the start with a `From` resolved (d.start itself would
        # print as the dataclass's repr)
        body = _linebreak.display(chain[0][0], rel, chain[-1][1].rhs, width=DISPLAY_WIDTH)
        lines += ["$$", body, "$$", ""]
    if d.symbols:
        lines += ["**Symbols and assumptions.**", ""]
        for s in d.symbols:
            lines.append(f"- ${latex(s)}$: {_assumption_text(s)}")
        lines.append("")
    lines += ["## Steps", ""]
    by_index = {s["index"]: s for s in record["steps"]} if record is not None else {}
    for i, (lhs, step) in enumerate(chain, 1):
        how = _method_words(step, by_index.get(i))
        if step.tag == CITED and step.reference:
            how += f" [{step.reference}]"
        lines.append(f"**{i}.** {step.reason.strip()} *({how})*")
        continued = i > 1 and step.lhs is None
        body = _linebreak.display(lhs, step.relation, step.rhs, width=DISPLAY_WIDTH,
                              continued=continued)
        lines += ["", "$$", body, "$$", ""]
    if record is not None:
        lines += _binding_lines(record.get("bindings", []))
    if d.code:
        lines += ["## Code that implements it", ""]
        for name in d.code:
            lines.append(_source_block(name))
    if d.tests:
        lines += ["## Tests that check it", ""]
        lines += [f"- [`{t}`](../{t.removesuffix('.py')}.md)" for t in d.tests]
        lines.append("")
    if d.references:
        lines += ["## References", ""]
        lines += [_reference_line(k) for k in d.references]
        lines.append("")
    lines += cite_block(d)
    lines += _pager(neighbours)
    return "\n".join(lines)
