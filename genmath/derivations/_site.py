"""The derivation index, the topic order and the published test files of the docs site.

Everything here is built from the verification results (``Result.as_dict()``, the records
`genmath verify --json` prints) as HTML assembled by code: a title is escaped text in its
cell, so no ``|``, ``{`` or ``<`` in it can split a row or become markup.
"""

from __future__ import annotations

import html
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from ._engine import CITED, NUMERIC, SYMBOLIC

#: the statuses `Result.status` gives, in the order the index counts them
STATUSES = ("verified", "verified, cites", "unbound", "failed")

# Inline SVG icons (Material Design Icons' check-circle, book-check, alert-circle and
# close-circle paths): they draw with no emoji font and no request off the site; the word
# next to each says the same for screen readers and text browsers.
_ICON_PATHS = {
    "verified": "M12 2C6.5 2 2 6.5 2 12s4.5 10 10 10 10-4.5 10-10S17.5 2 12 2m-2 15-5-5 "
    "1.41-1.41L10 14.17l7.59-7.59L19 8z",
    "verified, cites": "M12 2C6.5 2 2 6.5 2 12s4.5 10 10 10 10-4.5 10-10S17.5 2 12 2m-2 15-5-5 "
    "1.41-1.41L10 14.17l7.59-7.59L19 8z",
    "unbound": "M13 13h-2V7h2m0 10h-2v-2h2M12 2A10 10 0 0 0 2 12a10 10 0 0 0 10 10 10 10 0 0 0 "
    "10-10A10 10 0 0 0 12 2",
    "failed": "M12 2C17.53 2 22 6.47 22 12s-4.47 10-10 10S2 17.53 2 12 6.47 2 12 2m3.59 5L12 "
    "10.59 8.41 7 7 8.41 10.59 12 7 15.59 8.41 17 12 13.41 15.59 17 17 15.59 13.41 12 17 8.41z",
}
_ICON_CLASS = {
    "verified": "gm-ok",
    "verified, cites": "gm-cites",
    "unbound": "gm-unbound",
    "failed": "gm-failed",
}


def status_badge(status: str) -> str:
    """An inline HTML badge: an SVG icon and the status in words."""
    if status not in _ICON_PATHS:
        raise ValueError(f"unknown status {status!r}; expected one of {STATUSES}")
    svg = (
        f'<svg class="gm-icon" viewBox="0 0 24 24" width="16" height="16" aria-hidden="true" '
        f'focusable="false"><path d="{_ICON_PATHS[status]}"/></svg>'
    )
    return f'<span class="gm-status {_ICON_CLASS[status]}">{svg}{html.escape(status)}</span>'


# --------------------------------------------------------------------------- areas


def area_of(dotted: str) -> str | None:
    """The part of genmath a code name belongs to: ``core: path``, ``family: diffusion``,
    ``analytic``, ``nn``; ``None`` outside genmath."""
    parts = dotted.split(".")
    if parts[0] != "genmath" or len(parts) < 2:
        return None
    if parts[1] == "schedules":  # the public alias of genmath.core.schedules
        return "core: schedules"
    if parts[1] in ("core", "families") and len(parts) > 2:
        module = parts[2].lstrip("_")
        if parts[1] == "core" and module in ("solvers",):
            module = "dynamics"  # the private solvers behind genmath.core.dynamics
        return f"{'core' if parts[1] == 'core' else 'family'}: {module}"
    return parts[1]


def areas(item) -> list[str]:
    return sorted({a for name in item.code if (a := area_of(name)) is not None})


# --------------------------------------------------------------------------- topics


def topic_title(module: str) -> str:
    """A topic's name: the first line of its module's docstring, else the module name."""
    doc = getattr(sys.modules.get(module), "__doc__", None) or ""
    paragraph = " ".join(doc.strip().split("\n\n")[0].split()) if doc.strip() else ""
    first = paragraph.split(". ")[0].rstrip(".,;: ")
    if len(first) > 90:  # a name, not a paragraph: cut at a word
        first = first[:90].rsplit(" ", 1)[0].rstrip(".,;:") + "…"
    if not first or "$" in first or "\\" in first:  # math in a name shown as plain text
        return module.rpartition(".")[2].replace("_", " ")
    return first


def topic_order(grouped: Mapping[str, Sequence]) -> dict[str, dict]:
    """``id -> {"topic", "previous", "next"}`` for every derivation: its neighbours (``(id,
    title)`` or ``None``) in the order its topic registered them."""
    out: dict[str, dict] = {}
    for module, items in grouped.items():
        chain = [item for item in items if item.id.startswith("D-")]
        for k, item in enumerate(chain):
            out[item.id] = {
                "topic": topic_title(module),
                "previous": (chain[k - 1].id, chain[k - 1].title) if k > 0 else None,
                "next": (chain[k + 1].id, chain[k + 1].title) if k + 1 < len(chain) else None,
            }
    return out


# --------------------------------------------------------------------------- index


def _cell(value, cls: str = "") -> str:
    attr = f' class="{cls}"' if cls else ""
    return f"<td{attr}>{value}</td>"


def _filter_controls(all_areas: Iterable[str]) -> str:
    options = ['<option value="">all of genmath</option>']
    for area in sorted(all_areas, key=lambda a: (not a.startswith("core"), a)):
        options.append(f'<option value="{html.escape(area)}">{html.escape(area)}</option>')
    statuses = ['<option value="">any status</option>'] + [
        f'<option value="{html.escape(s)}">{html.escape(s)}</option>' for s in STATUSES
    ]
    return (
        '<form class="gm-index-filter" onsubmit="return false">'
        '<label>Code in <select data-gm-filter="area">' + "".join(options) + "</select></label> "
        '<label>Status <select data-gm-filter="status">' + "".join(statuses) + "</select></label> "
        '<span class="gm-index-shown" aria-live="polite"></span></form>'
    )


def _summary(derivation_results: Sequence[dict], check_results: Sequence[dict]) -> str:
    by_status = {s: sum(1 for r in derivation_results if r["status"] == s) for s in STATUSES}
    steps = {
        tag: sum(r["counts"].get(tag, 0) for r in derivation_results)
        for tag in (SYMBOLIC, NUMERIC, CITED)
    }
    bindings = sum(len(r["bindings"]) for r in derivation_results)
    bindings_ok = sum(1 for r in derivation_results for b in r["bindings"] if b["ok"])
    checks_ok = sum(1 for r in check_results if r["ok"])
    parts = ", ".join(f"{n} {html.escape(s)}" for s, n in by_status.items() if n)
    return (
        f'<p class="gm-index-summary"><strong>{len(derivation_results)} derivations</strong>: '
        f"{parts}. Their steps: {steps[SYMBOLIC]} proved by sympy (symbolic), "
        f"{steps[NUMERIC]} checked at random points (numeric), {steps[CITED]} cited from the "
        f"literature (not verified). {bindings_ok} of {bindings} bindings hold the torch code "
        f"to its derivation. <strong>{len(check_results)} exact-numeric checks</strong>: "
        f"{checks_ok} pass.</p>"
    )


def index_page(derivations: Sequence, checks: Sequence, results: Mapping[str, dict]) -> str:
    """The Markdown (prose and an HTML table) of ``derivations/index.md``."""
    all_areas = {a for item in [*derivations, *checks] for a in areas(item)}
    rows = []
    for d in derivations:
        r = results[d.id]
        counts = r["counts"]
        bound = r["bindings"]
        bindings = (
            f"{sum(1 for b in bound if b['ok'])}/{len(bound)}" if bound else "none"
        )
        rows.append(
            f'<tr id="{d.id}" data-area="{html.escape("|".join(areas(d)))}" '
            f'data-status="{html.escape(r["status"])}">'
            + _cell(f'<a href="{d.id}/"><code>{d.id}</code></a>', "gm-id")
            + _cell(status_badge(r["status"]), "gm-status-cell")
            + _cell(html.escape(d.title), "gm-title")
            + _cell(len(r["steps"]), "gm-num")
            + _cell(counts.get(SYMBOLIC, 0), "gm-num")
            + _cell(counts.get(NUMERIC, 0), "gm-num")
            + _cell(counts.get(CITED, 0), "gm-num")
            + _cell(bindings, "gm-num")
            + "</tr>"
        )
    derivation_table = (
        '<div class="gm-table-scroll"><table class="gm-index" data-gm-index="derivations">'
        "<thead><tr><th>id</th><th>status</th><th>title</th><th>steps</th><th>symbolic</th>"
        "<th>numeric</th><th>cited</th><th>bindings</th></tr></thead><tbody>"
        + "".join(rows)
        + "</tbody></table></div>"
    )
    check_rows = []
    for c in checks:
        r = results[c.id]
        backs = (
            f'<a href="{c.derivation}/"><code>{c.derivation}</code></a>'
            if c.derivation in results
            else "—"
        )
        check_rows.append(
            f'<tr id="{c.id}" data-area="{html.escape("|".join(areas(c)))}" '
            f'data-status="{html.escape(r["status"])}">'
            + _cell(f"<code>{c.id}</code>", "gm-id")
            + _cell(status_badge(r["status"]), "gm-status-cell")
            + _cell(html.escape(c.title), "gm-title")
            + _cell(backs)
            + _cell(html.escape(r["steps"][0]["method"]))
            + "</tr>"
        )
    check_table = (
        '<div class="gm-table-scroll"><table class="gm-index" data-gm-index="checks">'
        "<thead><tr><th>id</th><th>status</th><th>title</th><th>backs</th><th>result</th></tr>"
        "</thead><tbody>" + "".join(check_rows) + "</tbody></table></div>"
    )
    derivation_results = [results[d.id] for d in derivations]
    check_results = [results[c.id] for c in checks]
    return "\n".join(
        [
            "# Derivations",
            "",
            "Every formula genmath relies on is derived here as a chain of steps that sympy "
            "checks, and *bound* to the torch code that computes it: the code is evaluated at "
            "random points of its domain and compared with the derived expression (see "
            "[How verification works](../verification.md)). Cite a derivation by its id. The "
            "statuses below are the results of the verification this site was built from; "
            "`genmath verify` (or `genmath verify --json`) runs the same checks.",
            "",
            "*verified*: every step is proved (symbolic) or checked (numeric) and every binding "
            "holds; *verified, cites*: the same, with some step taken from the literature; "
            "*unbound*: the chain holds but no binding ties it to the code yet; *failed*: a "
            "step or a binding failed.",
            "",
            _summary(derivation_results, check_results),
            "",
            _filter_controls(all_areas),
            "",
            derivation_table,
            "",
            "## Exact-numeric checks",
            "",
            "Torch code compared with a closed form to float64 round-off.",
            "",
            check_table,
            "",
        ]
    )


# --------------------------------------------------------------------------- API entries

_DIRECTIVE = re.compile(r"^::: *([\w.]+)", re.MULTILINE)


def _canonical(obj) -> str | None:
    module, qualname = getattr(obj, "__module__", None), getattr(obj, "__qualname__", None)
    return f"{module}.{qualname}" if module and qualname else None


def api_entries(docs_dir: Path) -> dict[str, tuple[str, str]]:
    """``canonical dotted name -> (page, anchor)`` of every object a ``::: identifier``
    directive documents (the API pages first, then the pages with an API section), so that
    a derivation page can link the code it names to its entry."""
    from ._render import _resolve

    found: dict[str, tuple[str, str]] = {}
    pages = sorted(docs_dir.rglob("*.md"), key=lambda p: (not p.parts[-2] == "api", str(p)))
    for page in pages:
        rel = page.relative_to(docs_dir).as_posix()
        for ident in _DIRECTIVE.findall(page.read_text(encoding="utf-8")):
            obj = _resolve(ident)
            for name in {ident, _canonical(obj) if obj is not None else None} - {None}:
                found.setdefault(name, (rel, ident))
    return found


def api_link(dotted: str, entries: dict[str, tuple[str, str]]) -> tuple[str, str] | None:
    """``(page, anchor)`` of the API entry of ``dotted``: its own, or a member's anchor
    under the documented class or module that holds it."""
    from ._render import _resolve

    obj = _resolve(dotted)
    names = [dotted] + ([c] if obj is not None and (c := _canonical(obj)) else [])
    for name in names:
        parts = name.split(".")
        for k in range(len(parts), 1, -1):
            head = ".".join(parts[:k])
            if head in entries:
                page, ident = entries[head]
                # mkdocstrings renders a member only where it has a docstring of its own:
                # stop at the last documented member (a `forward` links to its class)
                anchor, obj = ident, _resolve(head)
                for part in parts[k:]:
                    obj = getattr(obj, part, None)
                    doc = getattr(getattr(obj, "__func__", obj), "__doc__", None)
                    if obj is None or not doc or doc == getattr(type(obj), "__doc__", None):
                        break
                    anchor = f"{anchor}.{part}"
                return page, anchor
    return None


# --------------------------------------------------------------------------- test files


def test_page_path(test_file: str) -> str:
    """Where the page publishing ``tests/x/test_y.py`` is generated (``tests/x/test_y.md``)."""
    return test_file.removesuffix(".py") + ".md"


def test_page(test_file: str, source: str) -> str:
    depth = test_file.count("/")
    back = "../" * depth + "derivations/index.md"
    fence = "````"
    while fence in source:
        fence += "`"
    return "\n".join(
        [
            f"# {test_file}",
            "",
            f"The test file as the library ships it; the [derivations]({back}) that name it "
            "link here. Run it with `pytest " + test_file + "`.",
            "",
            f'{fence}python title="{test_file}" linenums="1"',
            source.rstrip(),
            fence,
            "",
        ]
    )
