"""The summary of a mutation report (`tools/mutation.py`): rates by kind and by file, what
verify missed, what survived both, and the mutants whose clean run already failed."""

from __future__ import annotations

KINDS = ("sign", "factor", "index", "entry", "detach", "reduction")


def summarize(records: list[dict]) -> dict:
    def tally(rows):
        n = len(rows)
        v = sum(r["verify"] for r in rows)
        either = sum(r["verify"] or r["tests"] for r in rows)
        clean_failed = sum(
            "baseline-failed" in (r.get("verify_verdict"), r.get("tests_verdict")) for r in rows
        )
        return {"mutants": n, "verify": v, "verify_or_tests": either,
                "baseline_failed": clean_failed,
                "verify_rate": round(v / n, 3) if n else None,
                "either_rate": round(either / n, 3) if n else None}

    return {
        "all": tally(records),
        "by_kind": {k: tally([r for r in records if r["kind"] == k]) for k in KINDS},
        "by_file": {
            f: tally([r for r in records if r["file"] == f])
            for f in sorted({r["file"] for r in records})
        },
    }


def print_summary(report: dict) -> None:
    s = report["summary"]
    a = s["all"]
    print(
        f"\n{a['mutants']} mutants (of {report['pool']}): genmath verify alone caught "
        f"{a['verify']} ({a['verify_rate']:.0%}); verify or tests caught {a['verify_or_tests']} "
        f"({a['either_rate']:.0%})"
    )
    for kind, t in s["by_kind"].items():
        if t["mutants"]:
            print(f"  {kind:9s} {t['verify']}/{t['mutants']} by verify, {t['verify_or_tests']}/{t['mutants']} by either")
    unjudged = [r for r in report["mutants"]
                if "baseline-failed" in (r.get("verify_verdict"), r.get("tests_verdict"))]
    if unjudged:
        print(f"\nclean run already failed, not counted as caught ({len(unjudged)}):")
        for r in unjudged:
            print(f"  {r['file']}:{r['line']} [{r['kind']}] verify={r.get('verify_verdict')} "
                  f"tests={r.get('tests_verdict')}")
    survivors = [r for r in report["mutants"] if not (r["verify"] or r["tests"])]
    missed = [r for r in report["mutants"] if not r["verify"]]
    print(f"\nmissed by verify ({len(missed)}):")
    for r in missed:
        print(f"  {r['file']}:{r['line']} [{r['kind']}] {r['original']!r} -> {r['replacement']!r}"
              f"  ({r['verify_log'][:60]})")
    print(f"\nsurvived both ({len(survivors)}):")
    for r in survivors:
        print(f"  {r['file']}:{r['line']} [{r['kind']}] {r['original']!r} -> {r['replacement']!r}")
