"""How long `genmath verify` takes: every derivation and exact-numeric check, timed one by one.

The derivation issue asks that the whole run finish in well under a minute on 2 cores; this
script measures it (wall time of the run in this process, plus the import of genmath and the
topics) and writes benchmarks/results/verify.md. Not a timed unit test: times on a shared
machine are noise, so read them as an order of magnitude.

    python benchmarks/bench_verify.py
"""

from __future__ import annotations

import os
import time
from pathlib import Path

t_import = time.perf_counter()
from genmath import derivations as registry  # noqa: E402

items = registry.select()
import_seconds = time.perf_counter() - t_import

t0 = time.perf_counter()
results = registry.run(items)
run_seconds = time.perf_counter() - t0

rows = sorted(results, key=lambda r: -r.seconds)
lines = [
    "# genmath verify: run time",
    "",
    "Every derivation and exact-numeric check, verified one by one in one process "
    "(`python benchmarks/bench_verify.py`).",
    "",
    "| | |",
    "| --- | ---: |",
    f"| derivations | {sum(r.kind == 'derivation' for r in results)} |",
    f"| exact-numeric checks | {sum(r.kind == 'check' for r in results)} |",
    f"| steps | {sum(len(r.steps) for r in results)} |",
    f"| failed | {sum(not r.ok for r in results)} |",
    f"| import of genmath and every topic (s) | {import_seconds:.1f} |",
    f"| verification (s) | {run_seconds:.1f} |",
    f"| CPU cores | {os.cpu_count()} |",
    "",
    "Slowest five:",
    "",
    "| id | seconds |",
    "| --- | ---: |",
    *(f"| `{r.id}` | {r.seconds:.2f} |" for r in rows[:5]),
]
out = Path(__file__).parent / "results" / "verify.md"
out.write_text("\n".join(lines) + "\n")
print("\n".join(lines))
