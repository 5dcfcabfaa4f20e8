"""How long `genmath verify` takes: every derivation, check and binding, timed one by one.

CPU time of the process (`time.process_time`: sympy and mpmath run on this thread, torch on one
thread), not wall time, so other processes on a shared machine do not inflate it; the import of
genmath and of every topic is reported apart from the verification. Not a timed unit test.

    python benchmarks/bench_verify.py [--update]
"""

from __future__ import annotations

import pathlib
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).parent))
import _harness  # noqa: E402


def main() -> None:
    args = _harness.parser(__doc__.splitlines()[0]).parse_args()
    env = _harness.setup()
    t_import = time.process_time()
    from genmath import derivations as registry

    items = registry.select()
    import_seconds = time.process_time() - t_import
    t0 = time.process_time()
    results = []
    seconds = {}
    for item in items:
        start = time.process_time()
        results.append(item.verify())
        seconds[item.id] = time.process_time() - start
    run_seconds = time.process_time() - t0
    t_audit = time.process_time()
    audit = registry.audit(results)
    audit_seconds = time.process_time() - t_audit
    rows = sorted(seconds.items(), key=lambda kv: -kv[1])
    lines = [
        "# genmath verify: CPU time",
        "",
        _harness.describe(env),
        "",
        "Every derivation, exact-numeric check and binding, verified one by one in one process "
        "(`python benchmarks/bench_verify.py`); CPU time of the process.",
        "",
        *_harness.table(
            ["", ""],
            [
                ["derivations", str(sum(r.kind == "derivation" for r in results))],
                ["exact-numeric checks", str(sum(r.kind == "check" for r in results))],
                ["bindings", str(sum(len(r.bindings) for r in results if r.kind == "derivation"))],
                ["steps", str(sum(len(r.steps) for r in results))],
                ["failed", str(sum(not r.ok for r in results))],
                ["import of genmath and every topic (CPU s)", f"{import_seconds:.1f}"],
                ["verification (CPU s)", f"{run_seconds:.1f}"],
                ["audit of unbound formulas (CPU s)", f"{audit_seconds:.1f}"],
                ["total (CPU s)", f"{import_seconds + run_seconds + audit_seconds:.1f}"],
            ],
            "lr",
        ),
        "",
        "Slowest ten:",
        "",
        *_harness.table(
            ["id", "CPU seconds"], [[f"`{k}`", f"{v:.2f}"] for k, v in rows[:10]], "lr"
        ),
    ]
    _harness.write("verify", "\n".join(lines), args.update)
    print("\n".join(lines))
    del audit


if __name__ == "__main__":
    main()
