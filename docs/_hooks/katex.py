"""Serve KaTeX from the site itself, so that math renders with no request off the machine.

KaTeX is fetched at build time from the npm registry at the version pinned in
``package.json`` / ``package-lock.json`` (``npm ci``); no third-party minified code is
committed. This hook adds its files to the build under ``assets/katex/``.
"""

from __future__ import annotations

from pathlib import Path

from mkdocs.exceptions import PluginError
from mkdocs.structure.files import File

_WANTED = ("katex.min.js", "katex.min.css", "contrib/auto-render.min.js", "fonts")


def _dist(config) -> Path:
    root = Path(config.config_file_path).parent
    return root / "node_modules" / "katex" / "dist"


def on_config(config):
    if not (_dist(config) / "katex.min.js").is_file():
        raise PluginError(
            "KaTeX is missing: run `npm ci` in the repository root (it installs the pinned "
            "katex package into node_modules/) before building the docs"
        )
    return config


def on_files(files, config):
    dist = _dist(config)
    for wanted in _WANTED:
        path = dist / wanted
        paths = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        for p in paths:
            rel = p.relative_to(dist).as_posix()
            files.append(File.generated(config, f"assets/katex/{rel}", abs_src_path=str(p)))
    return files
