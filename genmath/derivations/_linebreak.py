r"""Long derivation equations broken over lines for the site's column.

KaTeX does not break display math, so an equation wider than the page's text column scrolls
sideways. [`display`][genmath.derivations._linebreak.display] prints ``lhs relation rhs`` with
the site's printer ([`genmath.derivations._latex`][genmath.derivations._latex]) and, when the
printed width ([`tex_width`][genmath.derivations._linebreak.tex_width], measured in the width
of an italic x) passes the budget, splits it at top-level ``+``/``-`` terms, then inside the
widest term's factors and brackets, and packs the pieces into ``aligned`` rows whose
delimiters balance on every row.
"""

from __future__ import annotations

import re
from typing import Any

import sympy as sp
from sympy.core.function import AppliedUndef, _coeff_isneg

from ._latex import Expectation, _SitePrinter, readable

__all__ = ["display", "tex_width"]

# --------------------------------------------------------------------------- line breaks

_MACRO = re.compile(r"\\([A-Za-z]+)")
# Printed widths in "characters", the width of an italic x in KaTeX's display math (about
# 11 px on the site), measured in headless Chromium: a string of ten copies of each token
# against one. Macros that print nothing of their own (the delimiter or letter after them
# is counted), or a glyph as wide as a letter, are not listed.
_ZERO_WIDTH = {"left", "right", "middle", "big", "Big", "bigg", "Bigg", "bigl", "bigr", "Bigl",
               "Bigr", "biggl", "biggr", "Biggl", "Biggr", "limits", "displaystyle", "mathbb",
               "mathbf", "boldsymbol", "tilde", "bar", "hat", "vec", "dot", "ddot", "overline",
               "widetilde", "widehat"}
_MACRO_WIDTH = {"quad": 1.8, "qquad": 3.6, "sqrt": 1.5, "infty": 1.8, "int": 3.0, "sum": 2.9,
                "prod": 2.9, "bmod": 4.3, "partial": 1.0, "nabla": 1.3}
# relations and binary operators, with the space KaTeX puts on both sides (a + a is 4 x wide)
_OPERATOR_WIDTH = 2.2
_OPERATORS = {"le", "ge", "leq", "geq", "ne", "neq", "approx", "sim", "simeq", "equiv",
              "propto", "to", "mapsto", "in", "cdot", "times", "mid", "pm", "mp", "circ"}
_NAMED = {"log", "exp", "sin", "cos", "tan", "tanh", "min", "max", "det", "tr", "lim", "sup",
          "inf", "arg", "sgn", "erf"}
_SPACES = {",": 0.3, "!": -0.3, ";": 0.5, ":": 0.4, " ": 0.3}
# letters of these alphabets, per character (\mathcal{N} is 1.7 x wide, \mathrm{KL} 2.5)
_ALPHABET_WIDTH = {"mathcal": 1.7, "mathrm": 1.2, "operatorname": 1.0, "text": 0.9,
                   "mathtt": 1.0}


def _group(tex: str, start: int) -> tuple[str, int]:
    """The brace group starting at ``tex[start] == '{'`` and the index after it."""
    depth = 0
    for k in range(start, len(tex)):
        if tex[k] == "{" and (k == 0 or tex[k - 1] != "\\"):
            depth += 1
        elif tex[k] == "}" and tex[k - 1] != "\\":
            depth -= 1
            if depth == 0:
                return tex[start + 1 : k], k + 1
    return tex[start + 1 :], len(tex)


def tex_width(tex: str) -> float:
    """Roughly how many characters (see `_ZERO_WIDTH`) ``tex`` prints: fractions as their
    wider part, scripts at 70%, macros as the glyphs they print, operators with their space."""
    width, k = 0.0, 0
    while k < len(tex):
        c = tex[k]
        if c == "\\":
            m = _MACRO.match(tex, k)
            if m is None:  # an escaped character or a spacing command
                width += _SPACES.get(tex[k + 1 : k + 2], 1.0)
                k += 2
                continue
            name = m.group(1)
            k = m.end()
            if name in ("frac", "dfrac", "tfrac") and k < len(tex) and tex[k] == "{":
                num, k = _group(tex, k)
                den, k = _group(tex, k) if k < len(tex) and tex[k] == "{" else ("", k)
                scale = 0.75 if name == "tfrac" else 1.0
                width += scale * max(tex_width(num), tex_width(den)) + 0.4
            elif name in _ALPHABET_WIDTH and k < len(tex) and tex[k] == "{":
                body, k = _group(tex, k)
                if name in ("text", "mathtt"):
                    width += _ALPHABET_WIDTH[name] * len(body)
                else:
                    width += _ALPHABET_WIDTH[name] * tex_width(body)
            elif name in _NAMED:
                width += 0.8 * len(name) + 0.3  # an operator name prints as its upright letters
            elif name in _OPERATORS:
                width += _OPERATOR_WIDTH
            elif name in _MACRO_WIDTH:
                width += _MACRO_WIDTH[name]
            elif name not in _ZERO_WIDTH:
                width += 1.0
        elif c in "^_":
            k += 1
            if k < len(tex) and tex[k] == "{":
                body, k = _group(tex, k)
            else:
                body, k = tex[k : k + 1], k + 1
            width += 0.7 * tex_width(body)
        elif c in "{}& ":
            k += 1
        elif c in "=+-<>":
            width += _OPERATOR_WIDTH
            k += 1
        else:
            width += 1.0
            k += 1
    return width


def _terms(expr: Any, printer: _SitePrinter, budget: float = float("inf")) -> list[tuple[str, str]]:
    """The top-level terms of a sum as ``(sign, tex)``, in the order sympy prints them; a term
    wider than ``budget`` is itself split (see `_split_term`), so every piece can be put on a
    line of its own."""
    if not isinstance(expr, sp.Add):
        return _split_term(expr, printer, budget)
    out = []
    for k, term in enumerate(printer._as_ordered_terms(expr, order=None)):
        # as sympy's _print_Add: a negative term prints as '- (its negation)'
        sign = "-" if _coeff_isneg(term) else ("" if k == 0 else "+")
        if sign == "-":
            term = -term
        if printer._needs_add_brackets(term):
            pieces = [("", rf"\left({printer._print(term)}\right)")]
        else:
            pieces = _split_term(term, printer, budget)
        out.append((sign, pieces[0][1]))
        out += pieces[1:]
    return out


def _wrap(prefix: str, inner: list[tuple[str, str]], suffix: str) -> list[tuple[str, str]]:
    r"""``prefix`` before the first piece and ``suffix`` after the last: the pieces of a sum
    between the big brackets of a product (``\Bigl(`` and ``\Bigr)`` need not pair on one
    line, as ``\left(`` and ``\right)`` must)."""
    sign, tex = inner[0]
    pieces = [("", f"{prefix}{f'{sign} ' if sign else ''}{tex}"), *inner[1:]]
    last_sign, last = pieces[-1]
    pieces[-1] = (last_sign, last + suffix)
    return pieces


def _split_term(term: Any, printer: _SitePrinter, budget: float, depth: int = 0) -> list[tuple[str, str]]:
    r"""A product, fraction or function of a sum too wide for ``budget``, as pieces: the sum's
    terms between big brackets, ``\frac{1}{d}\Bigl(`` ... ``\Bigr)`` for a fraction whose
    numerator is the wide part. The value printed is the term's (the pieces are printed from
    its own subexpressions); one that has no sum inside stays whole."""
    tex = printer._print(term)
    if tex_width(tex) <= budget or depth > 8 or not isinstance(term, sp.Basic):
        return [("", tex)]

    def inner(expr):
        return _terms(expr, printer, budget) if isinstance(expr, sp.Add) else _split_term(
            expr, printer, budget, depth + 1)

    if isinstance(term, sp.Mul):
        num, den = sp.fraction(term)
        if den != 1 and tex_width(printer._print(den)) > 0.8 * budget:
            # the denominator is the wide part: numerator times (denominator)^{-1}
            below = inner(den)
            if len(below) > 1:
                above = inner(num) if num != 1 else [("", "1")]
                if isinstance(num, sp.Add) and len(above) > 1:
                    above = _wrap(r"\Bigl(", above, r"\Bigr)")
                return above + _wrap(r"\Bigl(", below, r"\Bigr)^{-1}")
        if den != 1 and num != 1:
            over = rf"\frac{{1}}{{{printer._print(den)}}}"
            pieces = inner(num)
            if len(pieces) > 1:
                return _wrap(over + r"\Bigl(", pieces, r"\Bigr)")
        factors = list(term.as_ordered_factors())
        widest = max(factors, key=lambda f: tex_width(printer._print(f)))
        rest = sp.Mul(*[f for f in factors if f is not widest])
        pieces = inner(widest)
        if len(pieces) > 1:
            if rest == 1:
                head = ""
            elif rest == -1:
                head = "-"
            else:
                head = printer._print(rest)
                if isinstance(rest, sp.Add):
                    head = rf"\left({head}\right)"
            bracket = isinstance(widest, sp.Add)
            return _wrap(head + (r"\Bigl(" if bracket else " "), pieces,
                         r"\Bigr)" if bracket else "")
        return [("", tex)]
    if isinstance(term, Expectation):
        density, body, _ = term.args
        pieces = inner(body)
        if len(pieces) > 1:
            head = rf"\mathbb{{E}}_{{{printer._print(density)}}}\Bigl["
            return _wrap(head, pieces, r"\Bigr]")
    if isinstance(term, sp.Abs):
        pieces = inner(term.args[0])
        if len(pieces) > 1:
            return _wrap(r"\Bigl|", pieces, r"\Bigr|")
    if isinstance(term, sp.Pow) and term.exp.is_Integer and term.exp > 0:
        pieces = inner(term.base)
        if len(pieces) > 1:
            return _wrap(r"\Bigl(", pieces, rf"\Bigr)^{{{term.exp}}}")
    if isinstance(term, sp.Pow) and term.exp == sp.S.Half:
        pieces = inner(term.base)
        if len(pieces) > 1:
            return _wrap(r"\Bigl(", pieces, r"\Bigr)^{1/2}")
    if isinstance(term, sp.Function) and len(term.args) == 1 and not isinstance(term, AppliedUndef):
        name = {sp.exp: r"\exp", sp.log: r"\log"}.get(term.func)
        if name is None:
            name = rf"\operatorname{{{term.func.__name__}}}"
        pieces = inner(term.args[0])
        if len(pieces) > 1:
            return _wrap(name + r"\Bigl(", pieces, r"\Bigr)")
    if isinstance(term, sp.Derivative) and all(n == 1 for _, n in term.variable_count):
        (variable, _), *more = term.variable_count
        if not more:
            pieces = inner(term.expr)
            if len(pieces) > 1:
                head = rf"\frac{{\partial}}{{\partial {printer._print(variable)}}}"
                return _wrap(head + r"\Bigl(", pieces, r"\Bigr)")
    return [("", tex)]


_DELIMITED = re.compile(r"\\(left|right|middle)(?![A-Za-z])")
_DELIMITER = re.compile(r"\\(left|right|middle)(?![A-Za-z])\s*(\\[A-Za-z]+|\\.|.)")
_ENVIRONMENT = re.compile(r"\\(begin|end)\{[^}]*\}")
_OPENING = ("(", "[", "|", "{", "open", "operator", "")


def _tex_pieces(sign: str, tex: str, budget: float, level: int = 0) -> list[tuple[str, str]]:
    r"""``tex`` cut where a line may break, when it is wider than ``budget``: before a binary
    ``+`` or ``-`` and after a comma that no brace group or environment holds (inside
    ``\left( ... \right)`` pairs, whatever sympy printed them for: a function's argument, an
    expectation's brackets, a derivative's or a substitution's bar). Each piece is
    ``(sign, tex)`` as in `_terms`; a pair of delimiters that ends up on two lines is made
    two fixed-size ones by `_balance`. What no such place cuts stays whole."""
    if tex_width(tex) <= budget:
        return [(sign, tex)]
    # a fraction narrower than a line can still leave no place to break the piece holding
    # it: each further try opens narrower ones (half the width, then a quarter)
    tex = _open_wide(tex, budget / 2**level)
    cuts: list[tuple[int, str]] = []  # (index, '+', '-' or ',')
    depth, k, previous = 0, 0, ""
    while k < len(tex):
        c = tex[k]
        if c == "\\":
            m = _ENVIRONMENT.match(tex, k)
            if m is not None:
                depth += 1 if m.group(1) == "begin" else -1
                k, previous = m.end(), "x"
                continue
            m = _DELIMITER.match(tex, k)
            if m is not None:
                k, previous = m.end(), ("x" if m.group(1) == "right" else "open")
                continue
            m = _MACRO.match(tex, k)
            if m is not None:
                name = m.group(1)
                k = m.end()
                if name in _OPERATORS:
                    previous = "operator"
                elif not name.endswith("l") or not name.lower().startswith("big"):
                    previous = "x"  # \Bigl and the like: the delimiter after it sets it
                continue
            if tex[k + 1 : k + 2] in "{|":
                previous = "open"
            elif tex[k + 1 : k + 2] not in ",;:! ":
                previous = "x"
            k += 2
            continue
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
        if depth == 0 and c in "+-" and previous not in _OPENING:
            cuts.append((k, c))
        elif depth == 0 and c == ",":
            cuts.append((k + 1, ","))
        if c in "+-=<>,;&":
            previous = "operator"
        elif c in "([|":
            previous = c
        elif c not in " {":
            previous = "x"
        k += 1
    if not cuts:
        return [(sign, tex)] if level >= 2 else _tex_pieces(sign, tex, budget, level + 1)
    pieces, start, lead = [], 0, sign
    for index, kind in cuts:
        piece = tex[start:index].strip()
        if piece:
            pieces.append((lead, piece))
        lead, start = ("", index) if kind == "," else (kind, index + 1)
    pieces.append((lead, tex[start:].strip()))
    if level >= 2:
        return pieces
    return [p for lead, piece in pieces for p in _tex_pieces(lead, piece, budget, level + 1)]


def _brace_depths(tex: str) -> list[int]:
    """The brace and environment depth at each index of ``tex`` (``\\{`` is no brace)."""
    depths, depth, k = [0] * len(tex), 0, 0
    while k < len(tex):
        m = _ENVIRONMENT.match(tex, k) if tex[k] == "\\" else None
        if m is not None:
            depth += 1 if m.group(1) == "begin" else 0
            for j in range(k, m.end()):
                depths[j] = depth
            depth -= 1 if m.group(1) == "end" else 0
            k = m.end()
            continue
        if tex[k] == "\\":
            depths[k : k + 2] = [depth] * len(depths[k : k + 2])
            k += 2
            continue
        if tex[k] == "{":
            depth += 1
        depths[k] = depth
        if tex[k] == "}":
            depth -= 1
        k += 1
    return depths


def _open_wide(tex: str, budget: float) -> str:
    r"""``tex`` with each fraction or square root wider than ``budget`` that no brace group
    holds written so that a line can break inside it (the same value): ``\frac{a}{b}`` as
    ``\frac{1}{b}\Bigl(a\Bigr)``, as ``a\Bigl(b\Bigr)^{-1}`` where the denominator is
    the wide part, ``\sqrt{a}`` as ``\Bigl(a\Bigr)^{1/2}``; the widest first, until none
    is left."""
    for _ in range(50):  # each pass opens one; a bound for safety
        depths = _brace_depths(tex)
        found = []
        for m in re.finditer(r"\\(frac|sqrt)(?![A-Za-z])\s*\{", tex):
            if depths[m.start()] != 0:
                continue
            first, end = _group(tex, m.end() - 1)
            if m.group(1) == "frac":
                if end >= len(tex) or tex[end] != "{":
                    continue
                second, end = _group(tex, end)
                parts = (first, second)
            else:
                parts = (first,)
            width = tex_width(tex[m.start() : end])
            if width > budget:
                found.append((width, m.start(), end, m.group(1), parts))
        if not found:
            return tex
        _, start, end, kind, parts = max(found)
        if kind == "sqrt":
            opened = rf"\Bigl({parts[0]}\Bigr)^{{1/2}}"
        elif tex_width(parts[0]) >= tex_width(parts[1]):
            opened = rf"\frac{{1}}{{{parts[1]}}}\Bigl({parts[0]}\Bigr)"
        else:
            numerator = "" if parts[0].strip() == "1" else parts[0] if re.fullmatch(r"[\w\\{}^ ]*", parts[0]) else rf"\Bigl({parts[0]}\Bigr)"
            opened = rf"{numerator}\Bigl({parts[1]}\Bigr)^{{-1}}"
        tex = tex[:start] + opened + " " + tex[end:]
    return tex


def _balance(row: str) -> str:
    r"""``row`` with each ``\left``/``\right`` (and ``\middle``) whose partner is on another
    row made a ``\Bigl``/``\Bigr`` (``\Big``): KaTeX sizes ``\left ... \right`` to what is
    between them, so they must pair within one row of an ``aligned`` block."""
    marks = list(_DELIMITED.finditer(row))
    convert: set[int] = set()
    stack: list[tuple[int, list[int]]] = []  # each open \left with the \middle inside it
    for k, m in enumerate(marks):
        kind = m.group(1)
        if kind == "left":
            stack.append((k, []))
        elif kind == "middle":
            if stack:
                stack[-1][1].append(k)
            else:
                convert.add(k)
        elif stack:
            stack.pop()
        else:
            convert.add(k)
    for k, middles in stack:
        convert.add(k)
        convert.update(middles)
    if not convert:
        return row
    fixed = {"left": r"\Bigl", "right": r"\Bigr", "middle": r"\Big"}
    out, last = [], 0
    for k, m in enumerate(marks):
        if k in convert:
            out += [row[last : m.start()], fixed[m.group(1)]]
            last = m.end()
    return "".join(out) + row[last:]


def _pack(terms: list[tuple[str, str]], width: float, first: float) -> list[str]:
    """Greedy lines of terms: the first line has ``first`` characters, the others ``width``;
    a term wider than a line is cut where TeX allows (`_tex_pieces`)."""
    terms = [piece for sign, tex in terms for piece in _tex_pieces(sign, tex, min(width, first))]
    lines: list[str] = []
    current, used, room = "", 0.0, first
    for sign, tex in terms:
        piece = (f" {sign} " if sign else "") + tex
        w = tex_width(piece)
        if current and used + w > room:
            lines.append(current)
            current, used, room = piece, w, width
        else:
            current += piece
            used += w
    lines.append(current)
    return lines


def display(lhs: Any, relation: str, rhs: Any, *, width: float = 80, continued: bool = False) -> str:
    """`_display` in the site's notation, else without it (see `latex`)."""
    try:
        return _display(lhs, relation, rhs, width=width, continued=continued)
    except Exception:  # an expression the notation cannot be applied to: print it as it is
        try:
            return _display(lhs, relation, rhs, width=width, continued=continued, notation=False)
        except Exception:
            rel = {"=": "=", "<=": r"\le", ">=": r"\ge"}[relation]
            left = "" if continued else sp.latex(lhs)
            return f"{left} {rel} {sp.latex(rhs)}".strip()


def _display(
    lhs: Any, relation: str, rhs: Any, *, width: float, continued: bool, notation: bool = True
) -> str:
    """The body of a ``$$`` block for ``lhs relation rhs``: one line when it fits in
    ``width`` characters, else an ``aligned`` block broken at the terms of each side (and
    inside a term too wide for a line, see `_split_term`); a matrix relation too wide for a
    line is shown component by component, each labelled by its index. ``continued`` prints
    only ``relation rhs``: the step continues the chain shown just above it, whose last
    right-hand side is this step's left-hand side."""
    printer = _SitePrinter()
    lhs_r, rhs_r = (readable(lhs), readable(rhs)) if notation else (lhs, rhs)
    rel = {"=": "=", "<=": r"\le", ">=": r"\ge"}[relation]
    left = "" if continued else printer.doprint(lhs_r)
    right = printer.doprint(rhs_r)
    if isinstance(lhs_r, sp.MatrixBase) or isinstance(rhs_r, sp.MatrixBase):
        rows = _matrix_rows(None if continued else lhs_r, rel, rhs_r, printer, width)
        if rows is None:
            return f"{left} {rel} {right}".strip()
    elif tex_width(f"{left} {rel} {right}") <= width:
        return f"{left} {rel} {right}".strip()
    else:
        lhs_or_none = None if continued else lhs_r
        rows = _rows([(lhs_or_none, "")], rel, [rhs_r], printer, width)
    rows = [_balance(row) for row in rows]
    return "\\begin{aligned}\n" + " \\\\\n".join(rows) + "\n\\end{aligned}"


#: the indent of a continuation line (``\quad``), and the narrowest right-hand column worth
#: aligning on the relation: a wider left-hand side goes on a line of its own
_INDENT = r"\quad "
_MIN_RIGHT = 0.55


def _rows(
    lefts: list[tuple[Any, str]], rel: str, rights: list[Any], printer: _SitePrinter,
    width: float,
) -> list[str]:
    r"""``aligned`` rows of the relations ``label lhs rel rhs``, one after another (``lhs``
    ``None``: the relation continues the row above), continuation rows indented.

    An ``aligned`` block is as wide as its widest left column plus its widest right column,
    whichever rows they come from: the left-hand sides stay left of the relation only when
    the widest of them leaves the right column at least ``_MIN_RIGHT`` of the width, and the
    right-hand sides are then packed to what is left. Otherwise every row is in the right
    column (the block is as wide as its widest line): each left-hand side on its own lines,
    the relation starting the line after it."""
    heads = [label + ("" if lhs is None else printer.doprint(lhs)) for lhs, label in lefts]
    first_col = max((tex_width(h) for h in heads), default=0.0)
    rel_w = tex_width(f"{rel} ")
    indent = tex_width(_INDENT)
    rows: list[str] = []
    if first_col + rel_w <= (1 - _MIN_RIGHT) * width:
        room = width - first_col
        for head, rhs in zip(heads, rights, strict=True):
            lines = _pack(_terms(rhs, printer, room - indent), room - indent, room - rel_w)
            rows.append(rf"{head} &{rel} {lines[0]}")
            rows += [rf"&{_INDENT}{line}" for line in lines[1:]]
        return rows
    for (lhs, label), rhs in zip(lefts, rights, strict=True):
        if lhs is not None:
            first = width - tex_width(label)
            lines = _pack(_terms(lhs, printer, width - indent), width - indent, first)
            rows.append(rf"&{label}{lines[0]}")
            rows += [rf"&{_INDENT}{line}" for line in lines[1:]]
        lead = label if lhs is None else ""  # a component's label, where no lhs carries it
        first = width - tex_width(lead) - rel_w
        lines = _pack(_terms(rhs, printer, width - indent), width - 2 * indent, first)
        rows.append(rf"&{lead}{rel} {lines[0]}")
        rows += [rf"&{_INDENT}{_INDENT}{line}" for line in lines[1:]]
    return rows


def _matrix_width(expr: Any, printer: _SitePrinter) -> float:
    """Printed width of a matrix: its columns' widest entries side by side."""
    if not isinstance(expr, sp.MatrixBase):
        return tex_width(printer._print(expr))
    columns = [max((tex_width(printer._print(e)) for e in expr.col(j)), default=0.0)
               for j in range(expr.cols)]
    return sum(columns) + 1.5 * expr.cols + 1.0


def _matrix_rows(lhs: Any, rel: str, rhs: Any, printer: _SitePrinter, width: float):
    """Rows of a matrix relation, one component after another (``None`` when it fits on one
    line, or when the two sides are not matrices of one shape)."""
    wide = _matrix_width(rhs, printer) + (0 if lhs is None else _matrix_width(lhs, printer))
    if wide + 2 <= width or not isinstance(rhs, sp.MatrixBase):
        return None
    if isinstance(lhs, sp.MatrixExpr) and not isinstance(lhs, sp.MatrixBase):
        try:  # a product of explicit matrices: its entries, multiplied out (not simplified)
            lhs = lhs.as_explicit()
        except Exception:
            return None
    if lhs is not None and (not isinstance(lhs, sp.MatrixBase) or lhs.shape != rhs.shape):
        return None
    vector = 1 in rhs.shape
    lefts, rights = [], []
    for i in range(rhs.rows):
        for j in range(rhs.cols):
            index = f"{i * rhs.cols + j + 1}" if vector else f"{i + 1},{j + 1}"
            lefts.append((None if lhs is None else lhs[i, j], rf"\text{{({index})}}\quad "))
            rights.append(rhs[i, j])
    return _rows(lefts, rel, rights, printer, width)
