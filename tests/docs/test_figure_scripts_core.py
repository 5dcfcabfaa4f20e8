"""The figure scripts of the core-abstraction pages run (in --quick mode) and write their
image, so none of them rots. Family pages have their own figure-script tests."""

import pathlib
import subprocess
import sys

import pytest

FIGURES = pathlib.Path(__file__).resolve().parents[2] / "docs" / "figures"
CORE_SCRIPTS = [
    "schedules.py",
    "trajectories.py",
    "change_of_variables_density.py",
    "elbo_weighting.py",
]


@pytest.mark.parametrize("script", CORE_SCRIPTS)
def test_core_figure_script_runs_quick(script, tmp_path):
    out = tmp_path / script.replace(".py", ".png")
    result = subprocess.run(
        [sys.executable, str(FIGURES / script), "--quick", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert out.is_file() and out.stat().st_size > 1000, f"{script} wrote no image to {out}"


def test_every_figure_script_is_run_by_some_test():
    tests = pathlib.Path(__file__).resolve().parents[1]
    text = "".join(p.read_text() for p in tests.rglob("test_figure_scripts*.py"))
    scripts = sorted(p.name for p in FIGURES.glob("*.py"))
    missing = [s for s in scripts if f'"{s}"' not in text]
    assert not missing, f"figure scripts no test runs in --quick mode: {missing}"
