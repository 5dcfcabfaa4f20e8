"""The flow-map losses of `genmath.families.flow_maps` (Lagrangian and Eulerian map
distillation, shortcut models) as squared residuals of the flow-map identities, held to the
code on the exact CondOT flow map of Gaussian data in one dimension with a constant teacher
velocity $w$ (so each loss has a non-zero value with a closed form)."""

import sympy as sp

from ._engine import Binding, Derivation, Step, Uniform
from ._registry import register
from .flow_maps import FLOW, X, _oracle, m, q, s, t, v, x

_FAMILY = "genmath.families.flow_maps"
_TESTS = ("tests/families/test_flow_maps.py",)
w, x0, z = sp.symbols("w x_0 z", real=True)
_mid = (s + t) / 2

register(
    Derivation(
        id="D-flow-map-losses",
        title="Map distillation and shortcut losses are squared residuals of the flow-map identities",
        statement=(
            r"With a teacher velocity $w$: the Lagrangian loss $(\partial_t X - w(X, t))^2$, the "
            r"Eulerian loss $(\partial_s X + \partial_x X\,w(x, s))^2$ and the shortcut loss "
            r"$(X(x, s, t) - X(X(x, s, m), m, t))^2 + (\partial_t X|_{t=s} - w(x, s))^2$, "
            r"$m = (s + t)/2$, evaluated at the exact map, reduce to the squared gap between the "
            r"teacher and the map's own velocity: $(v(X, t) - w)^2$, "
            r"$(\partial_x X)^2 (w - v(x, s))^2$ and $(v(x, s) - w)^2$, so each vanishes exactly "
            r"when the teacher is the marginal velocity (D-flow-map-identities). Shown on the exact "
            r"CondOT map of $\mathcal N(m, q^2)$ with a constant teacher $w$. Continuous-time "
            r"consistency (sCM) is the Eulerian loss of the map to the data end ($t = 0$). And for the shortcut "
            r"loss without a teacher, whose target is the conditional velocity $z - x_0$ of "
            r"$x_s = (1 - s)x_0 + s z$."
        ),
        start=sp.ImmutableMatrix([
            (sp.Derivative(FLOW, t) - w) ** 2,
            (sp.Derivative(FLOW, s) + sp.Derivative(FLOW, x) * w) ** 2,
            (FLOW - X(X(x, s, _mid), _mid, t)) ** 2 + (sp.Subs(sp.Derivative(FLOW, t), t, s) - w) ** 2,
            (FLOW - X(X(x, s, _mid), _mid, t)) ** 2
            + (sp.Subs(sp.Derivative(FLOW, t), t, s) - (z - x0)) ** 2,
        ]),
        steps=[
            Step(
                rhs=sp.ImmutableMatrix([
                    (v(FLOW, t) - w) ** 2,
                    (sp.diff(FLOW, x) * (w - v(x, s))) ** 2,
                    (v(x, s) - w) ** 2,
                    (v(x, s) - (z - x0)) ** 2,
                ]),
                reason=(
                    r"The Lagrangian equation $\partial_t X = v(X, t)$, the Eulerian one "
                    r"$\partial_s X = -\partial_x X\,v(x, s)$, the semigroup property and "
                    r"$\partial_t X|_{t=s} = v(x, s)$ (D-flow-map-identities)."
                ),
                tag="numeric",
            ),
        ],
        symbols=(x, s, t, w, x0, z, m, q),
        references=("boffi2025flow", "frans2025shortcut", "lu2025simplifying"),
        code=(f"{_FAMILY}.lagrangian_distillation_loss", f"{_FAMILY}.eulerian_distillation_loss",
              f"{_FAMILY}.shortcut_loss"),
        tests=_TESTS,
        domain={s: (0, 1), t: (0, 1), x: (-3, 3), w: (-2, 2), x0: (-3, 3), z: (-3, 3),
                m: (-2, 2), q: (0.2, 3)},
    )
)

_LAW = {m: sp.Rational(7, 10), q: sp.Rational(13, 10)}
_INTERPOLANT = {x: (1 - s) * x0 + s * z}


def _losses_by_code(points):

    from ..families.flow_maps import (
        eulerian_distillation_loss,
        lagrangian_distillation_loss,
        shortcut_loss,
    )

    oracle = _oracle(0.7, 1.3)
    data = points[x0].reshape(-1, 1)
    noise = points[z].reshape(-1, 1)
    constant = points[w].reshape(-1, 1)

    def teacher(y, time):
        return constant.expand_as(y)

    kwargs = dict(s=points[s], t=points[t], noise=noise, reduction="none")
    return (
        lagrangian_distillation_loss(oracle.flow_map, data, teacher=teacher, **kwargs),
        eulerian_distillation_loss(oracle.flow_map, data, teacher=teacher, **kwargs),
        shortcut_loss(oracle.flow_map, data, teacher=teacher, **kwargs),
        shortcut_loss(oracle.flow_map, data, **kwargs),
    )


_ROWS = (
    (v(FLOW, t) - w) ** 2,
    (sp.diff(FLOW, x) * (w - v(x, s))) ** 2,
    (v(x, s) - w) ** 2,
)
register(
    Binding(
        derivation="D-flow-map-losses",
        code=(f"{_FAMILY}.lagrangian_distillation_loss", f"{_FAMILY}.eulerian_distillation_loss",
              f"{_FAMILY}.shortcut_loss"),
        expression=(*_ROWS, (v(x, s) - (z - x0)) ** 2),
        where={**_LAW, **_INTERPOLANT},
        evaluate=_losses_by_code,
        domain={x0: Uniform(-3, 3), z: Uniform(-3, 3), w: Uniform(-2, 2),
                s: Uniform(0, 1), t: Uniform(0, 1)},
        samples=16,
        tolerance=1e-9,
        description=(
            "the three losses (reduction='none') at the exact CondOT map of N(0.7, 1.3^2), "
            "x_s = (1 - s) x_0 + s z, with the constant teacher w; the shortcut loss without a "
            "teacher takes the conditional velocity z - x_0"
        ),
    )
)


def _scm_by_code(points, shift=None):
    """sCM distillation with the constant teacher w on CondOT, per sample, of the exact map
    (plus ``shift``, if given): the squared Eulerian residual of the map to the data end,
    (dX(x, s, 0)/ds + dX/dx w)^2."""
    from ..core.path import GaussianPath
    from ..core.schedules import CondOT
    from ..families.flow_maps import scm_loss

    oracle = _oracle(0.7, 1.3)
    constant = points[w].reshape(-1, 1)

    def model(y, start, end):
        value = oracle.flow_map(y, start, end)
        return value if shift is None else value + shift

    return scm_loss(
        model, points[x0].reshape(-1, 1), GaussianPath(CondOT()),
        teacher=lambda y, time: constant.expand_as(y), t=points[s],
        noise=points[z].reshape(-1, 1), reduction="none",
    )


register(
    Binding(
        derivation="D-flow-map-losses",
        code=(f"{_FAMILY}.scm_loss", f"{_FAMILY}.scm_tangent"),
        expression=_ROWS[1],
        where={**_LAW, **_INTERPOLANT, t: 0},
        evaluate=_scm_by_code,
        domain={x0: Uniform(-3, 3), z: Uniform(-3, 3), w: Uniform(-2, 2), s: Uniform(0, 1)},
        samples=16,
        tolerance=1e-9,
        description=(
            "scm_loss (reduction='none', CondOT, constant teacher w) at the exact map: the "
            "Eulerian loss of the map to the data end, t = 0"
        ),
    )
)


def _scm_gradient_by_code(points):
    """Half the gradient of scm_loss in a shift theta of the map, X + theta, at theta = 0:
    the stop-gradient makes it 2 g df/dtheta = 2 g with g the (detached) Eulerian residual,
    where the plain value ||g||^2 would have gradient 0."""
    import torch

    shift = torch.zeros(len(points[s]), 1, dtype=torch.float64, requires_grad=True)
    loss = _scm_by_code(points, shift)
    (gradient,) = torch.autograd.grad(loss.sum(), shift)
    return gradient.reshape(-1) / 2


register(
    Binding(
        derivation="D-flow-map-losses",
        code=(f"{_FAMILY}.scm_loss",),
        expression=sp.diff(FLOW, x) * (w - v(x, s)),
        where={**_LAW, **_INTERPOLANT, t: 0},
        evaluate=_scm_gradient_by_code,
        domain={x0: Uniform(-3, 3), z: Uniform(-3, 3), w: Uniform(-2, 2), s: Uniform(0, 1)},
        samples=16,
        tolerance=1e-9,
        description=(
            "scm_loss's gradient in a shift of the map (per sample, halved): the detached "
            "Eulerian residual g, which only the stop-gradient target sg(f - g) gives"
        ),
    )
)
