"""Masked diffusion in continuous time (MDLM, Sahoo et al. 2024; MD4, Shi et al. 2024): the
negative ELBO as a weighted cross-entropy on the masked tokens."""

from __future__ import annotations

import torch

from ..._implements import implements
from ...core.discrete import MaskPath
from ._common import Denoiser, _batch_time, _check_path, _check_x0
from ._d3pm import denoiser_probs


@implements("D-masked-elbo", "D-masked-elbo-exact")
def masked_diffusion_nelbo(
    denoiser: Denoiser,
    path: MaskPath,
    x0: torch.Tensor,
    t=None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    r"""One-sample estimate of the continuous-time negative ELBO of masked diffusion,
    shape ``(B,)`` (D-masked-elbo):

    $$
    -\log p_\theta(x_0) \le \int_0^1 \frac{-\bar\alpha_t'}{1 - \bar\alpha_t}\,
    \mathbb E_{q(x_t \mid x_0)} \sum_{\ell:\, x_t^\ell = m} -\log\tilde p_\theta(x_0^\ell \mid x_t)\,dt .
    $$

    ``t`` (``(B,)`` or scalar) defaults to $t \sim U(0, 1)$ per example; $x_t \sim q(x_t \mid x_0)$.
    For $\bar\alpha_t = 1 - t$ the weight is $1/t$. Any decreasing schedule gives the same
    value with the exact denoiser, $-\log p(x_0)$.
    """
    path = _check_path(path, mask_only=True)
    _check_x0(path, x0)
    dtype = torch.get_default_dtype()
    if t is None:
        t = torch.rand(x0.shape[0], generator=generator, dtype=dtype)
        # t = 0 has weight 0/0 (no masks); its probability is zero, but keep it finite
        t = t.clamp_min(torch.finfo(dtype).tiny)
    t = _batch_time(t, x0, dtype)
    if (t <= 0).any():
        raise ValueError(f"t must lie in (0, 1] for the masked ELBO, got {t[t <= 0].tolist()[:5]}")
    xt = path.sample(x0, t, generator=generator)
    probs = denoiser_probs(path, denoiser(xt, t), xt)
    masked = xt == path.mask_id
    log_p = probs.gather(-1, x0[..., None]).squeeze(-1).log()
    cross_entropy = torch.where(masked, -log_p, 0.0).reshape(x0.shape[0], -1).sum(-1)
    weight = -path.d_alpha_bar(t) / (1 - path.alpha_bar(t))
    return weight * cross_entropy
