r"""Discrete diffusion: D3PM, masked diffusion (MDLM) and discrete flow matching — the ELBO and
the probability path on categorical state spaces.

**Composition.** Discrete diffusion = a discrete path (`genmath.core.discrete.MaskPath` or
`UniformPath`: keep-probability $\bar\alpha_t$, cumulative kernels $\bar Q_t$, posterior
$q(x_s \mid x_t, x_0)$, D-discrete-kernels, D-discrete-posterior) + a denoiser predicting
$\tilde p_\theta(x_0 \mid x_t)$ per token + the ELBO assembled from the core's KL
(`genmath.core.elbo.kl_divergence`) + ancestral or CTMC sampling. Nothing here re-derives a
kernel or a posterior.

Conventions: t = 0 is data, t = 1 is noise (all masks, or uniform tokens). Tokens are integer
tensors of shape ``(B, *event)``; a **denoiser** is a callable ``denoiser(xt, t)`` with ``xt``
of shape ``(B, *event)`` and ``t`` of shape ``(B,)`` returning logits of shape
``(B, *event, K)`` over the K data symbols. For the masking path the denoiser's output at
unmasked positions is replaced by the observed token ("carry-over unmasking", Sahoo et al.
2024), which is what the exact posterior does there.

* **D3PM** (Austin et al. 2021): T steps on the grid $t_i = i/T$; the x0-parameterized
  reverse model $p_\theta(x_s \mid x_t) = \sum_{x_0} q(x_s \mid x_t, x_0)\,
  \tilde p_\theta(x_0 \mid x_t)$ per token; the bound $-\log p_\theta(x_0) \le
  \sum_{i=1}^T \mathbb E\,\mathrm{KL}(q(x_{t_{i-1}} \mid x_{t_i}, x_0)\,\|\,
  p_\theta(x_{t_{i-1}} \mid x_{t_i})) + \mathrm{KL}(q(x_1 \mid x_0)\,\|\,p(x_1))$, whose
  $i = 1$ term is the reconstruction $-\log p_\theta(x_0 \mid x_{t_1})$; the auxiliary
  cross-entropy; ancestral sampling.
* **Masked diffusion** in continuous time (Sahoo et al. 2024; Shi et al. 2024): the negative
  ELBO $\int_0^1 \frac{-\bar\alpha_t'}{1 - \bar\alpha_t}\,\mathbb E_{q(x_t \mid x_0)}
  \sum_{\ell:\,x_t^\ell = m} -\log \tilde p_\theta(x_0^\ell \mid x_t)\,dt$
  (D-masked-elbo), for any schedule; with the exact denoiser it equals $-\log p(x_0)$. Its
  times come from `masked_elbo_times`: importance sampling $t = u^2$ with weight $2\sqrt t$
  by default, whose estimate has a finite variance where uniform times give an infinite one
  (D-masked-elbo-time-sampler).
* **ReMDM** (Wang et al. 2025): remasking decoded tokens with probability $\sigma_t$ while
  keeping the masking path's marginals (`remdm_probs`, `remdm_sample`, D-remdm-marginals).
* **Discrete flow matching** (Gat et al. 2024) with the mixture path
  $p_t(x \mid x_0) = \kappa_t\,\delta_{x_0} + (1 - \kappa_t)\,p_\mathrm{noise}$,
  $\kappa_t = \bar\alpha_t$ — the cumulative kernel of the path — and the CTMC rates, for
  decreasing t, $u_t(y \mid x) = \frac{-\bar\alpha_t'}{1 - \bar\alpha_t}
  [\tilde p(x_0 = y \mid x_t = x) - \delta_x(y)]$ per token (D-dfm-kolmogorov); an Euler
  sampler; the denoising score-entropy loss (Lou et al. 2024) on the concrete score.
"""

from ._d3pm import D3PM, ancestral_sample, denoiser_probs, reverse_probs
from ._flow_matching import (  # noqa: F401  (_euler_transition: D-dfm-euler names this path)
    _euler_transition,
    dfm_euler_sample,
    dfm_loss,
    dfm_rates,
)
from ._masked import TIME_SAMPLERS, masked_diffusion_nelbo, masked_elbo_times
from ._network import TokenMLP
from ._remdm import REMDM_SCHEDULES, remdm_probs, remdm_sample, remdm_sigma
from ._score_entropy import concrete_score, score_entropy_loss

__all__ = [
    "denoiser_probs",
    "reverse_probs",
    "D3PM",
    "masked_diffusion_nelbo",
    "masked_elbo_times",
    "TIME_SAMPLERS",
    "ancestral_sample",
    "remdm_sigma",
    "remdm_probs",
    "remdm_sample",
    "REMDM_SCHEDULES",
    "dfm_rates",
    "dfm_loss",
    "dfm_euler_sample",
    "concrete_score",
    "score_entropy_loss",
    "TokenMLP",
]
