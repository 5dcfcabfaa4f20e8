r"""Search results show formulas as text, not LaTeX source.

The search index is built from the page HTML before KaTeX runs (in the browser), so its text
holds ``\(\mathcal N(0, \sigma^2)\)``; result snippets would show that. After the build, each
formula in the index is replaced by a plain-text reading of it (``N(0, σ^2)``).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

_GREEK = {
    name: chr(code)
    for name, code in (
        ("alpha", 0x3B1), ("beta", 0x3B2), ("gamma", 0x3B3), ("delta", 0x3B4),
        ("epsilon", 0x3B5), ("varepsilon", 0x3B5), ("zeta", 0x3B6), ("eta", 0x3B7),
        ("theta", 0x3B8), ("kappa", 0x3BA), ("lambda", 0x3BB), ("mu", 0x3BC), ("nu", 0x3BD),
        ("xi", 0x3BE), ("pi", 0x3C0), ("rho", 0x3C1), ("sigma", 0x3C3), ("tau", 0x3C4),
        ("phi", 0x3C6), ("varphi", 0x3C6), ("chi", 0x3C7), ("psi", 0x3C8), ("omega", 0x3C9),
        ("Gamma", 0x393), ("Delta", 0x394), ("Theta", 0x398), ("Lambda", 0x39B),
        ("Sigma", 0x3A3), ("Phi", 0x3A6), ("Psi", 0x3A8), ("Omega", 0x3A9),
    )
}
_SYMBOLS = {
    "nabla": "∇", "partial": "∂", "infty": "∞", "sim": "~", "le": "≤", "leq": "≤",
    "ge": "≥", "geq": "≥", "ne": "≠", "neq": "≠", "approx": "≈", "cdot": "·", "times": "×",
    "to": "→", "mid": "|", "top": "T", "int": "∫", "sum": "Σ", "prod": "Π", "log": "log",
    "exp": "exp", "sqrt": "√", "in": "∈", "pm": "±", "odot": "⊙", "propto": "∝", "ldots": "…",
    "dots": "…", "cdots": "…", "KL": "KL",
}
_MATH = re.compile(r"\\\((.+?)\\\)|\\\[(.+?)\\\]|\$\$(.+?)\$\$", re.DOTALL)
_FRAC = re.compile(r"\\[dt]?frac\s*\{([^{}]*)\}\s*\{([^{}]*)\}")
_COMMAND = re.compile(r"\\([A-Za-z]+)")


def plain(tex: str) -> str:
    """A plain-text reading of a formula, good enough for a search snippet."""
    for _ in range(3):  # nested fractions, innermost first
        tex = _FRAC.sub(r"(\1)/(\2)", tex)

    def command(m: re.Match) -> str:
        name = m.group(1)
        if name in _GREEK:
            return _GREEK[name]
        return _SYMBOLS.get(name, "")

    tex = _COMMAND.sub(command, tex)
    tex = re.sub(r"\\[,;:! ]", " ", tex).replace("\\{", "{").replace("\\}", "}")
    tex = tex.replace("{", "").replace("}", "").replace("&", "").replace("\\\\", " ")
    return re.sub(r"\s+", " ", tex).strip()


def strip_math(text: str) -> str:
    return _MATH.sub(lambda m: plain(next(g for g in m.groups() if g is not None)), text)


def on_post_build(config):
    index = Path(config["site_dir"]) / "search" / "search_index.json"
    if not index.is_file():
        return
    data = json.loads(index.read_text(encoding="utf-8"))
    for doc in data.get("docs", []):
        for field in ("text", "title"):
            if isinstance(doc.get(field), str):
                doc[field] = strip_math(doc[field])
    index.write_text(json.dumps(data, ensure_ascii=False, separators=(",", ":")), encoding="utf-8")
