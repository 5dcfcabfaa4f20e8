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

__all__ = ["energy_distance"]


def energy_distance(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    r"""Unbiased estimate of the squared energy distance $D_E^2$ between the laws of two
    samples (see the module docstring for the definition).

    `x` is `(N, d)` and `y` is `(M, d)` (a 1-D tensor is read as `d = 1`), with `N, M >= 2`
    and the same `d`. Returns a 0-dim tensor; it can be slightly negative when the laws are
    equal (an unbiased estimate of 0 must be).
    """
    x = _as_points(x, "x")
    y = _as_points(y, "y")
    if x.shape[1] != y.shape[1]:
        raise ValueError(
            f"energy_distance: x and y must have the same dimension; got x of shape "
            f"{tuple(x.shape)} and y of shape {tuple(y.shape)}"
        )
    if x.dtype != y.dtype:
        raise TypeError(f"energy_distance: x is {x.dtype} and y is {y.dtype}; expected one dtype")
    return 2 * torch.cdist(x, y).mean() - _within(x) - _within(y)


def _within(a: torch.Tensor) -> torch.Tensor:
    n = a.shape[0]
    return torch.cdist(a, a).sum() / (n * (n - 1))  # the n zero diagonal terms left out


def _as_points(a, name: str) -> torch.Tensor:
    a = check_float_tensor(a, name)
    if a.dim() == 1:
        a = a[:, None]
    if a.dim() != 2 or a.shape[0] < 2:
        raise ValueError(
            f"energy_distance: {name} must be a sample of shape (N, d) with N >= 2 (or (N,)); "
            f"got shape {tuple(a.shape)}"
        )
    if not bool(torch.isfinite(a).all()):
        raise ValueError(f"energy_distance: {name} holds non-finite values")
    return a
