"""Every figure script in docs/figures runs in --quick mode and writes its image, so none of
them rots; and each has its committed image beside it, which the pages show.

The scripts run in one child process, one after another (`_figure_runner.py` resets the state a
script could change before the next), so the suite pays Python's and torch's start-up once
rather than once per script; each script still gets its own test and its own report."""

import json
import pathlib
import subprocess
import sys

import pytest

FIGURES = pathlib.Path(__file__).resolve().parents[2] / "docs" / "figures"
SCRIPTS = sorted(p.name for p in FIGURES.glob("*.py"))
RUNNER = pathlib.Path(__file__).with_name("_figure_runner.py")


@pytest.fixture(scope="session")
def quick_runs(tmp_path_factory):
    out = tmp_path_factory.mktemp("figures")
    report = out / "report.json"
    proc = subprocess.run(
        [sys.executable, str(RUNNER), str(report), str(out), *(str(FIGURES / s) for s in SCRIPTS)],
        capture_output=True,
        text=True,
        timeout=1800,
    )
    runs = json.loads(report.read_text()) if report.is_file() else {}
    return runs, proc


@pytest.mark.parametrize("script", SCRIPTS)
def test_figure_script_runs_quick(script, quick_runs):
    runs, proc = quick_runs
    assert script in runs, f"{script} did not run: runner exited {proc.returncode}\n{proc.stderr[-2000:]}"
    run = runs[script]
    assert run["ok"], run["error"]
    out = pathlib.Path(run["out"])
    assert out.is_file() and out.stat().st_size > 1000, f"{script} wrote no image to {out}"


@pytest.mark.parametrize("script", SCRIPTS)
def test_figure_script_has_its_committed_image(script):
    image = FIGURES / script.replace(".py", ".png")
    assert image.is_file(), f"{script}: run it (without --quick) to write {image.name}"
