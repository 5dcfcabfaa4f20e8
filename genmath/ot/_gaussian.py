r"""Optimal transport between Gaussians in closed form: the Bures–Wasserstein distance and the
affine Monge map (Dowson & Landau 1982; Olkin & Pukelsheim 1982; Peyré & Cuturi 2019, §2.6).

$W_2^2(\mathcal N(m_0, \Sigma_0), \mathcal N(m_1, \Sigma_1)) = \|m_0 - m_1\|^2 +
\operatorname{tr}\Sigma_0 + \operatorname{tr}\Sigma_1 -
2\operatorname{tr}(\Sigma_0^{1/2}\Sigma_1\Sigma_0^{1/2})^{1/2}$, attained by
$T(x) = m_1 + A(x - m_0)$, $A = \Sigma_0^{-1/2}(\Sigma_0^{1/2}\Sigma_1\Sigma_0^{1/2})^{1/2}
\Sigma_0^{-1/2}$ (D-gaussian-w2, D-gaussian-ot-map).
"""

from __future__ import annotations

import dataclasses

import torch

from .._implements import implements, plumbing
from ..analytic._gaussian import _validated_covariances
from ..core._shapes import check_batch
from ..core._validate import as_parameter
from ._linalg import psd_sqrt

__all__ = ["AffineMap", "gaussian_w2", "gaussian_ot_map"]


@dataclasses.dataclass(frozen=True)
class AffineMap:
    r"""$T(x) = A x + c$ on batches ``(B, d)``: ``matrix`` $A$ ``(d, d)``, ``offset`` $c$ ``(d,)``."""

    matrix: torch.Tensor
    offset: torch.Tensor

    @plumbing("applies the map A x + c that gaussian_ot_map computes (D-gaussian-ot-map)")
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        check_batch(x, "x", event=True)
        if x.ndim != 2 or x.shape[1] != self.matrix.shape[0]:
            raise ValueError(f"x must have shape (B, {self.matrix.shape[0]}), got {tuple(x.shape)}")
        return x @ self.matrix.mT + self.offset


def _gaussians(m0, S0, m1, S1):
    m0 = as_parameter(m0, "m0")
    if m0.ndim != 1 or m0.shape[0] == 0:
        raise ValueError(f"m0 must have shape (d,), d >= 1, got {tuple(m0.shape)}")
    d = m0.shape[0]
    out = [m0]
    for name, value, shape in (("S0", S0, (d, d)), ("m1", m1, (d,)), ("S1", S1, (d, d))):
        value = as_parameter(value, name)
        if value.dtype != m0.dtype:
            raise ValueError(f"{name} has dtype {value.dtype} but m0 has dtype {m0.dtype}")
        if value.shape != shape:
            raise ValueError(f"{name} must have shape {shape} to match m0, got {tuple(value.shape)}")
        out.append(_validated_covariances(value, name) if name.startswith("S") else value)
    return out


@implements("D-gaussian-w2")
def gaussian_w2(m0, S0, m1, S1) -> torch.Tensor:
    r"""$W_2(\mathcal N(m_0, \Sigma_0), \mathcal N(m_1, \Sigma_1))$, the Bures–Wasserstein
    distance (0-d): $\big(\|m_0 - m_1\|^2 + \operatorname{tr}\Sigma_0 + \operatorname{tr}\Sigma_1
    - 2\operatorname{tr}(\Sigma_0^{1/2}\Sigma_1\Sigma_0^{1/2})^{1/2}\big)^{1/2}$ (D-gaussian-w2).
    Means ``(d,)``, covariances ``(d, d)`` symmetric positive definite."""
    m0, S0, m1, S1 = _gaussians(m0, S0, m1, S1)
    root = psd_sqrt(S0)
    cross = psd_sqrt(root @ S1 @ root)
    squared = (m0 - m1).square().sum() + S0.trace() + S1.trace() - 2 * cross.trace()
    return squared.clamp_min(0).sqrt()  # round-off can take an exact 0 a hair below


@implements("D-gaussian-ot-map")
def gaussian_ot_map(m0, S0, m1, S1) -> AffineMap:
    r"""The optimal (Monge) map from $\mathcal N(m_0, \Sigma_0)$ to $\mathcal N(m_1, \Sigma_1)$
    for the squared distance: $T(x) = m_1 + A(x - m_0)$ with the symmetric positive definite
    $A = \Sigma_0^{-1/2}(\Sigma_0^{1/2}\Sigma_1\Sigma_0^{1/2})^{1/2}\Sigma_0^{-1/2}$, the unique
    such $A$ with $A\Sigma_0 A = \Sigma_1$ (D-gaussian-ot-map). Returns an `AffineMap`."""
    m0, S0, m1, S1 = _gaussians(m0, S0, m1, S1)
    root = psd_sqrt(S0)
    # Sigma0^{-1/2} M Sigma0^{-1/2} by two solves against the root, no explicit inverse
    middle = psd_sqrt(root @ S1 @ root)
    A = torch.linalg.solve(root, torch.linalg.solve(root, middle).mT).mT
    A = (A + A.mT) / 2
    return AffineMap(matrix=A, offset=m1 - A @ m0)
