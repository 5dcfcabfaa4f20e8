"""The code examples of the README, the core and the family pages run as written (each block of a page
in order, in one namespace, as a reader would paste them), and print what the pages show.

What each block prints is compared with its record in ``tests/docs/example_output/``, which the
docs build shows under the block (`docs/_hooks/example_output.py`): a change to an example's code
or to what genmath computes fails here until the record is rewritten with
``GENMATH_RECORD_EXAMPLE_OUTPUT=1 pytest tests/docs/test_examples.py``, so the output on the site
is always the output of the code beside it."""

import contextlib
import io
import json
import math
import os
import re
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "docs" / "_hooks"))
from example_output import BLOCK, record_path  # noqa: E402

PAGES = ["README.md", "docs/index.md", "docs/verification.md"] + sorted(
    str(p.relative_to(ROOT))
    for folder in ("core", "families")
    for p in (ROOT / "docs" / folder).glob("*.md")
)
RECORD = bool(os.environ.get("GENMATH_RECORD_EXAMPLE_OUTPUT"))

_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")


def same_output(printed, recorded):
    """The same text, with numbers equal to round-off (1e-9, relative or absolute).

    Summation order depends on the thread count and the machine, so a printed float may
    differ in its last digits, a round-off residual (~1e-15) may change sign, and torch then
    prints ``1.`` for ``1.0000``; none of that is a drift of the example.
    """
    if printed is None or recorded is None:
        return printed == recorded
    words = [" ".join(_NUMBER.split(text)).split() for text in (printed, recorded)]
    numbers = [[float(n) for n in _NUMBER.findall(text)] for text in (printed, recorded)]
    return words[0] == words[1] and len(numbers[0]) == len(numbers[1]) and all(
        math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9) for a, b in zip(*numbers, strict=True)
    )


@pytest.mark.parametrize("page", PAGES)
def test_page_examples_run(page, monkeypatch, tmp_path):
    blocks = BLOCK.findall((ROOT / page).read_text(encoding="utf-8"))
    if not blocks:
        pytest.skip(f"{page} has no python example")
    monkeypatch.chdir(tmp_path)  # an example that writes a file writes it here
    previous = torch.get_default_dtype()
    namespace: dict = {"__name__": "__example__"}
    failures = []
    printed: dict[str, str] = {}
    try:
        for i, code in enumerate(blocks):
            out = io.StringIO()
            try:
                with contextlib.redirect_stdout(out):
                    exec(compile(code, f"{page}[block {i}]", "exec"), namespace)
            except Exception as exc:  # report the block and stop: later blocks build on it
                failures.append(f"python block {i} failed: {exc!r}\n{code}")
                break
            if out.getvalue().strip():
                printed[str(i)] = out.getvalue()
    finally:
        torch.set_default_dtype(previous)
    assert not failures, f"{page}: {failures[0]}"
    path = record_path(page)
    if RECORD:
        if printed:
            path.write_text(json.dumps(printed, indent=1, ensure_ascii=False) + "\n",
                            encoding="utf-8")
        elif path.exists():
            path.unlink()
        return
    recorded = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    changed = sorted(set(printed) | set(recorded), key=int)
    changed = [k for k in changed if not same_output(printed.get(k), recorded.get(k))]
    assert not changed, (
        f"{page}: python blocks {changed} print other than the page shows "
        f"(first: {printed.get(changed[0])!r} vs recorded {recorded.get(changed[0])!r}); if the "
        f"change is meant, re-record with GENMATH_RECORD_EXAMPLE_OUTPUT=1"
    )


def test_the_build_shows_each_recorded_output_under_its_block():
    from example_output import with_outputs
    from mkdocs.exceptions import PluginError

    page = "Text.\n\n```python\nprint(1)\n```\n\nMore.\n\n```python\nx = 2\n```\n"
    shown = with_outputs(page, {"0": "1\n"}, "p.md")
    assert shown.index('```text title="Output"\n1\n```') > shown.index("print(1)")
    assert shown.index('title="Output"') < shown.index("More.")
    assert shown.count('title="Output"') == 1  # the silent block shows nothing
    with pytest.raises(PluginError, match=r"blocks \['2'\]"):
        with_outputs(page, {"2": "stale"}, "p.md")


def test_every_record_belongs_to_a_page_that_is_tested():
    tested = {record_path(p).name for p in PAGES}
    stray = sorted(p.name for p in record_path("x").parent.glob("*.json") if p.name not in tested)
    assert not stray, f"example-output records of no tested page: {stray}"
