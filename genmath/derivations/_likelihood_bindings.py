"""Bindings of the likelihood topic (`genmath.derivations.likelihood`).

* Hutchinson: `divergence` on affine fields with a full non-symmetric Jacobian; the mean and
  the variance of its estimator (`divergence`'s own probe loop) taken *exactly*, over the
  eight Rademacher probes of $\\mathbb R^3$ and over a Gauss–Hermite product rule for Gaussian
  probes (exact for the quartic the variance is);
* `VelocityMLP.velocity_and_divergence` with its weights set to the derivation's symbols, for
  every activation and both depths;
* `bits_per_dim` on one dequantized cell, both dequantization modes.
"""

from __future__ import annotations

import itertools

import sympy as sp

from . import likelihood as T
from ._engine import Binding, Integers, LogUniform, Uniform
from ._registry import register

# --------------------------------------------------------------------------- Hutchinson

_entries = list(T.J)


def _affine_estimates(points, probes):
    """Per-probe Hutchinson estimates ``(P, n)`` of the affine field with Jacobian J (from the
    points) at ``probes`` ``(P, 3)``, by the estimator `divergence` runs."""
    import torch

    from ..core.divergence import _hutchinson_from_graph

    n = next(iter(points.values())).shape[0]
    filler = torch.full((n,), 0.3, dtype=torch.float64)  # entries the expression does not involve
    jac = torch.stack([points.get(s, filler) for s in _entries], -1).reshape(n, 3, 3)
    x = torch.linspace(-1, 1, 3 * n, dtype=torch.float64).reshape(n, 3).requires_grad_(True)
    y = torch.einsum("bij,bj->bi", jac, x) + 0.5
    return torch.stack(
        [_hutchinson_from_graph(y, x, z.expand(1, n, 3), False) for z in probes]
    ).detach()


def _rademacher_probes():
    import torch

    return torch.tensor(list(itertools.product((-1.0, 1.0), repeat=3)), dtype=torch.float64)


def _gauss_hermite_probes():
    """Nodes and weights of the 3-point Gauss–Hermite rule for N(0, 1), in three dimensions."""
    import numpy as np
    import torch

    nodes, weights = np.polynomial.hermite_e.hermegauss(3)
    weights = weights / weights.sum()
    grid = list(itertools.product(range(3), repeat=3))
    probes = torch.tensor([[nodes[i] for i in g] for g in grid], dtype=torch.float64)
    w = torch.tensor([np.prod([weights[i] for i in g]) for g in grid], dtype=torch.float64)
    return probes, w


def _exact_trace(points):
    import torch

    from ..core.divergence import divergence

    n = next(iter(points.values())).shape[0]
    off = [0.7, -1.1, 0.4, 1.3, -0.6, 0.9]  # off-diagonal entries: non-symmetric, not traced
    jac = torch.zeros(n, 3, 3, dtype=torch.float64)
    for k, (i, j) in enumerate((i, j) for i in range(3) for j in range(3) if i != j):
        jac[:, i, j] = off[k]
    for i in range(3):
        jac[:, i, i] = points[T.J[i, i]]
    x = torch.linspace(-1, 1, 3 * n, dtype=torch.float64).reshape(n, 3)
    return divergence(lambda y: torch.einsum("bij,bj->bi", jac, y) + 0.5, x, "exact")


def _hutchinson_moments(kind, moment):
    def evaluate(points):
        if kind == "rademacher":
            probes = _rademacher_probes()
            weights = probes.new_full((probes.shape[0],), 1 / probes.shape[0])
        else:
            probes, weights = _gauss_hermite_probes()
        est = _affine_estimates(points, probes)
        mean = (weights[:, None] * est).sum(0)
        if moment == "mean":
            return mean
        return (weights[:, None] * est**2).sum(0) - mean**2

    return evaluate


_jac_domain = {s: Uniform(-2, 2) for s in _entries}
register(
    Binding(
        derivation="D-hutchinson-unbiased",
        code=("genmath.core.divergence.divergence",),
        expression=T.TRACE,
        evaluate=_exact_trace,
        domain={T.J[i, i]: Uniform(-2, 2) for i in range(3)},
        samples=12,
        description="divergence(J x + c, 'exact') at a full non-symmetric J",
    )
)
for _kind in ("rademacher", "gaussian"):
    register(
        Binding(
            derivation="D-hutchinson-unbiased",
            code=("genmath.core.divergence._hutchinson_from_graph",),
            expression=T.TRACE,
            evaluate=_hutchinson_moments(_kind, "mean"),
            domain={T.J[i, i]: Uniform(-2, 2) for i in range(3)},
            samples=12,
            description=f"the mean of divergence's Hutchinson estimate over {_kind} probes (exact)",
        )
    )
    register(
        Binding(
            derivation="D-hutchinson-variance",
            code=("genmath.core.divergence._hutchinson_from_graph",),
            expression=T.VARIANCES[0 if _kind == "gaussian" else 1],
            evaluate=_hutchinson_moments(_kind, "variance"),
            domain={
                s: _jac_domain[s]
                for s in sp.sympify(T.VARIANCES[0 if _kind == "gaussian" else 1]).free_symbols
            },
            samples=12,
            description=f"the variance of divergence's Hutchinson estimate over {_kind} probes (exact)",
        )
    )

# --------------------------------------------------------------------------- VelocityMLP


def _mlp_by_code(activation, depth):
    def evaluate(points):
        import torch

        from ..nn import VelocityMLP

        def matrix(symbols):
            return torch.stack([points[s] for s in symbols], -1).reshape(
                -1, symbols.shape[0], symbols.shape[1]
            )

        W1, W3 = matrix(T.W1), matrix(T.W3)
        W2 = matrix(T.W2) if depth == 2 else None
        w_t, b_1 = (torch.stack([points[s] for s in v], -1) for v in (T.wt, T.b1))
        b_2 = torch.stack([points[s] for s in T.b2], -1) if depth == 2 else None
        x = torch.stack([points[s] for s in T.xs], -1)
        model = VelocityMLP(2, hidden=2, depth=depth, activation=activation).double()
        out = []
        for j in range(x.shape[0]):
            with torch.no_grad():
                model.input.weight.copy_(torch.cat([W1[j], w_t[j][:, None]], 1))
                model.input.bias.copy_(b_1[j])
                if depth == 2:
                    model.middle.weight.copy_(W2[j])
                    model.middle.bias.copy_(b_2[j])
                model.output.weight.copy_(W3[j])
                model.output.bias.fill_(0.1)
            _, div = model.velocity_and_divergence(x[j : j + 1], points.get(T.t, x[:, 0] * 0)[j])
            out.append(div.detach())
        return torch.cat(out)

    return evaluate


for _activation, _depth in (
    ("softplus", 2),
    ("tanh", 2),
    ("silu", 2),
    ("sigmoid", 2),
    ("tanh", 1),
):
    _expression = T._structured[0 if _depth == 2 else 1]
    _where = T.activation_substitutions(_activation)
    register(
        Binding(
            derivation="D-mlp-structured-divergence",
            code=("genmath.nn.VelocityMLP.velocity_and_divergence",),
            expression=_expression,
            where=_where,
            evaluate=_mlp_by_code(_activation, _depth),
            domain={
                s: (Uniform(0, 1) if s == T.t else Uniform(-1.5, 1.5))
                for s in sp.sympify(_expression).subs(_where).free_symbols
            },
            samples=6,
            description=f"VelocityMLP(depth={_depth}, activation={_activation!r}): structured divergence",
        )
    )

# --------------------------------------------------------------------------- bits per dim

_low, _high = sp.symbols("a b", real=True)
_levels = sp.Symbol("L", integer=True, positive=True)


def _bits_by_code(event_shape):
    def evaluate(points):
        import math

        import torch

        from ..core.likelihood import bits_per_dim

        n_dims = math.prod(event_shape)
        out = []
        for j in range(points[T.theta].shape[0]):
            low, high = float(points[_low][j]), float(points[_high][j])
            levels = int(points[_levels][j])
            delta = (high - low) / levels
            # the dequantized density's mean log-density over the cell, D cells alike
            per_dim = points[T.theta][j] * delta / 2 + points[T.kappa][j]
            out.append(
                bits_per_dim(n_dims * per_dim, event_shape, levels=levels, data_range=(low, high))
            )
        return torch.stack(out)

    return evaluate


def _bits_of_mass_by_code(points):
    import torch

    from ..core.likelihood import bits_per_dim

    theta, kappa, delta = points[T.theta], points[T.kappa], points[T.width]
    # the cell's mass P = Delta e^kappa (e^{theta Delta} - 1)/(theta Delta), given to the code
    log_mass = kappa + torch.log(torch.expm1(theta * delta) / theta)
    return bits_per_dim(log_mass, 1, dequantization="none")


for _shape in ((1,), (3, 4)):
    register(
        Binding(
            derivation="D-bits-per-dim",
            code=("genmath.core.likelihood.bits_per_dim",),
            expression=T.BITS,
            where={T.width: (_high - _low) / _levels},
            evaluate=_bits_by_code(_shape),
            domain={
                T.theta: Uniform(-5, 5),
                T.kappa: Uniform(-3, 3),
                _low: Uniform(-1, 0),
                _high: Uniform(0.5, 2),
                _levels: Integers(2, 256),
            },
            samples=16,
            description=f"bits_per_dim of a dequantized density, event shape {_shape}",
        )
    )
register(
    Binding(
        derivation="D-bits-per-dim",
        code=("genmath.core.likelihood.bits_per_dim",),
        expression=-sp.log(T._cell_mass) / sp.log(2),
        evaluate=_bits_of_mass_by_code,
        domain={T.theta: Uniform(-5, 5), T.kappa: Uniform(-3, 3), T.width: LogUniform(1e-3, 2)},
        samples=8,
        description="bits_per_dim(log P, dequantization='none') of the cell's discrete mass",
    )
)
