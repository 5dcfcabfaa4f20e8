"""The Runge–Kutta step maps of `sample_ode` (Euler, midpoint, Heun, RK4): each method's one
step on a linear field is its Taylor polynomial, and the methods are bound on random,
non-uniform grids with a model in each of the five parameterizations (DDIM and DPM-Solver
as exponential integrators are in ``samplers.py``).
"""

import functools

import sympy as sp

from ._engine import (
    Binding,
    Derivation,
    Step,
    Uniform,
)
from ._path_cases import (
    scales,
    shared_path,
    shared_schedule,
)
from ._registry import register

# ====================================================================== Runge–Kutta steps
x, t0, t1, lam = sp.symbols("x t_0 t_1 lambda", real=True)
c0, c1, c2, c3 = sp.symbols("c_0:4", real=True)
h = t1 - t0


def _field(state, time):
    """The test field $F(x, t) = (c_0 + c_1 t)\\,x + c_2 + c_3 t$: affine in the state,
    time-dependent, so every stage's state and time enter a step."""
    return (c0 + c1 * time) * state + c2 + c3 * time


def _euler(f):
    return x + h * f(x, t0)


def _midpoint(f):
    k1 = f(x, t0)
    return x + h * f(x + h / 2 * k1, t0 + h / 2)


def _heun(f):
    k1 = f(x, t0)
    k2 = f(x + h * k1, t1)
    return x + h / 2 * (k1 + k2)


def _rk4(f):
    k1 = f(x, t0)
    k2 = f(x + h / 2 * k1, t0 + h / 2)
    k3 = f(x + h / 2 * k2, t0 + h / 2)
    k4 = f(x + h * k3, t1)
    return x + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)


RK_METHODS = {"euler": (_euler, 1), "midpoint": (_midpoint, 2), "heun": (_heun, 2), "rk4": (_rk4, 4)}
_rk_maps = {name: step(_field) for name, (step, _) in RK_METHODS.items()}


def _linear(state, time):
    return lam * state


_z = lam * h
_linear_maps = [step(_linear) for step, _ in RK_METHODS.values()]
_taylor = [x * sum(_z**k / sp.factorial(k) for k in range(order + 1)) for _, order in RK_METHODS.values()]

register(
    Derivation(
        id="D-runge-kutta-steps",
        title="The fixed-step ODE methods' step maps and their orders on linear fields",
        statement=(
            r"One step of $\dot x = F(x, t)$ from $t_0$ to $t_1$, $h = t_1 - t_0$ (negative when "
            r"sampling from noise to data): Euler $x + hF(x, t_0)$; midpoint "
            r"$x + hF(x + \frac h2 k_1, t_0 + \frac h2)$; Heun (trapezoidal, EDM's second-order "
            r"step) $x + \frac h2(k_1 + F(x + hk_1, t_1))$; classical RK4 "
            r"$x + \frac h6(k_1 + 2k_2 + 2k_3 + k_4)$, with $k_1 = F(x, t_0)$ (Hairer et al. "
            r"1993, II.1). The maps are shown for the time-dependent affine field "
            r"$F = (c_0 + c_1 t)x + c_2 + c_3 t$, the field the bindings integrate. On "
            r"$F = \lambda x$ they are the Taylor polynomials of $e^{h\lambda}$ of degree 1, 2, 2 "
            "and 4: the methods' orders."
        ),
        start=sp.ImmutableMatrix([*_rk_maps.values(), *_linear_maps]),
        steps=[
            Step(
                rhs=sp.ImmutableMatrix([*_rk_maps.values(), *_taylor]),
                reason=(
                    r"The first four entries are the step maps themselves. On the linear field "
                    r"$F = \lambda x$ every stage is $x$ times a polynomial in $z = h\lambda$, and the "
                    r"step is $x\sum_{k \le p} z^k/k!$: Euler and the two second-order methods "
                    r"match $e^{z}$ to $O(z^{p+1})$ with $p = 1, 2, 2$, RK4 with $p = 4$."
                ),
            ),
        ],
        symbols=(x, t0, t1, lam, c0, c1, c2, c3),
        references=("hairer1993solving", "karras2022elucidating"),
        code=("genmath.core.dynamics.sample_ode", "genmath.core._solvers.integrate_fixed"),
        tests=("tests/core/test_samplers.py",),
    )
)

# ------------------------------------------------------------- the five parameterizations
# A model predicting `name` whose implied velocity (or denoiser) is a given field: built
# from D-parameterizations' table with the schedule's scales from its sympy definition.
_PARAMETERIZATIONS = ("x0", "eps", "score", "velocity", "v")


@functools.cache
def _table():
    from .parameterizations import _from_x0, _to_x0, a, da, ds, pred, s, x0, x_t

    args = (x_t, pred, a, s, da, ds)
    to_x0 = {n: sp.lambdify(args, _to_x0[n](pred), "math") for n in _PARAMETERIZATIONS}
    from_x0 = {
        n: sp.lambdify((x_t, x0, a, s, da, ds), _from_x0[n](x0), "math")
        for n in _PARAMETERIZATIONS
    }
    return to_x0, from_x0


def _prediction(label, name, *, velocity=None, denoiser=None):
    """``model(x, t)`` predicting ``name`` on schedule ``label`` for a velocity field
    ``velocity(x, t)`` (or a denoiser ``denoiser(x, t)``)."""
    to_x0, from_x0 = _table()

    def model(state, time):
        a_, s_, da_, ds_ = scales(label, time.reshape(1))
        if denoiser is not None:
            clean = denoiser(state, time)
        else:
            clean = to_x0["velocity"](state, velocity(state, time), a_, s_, da_, ds_)
        return from_x0[name](state, clean, a_, s_, da_, ds_)

    return model


def _torch_field(points, coefficients):
    k0, k1, k2, k3 = (points[c] for c in coefficients)

    def field(j):
        return lambda state, time: (k0[j] + k1[j] * time) * state + k2[j] + k3[j] * time

    return field


def _rk_on_path(label, method):
    """``method`` in each parameterization on the path of schedule ``label``: one step on
    the 2-point grid (t_0, t_1) inside the safe interval, in either direction. (The
    parameterization enters a fixed-step method only through the velocity it implies, the
    same conversion for every method.)"""

    def evaluate(points):
        import torch

        from ..core.dynamics import sample_ode

        path = shared_path(label)
        field = _torch_field(points, (c0, c1, c2, c3))
        out = []
        for name in _PARAMETERIZATIONS:
            values = []
            for j in range(points[x].shape[0]):
                grid = torch.stack([points[t0][j], points[t1][j]])
                model = _prediction(label, name, velocity=field(j))
                result = sample_ode(
                    model, points[x][j].reshape(1, 1), grid=grid, method=method,
                    path=path, parameterization=name,
                )
                values.append(result.x[0, 0])
            out.append(torch.stack(values))
        return tuple(out)

    return evaluate


def _rk_without_path(points):
    import torch

    from ..core.dynamics import sample_ode

    field = _torch_field(points, (c0, c1, c2, c3))
    out = []
    for method in RK_METHODS:
        values = []
        for j in range(points[x].shape[0]):
            grid = torch.stack([points[t0][j], points[t1][j]])
            result = sample_ode(field(j), points[x][j].reshape(1, 1), grid=grid, method=method)
            values.append(result.x[0, 0])
        out.append(torch.stack(values))
    return tuple(out)


_coefficient_domain = {c: Uniform(-2.0, 2.0) for c in (c0, c1, c2, c3)}

register(
    Binding(
        derivation="D-runge-kutta-steps",
        code=("genmath.core.dynamics.sample_ode", "genmath.core._solvers.integrate_fixed"),
        expression=tuple(_rk_maps.values()),
        evaluate=_rk_without_path,
        domain={x: Uniform(-3, 3), t0: Uniform(0, 1, ends=True), t1: Uniform(0, 1), **_coefficient_domain},
        samples=16,
        description="one step of sample_ode (euler, midpoint, heun, rk4) of a velocity field, no path, t in [0, 1] either way",
    )
)


def _safe(label):
    lo, hi = shared_schedule(label).safe_interval
    return Uniform(lo, hi)


register(
    Binding(
        derivation="D-runge-kutta-steps",
        code=("genmath.core.dynamics.sample_ode", "genmath.core.dynamics.reparameterize"),
        expression=tuple(_rk_maps["heun"] for _ in _PARAMETERIZATIONS),
        evaluate=_rk_on_path("VP()", "heun"),
        domain={x: Uniform(-3, 3), t0: _safe("VP()"), t1: _safe("VP()"), **_coefficient_domain},
        samples=12,
        description="one heun step on GaussianPath(VP()), the model in each of the five parameterizations",
    )
)
