r"""Distilling a diffusion model into a one-step generator: score distillation sampling (SDS,
Poole et al. 2022), variational score distillation (VSD, Wang et al. 2023) and distribution
matching distillation (DMD, Yin et al. 2024).

**Composition.** Each loss = a Gaussian path (`GaussianPath.sample` noises the generator's
output $x = G_\theta(z)$ to $x_t = \alpha_t x + \sigma_t\varepsilon$) + the conversion between
parameterizations (`GaussianPath.convert`: a "real" model and a "fake" model in any of the five
parameterizations are read as $\hat\varepsilon$, as scores or as denoisers) + a surrogate whose
autograd gradient is the estimator. With $g$ the per-sample direction computed without a
graph, the surrogate is $\mathcal L = \mathrm{mean}_i\,\langle \mathrm{sg}(g_i), x_i\rangle$, so
$\nabla_\theta\mathcal L = \mathrm{mean}_i\, g_i^\top\,\partial x_i/\partial\theta$:

| loss | direction $g$ | zero when | derivation |
| --- | --- | --- | --- |
| `sds_loss` | $w(t)\,(\hat\varepsilon_\mathrm{real}(x_t, t) - \varepsilon)$ | $G$ sits at the data's mode | D-sds-gradient |
| `vsd_loss` | $w(t)\,(\hat\varepsilon_\mathrm{real} - \hat\varepsilon_\mathrm{fake})(x_t, t)$ | generator law = data law | D-vsd-gradient |
| `dmd_loss` | $w_t\,\alpha_t\,(s_\mathrm{fake} - s_\mathrm{real})(x_t, t)$ | generator law = data law | D-dmd-gradient, D-dmd-weighting |

The value of a surrogate is not an objective (only its gradient means something). The fake
model of VSD and DMD is the generator's own diffusion model, trained alongside it on
detached samples with the core denoising loss,
`genmath.score_matching.denoising(fake, x.detach(), path, parameterization=...)`.

For an affine generator $G(z) = Az + b$ and Gaussian data $\mathcal N(\mu, \Sigma)$ the
expected gradients are closed form (the derivations in one dimension; the tests in two):
with $M_t = (\alpha_t^2\Sigma + \sigma_t^2 I)^{-1}$ and $N_t = (\alpha_t^2AA^\top + \sigma_t^2
I)^{-1}$ the real and fake marginals' precisions, at a fixed $t$,

$$
\nabla_b^\mathrm{SDS} = w\sigma_t\alpha_t M_t(b - \mu),\quad
\nabla_A^\mathrm{SDS} = w\sigma_t\alpha_t M_t A,\qquad
\nabla_b^\mathrm{VSD} = w\sigma_t\alpha_t M_t(b - \mu),\quad
\nabla_A^\mathrm{VSD} = w\sigma_t\alpha_t (M_t - N_t) A,
$$

and DMD with a weight $w(t)$ is VSD with $w\sigma_t$ replaced by $w\alpha_t$. SDS does not
vanish at the data law: it pulls $A$ to $0$, a point mass at the mode (its "mode seeking").
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from .._implements import implements
from ..core._shapes import (
    as_time,
    check_batch,
    check_like,
    check_reduction,
    expand_time,
    reduce_batch,
)
from ..core._validate import InputTypeError, check_generator, non_negative
from ..core.path import GaussianPath, check_gaussian_path, check_parameterization

__all__ = ["DISTILLATION_TIMES", "sds_loss", "vsd_loss", "dmd_loss"]

Model = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Weighting = Callable[[torch.Tensor], torch.Tensor] | float | None

#: The interval times are drawn from when ``t`` is not given: $t \sim U[0.02, 0.98]$, DMD's
#: $[T_\mathrm{min}, T_\mathrm{max}] = [0.02T, 0.98T]$ (Yin et al. 2024), which also keeps every
#: conversion between parameterizations away from the ends where it divides by 0.
DISTILLATION_TIMES = (0.02, 0.98)


def _check_weighting(weighting, allowed: tuple[str, ...] = ()) -> None:
    if weighting is None or callable(weighting) or (isinstance(weighting, str) and weighting in allowed):
        return
    if isinstance(weighting, str):
        raise ValueError(
            "weighting must be None, a number >= 0, a callable of t"
            + (f" or one of {allowed}" if allowed else "")
            + f", got {weighting!r}"
        )
    non_negative(weighting, "weighting")


def _weight(weighting, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor | float:
    """w(t) broadcast over the event of ``x`` (1 when ``weighting`` is None)."""
    if weighting is None:
        return 1.0
    value = weighting(t) if callable(weighting) else weighting
    value = torch.as_tensor(value, dtype=x.dtype, device=x.device)
    return expand_time(value, x, name="weighting(t)") if value.ndim == 1 else value


def _noised(x, path, t, eps, generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Validated ``(x detached, t (B,), x_t, eps)``: the generator's output noised along the
    path (core `GaussianPath.sample`), without a graph to the generator."""
    check_batch(x, "x", event=True)
    check_gaussian_path(path)
    check_generator(generator)
    batch = x.shape[0]
    if t is None:
        lo, hi = DISTILLATION_TIMES
        t = lo + (hi - lo) * torch.rand(batch, generator=generator, dtype=x.dtype, device=x.device)
    t = as_time(t, like=x)
    if t.ndim == 0:
        t = t.expand(batch)
    else:
        expand_time(t, x, data="x")  # one time per sample
    if eps is not None:
        check_like(eps, x, "eps", "x")
    detached = x.detach()
    xt, eps = path.sample(detached, t, generator=generator, eps=eps)
    return detached, t, xt, eps


def _predict(model: Model, name: str, xt, t, path: GaussianPath, src: str, dst: str) -> torch.Tensor:
    if not callable(model):
        raise InputTypeError(f"{name} must be a callable (x_t, t) -> prediction, got {type(model).__name__}")
    with torch.no_grad():
        prediction = model(xt, t)
    if not isinstance(prediction, torch.Tensor) or prediction.shape != xt.shape:
        shape = tuple(prediction.shape) if isinstance(prediction, torch.Tensor) else type(prediction).__name__
        raise ValueError(f"{name} must return a tensor of the shape of x {tuple(xt.shape)}, got {shape}")
    return path.convert(prediction.to(xt.dtype), xt, t, src, dst)


def _surrogate(x: torch.Tensor, direction: torch.Tensor, reduction: str) -> torch.Tensor:
    """<sg(direction), x> per sample: its gradient in the generator's parameters is
    direction^T dx/dtheta."""
    return reduce_batch((direction.detach() * x).flatten(1).sum(1), reduction)


@implements("D-sds-gradient")
def sds_loss(
    x: torch.Tensor,
    real: Model,
    path: GaussianPath,
    *,
    parameterization: str = "eps",
    t=None,
    weighting: Weighting = None,
    eps: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    reduction: str = "mean",
) -> torch.Tensor:
    r"""Score distillation sampling (Poole et al. 2022): a surrogate whose gradient is
    $\mathbb E_{t,\varepsilon}\big[w(t)\,(\hat\varepsilon_\mathrm{real}(x_t, t) - \varepsilon)^\top
    \partial x/\partial\theta\big]$, $x_t = \alpha_t x + \sigma_t\varepsilon$ (D-sds-gradient).

    The $-\varepsilon$ term has mean zero ($\varepsilon$ is independent of $x$): it is a control
    variate, so the expected gradient is that of $\hat\varepsilon_\mathrm{real}$ alone. At the
    data law the gradient does not vanish: SDS drives a generator to the data's mode.

    Arguments:
        x: the generator's output $G_\theta(z)$, ``(B, *event)``, with its autograd graph.
        real: the pretrained model ``(x_t, t) -> prediction`` (``t`` of shape ``(B,)``).
        path: the `GaussianPath` the model was trained on.
        parameterization: what ``real`` predicts, one of the five names (converted to
            $\hat\varepsilon$ by `GaussianPath.convert`).
        t: a time in $[0, 1]$ (float, 0-d or ``(B,)``); ``None`` draws $t \sim U$ on
            `DISTILLATION_TIMES`.
        weighting: $w(t)$: a callable of the ``(B,)`` times, a constant $\ge 0$, or ``None`` (1).
        eps: the noise $\varepsilon$ (shape of ``x``); ``None`` draws it.
        generator: seeds $t$ (when drawn) and $\varepsilon$.
        reduction: ``"mean"`` or ``"none"`` (``(B,)``).
    """
    check_parameterization(parameterization)
    check_reduction(reduction)
    _check_weighting(weighting)
    _, t, xt, eps = _noised(x, path, t, eps, generator)
    eps_real = _predict(real, "real", xt, t, path, parameterization, "eps")
    return _surrogate(x, _weight(weighting, t, x) * (eps_real - eps), reduction)


@implements("D-vsd-gradient")
def vsd_loss(
    x: torch.Tensor,
    real: Model,
    fake: Model,
    path: GaussianPath,
    *,
    parameterization: str = "eps",
    t=None,
    weighting: Weighting = None,
    eps: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    reduction: str = "mean",
) -> torch.Tensor:
    r"""Variational score distillation (ProlificDreamer, Wang et al. 2023): a surrogate whose
    gradient is $\mathbb E_{t,\varepsilon}\big[w(t)\,(\hat\varepsilon_\mathrm{real} -
    \hat\varepsilon_\mathrm{fake})(x_t, t)^\top\partial x/\partial\theta\big]$ (D-vsd-gradient),
    where ``fake`` models the generator's own noised law. With exact models
    $\hat\varepsilon = -\sigma_t\nabla\log p_t$, so the direction is
    $w\sigma_t(s_\mathrm{fake} - s_\mathrm{real})$ and vanishes when the generator's law is the
    data's.

    Arguments are those of `sds_loss`, plus ``fake``: the generator's diffusion model, in the
    same ``parameterization`` as ``real``.
    """
    check_parameterization(parameterization)
    check_reduction(reduction)
    _check_weighting(weighting)
    _, t, xt, _ = _noised(x, path, t, eps, generator)
    eps_real = _predict(real, "real", xt, t, path, parameterization, "eps")
    eps_fake = _predict(fake, "fake", xt, t, path, parameterization, "eps")
    return _surrogate(x, _weight(weighting, t, x) * (eps_real - eps_fake), reduction)


@implements("D-dmd-gradient", "D-dmd-weighting")
def dmd_loss(
    x: torch.Tensor,
    real: Model,
    fake: Model,
    path: GaussianPath,
    *,
    parameterization: str = "x0",
    t=None,
    weighting: Weighting | str = "dmd",
    eps: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    reduction: str = "mean",
) -> torch.Tensor:
    r"""Distribution matching distillation (DMD/DMD2, Yin et al. 2024): a surrogate whose
    gradient is $\mathbb E_{t,\varepsilon}\big[w_t\,\alpha_t\,(s_\mathrm{fake} -
    s_\mathrm{real})(x_t, t)^\top\partial x/\partial\theta\big]$, the gradient of
    $w_t\,\mathrm{KL}(p^\mathrm{fake}_t\,\|\,p^\mathrm{real}_t)$ through
    $\partial x_t/\partial\theta = \alpha_t\,\partial x/\partial\theta$ (D-dmd-gradient).

    ``weighting="dmd"`` is the paper's data-dependent weight
    $w_t = \frac{\sigma_t^2}{\alpha_t^2}\frac{D}{\|x - \hat x_\mathrm{real}\|_1}$ ($D$ the
    event size), which makes the direction the difference of the two denoisers over their mean
    absolute error, $(\hat x_\mathrm{fake} - \hat x_\mathrm{real})\,D/\|x - \hat
    x_\mathrm{real}\|_1$ (D-dmd-weighting); a callable or a number is a plain $w(t)$. The
    normalized weight is undefined where the real denoiser reproduces $x$ exactly (an exact
    denoiser at $t = 0$): the default times stay in `DISTILLATION_TIMES`.

    Arguments are those of `vsd_loss`; ``parameterization`` defaults to ``"x0"`` (denoisers),
    the form DMD's models are written in.
    """
    check_parameterization(parameterization)
    check_reduction(reduction)
    _check_weighting(weighting, ("dmd",))
    detached, t, xt, _ = _noised(x, path, t, eps, generator)
    if weighting == "dmd":
        x0_real = _predict(real, "real", xt, t, path, parameterization, "x0")
        x0_fake = _predict(fake, "fake", xt, t, path, parameterization, "x0")
        error = (detached - x0_real).abs().flatten(1).mean(1)
        direction = (x0_fake - x0_real) / expand_time(error, x, name="||x - x0_real||_1")
    else:
        score_real = _predict(real, "real", xt, t, path, parameterization, "score")
        score_fake = _predict(fake, "fake", xt, t, path, parameterization, "score")
        alpha = expand_time(path.alpha(t), x, name="alpha_t")
        direction = _weight(weighting, t, x) * alpha * (score_fake - score_real)
    return _surrogate(x, direction, reduction)
