r"""Scores and score matching: $\nabla_x \log p$ from a density or an energy, Tweedie's
formula, and the four score-matching objectives with the values defined in their papers.

For data $x \sim p$ and a score model $s_\theta$:

| objective | value (per sample, averaged over the batch) | reference |
| --- | --- | --- |
| `explicit` | $\tfrac12 \|s_\theta(x) - \nabla \log p(x)\|^2$ | Hyvärinen 2005, eq. (2) |
| `implicit` | $\tfrac12 \|s_\theta(x)\|^2 + \operatorname{tr} \nabla_x s_\theta(x)$ | Hyvärinen 2005, Thm. 1 |
| `sliced` | $v^\top \nabla_x s_\theta(x)\, v + \tfrac12 (v^\top s_\theta(x))^2$ | Song et al. 2020, eq. (7) |
| `denoising` | $\tfrac12 w(t)\,\|f_\theta(x_t, t) - \mathrm{target}\|^2$ | Vincent 2011; Song & Ermon 2019 |

$\mathbb E[\text{explicit}] = \mathbb E[\text{implicit}] + \tfrac12\mathbb E\|\nabla\log p\|^2$
(derivation D-hyvarinen-score-matching); sliced equals implicit in expectation over $v$
(D-sliced-score-matching); denoising with the score parameterization and $w = 1$ equals
explicit score matching of $p_t$ plus a constant (D-denoising-score-matching).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import torch

from .._implements import implements
from ._shapes import as_time, check_batch, check_reduction, expand_time, reduce_batch
from .divergence import divergence, draw_probes

if TYPE_CHECKING:
    from .path import GaussianPath

__all__ = [
    "score_from_log_prob",
    "score_from_energy",
    "tweedie",
    "explicit",
    "implicit",
    "sliced",
    "denoising",
]

_PROJECTIONS = ("gaussian", "rademacher")


def _gradient(scalar_fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, what: str):
    """``d/dx sum_b scalar_fn(x)_b``, kept in the graph so that it can be differentiated again
    (in the parameters of ``scalar_fn``, or in ``x`` when ``x`` itself requires grad)."""
    x = check_batch(x)
    with torch.enable_grad():
        inner = x if x.requires_grad else x.detach().requires_grad_(True)
        values = scalar_fn(inner)
        if values.shape != (x.shape[0],):
            raise ValueError(
                f"{what} must return one value per sample, shape ({x.shape[0]},), "
                f"got {tuple(values.shape)}"
            )
        (grad,) = torch.autograd.grad(values.sum(), inner, create_graph=True)
    return grad


@implements("D-hyvarinen-score-matching")
def score_from_log_prob(
    log_prob: Callable[[torch.Tensor], torch.Tensor],
) -> Callable[[torch.Tensor], torch.Tensor]:
    r"""The score $x \mapsto \nabla_x \log p(x)$ of an (unnormalised) log-density, by autograd.

    ``log_prob`` maps ``(B, *event)`` to ``(B,)``. The returned score keeps its graph
    (``create_graph=True``), so it can sit inside a loss that is differentiated again.
    """
    return lambda x: _gradient(log_prob, x, "log_prob")


@implements("D-hyvarinen-score-matching")
def score_from_energy(
    energy: Callable[[torch.Tensor], torch.Tensor],
) -> Callable[[torch.Tensor], torch.Tensor]:
    r"""The score $x \mapsto -\nabla_x E(x)$ of the density $p \propto e^{-E}$, by autograd."""
    return lambda x: -_gradient(energy, x, "energy")


def _coefficient(value, x: torch.Tensor, name: str) -> torch.Tensor:
    value = torch.as_tensor(value, dtype=x.dtype, device=x.device)
    if value.ndim > 1:
        raise ValueError(f"{name} must be a scalar or have shape (B,), got {tuple(value.shape)}")
    if not torch.isfinite(value).all():
        raise ValueError(f"{name} must be finite, got {value}")
    return expand_time(value, x, name)


@implements("D-tweedie")
def tweedie(xt: torch.Tensor, score: torch.Tensor, alpha, sigma) -> torch.Tensor:
    r"""Tweedie's formula: the posterior mean of $x_0$ given $x_t = \alpha x_0 + \sigma\varepsilon$,

    $$
    \mathbb E[x_0 \mid x_t] = \frac{x_t + \sigma^2\, \nabla \log p_t(x_t)}{\alpha},
    $$

    (derivation D-tweedie; [Efron 2011]). ``alpha`` and ``sigma`` are scalars or ``(B,)``.
    """
    xt = check_batch(xt, "xt")
    if not torch.is_tensor(score) or score.shape != xt.shape:
        shape = tuple(score.shape) if torch.is_tensor(score) else type(score).__name__
        raise ValueError(f"score must have the shape of xt {tuple(xt.shape)}, got {shape}")
    alpha = _coefficient(alpha, xt, "alpha")
    sigma = _coefficient(sigma, xt, "sigma")
    if (alpha <= 0).any():
        raise ValueError(f"alpha must be positive, got minimum {float(alpha.min())}")
    if (sigma < 0).any():
        raise ValueError(f"sigma must be non-negative, got minimum {float(sigma.min())}")
    return (xt + sigma**2 * score) / alpha


def _evaluate(fn, x: torch.Tensor, what: str) -> torch.Tensor:
    out = fn(x)
    if not torch.is_tensor(out) or out.shape != x.shape:
        shape = tuple(out.shape) if torch.is_tensor(out) else type(out).__name__
        raise ValueError(
            f"{what} must return a tensor of the shape of x {tuple(x.shape)}, got {shape}"
        )
    return out


def _squared_norm(v: torch.Tensor) -> torch.Tensor:
    return v.pow(2).flatten(1).sum(1)


@implements("D-hyvarinen-score-matching")
def explicit(
    score_model: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    true_score: Callable[[torch.Tensor], torch.Tensor] | torch.Tensor,
    reduction: str = "mean",
) -> torch.Tensor:
    r"""Explicit score matching, $J_\mathrm{ESM} = \mathbb E_p\big[\tfrac12 \|s_\theta(x) -
    \nabla_x \log p(x)\|^2\big]$ (Hyvärinen 2005, eq. 2).

    Arguments:
        score_model: ``x -> s(x)``, same shape as ``x``.
        x: samples of $p$, shape ``(B, *event)``.
        true_score: $\nabla \log p$ as a function of ``x`` or as a tensor evaluated at ``x``.
        reduction: ``"mean"`` (the objective, a scalar) or ``"none"`` (per sample, ``(B,)``).
    """
    x = check_batch(x)
    check_reduction(reduction)
    target = true_score if torch.is_tensor(true_score) else _evaluate(true_score, x, "true_score")
    if target.shape != x.shape:
        raise ValueError(
            f"true_score must have the shape of x {tuple(x.shape)}, got {tuple(target.shape)}"
        )
    residual = _evaluate(score_model, x, "score_model") - target
    return reduce_batch(0.5 * _squared_norm(residual), reduction)


@implements("D-hyvarinen-score-matching", "D-sliced-score-matching")
def implicit(
    score_model: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    reduction: str = "mean",
) -> torch.Tensor:
    r"""Implicit (Hyvärinen) score matching,
    $J_\mathrm{ISM} = \mathbb E_p\big[\tfrac12\|s_\theta(x)\|^2 + \operatorname{tr}\nabla_x
    s_\theta(x)\big]$, with the exact trace of `genmath.core.divergence.divergence`.

    Integration by parts gives $J_\mathrm{ESM} = J_\mathrm{ISM} + \tfrac12
    \mathbb E_p\|\nabla \log p\|^2$, a constant in $\theta$
    (derivation D-hyvarinen-score-matching; Hyvärinen 2005, Thm. 1).
    """
    x = check_batch(x)
    check_reduction(reduction)
    with torch.enable_grad():
        inner = x if x.requires_grad else x.detach().requires_grad_(True)
        values = _evaluate(score_model, inner, "score_model")
        trace = divergence(_reuse(score_model, inner, values), inner, method="exact")
    return reduce_batch(0.5 * _squared_norm(values) + trace, reduction)


def _reuse(score_model, inner: torch.Tensor, values: torch.Tensor):
    """``score_model`` that returns the already computed ``values`` at ``inner``, so the
    divergence differentiates the same forward graph instead of running the model again."""
    return lambda z: values if z is inner else score_model(z)


@implements("D-sliced-score-matching")
def sliced(
    score_model: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    n_projections: int = 1,
    generator: torch.Generator | None = None,
    variance_reduction: bool = False,
    projection: str = "gaussian",
    reduction: str = "mean",
) -> torch.Tensor:
    r"""Sliced score matching (Song et al. 2020),

    $$
    J_\mathrm{SSM} = \mathbb E_p \mathbb E_v\Big[v^\top \nabla_x s_\theta(x)\, v
      + \tfrac12 \big(v^\top s_\theta(x)\big)^2\Big],
    $$

    averaged over ``n_projections`` projections $v$ per sample with $\mathbb E[vv^\top] = I$
    (``"gaussian"`` or ``"rademacher"``). With ``variance_reduction=True`` the second term is
    replaced by its expectation $\tfrac12\|s_\theta(x)\|^2$ (SSM-VR), so the first term is a
    Hutchinson estimate of the divergence. Either way, $\mathbb E_v$ of the value equals
    `implicit` at each $x$ (derivation D-sliced-score-matching).

    ``v^T (grad s) v`` is one vector-Jacobian product per projection: the Jacobian is never
    formed.
    """
    x = check_batch(x)
    check_reduction(reduction)
    if isinstance(n_projections, bool) or not isinstance(n_projections, int) or n_projections < 1:
        raise ValueError(f"n_projections must be a positive integer, got {n_projections!r}")
    if projection not in _PROJECTIONS:
        raise ValueError(f"projection must be one of {_PROJECTIONS}, got {projection!r}")
    if variance_reduction:
        with torch.enable_grad():
            inner = x if x.requires_grad else x.detach().requires_grad_(True)
            values = _evaluate(score_model, inner, "score_model")
            trace = divergence(
                _reuse(score_model, inner, values),
                inner,
                method="hutchinson",
                probes=n_projections,
                generator=generator,
                noise=projection,
            )
        return reduce_batch(0.5 * _squared_norm(values) + trace, reduction)

    v = draw_probes(x, n_projections, projection, generator)
    with torch.enable_grad():
        inner = x if x.requires_grad else x.detach().requires_grad_(True)
        values = _evaluate(score_model, inner, "score_model")
        terms = []
        for v_k in v:
            projected = (v_k * values).flatten(1).sum(1)
            (vjp,) = torch.autograd.grad(projected.sum(), inner, create_graph=True)
            terms.append((vjp * v_k).flatten(1).sum(1) + 0.5 * projected.pow(2))
    return reduce_batch(torch.stack(terms).mean(0), reduction)


def _targets(path, x0, eps, xt, t, parameterization):
    """What an ideal model of each parameterization predicts *given* (x0, eps): the
    conditional quantity whose regression onto x_t yields the marginal one."""
    if parameterization == "x0":
        return x0
    if parameterization == "eps":
        return eps
    if parameterization == "velocity":
        return path.conditional_velocity(x0, eps, t)
    return path.convert(eps, xt, t, "eps", parameterization)


@implements("D-denoising-score-matching")
def denoising(
    model: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    x0: torch.Tensor,
    path: GaussianPath,
    t: float | torch.Tensor | Callable[[int, torch.Generator | None], torch.Tensor] | None = None,
    parameterization: str = "score",
    weighting: Callable[[torch.Tensor], torch.Tensor] | float | None = None,
    generator: torch.Generator | None = None,
    reduction: str = "mean",
) -> torch.Tensor:
    r"""Denoising score matching on a Gaussian path (Vincent 2011; Song & Ermon 2019),

    $$
    J_\mathrm{DSM} = \mathbb E_{t}\,\mathbb E_{x_0, \varepsilon}\Big[\tfrac12\, w(t)\,
      \big\|f_\theta(x_t, t) - y(x_0, \varepsilon, t)\big\|^2\Big], \qquad
      x_t = \alpha_t x_0 + \sigma_t \varepsilon,
    $$

    where the target $y$ is the conditional version of the parameterization: $x_0$,
    $\varepsilon$, $\nabla_{x_t}\log p(x_t \mid x_0) = -\varepsilon/\sigma_t$,
    $\dot\alpha_t x_0 + \dot\sigma_t\varepsilon$, or $\alpha_t\varepsilon - \sigma_t x_0$.
    For the score parameterization with $w = 1$ at a fixed $t$ this is Vincent's
    $J_\mathrm{DSM}$, equal to explicit score matching of $p_t$ plus
    $\tfrac12\mathbb E\|\varepsilon\|^2/\sigma_t^2 - \tfrac12\mathbb E\|\nabla\log p_t\|^2$
    (derivation D-denoising-score-matching); Song & Ermon's loss is $w(t) = \sigma_t^2$.

    Arguments:
        model: ``(x_t, t) -> prediction``; ``t`` is passed with shape ``(B,)``.
        x0: data, shape ``(B, *event)``.
        path: a `GaussianPath`.
        t: a float, 0-d or ``(B,)`` tensor in $[0,1]$, or a callable
            ``(B, generator) -> (B,)`` times; ``None`` draws $t \sim U$ on the schedule's
            ``safe_interval`` (where every target is well conditioned).
        parameterization: one of `GaussianPath`'s ``PARAMETERIZATIONS``.
        weighting: $w(t)$ as a callable of the ``(B,)`` times, a constant, or ``None`` (1).
        generator: seeds $t$ (when drawn) and $\varepsilon$.
        reduction: ``"mean"`` (the objective) or ``"none"`` (``(B,)``).
    """
    x0 = check_batch(x0, "x0")
    check_reduction(reduction)
    batch = x0.shape[0]
    if t is None:
        lo, hi = (float(v) for v in path.schedule.safe_interval)
        t = lo + (hi - lo) * torch.rand(
            batch, generator=generator, dtype=x0.dtype, device=x0.device
        )
    elif callable(t):
        t = t(batch, generator)
    t = as_time(t, like=x0)
    if t.ndim == 0:
        t = t.expand(batch)
    elif t.shape != (batch,):
        raise ValueError(f"t must be a scalar or have shape ({batch},), got {tuple(t.shape)}")
    xt, eps = path.sample(x0, t, generator=generator)
    target = _targets(path, x0, eps, xt, t, parameterization)
    prediction = model(xt, t)
    if not torch.is_tensor(prediction) or prediction.shape != x0.shape:
        shape = (
            tuple(prediction.shape) if torch.is_tensor(prediction) else type(prediction).__name__
        )
        raise ValueError(
            f"model must return a tensor of the shape of x0 {tuple(x0.shape)}, got {shape}"
        )
    values = 0.5 * _squared_norm(prediction - target)
    if weighting is not None:
        weight = weighting(t) if callable(weighting) else weighting
        values = values * torch.as_tensor(weight, dtype=x0.dtype, device=x0.device)
    return reduce_batch(values, reduction)
