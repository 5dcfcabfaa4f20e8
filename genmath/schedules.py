"""Noise schedules of Gaussian paths: `CondOT`, `VP`, `CosineVP`, `VE`, and `Schedule` for
your own (``Schedule.from_sympy(alpha, sigma, t)``). See the "Probability paths" page."""

from .core.schedules import VE, VP, CondOT, CosineVP, Schedule

__all__ = ["Schedule", "CondOT", "VP", "CosineVP", "VE"]
