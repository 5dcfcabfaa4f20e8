"""Plant formula bugs in genmath, one at a time, and report what catches each.

A *mutant* is one realistic one-line error in a formula line (`genmath.derivations._audit`'s
definition: arithmetic, a unary minus, a math call) of `genmath.core`, `genmath.families`,
`genmath.analytic` or `genmath.nn`, outside functions declared ``@plumbing``:

* ``sign``       — ``+`` and ``-`` swapped, or a unary minus dropped;
* ``factor``     — an operation's result doubled;
* ``index``      — an integer index or slice bound moved by one;
* ``entry``      — two unpacked results swapped (``a, b = ...`` read as ``b, a = ...``),
  or index 0 and 1 exchanged;
* ``detach``     — a ``.detach()`` removed (a stop-gradient gone);
* ``reduction``  — ``.mean(...)`` and ``.sum(...)`` exchanged.

For each mutant, in a scratch copy of the repository, the runner asks two questions:

1. does ``genmath verify`` alone fail (on the mutant, while passing on the clean copy)? — it runs every derivation, check and binding whose
   run executed the mutated line (found once from a coverage map of a clean verification;
   a line that runs while the topics are imported makes it run everything), so the answer
   is the one a full ``genmath verify`` gives, in a fraction of the time;
2. do the tests fail (likewise)? — it runs the test functions that executed the line (a coverage map
   of the clean suite).

Usage (from the repository root, with the development environment):

    python tools/mutation.py map                 # coverage maps of verify and of the tests
    python tools/mutation.py list [--files ...]  # the mutants, without running them
    python tools/mutation.py run --sample 200 --seed 0 [--files ...] [--out PATH]
    python tools/mutation.py map --verify-only   # no tests map (the suite's takes long) ...
    python tools/mutation.py run --sample 40 --seed 1 --named-tests  # ... tests for survivors

A command *catches* a mutant only if the same command passes on the clean copy (each distinct
selection runs clean once): a check that fails anyway, or a harness that cannot import the
items it was given, is reported as ``baseline-failed``, never as a catch.

``run`` writes a JSON report (every mutant, its diff and verdicts) and prints a summary by
kind and by file, and the survivors. Equivalent mutants (a change that cannot alter any
value, e.g. doubling a zero) are possible; the report lists survivors for a reader to judge.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _mutation_maps import build_maps, load_maps, tests_for  # noqa: E402
from _mutation_report import KINDS, print_summary, summarize  # noqa: E402

from genmath.derivations._audit import check_spans, formula_functions  # noqa: E402

_COPY_IGNORE = shutil.ignore_patterns(
    ".venv", "site", "node_modules", ".git", ".mutation", "__pycache__", ".pytest_cache",
    "*.png", ".ruff_cache",
)


# Mutants that cannot change any value or any first-order gradient, each with the argument.
# (file, function, original text, replacement) -> why it is equivalent. Kept short: a mutant
# goes here only with a reason a reader can check from the code.
EQUIVALENT = {
    (
        "genmath/core/elbo.py",
        "genmath.core.elbo.score_function_surrogate",
        "torch.as_tensor(baseline, dtype=f.dtype, device=f.device).detach()",
    ): (
        "the baseline enters only through signal * (log_q - log_q.detach()), whose second "
        "factor is zero in value: the product rule gives the baseline's own gradient weight 0, "
        "so the surrogate's value and first-order gradient are the same with or without it"
    ),
    (
        "genmath/families/residual.py",
        "genmath.families.residual.InvertibleResidualBlock._value_and_logdet",
        "(x + g).detach()",
    ): (
        "the branch runs only when grad mode is off (create_graph = torch.is_grad_enabled()), "
        "where nothing downstream records a graph: the value is the same and no gradient is "
        "taken (only whether y holds the block's graph differs)"
    ),
    (
        "genmath/families/flow_matching.py",
        "genmath.families.flow_matching.ot_coupling",
        "(plan > 0).sum()",
    ): (
        "the count only decides whether POT's plan is a permutation or the assignment solver is "
        "asked instead; both give the unique optimal pairing, so a wrong count changes which "
        "solver answers, not the answer"
    ),
    (
        "genmath/families/discrete_diffusion.py",
        "genmath.families.discrete_diffusion.D3PM.prior_kl",
        "1.0 / self.path.num_states",
    ): (
        "the uniform stationary law is passed as Categorical(probs=...), which normalises its "
        "probabilities to sum to one: 2/S on every state is the same law as 1/S"
    ),
    **{
        ("genmath/core/_matrix_bijections.py", "genmath.core._matrix_bijections.Planar._solve", text): (
            "the expression is only the Newton solver's stopping test, |new - a| <= 4 eps "
            "(1 + |a|); the loop returns its latest iterate, so a test twice as loose or strict, "
            "or one never met (then all max_iter steps run, and Newton stays at the root), "
            "changes the root by rounding only"
        )
        for text in ("1 + a.abs()", "tol * (1 + a.abs())", "4 * torch.finfo(target.dtype).eps", "new - a")
    },
}

# Arithmetic that is not a formula of any derivation, with the argument; left out like the
# argument checks. Kept short for the same reason.
NOT_FORMULAS = {
    (
        "genmath/core/_matrix_bijections.py",
        "genmath.core._matrix_bijections.Planar.__init__",
        "torch.randn(self.features, generator=generator) * scale",
    ): (
        "the scale of a random initial draw of u and w: a choice, not a formula; everything the "
        "layer computes (value, log-det, inverse) is a function of the parameters, whatever "
        "their initial values, and is bound as such (D-flow-planar)"
    ),
}


def _no_grad_spans(tree: ast.AST) -> list[tuple[int, int]]:
    """Line ranges of ``with torch.no_grad():`` bodies: a ``.detach()`` there has no graph to
    cut (nothing is recorded), so removing it is an equivalent mutant by construction."""
    spans = []
    for node in ast.walk(tree):
        if isinstance(node, ast.With) and any(
            isinstance(item.context_expr, ast.Call)
            and getattr(item.context_expr.func, "attr", getattr(item.context_expr.func, "id", None))
            == "no_grad"
            for item in node.items
        ):
            spans.append((node.body[0].lineno, node.body[-1].end_lineno))
    return spans


@dataclasses.dataclass(frozen=True)
class Mutant:
    id: str
    file: str  # relative to the repository root
    line: int
    function: str
    kind: str
    start: tuple[int, int]  # (line, col) of the replaced segment, 1-based line
    end: tuple[int, int]
    original: str
    replacement: str


# --------------------------------------------------------------------------- mutants


def _segment(lines: list[str], node: ast.AST) -> str:
    if node.lineno == node.end_lineno:
        return lines[node.lineno - 1][node.col_offset : node.end_col_offset]
    parts = [lines[node.lineno - 1][node.col_offset :]]
    parts += lines[node.lineno : node.end_lineno - 1]
    parts.append(lines[node.end_lineno - 1][: node.end_col_offset])
    return "\n".join(parts)


def _candidates(node: ast.AST, text: str) -> list[tuple[str, str]]:
    """``(kind, replacement)`` for one node whose source is ``text``."""
    out = []
    if isinstance(node, ast.BinOp):
        swap = {ast.Add: ast.Sub, ast.Sub: ast.Add}.get(type(node.op))
        if swap is not None:
            changed = ast.BinOp(left=node.left, op=swap(), right=node.right)
            out.append(("sign", f"({ast.unparse(changed)})"))
        if isinstance(node.op, ast.Mult | ast.Div | ast.Add | ast.Sub | ast.MatMult | ast.Pow):
            out.append(("factor", f"(2 * ({text}))"))
    elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        if not isinstance(node.operand, ast.Constant):
            out.append(("sign", f"({ast.unparse(node.operand)})"))
    elif isinstance(node, ast.Subscript):
        index = node.slice
        elements = index.elts if isinstance(index, ast.Tuple) else [index]
        for k, element in enumerate(elements):
            if isinstance(element, ast.Constant) and type(element.value) is int:
                v = element.value
                moved = [*elements]
                moved[k] = ast.Constant(v + 1 if v >= 0 else v - 1)
                out.append(("index", _subscript(node, moved, index)))
                if v in (0, 1):
                    swapped = [*elements]
                    swapped[k] = ast.Constant(1 - v)
                    if v == 0:  # 0 -> 1 is already the index move; 1 -> 0 is the entry swap
                        continue
                    out.append(("entry", _subscript(node, swapped, index)))
            elif isinstance(element, ast.Slice):
                for attr in ("lower", "upper"):
                    bound = getattr(element, attr)
                    if isinstance(bound, ast.Constant) and type(bound.value) is int:
                        moved = [*elements]
                        moved[k] = ast.Slice(
                            **{
                                **{a: getattr(element, a) for a in ("lower", "upper", "step")},
                                attr: ast.Constant(bound.value + 1),
                            }
                        )
                        out.append(("index", _subscript(node, moved, index)))
            elif (
                isinstance(element, ast.BinOp)
                and isinstance(element.op, ast.Add | ast.Sub)
                and isinstance(element.right, ast.Constant)
                and type(element.right.value) is int
            ):
                moved = [*elements]
                moved[k] = element.left  # i - 1 -> i
                out.append(("index", _subscript(node, moved, index)))
    elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
        if node.func.attr == "detach" and not node.args:
            out.append(("detach", f"({ast.unparse(node.func.value)})"))
        elif node.func.attr in ("mean", "sum"):
            other = "sum" if node.func.attr == "mean" else "mean"
            changed = ast.Call(
                func=ast.Attribute(value=node.func.value, attr=other, ctx=ast.Load()),
                args=node.args,
                keywords=node.keywords,
            )
            out.append(("reduction", ast.unparse(changed)))
    elif isinstance(node, ast.Assign) and len(node.targets) == 1:
        target = node.targets[0]
        if isinstance(target, ast.Tuple) and len(target.elts) >= 2:
            names = target.elts
            if all(isinstance(n, ast.Name) for n in names[:2]) and names[0].id != names[1].id:
                swapped = ast.Tuple(elts=[names[1], names[0], *names[2:]], ctx=ast.Store())
                out.append(("entry", ast.unparse(swapped)))
                return [(kind, rep) for kind, rep in out]  # replaces the target only
    return out


def _subscript(node: ast.Subscript, elements, index) -> str:
    new_index = ast.Tuple(elts=elements, ctx=ast.Load()) if isinstance(index, ast.Tuple) else elements[0]
    return ast.unparse(ast.Subscript(value=node.value, slice=new_index, ctx=node.ctx))


def mutants(files: list[str] | None = None) -> list[Mutant]:
    """Every mutant of the formula lines (outside ``@plumbing`` functions)."""
    out: list[Mutant] = []
    functions = [f for f in formula_functions() if f.declared != "plumbing"]
    if files:
        functions = [f for f in functions if any(f.file.endswith(x) for x in files)]
    by_file: dict[str, list] = {}
    for f in functions:
        by_file.setdefault(f.file, []).append(f)
    for rel, funcs in sorted(by_file.items()):
        source = (ROOT / rel).read_text()
        lines = source.split("\n")
        tree = ast.parse(source)
        wanted = {line: f for f in funcs for line in f.lines}
        checks = check_spans(tree)  # argument checks and messages: not formulas (_audit's rule)
        no_grad = _no_grad_spans(tree)
        seen = set()
        for node in ast.walk(tree):
            line = getattr(node, "lineno", None)
            if line not in wanted:
                continue
            if (node.lineno, node.col_offset, node.end_lineno, node.end_col_offset) in checks:
                continue
            if isinstance(node, ast.Assign):
                target = node.targets[0] if len(node.targets) == 1 else None
                if not isinstance(target, ast.Tuple):
                    continue
                text = _segment(lines, target)
                span = target
            else:
                text = _segment(lines, node)
                span = node
            for kind, replacement in _candidates(node, text):
                key = (rel, span.lineno, span.col_offset, kind, replacement)
                if key in seen or replacement == text:
                    continue
                if kind == "detach" and any(lo <= span.lineno <= hi for lo, hi in no_grad):
                    continue  # no graph is recorded under no_grad: an equivalent mutant
                if (rel, wanted[line].name, text) in EQUIVALENT | NOT_FORMULAS:
                    continue
                seen.add(key)
                try:  # the mutated file must still compile
                    mutated = _apply_text(
                        source, (span.lineno, span.col_offset), (span.end_lineno, span.end_col_offset), replacement
                    )
                    compile(mutated, rel, "exec")
                except SyntaxError:
                    continue
                out.append(
                    Mutant(
                        id=f"{rel}:{span.lineno}:{span.col_offset}:{kind}:{len(out)}",
                        file=rel,
                        line=line,
                        function=wanted[line].name,
                        kind=kind,
                        start=(span.lineno, span.col_offset),
                        end=(span.end_lineno, span.end_col_offset),
                        original=text,
                        replacement=replacement,
                    )
                )
    return out


def _apply_text(source: str, start, end, replacement: str) -> str:
    lines = source.split("\n")
    (l0, c0), (l1, c1) = start, end
    head = lines[l0 - 1][:c0]
    tail = lines[l1 - 1][c1:]
    return "\n".join([*lines[: l0 - 1], head + replacement + tail, *lines[l1:]])


# --------------------------------------------------------------------------- running

_RUN_ITEMS = r"""
import json, os, sys
import genmath.derivations as R
import genmath.derivations._registry as registry
ids = sys.argv[1:]
if ids != ["*"] and os.environ.get("GENMATH_MUTATION_HINTS"):
    # import only the topics that register these items and their bindings (as a parallel
    # run's worker does), not all of them
    with open(os.environ["GENMATH_MUTATION_HINTS"]) as f:
        registry._HINTS = {k: tuple(v) for k, v in json.load(f).items()}
else:
    R.derivations()
items = R.select() if ids == ["*"] else [R.get(i) for i in ids]
failed = [item.id for item in items if not item.verify().ok]
print("FAILED " + " ".join(failed) if failed else "ok")
sys.exit(1 if failed else 0)
"""


def _run(cmd, cwd, timeout, env=None) -> tuple[bool, str]:
    try:
        proc = subprocess.run(
            cmd, cwd=cwd, env={**os.environ, "PYTHONPATH": str(cwd), **(env or {})},
            capture_output=True, text=True, timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        return True, "timeout"
    return proc.returncode != 0, (proc.stdout + proc.stderr)[-400:]


class Judge:
    """Whether a command *catches* a mutant: it fails on the mutated copy **and passes on the
    clean one**. A selection that already fails clean (a flaky or broken check, a harness
    that cannot import the items in that order, a timeout) proves nothing about the mutant:
    its verdict is ``"baseline-failed"``, reported apart and never counted as caught. Each
    distinct command runs clean once (cached), with the mutated file put back meanwhile."""

    def __init__(self, runner=None):
        self._runner = runner or _run
        self._clean: dict[tuple, tuple[bool, str]] = {}

    def verdict(self, cmd, cwd, timeout, env=None, *, path: Path, original: str, mutated: str):
        key = (tuple(cmd), tuple(sorted((env or {}).items())))
        if key not in self._clean:
            path.write_text(original)
            try:
                self._clean[key] = self._runner(cmd, cwd, timeout, env)
            finally:
                path.write_text(mutated)
        clean_failed, clean_log = self._clean[key]
        if clean_failed:
            return "baseline-failed", clean_log
        failed, log = self._runner(cmd, cwd, timeout, env)
        return ("caught" if failed else "missed"), log


def _stratified(pool: list[Mutant], sample: int | None, rng: random.Random) -> list[Mutant]:
    """``sample`` mutants, the kinds as evenly represented as the pool allows (factors far
    outnumber the rest, and a uniform draw would measure little else)."""
    if sample is None or sample >= len(pool):
        return list(pool)
    by_kind = {k: [m for m in pool if m.kind == k] for k in KINDS}
    for rows in by_kind.values():
        rng.shuffle(rows)
    chosen: list[Mutant] = []
    while len(chosen) < sample and any(by_kind.values()):
        for kind in KINDS:
            if by_kind[kind] and len(chosen) < sample:
                chosen.append(by_kind[kind].pop())
    return chosen


def _named_tests(mutant: Mutant, verify_items: list[str]) -> list[str]:
    """Test files for a mutant without a coverage map of the suite: those the derivations and
    checks that execute its line name (``tests=``), and ``test_<module>.py`` beside them for
    the module (or, for a private module, its package: ``diffusion/_ddpm.py`` ->
    ``test_diffusion.py``)."""
    import genmath.derivations as registry

    out: set[str] = set()
    for item_id in verify_items:
        try:
            item = registry.get(item_id)
        except Exception:  # noqa: BLE001  (an id the map knows and the registry no longer has)
            continue
        for test in getattr(item, "tests", ()) or ():
            path = test.split("::")[0]
            if (ROOT / path).exists():
                out.add(path)
    rel = Path(mutant.file)
    stem = rel.stem.lstrip("_")
    area = rel.parts[1] if len(rel.parts) > 2 else ""
    for name in (stem, rel.parent.name):
        for folder in (area, "analytic", "core", "families"):
            candidate = Path("tests") / folder / f"test_{name}.py"
            if (ROOT / candidate).exists():
                out.add(str(candidate))
    return sorted(out)


def run(
    sample: int | None,
    seed: int,
    files: list[str] | None,
    out: Path,
    timeout: int,
    named_tests: bool = False,
    only: list[str] | None = None,
) -> dict:
    maps = load_maps()
    pool = mutants(files)
    rng = random.Random(seed)
    if only:
        # named mutants (``file:line:kind``, optionally ``:original``): to reproduce one
        chosen = [m for m in pool if any(_matches(m, spec) for spec in only)]
    else:
        chosen = _stratified(pool, sample, rng)
    chosen.sort(key=lambda m: m.id)
    scratch = Path(tempfile.mkdtemp(prefix="genmath-mutation-"))
    shutil.copytree(ROOT, scratch / "repo", ignore=_COPY_IGNORE)
    repo = scratch / "repo"
    from genmath.derivations._registry import _hints

    hints = scratch / "hints.json"
    hints.write_text(json.dumps(_hints()))
    records = []
    judge = Judge()
    try:
        for k, m in enumerate(chosen, 1):
            path = repo / m.file
            original = path.read_text()
            mutated = _apply_text(original, m.start, m.end, m.replacement)
            path.write_text(mutated)
            files = {"path": path, "original": original, "mutated": mutated}
            try:
                verify_ctx = maps["verify"].get(m.file, {}).get(str(m.line), [])
                test_ctx = maps["tests"].get(m.file, {}).get(str(m.line), [])
                items = sorted({c for c in verify_ctx if c and c != "import"})
                if "import" in verify_ctx:
                    items = ["*"]
                if items:
                    verify_verdict, verify_log = judge.verdict(
                        [sys.executable, "-c", _RUN_ITEMS, *items], repo, timeout,
                        {"GENMATH_MUTATION_HINTS": str(hints)}, **files,
                    )
                else:
                    verify_verdict, verify_log = "missed", "line not executed by genmath verify"
                tests = tests_for(test_ctx)
                if not tests and named_tests and verify_verdict != "caught":
                    # no coverage map of the suite: the named test files, for survivors only
                    named = _named_tests(m, items if items != ["*"] else [])
                    tests = [*named, "-m", "not slow"] if named else []
                if tests:
                    tests_verdict, tests_log = judge.verdict(
                        [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider",
                         *tests],
                        repo, 3 * timeout, **files,
                    )
                else:
                    tests_verdict, tests_log = "missed", "line not executed by the tests"
            finally:
                path.write_text(original)
            record = {
                **dataclasses.asdict(m),
                "verify": verify_verdict == "caught",
                "tests": tests_verdict == "caught",
                "verify_verdict": verify_verdict,
                "tests_verdict": tests_verdict,
                "verify_items": len(items) if items != ["*"] else "all",
                "n_tests": len([t for t in tests if t.startswith("tests/")]),
                "test_files": [t for t in tests if t.startswith("tests/")],
                "verify_log": verify_log if verify_verdict != "caught" else verify_log[-200:],
                "tests_log": tests_log[-200:],
            }
            records.append(record)
            print(
                f"[{k}/{len(chosen)}] {m.kind:9s} {m.file}:{m.line} verify={verify_verdict} "
                f"tests={tests_verdict}",
                flush=True,
            )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    report = {"seed": seed, "sample": len(chosen), "pool": len(pool), "mutants": records}
    report["summary"] = summarize(records)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1))
    return report


def _matches(m: Mutant, spec: str) -> bool:
    file, line, kind, *text = spec.split(":", 3)
    return (
        m.file.endswith(file)
        and str(m.line) == line
        and m.kind == kind
        and (not text or text[0] in m.original)
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    mapping = sub.add_parser("map", help="coverage maps of a clean verify and test run")
    mapping.add_argument("--verify-only", action="store_true", help="skip the tests' map")
    listing = sub.add_parser("list", help="print the mutants")
    listing.add_argument("--files", nargs="*")
    runner = sub.add_parser("run", help="plant and judge mutants")
    runner.add_argument("--sample", type=int, default=200)
    runner.add_argument("--seed", type=int, default=0)
    runner.add_argument("--files", nargs="*")
    runner.add_argument("--timeout", type=int, default=300)
    runner.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "mutation.json")
    runner.add_argument(
        "--only", nargs="*",
        help="run these mutants only, each FILE:LINE:KIND[:ORIGINAL-SUBSTRING] (no sample)",
    )
    runner.add_argument(
        "--named-tests", action="store_true",
        help="for mutants verify misses, run the test files their derivations name (no tests map)",
    )
    summary = sub.add_parser("summary", help="print the summary of a report")
    summary.add_argument("report", type=Path)
    args = parser.parse_args(argv)
    if args.command == "map":
        build_maps(tests=not args.verify_only)
    elif args.command == "list":
        pool = mutants(args.files)
        for m in pool:
            print(f"{m.file}:{m.line} [{m.kind}] {m.original!r} -> {m.replacement!r}")
        counts = {k: sum(m.kind == k for m in pool) for k in KINDS}
        print(f"{len(pool)} mutants: {counts}")
    elif args.command == "run":
        print_summary(
            run(
                args.sample, args.seed, args.files, args.out, args.timeout, args.named_tests,
                args.only,
            )
        )
    else:
        print_summary(json.loads(args.report.read_text()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
