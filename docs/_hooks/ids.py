"""Turn every derivation and check id on the site (``D-…``, ``C-…``) into a link.

One hook for every page: hand-written prose, docstrings rendered by mkdocstrings, the
generated derivation pages (statements, reasons), the source listings. A derivation id links
to its page, a check id to its row of the index. An id that names nothing is a broken
citation: it is logged as a warning, which fails ``mkdocs build --strict``. Ids inside code
listings are linked when they exist and left alone otherwise (a test file may plant a fake id
on purpose).
"""

from __future__ import annotations

import logging
import posixpath
import re

log = logging.getLogger("mkdocs.hooks.genmath_ids")

# an id: D- or C- and lowercase words joined by '-' (f-GAN ids carry a '_'); not part of a
# longer word ("2D-", "ODE-") and not ending in '-'
ID = re.compile(r"(?<![\w\-./#])([DC]-[a-z0-9]+(?:[-_][a-z0-9]+)*)(?![\w-])")
_TOKEN = re.compile(r"(<!--.*?-->|<[^>]+>)", re.DOTALL)
_TAG = re.compile(r"<\s*(/?)\s*([a-zA-Z][\w-]*)([^>]*)>")
# elements whose text is never touched: links already, scripts, and math source (KaTeX
# renders it in the browser; a tag inside would break the formula)
_SKIP = {"a", "script", "style", "textarea", "title", "svg"}
_CODE = {"pre", "code"}
_VOID = {"br", "img", "hr", "input", "meta", "link", "wbr", "source", "col", "area", "base"}

_known: dict[str, str] | None = None


def _registry() -> dict[str, str]:
    """``id -> site path`` of every registered derivation and check."""
    global _known
    if _known is None:
        from genmath import derivations as registry

        _known = {d.id: f"derivations/{d.id}/" for d in registry.derivations()}
        _known.update({c.id: f"derivations/#{c.id}" for c in registry.checks()})
    return _known


def _href(target: str, page_url: str) -> str:
    here = page_url.rstrip("/") or "."
    path, _, anchor = target.partition("#")
    rel = posixpath.relpath(path or ".", here)
    rel = "" if rel == "." else rel.rstrip("/") + "/"
    return (rel or "./") + (f"#{anchor}" if anchor else "")


def link_ids(html: str, page_url: str, where: str = "") -> tuple[str, list[str]]:
    """``html`` with every known id outside links and math linked; and the unknown ids
    mentioned outside code listings."""
    known = _registry()
    unknown: list[str] = []
    out: list[str] = []
    stack: list[tuple[str, bool, bool]] = []  # open elements: (tag, skip inside, code inside)
    skip = code = False
    for token in _TOKEN.split(html):
        if not token:
            continue
        if token.startswith("<"):
            out.append(token)
            m = _TAG.match(token)
            if m is None:
                continue
            closing, name, attrs = m.group(1), m.group(2).lower(), m.group(3)
            if name in _VOID or attrs.rstrip().endswith("/"):
                continue
            if closing:
                if any(tag == name for tag, _, _ in stack):
                    while stack and stack.pop()[0] != name:
                        pass
                skip, code = (stack[-1][1], stack[-1][2]) if stack else (False, False)
                continue
            skip = skip or name in _SKIP or "arithmatex" in attrs or "katex" in attrs
            code = code or name in _CODE
            stack.append((name, skip, code))
            continue
        if skip or ("D-" not in token and "C-" not in token):
            out.append(token)
            continue

        def replace(m: re.Match, code: bool = code) -> str:
            ident = m.group(1)
            if ident in known:
                href = _href(known[ident], page_url)
                return f'<a class="gm-id" href="{href}">{ident}</a>'
            if not code:
                unknown.append(ident)
                return ident
            # in a listing (an example, a test planting a fake id): marked, not linked
            return f'<span class="gm-unregistered-id" title="not a registered id">{ident}</span>'


        out.append(ID.sub(replace, token))
    return "".join(out), unknown


def on_page_content(html, page, config, files):
    linked, unknown = link_ids(html, page.url)
    for ident in sorted(set(unknown)):
        log.warning(
            "%s mentions %s, which is no registered derivation or check (a typo, or a "
            "derivation that was renamed or removed)", page.file.src_uri, ident
        )
    return linked
