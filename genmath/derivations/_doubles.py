"""Stand-in distributions that let a binding evaluate a Monte-Carlo estimator *exactly*.

An ELBO or a Monte-Carlo KL averages a function of draws $z \\sim q$. When that function is a
quadratic in $z$ (every Gaussian log-density is), its average over the $2k$ *sigma points*
$m \\pm \\sqrt k\\,\\tau_j e_j$ of $q = \\mathcal N(m, \\operatorname{diag}\\tau^2)$ on
$\\mathbb R^k$ equals its expectation exactly (the points reproduce the first and second
moments of $q$). `SigmaPointGaussian` is such a $q$ whose draws are these points, so the
estimator under test returns the closed-form expectation that a derivation establishes, to
round-off: the bindings compare values, not sample means.

`PresetDraws` returns given values as its draws, in order (an importance-weighted bound is a
function of its weights, not an expectation, and is bound at given weights).

These are private helpers of the bindings, not part of genmath's API.
"""

from __future__ import annotations

import math

import torch
from torch import distributions as D

__all__ = ["SigmaPointGaussian", "PresetDraws", "PresetNormal", "preset_noise_path"]


class SigmaPointGaussian(D.Independent):
    """$\\mathcal N(m, \\operatorname{diag}\\tau^2)$ over the last axis (size $k$) whose
    ``rsample((2k,))`` returns the sigma points $m - \\sqrt k\\,\\tau_j e_j$ ($j < k$), then
    $m + \\sqrt k\\,\\tau_j e_j$: their average of any quadratic is its expectation under
    $q$. Log-densities and torch's registered KL are those of the Gaussian."""

    def __init__(self, loc: torch.Tensor, scale: torch.Tensor):
        super().__init__(D.Normal(loc, scale), 1)

    def rsample(self, sample_shape=()) -> torch.Tensor:
        loc, scale = self.base_dist.loc, self.base_dist.scale
        k = loc.shape[-1]
        if tuple(sample_shape) != (2 * k,):
            raise ValueError(f"a sigma-point Gaussian on R^{k} draws exactly {2 * k} points")
        eye = torch.eye(k, dtype=loc.dtype, device=loc.device)
        # offsets[j] = sqrt(k) tau_j e_j, broadcast over the batch
        offsets = math.sqrt(k) * scale.unsqueeze(0) * eye.reshape(k, *([1] * (loc.ndim - 1)), k)
        return torch.cat([loc - offsets, loc + offsets])

    def sample(self, sample_shape=()) -> torch.Tensor:
        with torch.no_grad():
            return self.rsample(sample_shape)


class PresetDraws(D.Exponential):
    """An exponential law of rate 2 (its ``log_prob`` is $\\log 2 - 2z$) whose draws are the
    given values, in order: ``draws`` has shape ``(n, *batch_shape)``; each call of
    ``rsample((k,))`` returns the next ``k`` of them."""

    def __init__(self, draws: torch.Tensor):
        self._draws, self._cursor = draws, 0
        super().__init__(torch.full_like(draws[0], 2.0))

    def rsample(self, sample_shape=()) -> torch.Tensor:
        (k,) = tuple(sample_shape)
        out = self._draws[self._cursor : self._cursor + k]
        if out.shape[0] != k:
            raise ValueError("PresetDraws: more draws asked for than were preset")
        self._cursor += k
        return out

    def sample(self, sample_shape=()) -> torch.Tensor:
        return self.rsample(sample_shape)


def preset_noise_path(schedule, noise: torch.Tensor):
    """A `GaussianPath` of ``schedule`` whose ``sample`` pairs $x_0$ with the given noise
    instead of drawing it: a loss that draws $\\varepsilon$ is then a function of the
    binding's points. Everything else is the path's own code."""
    from ..core.path import GaussianPath

    class _PresetNoisePath(GaussianPath):
        def sample(self, x0, t, generator=None, *, eps=None):
            return super().sample(x0, t, generator, eps=noise if eps is None else eps)

    return _PresetNoisePath(schedule)


class PresetNormal(D.Normal):
    """$\\mathcal N(\\mathrm{loc}, \\mathrm{scale}^2)$ whose ``rsample((k,))`` returns the given
    draws ``(k, *batch_shape)`` (a flow's base, so that its samples are the binding's points)."""

    def __init__(self, loc: torch.Tensor, scale: torch.Tensor, draws: torch.Tensor):
        super().__init__(loc, scale)
        self._draws = draws

    def rsample(self, sample_shape=()) -> torch.Tensor:
        if tuple(sample_shape) != tuple(self._draws.shape[: len(tuple(sample_shape))]):
            raise ValueError("PresetNormal: the sample shape must be that of the preset draws")
        return self._draws
