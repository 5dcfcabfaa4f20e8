"""The bijections built on a weight matrix: the LU-parameterized affine map (Glow's
invertible 1x1 convolution in matrix form) and the planar flow. The base class and the
elementwise layers live in `genmath.core._bijections`; users import all of them from
`genmath.core.change_of_variables`."""

from __future__ import annotations

import math

import torch
from torch import nn

from .._implements import implements
from ._bijections import Bijection, _shape_text, _softplus
from ._validate import (
    as_parameter,
    check_generator,
    check_option,
    positive_int,
)

__all__ = ["Affine", "Planar"]


class Affine(Bijection):
    r"""$y = W x + b$ with $W = P L U$ (LU parameterization, Kingma & Dhariwal 2018).

    $P$ is a fixed permutation, $L$ unit lower triangular and $U$ upper triangular, so
    $\log|\det W| = \sum_i \log|U_{ii}|$ in $O(d)$ and the inverse takes two triangular
    solves (derivation D-flow-lu-logdet). The diagonal of $U$ is either `"positive"`
    ($U_{ii} = e^{\theta_i}$, never singular) or `"signed"` ($U_{ii} = \theta_i$, any sign;
    a zero makes $W$ singular and raises `ValueError`).

    Arguments:
        features: dimension $d$.
        permutation: indices `perm` with $(P v)_i = v_{\mathrm{perm}[i]}$ (default: identity).
        diagonal: `"positive"` or `"signed"`.

    The default parameters are the identity map; use
    [`from_matrix`][genmath.core.change_of_variables.Affine.from_matrix] for a given $W$.
    """

    def __init__(
        self,
        features: int,
        *,
        permutation: torch.Tensor | list[int] | None = None,
        diagonal: str = "positive",
    ):
        super().__init__()
        check_option(diagonal, ("positive", "signed"), "diagonal")
        self.features = positive_int(features, "features")
        self.diagonal = diagonal
        d = self.features
        if permutation is None:
            permutation = torch.arange(d)
        permutation = torch.as_tensor(permutation, dtype=torch.long).cpu()
        if permutation.shape != (d,) or not torch.equal(permutation.sort().values, torch.arange(d)):
            raise ValueError(
                f"permutation must be a permutation of 0..{d - 1}, got {permutation.tolist()}"
            )
        self.register_buffer("permutation", permutation)
        self.register_buffer("inverse_permutation", torch.argsort(permutation))
        # constant masks: cheaper than tril/triu on every call
        strict_lower = torch.ones(d, d).tril(-1)
        self.register_buffer("_strict_lower", strict_lower, persistent=False)
        self.register_buffer("_eye", torch.eye(d), persistent=False)
        self.lower = nn.Parameter(torch.zeros(d, d))
        self.upper = nn.Parameter(torch.zeros(d, d))
        self.diag = nn.Parameter(torch.zeros(d) if diagonal == "positive" else torch.ones(d))
        self.bias = nn.Parameter(torch.zeros(d))

    @classmethod
    @implements("D-flow-lu-logdet")
    def from_matrix(cls, matrix: torch.Tensor, bias: torch.Tensor | None = None) -> Affine:
        """The affine map $x \\mapsto W x + b$ for a given invertible $W$ (signed diagonal).

        Raises `ValueError` when $W$ is singular to working precision.
        """
        matrix = as_parameter(matrix, "matrix")
        if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
            raise ValueError(f"matrix must be a square matrix W, got shape {_shape_text(matrix.shape)}")
        d = matrix.shape[0]
        P, L, U = torch.linalg.lu(matrix)
        u = torch.diagonal(U)
        tolerance = d * torch.finfo(matrix.dtype).eps * matrix.abs().max()
        if not (u.abs() > tolerance).all():
            raise ValueError(
                "Affine.from_matrix expected an invertible matrix W, got a singular one "
                f"(smallest |U_ii| of its LU factorisation {u.abs().min().item():.3g})"
            )
        # Move to the matrix's dtype before copying the factors in: copying float64 factors into
        # default-dtype (possibly float32) parameters would round them.
        out = cls(d, permutation=P.argmax(dim=1), diagonal="signed").to(
            device=matrix.device, dtype=matrix.dtype
        )
        with torch.no_grad():
            out.lower.copy_(L)
            out.upper.copy_(U)
            out.diag.copy_(u)
            if bias is not None:
                out.bias.copy_(torch.as_tensor(bias, dtype=matrix.dtype))
        return out

    def _factors(self):
        L = self.lower * self._strict_lower + self._eye
        u = torch.exp(self.diag) if self.diagonal == "positive" else self.diag
        U = self.upper * self._strict_lower.T + self._eye * u
        return L, U, u

    def _log_abs_diag(self, u):
        if self.diagonal == "positive":
            return self.diag
        if (u == 0).any():
            raise ValueError(
                "Affine expected a non-singular matrix (non-zero diagonal of U), got U_ii = 0 at "
                f"index {torch.nonzero(u == 0).flatten().tolist()}"
            )
        return torch.log(torch.abs(u))

    @implements("D-flow-lu-logdet")
    def matrix(self) -> torch.Tensor:
        """The dense matrix $W = P L U$."""
        L, U, _ = self._factors()
        return (L @ U)[self.permutation]

    def _forward(self, x, context):
        L, U, u = self._factors()
        logdet = self._log_abs_diag(u).sum()
        # y = P (L (U x)) + b, with P acting as indexing
        y = (x @ U.T @ L.T)[..., self.permutation] + self.bias
        return y, logdet.expand(x.shape[:-1])

    def _inverse(self, y, context):
        L, U, u = self._factors()
        logdet = self._log_abs_diag(u).sum()
        z = (y - self.bias)[..., self.inverse_permutation]
        batch = z.shape[:-1]
        z = z.reshape(-1, self.features).T
        z = torch.linalg.solve_triangular(L, z, upper=False, unitriangular=True)
        x = torch.linalg.solve_triangular(U, z, upper=True)
        return x.T.reshape(*batch, self.features), (-logdet).expand(batch)


class Planar(Bijection):
    r"""Planar flow (Rezende & Mohamed 2015): $f(z) = z + \hat u\, \tanh(w^\top z + b)$.

    $\log|\det J_f(z)| = \log|1 + \tanh'(w^\top z + b)\, w^\top \hat u|$ by the matrix
    determinant lemma (derivation D-flow-planar). $f$ is invertible when
    $w^\top \hat u \ge -1$; the parameter $u$ is mapped to
    $\hat u = u + [m(w^\top u) - w^\top u]\, w / \|w\|^2$ with
    $m(a) = -1 + \operatorname{softplus}(a)$, so that $w^\top \hat u = m(w^\top u) > -1$ for
    every $u$. There is no closed-form inverse: `inverse` solves the scalar equation
    $w^\top y + b = a + w^\top \hat u \tanh(a)$ for $a = w^\top z + b$ (monotone in $a$) by
    safeguarded Newton iterations to round-off, then attaches the implicit-function
    gradient with one differentiable Newton step.

    Arguments:
        features: dimension $d$.
        generator: for the random initialisation of $u, w$ (small, $b = 0$).
    """

    def __init__(self, features: int, *, generator: torch.Generator | None = None):
        super().__init__()
        self.features = positive_int(features, "features")
        check_generator(generator)
        scale = 1.0 / math.sqrt(self.features)
        self.u = nn.Parameter(torch.randn(self.features, generator=generator) * scale)
        self.w = nn.Parameter(torch.randn(self.features, generator=generator) * scale)
        self.b = nn.Parameter(torch.zeros(()))

    @implements("D-flow-planar")
    def u_hat(self) -> torch.Tensor:
        """The reparameterized $\\hat u$ with $w^\\top \\hat u = -1 + \\operatorname{softplus}(w^\\top u) > -1$."""
        wu = self.w @ self.u
        w_norm_sq = self.w @ self.w
        if not w_norm_sq > 0:
            raise ValueError("Planar expected a non-zero w, got w = 0 (the map is undefined)")
        return self.u + (_softplus(wu) - 1 - wu) * self.w / w_norm_sq

    def _forward(self, x, context):
        u_hat = self.u_hat()
        a = x @ self.w + self.b
        h = torch.tanh(a)
        y = x + h.unsqueeze(-1) * u_hat
        slope = 1 - h**2
        return y, torch.log(torch.abs(1 + slope * (self.w @ u_hat)))

    def _inverse(self, y, context):
        u_hat = self.u_hat()
        kappa = self.w @ u_hat  # > -1: g(a) = a + kappa tanh(a) is strictly increasing
        target = y @ self.w + self.b
        a = self._solve(target.detach(), kappa.detach())
        # one Newton step at the root: same value, and autograd sees da = dg / g'(a)
        residual = a + kappa * torch.tanh(a) - target
        a = a - residual / (1 + kappa * (1 - torch.tanh(a) ** 2))
        h = torch.tanh(a)
        x = y - h.unsqueeze(-1) * u_hat
        return x, -torch.log(torch.abs(1 + (1 - h**2) * kappa))

    @staticmethod
    def _solve(target, kappa, max_iter: int = 100):
        # the root lies within |kappa| of target because |tanh| < 1
        lo = target - kappa.abs() - 1
        hi = target + kappa.abs() + 1
        a = target.clone()
        tol = 4 * torch.finfo(target.dtype).eps
        for _ in range(max_iter):
            h = torch.tanh(a)
            g = a + kappa * h - target
            lo = torch.where(g < 0, a, lo)
            hi = torch.where(g > 0, a, hi)
            step = g / (1 + kappa * (1 - h**2))
            new = a - step
            # fall back to bisection when Newton leaves the bracket
            outside = (new <= lo) | (new >= hi)
            new = torch.where(outside, (lo + hi) / 2, new)
            done = ((new - a).abs() <= tol * (1 + a.abs())).all()
            a = new
            if done:
                break
        return a
