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


# The content column of the site is about 720 px wide at 1400 px (both sidebars shown), and an
# image wider than it is shrunk to it. Matplotlib's 10-point text at 110 dpi is 15 px tall, so
# an image at most 1450 px wide keeps its text at 7 px or more; a strip wider than 3.2 times its
# height (five panels in a row, say) leaves each panel too small to read at any width.
MAX_WIDTH_PX = 1450
MAX_ASPECT = 3.2


# Figures still too wide, each with its measured size: strict, so a figure fixed and still listed
# fails. Empty since one_step_2d, flows_2d and diffusion_digits were laid out over rows.
TOO_WIDE_STILL: dict[str, str] = {}


@pytest.mark.parametrize("script", [
    pytest.param(s, marks=pytest.mark.xfail(strict=True, reason=TOO_WIDE_STILL[s]))
    if s in TOO_WIDE_STILL else s
    for s in SCRIPTS
])
def test_figure_is_readable_at_page_width(script):
    from PIL import Image

    image = FIGURES / script.replace(".py", ".png")
    if not image.is_file():
        pytest.skip("no committed image (the test above fails)")
    with Image.open(image) as im:
        width, height = im.size
    assert width <= MAX_WIDTH_PX, (
        f"{image.name} is {width} px wide: shown at the page's width its text shrinks below "
        f"7 px; lay it out narrower (split the panels over rows)"
    )
    assert width / height <= MAX_ASPECT, (
        f"{image.name} is {width}x{height} (aspect {width / height:.2f} > {MAX_ASPECT}): split "
        f"its panels over rows"
    )
