"""The code examples of the README, the core and the family pages run as written (each block of a page
in order, in one namespace, as a reader would paste them)."""

import re
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
PAGES = ["README.md", "docs/index.md", "docs/verification.md"] + sorted(
    str(p.relative_to(ROOT))
    for folder in ("core", "families")
    for p in (ROOT / "docs" / folder).glob("*.md")
)
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


@pytest.mark.parametrize("page", PAGES)
def test_page_examples_run(page, monkeypatch, tmp_path):
    blocks = BLOCK.findall((ROOT / page).read_text(encoding="utf-8"))
    if not blocks:
        pytest.skip(f"{page} has no python example")
    monkeypatch.chdir(tmp_path)  # an example that writes a file writes it here
    previous = torch.get_default_dtype()
    namespace: dict = {"__name__": "__example__"}
    failures = []
    try:
        for i, code in enumerate(blocks):
            try:
                exec(compile(code, f"{page}[block {i}]", "exec"), namespace)
            except Exception as exc:  # report the block and stop: later blocks build on it
                failures.append(f"python block {i} failed: {exc!r}\n{code}")
                break
    finally:
        torch.set_default_dtype(previous)
    assert not failures, f"{page}: {failures[0]}"
