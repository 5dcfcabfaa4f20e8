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

__all__ = ["normal_draw", "uniform_draw", "integer_draw", "float64_default", "in_float64"]


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


def _first_integer(seed, low, high) -> int:
    import torch

    generator = torch.Generator().manual_seed(int(seed))
    return int(torch.randint(int(low), int(high), (1,), generator=generator)[0])


integer_draw = implemented_function(
    sp.Function("i_seed", integer=True), lambda seed, low, high: _first_integer(seed, low, high)
)
"""``integer_draw(seed, low, high)``: the first ``torch.randint(low, high, (1,), generator=...)``."""


class float64_default:
    """Run code that works in torch's default dtype (schedules built from a step count, the
    discrete families' times) in float64, restoring the default afterwards."""

    def __enter__(self):
        import torch

        self._saved = torch.get_default_dtype()
        torch.set_default_dtype(torch.float64)
        return self

    def __exit__(self, *exc):
        import torch

        torch.set_default_dtype(self._saved)
        return False


def in_float64(evaluate):
    """``evaluate`` run under `float64_default`."""

    def wrapped(points):
        with float64_default():
            return evaluate(points)

    return wrapped
