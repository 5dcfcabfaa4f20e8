r"""Exact discrete optimal transport: the Kantorovich linear program, its dual potentials, the
assignment problem and Wasserstein distances between weighted point clouds.

For weights $a \in \mathbb R^n_{\ge 0}$, $b \in \mathbb R^m_{\ge 0}$ of one total mass and a
cost $C \in \mathbb R^{n \times m}$, the primal is
$\min_{P \ge 0,\ P1 = a,\ P^\top 1 = b} \langle P, C\rangle$ and its dual
$\max_{f_i + g_j \le C_{ij}} \langle f, a\rangle + \langle g, b\rangle$; the optima are equal
and complementary slackness $P_{ij} > 0 \Rightarrow f_i + g_j = C_{ij}$ ties them
(D-ot-duality).
"""

from __future__ import annotations

import dataclasses

import torch

from .._implements import implements, plumbing
from .._lazy import lazy_import
from ..core._validate import check_option, positive
from . import _validate

_optimize = lazy_import("scipy.optimize")

__all__ = ["OTPlan", "discrete_ot", "assignment", "wasserstein", "ASSIGNMENT_BACKENDS"]

ASSIGNMENT_BACKENDS = ("scipy", "pot")


@dataclasses.dataclass(frozen=True)
class OTPlan:
    r"""An optimal plan with its certificate.

    Attributes:
        plan: $P$, ``(n, m)``, $P1 = a$, $P^\top 1 = b$.
        cost: the primal value $\langle P, C\rangle$ (0-d).
        f, g: Kantorovich potentials, ``(n,)`` and ``(m,)``: $f_i + g_j \le C_{ij}$ everywhere,
            with equality on the support of ``plan``; defined up to $(f + k, g - k)$.
        dual: the dual value $\langle f, a\rangle + \langle g, b\rangle$ (0-d), equal to ``cost``.
    """

    plan: torch.Tensor
    cost: torch.Tensor
    f: torch.Tensor
    g: torch.Tensor
    dual: torch.Tensor


@implements("D-ot-duality")
def discrete_ot(a: torch.Tensor, b: torch.Tensor, cost: torch.Tensor) -> OTPlan:
    r"""Solve discrete optimal transport exactly; returns an `OTPlan` (plan, primal cost,
    potentials $f, g$ and the dual value).

    The linear program is solved by HiGHS (`scipy.optimize.linprog`); the potentials are its
    equality-constraint multipliers, then made exactly dual-feasible by one pair of
    $c$-transforms, $g_j \leftarrow \min_i (C_{ij} - f_i)$, $f_i \leftarrow \min_j (C_{ij} - g_j)$
    — each keeps $f_i + g_j \le C_{ij}$ and cannot lower the dual value, which weak duality
    bounds by the primal (D-ot-duality).

    Arguments:
        a: ``(n,)`` non-negative source weights.
        b: ``(m,)`` non-negative target weights, of the same total mass as ``a``.
        cost: ``(n, m)`` finite cost matrix $C$; all three in one dtype.
    """
    a, b, cost = _validate.marginals(a, b, cost)
    n, m = cost.shape
    C = cost.detach().cpu().double().numpy()
    import numpy as np
    from scipy import sparse

    # the constraint matrix has 2nm non-zeros of (n + m) nm entries: sparse, or it would not fit
    rows = sparse.kron(sparse.eye(n), np.ones((1, m)))  # sum_j P_ij = a_i
    cols = sparse.kron(np.ones((1, n)), sparse.eye(m))  # sum_i P_ij = b_j
    result = _optimize.linprog(
        C.reshape(-1),
        A_eq=sparse.vstack([rows, cols]).tocsc(),
        b_eq=np.concatenate([a.detach().cpu().double().numpy(), b.detach().cpu().double().numpy()]),
        bounds=(0, None),
        method="highs",
    )
    if result.status != 0:  # balanced, finite problems are always feasible and bounded
        raise RuntimeError(f"the transport linear program failed: {result.message}")
    to = dict(dtype=cost.dtype, device=cost.device)
    plan = torch.as_tensor(result.x.reshape(n, m), **to).clamp_min(0) + 0.0  # no -0.0 entries
    f = torch.as_tensor(result.eqlin.marginals[:n], **to)
    g = (cost - f[:, None]).amin(0)
    f = (cost - g[None, :]).amin(1)
    return OTPlan(plan=plan, cost=(plan * cost).sum(), f=f, g=g, dual=f @ a + g @ b)


@plumbing("an index search by an exact solver; the cost it minimises is the caller's")
def assignment(cost: torch.Tensor, *, backend: str = "scipy") -> torch.Tensor:
    r"""The optimal assignment of a square cost: the permutation $\pi$ minimising
    $\sum_i C_{i\pi_i}$, as a ``LongTensor`` ``(n,)`` (row ``i`` goes to column ``pi[i]``).

    ``backend="scipy"``: `scipy.optimize.linear_sum_assignment`; ``backend="pot"``: POT's
    network simplex `ot.emd` with uniform weights (optional: ``pip install pot``), whose
    optimal vertex of the Birkhoff polytope is a permutation matrix. Both are exact; for a
    cost with ties they may return different optima of one value."""
    cost = _validate.cost_matrix(cost)
    check_option(backend, ASSIGNMENT_BACKENDS, "backend")
    if cost.shape[0] != cost.shape[1]:
        raise ValueError(f"cost must be square (n, n) for an assignment, got shape {tuple(cost.shape)}")
    C = cost.detach().cpu().double().numpy()
    if backend == "pot":
        pot = _pot()
        if pot is None:
            raise ValueError("backend='pot' needs POT (pip install pot); or use backend='scipy'")
        plan = pot.emd([], [], C)
        if int((plan > 0).sum()) == len(C):  # a vertex: one entry per row
            return torch.as_tensor(plan.argmax(1), dtype=torch.long, device=cost.device)
        # a degenerate vertex reported with extra zeros-in-name entries: solve exactly instead
    _, columns = _optimize.linear_sum_assignment(C)
    return torch.as_tensor(columns, dtype=torch.long, device=cost.device)


def _pot():
    """POT's module, or None when it is not installed."""
    try:
        import ot
    except ImportError:
        return None
    return ot


def _uniform(n: int, like: torch.Tensor) -> torch.Tensor:
    return torch.full((n,), 1.0 / n, dtype=like.dtype, device=like.device)


@implements("D-ot-duality")
def wasserstein(
    x: torch.Tensor,
    y: torch.Tensor,
    p: float = 2.0,
    *,
    x_weights: torch.Tensor | None = None,
    y_weights: torch.Tensor | None = None,
) -> torch.Tensor:
    r"""$W_p(\mu, \nu) = \big(\min_P \sum_{ij} P_{ij}\|x_i - y_j\|^p\big)^{1/p}$ between the
    weighted point clouds $\mu = \sum_i a_i\delta_{x_i}$, $\nu = \sum_j b_j\delta_{y_j}$
    (uniform weights by default; given weights are normalised to mass 1), solved exactly by
    `discrete_ot` — or, for two unweighted clouds of one size, by `assignment`, whose optimal
    permutation is an optimal vertex of the same linear program (Birkhoff–von Neumann) and
    is found much faster. Returns a 0-d tensor.

    Arguments:
        x: ``(n, *event)`` points; y: ``(m, *event)`` points of the same event shape.
        p: the order, $p \ge 1$.
    """
    x = _validate.points(x, "x")
    y = _validate.points(y, "y")
    if y.shape[1:] != x.shape[1:]:
        raise ValueError(f"y must have x's event shape {tuple(x.shape[1:])}, got {tuple(y.shape[1:])}")
    if y.dtype != x.dtype:
        raise ValueError(f"y has dtype {y.dtype} but x has dtype {x.dtype}")
    p = positive(p, "p")
    if p < 1:
        raise ValueError(f"p must be >= 1 (W_p is a metric for p >= 1), got {p}")
    cost = torch.cdist(x.flatten(1), y.flatten(1)).pow(p)
    if x_weights is None and y_weights is None and len(x) == len(y):
        match = assignment(cost)
        return cost[torch.arange(len(x), device=cost.device), match].mean().clamp_min(0) ** (1 / p)
    a = _uniform(len(x), x) if x_weights is None else _validate.weights(x_weights, len(x), "x_weights", x)
    b = _uniform(len(y), y) if y_weights is None else _validate.weights(y_weights, len(y), "y_weights", y)
    solved = discrete_ot(a / a.sum(), b / b.sum(), cost)
    return solved.cost.clamp_min(0) ** (1 / p)
