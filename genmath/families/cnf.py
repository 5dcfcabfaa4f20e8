r"""Continuous normalizing flows (Neural ODE / FFJORD): a velocity network read through the
instantaneous change of variables.

**Composition.** A CNF = a velocity field $v_\theta(x, t)$ (by default
[`genmath.nn.VelocityMLP`][genmath.nn.VelocityMLP], whose exact divergence is structured) +
`genmath.ode_log_likelihood` for the density + `genmath.sample_ode` for sampling. With
$t = 0$ data and $t = 1$ the standard-normal prior (genmath's convention),
$$
\log p_0(x_0) = \log \mathcal N(x_1; 0, I) + \int_0^1 \nabla\cdot v_\theta(x_t, t)\,dt,
\qquad \dot x_t = v_\theta(x_t, t)
$$
(D-instantaneous-change-of-variables; Chen et al. 2018). FFJORD (Grathwohl et al. 2019)
replaces the exact divergence by Hutchinson's estimate with one probe per trajectory, an
unbiased estimate of the log-likelihood that costs one vector–Jacobian product per
evaluation instead of $d$. Training is maximum likelihood, backpropagating through the
solver.

**Regularisers** (Finlay et al. 2020, "RNODE"): the kinetic energy
$\int_0^1 \|v(x_t, t)\|^2 dt$ and the Jacobian Frobenius norm
$\int_0^1 \|\nabla_x v(x_t, t)\|_F^2 dt$ favour straight, well-conditioned trajectories
that adaptive solvers integrate in few steps. Here they are integrated on a fixed grid
along the data-to-prior trajectory of `genmath.sample_ode` (trapezoidal rule), the
Frobenius norm by the unbiased $\mathbb E_\varepsilon\|\varepsilon^\top \nabla_x v\|^2$
with probes from `genmath.core.divergence.draw_probes`. (RNODE integrates them inside the
likelihood solve; `ode_log_likelihood` integrates only the divergence, so this takes a
second, fixed-step pass.)
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from .._implements import implements
from ..core._shapes import check_batch
from ..core.divergence import draw_probes
from ..core.dynamics import sample_ode
from ..core.likelihood import ode_log_likelihood
from ..nn import VelocityMLP

__all__ = ["CNF", "ffjord_loss"]


class CNF(nn.Module):
    r"""A continuous normalizing flow on vectors with a standard-normal prior at $t = 1$.

    Arguments:
        dim: $d$, the event size (inputs `(B, d)`).
        velocity: `velocity(x, t) -> (B, d)`; default `VelocityMLP(dim, hidden, depth,
            activation)`. A module is registered (its parameters train with the CNF).
        hidden, depth, activation: of the default `VelocityMLP`.
    """

    def __init__(
        self,
        dim: int,
        velocity: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
        *,
        hidden: int = 64,
        depth: int = 2,
        activation: str = "softplus",
    ):
        super().__init__()
        if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
            raise ValueError(f"dim must be a positive integer, got {dim!r}")
        self.dim = dim
        if velocity is None:
            velocity = VelocityMLP(dim, hidden, depth, activation)
        if not callable(velocity):
            raise ValueError(f"velocity must be callable as velocity(x, t), got {velocity!r}")
        self.velocity = velocity
        self.register_buffer("_reference", torch.zeros(()))

    def _check(self, x: torch.Tensor, name: str = "x") -> torch.Tensor:
        check_batch(x, name)
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(f"{name} must have shape (B, {self.dim}), got {tuple(x.shape)}")
        return x

    @implements("D-rnode-regularizers")
    def prior_log_prob(self, z: torch.Tensor) -> torch.Tensor:
        r"""$\log \mathcal N(z; 0, I)$, shape `(B,)`."""
        return -0.5 * (z**2).sum(-1) - 0.5 * self.dim * math.log(2 * math.pi)

    def log_prob(
        self,
        x: torch.Tensor,
        *,
        divergence: str = "exact",
        method: str = "dopri5",
        rtol: float = 1e-5,
        atol: float = 1e-5,
        probes: int = 1,
        noise: str = "rademacher",
        generator: torch.Generator | None = None,
        options: dict | None = None,
        return_result: bool = False,
    ):
        r"""$\log p_0(x)$ by `genmath.ode_log_likelihood` (exact divergence, or FFJORD's
        Hutchinson estimate with `divergence="hutchinson"`); shape `(B,)`. Differentiable
        w.r.t. the velocity's parameters when grad mode is on (maximum-likelihood training)."""
        self._check(x)
        return ode_log_likelihood(
            self.velocity,
            x,
            self.prior_log_prob,
            divergence=divergence,
            method=method,
            rtol=rtol,
            atol=atol,
            probes=probes,
            noise=noise,
            generator=generator,
            options=options,
            return_result=return_result,
        )

    def _transport(self, x, t_from, t_to, steps, method, rtol, atol, keep_trajectory=False):
        if steps is None:
            grid = torch.tensor([t_from, t_to], dtype=x.dtype, device=x.device)
        else:
            grid = torch.linspace(t_from, t_to, steps + 1, dtype=x.dtype, device=x.device)
        return sample_ode(
            self.velocity,
            x,
            grid=grid,
            method=method,
            rtol=rtol,
            atol=atol,
            keep_trajectory=keep_trajectory,
        )

    def encode(
        self,
        x: torch.Tensor,
        *,
        steps: int | None = None,
        method: str = "dopri5",
        rtol: float = 1e-5,
        atol: float = 1e-5,
    ) -> torch.Tensor:
        """Data to prior: the ODE solution from $t = 0$ to $t = 1$ (`genmath.sample_ode`).
        `steps=None` lets an adaptive `method` choose its steps; else a uniform grid."""
        return self._transport(self._check(x), 0.0, 1.0, steps, method, rtol, atol).x

    def decode(
        self,
        z: torch.Tensor,
        *,
        steps: int | None = None,
        method: str = "dopri5",
        rtol: float = 1e-5,
        atol: float = 1e-5,
    ) -> torch.Tensor:
        """Prior to data: the ODE solution from $t = 1$ to $t = 0$ (`genmath.sample_ode`)."""
        return self._transport(self._check(z, "z"), 1.0, 0.0, steps, method, rtol, atol).x

    def sample(
        self,
        n: int,
        generator: torch.Generator | None = None,
        *,
        steps: int | None = None,
        method: str = "dopri5",
        rtol: float = 1e-5,
        atol: float = 1e-5,
    ) -> torch.Tensor:
        """`n` samples: $z \\sim \\mathcal N(0, I)$ decoded to data, shape `(n, d)`."""
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"n must be a positive integer, got {n!r}")
        ref = self._reference
        z = torch.randn(n, self.dim, generator=generator, dtype=ref.dtype, device=ref.device)
        return self.decode(z, steps=steps, method=method, rtol=rtol, atol=atol)

    @implements("D-rnode-regularizers")
    def regularizers(
        self,
        x: torch.Tensor,
        *,
        steps: int = 8,
        method: str = "rk4",
        probes: int = 1,
        noise: str = "gaussian",
        generator: torch.Generator | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        r"""RNODE's kinetic energy $\int_0^1\|v(x_t,t)\|^2dt$ and Jacobian Frobenius norm
        $\int_0^1\|\nabla_x v(x_t,t)\|_F^2dt$ along the trajectory from `x` (shapes `(B,)`).

        The trajectory comes from `sample_ode` on a uniform grid of `steps` steps with the
        fixed-step `method`; both integrands are integrated over that grid by the trapezoidal
        rule. The Frobenius term is the unbiased estimate
        $\frac1P\sum_p \|\varepsilon_p^\top \nabla_x v\|^2$ ($\mathbb E[\varepsilon\varepsilon^\top]
        = I$), one set of probes per trajectory.
        """
        self._check(x)
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise ValueError(f"steps must be a positive integer, got {steps!r}")
        result = self._transport(x, 0.0, 1.0, steps, method, 0.0, 0.0, keep_trajectory=True)
        grid, states = result.grid, result.trajectory
        eps = draw_probes(x, probes, noise, generator)
        create_graph = torch.is_grad_enabled()
        kinetic, frobenius = [], []
        for t, state in zip(grid, states, strict=True):
            with torch.enable_grad():
                x_in = state if state.requires_grad else state.detach().requires_grad_(True)
                v = self.velocity(x_in, t)
                total = x.new_zeros(x.shape[0])
                for probe in eps:
                    (vjp,) = torch.autograd.grad(
                        v, x_in, probe, retain_graph=True, create_graph=create_graph
                    )
                    total = total + (vjp**2).sum(-1)
            kinetic.append((v**2).sum(-1))
            frobenius.append(total / probes)
        return (
            torch.trapezoid(torch.stack(kinetic), grid, dim=0),
            torch.trapezoid(torch.stack(frobenius), grid, dim=0),
        )


@implements("D-ffjord-loss")
def ffjord_loss(
    cnf: CNF,
    x: torch.Tensor,
    *,
    divergence: str = "hutchinson",
    kinetic: float = 0.0,
    jacobian: float = 0.0,
    regularizer_steps: int = 8,
    generator: torch.Generator | None = None,
    **solver,
) -> torch.Tensor:
    r"""Maximum-likelihood loss of a CNF: $-\frac1B\sum_b \log p_0(x_b)$ (exact or FFJORD's
    Hutchinson divergence), plus $\lambda_K$ `kinetic` times the mean kinetic energy and
    $\lambda_J$ `jacobian` times the mean Jacobian Frobenius norm (RNODE) when non-zero.

    `solver` is passed to [`CNF.log_prob`][genmath.families.cnf.CNF.log_prob]
    (`method`, `rtol`, `atol`, `options`, `probes`, `noise`); `probes` and `noise`, when
    given, also set the Frobenius-norm probes of the regulariser. Returns a scalar.
    """
    if kinetic < 0 or jacobian < 0:
        raise ValueError(
            f"regulariser weights must be non-negative, got kinetic={kinetic}, jacobian={jacobian}"
        )
    loss = -cnf.log_prob(x, divergence=divergence, generator=generator, **solver).mean()
    if kinetic or jacobian:
        probing = {key: solver[key] for key in ("probes", "noise") if key in solver}
        energy, frobenius = cnf.regularizers(
            x, steps=regularizer_steps, generator=generator, **probing
        )
        loss = loss + kinetic * energy.mean() + jacobian * frobenius.mean()
    return loss
