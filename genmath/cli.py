"""The ``genmath`` command: ``verify`` the derivations and checks, ``cite`` a reference, ``list`` ids."""

from __future__ import annotations

import argparse
import json
import sys
import time

from . import __version__


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
    results = registry.run(items, progress=progress)
    total = time.perf_counter() - t0
    if show_progress:
        sys.stderr.write("\r\033[K")
    failed = [r for r in results if not r.ok]
    if args.json:
        payload = {
            "version": __version__,
            "ok": not failed,
            "seconds": round(total, 3),
            "results": [r.as_dict() for r in results],
        }
        print(json.dumps(payload, indent=2))
    else:
        _print_table(results)
        print(
            f"\n{len(results) - len(failed)} passed, {len(failed)} failed "
            f"({sum(len(r.steps) for r in results)} steps) in {total:.1f} s"
        )
        for r in failed:
            for s in r.failures():
                print(f"FAILED {r.id} step {s.index} ({s.tag}): residual {s.residual}")
    return 1 if failed else 0


def _print_table(results) -> None:
    header = ("id", "title", "steps", "sym", "num", "cited", "exact", "status", "s")
    rows = [
        (
            r.id,
            r.title if len(r.title) <= 52 else r.title[:49] + "...",
            str(len(r.steps)),
            str(r.count("symbolic")),
            str(r.count("numeric")),
            str(r.count("cited")),
            str(r.count("exact-numeric")),
            "ok" if r.ok else "FAILED",
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
