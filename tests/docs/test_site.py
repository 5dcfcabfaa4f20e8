"""The docs site: it builds strictly, references nothing off the machine, and its math renders
in a real headless Chromium (KaTeX served from the site itself)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest

from genmath import derivations as registry

sys.path.insert(0, str(Path(__file__).resolve().parent))
import site_report  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
STATUSES = ("verified", "verified, cites", "unbound", "failed")


@pytest.fixture(scope="session")
def site_dir(tmp_path_factory) -> Path:
    """The built site: reuse ``$GENMATH_SITE_DIR`` (built by `make docs`), else build it."""
    given = os.environ.get("GENMATH_SITE_DIR")
    if given and (ROOT / given / "index.html").is_file():
        return ROOT / given
    out = tmp_path_factory.mktemp("site")
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, f"mkdocs build --strict failed:\n{proc.stderr[-4000:]}"
    return out


@pytest.fixture(scope="session")
def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        if os.environ.get("GENMATH_REQUIRE_BROWSER"):
            pytest.fail("GENMATH_REQUIRE_BROWSER is set but no chromium executable was found")
        pytest.skip("no chromium executable (apt-get install chromium)")
    return path


@pytest.fixture(scope="session")
def probes(chromium, site_dir, tmp_path_factory):
    """Every page read once by one headless Chromium, at 1400 px and 420 px (see
    `site_report.report`): what the browser tests below assert on."""
    out = site_report.report(site_dir, chromium, tmp_path_factory.mktemp("chromium"))
    if os.environ.get("GENMATH_SITE_REPORT"):  # the counts of `site_report.py`, from this pass
        Path(os.environ["GENMATH_SITE_REPORT"]).write_text(
            json.dumps(out["counts"], indent=1, default=str), encoding="utf-8")
    return out


def _failing(probes, key, width=1400, keep=lambda page: True) -> dict:
    return {p: r[width][key] for p, r in probes["pages"].items() if r[width][key] and keep(p)}


@pytest.mark.browser
def test_every_page_renders_its_math(probes):
    assert len(probes["pages"]) > 100, "the site lost pages (or the page list is wrong)"
    assert not _failing(probes, "raw"), "raw math left in the rendered text"
    assert not _failing(probes, "katexErrors"), "KaTeX could not render some formulas"
    math = probes["pages"]["derivations/D-kl-gaussian/"][1400]
    assert math["displays"] > 0, "a derivation page shows no display math"


@pytest.mark.browser
def test_the_index_shows_every_row_s_status(probes):
    tables = {t["name"]: t for t in probes["index"]}
    assert set(tables) == {"derivations", "checks"}
    expected = {
        "derivations": {d.id for d in registry.derivations()},
        "checks": {c.id for c in registry.checks()},
    }
    for name, table in tables.items():
        assert "status" in table["head"], f"{name}: no status column"
        col = table["head"].index("status")
        ids = [row[0] for row in table["rows"]]
        assert set(ids) == expected[name], f"{name}: rows differ from the registry"
        broken = [r[0] for r in table["rows"] if len(r) != len(table["head"]) or r[col] not in STATUSES]
        assert not broken, f"{name} rows whose cells are split or whose status is missing: {broken}"
        # what the row says is what the verification said (the record the page was built from)
        mismatch = [r[0] for r in table["rows"] if r[col] != table["recorded"][r[0]]]
        assert not mismatch, f"{name} rows showing another status than their record: {mismatch}"
    assert probes["index_icons"] == len(expected["derivations"]) + len(expected["checks"])


@pytest.mark.browser
def test_no_page_is_wider_than_a_420px_screen(probes):
    wide = {
        p: r[420]["sticking"]
        for p, r in probes["pages"].items()
        if 420 in r and r[420]["pageWidth"] > r[420]["viewport"] + 1
    }
    narrow = [p for p, r in probes["pages"].items() if 420 in r]
    assert len(narrow) > 20, f"too few pages read at 420 px: {narrow}"
    assert not wide, f"pages wider than 420 px outside scroll containers: {wide}"


# Derivation displays that may scroll sideways at 1400 px (in their .katex-display scroll
# container), and how many on each page. The rule: only a display holding one box that no
# line break can enter and that is itself wider than the column -- an explicit matrix whose
# row is wider, a `cases` branch, a substitution's subscript -- and each is listed here with
# its box. Everything else is broken over lines by genmath/derivations/_linebreak.py.
UNBREAKABLE_DISPLAYS = {
    "derivations/D-flow-maf-logdet/": (2, "the 3x3 Jacobian matrix inside log|det|"),
    "derivations/D-entropic-ot-duality/": (1, "a Piecewise's cases environment"),
    "derivations/D-mlp-structured-divergence/": (2, "a Subs bar's subscript xi_1 = ..."),
}


@pytest.mark.browser
def test_derivation_equations_fit_at_1400px(probes):
    scrolling = _failing(
        probes, "scrollingDisplayTex", keep=lambda p: p.startswith("derivations/D-")
    )
    beyond = {
        page: tex for page, tex in scrolling.items()
        if len(tex) > UNBREAKABLE_DISPLAYS.get(page, (0, ""))[0]
    }
    assert not beyond, f"derivation equations that scroll sideways at 1400 px: {beyond}"


@pytest.mark.browser
def test_every_id_mention_is_a_link(probes):
    assert not _failing(probes, "unlinked"), "derivation/check ids mentioned without a link"


@pytest.mark.browser
def test_derivation_pages_link_api_prev_next_and_tests(probes):
    missing = {}
    for d in registry.derivations():
        probe = probes["pages"][f"derivations/{d.id}/"][1400]
        links = probe["links"]
        want = ["../"]  # back to the index
        want += [f"../../{t.removesuffix('.py')}/" for t in d.tests]
        public = [c for c in d.code if not any(part.startswith("_") for part in c.split("."))]
        lacking = [w for w in want if w not in links]
        # an API entry: mkdocstrings' anchor (on an API page, or a family page's API section)
        api = {name for name, href in probe["codeLinks"] if "#genmath." in href}
        lacking += [f"API entry of {c}" for c in public if c not in api]
        if lacking:
            missing[d.id] = lacking
    assert not missing, f"derivation pages missing links (index, tests, API entries): {missing}"


@pytest.mark.browser
def test_search_for_tweedie_finds_d_tweedie_first(probes):
    first = probes["search"].get("tweedie")
    assert first and first.partition("?")[0].partition("#")[0].rstrip("/").endswith(
        "derivations/D-tweedie"
    ), first


def _external_references(html: str) -> list[str]:
    class Refs(HTMLParser):
        def __init__(self):
            super().__init__()
            self.refs: list[str] = []

        def handle_starttag(self, tag, attrs):
            a = dict(attrs)
            if tag in ("script", "img", "iframe") and a.get("src"):
                self.refs.append(a["src"])
            if tag == "link" and a.get("href") and a.get("rel") != "canonical":
                self.refs.append(a["href"])

    parser = Refs()
    parser.feed(html)
    return [r for r in parser.refs if r.startswith(("http:", "https:", "//"))]


def test_site_loads_nothing_from_outside(site_dir):
    pages = sorted(site_dir.rglob("*.html"))
    assert pages, "the site has no pages"
    offenders = {}
    for page in pages:
        refs = _external_references(page.read_text(encoding="utf-8"))
        if refs:
            offenders[str(page.relative_to(site_dir))] = refs
    assert not offenders, f"pages load resources from outside the site: {offenders}"
    css = "".join(p.read_text(encoding="utf-8") for p in site_dir.rglob("*.css"))
    assert "fonts.googleapis" not in css and "fonts.gstatic" not in css


def test_katex_is_served_from_the_site(site_dir):
    assert (site_dir / "assets" / "katex" / "katex.min.js").is_file()
    assert (site_dir / "assets" / "katex" / "contrib" / "auto-render.min.js").is_file()
    assert any((site_dir / "assets" / "katex" / "fonts").glob("*.woff2"))
