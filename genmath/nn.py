r"""genmath's own small networks, built so that the math the library needs from them is cheap.

[`VelocityMLP`][genmath.nn.VelocityMLP] is a time-conditioned MLP velocity field whose exact
divergence comes from the structure of its Jacobian instead of $D$ backward passes. With
pre-activations $a_1 = W_1 x + w_t t + b_1$, $h_1 = \phi(a_1)$, $a_2 = W_2 h_1 + b_2$,
$h_2 = \phi(a_2)$, $v = W_3 h_2 + b_3$ and an elementwise activation $\phi$,

$$
\frac{\partial v}{\partial x} = W_3\,\mathrm{diag}(d_2)\,W_2\,\mathrm{diag}(d_1)\,W_1,
\qquad
\nabla\cdot v = \operatorname{tr}\frac{\partial v}{\partial x}
= d_2^\top\big(W_2 \odot (W_1 W_3)^\top\big)\,d_1,
$$

$d_k = \phi'(a_k)$ (D-mlp-structured-divergence). The $H\times H$ matrix
$W_2 \odot (W_1 W_3)^\top$ does not depend on the sample, so the divergence of a batch costs
one extra matrix–vector product per sample. With one hidden layer the same argument gives
$\nabla\cdot v = d_1^\top \operatorname{diag}(W_1 W_2)$.
"""

from __future__ import annotations

import torch
from torch import nn

from ._implements import implements
from .core._shapes import check_batch

__all__ = ["ACTIVATIONS", "VelocityMLP"]


def _softplus_derivative(a: torch.Tensor) -> torch.Tensor:
    return torch.sigmoid(a)


def _tanh_derivative(a: torch.Tensor) -> torch.Tensor:
    return 1 - torch.tanh(a) ** 2


def _silu_derivative(a: torch.Tensor) -> torch.Tensor:
    s = torch.sigmoid(a)
    return s * (1 + a * (1 - s))


def _sigmoid_derivative(a: torch.Tensor) -> torch.Tensor:
    s = torch.sigmoid(a)
    return s * (1 - s)


# Elementwise activations with their derivatives written out, so the structured divergence
# is differentiable w.r.t. the parameters (training by maximum likelihood) without autograd
# having to differentiate through a derivative it computed itself.
_ACTIVATIONS = {
    "softplus": (torch.nn.functional.softplus, _softplus_derivative),
    "tanh": (torch.tanh, _tanh_derivative),
    "silu": (torch.nn.functional.silu, _silu_derivative),
    "sigmoid": (torch.sigmoid, _sigmoid_derivative),
}
ACTIVATIONS = tuple(_ACTIVATIONS)


class VelocityMLP(nn.Module):
    r"""Time-conditioned MLP velocity $v(x, t)$ on flat vectors, with structured divergence.

    The time enters as one extra input column (a scalar or per-sample $t$). Implements
    [`VelocityWithDivergence`][genmath.core.divergence.VelocityWithDivergence], so
    `genmath.ode_log_likelihood(model, ...)` gets its exact divergence from
    `velocity_and_divergence` (D-mlp-structured-divergence), and `model.at(t)` is an
    $x$-only field implementing
    [`FieldWithDivergence`][genmath.core.divergence.FieldWithDivergence] for
    `genmath.divergence`.

    Arguments:
        dim: $D$, the event size; inputs have shape `(B, dim)`.
        hidden: width $H$ of each hidden layer.
        depth: number of hidden layers, 1 or 2 (the structured trace is written for these).
        activation: one of `ACTIVATIONS` (elementwise, with a closed-form derivative).
    """

    def __init__(
        self, dim: int, hidden: int = 256, depth: int = 2, activation: str = "softplus"
    ) -> None:
        super().__init__()
        for name, value in (("dim", dim), ("hidden", hidden)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if depth not in (1, 2):
            raise ValueError(f"depth must be 1 or 2 hidden layers, got {depth!r}")
        if activation not in _ACTIVATIONS:
            raise ValueError(f"activation must be one of {ACTIVATIONS}, got {activation!r}")
        self.dim, self.hidden, self.depth, self.activation = dim, hidden, depth, activation
        self.input = nn.Linear(dim + 1, hidden)
        self.middle = nn.Linear(hidden, hidden) if depth == 2 else None
        self.output = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor, t) -> torch.Tensor:
        """The velocity $v(x, t)$, shape `(B, dim)`."""
        return self._run(x, t, with_divergence=False)[0]

    @implements("D-mlp-structured-divergence")
    def velocity_and_divergence(self, x: torch.Tensor, t) -> tuple[torch.Tensor, torch.Tensor]:
        r"""$(v(x, t), \nabla_x\cdot v(x, t))$ with shapes `(B, dim)` and `(B,)`
        (D-mlp-structured-divergence)."""
        return self._run(x, t, with_divergence=True)

    def at(self, t) -> _VelocityAtTime:
        """The $x$-only field $x \\mapsto v(x, t)$ at a fixed time, with its divergence hook."""
        return _VelocityAtTime(self, t)

    def _run(self, x: torch.Tensor, t, *, with_divergence: bool):
        check_batch(x)
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(f"x must have shape (B, {self.dim}), got {tuple(x.shape)}")
        # Any finite t is accepted: a network has no singular end, and adaptive solvers may
        # probe slightly past the interval they integrate over.
        time = torch.as_tensor(t, dtype=x.dtype, device=x.device)
        if time.ndim > 1 or not torch.isfinite(time).all():
            raise ValueError(f"t must be a finite scalar or have shape (B,), got {t!r}")
        if time.ndim == 0:
            time = time.expand(x.shape[0])
        elif time.shape[0] != x.shape[0]:
            raise ValueError(
                f"t must be a scalar or have shape ({x.shape[0]},) to match x, got {tuple(time.shape)}"
            )
        phi, phi_prime = _ACTIVATIONS[self.activation]
        a1 = self.input(torch.cat([x, time[:, None]], dim=1))
        h = phi(a1)
        a2 = None
        if self.middle is not None:
            a2 = self.middle(h)
            h = phi(a2)
        v = self.output(h)
        if not with_divergence:
            return v, None
        w_in = self.input.weight[:, : self.dim]  # (H, D): the time column has no x-derivative
        w_in_out = w_in @ self.output.weight  # (H, H): (W1 W3)[j, k]
        if self.middle is None:
            div = phi_prime(a1) @ w_in_out.diagonal()
        else:
            coupling = self.middle.weight * w_in_out.T  # W2 ⊙ (W1 W3)^T
            div = ((phi_prime(a2) @ coupling) * phi_prime(a1)).sum(-1)
        return v, div

    def extra_repr(self) -> str:
        return f"dim={self.dim}, hidden={self.hidden}, depth={self.depth}, activation={self.activation!r}"


class _VelocityAtTime:
    """`VelocityMLP` with its time frozen: an x-only field with a divergence hook."""

    def __init__(self, model: VelocityMLP, t) -> None:
        self.model, self.t = model, t

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x, self.t)

    def value_and_divergence(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.model.velocity_and_divergence(x, self.t)
