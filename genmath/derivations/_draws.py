"""The first draws of a seeded `torch.Generator`, as sympy functions of the seed.

A function that draws its own noise (``torch.randn(..., generator=g)``) is bound by seeding
``g`` with an integer the engine samples and putting, into the derivation's expression, the very
number that generator yields: ``where={z: normal_draw(seed)}``. The comparison then checks the
map from the draw to the result, exactly, with no statistics; a function that used its draw
differently (or drew in another order) fails it.
"""

from __future__ import annotations

import sympy as sp
from sympy.utilities.lambdify import implemented_function

__all__ = ["normal_draw", "uniform_draw"]


def _first(kind: str, seed) -> float:
    import torch

    generator = torch.Generator().manual_seed(int(seed))
    draw = torch.randn if kind == "normal" else torch.rand
    return float(draw(1, generator=generator, dtype=torch.float64)[0])


normal_draw = implemented_function(
    sp.Function("z_seed", real=True), lambda seed: _first("normal", seed)
)
"""``normal_draw(seed)``: the first ``torch.randn(1, generator=Generator().manual_seed(seed),
dtype=float64)``."""

uniform_draw = implemented_function(
    sp.Function("u_seed", positive=True), lambda seed: _first("uniform", seed)
)
"""``uniform_draw(seed)``: the first ``torch.rand(1, generator=..., dtype=float64)``."""
