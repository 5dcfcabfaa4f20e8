"""Coverage maps for the mutation runner (`tools/mutation.py`): which derivations, checks and
bindings of a clean ``genmath verify`` execute each line of genmath, and which test functions
of a clean test run do, so a mutant is judged by exactly the items that run its line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / ".mutation"


_VERIFY_MAP = r"""
import json, sys
import coverage
cov = coverage.Coverage(data_file=sys.argv[1], source=["genmath"])
cov.start()
cov.switch_context("import")
import genmath
import genmath.derivations as R
R.derivations()
items = R.select()
for item in items:
    cov.switch_context(item.id)
    item.verify()
cov.stop()
cov.save()
"""


def build_maps(tests: bool = True) -> None:
    CACHE.mkdir(exist_ok=True)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    t0 = time.time()
    subprocess.run(
        [sys.executable, "-c", _VERIFY_MAP, str(CACHE / "verify.coverage")],
        cwd=ROOT, env=env, check=True,
    )
    print(f"verify map: {time.time() - t0:.0f} s")
    if not tests:
        if not (CACHE / "tests.coverage").exists():
            import coverage

            coverage.CoverageData(basename=str(CACHE / "tests.coverage")).write()
        _export_maps()
        return
    t0 = time.time()
    rc = subprocess.run(
        [
            sys.executable, "-m", "coverage", "run", f"--data-file={CACHE / 'tests.coverage'}",
            "--source=genmath", "--context=tests",
            "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", "--ignore=tests/docs",
        ],
        cwd=ROOT,
        env={**env, "COVERAGE_DYNAMIC_CONTEXT": "test_function"},
    ).returncode
    print(f"tests map: {time.time() - t0:.0f} s (pytest exit {rc})")
    _export_maps()


def _export_maps() -> None:
    import coverage

    maps = {}
    for name in ("verify", "tests"):
        data = coverage.CoverageData(basename=str(CACHE / f"{name}.coverage"))
        data.read()
        table: dict[str, dict[str, list[str]]] = {}
        for path in data.measured_files():
            rel = os.path.relpath(path, ROOT)
            if rel.startswith(".."):
                continue
            contexts = data.contexts_by_lineno(path)
            table[rel] = {str(k): sorted(v) for k, v in contexts.items()}
        maps[name] = table
    (CACHE / "maps.json").write_text(json.dumps(maps))


def load_maps() -> dict:
    path = CACHE / "maps.json"
    if not path.exists():
        raise SystemExit("no coverage maps: run `python tools/mutation.py map` first")
    return json.loads(path.read_text())


def tests_for(contexts: list[str]) -> list[str]:
    """pytest node ids from coverage's ``test_function`` contexts (``tests.core.test_x.test_y``)."""
    out = set()
    for context in contexts:
        if not context or context == "tests":
            continue
        name = context.split("|")[0]
        parts = name.split(".")
        for cut in range(len(parts) - 1, 0, -1):
            module = Path(*parts[:cut]).with_suffix(".py")
            if (ROOT / module).exists():
                out.add(f"{module}::{'::'.join(parts[cut:])}")
                break
    return sorted(out)
