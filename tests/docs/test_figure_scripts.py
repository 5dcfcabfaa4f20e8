"""Every figure script in docs/figures runs in --quick mode and writes its image, so none of
them rots; and each has its committed image beside it, which the pages show."""

import pathlib
import subprocess
import sys

import pytest

FIGURES = pathlib.Path(__file__).resolve().parents[2] / "docs" / "figures"
SCRIPTS = sorted(p.name for p in FIGURES.glob("*.py"))


@pytest.mark.parametrize("script", SCRIPTS)
def test_figure_script_runs_quick(script, tmp_path):
    out = tmp_path / script.replace(".py", ".png")
    result = subprocess.run(
        [sys.executable, str(FIGURES / script), "--quick", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert out.is_file() and out.stat().st_size > 1000, f"{script} wrote no image to {out}"


@pytest.mark.parametrize("script", SCRIPTS)
def test_figure_script_has_its_committed_image(script):
    image = FIGURES / script.replace(".py", ".png")
    assert image.is_file(), f"{script}: run it (without --quick) to write {image.name}"
