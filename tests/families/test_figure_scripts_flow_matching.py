"""The worked-example figure scripts of the flow-matching, consistency and MeanFlow pages run
(in --quick mode) and write their image, so none of them rots."""

import pathlib
import subprocess
import sys

import pytest

pytest.importorskip("matplotlib")

FIGURES = pathlib.Path(__file__).resolve().parents[2] / "docs" / "figures"


@pytest.mark.parametrize("script", ["reflow_2d.py", "one_step_2d.py", "flow_matching_digits.py"])
def test_figure_script_runs_quick(script, tmp_path):
    out = tmp_path / script.replace(".py", ".png")
    result = subprocess.run(
        [sys.executable, str(FIGURES / script), "--quick", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert out.exists() and out.stat().st_size > 1000
