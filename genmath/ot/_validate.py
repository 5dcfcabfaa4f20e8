"""Input checks shared by the optimal-transport entry points: weights, cost matrices and point
clouds, each refused by name with what was expected (the rules of `genmath.core._validate`)."""

from __future__ import annotations

import torch

from .._implements import plumbing
from ..core._validate import InputTypeError, check_finite, check_float_tensor

# two marginals are "of equal mass" to this relative tolerance (round-off of a normalisation
# in the weights' dtype); within it, b is rescaled to a's mass exactly
MASS_RTOL = 1e-9


def cost_matrix(cost, name: str = "cost") -> torch.Tensor:
    """A finite floating ``(n, m)`` matrix, ``n, m >= 1``."""
    cost = check_float_tensor(cost, name)
    if cost.ndim != 2 or cost.shape[0] == 0 or cost.shape[1] == 0:
        raise ValueError(f"{name} must be an (n, m) matrix with n, m >= 1, got shape {tuple(cost.shape)}")
    return check_finite(cost, name, "an optimal-transport cost cannot carry a NaN or inf")


def weights(a, size: int, name: str, like: torch.Tensor) -> torch.Tensor:
    """Non-negative finite ``(size,)`` weights of positive total, in ``like``'s dtype."""
    if not isinstance(a, torch.Tensor):
        raise InputTypeError(f"{name} must be a ({size},) tensor of weights, got {type(a).__name__}")
    if not a.is_floating_point():
        raise ValueError(f"{name} must be floating point, got dtype {a.dtype}")
    if a.shape != (size,):
        raise ValueError(f"{name} must have shape ({size},) to match the cost, got {tuple(a.shape)}")
    check_finite(a, name)
    if bool((a < 0).any()):
        raise ValueError(f"{name} must be non-negative, got {a[a < 0].tolist()[:5]}")
    if not float(a.sum()) > 0:
        raise ValueError(f"{name} must have positive total mass, got {float(a.sum())}")
    if a.dtype != like.dtype:
        raise InputTypeError(f"{name} has dtype {a.dtype} but the cost has dtype {like.dtype}")
    return a


@plumbing("input validation: compares the two total masses and rescales b to a's, no formula")
def marginals(a, b, cost) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(a, b, cost)`` checked, with ``a`` and ``b`` of one total mass."""
    cost = cost_matrix(cost)
    a = weights(a, cost.shape[0], "a", cost)
    b = weights(b, cost.shape[1], "b", cost)
    ma, mb = float(a.sum(dtype=torch.float64)), float(b.sum(dtype=torch.float64))
    tolerance = max(MASS_RTOL, 1e3 * torch.finfo(a.dtype).eps)
    if abs(ma - mb) > tolerance * max(ma, mb):
        raise ValueError(
            f"a and b must have the same total mass (balanced transport), got {ma!r} and {mb!r}"
        )
    return a, b * (ma / mb), cost


def points(x, name: str) -> torch.Tensor:
    """A finite floating ``(n, *event)`` point cloud, ``n >= 1``, event non-empty."""
    x = check_float_tensor(x, name)
    if x.ndim < 2 or x.shape[0] == 0:
        raise ValueError(f"{name} must be an (n, *event) point cloud with n >= 1, got shape {tuple(x.shape)}")
    return check_finite(x, name)
