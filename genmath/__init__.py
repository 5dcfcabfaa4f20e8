"""genmath: the math of deep generative models, written once and checked.

The public, citable API is re-exported here explicitly; everything else is private.
"""

__version__ = "0.1.0"

from . import derivations, references, testing  # noqa: E402

__all__ = [
    "__version__",
    "derivations",
    "references",
    "testing",
]
