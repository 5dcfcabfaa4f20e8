r"""Entropic optimal transport by Sinkhorn's iterations, in the log domain.

The entropic problem (Cuturi 2013; Peyré & Cuturi 2019, §4) is
$\mathrm{OT}_\varepsilon = \min_{P1 = a,\ P^\top 1 = b} \langle P, C\rangle +
\varepsilon\,\mathrm{KL}(P \,\|\, a b^\top)$, with dual
$\max_{f, g} \langle f, a\rangle + \langle g, b\rangle - \varepsilon \sum_{ij} a_i b_j
(e^{(f_i + g_j - C_{ij})/\varepsilon} - 1)$ and optimum $P_{ij} = a_i b_j
e^{(f_i + g_j - C_{ij})/\varepsilon}$ (D-entropic-ot-duality). Sinkhorn alternates the exact
maximisations in $f$ and in $g$:
$f_i = -\varepsilon \log \sum_j b_j e^{(g_j - C_{ij})/\varepsilon}$ and its mirror, each a
`logsumexp`, so no kernel $e^{-C/\varepsilon}$ underflows for small $\varepsilon$.
"""

from __future__ import annotations

import dataclasses
import warnings

import torch

from .._implements import implements
from ..core._validate import positive, positive_int
from . import _validate

__all__ = ["SinkhornResult", "sinkhorn"]


@dataclasses.dataclass(frozen=True)
class SinkhornResult:
    r"""The entropic plan and its certificate.

    Attributes:
        plan: $P_{ij} = a_i b_j e^{(f_i + g_j - C_{ij})/\varepsilon}$, ``(n, m)``.
        f, g: the dual potentials, ``(n,)`` and ``(m,)``.
        cost: $\langle P, C\rangle$, the transport part (0-d).
        objective: the primal $\langle P, C\rangle + \varepsilon\,\mathrm{KL}(P\,\|\,ab^\top)$
            (0-d), KL in its generalised form $\sum P\log\frac{P}{ab} - \sum P + \sum ab$.
        dual: the dual value at $(f, g)$ (0-d); equals ``objective`` at convergence.
        marginal_error: $\|P1 - a\|_1 + \|P^\top 1 - b\|_1$ at the last iterate.
        iterations: the number of $(f, g)$ updates made.
        converged: whether ``marginal_error <= tol``.
    """

    plan: torch.Tensor
    f: torch.Tensor
    g: torch.Tensor
    cost: torch.Tensor
    objective: torch.Tensor
    dual: torch.Tensor
    marginal_error: float
    iterations: int
    converged: bool


@implements("D-entropic-ot-duality")
def sinkhorn(
    a: torch.Tensor,
    b: torch.Tensor,
    cost: torch.Tensor,
    epsilon: float,
    *,
    tol: float = 1e-9,
    max_iter: int = 100_000,
) -> SinkhornResult:
    r"""Entropic optimal transport between weights ``a`` ``(n,)`` and ``b`` ``(m,)`` (one total
    mass) under ``cost`` ``(n, m)`` with regularisation ``epsilon`` $> 0$: log-domain Sinkhorn
    until the marginal error $\|P1 - a\|_1 + \|P^\top 1 - b\|_1$ is at most ``tol`` (relative
    to the mass), or ``max_iter`` iterations (then a `RuntimeWarning`, ``converged=False``).

    As $\varepsilon \to 0$ the value tends to the unregularised optimum of `discrete_ot`; the
    iterations needed grow like $1/\varepsilon$ (D-entropic-ot-duality)."""
    a, b, cost = _validate.marginals(a, b, cost)
    epsilon = positive(epsilon, "epsilon")
    tol = positive(tol, "tol")
    max_iter = positive_int(max_iter, "max_iter")
    log_a, log_b = a.log(), b.log()  # log 0 = -inf: a zero weight carries no mass
    f = torch.zeros_like(a)
    g = torch.zeros_like(b)
    mass = float(a.sum())
    error, iterations = float("inf"), 0
    while iterations < max_iter:
        f = -epsilon * torch.logsumexp(log_b[None, :] + (g[None, :] - cost) / epsilon, dim=1)
        g = -epsilon * torch.logsumexp(log_a[:, None] + (f[:, None] - cost) / epsilon, dim=0)
        iterations += 1
        # after the g-update the columns are exact: the rows carry the whole error. The last
        # iteration is always measured, so the loop leaves with the plan of its final (f, g)
        if iterations % 10 == 0 or iterations == max_iter:
            plan = _plan(log_a, log_b, f, g, cost, epsilon)
            error = _marginal_error(plan, a, b)
            if error <= tol * mass:
                break
    converged = error <= tol * mass
    if not converged:
        warnings.warn(
            f"sinkhorn did not converge in {max_iter} iterations (marginal error {error:.3g} > "
            f"tol {tol:.3g}); raise max_iter or epsilon",
            RuntimeWarning,
            stacklevel=2,
        )
    reference = a[:, None] * b[None, :]
    kl = (torch.xlogy(plan, plan) - torch.xlogy(plan, reference)).sum() - plan.sum() + reference.sum()
    transport = (plan * cost).sum()
    dual = f @ a + g @ b - epsilon * (plan.sum() - reference.sum())
    return SinkhornResult(
        plan=plan,
        f=f,
        g=g,
        cost=transport,
        objective=transport + epsilon * kl,
        dual=dual,
        marginal_error=error,
        iterations=iterations,
        converged=converged,
    )


def _marginal_error(plan: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> float:
    r"""$\|P1 - a\|_1 + \|P^\top 1 - b\|_1$: the stopping test and the reported error, one formula."""
    return float((plan.sum(1) - a).abs().sum() + (plan.sum(0) - b).abs().sum())


def _plan(log_a, log_b, f, g, cost, epsilon):
    return torch.exp(log_a[:, None] + log_b[None, :] + (f[:, None] + g[None, :] - cost) / epsilon)
