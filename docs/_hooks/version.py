"""Show the version of genmath the site documents, at the foot of every page.

The version is read from the package (``genmath.__version__``), so the site cannot state a
version other than the one it was built from (what changed: the Changelog page).
"""

from __future__ import annotations


def on_config(config):
    from genmath import __version__

    config["copyright"] = f"genmath {__version__}"
    return config
