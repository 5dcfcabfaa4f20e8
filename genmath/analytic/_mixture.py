"""Gaussian-mixture data with full covariances, and its exact marginals along a Gaussian path."""

from __future__ import annotations

import torch

from .._implements import implements
from ._gaussian import (
    MixtureMarginal,
    _as_float_tensor,
    _check_points,
    _EigenGaussians,
    _validated_covariances,
)

__all__ = ["GaussianMixture"]


class GaussianMixture:
    """Mixture data $p(x) = \\sum_{k=1}^K \\pi_k \\mathcal N(x; \\mu_k, \\Sigma_k)$.

    Arguments:
        weights: shape ``(K,)``, positive, summing to 1 (to $10^{-6}$ relative in float32,
            $10^{-12}$ in float64); they are renormalised to round-off.
        means: shape ``(K, d)``.
        covs: shape ``(K, d, d)``, each symmetric positive definite.

    `marginal` gives the exact $p_t$, score, denoiser, $\\varepsilon$-prediction and velocity
    along any Gaussian path (D-gaussian-path-marginal, D-mixture-denoiser).
    """

    def __init__(self, weights, means, covs):
        means = _as_float_tensor(means, "means")
        weights = _as_float_tensor(weights, "weights").to(means)
        covs = _as_float_tensor(covs, "covs").to(means)
        if weights.ndim != 1:
            raise ValueError(f"weights must have shape (K,), got shape {tuple(weights.shape)}")
        k = weights.shape[0]
        if means.ndim != 2 or means.shape[0] != k:
            raise ValueError(
                f"means must have shape (K, d) with K = {k} (the number of weights), "
                f"got shape {tuple(means.shape)}"
            )
        d = means.shape[1]
        if covs.shape != (k, d, d):
            raise ValueError(
                f"covs must have shape (K, d, d) = ({k}, {d}, {d}), got {tuple(covs.shape)}"
            )
        if (weights <= 0).any():
            raise ValueError(f"weights must be positive, got {weights.tolist()}")
        tol = 1e-12 if weights.dtype == torch.float64 else 1e-6
        total = float(weights.sum())
        if abs(total - 1.0) > tol:
            raise ValueError(
                f"weights must sum to 1, got sum {total!r} (weights {weights.tolist()})"
            )
        self.weights = weights / weights.sum()
        self.means = means
        self.covs = _validated_covariances(covs, "covs")
        self._scale_tril = torch.linalg.cholesky(self.covs)
        self._components = _EigenGaussians(means, self.covs)

    @property
    def dim(self) -> int:
        return self.means.shape[1]

    @property
    def n_components(self) -> int:
        return self.weights.shape[0]

    @property
    @implements("D-mixture-moments")
    def mean(self) -> torch.Tensor:
        """$\\sum_k \\pi_k \\mu_k$."""
        return self.weights @ self.means

    @property
    @implements("D-mixture-moments")
    def cov(self) -> torch.Tensor:
        """$\\sum_k \\pi_k (\\Sigma_k + \\mu_k\\mu_k^\\top) - \\bar\\mu\\bar\\mu^\\top$ (law of total covariance)."""
        second = self.covs + self.means[:, :, None] * self.means[:, None, :]
        mean = self.mean
        return torch.einsum("k,kij->ij", self.weights, second) - torch.outer(mean, mean)

    @implements("D-mixture-denoiser")
    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """$\\log p(x)$, shape ``(B,)``."""
        x = _check_points(x, self.dim)
        comps = self._components.to(x)
        one, zero = x.new_ones(()), x.new_zeros(())
        joint = self.weights.to(x).log() + comps.log_prob(
            comps.rotate_in(x, one), comps.variances(one, zero)
        )
        return torch.logsumexp(joint, dim=-1)

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` independent draws, shape ``(n, d)``: a component by its weight, then its Gaussian."""
        return self.sample_with_components(n, generator)[0]

    @implements("D-gaussian-sampling")
    def sample_with_components(
        self, n: int, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(x, k)``: ``n`` draws and the index of the component each came from."""
        if not isinstance(n, int) or n < 0:
            raise ValueError(f"n must be a non-negative int, got {n!r}")
        if n == 0:
            return self.means.new_zeros(0, self.dim), torch.zeros(0, dtype=torch.long)
        labels = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        z = torch.randn(
            n, self.dim, generator=generator, dtype=self.means.dtype, device=self.means.device
        )
        x = self.means[labels] + torch.einsum("nij,nj->ni", self._scale_tril[labels], z)
        return x, labels

    @implements("D-mixture-denoiser")
    def marginal(self, path) -> MixtureMarginal:
        """The exact marginal along ``path`` (anything with ``alpha, sigma, d_alpha, d_sigma``
        methods of t, such as `genmath.GaussianPath`)."""
        return MixtureMarginal(self._components, self.weights.log(), path)

    def __repr__(self) -> str:
        return f"GaussianMixture(n_components={self.n_components}, dim={self.dim})"
