"""The docs site: it builds strictly, references nothing off the machine, and its math renders
in a real headless Chromium (KaTeX served from the site itself)."""

from __future__ import annotations

import functools
import http.server
import os
import shutil
import subprocess
import sys
import threading
from html.parser import HTMLParser
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--virtual-time-budget=15000",
]
# Pages with display and inline math: a generated derivation page and a hand-written one.
MATH_PAGES = ["derivations/D-kl-gaussian/", "verification/"]


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
def server(site_dir):
    handler = functools.partial(_QuietHandler, directory=str(site_dir))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep the test output readable
        pass


class _RenderedMath(HTMLParser):
    """Counts KaTeX output and collects the visible text (minus KaTeX's hidden TeX source)."""

    _HIDDEN = {"script", "style", "annotation", "noscript", "template"}

    def __init__(self):
        super().__init__()
        self.katex = 0
        self.katex_display = 0
        self.text: list[str] = []
        self._hidden_depth = 0

    def handle_starttag(self, tag, attrs):
        classes = (dict(attrs).get("class") or "").split()
        self.katex += "katex" in classes
        self.katex_display += "katex-display" in classes
        if tag in self._HIDDEN:
            self._hidden_depth += 1

    def handle_endtag(self, tag):
        if tag in self._HIDDEN and self._hidden_depth:
            self._hidden_depth -= 1

    def handle_data(self, data):
        if not self._hidden_depth:
            self.text.append(data)


def _rendered_dom(chromium: str, url: str, profile: Path) -> str:
    proc = subprocess.run(
        [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--dump-dom", url],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, f"chromium failed on {url}: {proc.stderr[-2000:]}"
    return proc.stdout


@pytest.mark.browser
@pytest.mark.parametrize("page", MATH_PAGES)
def test_math_renders_in_headless_chromium(chromium, server, page, tmp_path):
    dom = _rendered_dom(chromium, server + page, tmp_path / "profile")
    parsed = _RenderedMath()
    parsed.feed(dom)
    visible = "".join(parsed.text)
    assert parsed.katex > 0, f"{page}: no KaTeX output in the rendered page"
    if page.startswith("derivations/"):
        assert parsed.katex_display > 0, f"{page}: no display math rendered"
    for delimiter in ("$$", "\\(", "\\[", "\\)", "\\]"):
        assert delimiter not in visible, f"{page}: raw math delimiter {delimiter!r} left in the text"


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
