"""Which code carries formulas, and whether each is bound to a derivation.

`genmath verify` (a full run) audits the library after running the bindings:

* **formula-bearing functions** — every public function and method of `genmath.core`,
  `genmath.families`, `genmath.analytic`, `genmath.ot` and `genmath.nn` whose body computes (arithmetic on
  non-constants, a unary minus, or a math function such as ``exp``, ``log``, ``sqrt``,
  ``sum``) is found by reading the source (`ast`);
* each must carry ``@implements("D-...")`` (a formula with a derivation) or
  ``@plumbing("why")`` (bookkeeping): one with neither is an **undeclared formula**;
* each ``@implements`` function must be *called* by a binding of one of the derivations it
  names, as recorded while the bindings ran: one that is not is an **unbound function**;
* every derivation must have a binding: one without is an **unbound derivation**.

Any of the three fails the verification. The same scan names the *formula lines* that the
mutation runner (``tools/mutation.py``) plants bugs in.
"""

from __future__ import annotations

import ast
import dataclasses
import pathlib
from collections.abc import Iterable

__all__ = [
    "FormulaFunction", "formula_functions", "formula_lines", "check_nodes", "check_spans", "Audit",
    "audit",
]

# Calls that compute (elementwise math, reductions, linear algebra). A function calling one
# of these, or doing arithmetic on non-constants, bears a formula.
MATH_CALLS = frozenset(
    """exp log sqrt expm1 log1p sin cos tan tanh sigmoid logsumexp softmax log_softmax lgamma
    erf erfc erfinv logaddexp softplus atan atan2 acos asin cumprod cumsum rsqrt reciprocal
    square pow addcmul addcdiv matmul einsum mm bmm det logdet slogdet cholesky
    cholesky_solve cholesky_inverse solve inverse digamma xlogy log_sigmoid logsigmoid sinh
    cosh atanh lerp prod norm mean sum var std trace diagonal triangular_solve solve_triangular
    logit log2 log10 exp2 abs clamp clamp_min clamp_max hypot where relu gelu silu""".split()
)
_ARITHMETIC = (ast.Add, ast.Sub, ast.Mult, ast.Div, ast.Pow, ast.MatMult, ast.FloorDiv, ast.Mod)
_SCANNED = ("core", "families", "analytic", "ot")
_ROOT = pathlib.Path(__file__).resolve().parents[1]  # the genmath package


@dataclasses.dataclass(frozen=True)
class FormulaFunction:
    name: str  # canonical dotted name, module.qualname
    file: str  # relative to the repository root
    line: int
    public: bool
    declared: str | None  # "implements", "plumbing" or None
    derivations: tuple[str, ...]
    lines: tuple[int, ...]  # its formula lines


def _call_name(node: ast.Call) -> str | None:
    f = node.func
    if isinstance(f, ast.Attribute):
        return f.attr
    if isinstance(f, ast.Name):
        return f.id
    return None


# Calls whose arguments are checks or messages, not formulas: the shared validators of
# genmath/core/_validate.py and _shapes.py (check_batch, check_time, ...) and warnings.
_CHECK_CALL_PREFIXES = ("check_", "_check", "require_", "_require")
_MESSAGE_CALLS = frozenset({"warn", "InputTypeError", "ValueError", "TypeError"})


def _raises(body: list[ast.stmt]) -> bool:
    """Whether a branch ends by raising (an argument check's body)."""
    return bool(body) and isinstance(body[-1], ast.Raise)


def _check_roots(fn: ast.AST) -> list[ast.AST]:
    """The nodes of ``fn`` that only check or report: a ``raise``, an ``assert``, an f-string,
    the condition of an ``if`` whose branch raises (an argument check), a call of a shared
    validator (``check_*``) or a warning whose result is discarded."""
    roots: list[ast.AST] = []
    for node in ast.walk(fn):
        if isinstance(node, ast.Raise | ast.Assert | ast.JoinedStr):
            roots.append(node)
        elif isinstance(node, ast.If) and (_raises(node.body) or _raises(node.orelse)):
            roots.append(node.test)
        elif isinstance(node, ast.Expr) and isinstance(node.value, ast.Call):
            # only a validator whose result is discarded: check_grid(grid) returns the grid
            name = _call_name(node.value)
            if name and (name.startswith(_CHECK_CALL_PREFIXES) or name in _MESSAGE_CALLS):
                roots.append(node)
    return roots


def _assigned_names(stmt: ast.stmt) -> list[str] | None:
    """The plain names an assignment binds, or None when it binds anything else."""
    if isinstance(stmt, ast.Assign):
        targets = stmt.targets
    elif isinstance(stmt, ast.AugAssign | ast.AnnAssign):
        targets = [stmt.target]
    else:
        return None
    names: list[str] = []
    for target in targets:
        elements = target.elts if isinstance(target, ast.Tuple) else [target]
        for element in elements:
            if not isinstance(element, ast.Name):
                return None
            names.append(element.id)
    return names


def check_nodes(fn: ast.AST) -> set[int]:
    """The ``id``s of the nodes of ``fn`` that only check arguments or build messages:
    arithmetic there is not a formula.

    The one rule, used by the audit and by the mutation pool (tools/mutation.py): a node is a
    check when it lies inside a check root (`_check_roots`), or inside an assignment of names
    that are read nowhere but inside checks (e.g. ``asymmetry = (a - a.T).abs() / scale`` feeding only
    ``if (asymmetry > tol).any(): raise ...``), transitively. A name also read by a formula or
    returned keeps its line. Names are tracked per function, so a name reassigned for a check
    and for a formula counts as a formula (the cautious side)."""
    sunk: set[int] = set()  # ids of the nodes inside checks

    def sink(node: ast.AST) -> None:
        for sub in ast.walk(node):
            sunk.add(id(sub))

    for root in _check_roots(fn):
        sink(root)
    assignments = [
        (stmt, names)
        for stmt in ast.walk(fn)
        if isinstance(stmt, ast.stmt) and (names := _assigned_names(stmt)) is not None
    ]
    loads: dict[str, list[ast.Name]] = {}
    for node in ast.walk(fn):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
            loads.setdefault(node.id, []).append(node)
    changed = True
    while changed:
        changed = False
        for stmt, names in assignments:
            if id(stmt) in sunk:
                continue
            reads = [n for name in names for n in loads.get(name, [])]
            # an augmented assignment reads its own target; that read is part of the statement
            own = {id(sub) for sub in ast.walk(stmt)}
            outside = [n for n in reads if id(n) not in own]
            if names and outside and all(id(n) in sunk for n in outside):
                sink(stmt)
                changed = True
    return sunk


def check_spans(tree: ast.AST) -> set[tuple[int, int, int, int]]:
    """Source spans ``(line, col, end_line, end_col)`` of every check node (`check_nodes`) of
    the functions in ``tree``: the mutation runner plants no bug there."""
    spans = set()
    for fn in ast.walk(tree):
        if isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef):
            sunk = check_nodes(fn)
            for node in ast.walk(fn):
                if id(node) in sunk and hasattr(node, "end_lineno"):
                    spans.add((node.lineno, node.col_offset, node.end_lineno, node.end_col_offset))
    return spans


def formula_lines(fn: ast.AST) -> set[int]:
    """The lines of ``fn`` (an ``ast.FunctionDef``) that compute, nested functions included."""
    lines = set()
    checks = check_nodes(fn)
    body = fn.body if isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef) else [fn]
    for stmt in body:
        for node in ast.walk(stmt):
            if id(node) in checks:
                continue  # an argument check or a message
            if isinstance(node, ast.BinOp) and isinstance(node.op, _ARITHMETIC):
                if isinstance(node.op, ast.Mod) and isinstance(node.left, ast.Constant):
                    continue  # string formatting
                if not (isinstance(node.left, ast.Constant) and isinstance(node.right, ast.Constant)):
                    lines.add(node.lineno)
            elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
                if not isinstance(node.operand, ast.Constant):
                    lines.add(node.lineno)
            elif isinstance(node, ast.AugAssign) and isinstance(node.op, _ARITHMETIC):
                lines.add(node.lineno)
            elif isinstance(node, ast.Call) and _call_name(node) in MATH_CALLS:
                lines.add(node.lineno)
    return lines


def _decoration(fn: ast.FunctionDef) -> tuple[str | None, tuple[str, ...]]:
    for dec in fn.decorator_list:
        call = dec if isinstance(dec, ast.Call) else None
        target = call.func if call else dec
        name = target.attr if isinstance(target, ast.Attribute) else getattr(target, "id", None)
        if name == "implements" and call is not None:
            ids = tuple(a.value for a in call.args if isinstance(a, ast.Constant))
            return "implements", ids
        if name == "plumbing":
            return "plumbing", ()
    return None, ()


def _module_name(path: pathlib.Path) -> str:
    rel = path.relative_to(_ROOT.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _files() -> list[pathlib.Path]:
    files = [p for d in _SCANNED for p in sorted((_ROOT / d).rglob("*.py"))]
    return [*files, _ROOT / "nn.py"]


def _is_public(name: str) -> bool:
    return not name.startswith("_") or name in ("__call__",)


def formula_functions(paths: Iterable[pathlib.Path] | None = None) -> list[FormulaFunction]:
    """Every function and method (not nested) of the scanned packages with a formula line."""
    out = []
    for path in paths or _files():
        module = _module_name(path)
        tree = ast.parse(path.read_text(), filename=str(path))
        rel = str(path.relative_to(_ROOT.parent))

        def visit(body, prefix: str, public: bool, module=module, rel=rel) -> None:
            for node in body:
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                    lines = formula_lines(node)
                    if lines:
                        declared, ids = _decoration(node)
                        out.append(
                            FormulaFunction(
                                name=f"{module}.{prefix}{node.name}",
                                file=rel,
                                line=node.lineno,
                                public=public and _is_public(node.name),
                                declared=declared,
                                derivations=ids,
                                lines=tuple(sorted(lines)),
                            )
                        )
                elif isinstance(node, ast.ClassDef):
                    visit(
                        node.body, f"{prefix}{node.name}.", public and _is_public(node.name)
                    )

        visit(tree.body, "", True)
    return out


@dataclasses.dataclass(frozen=True)
class Audit:
    unbound_derivations: tuple[str, ...]
    unbound_functions: tuple[str, ...]  # @implements, but no binding of its derivation calls it
    undeclared_formulas: tuple[str, ...]  # public, computes, neither decorator
    functions: dict[str, dict]  # canonical name -> {"derivations": [...], "bound": bool, ...}

    @property
    def ok(self) -> bool:
        return not (self.unbound_derivations or self.unbound_functions or self.undeclared_formulas)

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def audit(results) -> Audit:
    """The audit of a full verification run (``results`` of every derivation and check)."""
    from genmath._implements import implementations, plumbing_reasons

    derivation_results = [r for r in results if r.kind == "derivation"]
    unbound_derivations = tuple(r.id for r in derivation_results if not r.bindings)
    # which functions each derivation's bindings called
    called_by: dict[str, set[str]] = {}
    for r in derivation_results:
        for b in r.bindings:
            called_by.setdefault(r.id, set()).update(b.called if b.ok else ())
    functions: dict[str, dict] = {}
    unbound = []
    for name, (_, ids) in sorted(implementations().items()):
        bound_by = [i for i in ids if name in called_by.get(i, set())]
        functions[name] = {"derivations": list(ids), "bound": bool(bound_by), "bound_by": bound_by}
        if not bound_by:
            unbound.append(name)
    plumbing = plumbing_reasons()
    for name, reason in sorted(plumbing.items()):
        functions[name] = {"derivations": [], "bound": True, "plumbing": reason}
    undeclared = tuple(
        f.name for f in formula_functions() if f.public and f.declared is None
    )
    return Audit(unbound_derivations, tuple(unbound), undeclared, functions)
