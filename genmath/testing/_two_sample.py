r"""A two-sample distance for samplers with no density to score: the squared energy distance.

For laws $P$ and $Q$ on $\mathbb R^d$ with finite first moments,

$$D_E^2(P, Q) = 2\,\mathbb E\|X - Y\| - \mathbb E\|X - X'\| - \mathbb E\|Y - Y'\|,
\qquad X, X' \sim P,\; Y, Y' \sim Q \text{ independent},$$

is non-negative and zero exactly when $P = Q$ (Székely & Rizzo 2013). Its estimate here is
the U-statistic: the within-sample means leave out the pairs of a point with itself, so its
expectation is $D_E^2$ itself (a V-statistic, the plain mean over all pairs, is biased
upwards by about $\mathbb E\|X - X'\|/n$, which at a few thousand points is as large as the
distances a good sampler reaches).
"""

from __future__ import annotations

import torch

from ..core._validate import check_float_tensor
from ..ot._validate import points

__all__ = ["energy_distance"]


def energy_distance(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    r"""Unbiased estimate of the squared energy distance $D_E^2$ between the laws of two
    samples (see the module docstring for the definition).

    `x` is `(N, *event)` and `y` is `(M, *event)`, finite, with one event shape (a 1-D
    tensor is read as points on the line) and `N, M >= 2`. Returns a 0-dim tensor; it can
    be slightly negative when the laws are equal (an unbiased estimate of 0 must be).
    """
    x = _as_points(x, "x")
    y = _as_points(y, "y")
    if x.shape[1:] != y.shape[1:]:
        raise ValueError(
            f"energy_distance: x and y must have the same event shape; got x of shape "
            f"{tuple(x.shape)} and y of shape {tuple(y.shape)}"
        )
    if x.dtype != y.dtype:
        raise TypeError(f"energy_distance: x is {x.dtype} and y is {y.dtype}; expected one dtype")
    x, y = x.flatten(1), y.flatten(1)
    return 2 * torch.cdist(x, y).mean() - _within(x) - _within(y)


def _within(a: torch.Tensor) -> torch.Tensor:
    n = a.shape[0]
    return torch.cdist(a, a).sum() / (n * (n - 1))  # the n zero diagonal terms left out


def _as_points(a, name: str) -> torch.Tensor:
    """``a`` as a finite ``(N, *event)`` point cloud (genmath.ot's check; a 1-D tensor is
    ``N`` points on the line) with ``N >= 2``."""
    a = check_float_tensor(a, name)
    a = points(a[:, None] if a.dim() == 1 else a, name)
    if a.shape[0] < 2:
        raise ValueError(
            f"energy_distance: {name} needs N >= 2 points (the within-sample mean leaves out "
            f"the pairs of a point with itself), got shape {tuple(a.shape)}"
        )
    return a
