r"""Masked diffusion in continuous time (MDLM, Sahoo et al. 2024; MD4, Shi et al. 2024): the
negative ELBO as a weighted cross-entropy on the masked tokens, and the times it is estimated at.

**Why a time sampler.** For $\bar\alpha_t = 1 - t$ the ELBO's weight is $1/t$. With
$t \sim U(0, 1)$ a one-sample estimate is $c/t$ when the (single) token is masked, which happens
with probability $t$: its second moment is $\int_0^1 t\,(c/t)^2\,dt = \infty$. Drawing
$t = u^{1/\beta}$ ($u \sim U(0, 1]$, density $q(t) = \beta t^{\beta - 1}$) and multiplying by
$1/q(t)$ keeps the mean and gives the finite second moment $c^2/(\beta(1 - \beta))$, least at
$\beta = 1/2$ (D-masked-elbo-time-sampler).
"""

from __future__ import annotations

import torch

from ..._implements import implements, plumbing
from ...core._validate import check_generator, check_option, in_unit_interval, positive_int
from ...core.discrete import MaskPath
from ._common import Denoiser, _batch_time, _check_path, _check_x0, _float_dtype
from ._d3pm import denoiser_probs

TIME_SAMPLERS = ("importance", "stratified_importance", "uniform", "stratified")

# the power of the importance proposal q(t) = beta t^(beta - 1): beta = 1/2 minimises the
# second moment c^2 / (beta (1 - beta)) of the one-token case (D-masked-elbo-time-sampler)
DEFAULT_POWER = 0.5


@implements("D-masked-elbo-time-sampler")
def _proposal_times(u: torch.Tensor, power: float) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Times $t = u^{1/\beta}$ with density $q(t) = \beta t^{\beta - 1}$ on $(0, 1]$ for
    $u \in (0, 1]$, and the importance weights $1/q(t) = t^{1 - \beta}/\beta$ (``power`` is
    $\beta$; $\beta = 1$ is the uniform sampler, weight 1)."""
    t = u ** (1.0 / power)
    return t, t ** (1.0 - power) / power


@plumbing(
    "draws u in (0, 1] (one shared shift for the stratified samplers) and calls the bound "
    "_proposal_times"
)
def masked_elbo_times(
    n: int,
    generator: torch.Generator | None = None,
    *,
    sampler: str = "importance",
    power: float = DEFAULT_POWER,
    dtype: torch.dtype | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Times at which to estimate the masked ELBO and their importance weights, each ``(n,)``:
    for any integrand $f$, $\mathbb E[\,w\,f(t)\,] = \int_0^1 f(t)\,dt$ (D-masked-elbo-time-sampler).

    Samplers:

    * ``"importance"`` (default): $t = u^{1/\beta}$, $u \sim U(0, 1]$ i.i.d., weight
      $w = t^{1 - \beta}/\beta$ with $\beta$ = ``power`` in $(0, 1]$. The masked ELBO's weight
      $1/t$ (for $\bar\alpha_t = 1 - t$) times $w$ has a finite second moment for $\beta < 1$.
    * ``"stratified_importance"``: the same with low-discrepancy $u_i = (i + 1 - v)/n$, one
      $v \sim U[0, 1)$ for the batch (each $u_i$ is still uniform, so the mean is unchanged; the
      batch mean has a smaller variance, but the per-example values are no longer independent).
    * ``"uniform"``: $t \sim U(0, 1]$, $w = 1$ — the plain estimator, whose variance is infinite
      on the linear schedule.
    * ``"stratified"``: stratified uniform times (MDLM's low-discrepancy sampler), $w = 1$;
      it lowers the batch variance but not the infinite variance of the stratum next to $t = 0$.
    """
    n = positive_int(n, "n")
    check_generator(generator)
    check_option(sampler, TIME_SAMPLERS, "sampler")
    power = in_unit_interval(power, "power", open_low=True)
    dtype = _float_dtype(dtype)
    if sampler.startswith("stratified"):
        shift = torch.rand((), generator=generator, dtype=dtype)
        u = (torch.arange(n, dtype=dtype) + 1 - shift) / n
    else:
        u = 1 - torch.rand(n, generator=generator, dtype=dtype)  # in (0, 1]: t = 0 never drawn
    return _proposal_times(u, power if sampler.endswith("importance") else 1.0)


@implements("D-masked-elbo", "D-masked-elbo-exact", "D-masked-elbo-time-sampler")
def masked_diffusion_nelbo(
    denoiser: Denoiser,
    path: MaskPath,
    x0: torch.Tensor,
    t=None,
    generator: torch.Generator | None = None,
    *,
    sampler: str = "importance",
) -> torch.Tensor:
    r"""One-sample estimate of the continuous-time negative ELBO of masked diffusion,
    shape ``(B,)`` (D-masked-elbo):

    $$
    -\log p_\theta(x_0) \le \int_0^1 \frac{-\bar\alpha_t'}{1 - \bar\alpha_t}\,
    \mathbb E_{q(x_t \mid x_0)} \sum_{\ell:\, x_t^\ell = m} -\log\tilde p_\theta(x_0^\ell \mid x_t)\,dt .
    $$

    A given ``t`` (``(B,)`` or scalar) gives the integrand at $t$ (times 1). Without one, the
    times and their importance weights come from `masked_elbo_times` with ``sampler``: by
    default ``"importance"``, $t = u^2$ weighted by $2\sqrt t$, whose estimate has a finite
    variance; ``"uniform"`` is the plain $t \sim U(0, 1]$, whose variance is infinite for
    $\bar\alpha_t = 1 - t$ (D-masked-elbo-time-sampler). Every sampler has the same mean.
    $x_t \sim q(x_t \mid x_0)$. For $\bar\alpha_t = 1 - t$ the weight is $1/t$. Any decreasing
    schedule gives the same value with the exact denoiser, $-\log p(x_0)$.
    """
    path = _check_path(path, mask_only=True)
    _check_x0(path, x0)
    dtype = torch.get_default_dtype()
    check_option(sampler, TIME_SAMPLERS, "sampler")
    if t is None:
        t, importance = masked_elbo_times(x0.shape[0], generator, sampler=sampler, dtype=dtype)
    else:
        importance = None
    t = _batch_time(t, x0, dtype)
    if (t <= 0).any():
        raise ValueError(f"t must lie in (0, 1] for the masked ELBO, got {t[t <= 0].tolist()[:5]}")
    xt = path.sample(x0, t, generator=generator)
    probs = denoiser_probs(path, denoiser(xt, t), xt)
    masked = xt == path.mask_id
    log_p = probs.gather(-1, x0[..., None]).squeeze(-1).log()
    cross_entropy = torch.where(masked, -log_p, 0.0).reshape(x0.shape[0], -1).sum(-1)
    weight = -path.d_alpha_bar(t) / (1 - path.alpha_bar(t))
    if importance is not None:
        weight = weight * importance
    # no masked token: an empty sum, 0, even where 1 - abar_t rounds to 0 and the weight is inf
    return torch.where(masked.reshape(x0.shape[0], -1).any(-1), weight * cross_entropy, 0.0)
