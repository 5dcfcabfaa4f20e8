"""Rectified flow's couplings and straightness: the minibatch OT coupling (an optimal
assignment, and why it keeps both marginals), reflow's marginal preservation and the
straightness of a flow, bound to `ot_coupling`, `reflow_pairs` and `straightness`
(the flow-matching losses they feed are in ``families_flow_matching.py``).
"""

import itertools

import sympy as sp

from ._engine import (
    NUMERIC,
    Binding,
    Derivation,
    LogUniform,
    Step,
    Uniform,
    sound_rewrite,
)
from ._registry import register
from .elbo_gap import _Integral

# ------------------------------------------------------------- minibatch OT coupling (B = 3)
_batch = 3
_a = [sp.symbols(f"a_{i}1 a_{i}2", real=True) for i in range(_batch)]
_b = [sp.symbols(f"b_{i}1 b_{i}2", real=True) for i in range(_batch)]


def _cost(assignment):
    return sum(
        (_a[i][k] - _b[j][k]) ** 2 for i, j in enumerate(assignment) for k in range(2)
    )


def _inner(assignment):
    return sum(_a[i][k] * _b[j][k] for i, j in enumerate(assignment) for k in range(2))


_permutations = list(itertools.permutations(range(_batch)))
optimal_cost = sp.Min(*(_cost(pi) for pi in _permutations), evaluate=False)
_norms = sum(v**2 for row in _a + _b for v in row)


register(
    Derivation(
        id="D-ot-coupling",
        title="Minibatch OT coupling: a permutation with the data and noise batches as marginals, of least squared cost",
        statement=(
            r"For equal batches $x_0^{(1..B)}$ and $x_1^{(1..B)}$ the minibatch optimal-transport "
            r"plan (Tong et al. 2024; Pooladian et al. 2023) is a permutation $\pi$ — by "
            r"Birkhoff's theorem an optimal plan of the assignment problem can be taken at a "
            r"vertex of the doubly stochastic matrices — so the coupling $\frac1B\sum_i "
            r"\delta_{(x_0^{(i)}, x_1^{(\pi_i)})}$ has exactly the two empirical batches as "
            r"marginals: its data marginal is the data law's sample, its noise marginal the "
            r"noise's. It minimises $\sum_i\|x_0^{(i)} - x_1^{(\pi_i)}\|^2$, equivalently maximises "
            r"$\sum_i\langle x_0^{(i)}, x_1^{(\pi_i)}\rangle$ since the squared norms do not depend "
            r"on $\pi$. Shown for $B = 3$ in two dimensions: the least cost over all $3!$ "
            "permutations, which the code's plan must attain."
        ),
        start=optimal_cost,
        steps=[
            Step(
                rhs=_norms - 2 * sp.Max(*(_inner(pi) for pi in _permutations), evaluate=False),
                reason=(
                    r"$\|a - b\|^2 = \|a\|^2 + \|b\|^2 - 2\langle a, b\rangle$; a permutation uses "
                    "every point of each batch once, so the norms sum to the same constant for "
                    "every plan."
                ),
                tag=NUMERIC,
            ),
        ],
        symbols=tuple(v for row in _a + _b for v in row),
        references=("tong2024improving", "pooladian2023multisample"),
        code=("genmath.families.flow_matching.ot_coupling", "genmath.families.flow_matching.cfm_loss"),
        tests=("tests/families/test_flow_matching.py",),
    )
)


def _batches(points, j):
    import torch

    x0 = torch.stack([torch.stack([points[v][j] for v in row]) for row in _a])
    x1 = torch.stack([torch.stack([points[v][j] for v in row]) for row in _b])
    return x0, x1


def _ot_costs(points):
    """The cost of ot_coupling's plan, and the loss of cfm_loss(coupling="ot") summed over the
    batch for a zero velocity on CondOT (its target is x1 - x0, so the loss is the cost)."""
    import torch

    from ..core.path import GaussianPath
    from ..core.schedules import CondOT
    from ..families.flow_matching import cfm_loss, ot_coupling

    path = GaussianPath(CondOT())
    plans, losses = [], []
    for j in range(points[_a[0][0]].numel()):
        x0, x1 = _batches(points, j)
        plans.append((x0 - x1[ot_coupling(x0, x1)]).pow(2).sum())
        loss = cfm_loss(lambda x, t: torch.zeros_like(x), x0, path, t=0.5, noise=x1,
                        coupling="ot", reduction="none")
        losses.append(loss.sum())
    return torch.stack(plans), torch.stack(losses)


register(
    Binding(
        derivation="D-ot-coupling",
        code=("genmath.families.flow_matching.ot_coupling", "genmath.families.flow_matching.cfm_loss"),
        expression=(optimal_cost, optimal_cost),
        evaluate=_ot_costs,
        domain={v: Uniform(-2, 2) for row in _a + _b for v in row},
        samples=16,
        description=(
            "ot_coupling's plan and cfm_loss(coupling='ot') on batches of 3 in 2-D: the least "
            "cost over all 3! permutations"
        ),
    )
)


# ------------------------------------------------------------------------------------ reflow
def _gaussian_flow():
    """D-gaussian-flow-map's map phi_{s -> t} for CondOT and 1-D data N(mu, s^2)."""
    from .gaussian_flow_map import FLOW as _flow
    from .gaussian_marginals import alpha_f as a_f
    from .gaussian_marginals import mu, s, t, t0, x
    from .gaussian_marginals import sigma_f as s_f

    condot = {a_f(t): 1 - t, s_f(t): t, a_f(t0): 1 - t0, s_f(t0): t0}
    return _flow.subs(condot, simultaneous=True), (x, mu, s, t, t0)


_flow_condot, (_x, _mu, _s, _t1, _t0) = _gaussian_flow()

register(
    Derivation(
        id="D-reflow-marginals",
        title="Reflow pairs keep the marginals: noise N(0, I) and the flow's data law",
        statement=(
            r"Reflow (Liu et al. 2023) re-pairs noise $z \sim \mathcal N(0, I)$ with "
            r"$x_0 = \Phi_{1\to 0}(z)$, the trained flow's map. The new coupling's noise marginal "
            r"is that of $z$ by construction and its data marginal is the flow's pushforward of "
            r"the noise, which for the exact marginal velocity is the data law: for Gaussian data "
            r"$\mathcal N(\mu, s^2)$ on CondOT the flow map (D-gaussian-flow-map) from $t = 1$ to "
            r"$t = 0$ is $z \mapsto \mu + s z$, whose pushforward of $\mathcal N(0, 1)$ is "
            r"$\mathcal N(\mu, s^2)$. The pairs are deterministic, so the next flow's paths cross "
            r"less and are straighter (D-rectified-flow-straightness)."
        ),
        start=_flow_condot.subs({_t1: 0, _t0: 1}),
        steps=[Step(rhs=_mu + _s * _x, reason=r"$C_0 = s^2$, $C_1 = 1$ and $\alpha_1 = 0$.")],
        symbols=(_x, _mu, _s),
        references=("liu2023flow", "song2021score"),
        code=("genmath.families.flow_matching.reflow_pairs",),
        tests=("tests/families/test_flow_matching.py",),
    )
)


def _reflow(points):
    """reflow_pairs with the exact CondOT velocity of N(mu, s^2) data, one Gaussian per row
    (the velocity compiled from D-gaussian-marginal-velocity's expression)."""
    import torch

    from ..families.flow_matching import reflow_pairs
    from .gaussian_marginals import _velocity, t
    from .gaussian_marginals import alpha_f as a_f
    from .gaussian_marginals import sigma_f as s_f

    velocity = sp.lambdify(
        (_x, _mu, _s, t),
        _velocity(_x).subs({a_f(t): 1 - t, s_f(t): t}).doit(),
        modules=[{"sqrt": torch.sqrt}, torch],
    )
    mean, std = points[_mu][:, None], points[_s][:, None]

    def model(x, time):
        return velocity(x, mean, std, time)

    x0, noise = reflow_pairs(model, points[_x][:, None], steps=200, method="rk4")
    if not torch.equal(noise[:, 0], points[_x]):
        raise ValueError("reflow_pairs must return the noise it was given, unchanged")
    return x0[:, 0]


register(
    Binding(
        derivation="D-reflow-marginals",
        code=("genmath.families.flow_matching.reflow_pairs",),
        expression=_mu + _s * _x,
        evaluate=_reflow,
        domain={_x: Uniform(-3, 3), _mu: Uniform(-2, 2), _s: LogUniform(0.3, 3.0)},
        samples=16,
        tolerance=1e-7,
        description=(
            "reflow_pairs with the exact velocity of N(mu, s^2) data (RK4, 200 steps): x0 = "
            "mu + s z (and the noise returned unchanged)"
        ),
    )
)


# ----------------------------------------------------------- rectified-flow straightness
t_sym, r, tau = sp.symbols("t r tau", real=True)
trajectory = sp.Function("Z")
chord = trajectory(1) - trajectory(0)
z0, z1, z2 = sp.symbols("z_0 z_1 z_2", real=True)
h1, h2 = sp.symbols("h_1 h_2", positive=True)
_chord_slope = (z2 - z0) / (h1 + h2)
discrete_straightness = h1 * ((z1 - z0) / h1 - _chord_slope) ** 2 + h2 * ((z2 - z1) / h2 - _chord_slope) ** 2


@sound_rewrite(
    "linearity of the integral, and the fundamental theorem of calculus on terms that are exact derivatives"
)
def _integrate_termwise(expr):
    r"""Linearity of the integral: split each integrand into its additive terms and carry out
    what can be done — a constant times the length of the interval, the fundamental theorem on
    a constant times $\dot Z$; what cannot ($\int \dot Z^2$) stays the same object on both
    sides and cancels."""

    def term_integral(term, limits):
        (variable, low, high), = limits
        rate = sp.Derivative(trajectory(variable), variable)
        if not term.has(variable):
            return term * (high - low)
        factor = sp.cancel(term / rate)
        if not factor.has(variable):
            return factor * (trajectory(high) - trajectory(low))
        return _Integral(term, *limits)

    def split(integral):
        return sp.Add(
            *(term_integral(term, integral.limits) for term in sp.Add.make_args(sp.expand(integral.function)))
        )

    return sp.expand(expr.replace(lambda e: isinstance(e, sp.Integral), split))


register(
    Derivation(
        id="D-rectified-flow-straightness",
        title="Straightness of a flow: excess kinetic energy over the chord",
        statement=(
            r"For a trajectory $Z_t$ on $[0, 1]$, the straightness "
            r"$S = \int_0^1 \|\dot Z_t - (Z_1 - Z_0)\|^2\,dt$ (Liu et al. 2023) equals "
            r"$\int_0^1 \|\dot Z_t\|^2 dt - \|Z_1 - Z_0\|^2$: the kinetic energy in excess of "
            r"that of the straight line between the ends, hence $S \ge 0$ with equality iff the "
            r"path is straight at constant speed, and one Euler step is exact. Reflow lowers the "
            r"transport cost, hence $S$. For the piecewise-linear trajectory of a sampler "
            r"(steps $h_k$, `straightness`) the same holds with $\dot Z$ the chord slope of each "
            "step and the chord taken over the whole time span. Per coordinate:"
        ),
        start=_Integral((sp.Derivative(trajectory(t_sym), t_sym) - chord) ** 2, (t_sym, 0, 1)),
        steps=[
            Step(
                rhs=_Integral(sp.Derivative(trajectory(t_sym), t_sym) ** 2, (t_sym, 0, 1))
                - 2 * chord * _Integral(sp.Derivative(trajectory(t_sym), t_sym), (t_sym, 0, 1))
                + chord**2,
                reason="Expand the square; the chord is constant in $t$ (linearity of the integral).",
                method=_integrate_termwise,
            ),
            Step(
                rhs=_Integral(sp.Derivative(trajectory(t_sym), t_sym) ** 2, (t_sym, 0, 1)) - chord**2,
                reason=r"Fundamental theorem of calculus: $\int_0^1 \dot Z_t\,dt = Z_1 - Z_0$.",
                method=_integrate_termwise,
            ),
            Step(
                lhs=discrete_straightness,
                rhs=(z1 - z0) ** 2 / h1 + (z2 - z1) ** 2 / h2 - (z2 - z0) ** 2 / (h1 + h2),
                reason=(
                    r"Two steps of lengths $h_1, h_2$ through $Z_0, Z_1, Z_2$: the integral of "
                    r"$(\dot Z - \text{chord slope})^2$ is the sum over steps, and it is the "
                    "excess kinetic energy over the chord, as above."
                ),
            ),
        ],
        symbols=(t_sym, z0, z1, z2, h1, h2),
        references=("liu2023flow",),
        code=("genmath.families.flow_matching.straightness",),
        tests=("tests/families/test_flow_matching.py",),
    )
)


def _straightness(points):
    """straightness of two-step trajectories through (z0, z1, z2) on a decreasing grid, in an
    event of (2,) (the second coordinate twice the first: the value is 5 times)."""
    import torch

    from ..core.dynamics import SampleResult
    from ..families.flow_matching import straightness

    out = []
    scale = torch.tensor([1.0, 2.0], dtype=torch.float64)
    for j in range(points[z0].numel()):
        nodes = torch.stack([points[z0][j], points[z1][j], points[z2][j]])[:, None, None] * scale
        top = points[h1][j] + points[h2][j]
        grid = torch.stack([top, points[h2][j], torch.zeros((), dtype=torch.float64)])
        result = SampleResult(x=nodes[-1], nfe=2, grid=grid, trajectory=nodes)
        out.append(straightness(result)[0] / 5)
    return torch.stack(out)


register(
    Binding(
        derivation="D-rectified-flow-straightness",
        code=("genmath.families.flow_matching.straightness",),
        expression=discrete_straightness,
        evaluate=_straightness,
        domain={z0: Uniform(-3, 3), z1: Uniform(-3, 3), z2: Uniform(-3, 3), h1: LogUniform(0.01, 0.5), h2: LogUniform(0.01, 0.5)},
        samples=16,
        description="straightness of a two-step trajectory, summed over a 2-D event",
    )
)
