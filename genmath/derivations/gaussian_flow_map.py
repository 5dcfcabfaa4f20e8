"""The exact probability-flow map of Gaussian data, bound to the oracle in one dimension and,
for a rotated two-dimensional Gaussian, per eigendirection."""

import sympy as sp

from ._engine import Binding, Check, Derivation, LogUniform, Step, Uniform
from ._path_cases import T, expand_or_together, schedule_case, shared_path
from ._registry import register
from .gaussian_marginals import (
    _alpha,
    _at,
    _case,
    _ct,
    _function_where,
    _gaussian_1d,
    _rotated_covariance,
    _TrigPath,
    _velocity,
    alpha_f,
    mu,
    s,
    s1,
    s2,
    sigma_f,
    t,
    t0,
    theta,
    x,
)

_c_from = alpha_f(t0) ** 2 * s**2 + sigma_f(t0) ** 2
FLOW = _alpha * mu + sp.sqrt(_ct / _c_from) * (x - alpha_f(t0) * mu)

register(
    Derivation(
        id="D-gaussian-flow-map",
        title="Exact probability-flow map of Gaussian data",
        statement=(
            r"For $\mathcal N(\mu, \Sigma)$ data the probability-flow ODE $\dot x = u_t(x)$ is solved by the "
            r"affine map $\phi_{s\to t}(x) = \alpha_t\mu + C_t^{1/2} C_s^{-1/2}(x - \alpha_s\mu)$ with the "
            r"symmetric square roots (all $C_t$ share $\Sigma$'s eigenbasis, D-gaussian-path-marginal, so "
            "the ODE decouples into one-dimensional ones, shown here for arbitrary schedules)."
        ),
        start=sp.ImmutableMatrix([sp.Derivative(FLOW, t), sp.Subs(FLOW, t, t0)]),
        steps=[
            Step(
                rhs=sp.ImmutableMatrix([_velocity(FLOW), x]),
                reason=(
                    r"Differentiate the candidate in $t$: it equals the velocity of "
                    r"D-gaussian-marginal-velocity evaluated at the candidate, so it solves the ODE; "
                    r"at $t = s$ (here $t_0$) it is the identity, so by uniqueness it is the flow."
                ),
                method=expand_or_together,
            ),
        ],
        symbols=(x, mu, s, t, t0),
        references=("song2021score",),
        code=("genmath.analytic.Gaussian.flow_map", "genmath.analytic.GaussianMarginal.flow_map"),
        tests=("tests/analytic/test_gaussian.py",),
    )
)

T0 = sp.Symbol("t_from", nonnegative=True)


def _flow_by_code(label, *, rotated):
    """The oracle's flow map from t_from to t; ``rotated``: of a 2-d Gaussian with covariance
    U diag(s_1^2, s_2^2) U^T, its output's first coordinate in the eigenbasis U."""

    def evaluate(points):
        import torch

        from ..analytic import Gaussian
        from ._path_cases import scales

        n = points[T].shape[0]
        out = torch.empty(n, dtype=torch.float64)
        for j in range(n):
            if not rotated:
                law = _gaussian_1d(points, j)
                out[j] = law.flow_map(shared_path(label), points[x][j].reshape(1, 1), points[T0][j], points[T][j])[0, 0]
                continue
            rotation, cov = _rotated_covariance(points, j)
            mean = torch.stack([points[mu][j], points[mu2][j]])
            start = torch.stack([points[x][j], points[x2][j]])
            marginal = Gaussian(mean, cov).marginal(shared_path(label))
            moved = marginal.flow_map(start[None], points[T0][j], points[T][j])[0]
            alpha_to = scales(label, points[T][j].reshape(1))[0][0]
            out[j] = (rotation.T @ (moved - alpha_to * mean))[0]
        return out

    return evaluate


mu2, x2 = sp.symbols("mu_2 x_2", real=True)


def _register_flow_bindings():
    for label in ("VP()", "CondOT()", "VE()"):
        where = {**_function_where(label, t, T), **_function_where(label, t0, T0)}
        times = {T: Uniform(0, 1, ends=True), T0: Uniform(0, 1)}
        register(
            Binding(
                derivation="D-gaussian-flow-map",
                code=("genmath.analytic.Gaussian.flow_map", "genmath.analytic.GaussianMarginal.flow_map"),
                expression=FLOW,
                where=where,
                evaluate=_flow_by_code(label, rotated=False),
                domain={**times, x: Uniform(-4, 4), mu: Uniform(-2, 2), s: LogUniform(0.1, 5)},
                samples=12,
                description=f"Gaussian(mu, s^2).flow_map(GaussianPath({label}), x, t_from, t)",
            )
        )
        # the first eigendirection of a rotated 2-d Gaussian: the 1-d map with s = s_1, the
        # mean and the point in the eigen-coordinates
        a_from = _at(schedule_case(label), T0)[0]
        first = {
            s: s1, mu: 0,
            x: sp.cos(theta) * (x - a_from * mu) + sp.sin(theta) * (x2 - a_from * mu2),
        }
        register(
            Binding(
                derivation="D-gaussian-flow-map",
                code=("genmath.analytic.GaussianMarginal.flow_map",),
                expression=FLOW,
                where={**where, **first},
                evaluate=_flow_by_code(label, rotated=True),
                domain={
                    **times, x: Uniform(-4, 4), x2: Uniform(-4, 4), mu: Uniform(-2, 2),
                    mu2: Uniform(-2, 2), s1: LogUniform(0.1, 5), s2: LogUniform(0.1, 5),
                    theta: Uniform(-3, 3),
                },
                samples=12,
                description=(
                    f"a rotated 2-d Gaussian's flow map on GaussianPath({label}), its first "
                    "coordinate in the covariance's eigenbasis"
                ),
            )
        )


_register_flow_bindings()



# --------------------------------------------------------------- exact-numeric check
def _check_flow_map() -> float:
    import numpy as np
    import torch
    from scipy.integrate import solve_ivp

    from genmath.analytic import Gaussian

    mean, cov, points = _case()
    gaussian = Gaussian(torch.tensor(mean), torch.tensor(cov))
    marginal = gaussian.marginal(_TrigPath())

    def field(t, y):
        return marginal.velocity(torch.tensor(y.reshape(points.shape)), t).numpy().ravel()

    sol = solve_ivp(field, (0.1, 0.9), points.ravel(), method="DOP853", rtol=1e-11, atol=1e-11)
    got = gaussian.flow_map(_TrigPath(), torch.tensor(points), 0.1, 0.9).numpy()
    return float(np.max(np.abs(got - sol.y[:, -1].reshape(points.shape))))


register(
    Check(
        id="C-gaussian-flow-map",
        title="Gaussian oracle: the affine flow map equals integrating the velocity with solve_ivp",
        function=_check_flow_map,
        tolerance=1e-8,
        code=("genmath.analytic.Gaussian.flow_map",),
        tests=("tests/analytic/test_gaussian.py",),
        derivation="D-gaussian-flow-map",
    )
)
