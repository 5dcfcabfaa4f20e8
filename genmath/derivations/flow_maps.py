"""Flow maps (`genmath.core.flow_map`): the normalised-time solve, the semigroup, Lagrangian and
Eulerian identities, and the conversions to the average velocity, on the exact flow map of
Gaussian data (CondOT path, one dimension)."""

import sympy as sp

from ._engine import Binding, Derivation, LogUniform, Step, Uniform
from ._registry import register

_FM = "genmath.core.flow_map"
_TESTS = ("tests/core/test_flow_map.py",)

x, m = sp.symbols("x m", real=True)
s, t, u_mid, tau = sp.symbols("s t u tau", real=True)
q = sp.Symbol("q", positive=True)


def _variance(time):
    return (1 - time) ** 2 * q**2 + time**2


def X(point, start, end):
    """The exact CondOT flow map of N(m, q^2) data from ``start`` to ``end`` (D-gaussian-flow-map)."""
    return (1 - end) * m + sp.sqrt(_variance(end) / _variance(start)) * (point - (1 - start) * m)


def v(point, time):
    """The marginal velocity (D-gaussian-marginal-velocity)."""
    return -m + sp.diff(_variance(tau), tau).subs(tau, time) / (2 * _variance(time)) * (
        point - (1 - time) * m
    )


FLOW = X(x, s, t)
CHORD = (FLOW - x) / (t - s)  # the average velocity
_normalised_time = s + tau * (t - s)

register(
    Derivation(
        id="D-flow-map",
        title="The flow map in normalised time, and its average-velocity form",
        statement=(
            r"The flow map $X(x, s, t)$ of $\dot x = v(x, t)$ is $y(1)$ for the solution of "
            r"$\dot y(\tau) = (t - s)\,v(y, s + \tau(t - s))$, $y(0) = x$: the time change "
            r"$\tau \mapsto s + \tau(t - s)$ maps $[0, 1]$ onto the interval, so one solve over "
            r"$\tau \in [0, 1]$ serves per-sample intervals. The average velocity "
            r"$u = (X - x)/(t - s)$ gives the map back as $X = x + (t - s)\,u$. Shown on the "
            r"exact flow map of Gaussian data $\mathcal N(m, q^2)$ on CondOT "
            r"(D-gaussian-flow-map)."
        ),
        start=sp.ImmutableMatrix(
            [
                sp.Derivative(X(x, s, _normalised_time), tau),
                sp.Subs(FLOW, t, s),
                x + sp.Mul(t - s, CHORD, evaluate=False),
                sp.Subs(sp.Derivative(FLOW, t), t, s),
            ]
        ),
        steps=[
            Step(
                rhs=sp.ImmutableMatrix(
                    [(t - s) * v(X(x, s, _normalised_time), _normalised_time), x, FLOW, v(x, s)]
                ),
                reason=(
                    r"Chain rule through $s + \tau(t - s)$ and the Lagrangian equation of "
                    r"D-gaussian-flow-map; at $t = s$ the map is the identity; the average "
                    r"velocity multiplied back; as $t \to s$ the chord $(X - x)/(t - s)$ becomes "
                    r"$\partial_t X|_{t=s} = v(x, s)$."
                ),
                tag="numeric",
            ),
        ],
        symbols=(x, s, t, tau, m, q),
        references=("boffi2025flow",),
        code=(
            f"{_FM}.flow_map", f"{_FM}.average_velocity_from_map",
            f"{_FM}.map_from_average_velocity", f"{_FM}.consistency_function_from_map",
        ),
        tests=_TESTS,
        domain={s: (0, 1), t: (0, 1), tau: (0, 1), x: (-3, 3), m: (-2, 2), q: (0.2, 3)},
    )
)

register(
    Derivation(
        id="D-flow-map-identities",
        title="Semigroup, Lagrangian and Eulerian identities of a flow map",
        statement=(
            r"A flow map composes, $X(X(x, s, u), u, t) = X(x, s, t)$; moves with the velocity "
            r"at its end, $\partial_t X = v(X, t)$ (Lagrangian); and is constant along the "
            r"trajectories through its start, $\partial_s X + \partial_x X\,v(x, s) = 0$ "
            r"(Eulerian). Shown on the exact CondOT flow map of $\mathcal N(m, q^2)$; "
            r"`flow_map` composes (bound)."
        ),
        start=sp.ImmutableMatrix(
            [
                X(X(x, s, u_mid), u_mid, t),
                sp.Derivative(FLOW, t),
                sp.Derivative(FLOW, s) + sp.Derivative(FLOW, x) * v(x, s),
                sp.Derivative(FLOW, s),
            ]
        ),
        steps=[
            Step(
                rhs=sp.ImmutableMatrix([FLOW, v(FLOW, t), 0, -sp.diff(FLOW, x) * v(x, s)]),
                reason=(
                    r"$\sqrt{C_t/C_u}\sqrt{C_u/C_s} = \sqrt{C_t/C_s}$ and the means cancel; "
                    r"differentiate the affine map in $t$, in $s$ and in $x$; the last row is "
                    r"the Eulerian equation solved for $\partial_s X$."
                ),
                tag="numeric",
            ),
        ],
        symbols=(x, s, t, u_mid, m, q),
        references=("boffi2025flow",),
        code=(f"{_FM}.flow_map",),
        tests=_TESTS,
        domain={s: (0, 1), t: (0, 1), u_mid: (0, 1), x: (-3, 3), m: (-2, 2), q: (0.2, 3)},
    )
)


def _oracle(mean: float, std: float):
    import torch

    from ..analytic import Gaussian
    from ..core.path import GaussianPath
    from ..core.schedules import CondOT

    law = Gaussian(torch.tensor([mean], dtype=torch.float64),
                   torch.tensor([[std**2]], dtype=torch.float64))
    return law.marginal(GaussianPath(CondOT()))


_LAW = {m: sp.Rational(7, 10), q: sp.Rational(13, 10)}


def _flow_by_code(points):
    from ..core.flow_map import average_velocity_from_map, flow_map, map_from_average_velocity

    oracle = _oracle(0.7, 1.3)
    start = points[x].reshape(-1, 1)
    solved = flow_map(oracle.velocity, start, points[s], points[t], steps=48)
    chord = average_velocity_from_map(oracle.flow_map)(start, points[s], points[t])
    rebuilt = map_from_average_velocity(average_velocity_from_map(oracle.flow_map))(
        start, points[s], points[t]
    )
    return solved[:, 0], chord[:, 0], rebuilt[:, 0]


register(
    Binding(
        derivation="D-flow-map",
        code=(f"{_FM}.flow_map", f"{_FM}.average_velocity_from_map",
              f"{_FM}.map_from_average_velocity"),
        expression=(FLOW, CHORD, FLOW),
        where=_LAW,
        evaluate=_flow_by_code,
        domain={x: Uniform(-3, 3), s: Uniform(0, 1, ends=True), t: Uniform(0, 1)},
        samples=16,
        tolerance=1e-7,
        description=(
            "flow_map(v, x, s, t) (RK4, 48 steps in normalised time, per-sample s and t either "
            "way) of the exact CondOT velocity of N(0.7, 1.3^2); the oracle's chord "
            "(X - x)/(t - s) and x + (t - s) u"
        ),
    )
)


def _conversions_by_code(points):
    import torch

    from ..core.flow_map import average_velocity_from_map, consistency_function_from_map

    rows = []
    for j in range(points[x].shape[0]):
        oracle = _oracle(float(points[m][j]), float(points[q][j]))
        start = points[x][j].reshape(1, 1)
        u = average_velocity_from_map(oracle.flow_map, oracle.velocity)
        f = consistency_function_from_map(oracle.flow_map)
        time = points[t][j].reshape(1)
        rows.append(torch.stack([
            f(start, time)[0, 0],
            u(start, time, time)[0, 0],
        ]))
    return tuple(torch.stack(rows).T)


register(
    Binding(
        derivation="D-flow-map",
        code=(f"{_FM}.average_velocity_from_map", f"{_FM}.consistency_function_from_map"),
        expression=(FLOW, v(x, s)),
        where={s: t, t: 0},
        evaluate=_conversions_by_code,
        domain={x: Uniform(-3, 3), t: Uniform(0, 1, ends=True), m: Uniform(-2, 2),
                q: LogUniform(0.1, 5)},
        samples=12,
        description=(
            "consistency_function_from_map(X)(x, t) = X(x, t, 0) and "
            "average_velocity_from_map(X, v)(x, t, t) = v(x, t) on the CondOT Gaussian oracle"
        ),
    )
)


def _semigroup_by_code(points):
    import torch

    from ..core.flow_map import flow_map

    oracle = _oracle(0.7, 1.3)
    start = points[x].reshape(-1, 1)
    # the intermediate time drops out of the composed map (sympy cancels it), so the engine
    # draws none: any u in [0, 1] will do, drawn here from a fixed seed
    u = torch.rand(start.shape[0], generator=torch.Generator().manual_seed(16), dtype=start.dtype)
    middle = flow_map(oracle.velocity, start, points[s], u, steps=48)
    return flow_map(oracle.velocity, middle, u, points[t], steps=48)[:, 0]


register(
    Binding(
        derivation="D-flow-map-identities",
        code=(f"{_FM}.flow_map",),
        expression=X(X(x, s, u_mid), u_mid, t),
        where=_LAW,
        evaluate=_semigroup_by_code,
        domain={x: Uniform(-3, 3), s: Uniform(0, 1, ends=True), u_mid: Uniform(0, 1),
                t: Uniform(0, 1)},
        samples=16,
        tolerance=1e-7,
        description="flow_map composed over [s, u] and [u, t] (any order of the times)",
    )
)


# ------------------------------------------------- the identities' residuals, as code
def _zero_velocity(points, time):
    return points * 0.0


def _residuals_by_code(points):
    """The residual functions with the zero velocity: the Lagrangian one is then the map's
    time derivative, the Eulerian one its derivative in the start time."""
    import torch

    from ..core.flow_map import eulerian_residual, lagrangian_residual, semigroup_residual

    oracle = _oracle(0.7, 1.3)
    start = points[x].reshape(-1, 1)
    d_t = lagrangian_residual(oracle.flow_map, _zero_velocity, start, points[s], points[t])
    d_s = eulerian_residual(oracle.flow_map, _zero_velocity, start, points[s], points[t])
    # the intermediate time cancels from the composed map, so the engine draws none
    u = torch.rand(start.shape[0], generator=torch.Generator().manual_seed(7), dtype=start.dtype)
    composed = semigroup_residual(oracle.flow_map, start, points[s], u, points[t])
    return d_t[:, 0], d_s[:, 0], (composed + oracle.flow_map(start, points[s], points[t]))[:, 0]


register(
    Binding(
        derivation="D-flow-map-identities",
        code=("genmath.core.flow_map.lagrangian_residual", "genmath.core.flow_map.eulerian_residual",
              "genmath.core.flow_map.semigroup_residual"),
        expression=(v(FLOW, t), -sp.diff(FLOW, x) * v(x, s), X(X(x, s, u_mid), u_mid, t)),
        where=_LAW,
        evaluate=_residuals_by_code,
        domain={x: Uniform(-3, 3), s: Uniform(0, 1, ends=True), t: Uniform(0, 1, ends=True)},
        samples=16,
        tolerance=1e-9,
        description=(
            "lagrangian_residual and eulerian_residual of the exact CondOT map of N(0.7, 1.3^2) "
            "with the zero velocity (so the JVPs' dX/dt and dX/ds), and "
            "semigroup_residual + X(x, s, t) (the composed map)"
        ),
    )
)

# ------------------------------------- MeanFlow's identity is the Eulerian equation in u
MAP_FROM_U = x + (t - s) * CHORD
_EULERIAN_IN_U = v(x, s) - CHORD + (t - s) * (sp.diff(CHORD, s) + v(x, s) * sp.diff(CHORD, x))

register(
    Derivation(
        id="D-flow-map-eulerian-average-velocity",
        title="MeanFlow's identity is the Eulerian equation of the map in its average velocity",
        statement=(
            r"Put $X(x, s, t) = x + (t - s)\,u(x, s, t)$ into the Eulerian equation "
            r"$\partial_s X + \partial_x X\,v(x, s) = 0$ (D-flow-map-identities): by the "
            r"product rule $v - u + (t - s)(\partial_s u + v\,\partial_x u) = 0$, i.e. "
            r"$u = v - (s - t)\,\tfrac{d}{ds}u$ with $\tfrac{d}{ds} = \partial_s + v\,\partial_x$ "
            r"the derivative along the trajectory through the start. With MeanFlow's names "
            r"(a jump from time $t$ back to $r$: $s \to t$, $t \to r$) this is "
            r"$u = v - (t - r)\,\tfrac{d}{dt}u$ (D-meanflow-identity): MeanFlow, and the JVP "
            r"tangent $(v, 0, 1)$ of its loss, are the Eulerian identity in $u$. Shown on the "
            r"exact average velocity of the CondOT map of $\mathcal N(m, q^2)$."
        ),
        start=sp.Derivative(MAP_FROM_U, s) + sp.Derivative(MAP_FROM_U, x) * v(x, s),
        steps=[
            Step(
                rhs=_EULERIAN_IN_U,
                reason=(
                    r"Product rule: $\partial_s[(t - s)u] = -u + (t - s)\partial_s u$ and "
                    r"$\partial_x[x + (t - s)u] = 1 + (t - s)\partial_x u$."
                ),
            ),
            Step(
                rhs=sp.Integer(0),
                reason=(
                    r"For the exact average velocity the Eulerian equation holds "
                    r"(D-flow-map-identities), so the residual in $u$ vanishes."
                ),
                tag="numeric",
            ),
        ],
        symbols=(x, s, t, m, q),
        references=("boffi2025flow", "geng2025meanflow"),
        code=("genmath.core.flow_map.eulerian_residual",),
        tests=_TESTS,
        domain={s: (0, 1), t: (0, 1), x: (-3, 3), m: (-2, 2), q: (0.2, 3)},
    )
)


def _eulerian_in_u_by_code(points):
    """eulerian_residual of x + (t - s) u with the exact u, with the zero velocity: the
    derivative of the rebuilt map in its start time."""
    from ..core.flow_map import (
        average_velocity_from_map,
        eulerian_residual,
        map_from_average_velocity,
    )

    oracle = _oracle(0.7, 1.3)
    start = points[x].reshape(-1, 1)
    rebuilt = map_from_average_velocity(average_velocity_from_map(oracle.flow_map))
    d_s = eulerian_residual(rebuilt, _zero_velocity, start, points[s], points[t])
    full = eulerian_residual(rebuilt, oracle.velocity, start, points[s], points[t])
    return d_s[:, 0], full[:, 0]


register(
    Binding(
        derivation="D-flow-map-eulerian-average-velocity",
        code=("genmath.core.flow_map.eulerian_residual",),
        expression=(-sp.diff(FLOW, x) * v(x, s), _EULERIAN_IN_U),
        where=_LAW,
        evaluate=_eulerian_in_u_by_code,
        domain={x: Uniform(-3, 3), s: Uniform(0, 1), t: Uniform(0, 1)},
        samples=16,
        tolerance=1e-8,
        description=(
            "eulerian_residual of the map rebuilt from the exact average velocity, "
            "x + (t - s) u, with the zero velocity (its d/ds, by D-flow-map-identities) and "
            "with the exact velocity (the residual in u)"
        ),
    )
)
