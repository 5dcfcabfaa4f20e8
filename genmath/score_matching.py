"""Score-matching objectives, each returning the value defined in its paper.

`explicit` (Hyvärinen 2005, eq. 2), `implicit` (Hyvärinen 2005, Thm. 1), `sliced`
(Song et al. 2020) and `denoising` (Vincent 2011; any Gaussian path, parameterization and
weighting). Implemented in `genmath.core.score`; see the "Score and score matching" page.
"""

from .core.score import denoising, explicit, implicit, sliced

__all__ = ["explicit", "implicit", "sliced", "denoising"]
