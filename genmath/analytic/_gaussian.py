r"""Gaussian data and its exact marginals along any Gaussian path.

Everything here reduces to one computation, done in the eigenbasis of each component's
covariance: with $\Sigma = U \operatorname{diag}(\lambda) U^\top$, the marginal covariance
$C_t = \alpha_t^2 \Sigma + \sigma_t^2 I = U \operatorname{diag}(\alpha_t^2 \lambda + \sigma_t^2) U^\top$
is diagonal in the same basis at every $t$, so densities, scores, denoisers, velocities and
flow maps cost one rotation and elementwise arithmetic (derivations D-gaussian-path-marginal,
D-gaussian-posterior-mean, D-gaussian-marginal-velocity, D-gaussian-flow-map).
"""

from __future__ import annotations

import math

import torch

from .._implements import implements
from ..core._shapes import as_time, check_batch

__all__ = ["Gaussian", "GaussianMarginal", "MixtureMarginal"]


def _as_float_tensor(value, name: str) -> torch.Tensor:
    tensor = torch.as_tensor(value)
    if not tensor.is_floating_point():
        tensor = tensor.to(torch.get_default_dtype())
    if not torch.isfinite(tensor).all():
        raise ValueError(f"{name} must be finite, got {tensor}")
    return tensor


def _validated_covariances(covs: torch.Tensor, name: str) -> torch.Tensor:
    """Symmetric positive-definite ``(..., d, d)`` covariances, symmetrised to round-off.

    Positive definiteness is decided by a Cholesky factorisation, which fails exactly when a
    leading minor is not positive."""
    scale = covs.abs().amax(dim=(-2, -1), keepdim=True).clamp_min(torch.finfo(covs.dtype).tiny)
    asymmetry = (covs - covs.mT).abs() / scale
    tol = 1e3 * torch.finfo(covs.dtype).eps
    if (asymmetry > tol).any():
        raise ValueError(
            f"{name} must be symmetric, got a relative asymmetry of {float(asymmetry.max()):.3g}"
        )
    covs = (covs + covs.mT) / 2
    _, info = torch.linalg.cholesky_ex(covs)
    if (info != 0).any():
        bad = torch.nonzero(info.reshape(-1)).flatten().tolist()
        where = f" (component(s) {bad})" if covs.ndim > 2 else ""
        raise ValueError(
            f"{name} must be positive definite, but its Cholesky factorisation failed{where}; "
            f"eigenvalues {torch.linalg.eigvalsh(covs).tolist()}"
        )
    return covs


def _check_points(x: torch.Tensor, dim: int, name: str = "x") -> torch.Tensor:
    check_batch(x, name)
    if x.ndim != 2 or x.shape[1] != dim:
        raise ValueError(f"{name} must have shape (B, {dim}), got shape {tuple(x.shape)}")
    return x


def _time(
    path, t, x: torch.Tensor, name: str = "t", *, batched: bool = True
) -> dict[str, torch.Tensor]:
    """The schedule at ``t`` in the dtype/device of ``x``, each of shape ``()`` or ``(B,)``;
    with ``batched`` a per-sample ``t`` must match ``x``'s batch size."""
    t = as_time(t, like=x, name=name)
    if batched and t.ndim == 1 and t.shape[0] != x.shape[0]:
        raise ValueError(
            f"{name} has shape {tuple(t.shape)} but x has shape {tuple(x.shape)}: "
            f"a per-sample {name} needs shape (B,) with B = x.shape[0]"
        )

    def at(method: str) -> torch.Tensor:
        return torch.as_tensor(getattr(path, method)(t)).to(dtype=x.dtype, device=x.device)

    alpha, sigma = at("alpha"), at("sigma")
    if ((alpha == 0) & (sigma == 0)).any():
        raise ValueError(
            f"the path has alpha = sigma = 0 at some {name} in {t.tolist()}: x_t is the constant 0 "
            "there and has no density"
        )
    return {"t": t, "alpha": alpha, "sigma": sigma}


def _rates(path, times: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """``(dα/dt, σ dσ/dt)``. The product $\\sigma\\dot\\sigma = \\tfrac12 \\tfrac{d}{dt}\\sigma^2$
    is what the velocity needs; where $\\sigma = 0$ and the schedule reports an infinite
    $\\dot\\sigma$ (a square-root onset such as VP at t = 0) the product is taken from the
    path's forward SDE, $\\tfrac{d}{dt}\\sigma^2 = g^2 + 2 f \\sigma^2$, which is finite there."""
    t, sigma = times["t"], times["sigma"]
    like = times["alpha"]
    d_alpha = torch.as_tensor(path.d_alpha(t)).to(like)
    d_sigma = torch.as_tensor(path.d_sigma(t)).to(like)
    sigma_d_sigma = torch.where(sigma == 0, torch.zeros_like(sigma), sigma * d_sigma)
    singular = (sigma == 0) & ~torch.isfinite(d_sigma)
    if singular.any():
        if not hasattr(path, "diffusion"):
            raise ValueError(
                "the schedule's d_sigma is infinite where sigma = 0 and the path has no "
                "diffusion(t) to take d(sigma^2)/dt from"
            )
        g = torch.as_tensor(path.diffusion(t)).to(like)
        sigma_d_sigma = torch.where(singular, g**2 / 2, sigma_d_sigma)
    return d_alpha, sigma_d_sigma


class _EigenGaussians:
    """``K`` Gaussians $\\mathcal N(\\mu_k, \\Sigma_k)$ stored as means and eigendecompositions,
    with the path-marginal quantities of each component computed in its eigenbasis."""

    def __init__(self, means: torch.Tensor, covs: torch.Tensor):
        self.means = means  # (K, d)
        self.eigvals, self.eigvecs = torch.linalg.eigh(covs)  # (K, d), (K, d, d)
        self._cache: dict[tuple, _EigenGaussians] = {}

    def to(self, like: torch.Tensor) -> _EigenGaussians:
        if like.dtype == self.means.dtype and like.device == self.means.device:
            return self
        key = (like.dtype, like.device)
        if key not in self._cache:
            other = object.__new__(_EigenGaussians)
            other.means = self.means.to(like)
            other.eigvals = self.eigvals.to(like)
            other.eigvecs = self.eigvecs.to(like)
            other._cache = {}
            self._cache[key] = other
        return self._cache[key]

    @staticmethod
    def _per_batch(coef: torch.Tensor) -> torch.Tensor:
        """``()`` or ``(B,)`` -> broadcastable against ``(B, K, d)``."""
        return coef if coef.ndim == 0 else coef[:, None, None]

    def rotate_in(self, x: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
        """$y_k = U_k^\\top (x - \\alpha \\mu_k)$, shape ``(B, K, d)``."""
        centred = x[:, None, :] - self._per_batch(alpha) * self.means
        return torch.einsum("kji,bkj->bki", self.eigvecs, centred)

    def rotate_out(self, y: torch.Tensor) -> torch.Tensor:
        return torch.einsum("kij,bkj->bki", self.eigvecs, y)

    def variances(self, alpha: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        """Eigenvalues of $C_t = \\alpha^2 \\Sigma_k + \\sigma^2 I$: ``(K, d)`` or ``(B, K, d)``."""
        a, s = self._per_batch(alpha), self._per_batch(sigma)
        return a**2 * self.eigvals + s**2

    def log_prob(self, y: torch.Tensor, variances: torch.Tensor) -> torch.Tensor:
        """$\\log \\mathcal N$ of each component, ``(B, K)``, from the rotated points."""
        dim = y.shape[-1]
        return -0.5 * (
            dim * math.log(2 * math.pi) + variances.log().sum(-1) + (y**2 / variances).sum(-1)
        )


class MixtureMarginal:
    """The exact marginal $p_t$ of Gaussian-mixture data pushed through a Gaussian path.

    $p_t = \\sum_k \\pi_k \\mathcal N(\\alpha_t \\mu_k, C_{k,t})$ with
    $C_{k,t} = \\alpha_t^2 \\Sigma_k + \\sigma_t^2 I$ (D-gaussian-path-marginal). Every
    posterior quantity is the responsibility-weighted sum of the per-component Gaussian ones
    (D-mixture-denoiser), with responsibilities
    $r_k(x) = \\pi_k \\mathcal N(x; \\alpha_t\\mu_k, C_{k,t}) / p_t(x)$.

    Methods take ``x`` of shape ``(B, d)`` and ``t`` a float, a 0-d tensor or ``(B,)`` in
    $[0, 1]$, and work in the dtype/device of ``x``. They are exact wherever
    $C_{k,t}$ is invertible, i.e. unless $\\alpha_t = \\sigma_t = 0$: in particular at t = 0
    (where $\\sigma_0 = 0$ for CondOT and VP), at t = 1, and for VE. Obtain one with
    `Gaussian.marginal` or `GaussianMixture.marginal`.
    """

    def __init__(self, components: _EigenGaussians, log_weights: torch.Tensor, path):
        self._components = components
        self._log_weights = log_weights
        self.path = path

    @property
    def dim(self) -> int:
        return self._components.means.shape[-1]

    def _setup(self, x, t):
        x = _check_points(x, self.dim)
        comps = self._components.to(x)
        times = _time(self.path, t, x)
        y = comps.rotate_in(x, times["alpha"])
        variances = comps.variances(times["alpha"], times["sigma"])
        joint = self._log_weights.to(x) + comps.log_prob(y, variances)  # (B, K)
        return x, comps, times, y, variances, joint

    def _posterior_sum(self, joint, comps, rotated: torch.Tensor, offset=None) -> torch.Tensor:
        """$\\sum_k r_k (\\text{offset}_k + U_k \\text{rotated}_k)$, shape ``(B, d)``."""
        per_component = comps.rotate_out(rotated)
        if offset is not None:
            per_component = per_component + offset
        weights = torch.softmax(joint, dim=-1)
        return (weights[..., None] * per_component).sum(1)

    @implements("D-gaussian-path-marginal", "D-gaussian-posterior-mean", "D-mixture-denoiser")
    def log_prob(self, x: torch.Tensor, t) -> torch.Tensor:
        """$\\log p_t(x)$, shape ``(B,)`` (D-gaussian-path-marginal)."""
        *_, joint = self._setup(x, t)
        return torch.logsumexp(joint, dim=-1)

    @implements("D-mixture-denoiser")
    def responsibilities(self, x: torch.Tensor, t) -> torch.Tensor:
        """$r_k(x) = P(k \\mid x_t = x)$, shape ``(B, K)``."""
        *_, joint = self._setup(x, t)
        return torch.softmax(joint, dim=-1)

    @implements("D-gaussian-posterior-mean", "D-mixture-denoiser")
    def score(self, x: torch.Tensor, t) -> torch.Tensor:
        """$\\nabla_x \\log p_t(x) = -\\sum_k r_k C_{k,t}^{-1}(x - \\alpha_t \\mu_k)$, shape ``(B, d)``."""
        x, comps, _, y, variances, joint = self._setup(x, t)
        return self._posterior_sum(joint, comps, -y / variances)

    @implements("D-gaussian-posterior-mean", "D-mixture-denoiser")
    def denoise(self, x: torch.Tensor, t) -> torch.Tensor:
        """$\\mathbb E[x_0 \\mid x_t = x] = \\sum_k r_k \\big(\\mu_k + \\alpha_t \\Sigma_k C_{k,t}^{-1}(x - \\alpha_t\\mu_k)\\big)$
        (D-gaussian-posterior-mean, D-mixture-denoiser). At $\\alpha_t = 0$ it is the data mean."""
        x, comps, times, y, variances, joint = self._setup(x, t)
        a = comps._per_batch(times["alpha"])
        return self._posterior_sum(joint, comps, a * comps.eigvals * y / variances, comps.means)

    @implements("D-gaussian-posterior-mean", "D-mixture-denoiser")
    def eps(self, x: torch.Tensor, t) -> torch.Tensor:
        """$\\mathbb E[\\varepsilon \\mid x_t = x] = \\sum_k r_k\\, \\sigma_t C_{k,t}^{-1}(x - \\alpha_t\\mu_k)$.

        Equal to $(x - \\alpha_t \\hat x_0)/\\sigma_t$ but written without the division, so it
        is finite (and 0) where $\\sigma_t = 0$ (D-gaussian-posterior-mean)."""
        x, comps, times, y, variances, joint = self._setup(x, t)
        s = comps._per_batch(times["sigma"])
        return self._posterior_sum(joint, comps, s * y / variances)

    @implements(
        "D-gaussian-marginal-velocity", "D-gaussian-posterior-mean", "D-mixture-denoiser",
        "D-continuity-gaussian-path",
    )
    def velocity(self, x: torch.Tensor, t) -> torch.Tensor:
        """The marginal (probability-flow) velocity
        $u_t(x) = \\dot\\alpha_t \\hat x_0 + \\dot\\sigma_t \\hat\\varepsilon
        = \\sum_k r_k \\big(\\dot\\alpha_t \\mu_k + \\tfrac12 \\dot C_{k,t} C_{k,t}^{-1}(x - \\alpha_t\\mu_k)\\big)$
        (D-gaussian-marginal-velocity).

        Only $\\dot\\alpha$ and $\\sigma\\dot\\sigma$ enter, never $1/\\sigma$: the velocity is
        finite at t = 0 for CondOT and for VP (whose $\\dot\\sigma_0$ is infinite; there
        $\\sigma\\dot\\sigma$ is read from the path's forward SDE)."""
        x, comps, times, y, variances, joint = self._setup(x, t)
        d_alpha, sigma_d_sigma = _rates(self.path, times)
        a, da = comps._per_batch(times["alpha"]), comps._per_batch(d_alpha)
        sds = comps._per_batch(sigma_d_sigma)
        half_rate = (a * da * comps.eigvals + sds) / variances
        return self._posterior_sum(joint, comps, half_rate * y, da * comps.means)


class GaussianMarginal(MixtureMarginal):
    """The exact marginal $p_t = \\mathcal N(\\alpha_t\\mu, \\alpha_t^2\\Sigma + \\sigma_t^2 I)$ of
    Gaussian data (D-gaussian-path-marginal); score, denoiser, $\\varepsilon$ and velocity are
    affine in $x$. Adds the moments and the exact flow map to `MixtureMarginal`."""

    @implements("D-gaussian-path-marginal")
    def mean(self, t) -> torch.Tensor:
        """$\\alpha_t \\mu$: shape ``(d,)`` for scalar t, ``(B, d)`` for ``(B,)``."""
        like = self._components.means
        times = _time(self.path, t, like, batched=False)
        a = times["alpha"]
        return (a if a.ndim == 0 else a[:, None]) * like[0]

    @implements("D-gaussian-path-marginal")
    def cov(self, t) -> torch.Tensor:
        """$\\alpha_t^2 \\Sigma + \\sigma_t^2 I$: shape ``(d, d)`` or ``(B, d, d)``."""
        comps = self._components
        times = _time(self.path, t, comps.means, batched=False)
        variances = comps.variances(times["alpha"], times["sigma"])[..., 0, :]
        u = comps.eigvecs[0]
        return (u * variances[..., None, :]) @ u.mT

    @implements("D-gaussian-flow-map")
    def flow_map(self, x: torch.Tensor, t_from, t_to) -> torch.Tensor:
        """The exact probability-flow ODE map from time ``t_from`` to ``t_to`` (either order):
        $x \\mapsto \\alpha_{t'}\\mu + A_{t'} A_t^{-1}(x - \\alpha_t \\mu)$ with
        $A_t = C_t^{1/2}$ the symmetric square root (D-gaussian-flow-map)."""
        x = _check_points(x, self.dim)
        comps = self._components.to(x)
        src = _time(self.path, t_from, x, name="t_from")
        dst = _time(self.path, t_to, x, name="t_to")
        y = comps.rotate_in(x, src["alpha"])
        ratio = comps.variances(dst["alpha"], dst["sigma"]) / comps.variances(
            src["alpha"], src["sigma"]
        )
        a_to = comps._per_batch(dst["alpha"])
        return (comps.rotate_out(ratio.sqrt() * y) + a_to * comps.means)[:, 0, :]


class Gaussian:
    """Gaussian data $\\mathcal N(\\mu, \\Sigma)$ with a full covariance.

    Arguments:
        mean: shape ``(d,)``.
        cov: shape ``(d, d)``, symmetric positive definite (checked by Cholesky; a
            `ValueError` says otherwise).

    The parameters keep their dtype/device; every method works in the dtype/device of its
    input. `marginal` gives the exact $p_t$ along any Gaussian path, `flow_map` the exact
    probability-flow map.
    """

    def __init__(self, mean, cov):
        mean = _as_float_tensor(mean, "mean")
        cov = _as_float_tensor(cov, "cov").to(mean)
        if mean.ndim != 1:
            raise ValueError(f"mean must have shape (d,), got shape {tuple(mean.shape)}")
        d = mean.shape[0]
        if cov.shape != (d, d):
            raise ValueError(
                f"cov must have shape (d, d) = ({d}, {d}) to match mean, got {tuple(cov.shape)}"
            )
        self.mean = mean
        self.cov = _validated_covariances(cov, "cov")
        self._scale_tril = torch.linalg.cholesky(self.cov)
        self._components = _EigenGaussians(mean[None], self.cov[None])

    @property
    def dim(self) -> int:
        return self.mean.shape[0]

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """$\\log \\mathcal N(x; \\mu, \\Sigma)$, shape ``(B,)``."""
        x = _check_points(x, self.dim)
        comps = self._components.to(x)
        one, zero = x.new_ones(()), x.new_zeros(())
        return comps.log_prob(comps.rotate_in(x, one), comps.variances(one, zero))[:, 0]

    @implements("D-gaussian-sampling")
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` independent draws, shape ``(n, d)``: $\\mu + L z$, $LL^\\top = \\Sigma$."""
        if not isinstance(n, int) or n < 0:
            raise ValueError(f"n must be a non-negative int, got {n!r}")
        z = torch.randn(
            n, self.dim, generator=generator, dtype=self.mean.dtype, device=self.mean.device
        )
        return self.mean + z @ self._scale_tril.mT

    def as_distribution(self) -> torch.distributions.MultivariateNormal:
        """The same law as a `torch.distributions.MultivariateNormal`."""
        return torch.distributions.MultivariateNormal(self.mean, scale_tril=self._scale_tril)

    def marginal(self, path) -> GaussianMarginal:
        """The exact marginal along ``path`` (anything with ``alpha, sigma, d_alpha, d_sigma``
        methods of t, such as `genmath.GaussianPath`)."""
        return GaussianMarginal(self._components, self.mean.new_zeros(1), path)

    def flow_map(self, path, x: torch.Tensor, t_from, t_to) -> torch.Tensor:
        """Exact probability-flow map of ``path`` from ``t_from`` to ``t_to``; see
        `GaussianMarginal.flow_map` (D-gaussian-flow-map)."""
        return self.marginal(path).flow_map(x, t_from, t_to)

    def __repr__(self) -> str:
        return f"Gaussian(dim={self.dim}, dtype={self.mean.dtype})"
