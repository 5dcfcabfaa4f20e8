"""Optimal transport: the Kantorovich dual and its certificate, entropic OT by its first-order
condition, the PSD square root, and OT between Gaussians (the Bures distance and the affine
Monge map). Bound to `genmath.ot` (two-point problems have closed-form optima; Gaussians in
commuting position reduce to coordinates)."""

import math

import sympy as sp

from ._chain import FromStep
from ._engine import NUMERIC, Binding, Derivation, LogUniform, Step, Uniform
from ._registry import register

_TESTS = ("tests/ot/test_ot_discrete.py", "tests/ot/test_sinkhorn.py", "tests/ot/test_ot_gaussian.py")

# --- D-ot-duality: the duality gap is a sum of slacks; the two-point optimum ---------------
p, q = sp.symbols("p q", positive=True)  # a = (p, 1 - p), b = (q, 1 - q)
x = sp.Symbol("x", real=True)  # the plan's (1, 1) entry
C = sp.Matrix(2, 2, sp.symbols("c_11 c_12 c_21 c_22", real=True))
f1, f2, g1, g2 = sp.symbols("f_1 f_2 g_1 g_2", real=True)
_a, _b = (p, 1 - p), (q, 1 - q)
PLAN = sp.Matrix([[x, p - x], [q - x, 1 - p - q + x]])  # every plan with marginals a, b
_f, _g = (f1, f2), (g1, g2)
_primal_minus_dual = sum(PLAN[i, j] * C[i, j] for i in range(2) for j in range(2)) - sum(
    _f[i] * _a[i] for i in range(2)
) - sum(_g[j] * _b[j] for j in range(2))
_slacks = sum(PLAN[i, j] * (C[i, j] - _f[i] - _g[j]) for i in range(2) for j in range(2))
_K = C[0, 0] - C[0, 1] - C[1, 0] + C[1, 1]
_base = C[0, 1] * p + C[1, 0] * q + C[1, 1] * (1 - p - q)
_low, _high = sp.Max(0, p + q - 1), sp.Min(p, q)
OT_TWO_POINT = _base + sp.Min(_K * _low, _K * _high)

register(
    Derivation(
        id="D-ot-duality",
        title="Discrete optimal transport: the duality gap is a sum of slacks, and the two-point optimum",
        statement=(
            r"For a plan $P \ge 0$ with marginals $a, b$ and potentials with $f_i + g_j \le C_{ij}$, "
            r"$\langle P, C\rangle - \langle f, a\rangle - \langle g, b\rangle = \sum_{ij} P_{ij}"
            r"(C_{ij} - f_i - g_j) \ge 0$ (weak duality); it is $0$ exactly when $P_{ij} > 0 "
            r"\Rightarrow f_i + g_j = C_{ij}$ (complementary slackness), which certifies both "
            r"optimal. Linear-programming duality (Kantorovich; Peyré & Cuturi 2019, Prop. 2.4) "
            r"says such a pair exists: $\min_P \langle P, C\rangle = \max_{f \oplus g \le C} "
            r"\langle f, a\rangle + \langle g, b\rangle$. With two points on each side, "
            r"$a = (p, 1-p)$, $b = (q, 1-q)$, every plan is $P(x)$ with $x = P_{11} \in "
            r"[\max(0, p + q - 1), \min(p, q)]$, its cost is affine in $x$ with slope "
            r"$K = C_{11} - C_{12} - C_{21} + C_{22}$, so the optimum sits at an end: the closed "
            r"form `discrete_ot` (primal and dual values) and `wasserstein` are held to."
        ),
        start=_primal_minus_dual,
        steps=[
            Step(
                rhs=_slacks,
                reason=(
                    r"$P(x)$ has row sums $a$ and column sums $b$: $\langle f, a\rangle = "
                    r"\sum_{ij} P_{ij} f_i$, $\langle g, b\rangle = \sum_{ij} P_{ij} g_j$."
                ),
            ),
            Step(
                lhs=FromStep("D-ot-duality", {f1: 0, f2: 0, g1: 0, g2: 0}, step=1),
                rhs=_base + _K * x,
                reason=r"With zero potentials the gap is the primal cost $\langle P(x), C\rangle$: affine in $x$.",
            ),
            Step(
                lhs=FromStep(
                    "D-ot-duality",
                    {x: sp.Piecewise((_high, _K < 0), (_low, True))},
                    step=2,
                ),
                rhs=OT_TWO_POINT,
                tag=NUMERIC,
                samples=24,
                reason=(
                    r"An affine function on $[\max(0, p+q-1), \min(p, q)]$ — the transport "
                    r"polytope, whose ends are its vertices — is least at the upper end when "
                    r"$K < 0$, else at the lower: the optimum $\langle P^*, C\rangle$."
                ),
            ),
        ],
        symbols=(p, q, x, *C, f1, f2, g1, g2),
        domain={p: Uniform(0.02, 0.98), q: Uniform(0.02, 0.98)},
        references=("peyre2019computational", "villani2009optimal"),
        code=("genmath.ot.discrete_ot", "genmath.ot.wasserstein"),
        tests=_TESTS,
    )
)


def _two_point_ot(points):
    import torch

    from ..ot import discrete_ot

    costs, duals = [], []
    for j in range(points[p].shape[0]):
        a = torch.stack([points[p][j], 1 - points[p][j]])
        b = torch.stack([points[q][j], 1 - points[q][j]])
        cost = torch.stack([points[c][j] for c in C]).reshape(2, 2)
        solved = discrete_ot(a, b, cost)
        costs.append(solved.cost)
        duals.append(solved.dual)
    return torch.stack(costs), torch.stack(duals)


_cost_domain = {c: Uniform(-2.0, 3.0) for c in C}
register(
    Binding(
        derivation="D-ot-duality",
        code=("genmath.ot.discrete_ot",),
        expression=(OT_TWO_POINT, OT_TWO_POINT),
        evaluate=_two_point_ot,
        domain={p: Uniform(0.02, 0.98), q: Uniform(0.02, 0.98), **_cost_domain},
        samples=24,
        tolerance=1e-8,  # HiGHS's primal feasibility tolerance is 1e-7 of the unit mass
        description="discrete_ot on two-point problems: its primal cost and its dual value, the closed-form optimum",
    )
)

_x1, _x2, _y1, _y2 = sp.symbols("x_1 x_2 y_1 y_2", real=True)
_order = sp.Symbol("r", positive=True)  # the order p of W_p (p is a weight here)
# the costs |x_i - y_j|^r of two two-point clouds on the line
_LINE_COSTS = {C[i, j]: sp.Abs(xi - yj) ** _order for i, xi in enumerate((_x1, _x2)) for j, yj in enumerate((_y1, _y2))}


_mass_x, _mass_y = sp.symbols("m_x m_y", positive=True)


def _two_point_wasserstein(points, weighted=False):
    """wasserstein(x, y, r) ** r of two two-point clouds on the line: uniform, or (weighted)
    with weights of any total mass, which the code normalises to the laws (p, 1 - p) and
    (q, 1 - q)."""
    import torch

    from ..ot import wasserstein

    out = []
    for j in range(points[_x1].shape[0]):
        xs = torch.stack([points[_x1][j], points[_x2][j]])[:, None]
        ys = torch.stack([points[_y1][j], points[_y2][j]])[:, None]
        weights = {}
        if weighted:
            weights["x_weights"] = points[_mass_x][j] * torch.stack([points[p][j], 1 - points[p][j]])
            weights["y_weights"] = points[_mass_y][j] * torch.stack([points[q][j], 1 - points[q][j]])
        order = float(points[_order][j])
        out.append(wasserstein(xs, ys, order, **weights) ** order)
    return torch.stack(out)


register(
    Binding(
        derivation="D-ot-duality",
        code=("genmath.ot.wasserstein",),
        expression=OT_TWO_POINT,
        where={p: sp.Rational(1, 2), q: sp.Rational(1, 2), **_LINE_COSTS},
        evaluate=_two_point_wasserstein,
        domain={_x1: Uniform(-2, 2), _x2: Uniform(-2, 2), _y1: Uniform(-2, 2), _y2: Uniform(-2, 2), _order: Uniform(1, 3, ends=True)},
        samples=16,
        tolerance=1e-8,
        description="wasserstein(x, y, p) ** p of two-point clouds on the line: the two-point optimum of |x_i - y_j|^p",
    )
)


register(
    Binding(
        derivation="D-ot-duality",
        code=("genmath.ot.wasserstein",),
        expression=OT_TWO_POINT,
        where=_LINE_COSTS,
        evaluate=lambda points: _two_point_wasserstein(points, weighted=True),
        domain={
            p: Uniform(0.05, 0.95), q: Uniform(0.05, 0.95), _mass_x: Uniform(0.3, 3.0),
            _mass_y: Uniform(0.3, 3.0), _x1: Uniform(-2, 2), _x2: Uniform(-2, 2),
            _y1: Uniform(-2, 2), _y2: Uniform(-2, 2), _order: Uniform(1, 3, ends=True),
        },
        samples=16,
        tolerance=1e-7,  # HiGHS's primal feasibility tolerance is 1e-7 of the unit mass
        description=(
            "wasserstein with weights of any total mass (normalised by the code): the two-point "
            "optimum of |x_i - y_j|^p between the laws (p, 1 - p) and (q, 1 - q)"
        ),
    )
)

# --- D-entropic-ot-duality: the two-point entropic optimum by its first-order condition --------
eps = sp.Symbol("epsilon", positive=True)
_product = ((p * q, p * (1 - q)), ((1 - p) * q, (1 - p) * (1 - q)))
_kl = sum(
    PLAN[i, j] * sp.log(PLAN[i, j] / _product[i][j]) - PLAN[i, j] + _product[i][j]
    for i in range(2)
    for j in range(2)
)
ENTROPIC_OBJECTIVE = _base + _K * x + eps * _kl
_rho = sp.exp(-_K / eps)
_B = 1 - p - q + _rho * (p + q)
# the root of (1 - rho) x^2 + B x - rho p q = 0 in the transport interval, in the form that
# does not cancel: the product of the roots is -rho p q / (1 - rho)
_root_disc = sp.sqrt(_B**2 + 4 * (1 - _rho) * _rho * p * q)
X_ENTROPIC = sp.Piecewise(
    (2 * _rho * p * q / (_B + _root_disc), _B >= 0),
    ((_root_disc - _B) / (2 * (1 - _rho)), True),  # B < 0 forces rho < 1
)

register(
    Derivation(
        id="D-entropic-ot-duality",
        title="Entropic optimal transport: the Gibbs plan, and the two-point optimum",
        statement=(
            r"$\mathrm{OT}_\varepsilon = \min_{P \in \Pi(a, b)} \langle P, C\rangle + \varepsilon\,"
            r"\mathrm{KL}(P \,\|\, ab^\top)$ is strictly convex; its Lagrangian's stationarity gives "
            r"the Gibbs plan $P_{ij} = a_ib_je^{(f_i + g_j - C_{ij})/\varepsilon}$, and at it the "
            r"primal equals the dual $\langle f, a\rangle + \langle g, b\rangle - \varepsilon"
            r"\sum_{ij} a_ib_j(e^{(f_i + g_j - C_{ij})/\varepsilon} - 1)$ (Peyré & Cuturi 2019, "
            r"Prop. 4.4), whose alternating maximisation is Sinkhorn's iteration. With two points "
            r"on each side the plan is $P(x)$ of D-ot-duality; stationarity in $x$ is "
            r"$x(1 - p - q + x) = \rho(p - x)(q - x)$, $\rho = e^{-K/\varepsilon}$, a quadratic "
            r"whose root in the transport interval is the closed form `sinkhorn`'s objective and "
            r"dual are held to. As $\varepsilon \to 0$, $\rho \to 0$ or $\infty$ and the root "
            r"tends to an end of the interval: the unregularised optimum."
        ),
        start=sp.Derivative(ENTROPIC_OBJECTIVE, x),
        steps=[
            Step(
                rhs=_K + eps * sp.log(x * (1 - p - q + x) / ((p - x) * (q - x))),
                tag=NUMERIC,
                samples=6,
                reason=(
                    r"Differentiate: $\partial_x \sum_{ij} P\log(P/ab) = \log\frac{P_{11}P_{22}}"
                    r"{P_{12}P_{21}}$ (the $ab$ terms and the $-\sum P$ cancel in pairs)."
                ),
            ),
            Step(
                lhs=FromStep("D-entropic-ot-duality", {x: X_ENTROPIC}, step=1),
                rhs=sp.Integer(0),
                tag=NUMERIC,
                samples=6,
                reason=(
                    r"The positive root $x^* = 2\rho pq/(B + \sqrt{\Delta})$ "
                    r"$= (\sqrt{\Delta} - B)/(2(1 - \rho))$, $B = 1 - p - q + \rho(p + q)$, "
                    r"$\Delta = B^2 + 4(1-\rho)\rho pq$ (the form without cancellation for "
                    r"each sign of $B$), lies in the transport interval and is stationary."
                ),
            ),
        ],
        symbols=(p, q, x, eps, *C),
        # p, q in [0.4, 0.6] keep every x in [0.2, 0.4] a plan strictly inside the transport
        # interval (the logarithms' domain); the binding draws the code's p, q over (0, 1)
        domain={
            p: Uniform(0.4, 0.6),
            q: Uniform(0.4, 0.6),
            x: Uniform(0.2, 0.4),
            eps: LogUniform(0.05, 5.0),
            **_cost_domain,
        },
        references=("cuturi2013sinkhorn", "peyre2019computational"),
        code=("genmath.ot.sinkhorn",),
        tests=_TESTS,
    )
)


_p_code, _q_code = sp.symbols("p_a q_b", positive=True)


def _two_point_sinkhorn(points):
    import torch

    from ..ot import sinkhorn

    objectives, duals = [], []
    for j in range(points[_p_code].shape[0]):
        a = torch.stack([points[_p_code][j], 1 - points[_p_code][j]])
        b = torch.stack([points[_q_code][j], 1 - points[_q_code][j]])
        cost = torch.stack([points[c][j] for c in C]).reshape(2, 2)
        solved = sinkhorn(a, b, cost, float(points[eps][j]), tol=1e-13)
        # its values are the optimum's only at convergence, which the solver reports itself;
        # the plan's marginals are measured here, not read from the solver
        error = float((solved.plan.sum(1) - a).abs().sum() + (solved.plan.sum(0) - b).abs().sum())
        if not solved.converged or error > 1e-13:
            raise AssertionError(
                f"sinkhorn on a two-point problem: converged={solved.converged}, marginal error "
                f"{error:.3g} > tol 1e-13 after {solved.iterations} iterations"
            )
        objectives.append(solved.objective)
        duals.append(solved.dual)
    return torch.stack(objectives), torch.stack(duals)


register(
    Binding(
        derivation="D-entropic-ot-duality",
        code=("genmath.ot.sinkhorn",),
        expression=(ENTROPIC_OBJECTIVE, ENTROPIC_OBJECTIVE),
        where={x: X_ENTROPIC.subs({p: _p_code, q: _q_code}), p: _p_code, q: _q_code},
        evaluate=_two_point_sinkhorn,
        domain={_p_code: Uniform(0.05, 0.95), _q_code: Uniform(0.05, 0.95), eps: LogUniform(0.05, 5.0), **_cost_domain},
        samples=16,
        tolerance=1e-9,
        description="sinkhorn on two-point problems: its primal objective and its dual value, the closed-form entropic optimum",
    )
)

# --- D-psd-sqrt: the square root of a symmetric 2 x 2 positive matrix ------------------------
s11, s22 = sp.symbols("s_11 s_22", positive=True)
s12 = sp.Symbol("s_12", real=True)
S = sp.Matrix([[s11, s12], [s12, s22]])
_delta = sp.sqrt(S.det())
ROOT = (S + _delta * sp.eye(2)) / sp.sqrt(S.trace() + 2 * _delta)

register(
    Derivation(
        id="D-psd-sqrt",
        title="The square root of a symmetric positive matrix",
        statement=(
            r"A symmetric $S = V\operatorname{diag}(\lambda)V^\top$, $\lambda \ge 0$, has the unique "
            r"PSD square root $S^{1/2} = V\operatorname{diag}(\sqrt\lambda)V^\top$. For $2 \times 2$ "
            r"matrices it has the closed form $S^{1/2} = (S + \sqrt{\det S}\,I)/"
            r"\sqrt{\operatorname{tr} S + 2\sqrt{\det S}}$: by Cayley–Hamilton $S^2 = "
            r"(\operatorname{tr} S)S - (\det S)I$, so the square of the right side is $S$ — the "
            r"closed form `psd_sqrt` (eigendecomposition) is held to, at random rotations."
        ),
        start=sp.MatMul(sp.ImmutableMatrix(ROOT), sp.ImmutableMatrix(ROOT), evaluate=False),
        steps=[
            Step(
                rhs=S,
                reason=r"Expand; replace $S^2$ by Cayley–Hamilton; $\sqrt{\det S}^2 = \det S$.",
            )
        ],
        symbols=(s11, s12, s22),
        references=("peyre2019computational",),
        code=("genmath.ot.psd_sqrt",),
        tests=("tests/ot/test_ot_gaussian.py",),
    )
)

_eig1, _eig2 = sp.symbols("lambda_1 lambda_2", positive=True)
_theta = sp.Symbol("theta", real=True)
_rotated = {
    s11: _eig1 * sp.cos(_theta) ** 2 + _eig2 * sp.sin(_theta) ** 2,
    s22: _eig1 * sp.sin(_theta) ** 2 + _eig2 * sp.cos(_theta) ** 2,
    s12: (_eig1 - _eig2) * sp.sin(_theta) * sp.cos(_theta),
}


def _rotated_matrix(points, first, second):
    import torch

    c, s = torch.cos(points[_theta]), torch.sin(points[_theta])
    rotation = torch.stack([torch.stack([c, -s], -1), torch.stack([s, c], -1)], -2)
    diagonal = torch.diag_embed(torch.stack([points[first], points[second]], -1))
    return rotation @ diagonal @ rotation.mT


def _psd_sqrt_entries(points):
    from ..ot import psd_sqrt

    root = psd_sqrt(_rotated_matrix(points, _eig1, _eig2))
    return root[:, 0, 0], root[:, 0, 1], root[:, 1, 1]


register(
    Binding(
        derivation="D-psd-sqrt",
        code=("genmath.ot.psd_sqrt",),
        expression=(ROOT[0, 0], ROOT[0, 1], ROOT[1, 1]),
        where=_rotated,
        evaluate=_psd_sqrt_entries,
        domain={_eig1: LogUniform(1e-3, 1e3), _eig2: LogUniform(1e-3, 1e3), _theta: Uniform(0, math.pi)},
        samples=24,
        tolerance=1e-9,
        description="psd_sqrt of R(theta) diag(lambda) R(theta)^T, entry by entry: the 2 x 2 closed form",
    )
)

# --- D-gaussian-w2: the Bures–Wasserstein distance ------------------------------------------
_lam = sp.symbols("lambda_1:3", positive=True)  # eigenvalues of Sigma_0
_mu = sp.symbols("mu_1:3", positive=True)  # eigenvalues of Sigma_1, same eigenvectors
_m0 = sp.symbols("m_01 m_02", real=True)
_m1 = sp.symbols("m_11 m_12", real=True)
_mean_part = sum((_m1[k] - _m0[k]) ** 2 for k in range(2))
BURES_SQUARED = (
    _mean_part + sum(_lam) + sum(_mu) - 2 * sum(sp.sqrt(sp.sqrt(_lam[k]) * _mu[k] * sp.sqrt(_lam[k])) for k in range(2))
)

register(
    Derivation(
        id="D-gaussian-w2",
        title="The Wasserstein-2 distance between Gaussians (Bures)",
        statement=(
            r"$W_2^2(\mathcal N(m_0, \Sigma_0), \mathcal N(m_1, \Sigma_1)) = \|m_0 - m_1\|^2 + "
            r"\operatorname{tr}\Sigma_0 + \operatorname{tr}\Sigma_1 - 2\operatorname{tr}"
            r"(\Sigma_0^{1/2}\Sigma_1\Sigma_0^{1/2})^{1/2}$ (Dowson & Landau 1982; Olkin & "
            r"Pukelsheim 1982), attained by the Monge map of D-gaussian-ot-map. When the "
            r"covariances share eigenvectors (eigenvalues $\lambda_k$, $\mu_k$) the map acts on "
            r"each eigen-direction as the monotone map $x \mapsto \sqrt{\mu_k/\lambda_k}\,x$, its "
            r"cost is $\|m_1 - m_0\|^2 + \sum_k(\sqrt{\mu_k/\lambda_k} - 1)^2\lambda_k$, and it "
            r"is the formula's value: the case `gaussian_w2` is held to at random common "
            r"rotations (the code takes the matrix route, so a rotation tests every entry)."
        ),
        start=_mean_part + sum((sp.sqrt(_mu[k] / _lam[k]) - 1) ** 2 * _lam[k] for k in range(2)),
        steps=[
            Step(
                rhs=_mean_part + sum((sp.sqrt(_lam[k]) - sp.sqrt(_mu[k])) ** 2 for k in range(2)),
                reason=r"$(\sqrt{\mu/\lambda} - 1)^2\lambda = (\sqrt\mu - \sqrt\lambda)^2$.",
            ),
            Step(
                rhs=BURES_SQUARED,
                reason=(
                    r"Expand the squares: $\sum(\lambda_k + \mu_k) - 2\sum\sqrt{\lambda_k\mu_k}$, and "
                    r"$\sqrt{\lambda_k\mu_k} = (\lambda_k^{1/2}\mu_k\lambda_k^{1/2})^{1/2}$, the "
                    r"eigenvalues of $(\Sigma_0^{1/2}\Sigma_1\Sigma_0^{1/2})^{1/2}$."
                ),
            ),
        ],
        symbols=(*_lam, *_mu, *_m0, *_m1),
        references=("dowson1982frechet", "peyre2019computational"),
        code=("genmath.ot.gaussian_w2",),
        tests=("tests/ot/test_ot_gaussian.py",),
    )
)


def _rotation(angle):
    import torch

    c, s = torch.cos(angle), torch.sin(angle)
    return torch.stack([torch.stack([c, -s], -1), torch.stack([s, c], -1)], -2)


def _gaussian_w2_values(points):
    import torch

    from ..ot import gaussian_w2

    n = points[_lam[0]].shape[0]
    rotations = _rotation(torch.linspace(0.1, 3.0, n, dtype=torch.float64))
    out = []
    for j in range(n):
        R = rotations[j]
        S0 = R @ torch.diag(torch.stack([points[_lam[0]][j], points[_lam[1]][j]])) @ R.T
        S1 = R @ torch.diag(torch.stack([points[_mu[0]][j], points[_mu[1]][j]])) @ R.T
        m0 = torch.stack([points[_m0[0]][j], points[_m0[1]][j]])
        m1 = torch.stack([points[_m1[0]][j], points[_m1[1]][j]])
        out.append(gaussian_w2(m0, S0, m1, S1) ** 2)
    return torch.stack(out)


register(
    Binding(
        derivation="D-gaussian-w2",
        code=("genmath.ot.gaussian_w2",),
        expression=BURES_SQUARED,
        evaluate=_gaussian_w2_values,
        domain={
            **{s: LogUniform(1e-2, 1e2) for s in (*_lam, *_mu)},
            **{s: Uniform(-3, 3) for s in (*_m0, *_m1)},
        },
        samples=16,
        tolerance=1e-9,
        description="gaussian_w2(m0, R diag(lambda) R^T, m1, R diag(mu) R^T) ** 2: the Bures formula",
    )
)

# --- D-gaussian-ot-map: the affine Monge map pushes N(m0, S0) to N(m1, S1) ------------------
_l1, _l2 = sp.symbols("l_1 l_2", positive=True)  # Sigma_0 = diag(l_1, l_2)
_u11, _u22 = sp.symbols("u_11 u_22", positive=True)
_u12 = sp.Symbol("u_12", real=True)
_S0 = sp.diag(_l1, _l2)
_S1 = sp.Matrix([[_u11, _u12], [_u12, _u22]])
_D = sp.diag(sp.sqrt(_l1), sp.sqrt(_l2))  # Sigma_0^{1/2}
_N = _D * _S1 * _D
_N_root = (_N + sp.sqrt(_N.det()) * sp.eye(2)) / sp.sqrt(_N.trace() + 2 * sp.sqrt(_N.det()))
MONGE = sp.ImmutableMatrix(_D.inv() * _N_root * _D.inv())

register(
    Derivation(
        id="D-gaussian-ot-map",
        title="The affine Monge map between Gaussians pushes one to the other",
        statement=(
            r"$T(x) = m_1 + A(x - m_0)$ with $A = \Sigma_0^{-1/2}(\Sigma_0^{1/2}\Sigma_1"
            r"\Sigma_0^{1/2})^{1/2}\Sigma_0^{-1/2}$ is symmetric positive definite — the gradient "
            r"of a convex function, so optimal for the squared distance by Brenier's theorem — "
            r"and pushes $\mathcal N(m_0, \Sigma_0)$ to $\mathcal N(m_1, A\Sigma_0A)$ with "
            r"$A\Sigma_0A = \Sigma_0^{-1/2}M^2\Sigma_0^{-1/2} = \Sigma_1$, $M$ the middle root. In "
            r"$2 \times 2$ with $\Sigma_0$ diagonal (any $\Sigma_0$ after a rotation) $M$ has the "
            r"closed form of D-psd-sqrt; the identity is checked on it, and `gaussian_ot_map`'s "
            r"$A$ is held to it, entry by entry."
        ),
        start=sp.MatMul(MONGE, sp.ImmutableMatrix(_S0), MONGE, evaluate=False),
        steps=[
            Step(
                rhs=_S1,
                reason=(
                    r"$A\Sigma_0A = \Sigma_0^{-1/2}M\,M\Sigma_0^{-1/2}$ and $M^2 = "
                    r"\Sigma_0^{1/2}\Sigma_1\Sigma_0^{1/2}$ (Cayley–Hamilton, D-psd-sqrt)."
                ),
            )
        ],
        symbols=(_l1, _l2, _u11, _u12, _u22),
        references=("peyre2019computational", "villani2009optimal"),
        code=("genmath.ot.gaussian_ot_map",),
        tests=("tests/ot/test_ot_gaussian.py",),
    )
)

_v1, _v2 = sp.symbols("nu_1 nu_2", positive=True)
_phi = sp.Symbol("phi", real=True)


def _monge_entries(points):
    import torch

    from ..ot import gaussian_ot_map

    S0 = torch.diag_embed(torch.stack([points[_l1], points[_l2]], -1))
    R = _rotation(points[_phi])
    S1 = R @ torch.diag_embed(torch.stack([points[_v1], points[_v2]], -1)) @ R.mT
    out = []
    for j in range(S0.shape[0]):
        zero = torch.zeros(2, dtype=torch.float64)
        out.append(gaussian_ot_map(zero, S0[j], zero + 1, S1[j]).matrix)
    A = torch.stack(out)
    return A[:, 0, 0], A[:, 0, 1], A[:, 1, 1]


register(
    Binding(
        derivation="D-gaussian-ot-map",
        code=("genmath.ot.gaussian_ot_map",),
        expression=(MONGE[0, 0], MONGE[0, 1], MONGE[1, 1]),
        where={
            _u11: _v1 * sp.cos(_phi) ** 2 + _v2 * sp.sin(_phi) ** 2,
            _u22: _v1 * sp.sin(_phi) ** 2 + _v2 * sp.cos(_phi) ** 2,
            _u12: (_v1 - _v2) * sp.sin(_phi) * sp.cos(_phi),
        },
        evaluate=_monge_entries,
        domain={
            _l1: LogUniform(1e-2, 1e2),
            _l2: LogUniform(1e-2, 1e2),
            _v1: LogUniform(1e-2, 1e2),
            _v2: LogUniform(1e-2, 1e2),
            _phi: Uniform(0, math.pi),
        },
        samples=16,
        tolerance=1e-8,
        description="gaussian_ot_map(0, diag(l), 1, R(phi) diag(nu) R(phi)^T).matrix, entry by entry: the closed form",
    )
)
