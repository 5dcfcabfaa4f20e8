r"""Invertible residual networks (i-ResNet) and residual flows.

A residual block $F(x) = x + g(x)$ is invertible when $g$ is a contraction,
$\operatorname{Lip}(g) < 1$ (Behrmann et al. 2019): $x = y - g(x)$ is then a fixed point
that Banach's iteration finds from any start, with error shrinking by the factor
$\operatorname{Lip}(g)$ each step. $g$ is an MLP whose linear layers are spectrally
normalised to norm at most $c < 1$ and whose activations are 1-Lipschitz, so
$\operatorname{Lip}(g) \le c$.

**Log-determinant.** With $J = \partial g / \partial x$ and $\rho(J) \le \|J\|_2 < 1$,
$$
\log|\det(I + J)| = \sum_{k=1}^{\infty} \frac{(-1)^{k+1}}{k} \operatorname{tr}(J^k)
$$
(D-iresnet-logdet-series). Each trace is estimated without forming $J$ by Hutchinson's
$v^\top J^k v$, $\mathbb E[v v^\top] = I$, from $k$ vector–Jacobian products (the probes come
from `genmath.core.divergence.draw_probes`, D-hutchinson-unbiased). Truncating at $n$ terms
is biased (error at most $d\,c^{n+1}/((n+1)(1-c))$); the **Russian-roulette** estimator of
residual flows (Chen et al. 2019) draws a random number of terms $N$ and reweights term $k$
by $1/P(N \ge k)$, which is unbiased for the infinite series (D-russian-roulette-unbiased).

**Composition.** A residual flow is a core `Compose` of these blocks read by the core `Flow`
(change of variables); nothing here re-implements the Hutchinson probes or the flow
distribution.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from .._implements import implements
from ..core._shapes import check_batch
from ..core._validate import (
    check_dtype,
    check_finite,
    check_generator,
    check_option,
    check_real,
    in_unit_interval,
    positive,
    positive_int,
)
from ..core.change_of_variables import Bijection, Compose
from ..core.divergence import NOISES, draw_probes
from .flows import FlowModel

__all__ = [
    "LOGDET_METHODS",
    "TRACE_METHODS",
    "SpectralNormLinear",
    "InvertibleResidualBlock",
    "ResidualFlow",
    "power_series_logdet_bound",
]

LOGDET_METHODS = ("series", "roulette", "exact")
TRACE_METHODS = ("hutchinson", "exact")


def _lipswish(x: torch.Tensor) -> torch.Tensor:
    # x sigmoid(x) has Lipschitz constant about 1.0998; dividing by 1.1 makes it 1-Lipschitz
    return F.silu(x) / 1.1


_ACTIVATIONS = {"elu": F.elu, "tanh": torch.tanh, "lipswish": _lipswish}


@implements("D-iresnet-truncation-bound")
def power_series_logdet_bound(lipschitz: float, terms: int, features: int) -> float:
    r"""Bound on the truncation error of the $n$-term series:
    $\big|\sum_{k>n} (-1)^{k+1}\operatorname{tr}(J^k)/k\big| \le d\, c^{n+1} / ((n+1)(1-c))$,
    since $|\operatorname{tr}(J^k)| \le d\,\|J\|_2^k \le d\,c^k$."""
    # a contraction, 0 < c < 1 (the series diverges otherwise), and at least one term
    in_unit_interval(lipschitz, "lipschitz", open_low=True, open_high=True)
    positive_int(terms, "terms")
    positive_int(features, "features")
    return features * lipschitz ** (terms + 1) / ((terms + 1) * (1 - lipschitz))


class SpectralNormLinear(nn.Linear):
    r"""A linear layer whose weight is rescaled to spectral norm at most `coefficient`:
    $\hat W = W \cdot c / \max(c, \|W\|_2)$.

    $\|W\|_2$ is computed exactly (largest singular value, `torch.linalg.matrix_norm(ord=2)`)
    rather than by the power iteration of Miyato et al. (2018): for the small widths of
    these models it is cheap, and the Lipschitz bound then holds at every step, not only
    after the iteration has converged.
    """

    def __init__(self, in_features: int, out_features: int, coefficient: float):
        positive_int(in_features, "in_features")
        positive_int(out_features, "out_features")
        coefficient = positive(coefficient, "coefficient")
        super().__init__(in_features, out_features)
        self.coefficient = coefficient

    @implements("D-spectral-normalization")
    def normalized_weight(self) -> torch.Tensor:
        norm = torch.linalg.matrix_norm(self.weight, ord=2)
        return self.weight * (self.coefficient / torch.clamp_min(norm, self.coefficient))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_batch(x, "x")
        if x.shape[-1] != self.in_features:
            raise ValueError(f"x must have shape (*batch, {self.in_features}), got {tuple(x.shape)}")
        check_dtype(x, self.weight.dtype, "x", "SpectralNormLinear")
        return self._linear(x)

    def _linear(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.normalized_weight(), self.bias)


def _check_contraction(lipschitz) -> float:
    value = check_real(lipschitz, "lipschitz")
    if not 0 < value < 1:
        raise ValueError(
            "an invertible residual block needs Lip(g) < 1: expected lipschitz in (0, 1), "
            f"got {value}"
        )
    return value


class InvertibleResidualBlock(Bijection):
    r"""$F(x) = x + g(x)$ with $\operatorname{Lip}(g) \le c < 1$ (i-ResNet, Behrmann et al. 2019).

    `forward` (data $\to$ noise) returns $F(x)$ and an estimate of
    $\log|\det(I + J_g(x))|$; `inverse` solves $x = y - g(x)$ by fixed-point iteration until
    the residual $\|x + g(x) - y\|_\infty \le$ `inverse_tol` for every sample (then
    $\|x - F^{-1}(y)\|_\infty \le$ `inverse_tol` $/(1 - c)$), and returns minus the log-det
    estimate at the solution.

    Arguments:
        features: dimension $d$.
        hidden: hidden widths of $g$; `()` makes $g(x) = \hat W x + b$ linear.
        lipschitz: $c \in (0, 1)$, the bound on every layer's spectral norm; since the
            activations are 1-Lipschitz, $\operatorname{Lip}(g) \le c^{L} \le c$.
            `ValueError` otherwise.
        activation: `"elu"`, `"tanh"` or `"lipswish"` (all 1-Lipschitz).
        logdet: `"series"` ($n$ = `terms` terms, biased by at most
            [`power_series_logdet_bound`][genmath.families.residual.power_series_logdet_bound]),
            `"roulette"` (unbiased: `terms` terms always, then each further term with
            probability `roulette_continue`; D-russian-roulette-unbiased) or `"exact"`
            ($\log|\det(I + J)|$ from the full Jacobian, $d$ backward passes; for small $d$).
        trace: `"hutchinson"` ($v^\top J^k v$ with `probes` probes of `noise`) or `"exact"`
            ($\operatorname{tr} J^k$ from the full Jacobian).
        terms: number of series terms (for `"roulette"`: the terms always computed).
        roulette_continue: $q$, the probability of computing one more term; $N - n$ is
            geometric with $P(N \ge n + j) = q^j$. The estimator's variance is finite when
            $\operatorname{Lip}(g)^2 < q$.
        probes, noise: Hutchinson probes (see `genmath.divergence`).
        inverse_tol, max_iter: stopping rule of the fixed-point inversion (the tolerance is
            never taken below the dtype's round-off, $8\epsilon(1 + \max|y|)$).
        generator: default random source of the log-det estimates (probes, $N$); the
            `forward` / `inverse` calls of a `Compose` cannot pass one.
    """

    def __init__(
        self,
        features: int,
        hidden: tuple[int, ...] = (64, 64),
        *,
        lipschitz: float = 0.9,
        activation: str = "elu",
        logdet: str = "series",
        trace: str = "hutchinson",
        terms: int = 8,
        roulette_continue: float = 0.5,
        probes: int = 1,
        noise: str = "rademacher",
        inverse_tol: float = 1e-10,
        max_iter: int = 500,
        generator: torch.Generator | None = None,
    ):
        super().__init__()
        self.features = positive_int(features, "features")
        self.lipschitz = _check_contraction(lipschitz)
        check_option(activation, tuple(_ACTIVATIONS), "activation")
        check_option(logdet, LOGDET_METHODS, "logdet")
        check_option(trace, TRACE_METHODS, "trace")
        check_option(noise, NOISES, "noise")
        for name, value in (("terms", terms), ("probes", probes), ("max_iter", max_iter)):
            positive_int(value, name)
        in_unit_interval(roulette_continue, "roulette_continue", open_low=True, open_high=True)
        inverse_tol = positive(inverse_tol, "inverse_tol")
        check_generator(generator)
        self.activation = activation
        self.logdet_method, self.trace_method = logdet, trace
        self.terms, self.roulette_continue = terms, float(roulette_continue)
        self.probes, self.noise = probes, noise
        self.inverse_tol, self.max_iter = float(inverse_tol), max_iter
        self.generator = generator
        widths = [features, *hidden, features]
        self.layers = nn.ModuleList(
            SpectralNormLinear(a, b, self.lipschitz)
            for a, b in zip(widths[:-1], widths[1:], strict=True)
        )

    def residual(self, x: torch.Tensor) -> torch.Tensor:
        """$g(x)$, shape of `x`."""
        self._check_input(x, None, "x")
        return self._residual(x)

    @implements("D-iresnet-inverse")
    def _residual(self, x: torch.Tensor) -> torch.Tensor:
        phi = _ACTIVATIONS[self.activation]
        h = x
        for i, layer in enumerate(self.layers):
            h = layer._linear(h)
            if i < len(self.layers) - 1:
                h = phi(h)
        return h

    @implements("D-spectral-normalization")
    def lipschitz_bound(self) -> torch.Tensor:
        r"""$\prod_l \|\hat W_l\|_2 \ge \operatorname{Lip}(g)$, computed from the actual weights."""
        norms = [
            torch.linalg.matrix_norm(layer.normalized_weight(), ord=2) for layer in self.layers
        ]
        return torch.stack(norms).prod()

    # ------------------------------------------------------------------ directions

    def _forward(self, x, context):
        return self._value_and_logdet(x, self.generator)

    def forward_with_generator(
        self, x: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """`forward` with an explicit random source for the log-det estimate."""
        self._check_input(x, None, "x")
        check_generator(generator)
        y, logdet = self._value_and_logdet(x, generator)
        return y, self._finish(logdet, x, "forward")

    def _inverse(self, y, context):
        x = self._solve(y)
        _, logdet = self._value_and_logdet(x, self.generator)
        return x, -logdet

    @implements("D-iresnet-inverse", "D-residual-flow-neumann-gradient")
    def _solve(self, y: torch.Tensor) -> torch.Tensor:
        check_finite(y, "y", "the fixed-point inversion of a residual block")
        with torch.no_grad():
            x = y.detach().clone()
            # the iteration stalls at the dtype's round-off of |y| (float32 never reaches 1e-10)
            scale = 1 + y.detach().abs().reshape(y.shape[0], -1).amax(-1)
            tolerance = (8 * torch.finfo(y.dtype).eps * scale).clamp_min(self.inverse_tol)
            for _ in range(self.max_iter):
                update = y.detach() - self._residual(x)
                # ||update - x|| is the residual x + g(x) - y at the current iterate
                gap = (update - x).abs().reshape(x.shape[0], -1).amax(-1)
                x = update
                if bool((gap <= tolerance).all()):
                    break
            else:
                raise ValueError(
                    "fixed-point inversion did not reach the tolerance "
                    f"{float(tolerance.max()):g} in {self.max_iter} iterations (largest residual {float(gap.max()):.3g}); "
                    "expected a contraction: check lipschitz or raise max_iter"
                )
        if not torch.is_grad_enabled():
            return x
        # Differentiable fixed-point steps from the solution: the value does not move, and the
        # gradient is the Neumann series of (I + J)^{-1} truncated after `terms` terms.
        for _ in range(self.terms):
            x = y - self._residual(x)
        return x

    # ------------------------------------------------------------------ log-determinant

    def _value_and_logdet(self, x, generator):
        create_graph = torch.is_grad_enabled()
        with torch.enable_grad():
            x_in = x if x.requires_grad else x.detach().requires_grad_(True)
            g = self._residual(x_in)
            if self.logdet_method == "exact" or self.trace_method == "exact":
                logdet = self._logdet_from_jacobian(g, x_in, create_graph, generator)
            else:
                logdet = self._logdet_hutchinson(g, x_in, create_graph, generator)
        y = x + g if create_graph else (x + g).detach()
        return y, logdet if create_graph else logdet.detach()

    @implements("D-russian-roulette-unbiased")
    def _series_weights(self, x: torch.Tensor, generator) -> torch.Tensor:
        r"""Weights $w_{b,k}$ of term $k$ for sample $b$, shape `(B, K)`: all ones for the
        truncated series; $\mathbb 1\{k \le N_b\} / P(N \ge k)$ for the roulette."""
        batch = x.shape[0]
        if self.logdet_method != "roulette":
            return x.new_ones(batch, self.terms)
        q = self.roulette_continue
        # G = floor(log U / log q) with U uniform on (0, 1] has P(G >= j) = q^j
        u = 1 - torch.rand(batch, generator=generator, dtype=x.dtype, device=x.device)
        extra = torch.floor(torch.log(u) / math.log(q)).long()
        count = self.terms + extra  # N_b
        k = torch.arange(1, int(count.max()) + 1, device=x.device)
        survival = torch.where(
            k <= self.terms, torch.ones((), dtype=x.dtype), q ** (k - self.terms).to(x.dtype)
        )
        return (k[None, :] <= count[:, None]).to(x.dtype) / survival

    @staticmethod
    @implements("D-iresnet-logdet-series")
    def _signed_coefficients(n: int, like: torch.Tensor) -> torch.Tensor:
        k = torch.arange(1, n + 1, dtype=like.dtype, device=like.device)
        return (-1) ** (k + 1) / k

    @implements("D-iresnet-logdet-series")
    def _logdet_hutchinson(self, g, x_in, create_graph, generator):
        batch = x_in.shape[0]
        weights = self._series_weights(x_in, generator)
        n = weights.shape[1]
        coefficients = self._signed_coefficients(n, x_in) * weights
        probes = draw_probes(x_in, self.probes, self.noise, generator)
        logdet = x_in.new_zeros(batch)
        for v in probes:
            w = v
            for k in range(n):
                # w^T <- w^T J: after k+1 products, w . v = v^T J^(k+1) v
                (w,) = torch.autograd.grad(g, x_in, w, retain_graph=True, create_graph=create_graph)
                logdet = logdet + coefficients[:, k] * (w * v).reshape(batch, -1).sum(-1)
        return logdet / self.probes

    @implements("D-iresnet-logdet-series", "D-residual-flow-neumann-gradient")
    def _logdet_from_jacobian(self, g, x_in, create_graph, generator):
        batch, d = x_in.shape[0], x_in[0].numel()
        rows = []
        for i in range(d):
            cotangent = torch.zeros_like(g).reshape(batch, d)
            cotangent[:, i] = 1
            (row,) = torch.autograd.grad(
                g, x_in, cotangent.reshape(g.shape), retain_graph=True, create_graph=create_graph
            )
            rows.append(row.reshape(batch, d))
        jac = torch.stack(rows, dim=1)  # (B, d, d): jac[b, i, j] = dg_i / dx_j
        if self.logdet_method == "exact":
            eye = torch.eye(d, dtype=jac.dtype, device=jac.device)
            return torch.linalg.slogdet(eye + jac).logabsdet
        weights = self._series_weights(x_in, generator)
        coefficients = self._signed_coefficients(weights.shape[1], x_in) * weights
        power = jac
        logdet = x_in.new_zeros(batch)
        for k in range(weights.shape[1]):
            logdet = logdet + coefficients[:, k] * power.diagonal(dim1=-2, dim2=-1).sum(-1)
            power = power @ jac
        return logdet


class ResidualFlow(FlowModel):
    r"""A residual flow on vectors: a `Compose` of
    [`InvertibleResidualBlock`][genmath.families.residual.InvertibleResidualBlock]s with a
    standard-normal base. With `logdet="roulette"` its `log_prob` is an unbiased estimate of
    the log-density (Chen et al. 2019); with `"exact"` it is the log-density itself.

    Arguments:
        features: dimension $d$.
        blocks: number of residual blocks.
        hidden, lipschitz, activation, logdet, trace, terms, ...: passed to every block.
    """

    def __init__(self, features: int, blocks: int = 4, hidden: tuple[int, ...] = (64, 64), **block):
        positive_int(blocks, "blocks")
        layers = [InvertibleResidualBlock(features, hidden, **block) for _ in range(blocks)]
        super().__init__(Compose(*layers), (features,))
