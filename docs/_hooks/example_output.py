"""Show under each Python example of a page what it prints, as the examples test recorded it.

`tests/docs/test_examples.py` runs every ```` ```python ```` block of the pages it covers, in
order, and compares what each block prints with the record in
``tests/docs/example_output/`` (``GENMATH_RECORD_EXAMPLE_OUTPUT=1`` rewrites the records). This
hook puts each recorded output after its block, so what a page shows is what its code printed
when the test last passed: it cannot drift from the code, since the test fails when either
changes alone. A record naming a block the page no longer has fails the (strict) build.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from mkdocs.exceptions import PluginError

ROOT = Path(__file__).resolve().parents[2]
RECORDS = ROOT / "tests" / "docs" / "example_output"
# the blocks the examples test runs (one pattern for both, so the indices agree)
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def record_path(page: str) -> Path:
    """The record of a page given by its path from the repository root (``docs/core/paths.md``)."""
    return RECORDS / (page.removesuffix(".md").replace("/", "__") + ".json")


def with_outputs(markdown: str, outputs: dict[str, str], page: str) -> str:
    """``markdown`` with ``outputs[str(k)]`` shown after its k-th Python block."""
    blocks = list(BLOCK.finditer(markdown))
    stale = [k for k in outputs if not k.isdigit() or int(k) >= len(blocks)]
    if stale:
        raise PluginError(
            f"{page}: recorded example output for blocks {stale} it does not have "
            f"(re-record: GENMATH_RECORD_EXAMPLE_OUTPUT=1 pytest tests/docs/test_examples.py)"
        )
    pieces, last = [], 0
    for k, match in enumerate(blocks):
        pieces.append(markdown[last : match.end()])
        last = match.end()
        text = outputs.get(str(k))
        if text:
            fence = "````" if "```" in text else "```"
            pieces.append(f'\n\n{fence}text title="Output"\n{text.rstrip()}\n{fence}\n')
    pieces.append(markdown[last:])
    return "".join(pieces)


def on_page_markdown(markdown, page, config, files):
    path = record_path("docs/" + page.file.src_uri)
    if not path.is_file():
        return markdown
    return with_outputs(markdown, json.loads(path.read_text(encoding="utf-8")), page.file.src_uri)
