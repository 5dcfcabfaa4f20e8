"""The targets of issue 20, read from the results the benchmarks wrote: one table, before and after.

"Before" is what the issue measured on the earlier code (quoted, with its source); "after" is
read from `benchmarks/results/*.md` (the rows named below), so the page cannot drift from the
measurements. `make test` timing and `genmath --version` are measured here directly (CPU and
wall time of a child process), unless `--no-measure` is given.

    python benchmarks/targets.py [--update] [--no-measure]
"""

from __future__ import annotations

import pathlib
import re
import resource
import subprocess
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).parent))
import _harness  # noqa: E402

RESULTS = _harness.RESULTS


def _tables(name: str) -> list[list[dict[str, str]]]:
    """Every Markdown table of a results file, as rows keyed by the header cells."""
    path = RESULTS / f"{name}.md"
    if not path.is_file():
        return []
    tables, header, rows = [], None, []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if header is None:
                header = cells
            elif set("".join(cells)) <= set("-: "):
                continue
            else:
                rows.append(dict(zip(header, cells, strict=False)))
        elif header is not None:
            tables.append(rows)
            header, rows = None, []
    if header is not None:
        tables.append(rows)
    return tables


def _rows(name: str, first_cell: str, exact: bool = False) -> list[dict[str, str]]:
    out = []
    for table in _tables(name):
        for row in table:
            values = list(row.values())
            if values and (values[0] == first_cell if exact else values[0].startswith(first_cell)):
                out.append(row)
    return out


def _ratio(cell: str) -> float:
    match = re.match(r"\s*([0-9.]+)", cell)
    return float(match.group(1)) if match else float("nan")


def _range(values: list[float], fmt: str = "{:.2f}") -> str:
    values = [v for v in values if v == v]
    if not values:
        return "not measured"
    low, high = min(values), max(values)
    return fmt.format(low) if low == high else f"{fmt.format(low)}–{fmt.format(high)}"


def _likelihood() -> tuple[str, str]:
    rows = [r for r in _rows("likelihood", "") if r.get("velocity") == "MLP 2x256"]
    ratio_key = next((k for k in (rows[0] if rows else {}) if k.startswith("ratio")), None)
    if ratio_key is None:
        return "not measured", "not measured"
    generic = {r["d"]: r[ratio_key] for r in rows if r.get("contender") == "genmath"}
    structured = {r["d"]: r[ratio_key] for r in rows if r.get("contender") == "genmath-structured"}
    generic_text = ", ".join(f"d = {d}: {v}" for d, v in generic.items()) or "not measured"
    speedup = (
        f"{1 / _ratio(structured['128']):.0f}× faster ({structured['128']} of its time)"
        if "128" in structured
        else "not measured"
    )
    return generic_text, speedup


def _sampler() -> str:
    rows = _rows("samplers", "10", exact=True) + _rows("samplers", "20", exact=True)
    return "; ".join(f"NFE {r['NFE']}: {r['ratio']}" for r in rows if "ratio" in r) or "not measured"


def _cell_ratio(name: str, first: str, key: str = "ratio [IQR]") -> str:
    rows = _rows(name, first)
    return rows[0][key] if rows and key in rows[0] else "not measured"


def _flows() -> str:
    rows = [r for r in _rows("flows", "") if "ratio [IQR]" in r]
    values = [_ratio(r["ratio [IQR]"]) for r in rows]
    big = [_ratio(r["ratio [IQR]"]) for r in rows if int(r.get("batch", "0") or 0) >= 4096]
    return f"all: {_range(values)} (batch ≥ 4096: {_range(big)})"


def _paths() -> str:
    rows = [r for r in _rows("paths", "convert") if "ratio [IQR]" in r]
    small = [_ratio(r["ratio [IQR]"]) for r in rows if r.get("batch × dim") == "256×2"]
    return f"all sizes: {_range([_ratio(r['ratio [IQR]']) for r in rows])} (256×2: {_range(small)})"


def _elbo() -> str:
    rows = [r for r in _rows("elbo", "") if "ratio" in r]
    values = [_ratio(v) for r in rows for k, v in r.items() if k == "ratio"]
    return _range(values)


def _verify() -> str:
    # a two-column table without header names: read its "total" line directly
    path = RESULTS / "verify.md"
    text = path.read_text(encoding="utf-8") if path.is_file() else ""
    match = re.search(r"^\| total \(CPU s\) \| ([0-9.]+) \|", text, flags=re.M)
    if not match:
        return "not measured"
    counts = {
        name: re.search(rf"^\| {name} \| ([0-9]+) \|", text, flags=re.M)
        for name in ("derivations", "bindings")
    }
    size = ", ".join(f"{m.group(1)} {name}" for name, m in counts.items() if m)
    return f"{match.group(1)} CPU s, one process ({size}; the issue measured a smaller library)"


def _child_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _measure_startup() -> tuple[str, str]:
    """`genmath --version` by the CPU time of the child process (what it costs; on a loaded
    machine its wall time is mostly waiting for a core) and its best wall time; the import by
    the CPU time it adds after `import torch` inside the child."""
    python = sys.executable
    best_version = best_wall = best_import = best_bare = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        subprocess.run([python, "-c", "pass"], capture_output=True, check=True)
        best_bare = min(best_bare, time.perf_counter() - start)
        before, start = _child_cpu(), time.perf_counter()
        subprocess.run([python, "-m", "genmath", "--version"], capture_output=True, check=True)
        best_wall = min(best_wall, time.perf_counter() - start)
        best_version = min(best_version, _child_cpu() - before)
        code = (
            "import time; import torch; a = time.process_time(); import genmath; "
            "from genmath import GaussianPath, sample_ode, ode_log_likelihood, elbo; "
            "print(time.process_time() - a)"
        )
        out = subprocess.run([python, "-c", code], capture_output=True, text=True, check=True)
        best_import = min(best_import, float(out.stdout))
    return (
        f"{best_version:.2f} s CPU ({best_wall:.2f} s wall here, where a bare `python -c pass` "
        f"takes {best_bare:.2f} s)",
        f"{best_import:.3f} s CPU",
    )


def main() -> None:
    p = _harness.parser(__doc__.splitlines()[0])
    p.add_argument("--no-measure", action="store_true", help="do not time start-up here")
    args = p.parse_args()
    version, import_cost = ("not measured", "not measured")
    if not args.no_measure:
        version, import_cost = _measure_startup()
    generic, structured = _likelihood()
    rows = [
        ["generic exact likelihood ≤ 0.9× flow_matching, d = 2…512 (time ratio)",
         "0.87× speed at d = 2 (time ratio 1.15), CPU", generic],
        ["structured likelihood ≥ 40× at d = 128", "36–46×", structured],
        ["sampler error ≤ 0.5× best of diffusers / k-diffusion at 10 and 20 NFE",
         "level with diffusers (DDIM 1.011× at 6 NFE); no k-diffusion", _sampler()],
        ["CFM training step ≤ 1.0× torchcfm", "1.09",
         _cell_ratio("flow_matching", "CFM step vs torchcfm")],
        ["OT-CFM step ≤ 1.0× torchcfm (batch 256 / 512)", "1.48 (11.6 vs 6.5 ms of OT at 256)",
         f"{_cell_ratio('flow_matching', 'OT-CFM step vs torchcfm, batch 256 (genmath default')}"
         f" / {_cell_ratio('flow_matching', 'OT-CFM step vs torchcfm, batch 512 (genmath default')}"],
        ["flows ≤ 0.9× zuko at every batch size", "1.03–1.24 at batch ≥ 4096", _flows()],
        ["path conversions ≤ 1.0× flow_matching at every size", "1.11–1.23 at 256×2", _paths()],
        ["ELBO / IWAE ≤ 1.0× pyro's matching estimator", "1.12 (ELBO, 16 samples; analytic vs "
         "Monte-Carlo KL)", _elbo()],
        ["`genmath --version` < 0.5 s", "about 3 s (imports torch, sympy, scipy)", version],
        ["`import genmath` < 0.5 s beyond `import torch` (with the first core names)",
         "about 1.2 s of scipy.stats and sympy of its 3 s", import_cost],
        ["`genmath verify` < 30 s CPU", "47–53 s CPU (four runs)", _verify()],
    ]
    lines = [
        "# Issue 20's targets: before and after",
        "",
        "Ratios genmath / anchor, median of interleaved rounds with the interquartile range in "
        "brackets, read from the results files of this page (`benchmarks/targets.py`). "
        "\"Before\" quotes the measurements the issue was filed with, on the earlier code.",
        "",
        *_harness.table(["target", "before", "after"], rows, "lll"),
    ]
    _harness.write("targets", "\n".join(lines), args.update)


if __name__ == "__main__":
    main()
