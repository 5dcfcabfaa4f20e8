"""The pieces of the derivation site that need no browser: the index HTML, the id links, the
step references of statements, how a step's check is named, search snippets."""

from __future__ import annotations

import sys
from html.parser import HTMLParser
from pathlib import Path
from types import SimpleNamespace

import pytest
import sympy as sp

from genmath import derivations as registry
from genmath.derivations import Derivation, Step, _render, _site

HOOKS = Path(__file__).resolve().parents[2] / "docs" / "_hooks"
sys.path.insert(0, str(HOOKS))
import ids  # noqa: E402
import search_text  # noqa: E402


class _Rows(HTMLParser):
    """Cells per row of every table, and the text of each cell."""

    def __init__(self):
        super().__init__()
        self.rows: list[list[str]] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        if tag == "tr":
            self.rows.append([])
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self.rows[-1].append("".join(self._cell).strip())
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def _record(status: str) -> dict:
    counts = {"symbolic": 2, "numeric": 1, "cited": 0, "exact-numeric": 0}
    return {"status": status, "ok": status != "failed", "counts": counts,
            "steps": [{"method": "max error 1e-16"}] * 3, "bindings": []}


def test_index_rows_cannot_be_broken_by_a_title():
    titles = ["q(x_{t-1} | x_t, x_0)", "KL(q||p) and log|det J|", "Q_{s→t} <b>bold</b> & {x}"]
    derivations = [
        SimpleNamespace(id=f"D-t{k}", title=t, code=("genmath.core.path.X",), tests=())
        for k, t in enumerate(titles)
    ]
    checks = [SimpleNamespace(id="C-t", title="a | b", code=(), tests=(), derivation="D-t0")]
    results = {"D-t0": _record("verified"), "D-t1": _record("unbound"),
               "D-t2": _record("failed"), "C-t": _record("verified")}
    page = _site.index_page(derivations, checks, results)
    parsed = _Rows()
    parsed.feed(page)
    widths = {len(row) for row in parsed.rows}
    assert widths == {8, 5}, widths  # header and rows of each table: one width each
    body = [row for row in parsed.rows if row[0].startswith(("D-", "C-"))]
    assert [row[2] for row in body] == [*titles, "a | b"]  # the titles, as text, in one cell
    assert [row[1] for row in body] == ["verified", "unbound", "failed", "verified"]
    assert "<b>bold</b>" not in page and page.count("<svg") == 4
    assert "✅" not in page and "❌" not in page


def test_status_badge_is_an_svg_and_the_word():
    badge = _site.status_badge("verified, cites")
    assert "<svg" in badge and "verified, cites" in badge
    with pytest.raises(ValueError, match="unknown status"):
        _site.status_badge("ok")


def test_areas_name_the_core_abstraction_or_family():
    assert _site.area_of("genmath.core.path.GaussianPath.convert") == "core: path"
    assert _site.area_of("genmath.core._solvers.integrate_sde") == "core: dynamics"
    assert _site.area_of("genmath.families.diffusion.DDPM.loss") == "family: diffusion"
    assert _site.area_of("genmath.analytic.Gaussian") == "analytic"
    assert _site.area_of("torch.exp") is None


def test_statements_name_only_steps_that_exist():
    for d in registry.derivations():
        _render.check_step_references(d)  # raises on a statement naming a missing step
    x = sp.Symbol("x")
    d = Derivation(id="D-test-steps", title="t", statement="Steps 1–2 do it; step 3 checks.",
                   start=x + x, steps=[Step(2 * x, "add"), Step(x * 2, "commute")])
    with pytest.raises(ValueError, match="'step 3' but it has 2 steps"):
        _render.check_step_references(d)


def test_a_custom_rewrite_is_named_in_words_not_by_its_python_name():
    x = sp.Symbol("x", positive=True)
    d = Derivation(id="D-test-words", title="t", statement="s.", start=sp.log(x**2),
                   steps=[Step(2 * sp.log(x), "split the log", method=lambda e: sp.expand_log(e))])
    page = _render.render_markdown(d, d.verify())
    assert "<lambda>" not in page
    assert "a rewrite whose value was checked at random points" in page


def test_known_ids_become_links_and_unknown_ones_are_reported():
    d_id, c_id = registry.derivations()[0].id, registry.checks()[0].id
    html = (f"<p>From ({d_id}), checked by {c_id}; see D-no-such-thing.</p>"
            f'<p><a href="x">{d_id}</a> <span class="arithmatex">\\(D-x\\)</span></p>'
            f"<pre><code>D-planted-in-a-test {d_id}</code></pre>")
    linked, unknown = ids.link_ids(html, "core/paths/")
    assert f'<a class="gm-id" href="../../derivations/{d_id}/">{d_id}</a>' in linked
    assert f'href="../../derivations/#{c_id}">{c_id}</a>' in linked
    assert unknown == ["D-no-such-thing"]  # not the one in a code listing, not math
    assert linked.count('class="gm-id"') == 3  # prose twice, the listing once
    assert '<span class="gm-unregistered-id" title="not a registered id">D-planted-in-a-test' in linked


def test_search_snippets_read_formulas_as_text():
    text = r"Tweedie: \(\mathbb E[x_0 \mid x_t] = \frac{x + \sigma^2 \nabla \log p}{\alpha}\)."
    plain = search_text.strip_math(text)
    assert "\\" not in plain and "(x + σ^2 ∇ log p)/(α)" in plain


def test_every_test_file_a_derivation_names_exists():
    root = Path(__file__).resolve().parents[2]
    missing = [(item.id, t) for item in [*registry.derivations(), *registry.checks()]
               for t in item.tests if not (root / t).is_file()]
    assert not missing, f"derivations name test files that do not exist: {missing}"
