"""Probabilistic PCA: the linear-Gaussian latent-variable model with exact marginal and posterior."""

from __future__ import annotations

import torch
from torch.distributions import Independent, MultivariateNormal, Normal

from .._implements import implements
from ._gaussian import Gaussian, GaussianMarginal, _as_float_tensor, _check_points

__all__ = ["PPCA"]


class PPCA:
    """$z \\sim \\mathcal N(0, I_k)$, $x \\mid z \\sim \\mathcal N(Wz + b, s^2 I_d)$ (Tipping & Bishop, 1999).

    Exact marginal $p(x) = \\mathcal N(b, WW^\\top + s^2 I)$ and exact posterior
    $p(z \\mid x) = \\mathcal N\\big(M^{-1}W^\\top(x - b),\\ s^2 M^{-1}\\big)$ with
    $M = W^\\top W + s^2 I_k$ (D-ppca-posterior). This is the linear-Gaussian VAE: with
    `posterior_distribution` as encoder, `likelihood` as decoder and `prior` as prior, the
    ELBO equals $\\log p(x)$.

    Arguments:
        W: loading matrix, shape ``(d, k)``.
        b: offset, shape ``(d,)``.
        noise_std: observation noise $s > 0$.
    """

    def __init__(self, W, b, noise_std):
        W = _as_float_tensor(W, "W")
        b = _as_float_tensor(b, "b").to(W)
        noise_std = _as_float_tensor(noise_std, "noise_std").to(W)
        if W.ndim != 2:
            raise ValueError(f"W must have shape (d, k), got shape {tuple(W.shape)}")
        d, k = W.shape
        if b.shape != (d,):
            raise ValueError(f"b must have shape (d,) = ({d},) to match W, got {tuple(b.shape)}")
        if noise_std.ndim != 0 or not noise_std > 0:
            raise ValueError(f"noise_std must be a positive scalar, got {noise_std}")
        self.W, self.b, self.noise_std = W, b, noise_std
        precision_factor = W.mT @ W + noise_std**2 * torch.eye(k, dtype=W.dtype, device=W.device)
        self._m_chol = torch.linalg.cholesky(precision_factor)
        self._gaussian = Gaussian(
            b, W @ W.mT + noise_std**2 * torch.eye(d, dtype=W.dtype, device=W.device)
        )

    @property
    def dim(self) -> int:
        return self.W.shape[0]

    @property
    def latent_dim(self) -> int:
        return self.W.shape[1]

    def as_gaussian(self) -> Gaussian:
        """The marginal of $x$ as a `Gaussian`: $\\mathcal N(b, WW^\\top + s^2 I)$."""
        return self._gaussian

    @implements("D-ppca-posterior", "D-elbo-gap")
    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """$\\log p(x)$, shape ``(B,)``."""
        return self._gaussian.log_prob(x)

    def marginal(self, path) -> GaussianMarginal:
        """The exact marginal of $x$ along a Gaussian path (PPCA data is Gaussian)."""
        return self._gaussian.marginal(path)

    @implements("D-ppca-posterior")
    def posterior(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(mean (B, k), cov (k, k))`` of $p(z \\mid x)$ (D-ppca-posterior)."""
        x = _check_points(x, self.dim)
        chol = self._m_chol.to(x)
        projected = (x - self.b.to(x)) @ self.W.to(x)  # rows are W^T (x - b)
        mean = torch.cholesky_solve(projected.mT, chol).mT
        cov = self.noise_std.to(x) ** 2 * torch.cholesky_inverse(chol)
        return mean, cov

    @implements("D-ppca-posterior")
    def posterior_distribution(self, x: torch.Tensor) -> MultivariateNormal:
        """The exact posterior $p(z \\mid x)$ as a batch of ``B`` `MultivariateNormal`s over
        $\\mathbb R^k$ (use it as the encoder of `genmath.elbo`)."""
        mean, cov = self.posterior(x)
        return MultivariateNormal(mean, covariance_matrix=cov.expand(mean.shape[0], -1, -1))

    @property
    def prior(self) -> MultivariateNormal:
        """$p(z) = \\mathcal N(0, I_k)$."""
        k = self.latent_dim
        return MultivariateNormal(
            self.W.new_zeros(k), scale_tril=torch.eye(k, dtype=self.W.dtype, device=self.W.device)
        )

    @implements("D-ppca-posterior")
    def likelihood(self, z: torch.Tensor) -> Independent:
        """$p(x \\mid z) = \\mathcal N(Wz + b, s^2 I_d)$ for ``z`` of shape ``(..., k)``: a
        distribution with event shape ``(d,)`` (use it as the decoder of `genmath.elbo`)."""
        if not isinstance(z, torch.Tensor) or z.ndim < 1 or z.shape[-1] != self.latent_dim:
            got = tuple(z.shape) if isinstance(z, torch.Tensor) else type(z).__name__
            raise ValueError(f"z must have shape (..., {self.latent_dim}), got {got}")
        loc = z @ self.W.to(z).mT + self.b.to(z)
        return Independent(Normal(loc, self.noise_std.to(z).expand_as(loc)), 1)

    @implements("D-ppca-posterior")
    def log_joint(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """$\\log p(x, z) = \\log p(x \\mid z) + \\log p(z)$, shape ``(B,)``."""
        x = _check_points(x, self.dim)
        return self.likelihood(z).log_prob(x) + self.prior.log_prob(z)

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` draws of $x$, shape ``(n, d)``."""
        return self.sample_joint(n, generator)[0]

    @implements("D-ppca-posterior")
    def sample_joint(
        self, n: int, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(x (n, d), z (n, k))`` drawn from the joint: $z$ from the prior, then $x \\mid z$."""
        if not isinstance(n, int) or n < 0:
            raise ValueError(f"n must be a non-negative int, got {n!r}")
        opts = {"generator": generator, "dtype": self.W.dtype, "device": self.W.device}
        z = torch.randn(n, self.latent_dim, **opts)
        noise = torch.randn(n, self.dim, **opts)
        return z @ self.W.mT + self.b + self.noise_std * noise, z

    def __repr__(self) -> str:
        return f"PPCA(dim={self.dim}, latent_dim={self.latent_dim}, noise_std={float(self.noise_std):.4g})"
