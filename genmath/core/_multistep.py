r"""Exponential Adams weights: the multistep integrators behind `sample_ode`'s
``"dpm++3m"`` and ``"unipc"`` (private).

In $\lambda = \log(\alpha/\sigma)$ the probability-flow ODE of a Gaussian path is solved
exactly by

$$
x_{k+1} = \frac{\sigma_{k+1}}{\sigma_k} x_k
  + \alpha_{k+1}\int_0^{h} e^{-(h-u)}\,\hat x_0(\lambda_k + u)\,du,
\qquad h = \lambda_{k+1} - \lambda_k .
$$

Replacing $\hat x_0$ by the polynomial $p$ through denoiser outputs $D_j$ at offsets $u_j$
(the latest steps, and for a corrector also the new point $u = h$) gives
$x_{k+1} = \frac{\sigma_{k+1}}{\sigma_k}x_k + \alpha_{k+1}\sum_j w_j D_j$ with
$w_j = \int_0^h e^{-(h-u)}\ell_j(u)\,du$, $\ell_j$ the Lagrange basis of the nodes
(derivations D-exponential-adams-2, D-exponential-adams-3). The weights are exact for
polynomials of degree below the number of nodes, so they solve the moment equations
$\sum_j w_j u_j^k = k!\,\psi_k(h)$, $\psi_k(h) = \int_0^h e^{-(h-u)}u^k/k!\,du$, which is how
they are computed here (in float64, once per grid, before the first step).
"""

from __future__ import annotations

import math

import torch

from .._implements import implements

# below this step in lambda the psi functions are summed as series (their closed forms
# subtract nearly equal numbers); above it the recurrence loses under a digit
_SERIES_BELOW = 1.0


@implements("D-exponential-adams-2", "D-exponential-adams-3")
def psi(h: float, count: int) -> list[float]:
    r"""$\psi_0(h), \dots, \psi_{count-1}(h)$ with $\psi_k(h) = \int_0^h e^{-(h-u)} u^k/k!\,du
    = \sum_{n \ge 0} (-1)^n h^{k+1+n}/(k+1+n)!$ ($\psi_0 = 1 - e^{-h}$,
    $\psi_k = h^k/k! - \psi_{k-1}$)."""
    if h < _SERIES_BELOW:
        out = []
        for k in range(count):
            term = h ** (k + 1) / math.factorial(k + 1)
            total, n = 0.0, 0
            while abs(term) > 1e-18 * max(abs(total), 1e-300):
                total += term
                n += 1
                term *= -h / (k + 1 + n)
            out.append(total)
        return out
    out = [-math.expm1(-h)]
    for k in range(1, count):
        out.append(h**k / math.factorial(k) - out[-1])
    return out


@implements("D-exponential-adams-2", "D-exponential-adams-3", "D-dpm-solver-pp-3m-exact-weights")
def exponential_weights(h: float, nodes: list[float]) -> list[float]:
    r"""$w_j = \int_0^h e^{-(h-u)}\ell_j(u)\,du$ for the Lagrange basis $\ell_j$ of distinct
    `nodes` $u_j$ (offsets in $\lambda$ from the current step), by the moment equations
    $\sum_j w_j (u_j/h)^k = k!\,\psi_k(h)/h^k$ (scaled by $h$ for conditioning)."""
    n = len(nodes)
    moments = psi(h, n)
    scaled = torch.tensor([u / h for u in nodes], dtype=torch.float64)
    vandermonde_t = scaled[None, :] ** torch.arange(n, dtype=torch.float64)[:, None]
    rhs = torch.tensor(
        [math.factorial(k) * moments[k] / h**k for k in range(n)], dtype=torch.float64
    )
    return torch.linalg.solve(vandermonde_t, rhs).tolist()


@implements("D-exponential-adams-2", "D-exponential-adams-3", "D-dpm-solver-pp-3m-exact-weights")
def multistep_plan(method: str, lam: list[float], lower_order_final: int = 0) -> list[dict]:
    r"""Per step ``k`` of a grid with half-log-SNRs ``lam``: the predictor's weights on the
    denoiser outputs ``[D_k, D_{k-1}, ...]`` and, for ``"unipc"``, the corrector's weights on
    ``[D_{k+1}^{pred}, D_k, D_{k-1}, ...]`` (None on the last step, which has no following
    evaluation to reuse).

    The last ``lower_order_final`` steps predict from the current output alone, with the
    nodes of the first step (DDIM's weight; unipc's corrector then has nodes $h, 0$): on a
    short grid that ends near the data the last steps are long in $\lambda$, and extrapolating
    a polynomial through earlier outputs across them amplifies their differences (diffusers'
    ``lower_order_final``). A fixed number of first-order steps adds $O(h^2)$ to the error, so
    it is meant for few steps, where it is far smaller than the extrapolation's."""
    steps = len(lam) - 1
    history = {"dpm++3m": 3, "unipc": 2}[method]
    plan = []
    for k in range(steps):
        h = lam[k + 1] - lam[k]
        available = 1 if k >= steps - lower_order_final else min(k + 1, history)
        nodes = [lam[k - j] - lam[k] for j in range(available)]
        entry = {"predictor": exponential_weights(h, nodes), "corrector": None}
        if method == "unipc" and k < steps - 1:
            entry["corrector"] = exponential_weights(h, [h, *nodes])
        plan.append(entry)
    return plan
