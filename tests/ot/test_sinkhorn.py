"""Sinkhorn: it converges to the entropic optimum (against an independent convex solve of the
primal), primal = dual at convergence, and tends to the unregularised optimum as eps -> 0."""

import numpy as np
import pytest
import torch
from scipy.optimize import minimize

from genmath import ot

F64 = torch.float64


def _problem(n, m, seed):
    g = torch.Generator().manual_seed(seed)
    a = torch.rand(n, generator=g, dtype=F64) + 0.1
    b = torch.rand(m, generator=g, dtype=F64) + 0.1
    cost = torch.rand(n, m, generator=g, dtype=F64) * 2
    return a / a.sum(), b / b.sum(), cost


def _entropic_dual_by_bfgs(a, b, cost, eps):
    """The unconstrained concave dual, maximised by scipy's L-BFGS from zero (an independent
    solver of the same optimum): <f, a> + <g, b> - eps sum a b (exp((f + g - C)/eps) - 1)."""
    a, b, C = a.numpy(), b.numpy(), cost.numpy()
    n = len(a)

    def negative(z):
        f, g = z[:n], z[n:]
        K = a[:, None] * b[None, :] * np.exp((f[:, None] + g[None, :] - C) / eps)
        value = f @ a + g @ b - eps * (K.sum() - 1)
        grad = np.concatenate([a - K.sum(1), b - K.sum(0)])
        return -value, -grad

    result = minimize(negative, np.zeros(n + len(b)), jac=True, method="L-BFGS-B",
                      options=dict(gtol=1e-13, ftol=1e-15, maxiter=20000))
    return -result.fun


@pytest.mark.parametrize("eps", [0.05, 0.3, 2.0])
@pytest.mark.parametrize("n, m, seed", [(3, 4, 0), (6, 5, 1)])
def test_sinkhorn_reaches_the_entropic_optimum(n, m, seed, eps):
    a, b, cost = _problem(n, m, seed)
    result = ot.sinkhorn(a, b, cost, eps, tol=1e-12)
    assert result.converged
    assert torch.allclose(result.plan.sum(1), a, atol=1e-11)
    assert torch.allclose(result.plan.sum(0), b, atol=1e-11)
    independent = _entropic_dual_by_bfgs(a, b, cost, eps)
    assert result.objective.item() == pytest.approx(independent, abs=1e-9)
    assert result.dual.item() == pytest.approx(result.objective.item(), abs=1e-10)
    # the Gibbs form of the optimum
    gibbs = a[:, None] * b[None, :] * torch.exp((result.f[:, None] + result.g[None, :] - cost) / eps)
    assert torch.allclose(result.plan, gibbs, rtol=1e-12)


def test_the_entropic_objective_is_not_beaten_by_another_plan():
    # a feasible competitor (the product plan, and the exact OT plan) has a larger objective
    a, b, cost = _problem(4, 4, 2)
    eps = 0.2
    result = ot.sinkhorn(a, b, cost, eps)
    for plan in (a[:, None] * b[None, :], ot.discrete_ot(a, b, cost).plan + 1e-300):
        ref = a[:, None] * b[None, :]
        kl = (torch.xlogy(plan, plan) - torch.xlogy(plan, ref)).sum()
        assert float((plan * cost).sum() + eps * kl) > result.objective.item()


def test_sinkhorn_tends_to_exact_ot_as_eps_vanishes():
    a, b, cost = _problem(5, 6, 3)
    exact = ot.discrete_ot(a, b, cost).cost.item()
    gaps = [ot.sinkhorn(a, b, cost, eps, tol=1e-11).cost.item() - exact for eps in (0.1, 0.01, 0.001)]
    assert all(g >= -1e-9 for g in gaps)  # the exact plan is optimal for <P, C>
    assert gaps[2] < 1e-2 * gaps[0] + 1e-6 and gaps[2] < 1e-3
    # the objective differs from the OT cost by at most eps log(nm) (entropy bound)
    for eps in (0.1, 0.01):
        value = ot.sinkhorn(a, b, cost, eps, tol=1e-11).objective.item()
        assert exact - 1e-9 <= value + eps * np.log(30) + 1e-9


def test_sinkhorn_warns_when_not_converged():
    a, b, cost = _problem(5, 5, 4)
    with pytest.warns(RuntimeWarning, match="did not converge"):
        result = ot.sinkhorn(a, b, cost, 0.001, max_iter=3)
    assert not result.converged and result.iterations == 3


def test_sinkhorn_matches_pot_when_installed():
    pot = pytest.importorskip("ot", reason="POT is optional")
    a, b, cost = _problem(4, 5, 5)
    plan = pot.sinkhorn(a.numpy(), b.numpy(), cost.numpy(), 0.5, stopThr=1e-13, numItermax=100000)
    # POT's reg is the entropy -sum P log P convention: the same plan as KL(P || a b^T)
    assert np.allclose(ot.sinkhorn(a, b, cost, 0.5, tol=1e-13).plan.numpy(), plan, atol=1e-10)
