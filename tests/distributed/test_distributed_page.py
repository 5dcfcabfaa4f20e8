"""The python blocks of docs/distributed.md run as written (in order, one namespace, one
process: every genmath.distributed function is its single-process meaning there), and the
commands it shows name files that exist."""

from __future__ import annotations

import pathlib
import re

import torch

ROOT = pathlib.Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "distributed.md"
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def test_page_examples_run(monkeypatch, tmp_path):
    blocks = BLOCK.findall(PAGE.read_text(encoding="utf-8"))
    assert len(blocks) >= 2
    monkeypatch.chdir(tmp_path)
    previous = torch.get_default_dtype()
    namespace: dict = {"__name__": "__example__"}
    try:
        for i, code in enumerate(blocks):
            exec(compile(code, f"docs/distributed.md[block {i}]", "exec"), namespace)
    finally:
        torch.set_default_dtype(previous)


def test_commands_name_existing_scripts():
    scripts = set(re.findall(r"torchrun [^\n]*?(\S+\.py)", PAGE.read_text(encoding="utf-8")))
    assert scripts, "the page shows no torchrun command"
    for script in scripts:
        assert (ROOT / script).is_file(), script
