"""Read a built site as a reader would, in headless Chromium, and count what fails them.

    python tests/docs/site_report.py SITE_DIR [--json OUT]

Counts: raw or erroring math, unlinked id mentions, derivation pages with no link in
their body (dead ends), derivations no page other than the index links, display
equations and code blocks that scroll sideways at 1400 px, pages wider than a 420 px
viewport outside scroll containers, and broken rows of the derivation index. The browser
tests (`tests/docs/test_site.py`) assert the same quantities; this script reports them
(the before/after figures of issue 17).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import functools
import http.server
import json
import os
import queue
import re
import shutil
import sys
import tempfile
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _browser import Browser  # noqa: E402

PROBE = (Path(__file__).resolve().parent / "_probe.js").read_text(encoding="utf-8")
INDEX_ROWS = r"""
(() => [...document.querySelectorAll("article table")].map((table, k) => {
  const head = [...table.querySelectorAll("thead th")].map(th => th.innerText.trim());
  const rows = [...table.querySelectorAll("tbody tr")];
  return {name: table.dataset.gmIndex || `table ${k}`, head,
    rows: rows.map(tr => [...tr.children].map(td => td.innerText.trim())),
    recorded: Object.fromEntries(rows.map(tr => [
      (tr.children[0] || {innerText: ""}).innerText.trim(), tr.dataset.status || null]))};
}))()
"""
INDEX_ICONS = "document.querySelectorAll('article table svg.gm-icon').length"
# Type a query into material's search box and return the first result's address.
SEARCH = r"""
(query) => new Promise(done => {
  const input = document.querySelector("input.md-search__input");
  if (!input) return done(null);
  const t0 = Date.now();
  (function ask() {
    input.value = query;
    input.dispatchEvent(new Event("focus"));
    input.dispatchEvent(new KeyboardEvent("keyup", {key: "e"}));
    input.dispatchEvent(new Event("input", {bubbles: true}));
    setTimeout(() => {
      const first = document.querySelector(".md-search-result__list a[href]");
      if (first) return done(first.href);
      if (Date.now() - t0 > 240000) return done(null);  // the index builds in a worker: slow under load
      ask();
    }, 250);
  })();
})
"""


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def serve(site: Path):
    handler = functools.partial(_Quiet, directory=str(site))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd, f"http://127.0.0.1:{httpd.server_address[1]}/"


def pages(site: Path) -> list[str]:
    """Every page of the site as a URL path (``core/paths/``), the 404 page excepted."""
    out = []
    for html in sorted(site.rglob("index.html")):
        rel = html.parent.relative_to(site).as_posix()
        if rel.startswith(("assets", "search")):
            continue
        out.append("" if rel == "." else rel + "/")
    return out


def self_id(page: str) -> str | None:
    m = re.fullmatch(r"derivations/([DC]-[a-z0-9-]+)/", page)
    return m.group(1) if m else None


# The 420 px pass is the costly half of a probe: it reads every page that is not one of the
# generated derivation or test-source pages (those share one template, so the index and one
# derivation page stand for them), which keeps one browser pass within CI's time.
NARROW_SAMPLES = ("derivations/", "derivations/D-kl-gaussian/", "derivations/D-ddpm-posterior/")


def widths_for(page: str) -> tuple[int, ...]:
    generated = page.startswith(("derivations/", "tests/"))
    return (1400, 420) if not generated or page in NARROW_SAMPLES else (1400,)


def probe(browser: Browser, base: str, page: str, widths=(1400, 420)) -> dict:
    browser.open(base + page, widths[0])
    browser.evaluate(f"window.GENMATH_SELF_ID = {json.dumps(self_id(page))}")
    out = {widths[0]: browser.evaluate(PROBE)}
    for width in widths[1:]:
        browser.viewport(width)
        browser.evaluate("new Promise(r => requestAnimationFrame(() => setTimeout(r, 50)))")
        out[width] = browser.evaluate(PROBE)
    return out


def index_rows(browser: Browser, base: str) -> tuple[list[dict], int]:
    browser.open(base + "derivations/", 1400)
    return browser.evaluate(INDEX_ROWS), browser.evaluate(INDEX_ICONS)


def search(browser: Browser, base: str, query: str) -> str | None:
    browser.open(base, 1400)
    return browser.evaluate(f"({SEARCH})({json.dumps(query)})")


def _tabs() -> int:
    """How many browsers read pages at once: ``$GENMATH_BROWSER_TABS``, else one per core
    (at least 2, at most 4: a page's load, KaTeX and the probe leave a core idle part of the
    time, and more processes than that only compete for memory)."""
    given = os.environ.get("GENMATH_BROWSER_TABS")
    if given:
        return max(1, int(given))
    return min(4, max(2, os.cpu_count() or 1))


def report(
    site: Path, chromium: str, profile: Path | None = None, progress: bool = False,
    tabs: int | None = None,
) -> dict:
    """Probe every page of ``site`` in ``tabs`` Chromium processes reading pages side by
    side (each page is read by exactly one); count what fails a reader."""
    httpd, base = serve(site)
    own_profile = profile is None
    profile = Path(tempfile.mkdtemp(prefix="genmath-chromium-")) if own_profile else profile
    all_pages = pages(site)
    todo: queue.SimpleQueue = queue.SimpleQueue()
    for page in all_pages:
        todo.put(page)
    results: dict = {}
    done = []
    lock = threading.Lock()

    def work(k: int) -> tuple | None:
        # several browsers share the machine's cores: a long page's probe can take minutes
        # on a loaded machine, where one browser alone took seconds
        browser = Browser(chromium, profile / f"tab{k}", timeout=300.0)
        try:
            while True:
                try:
                    page = todo.get_nowait()
                except queue.Empty:
                    break
                probed = probe(browser, base, page, widths_for(page))
                with lock:
                    results[page] = probed
                    done.append(page)
                    if progress:
                        print(f"[{len(done)}/{len(all_pages)}] {page}", file=sys.stderr,
                              flush=True)
            if k == 0:  # the index rows and the search, once
                return index_rows(browser, base), search(browser, base, "tweedie")
            return None
        finally:
            browser.close()

    try:
        with concurrent.futures.ThreadPoolExecutor(tabs or _tabs()) as pool:
            outcomes = list(pool.map(work, range(tabs or _tabs())))
    finally:
        httpd.shutdown()
        if own_profile:
            shutil.rmtree(profile, ignore_errors=True)
    (tables, icons), first = outcomes[0]
    results = {page: results[page] for page in all_pages}  # in the site's order
    if first:
        first = first.removeprefix(base)
    derivation_pages = [p for p in results if self_id(p) and p.startswith("derivations/D-")]
    linked_from = {}
    for page, r in results.items():
        for href in r[1400]["links"]:
            m = re.search(r"(D-[a-z0-9-]+?)(?:\.md|/|/index\.html)?(?:#.*)?$", href)
            if m and page != "derivations/":
                linked_from.setdefault(m.group(1), set()).add(page)
    counts = {
        "pages": len(results),
        "pages with raw math": sorted(p for p, r in results.items() if r[1400]["raw"]),
        "raw math mentions": sum(len(r[1400]["raw"]) for r in results.values()),
        "katex errors": sum(len(r[1400]["katexErrors"]) for r in results.values()),
        "unlinked id mentions": sum(len(r[1400]["unlinked"]) for r in results.values()),
        "pages with unlinked ids": sorted(p for p, r in results.items() if r[1400]["unlinked"]),
        "dead-end derivation pages": sum(
            1 for p in derivation_pages if not results[p][1400]["links"]
        ),
        "derivations linked only from the index": sorted(
            self_id(p) for p in derivation_pages if not (linked_from.get(self_id(p), set()) - {p})
        ),
        "display equations": sum(r[1400]["displays"] for r in results.values()),
        "display equations scrolling at 1400px": sum(
            r[1400]["displaysScrolling"] for r in results.values()
        ),
        "derivation-page display equations scrolling at 1400px": sum(
            results[p][1400]["displaysScrolling"] for p in derivation_pages
        ),
        "code blocks": sum(r[1400]["codeBlocks"] for r in results.values()),
        "code blocks scrolling at 1400px": sum(
            r[1400]["codeBlocksScrolling"] for r in results.values()
        ),
        "pages wider than 420px": sorted(
            p for p, r in results.items()
            if 420 in r and r[420]["pageWidth"] > r[420]["viewport"] + 1
        ),
        "step tags '(symbolic, )'": sum(r[1400]["text"].count("(symbolic, )") for r in
                                        results.values()),
        "private helper names in step tags": sum(
            len(re.findall(r"symbolic, _\w+", r[1400]["text"])) for r in results.values()
        ),
    }
    broken = []
    for table in tables:
        head = table["head"]
        if "status" not in [h.lower() for h in head]:
            continue
        col = [h.lower() for h in head].index("status")
        for row in table["rows"]:
            cell = row[col] if col < len(row) else ""
            if len(row) != len(head) or not re.search(r"verified|unbound|failed|✅", cell, re.I):
                broken.append(row[0] if row else "?")
    counts["broken index rows"] = broken
    counts["index status icons (svg)"] = icons
    counts["first search result for 'tweedie'"] = first
    return {"counts": counts, "pages": results, "index": tables, "index_icons": icons,
            "search": {"tweedie": first}}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("site", type=Path)
    parser.add_argument("--json", type=Path, help="write every page's probe here")
    parser.add_argument("--chromium", default=shutil.which("chromium") or "chromium")
    parser.add_argument("--tabs", type=int, help="browsers reading pages at once")
    args = parser.parse_args()
    out = report(args.site.resolve(), args.chromium, progress=True, tabs=args.tabs)
    for key, value in out["counts"].items():
        shown = f"{len(value)}: {', '.join(value)}" if isinstance(value, list) else value
        print(f"{key}: {shown}")
    if args.json:
        args.json.write_text(json.dumps(out, indent=1, default=str), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
