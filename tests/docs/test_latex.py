"""How the site breaks a long derivation equation over lines (genmath/derivations/_linebreak.py):
every line within the width it was given, brackets that KaTeX can typeset on each line, and
a matrix relation shown component by component. The browser test (`test_site.py`) measures
the same equations as Chromium lays them out."""

from __future__ import annotations

import re

import sympy as sp

from genmath.derivations._linebreak import display, tex_width

WIDTH = 40


def _lines(body: str) -> list[str]:
    inner = body.removeprefix("\\begin{aligned}\n").removesuffix("\n\\end{aligned}")
    return inner.split(" \\\\\n")


def _balanced_left_right(line: str) -> bool:
    # \left and \right must pair within one line of an aligned block; \Bigl and \Bigr need not
    return len(re.findall(r"\\left\b", line)) == len(re.findall(r"\\right\b", line))


def test_an_equation_that_fits_stays_on_one_line():
    x, y = sp.symbols("x y")
    assert display(y, "=", x + 1, width=WIDTH) == "y = x + 1"


def test_a_long_sum_breaks_at_its_terms():
    y = sp.Symbol("y")
    a = sp.symbols("a1:25")
    body = display(y, "=", sp.Add(*a), width=WIDTH)
    lines = _lines(body)
    assert len(lines) > 2
    assert all(tex_width(line) <= WIDTH for line in lines), lines
    assert lines[0].startswith("y &=")
    shown = "".join(lines)
    assert all(f"a_{{{k}}}" in shown for k in range(1, 25))  # every term, once
    assert shown.count("+") == 23


def test_a_product_whose_factor_is_a_long_sum_breaks_inside_the_brackets():
    y, x, z = sp.symbols("y x z")
    a = sp.symbols("a1:25")
    rhs = x * z * sp.Add(*a) + 1  # one term, wider than a line on its own
    body = display(y, "=", rhs, width=WIDTH)
    lines = _lines(body)
    assert len(lines) > 2, body
    assert all(tex_width(line) <= WIDTH + 4 for line in lines), lines
    assert all(_balanced_left_right(line) for line in lines), lines
    assert body.count(r"\Bigl(") == body.count(r"\Bigr)") == 1


def test_a_fraction_with_a_long_numerator_is_split_as_one_over_the_denominator():
    y, d = sp.symbols("y d", positive=True)
    a = sp.symbols("a1:25")
    body = display(y, "=", sp.Add(*a) / d, width=WIDTH)
    assert r"\frac{1}{d}\Bigl(" in body
    assert all(tex_width(line) <= WIDTH + 8 for line in _lines(body))


def test_a_wide_matrix_relation_is_shown_component_by_component():
    a = sp.symbols("a1:25")
    b = sp.symbols("b1:25")
    lhs = sp.Matrix([sp.Add(*a), a[0]])
    rhs = sp.Matrix([sp.Add(*b), b[0]])
    body = display(lhs, "=", rhs, width=WIDTH)
    assert r"\text{(1)}" in body and r"\text{(2)}" in body and "matrix" not in body
    lines = _lines(body)
    assert all(_balanced_left_right(line) for line in lines)
    assert all(tex_width(line) <= WIDTH + 4 for line in lines), lines


def test_a_narrow_matrix_stays_a_matrix():
    x = sp.Symbol("x")
    body = display(sp.Matrix([x, 1]), "=", sp.Matrix([x, 1]), width=WIDTH)
    assert "matrix" in body and "aligned" not in body


def _block_width(body: str) -> float:
    # an aligned block is as wide as its widest left cell plus its widest right cell
    left, right = [], []
    for line in _lines(body):
        before, amp, after = line.partition("&")
        left.append(tex_width(before) if amp else tex_width(before))
        right.append(tex_width(after) if amp else 0.0)
    return max(left) + max(right)


def test_a_wide_left_side_does_not_push_the_right_column_off_the_line():
    a = sp.symbols("a1:25")
    b = sp.symbols("b1:25")
    body = display(sp.Add(*a), "=", sp.Add(*b), width=WIDTH)
    assert _block_width(body) <= WIDTH + 4, body
    assert all(_balanced_left_right(line) for line in _lines(body))


def test_a_long_function_argument_breaks_inside_its_brackets():
    y = sp.Symbol("y")
    a = sp.symbols("a1:25", positive=True)
    body = display(y, "=", sp.log(sp.Add(*a)) * sp.exp(sp.Add(*a)), width=WIDTH)
    lines = _lines(body)
    assert len(lines) > 2, body
    assert _block_width(body) <= WIDTH + 4, body
    assert all(_balanced_left_right(line) for line in lines), lines
    shown = "".join(lines)
    assert all(f"a_{{{k}}}" in shown for k in range(1, 25))


def test_a_wide_fraction_inside_a_function_is_opened_to_break():
    y, d = sp.symbols("y d", positive=True)
    a = sp.symbols("a1:25", positive=True)
    body = display(y, "=", sp.sqrt(sp.exp(sp.Add(*a) / d)), width=WIDTH)
    assert _block_width(body) <= WIDTH + 4, body
    assert all(_balanced_left_right(line) for line in _lines(body))


def test_widths_follow_katex_glyphs():
    # measured in Chromium: an operator with its spaces is about 2.2 letters, \quad 1.8
    assert tex_width("a + b") > tex_width("abcd")
    assert tex_width(r"a\quad b") > tex_width("abc")
    assert tex_width(r"\mathcal{N}") > tex_width("N")
    assert tex_width(r"\tilde{a}") == tex_width("a")
