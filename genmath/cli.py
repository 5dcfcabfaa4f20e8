"""The ``genmath`` command: ``verify`` the derivations and checks, ``cite`` a reference, ``list`` ids."""

from __future__ import annotations

import argparse
import json
import sys
import time

from . import __version__


def _available_cores() -> int:
    import os

    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _summary(results, audit) -> dict:
    """Counts for the summary line and the JSON report."""
    derivations = [r for r in results if r.kind == "derivation"]
    steps = [s for r in results for s in r.steps]
    return {
        "derivations": len(derivations),
        "checks": sum(1 for r in results if r.kind == "check"),
        "failed": sum(1 for r in results if not r.ok),
        "steps": {
            "symbolic": sum(1 for s in steps if s.tag == "symbolic"),
            "numeric": sum(1 for s in steps if s.tag == "numeric"),
            "cited": sum(1 for s in steps if s.tag == "cited"),
            "exact-numeric": sum(1 for s in steps if s.tag == "exact-numeric"),
            "failed": sum(1 for s in steps if not s.ok),
        },
        "bindings": sum(len(r.bindings) for r in derivations),
        "bindings_failed": sum(1 for r in derivations for b in r.bindings if not b.ok),
        "bound_derivations": sum(1 for r in derivations if r.bindings),
        "unbound_derivations": len(audit.unbound_derivations) if audit else None,
        "unbound_functions": len(audit.unbound_functions) if audit else None,
        "undeclared_formulas": len(audit.undeclared_formulas) if audit else None,
    }


def _verify(args: argparse.Namespace) -> int:
    from . import derivations as registry

    items = registry.select(args.only)
    if not items and args.only is not None:
        print(f"no derivation or check matches {args.only!r}", file=sys.stderr)
        return 2
    show_progress = not args.json and sys.stderr.isatty()

    def progress(i: int, n: int, item) -> None:
        if show_progress:
            sys.stderr.write(f"\r\033[K[{i}/{n}] {item.id}")
            sys.stderr.flush()
        elif not args.json:
            sys.stderr.write(f"[{i}/{n}] {item.id}\n")

    t0 = time.perf_counter()
    jobs = args.jobs if args.jobs > 0 else _available_cores()
    results = registry.run(items, progress=progress, jobs=min(jobs, max(1, len(items) // 8)))
    # the audit needs every binding's record of what it called: only a full run has them
    audit = registry.audit(results) if args.only is None else None
    total = time.perf_counter() - t0
    if show_progress:
        sys.stderr.write("\r\033[K")
    failed = [r for r in results if not r.ok]
    unbound = [r for r in results if r.kind == "derivation" and not r.bindings]
    audit_failed = audit is not None and not audit.ok
    summary = _summary(results, audit)
    if args.json:
        payload = {
            "version": __version__,
            "ok": not failed and not unbound and not audit_failed,
            "seconds": round(total, 3),
            "summary": summary,
            "results": [r.as_dict() for r in results],
        }
        if audit is not None:
            payload["audit"] = audit.as_dict()
        print(json.dumps(payload, indent=2))
    else:
        _print_table(results)
        steps = summary["steps"]
        print(
            f"\n{len(results) - len(failed)} passed, {len(failed)} failed: "
            f"{summary['derivations']} derivations ({summary['bound_derivations']} bound, "
            f"{len(unbound)} unbound), {summary['checks']} checks; steps: "
            f"{steps['symbolic']} symbolic, {steps['numeric']} numeric, {steps['cited']} cited "
            f"(not verified), {steps['exact-numeric']} exact-numeric; {summary['bindings']} "
            f"bindings; in {total:.1f} s"
        )
        for r in failed:
            for s in r.failures():
                print(f"FAILED {r.id} step {s.index} ({s.tag}, {s.method}): residual {s.residual}")
            for b in r.binding_failures():
                print(f"FAILED {r.id} binding of {', '.join(b.code)}: {b.residual}")
        for r in unbound:
            print(f"UNBOUND {r.id}: no binding ties it to the code that implements it")
        if audit is not None:
            for name in audit.unbound_functions:
                ids = ", ".join(audit.functions[name]["derivations"])
                print(f"UNBOUND {name}: implements {ids}, but no binding of it calls this code")
            for name in audit.undeclared_formulas:
                print(
                    f"UNDECLARED {name}: computes, but has neither @implements(...) nor "
                    "@plumbing(...)"
                )
    return 1 if failed or unbound or audit_failed else 0


def _print_table(results) -> None:
    header = ("id", "title", "steps", "sym", "num", "cited", "exact", "bound", "status", "s")
    rows = [
        (
            r.id,
            r.title if len(r.title) <= 52 else r.title[:49] + "...",
            str(len(r.steps)),
            str(r.count("symbolic")),
            str(r.count("numeric")),
            str(r.count("cited")),
            str(r.count("exact-numeric")),
            "-" if r.kind == "check" else str(len(r.bindings)),
            r.status if r.ok else "FAILED",
            f"{r.seconds:.2f}",
        )
        for r in results
    ]
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(header)]
    line = "  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))
    print(line)
    print("  ".join("-" * w for w in widths))
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))


def _cite(args: argparse.Namespace) -> int:
    from . import references

    if args.all:
        print("\n\n".join(references.bibtex(k) for k in references.keys()))
        return 0
    if not args.keys:
        print("genmath cite: give a KEY or --all", file=sys.stderr)
        return 2
    try:
        print("\n\n".join(references.bibtex(k) for k in args.keys))
    except KeyError as exc:
        print(f"genmath cite: {exc.args[0]}", file=sys.stderr)
        return 2
    return 0


def _list(args: argparse.Namespace) -> int:
    from . import derivations as registry

    for item in registry.select(args.only):
        print(f"{item.id}\t{item.title}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="genmath",
        description="The math of deep generative models, written once and checked.",
    )
    parser.add_argument("--version", action="version", version=f"genmath {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    verify = sub.add_parser("verify", help="run every derivation and exact-numeric check")
    verify.add_argument("--json", action="store_true", help="print the report as JSON")
    verify.add_argument(
        "--only", metavar="PATTERN", help="only ids or titles matching PATTERN (glob or substring)"
    )
    verify.add_argument(
        "--jobs",
        "-j",
        type=int,
        default=0,
        metavar="N",
        help="worker processes (default 0: one per available core)",
    )
    verify.set_defaults(func=_verify)

    cite = sub.add_parser("cite", help="print the BibTeX entry of a reference")
    cite.add_argument("keys", nargs="*", metavar="KEY")
    cite.add_argument("--all", action="store_true", help="print every reference")
    cite.set_defaults(func=_cite)

    listing = sub.add_parser("list", help="list derivation and check ids")
    listing.add_argument("--only", metavar="PATTERN")
    listing.set_defaults(func=_list)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
