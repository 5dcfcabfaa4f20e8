"""Shared machinery of the path, schedule, sampler and oracle bindings (not a topic).

* `SCHEDULES`: the built-in schedules (and a user schedule with no closed-form inverse), each
  with the sympy definition its code is compiled from, so a binding can put a schedule's
  $\\alpha_t, \\sigma_t$ into a derivation's expression (``where``) and build the code it runs.
* `scales`: $(\\alpha, \\sigma, \\dot\\alpha, \\dot\\sigma)$ of a schedule at a tensor of times,
  from its sympy definition through numpy, independent of the torch code under test: the
  inputs a binding feeds a sampler (a model's prediction in some parameterization) are built
  with it, so an error in the compiled schedule cannot cancel against itself.
* `gaussian_moments`: the sound rewrite that integrates a polynomial in $z$ against the
  standard normal density term by term.
* `prescribed_noise`: runs the SDE samplers on given Gaussian draws, so a binding compares
  one step of Euler–Maruyama or of the Langevin corrector with its formula at those draws.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
from collections.abc import Callable, Iterator, Sequence

import sympy as sp

from ._engine import sound_rewrite

__all__ = [
    "ScheduleCase",
    "SCHEDULES",
    "schedule_case",
    "scales",
    "scale_case_values",
    "shared_schedule",
    "shared_path",
    "standard_normal_density",
    "gaussian_moments",
    "prescribed_noise",
    "expand_or_together",
    "point",
]

T = sp.Symbol("t", nonnegative=True)  # the time symbol of the schedules' definitions
_LAM = sp.Symbol("lambda", real=True)


@dataclasses.dataclass(frozen=True)
class ScheduleCase:
    """A schedule the bindings run: how to build it and its sympy definition in `T`."""

    label: str
    build: Callable[[], object]
    alpha: sp.Expr
    sigma: sp.Expr
    inverse: sp.Expr | None  # closed-form t(lambda) in `_LAM`, None: bisection
    # the time interval where the schedule's f, g and derivatives are finite: a binding of
    # a formula that is singular at an end (CondOT's f at t = 1) samples inside it
    finite: tuple[float, float] = (0.0, 1.0)

    def at(self, time) -> tuple[sp.Expr, sp.Expr, sp.Expr, sp.Expr]:
        """$(\\alpha, \\sigma, \\dot\\alpha, \\dot\\sigma)$ at the sympy expression ``time``."""
        a, s = self.alpha, self.sigma
        return tuple(e.subs(T, time) for e in (a, s, sp.diff(a, T), sp.diff(s, T)))

    @property
    def log_snr_range(self) -> tuple[float, float]:
        schedule = self.build()
        return schedule._log_snr_range


def _cases() -> tuple[ScheduleCase, ...]:
    from ..core.schedules import VE, VP, CondOT, CosineVP, Schedule

    def user():
        # a schedule given only by its expressions: the inverse log-SNR is a bisection
        return Schedule(sp.cos(sp.pi * T / 2) ** 2, sp.sin(sp.pi * T / 2), T, name="user")

    ot = CondOT.definition(T, _LAM)
    vp = VP.definition(T, _LAM, sp.Rational(1, 10), 20)
    cos = CosineVP.definition(T, _LAM, sp.Rational(8, 1000))
    cos0 = CosineVP.definition(T, _LAM, 0)
    ve = VE.definition(T, _LAM, sp.Rational(1, 100), 50)
    return (
        ScheduleCase("CondOT()", CondOT, *ot, finite=(0.0, 0.999)),
        ScheduleCase("VP()", VP, *vp),
        ScheduleCase("CosineVP()", CosineVP, *cos, finite=(0.0, 0.999)),
        ScheduleCase("CosineVP(0.0)", lambda: CosineVP(0.0), *cos0, finite=(0.0, 0.999)),
        ScheduleCase("VE()", VE, *ve),
        ScheduleCase(
            "user cos^2/sin", user, sp.cos(sp.pi * T / 2) ** 2, sp.sin(sp.pi * T / 2), None,
            finite=(0.0, 0.999),
        ),
    )


@functools.cache
def _all_cases() -> dict[str, ScheduleCase]:
    return {case.label: case for case in _cases()}


def schedule_case(label: str) -> ScheduleCase:
    return _all_cases()[label]


class _Cases(Sequence):
    """`SCHEDULES`, built on first use (it imports the core)."""

    def __getitem__(self, i):
        return list(_all_cases().values())[i]

    def __len__(self) -> int:
        return len(_all_cases())


SCHEDULES = _Cases()


@functools.cache
def _scale_functions(label: str):
    import numpy as np

    case = schedule_case(label)
    a, s, da, ds = case.at(T)
    fns = [sp.lambdify(T, e, "numpy") for e in (a, s, da, ds)]

    def evaluate(times):
        import torch

        values = np.asarray(times.detach().cpu().numpy(), dtype=np.float64)
        out = []
        for fn in fns:
            with np.errstate(divide="ignore", invalid="ignore"):
                v = np.broadcast_to(np.asarray(fn(values), dtype=np.float64), values.shape)
            out.append(torch.as_tensor(v.copy(), dtype=times.dtype))
        return tuple(out)

    return evaluate


@functools.cache
def shared_schedule(label: str):
    """One built schedule per label, shared by the bindings (a path caches its conversions,
    as in use); bindings of a schedule's own construction build a fresh one."""
    return schedule_case(label).build()


@functools.cache
def shared_path(label: str):
    from ..core.path import GaussianPath

    return GaussianPath(shared_schedule(label))


def scale_case_values(label: str):
    """``(schedule, scales_fn)``: the shared schedule and `scales` for it."""
    return shared_schedule(label), _scale_functions(label)


def scales(label: str, times):
    """$(\\alpha, \\sigma, \\dot\\alpha, \\dot\\sigma)$ of schedule ``label`` at the tensor
    ``times``, from the sympy definition (numpy, float64)."""
    return _scale_functions(label)(times)


def point(points, symbol, n: int, default: float = 0.5):
    """``points[symbol]``, or ``n`` copies of ``default`` when the bound expression does not
    depend on ``symbol`` (the engine draws only the expression's free symbols): the code is
    then evaluated at a value the expression does not care about."""
    import torch

    if symbol in points:
        return points[symbol]
    return torch.full((n,), default, dtype=torch.float64)


# ------------------------------------------------------------------------ Gaussian moments

def standard_normal_density(z: sp.Symbol) -> sp.Expr:
    return sp.exp(-(z**2) / 2) / sp.sqrt(2 * sp.pi)


@sound_rewrite(
    "Gaussian moments: an integral over the real line of a polynomial in z times the standard "
    "normal density is the sum of its coefficients times E z^k = (k-1)!! for even k, 0 for odd k"
)
def gaussian_moments(expr):
    """Integrate each ``Integral(poly(z) * phi(z), (z, -oo, oo))`` term by term."""

    def integrate(integral):
        (z, lo, hi), = integral.limits
        phi = standard_normal_density(z)
        body = sp.expand(integral.function / phi)
        if lo != -sp.oo or hi != sp.oo or body.has(sp.exp(-(z**2) / 2)):
            return integral
        poly = sp.Poly(body, z)
        total = sp.Integer(0)
        for (k,), coefficient in poly.terms():
            if k % 2 == 0:
                total += coefficient * sp.factorial2(k - 1)
        return total

    if isinstance(expr, sp.MatrixBase):
        return expr.applyfunc(gaussian_moments)
    return sp.expand(sp.sympify(expr).replace(lambda e: isinstance(e, sp.Integral), integrate))


# ------------------------------------------------------------------------ prescribed noise

@contextlib.contextmanager
def prescribed_noise(draws: Sequence) -> Iterator[None]:
    """Within the block, the SDE samplers' Gaussian draws are ``draws[0], draws[1], ...``
    (tensors of the requested shapes), in the order the sampler asks for them."""
    from ..core import _solvers

    queue = list(draws)
    original = _solvers._standard_normal

    def given(x, generator):
        if not queue:
            raise AssertionError("the sampler drew more Gaussian noise than was prescribed")
        value = queue.pop(0)
        if tuple(value.shape) != tuple(x.shape):
            raise AssertionError(f"prescribed noise of shape {tuple(value.shape)} for {tuple(x.shape)}")
        return value.to(dtype=x.dtype, device=x.device)

    _solvers._standard_normal = given
    try:
        yield
    finally:
        _solvers._standard_normal = original
    if queue:
        raise AssertionError(f"the sampler left {len(queue)} prescribed draws unused")


@sound_rewrite(
    "sympy's expand, else cancel of the combined fraction (together), entry by entry: each "
    "rewrite keeps the value"
)
def expand_or_together(expr):
    """``expand`` each entry; an entry that does not reduce to 0 is put over one denominator
    and cancelled. Cheaper than the engine's default ladder on matrices whose entries need
    different rewrites."""

    def one(e):
        e = sp.sympify(e).doit()
        reduced = sp.expand(e)
        return reduced if reduced == 0 else sp.cancel(sp.together(e))

    if isinstance(expr, sp.MatrixBase):
        return expr.applyfunc(one)
    return one(expr)
