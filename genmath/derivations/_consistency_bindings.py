"""Bindings of the consistency sampler's re-noising step (D-consistency-renoise) and of the
paper's N(k) grid (D-consistency-training-schedule): `renoise` under both rules on four
schedules, and the point count of `training_grid`. Split from `_few_step_bindings.py` to keep
files short; same topic (`families_few_step.py`)."""

from __future__ import annotations

import sympy as sp

from ._engine import Binding, Integers, Uniform
from ._few_step_common import _interval, frac, gap_s1, u1, u2
from ._path_cases import schedule_case, shared_path
from ._registry import register
from .families_few_step import (
    K_it,
    a_from,
    a_to,
    k_it,
    renoise_algorithm1,
    renoise_path,
    s0,
    s1,
    s_from,
    s_to,
    training_steps_expr,
    x_r,
    z_r,
)

_CM = "genmath.families.consistency"

# ------------------------------------------------------------------ re-noising


def _renoise_by_code(label, rule):
    def evaluate(points):
        from ..families.consistency import renoise

        _, _, lo, hi = _interval(label)
        t_from = lo + points[u1] * (hi - lo) / 2
        t_to = t_from + points[u2] * (hi - t_from)
        return renoise(points[x_r][:, None], t_from, t_to, shared_path(label), rule=rule,
                       noise=points[z_r][:, None])[:, 0]

    return evaluate


def _register_renoise_bindings():
    for label in ("VE()", "VP()", "CondOT()", "CosineVP()"):
        lo_s, hi_s, _, _ = _interval(label)
        t_from = lo_s + u1 * (hi_s - lo_s) / 2
        t_to = t_from + u2 * (hi_s - t_from)
        at_from, at_to = schedule_case(label).at(t_from), schedule_case(label).at(t_to)
        where = {a_from: at_from[0], a_to: at_to[0], s_from: at_from[1] / at_from[0],
                 s_to: at_to[1] / at_to[0]}
        for rule, expression in (("algorithm1", renoise_algorithm1), ("path", renoise_path)):
            register(
                Binding(
                    derivation="D-consistency-renoise",
                    code=(f"{_CM}.renoise",),
                    expression=expression,
                    where=where,
                    evaluate=_renoise_by_code(label, rule),
                    domain={u1: Uniform(0, 1, ends=True), u2: Uniform(0, 1, ends=True),
                            x_r: Uniform(-5, 5), z_r: Uniform(-4, 4)},
                    samples=10,
                    description=(
                        f"renoise(x, t_from, t_to, GaussianPath({label}), rule={rule!r}, noise=z),"
                        " t_from in the lower half of the safe interval, t_to in [t_from, t_max]"
                    ),
                )
            )


_register_renoise_bindings()


def _grid_sizes_by_code(points):
    import torch

    from ..core.path import GaussianPath
    from ..core.schedules import VE
    from ..families.consistency import training_grid

    path = GaussianPath(VE(0.002, 80.0))
    out = []
    for j in range(points[K_it].shape[0]):
        total = int(points[K_it][j])
        k = int(torch.floor(points[frac][j] * total))
        first = int(points[s0][j])
        grid = training_grid(k, total, path, first, first + int(points[gap_s1][j]))
        out.append(grid.numel())
    return torch.tensor(out, dtype=torch.float64)


register(
    Binding(
        derivation="D-consistency-training-schedule",
        code=(f"{_CM}.training_grid",),
        expression=training_steps_expr,
        where={k_it: sp.floor(frac * K_it), s1: s0 + gap_s1},
        evaluate=_grid_sizes_by_code,
        domain={frac: Uniform(0, 1, ends=True), K_it: Integers(1, 400_000),
                s0: Integers(2, 20), gap_s1: Integers(0, 300)},
        samples=16,
        description="the number of points of training_grid(k, K, VE path, s0, s1): N(k)",
    )
)
