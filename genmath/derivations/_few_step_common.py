"""What the two few-step binding modules share: the sampling symbols of their domains and the
safe interval of a schedule. Kept apart so that neither binding module imports the other:
`families_few_step` imports both at its end, and a binding module imported first by name (a
parallel worker, the mutation runner) would otherwise meet the other half-initialised."""

from __future__ import annotations

import sympy as sp

from ._path_cases import shared_schedule

u1, u2, frac, gap_s1, w_r = sp.symbols("u_1 u_2 phi d w_r", nonnegative=True)


def _interval(label):
    lo, hi = shared_schedule(label).safe_interval
    return sp.Float(lo, 30), sp.Float(hi, 30), float(lo), float(hi)
