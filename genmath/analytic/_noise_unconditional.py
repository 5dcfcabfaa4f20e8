r"""The target a noise-*unconditional* denoiser learns (Sun, Jiang, Zhao, He 2025).

A network $g(z)$ that is not told the time is trained on the same loss as a noise-conditional
one, $\mathbb E_{t, x_0, \varepsilon}\,w(t)\,\|g(z) - r(x_0, \varepsilon, t)\|^2$ with
$z = \alpha_t x_0 + \sigma_t\varepsilon$ and $t \sim \pi(t)$. Its minimiser is the
**effective target** (derivation D-noise-unconditional-target)

$$
g^*(z) = \frac{\int \pi(t)\,w(t)\,p_t(z)\,R(z, t)\,dt}{\int \pi(t)\,w(t)\,p_t(z)\,dt}
       = \mathbb E_{t \mid z}\big[R(z, t)\big], \qquad
p(t \mid z) \propto \pi(t)\,w(t)\,p_t(z),
$$

the noise-conditional optimum $R(z, t) = \mathbb E[r \mid z, t]$ (the denoiser, the noise
prediction, the score or the velocity of the exact marginal) averaged over the posterior of
the time given $z$. For Gaussian and Gaussian-mixture data $p_t(z)$ and $R(z, t)$ are exact,
so $g^*$ is a one-dimensional integral over $t$, evaluated here by composite Gauss–Legendre
quadrature in log space (the posterior of $t$ sharpens as the dimension grows: the reason
noise conditioning matters little for images).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from .._implements import implements
from ..core._shapes import as_time
from ..core._validate import InputTypeError, check_option, positive_int

__all__ = ["noise_unconditional_target", "time_posterior", "TARGETS"]

#: the regression targets whose conditional optimum the exact marginals give
TARGETS = ("x0", "eps", "score", "velocity", "v")
# rows of one oracle call: bounds the (rows, dim) temporaries whatever the batch
_ROWS_PER_CALL = 1 << 16


def _check_factor(factor, name: str):
    if factor is not None and not callable(factor):
        raise InputTypeError(f"{name} must be a callable t -> tensor or None, got {factor!r:.40}")
    return factor


def _nodes(interval, panels: int, order: int, like: torch.Tensor):
    """Composite Gauss–Legendre nodes and weights on ``interval``: ``(M,)`` each, M = panels*order."""
    if not isinstance(interval, tuple | list) or len(interval) != 2:
        raise ValueError(f"interval must be a pair (t_lo, t_hi), got {interval!r:.60}")
    lo = float(as_time(interval[0], name="interval[0]"))
    hi = float(as_time(interval[1], name="interval[1]"))
    if not lo < hi:
        raise ValueError(f"interval must have t_lo < t_hi, got {interval!r}")
    unit_nodes, unit_weights = np.polynomial.legendre.leggauss(order)
    edges = np.linspace(lo, hi, panels + 1)
    centre, half = (edges[1:] + edges[:-1]) / 2, (edges[1:] - edges[:-1]) / 2
    times = (centre[:, None] + half[:, None] * unit_nodes).reshape(-1)
    weights = (half[:, None] * unit_weights).reshape(-1)
    return (torch.as_tensor(times).to(like), torch.as_tensor(weights).to(like))


def _log_factor(factor, times: torch.Tensor, name: str) -> torch.Tensor:
    if factor is None:
        return torch.zeros_like(times)
    values = torch.as_tensor(factor(times)).to(times)
    if values.shape != times.shape:
        raise ValueError(
            f"{name}(t) must return one value per time, shape {tuple(times.shape)}; got "
            f"{tuple(values.shape)}"
        )
    if not bool(torch.isfinite(values).all()) or bool((values < 0).any()):
        raise ValueError(f"{name}(t) must be finite and >= 0 on the interval, got {values}")
    return values.log()


def _per_time_target(marginal, x: torch.Tensor, t: torch.Tensor, target: str) -> torch.Tensor:
    """$R(x, t)$ of the exact marginal at per-row times."""
    if target == "v":
        convert = getattr(marginal.path, "convert", None)
        if convert is None:
            raise ValueError("target='v' needs a GaussianPath (its convert) as the path")
        return convert(marginal.eps(x, t), x, t, "eps", "v")
    method = {"x0": "denoise", "eps": "eps", "score": "score", "velocity": "velocity"}[target]
    return getattr(marginal, method)(x, t)


def _posterior_log_weights(marginal, x, times, log_quadrature):
    """``(B, M)``: log of quadrature weight x pi(t) w(t) p_t(x), before normalisation."""
    batch, nodes = x.shape[0], times.shape[0]
    rows = x.repeat_interleave(nodes, 0)
    return marginal.log_prob(rows, times.repeat(batch)).reshape(batch, nodes) + log_quadrature


def _validated(marginal, x, target, time_density, loss_weight, interval, panels, order):
    from ._gaussian import MixtureMarginal

    if not isinstance(marginal, MixtureMarginal):
        raise InputTypeError(
            "marginal must be an exact marginal (Gaussian(...).marginal(path) or "
            f"GaussianMixture(...).marginal(path)), got {type(marginal).__name__}"
        )
    check_option(target, TARGETS, "target")
    _check_factor(time_density, "time_density")
    _check_factor(loss_weight, "loss_weight")
    panels, order = positive_int(panels, "panels"), positive_int(order, "order")
    marginal._setup(x, 0.5)  # validates x (shape, dtype) against the oracle once
    times, weights = _nodes(interval, panels, order, x)
    log_quadrature = (
        weights.log()
        + _log_factor(time_density, times, "time_density")
        + _log_factor(loss_weight, times, "loss_weight")
    )
    if not bool(torch.isfinite(log_quadrature).any()):
        raise ValueError("time_density * loss_weight vanishes on the whole interval")
    return times, log_quadrature


@implements("D-noise-unconditional-target")
def time_posterior(
    marginal,
    x: torch.Tensor,
    *,
    time_density: Callable[[torch.Tensor], torch.Tensor] | None = None,
    loss_weight: Callable[[torch.Tensor], torch.Tensor] | None = None,
    interval: tuple[float, float] = (0.0, 1.0),
    panels: int = 64,
    order: int = 8,
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""The posterior of the time given the noisy point, $p(t \mid z) \propto \pi(t)\,w(t)\,
    p_t(z)$, on quadrature nodes: ``(times, weights)`` with ``times`` ``(M,)`` and
    ``weights`` ``(B, M)``, each row summing to 1, so that $\mathbb E_{t\mid z}[h(t)] \approx$
    ``weights @ h(times)`` (D-noise-unconditional-target). Arguments as in
    `noise_unconditional_target`."""
    times, log_quadrature = _validated(
        marginal, x, "x0", time_density, loss_weight, interval, panels, order
    )
    log_weights = torch.cat(
        [
            _posterior_log_weights(marginal, chunk, times, log_quadrature)
            for chunk in x.split(max(1, _ROWS_PER_CALL // times.shape[0]))
        ]
    )
    return times, torch.softmax(log_weights, dim=-1)


@implements("D-noise-unconditional-target")
def noise_unconditional_target(
    marginal,
    x: torch.Tensor,
    target: str = "x0",
    *,
    time_density: Callable[[torch.Tensor], torch.Tensor] | None = None,
    loss_weight: Callable[[torch.Tensor], torch.Tensor] | None = None,
    interval: tuple[float, float] = (0.0, 1.0),
    panels: int = 64,
    order: int = 8,
) -> torch.Tensor:
    r"""The effective target of a noise-unconditional network (Sun et al. 2025):
    $g^*(z) = \mathbb E_{t \mid z}[R(z, t)]$ with $p(t \mid z) \propto \pi(t)\,w(t)\,p_t(z)$
    (D-noise-unconditional-target), shape ``(B, d)``.

    Arguments:
        marginal: an exact marginal (`GaussianMarginal` or `MixtureMarginal`).
        x: noisy points $z$, ``(B, d)``.
        target: the regression target $r$ of the training loss: ``"x0"`` (the denoiser,
            $R = \mathbb E[x_0 \mid z, t]$), ``"eps"``, ``"score"``, ``"velocity"`` or
            ``"v"`` — each averaged in its own parameterization (the averages do not convert
            into each other: a conversion needs the time the network is not given).
        time_density: $\pi(t)$ of the training times, ``t (M,) -> (M,)``, up to a constant
            (default uniform on ``interval``).
        loss_weight: $w(t)$ of the loss, ``t -> (M,)`` (default 1).
        interval: the training range of $t$, within $[0, 1]$.
        panels, order: the composite Gauss–Legendre rule, ``panels`` equal panels of
            ``order`` nodes ($M$ = 512 by default); the integrand is smooth where
            $\alpha_t, \sigma_t^2$ are, so the rule converges fast (the tests compare it with
            adaptive scipy quadrature). Raise ``panels`` when $p(t \mid z)$ is sharp (high
            dimension).
    """
    times, log_quadrature = _validated(
        marginal, x, target, time_density, loss_weight, interval, panels, order
    )
    nodes = times.shape[0]
    out = []
    for chunk in x.split(max(1, _ROWS_PER_CALL // nodes)):
        posterior = torch.softmax(
            _posterior_log_weights(marginal, chunk, times, log_quadrature), dim=-1
        )
        rows = chunk.repeat_interleave(nodes, 0)
        per_time = _per_time_target(marginal, rows, times.repeat(chunk.shape[0]), target)
        out.append((posterior[..., None] * per_time.reshape(chunk.shape[0], nodes, -1)).sum(1))
    return torch.cat(out)
