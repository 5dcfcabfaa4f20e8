"""Generate one page per registered derivation, the index, and a page per test file.

Runs inside `mkdocs build` (mkdocs-gen-files). Every status on these pages comes from the
verification itself: the results of `genmath verify --json` when ``GENMATH_VERIFY_JSON``
names such a file (so that CI verifies once and builds the site from the same run), else a
verification run here. A derivation or check that failed fails the build, after its page
(which says what failed) was written; ``GENMATH_DOCS_ALLOW_FAILED=1`` lets a local build go
on past failures, to look at the pages while someone fixes them.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import mkdocs_gen_files

from genmath import derivations as registry
from genmath.cli import _available_cores
from genmath.derivations import _render, _site

ROOT = Path(__file__).resolve().parents[2]


def load_results(items) -> dict[str, dict]:
    """``id -> Result.as_dict()`` for every item: from ``$GENMATH_VERIFY_JSON`` where it has
    the item, verified here otherwise (an item the file lacks is verified, never assumed)."""
    results: dict[str, dict] = {}
    given = os.environ.get("GENMATH_VERIFY_JSON")
    if given:
        path = Path(given) if Path(given).is_absolute() else ROOT / given
        payload = json.loads(path.read_text(encoding="utf-8"))
        results = {r["id"]: r for r in payload["results"]}
    todo = [item for item in items if item.id not in results]
    if todo:  # one run, one process per available core, as `genmath verify` does
        results.update({r.id: r.as_dict() for r in registry.run(todo, jobs=_available_cores())})
    return results


derivations = registry.derivations()
checks = registry.checks()
results = load_results([*derivations, *checks])
topics = _site.topic_order(registry.by_topic())
_render.API_ENTRIES.update(_site.api_entries(ROOT / "docs"))

for d in derivations:
    with mkdocs_gen_files.open(f"derivations/{d.id}.md", "w") as f:
        f.write(registry.render_markdown(d, results[d.id], neighbours=topics.get(d.id)))

with mkdocs_gen_files.open("derivations/index.md", "w") as f:
    f.write(_site.index_page(derivations, checks, results))

for test_file in sorted({t for item in [*derivations, *checks] for t in item.tests}):
    source = ROOT / test_file
    if source.is_file():
        with mkdocs_gen_files.open(_site.test_page_path(test_file), "w") as f:
            f.write(_site.test_page(test_file, source.read_text(encoding="utf-8")))

failed = sorted(i for i, r in results.items() if r["status"] == "failed")
if failed:  # the pages above say which steps failed; a site claiming "verified" must not ship
    message = f"derivations or checks failed verification: {', '.join(failed)}"
    if not os.environ.get("GENMATH_DOCS_ALLOW_FAILED"):
        raise RuntimeError(message)
    print(f"WARNING (GENMATH_DOCS_ALLOW_FAILED is set): {message}", file=sys.stderr)
