"""A "Cite this" block at the end of every model-family page.

The block is BibTeX: genmath itself (the version the site was built from), then every paper
the page cites by its key (``(`ho2020denoising`)``), from `genmath.references` — the same
entries `genmath cite KEY` prints. Derivation pages write their own (see
`genmath.derivations._render.cite_block`).
"""

from __future__ import annotations

import re

_KEY = re.compile(r"`([a-z]+\d{4}[a-z_]+)`")


def genmath_bibtex() -> str:
    from genmath import __version__

    return (
        "@software{genmath,\n"
        "  title   = {{genmath}: the math of deep generative models, written once and checked},\n"
        "  author  = {{The genmath authors}},\n"
        f"  version = {{{__version__}}},\n"
        "  note    = {Sympy-verified derivations bound to the torch code}\n"
        "}"
    )


def on_page_markdown(markdown, page, config, files):
    if not page.file.src_uri.startswith("families/"):
        return markdown
    from genmath.references import REFERENCES, bibtex

    keys = list(dict.fromkeys(k for k in _KEY.findall(markdown) if k in REFERENCES))
    entries = "\n\n".join([genmath_bibtex(), *(bibtex(k) for k in keys)])
    return (
        markdown.rstrip()
        + "\n\n## Cite this\n\nThis page's code is genmath's; its math is the papers'.\n\n"
        + f"```bibtex\n{entries}\n```\n"
    )
