r"""The continuous-time ELBO of a Gaussian path (Kingma et al. 2021, D-vdm-elbo) and the
ELBO weighting of each regression loss (D-elbo-weighting), re-exported by
`genmath.core.elbo`: the discrete-latent ELBO, IWAE and KL live there."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING

import torch

from .._implements import implements
from ._shapes import check_batch
from ._validate import (
    InputTypeError,
    check_generator,
    check_option,
    positive_int,
)

if TYPE_CHECKING:
    from .path import GaussianPath

LOSSES = ("eps", "x0", "score", "velocity", "v")
"""The regression losses whose ELBO weighting `elbo_weighting` gives: the mean squared error
of each parameterization of `GaussianPath`."""

# --------------------------------------------------------------------------- Gaussian path ELBO


def _interval(path, t_interval) -> tuple[float, float]:
    lo, hi = path.schedule.safe_interval if t_interval is None else t_interval
    lo, hi = float(lo), float(hi)
    if not 0.0 <= lo < hi <= 1.0:
        raise ValueError(f"t_interval must satisfy 0 <= t_lo < t_hi <= 1, got ({lo}, {hi})")
    return lo, hi


def _broadcast(coefficient: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return coefficient.reshape(coefficient.shape[0], *([1] * (x.ndim - 1)))


@implements("D-vdm-elbo")
def gaussian_path_elbo(
    model: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    x0: torch.Tensor,
    path: GaussianPath,
    parameterization: str = "x0",
    *,
    n_t: int = 1,
    method: str = "mc",
    sampling: str = "log_snr",
    t_interval: tuple[float, float] | None = None,
    generator: torch.Generator | None = None,
    terms: bool = False,
):
    r"""The continuous-time ELBO of a Gaussian path (Kingma et al. 2021), shape ``(B,)``.

    With $\lambda_t = \log(\alpha_t^2/\sigma_t^2)$, $[t_0, t_1]$ the schedule's
    ``safe_interval`` (or ``t_interval``), $d$ the data dimension and
    $\hat x_0 = \hat x_0(x_t, t)$ the model output converted to a denoiser by
    `GaussianPath.convert`,

    $$
    -\mathrm{ELBO}(x_0) = \underbrace{\tfrac12 e^{\lambda_{t_1}} \|x_0\|^2}_{\text{prior}}
      + \underbrace{\tfrac d2 \big(\log 2\pi + 1 - \lambda_{t_0}\big)}_{\text{reconstruction}}
      + \underbrace{\tfrac12 \int_{t_0}^{t_1} \Big(-\frac{d\lambda}{dt}\Big) e^{\lambda_t}\,
        \mathbb E_\varepsilon \|x_0 - \hat x_0(x_t, t)\|^2 \, dt}_{\text{diffusion}} .
    $$

    The prior is $p(x_{t_1}) = \mathcal N(0, \sigma_{t_1}^2 I)$ and the decoder
    $p(x_0 \mid x_{t_0}) = \mathcal N(x_{t_0}/\alpha_{t_0}, (\sigma_{t_0}/\alpha_{t_0})^2 I)$;
    their terms are exact expectations over $x_{t_1}$, $x_{t_0}$. The diffusion term is the
    $T \to \infty$ limit of the per-step KLs $\frac12(e^{\lambda_s} - e^{\lambda_t})
    \|x_0 - \hat x_0\|^2$ (derivation D-vdm-elbo). It is estimated by Monte Carlo:

    * ``sampling="log_snr"`` (default): $\lambda \sim U[\lambda_{t_1}, \lambda_{t_0}]$,
      $t = \lambda^{-1}(\lambda)$, integrand $\frac12 e^\lambda \|x_0 - \hat x_0\|^2$ times the
      interval length — the same integral in the variable $\lambda$, where it is flat for a
      good model, so the estimator has low variance;
    * ``sampling="t"``: $t \sim U[t_0, t_1]$ with the integrand above times $t_1 - t_0$.

    ``method="quadrature"`` replaces the random times by ``n_t`` Gauss–Legendre nodes in the
    chosen variable (still one $\varepsilon$ per node): deterministic in $t$, for tests.

    Arguments:
        model: ``(x_t, t) -> prediction`` in ``parameterization``; ``t`` has shape ``(N,)``.
        x0: data, shape ``(B, *event)``.
        path: a `GaussianPath`.
        parameterization: one of `GaussianPath`'s ``PARAMETERIZATIONS``.
        n_t: number of times (draws or nodes) per input.
        terms: also return the three terms of $-\mathrm{ELBO}$ as a dict of ``(B,)`` tensors
            (``"prior"``, ``"reconstruction"``, ``"diffusion"``).
    """
    from .path import check_gaussian_path, check_parameterization

    x0 = check_batch(x0, "x0", event=True)
    check_gaussian_path(path)
    check_parameterization(parameterization)
    n = positive_int(n_t, "n_t")
    check_option(method, ("mc", "quadrature"), "method")
    check_option(sampling, ("log_snr", "t"), "sampling")
    check_generator(generator)
    t_lo, t_hi = _interval(path, t_interval)
    batch, dim = x0.shape[0], x0[0].numel()
    like = dict(dtype=x0.dtype, device=x0.device)
    ends = torch.tensor([t_lo, t_hi], **like)
    lam_hi, lam_lo = path.log_snr(ends).unbind()  # lambda decreases with t

    if sampling == "log_snr":
        lo, hi = lam_lo, lam_hi
    else:
        lo, hi = torch.tensor(t_lo, **like), torch.tensor(t_hi, **like)
    if method == "quadrature":
        nodes, weights = _gauss_legendre(n, **like)
        u = nodes.repeat_interleave(batch)
        weight = weights.repeat_interleave(batch) * n  # the mean over nodes below undoes n
    else:
        u = torch.rand(n * batch, generator=generator, **like)
        weight = torch.ones_like(u)
    grid = lo + (hi - lo) * u
    if sampling == "log_snr":
        t = path.schedule.inverse_log_snr(grid).clamp(t_lo, t_hi)
    else:
        t = grid

    x_rep = x0.repeat(n, *([1] * (x0.ndim - 1)))
    xt, _ = path.sample(x_rep, t, generator=generator)
    x0_hat = path.convert(model(xt, t), xt, t, parameterization, "x0")
    lam = path.log_snr(t)
    squared_error = (x_rep - x0_hat).pow(2).flatten(1).sum(1)
    integrand = 0.5 * torch.exp(lam) * squared_error
    if sampling == "t":
        integrand = integrand * -path.schedule.d_log_snr(t)
    diffusion = ((hi - lo) * weight * integrand).reshape(n, batch).mean(0)

    prior = 0.5 * torch.exp(lam_lo) * x0.pow(2).flatten(1).sum(1)
    reconstruction = (0.5 * dim * (math.log(2 * math.pi) + 1 - lam_hi)).expand(batch)
    value = -(prior + reconstruction + diffusion)
    if terms:
        return value, {"prior": prior, "reconstruction": reconstruction, "diffusion": diffusion}
    return value


def _gauss_legendre(n: int, dtype, device) -> tuple[torch.Tensor, torch.Tensor]:
    """Nodes in [0, 1] and weights summing to 1."""
    import numpy as np

    nodes, weights = np.polynomial.legendre.leggauss(n)
    return (
        torch.as_tensor((nodes + 1) / 2, dtype=dtype, device=device),
        torch.as_tensor(weights / 2, dtype=dtype, device=device),
    )


@implements("D-elbo-weighting")
def elbo_weighting(loss: str, path: GaussianPath, lam: float | torch.Tensor) -> torch.Tensor:
    r"""The weighting $w(\lambda)$ by which a standard regression loss weights the ELBO.

    Kingma & Gao (2023) write a diffusion loss as
    $\mathcal L_w = \frac12 \mathbb E_{t \sim U(0,1)} \mathbb E_\varepsilon
    \big[w(\lambda_t)\,(-\tfrac{d\lambda}{dt})\,\|\varepsilon - \hat\varepsilon\|^2\big]$; the
    ELBO's diffusion term is $w \equiv 1$. At fixed $x_t$ every parameterization is affine in
    the prediction, so its squared error is $c_t^2 \|\varepsilon - \hat\varepsilon\|^2$ with
    $c_t$ read off `GaussianPath.convert` ($1$ for ``"eps"``, $e^{-\lambda/2}$ for ``"x0"``,
    $1/\sigma$ for ``"score"``, $(\alpha^2+\sigma^2)/\alpha$ for ``"v"``,
    $-\tfrac12\sigma\,d\lambda/dt$ for ``"velocity"``). The loss
    $\mathbb E_{t \sim U(0,1)}\mathbb E\|\mathrm{target} - \mathrm{prediction}\|^2$ therefore
    has

    $$
    w(\lambda) = \frac{2\, c_t^2}{-\,d\lambda/dt}\Big|_{t = \lambda^{-1}(\lambda)} ,
    $$

    e.g. $e^{-\lambda/2}$ for flow matching on the CondOT path (derivation D-elbo-weighting).

    Arguments:
        loss: one of `LOSSES`.
        path: the `GaussianPath` whose schedule maps $\lambda$ to $t$.
        lam: log-SNR values (float or tensor).
    """
    from .path import check_gaussian_path

    check_option(loss, LOSSES, "loss")
    check_gaussian_path(path)
    if not torch.is_tensor(lam):
        if isinstance(lam, bool) or not isinstance(lam, int | float | list | tuple):
            raise InputTypeError(f"lam must be a number or a tensor of log-SNRs, got {type(lam).__name__}")
        lam = torch.as_tensor(lam, dtype=torch.get_default_dtype())
    shape = lam.shape
    t = path.schedule.inverse_log_snr(lam.reshape(-1))
    # the weighting is read off the eps -> loss conversion, defined on its safe interval
    direction = path._direction("eps", loss)
    outside = (t < direction.t_min) | (t > direction.t_max)
    if bool(outside.any()):
        low, high = path.log_snr(torch.tensor([direction.t_max, direction.t_min], dtype=t.dtype))
        raise ValueError(
            f"lam must lie in [{float(low):.6g}, {float(high):.6g}] for the {loss!r} weighting on "
            f"{path.schedule!r}: outside, lam maps to a time beyond the safe interval "
            f"[{direction.t_min:.6g}, {direction.t_max:.6g}] where the conversion from 'eps' is "
            f"singular; got lam in [{float(lam.min()):.6g}, {float(lam.max()):.6g}]"
        )
    column = torch.zeros(t.shape[0], 1, dtype=t.dtype, device=t.device)
    # convert is affine in the prediction: the difference of two predictions one unit of
    # eps apart is the coefficient c_t of the loss in units of eps.
    coefficient = path.convert(column + 1, column, t, "eps", loss) - path.convert(
        column, column, t, "eps", loss
    )
    weight = 2 * coefficient.squeeze(1).pow(2) / -path.schedule.d_log_snr(t)
    return weight.reshape(shape)
