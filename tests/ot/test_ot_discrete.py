"""Exact discrete OT: primal = dual with complementary slackness, against an independent solve
of the dual linear program by scipy, brute force over permutations, and the 1-D sorted matching."""

import itertools

import numpy as np
import pytest
import torch
from scipy.optimize import linprog

from genmath import ot
from genmath.families.flow_matching import ot_coupling

F64 = torch.float64


def _problem(n, m, seed):
    g = torch.Generator().manual_seed(seed)
    a = torch.rand(n, generator=g, dtype=F64) + 0.05
    b = torch.rand(m, generator=g, dtype=F64) + 0.05
    cost = torch.randn(n, m, generator=g, dtype=F64) ** 2 + torch.rand(n, m, generator=g, dtype=F64)
    return a / a.sum(), b / b.sum(), cost


def _dual_by_linprog(a, b, cost):
    """max <f, a> + <g, b> s.t. f_i + g_j <= C_ij, solved as its own LP (not from the primal's
    multipliers)."""
    n, m = cost.shape
    A = np.zeros((n * m, n + m))
    for i in range(n):
        for j in range(m):
            A[i * m + j, i] = A[i * m + j, n + j] = 1
    result = linprog(
        -np.concatenate([a.numpy(), b.numpy()]), A_ub=A, b_ub=cost.numpy().reshape(-1),
        bounds=(None, None), method="highs-ipm",
    )
    assert result.status == 0
    return -result.fun


@pytest.mark.parametrize("n, m, seed", [(3, 4, 0), (6, 5, 1), (8, 8, 2), (12, 7, 3)])
def test_primal_equals_dual_with_complementary_slackness(n, m, seed):
    a, b, cost = _problem(n, m, seed)
    solved = ot.discrete_ot(a, b, cost)
    P, f, g = solved.plan, solved.f, solved.g
    assert torch.allclose(P.sum(1), a, atol=1e-9) and torch.allclose(P.sum(0), b, atol=1e-9)
    assert bool((P >= 0).all())
    slack = cost - f[:, None] - g[None, :]
    assert float(slack.min()) >= -1e-12  # dual feasible (the c-transforms make it exact)
    assert float((P * slack).abs().sum()) < 1e-9  # complementary slackness
    assert float((slack[P > 1e-9]).abs().max()) < 1e-8
    independent = _dual_by_linprog(a, b, cost)
    assert solved.cost.item() == pytest.approx(independent, abs=1e-8)
    assert solved.dual.item() == pytest.approx(independent, abs=1e-8)


def test_a_plan_off_the_optimum_has_a_positive_gap():
    # the certificate can fail: the identity plan a b^T is feasible but not optimal
    a, b, cost = _problem(5, 5, 4)
    solved = ot.discrete_ot(a, b, cost)
    independent_plan = a[:, None] * b[None, :]
    assert float((independent_plan * cost).sum()) > solved.dual.item() + 1e-3


@pytest.mark.parametrize("n, seed", [(4, 5), (6, 6)])
def test_uniform_square_problem_equals_the_best_permutation(n, seed):
    _, _, cost = _problem(n, n, seed)
    u = torch.full((n,), 1 / n, dtype=F64)
    brute = min(sum(cost[i, s[i]].item() for i in range(n)) for s in itertools.permutations(range(n))) / n
    assert ot.discrete_ot(u, u, cost).cost.item() == pytest.approx(brute, abs=1e-10)
    perm = ot.assignment(cost)
    assert cost[torch.arange(n), perm].sum().item() / n == pytest.approx(brute, abs=1e-12)


def test_zero_weights_carry_no_mass_and_stay_dual_feasible():
    a, b, cost = _problem(4, 5, 7)
    a = torch.tensor([0.5, 0.0, 0.3, 0.2], dtype=F64)
    solved = ot.discrete_ot(a, b, cost)
    assert float(solved.plan[1].abs().sum()) < 1e-12
    assert float((cost - solved.f[:, None] - solved.g[None, :]).min()) >= -1e-12


def test_unbalanced_masses_are_refused_by_name():
    a, b, cost = _problem(3, 3, 8)
    with pytest.raises(ValueError, match="a and b"):
        ot.discrete_ot(a, 2 * b, cost)


@pytest.mark.parametrize("p", [1.0, 1.5, 2.0, 3.0])
def test_wasserstein_on_the_line_is_the_sorted_matching(p):
    # 1-D, uniform, equal sizes: the monotone (sorted) matching is optimal for convex costs
    g = torch.Generator().manual_seed(9)
    x, y = torch.randn(9, 1, generator=g, dtype=F64), 2 + torch.rand(9, 1, generator=g, dtype=F64)
    sorted_cost = (x.sort(0).values - y.sort(0).values).abs().pow(p).mean()
    assert ot.wasserstein(x, y, p).item() == pytest.approx(sorted_cost.item() ** (1 / p), rel=1e-10)


def test_wasserstein_weights_are_normalised_and_match_discrete_ot():
    g = torch.Generator().manual_seed(10)
    x, y = torch.randn(5, 2, generator=g, dtype=F64), torch.randn(7, 2, generator=g, dtype=F64)
    wa, wb = torch.rand(5, generator=g, dtype=F64), torch.rand(7, generator=g, dtype=F64)
    direct = ot.discrete_ot(wa / wa.sum(), wb / wb.sum(), torch.cdist(x, y) ** 2).cost.sqrt()
    assert ot.wasserstein(x, y, x_weights=3 * wa, y_weights=wb).item() == pytest.approx(direct.item(), rel=1e-12)


@pytest.mark.parametrize("backend", ["scipy", "pot"])
def test_flow_matching_ot_coupling_is_the_ot_modules_plan(backend):
    if backend == "pot":
        pytest.importorskip("ot", reason="POT is an optional backend")
    g = torch.Generator().manual_seed(11)
    x0, x1 = torch.randn(10, 3, generator=g, dtype=F64), torch.randn(10, 3, generator=g, dtype=F64)
    perm = ot_coupling(x0, x1, backend=backend)
    u = torch.full((10,), 0.1, dtype=F64)
    plan = ot.discrete_ot(u, u, torch.cdist(x0, x1) ** 2).plan
    # costs in general position: the optimum is unique, a permutation matrix scaled by 1/B
    assert torch.equal(plan.argmax(1), perm)
    assert torch.allclose(plan * 10, torch.eye(10, dtype=F64)[perm], atol=1e-9)


def test_assignment_pot_backend_agrees_with_scipy():
    pytest.importorskip("ot", reason="POT is an optional backend")
    _, _, cost = _problem(9, 9, 12)
    assert torch.equal(ot.assignment(cost, backend="pot"), ot.assignment(cost, backend="scipy"))


def test_assignment_pot_backend_without_pot_says_how_to_install(monkeypatch):
    import genmath.ot._discrete as discrete

    monkeypatch.setattr(discrete, "_pot", lambda: None)
    with pytest.raises(ValueError, match="pip install pot"):
        ot.assignment(torch.eye(3, dtype=F64), backend="pot")
