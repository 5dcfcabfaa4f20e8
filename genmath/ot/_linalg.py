"""The square root of a symmetric positive semi-definite matrix: the one place genmath takes it
(the Bures metric, the Gaussian Monge map, the Gaussian Schrödinger bridge)."""

from __future__ import annotations

import torch

from .._implements import implements
from ..core._validate import check_finite, check_float_tensor

__all__ = ["psd_sqrt"]


@implements("D-psd-sqrt")
def psd_sqrt(matrix: torch.Tensor) -> torch.Tensor:
    r"""The symmetric PSD square root $S^{1/2} = V\,\mathrm{diag}(\sqrt{\lambda})\,V^\top$ of a
    symmetric ``(..., d, d)`` matrix $S = V\,\mathrm{diag}(\lambda)\,V^\top$, the unique PSD
    $R$ with $R^2 = S$ (D-psd-sqrt).

    Eigenvalues a round-off below zero (a PSD matrix computed in floating point) are taken as
    zero; the input is symmetrised first, so the result is symmetric to round-off."""
    matrix = check_finite(check_float_tensor(matrix, "matrix"), "matrix")
    if matrix.ndim < 2 or matrix.shape[-1] != matrix.shape[-2] or matrix.shape[-1] == 0:
        raise ValueError(f"matrix must be square (..., d, d) with d >= 1, got shape {tuple(matrix.shape)}")
    values, vectors = torch.linalg.eigh((matrix + matrix.mT) / 2)
    return (vectors * values.clamp_min(0).sqrt()[..., None, :]) @ vectors.mT
