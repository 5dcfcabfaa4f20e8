"""Bijections with log-determinants: the base class, composition, and the non-autoregressive
layers (elementwise affine, ActNorm, sigmoid/logit, LU-parameterized affine, planar).

Users import these from `genmath.core.change_of_variables`; this module is private.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .._implements import implements

__all__ = [
    "Bijection",
    "Compose",
    "Inverse",
    "ElementwiseAffine",
    "ActNorm",
    "Sigmoid",
    "Logit",
    "Affine",
    "Planar",
]


def _shape_text(shape) -> str:
    return "(" + ", ".join(str(s) for s in shape) + ("," if len(shape) == 1 else "") + ")"


def _sum_event(values: torch.Tensor, batch_ndim: int) -> torch.Tensor:
    """Sum the trailing dimensions of ``values`` so that only ``batch_ndim`` remain."""
    extra = values.ndim - batch_ndim
    if extra <= 0:
        return values
    return values.sum(dim=tuple(range(-extra, 0)))


class Bijection(nn.Module):
    r"""An invertible map $f$ with the log-absolute-determinant of its Jacobian.

    `forward(x, context=None)` returns $(f(x), \log|\det J_f(x)|)$ and
    `inverse(y, context=None)` returns $(f^{-1}(y), \log|\det J_{f^{-1}}(y)|)$, so that the
    two log-determinants of a round trip sum to zero. Inputs have shape
    `(*batch, *event)` where `event` has `event_dim` dimensions; log-determinants have
    shape `batch` (usually `(B,)`).

    Subclasses implement `_forward` and `_inverse` with the same signatures (they may
    return a log-determinant with extra trailing event dimensions; it is summed here).
    The public methods validate shapes and refuse non-finite log-determinants with a
    `ValueError`. In a flow, the convention is that `forward` maps **data to the base
    (noise)** — the density direction — and `inverse` maps noise to data (sampling).

    Attributes:
        event_dim: number of trailing dimensions that form one event.
        features: size of the last dimension, when the bijection fixes it (else `None`).
        context_features: size of the conditioning context's last dimension (0: none).
    """

    event_dim: int = 1
    features: int | None = None
    context_features: int = 0

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None):
        """$(f(x), \\log|\\det J_f(x)|)$ with the log-determinant of shape `batch`."""
        context = self._check_input(x, context, "x")
        y, logdet = self._forward(x, context)
        return y, self._finish(logdet, x, "forward")

    def inverse(self, y: torch.Tensor, context: torch.Tensor | None = None):
        """$(f^{-1}(y), \\log|\\det J_{f^{-1}}(y)|)$ with the log-determinant of shape `batch`."""
        context = self._check_input(y, context, "y")
        x, logdet = self._inverse(y, context)
        return x, self._finish(logdet, y, "inverse")

    def _forward(self, x, context):
        raise NotImplementedError

    def _inverse(self, y, context):
        raise NotImplementedError

    def _check_input(self, x, context, name):
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
        if not x.is_floating_point():
            raise ValueError(f"{name} must be floating point, got dtype {x.dtype}")
        if x.ndim < self.event_dim:
            raise ValueError(
                f"{type(self).__name__} expected {name} with at least {self.event_dim} event "
                f"dimension(s), got shape {_shape_text(x.shape)}"
            )
        if self.features is not None and (x.ndim == 0 or x.shape[-1] != self.features):
            raise ValueError(
                f"{type(self).__name__} expected {name} of shape (*batch, {self.features}), "
                f"got shape {_shape_text(x.shape)}"
            )
        return self._check_context(x, context)

    def _check_context(self, x, context):
        if self.context_features == 0:
            # unconditional layers ignore a context, so a Compose can pass one to all layers
            return None
        if context is None:
            raise ValueError(
                f"{type(self).__name__} is conditional: expected a context of shape "
                f"(*batch, {self.context_features}), got None"
            )
        if context.shape[-1] != self.context_features:
            raise ValueError(
                f"{type(self).__name__} expected a context of shape (*batch, "
                f"{self.context_features}), got shape {_shape_text(context.shape)}"
            )
        batch = x.shape[: x.ndim - self.event_dim]
        try:
            return context.expand(*batch, self.context_features)
        except RuntimeError:
            raise ValueError(
                f"context of shape {_shape_text(context.shape)} does not broadcast to the batch "
                f"shape {_shape_text(batch)} of the input {_shape_text(x.shape)}"
            ) from None

    def _finish(self, logdet, x, direction):
        logdet = _sum_event(logdet, x.ndim - self.event_dim)
        if logdet.shape != x.shape[: x.ndim - self.event_dim]:
            logdet = logdet.expand(x.shape[: x.ndim - self.event_dim])
        if not torch.isfinite(logdet).all():
            bad = int((~torch.isfinite(logdet)).sum())
            raise ValueError(
                f"{type(self).__name__}.{direction}: expected a finite log|det J|, got a non-finite "
                f"value for {bad} of {logdet.numel()} inputs (input outside the domain, or "
                "parameters making the map singular or overflowing)"
            )
        return logdet


class Compose(Bijection):
    r"""$f = f_K \circ \dots \circ f_1$: `forward` applies the layers in the given order and
    adds their log-determinants, `inverse` undoes them in reverse order.

    A context, when given, is passed to every layer (unconditional layers ignore it).
    Layers may differ in `event_dim`; the composition's is the largest, and log-determinants
    of layers with fewer event dimensions are summed over the remaining ones.
    """

    def __init__(self, *bijections: Bijection):
        super().__init__()
        if len(bijections) == 1 and isinstance(bijections[0], list | tuple):
            bijections = tuple(bijections[0])
        if not bijections:
            raise ValueError("Compose expected at least one Bijection, got none")
        for i, b in enumerate(bijections):
            if not isinstance(b, Bijection):
                raise TypeError(f"Compose expected Bijections, got {type(b).__name__} at {i}")
        self.bijections = nn.ModuleList(bijections)
        self.event_dim = max(b.event_dim for b in bijections)
        self.features = bijections[0].features
        self.context_features = max(b.context_features for b in bijections)

    def _check_context(self, x, context):
        # each conditional layer checks the context it needs
        return context

    def _forward(self, x, context):
        batch_ndim = x.ndim - self.event_dim
        total = x.new_zeros(x.shape[:batch_ndim])
        for b in self.bijections:
            x, logdet = b._forward(x, b._check_context(x, context))
            total = total + _sum_event(logdet, batch_ndim)
        return x, total

    def _inverse(self, y, context):
        batch_ndim = y.ndim - self.event_dim
        total = y.new_zeros(y.shape[:batch_ndim])
        for b in reversed(self.bijections):
            y, logdet = b._inverse(y, b._check_context(y, context))
            total = total + _sum_event(logdet, batch_ndim)
        return y, total


class Inverse(Bijection):
    """The inverse bijection: its `forward` is the wrapped one's `inverse` and vice versa.

    `Inverse(MaskedAutoregressive(...))` is an inverse autoregressive flow (IAF) layer.
    """

    def __init__(self, bijection: Bijection):
        super().__init__()
        if not isinstance(bijection, Bijection):
            raise TypeError(f"Inverse expected a Bijection, got {type(bijection).__name__}")
        self.bijection = bijection
        self.event_dim = bijection.event_dim
        self.features = bijection.features
        self.context_features = bijection.context_features

    def _check_context(self, x, context):
        return self.bijection._check_context(x, context)

    def _forward(self, x, context):
        return self.bijection._inverse(x, context)

    def _inverse(self, y, context):
        return self.bijection._forward(y, context)


def _softplus(x: torch.Tensor) -> torch.Tensor:
    r"""$\log(1 + e^x)$ to full precision for every $x$ (torch's `softplus` returns $x$ itself
    above a threshold, an error of $e^{-x}$ that the log-determinant checks resolve)."""
    return torch.clamp_min(x, 0) + torch.log1p(torch.exp(-torch.abs(x)))


def _affine_forward(x, shift, log_scale):
    """$y = x e^{s} + t$ with $\\log|\\det| = \\sum s$ (the diagonal Jacobian $e^{s}$)."""
    return torch.addcmul(shift, x, torch.exp(log_scale)), log_scale


def _affine_inverse(y, shift, log_scale):
    return (y - shift) * torch.exp(-log_scale), -log_scale


class ElementwiseAffine(Bijection):
    r"""$y = e^{s} \odot x + t$ with learnable $s, t$ of shape `param_shape`.

    $\log|\det J| = \sum_i s_i$ summed over every event element (a parameter broadcast over
    $n$ event positions counts $n$ times). `param_shape` broadcasts against the event:
    `(d,)` for vectors, `(C, 1, 1)` for per-channel images (`event_dim=3`).

    Arguments:
        param_shape: shape of $s$ and $t$.
        event_dim: number of event dimensions (default `len(param_shape)`).
        log_scale: optional initial $s$ (default 0).
        shift: optional initial $t$ (default 0; with $s = 0$ the map is the identity).
    """

    def __init__(
        self,
        param_shape: int | tuple[int, ...],
        event_dim: int | None = None,
        *,
        log_scale: torch.Tensor | list | None = None,
        shift: torch.Tensor | list | None = None,
    ):
        super().__init__()
        param_shape = torch.Size([param_shape] if isinstance(param_shape, int) else param_shape)
        self.event_dim = len(param_shape) if event_dim is None else int(event_dim)
        if self.event_dim < len(param_shape):
            raise ValueError(
                f"event_dim must be at least len(param_shape) = {len(param_shape)}, "
                f"got {self.event_dim}"
            )
        self.features = param_shape[-1] if self.event_dim == len(param_shape) else None
        if self.features == 1:
            self.features = None  # a size-1 last dimension broadcasts
        self.log_scale = nn.Parameter(self._initial(log_scale, param_shape, "log_scale"))
        self.shift = nn.Parameter(self._initial(shift, param_shape, "shift"))

    @staticmethod
    def _initial(value, shape, name):
        if value is None:
            return torch.zeros(shape)
        # a tensor keeps its floating dtype (float64 parameters are not rounded to float32)
        value = torch.as_tensor(value)
        if not value.is_floating_point():
            value = value.to(torch.get_default_dtype())
        if value.shape != shape:
            raise ValueError(
                f"{name} expected shape {_shape_text(shape)}, got {_shape_text(value.shape)}"
            )
        return value.clone()

    def _check_input(self, x, context, name):
        context = super()._check_input(x, context, name)
        event = x.shape[x.ndim - self.event_dim :]
        try:
            fits = torch.broadcast_shapes(self.log_scale.shape, event) == event
        except RuntimeError:
            fits = False
        if not fits:
            raise ValueError(
                f"{type(self).__name__} with parameters of shape "
                f"{_shape_text(self.log_scale.shape)} expected an event shape they broadcast "
                f"to, got {name} of shape {_shape_text(x.shape)} (event {_shape_text(event)})"
            )
        return context

    def _event_log_scale(self, x):
        return self.log_scale.expand(x.shape[x.ndim - self.event_dim :])

    def _forward(self, x, context):
        y, _ = _affine_forward(x, self.shift, self.log_scale)
        return y, self._event_log_scale(x).sum().expand(x.shape[: x.ndim - self.event_dim])

    def _inverse(self, y, context):
        x, _ = _affine_inverse(y, self.shift, self.log_scale)
        return x, -self._event_log_scale(y).sum().expand(y.shape[: y.ndim - self.event_dim])


class ActNorm(ElementwiseAffine):
    r"""Activation normalization (Glow): an `ElementwiseAffine` whose parameters are set
    from the first batch it sees, so that this batch leaves it with zero mean and unit
    (biased, $1/N$) variance per parameter entry.

    The statistics are taken over the batch and over every event dimension the parameters
    broadcast over. Initialisation happens on the first `forward` call (the density
    direction); the `initialized` buffer is saved with the state dict.
    """

    def __init__(self, param_shape: int | tuple[int, ...], event_dim: int | None = None):
        super().__init__(param_shape, event_dim)
        self.register_buffer("initialized", torch.tensor(False))

    @torch.no_grad()
    @implements("D-actnorm-init")
    def initialize(self, x: torch.Tensor) -> None:
        """Set $s, t$ so that `forward(x)` has zero mean and unit variance per entry."""
        batch_ndim = x.ndim - self.event_dim
        param_ndim = self.log_scale.ndim
        reduce = list(range(batch_ndim))
        first_param_dim = x.ndim - param_ndim
        reduce += [first_param_dim + i for i, n in enumerate(self.log_scale.shape) if n == 1]
        reduce += list(range(batch_ndim, first_param_dim))
        mean = x.mean(dim=reduce, keepdim=True).reshape(self.log_scale.shape)
        std = x.std(dim=reduce, keepdim=True, unbiased=False).reshape(self.log_scale.shape)
        if not (std > 0).all():
            raise ValueError(
                "ActNorm initialisation expected a batch with non-zero spread in every entry, "
                f"got a standard deviation of {std.min().item():.3g}"
            )
        self.log_scale.copy_(-torch.log(std))
        self.shift.copy_(-mean / std)
        self.initialized.fill_(True)

    def _forward(self, x, context):
        if not bool(self.initialized):
            self.initialize(x)
        return super()._forward(x, context)


class Sigmoid(Bijection):
    r"""$y = \sigma(x) = 1/(1 + e^{-x})$, elementwise, from $\mathbb R$ onto $(0, 1)$.

    $\log|\sigma'(x)| = -\operatorname{softplus}(x) - \operatorname{softplus}(-x)$
    (derivation D-flow-sigmoid-logdet), computed without overflow for large $|x|$.
    """

    def __init__(self, event_dim: int = 1):
        super().__init__()
        self.event_dim = int(event_dim)

    def _forward(self, x, context):
        return torch.sigmoid(x), -_softplus(x) - _softplus(-x)

    def _inverse(self, y, context):
        if ((y <= 0) | (y >= 1)).any():
            raise ValueError(
                f"{type(self).__name__}: expected values in the open interval (0, 1) for the logit, "
                f"got values in [{y.min().item():.4g}, {y.max().item():.4g}]"
            )
        x = torch.logit(y)
        return x, -torch.log(y) - torch.log1p(-y)


class Logit(Bijection):
    r"""$y = \operatorname{logit}(x) = \log\frac{x}{1-x}$, elementwise, from $(0, 1)$ onto
    $\mathbb R$: the inverse of [`Sigmoid`][genmath.core.change_of_variables.Sigmoid].

    $\log|\operatorname{logit}'(x)| = -\log x - \log(1 - x)$ (derivation
    D-flow-sigmoid-logdet). Put it first in a flow whose data live in $(0, 1)$.
    """

    def __init__(self, event_dim: int = 1):
        super().__init__()
        self.event_dim = int(event_dim)
        self._sigmoid = Sigmoid(event_dim)

    def _forward(self, x, context):
        return self._sigmoid._inverse(x, context)

    def _inverse(self, y, context):
        return self._sigmoid._forward(y, context)


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
        if diagonal not in ("positive", "signed"):
            raise ValueError(f"diagonal must be 'positive' or 'signed', got {diagonal!r}")
        self.features = int(features)
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
        matrix = torch.as_tensor(matrix)
        if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
            raise ValueError(f"expected a square matrix W, got shape {_shape_text(matrix.shape)}")
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
        self.features = int(features)
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
