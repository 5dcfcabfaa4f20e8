"""The "Test your own code" page runs as written and prints what it shows."""

import contextlib
import io
import re
from pathlib import Path

import torch

PAGE = Path(__file__).resolve().parents[2] / "docs" / "testing.md"
EXAMPLE = re.compile(r"^```python\n(.*?)^```\n\n```text\n(.*?)^```", re.S | re.M)
NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")


def _same(shown: str, printed: str) -> bool:
    """Token by token: words equal, numbers within 2 % (the last digits of a float may move
    between BLAS builds; a verdict, a column or a message may not)."""
    a, b = shown.split(), printed.split()
    if len(a) != len(b):
        return False
    for x, y in zip(a, b, strict=True):
        x, y = x.strip(",;()"), y.strip(",;()")
        if NUMBER.match(x) and NUMBER.match(y):
            if abs(float(x) - float(y)) > 2e-2 * max(abs(float(x)), abs(float(y))) + 1e-6:
                return False
        elif x != y:
            return False
    return True


def test_the_page_examples_run_and_print_their_shown_output(monkeypatch, tmp_path):
    examples = EXAMPLE.findall(PAGE.read_text(encoding="utf-8"))
    assert len(examples) >= 6
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "__example__"}
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float32)  # as in a reader's session
    try:
        for i, (code, shown) in enumerate(examples):
            buffer = io.StringIO()
            with contextlib.redirect_stdout(buffer):
                exec(compile(code, f"testing.md[example {i}]", "exec"), namespace)
            assert _same(shown, buffer.getvalue()), (
                f"example {i} printed\n{buffer.getvalue()}\nbut the page shows\n{shown}"
            )
    finally:
        torch.set_default_dtype(previous)
