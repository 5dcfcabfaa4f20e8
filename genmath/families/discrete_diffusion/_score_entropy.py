"""Score entropy discrete diffusion (SEDD, Lou et al. 2024): the concrete score from the
posterior and the denoising score-entropy loss."""

from __future__ import annotations

import torch

from ..._implements import implements
from ...core.discrete import DiscretePath, MaskPath
from ._common import Denoiser, _batch_time, _check_path, _check_probs, _check_x0, _check_xt


@implements("D-sedd-concrete-score")
def concrete_score(path: DiscretePath, x0_probs: torch.Tensor, xt: torch.Tensor, t) -> torch.Tensor:
    r"""The concrete score $s(x_t)_{\ell, y} = p_t(x_t^{\ell \leftarrow y}) / p_t(x_t)$ (the ratio
    for changing token $\ell$ to state $y$) from the posterior,
    $\sum_j \tilde p(x_0^\ell = j \mid x_t)\,\bar Q_t[j, y] / \bar Q_t[j, x_t^\ell]$, shape
    ``(*xt.shape, S)`` (Lou et al. 2024). Exact for the exact posterior wherever
    $\bar Q_t[j, x_t^\ell] > 0$ for every $j$: everywhere on a `UniformPath` with $t < 1$, and at
    the masked positions of a `MaskPath` — the only ratios its reverse process and the score
    entropy use. At the visible positions of a `MaskPath` the ratio is not a function of the
    posterior $p(x_0 \mid x_t)$ and is returned as NaN."""
    _check_path(path)
    _check_xt(path, xt)
    _check_probs(x0_probs, xt, path.num_categories, "x0_probs")
    t = _batch_time(t, xt, x0_probs.dtype)
    kernel = path.cumulative_kernel(t)  # (B, S, S)
    kernel = kernel.reshape(kernel.shape[0], *([1] * (xt.ndim - 1)), *kernel.shape[1:])
    K = path.num_categories
    data_rows = kernel[..., :K, :]  # (B, 1.., K, S): rows of data x0
    state = path._state(xt)
    column = data_rows.expand(*xt.shape, K, path.num_states).gather(
        -1, state[..., None, None].expand(*xt.shape, K, 1)
    )  # Q̄[j, x_t]
    weights = x0_probs / column.squeeze(-1).clamp_min(torch.finfo(x0_probs.dtype).tiny)
    weights = torch.where(column.squeeze(-1) > 0, weights, 0.0)
    score = (weights[..., None] * data_rows).sum(-2)
    if isinstance(path, MaskPath):
        score = torch.where((xt == path.mask_id)[..., None], score, torch.nan)
    return score


@implements("D-sedd-score-entropy")
def _forward_generator(path: DiscretePath, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    r"""Forward rate matrix $F_t[y, x]$ (rate from y to x) of the path: with $\bar Q_t = e^{\bar\sigma_t G}$,
    $\bar\sigma_t = -\log\bar\alpha_t$, $F_t = \bar\sigma_t' G$; shape ``(B, S, S)``."""
    S, K = path.num_states, path.num_categories
    eye = torch.eye(S, dtype=like.dtype, device=like.device)
    if isinstance(path, MaskPath):
        generator = -eye.clone()
        generator[:K, K] += 1.0
        generator[K, K] = 0.0
    else:
        generator = torch.full((S, S), 1.0 / K, dtype=like.dtype, device=like.device) - eye
    rate = -path.d_alpha_bar(t) / path.alpha_bar(t)
    return rate[:, None, None] * generator


@implements("D-sedd-score-entropy")
def score_entropy_loss(
    score_model: Denoiser,
    path: DiscretePath,
    x0: torch.Tensor,
    t=None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    r"""One-sample estimate of the denoising score-entropy loss (Lou et al. 2024), shape ``(B,)``:

    $$
    \int_0^1 \mathbb E_{q(x_t \mid x_0)} \sum_\ell \sum_{y \ne x_t^\ell} F_t[y, x_t^\ell]
    \Big(s_\theta(x_t)_{\ell y} - r_{\ell y}\log s_\theta(x_t)_{\ell y} + r_{\ell y}(\log r_{\ell y} - 1)\Big)dt,
    \quad r_{\ell y} = \frac{\bar Q_t[x_0^\ell, y]}{\bar Q_t[x_0^\ell, x_t^\ell]},
    $$

    with $F_t$ the forward rates into $x_t^\ell$. ``score_model(xt, t)`` returns the
    log-concrete-score, shape ``(*xt.shape, S)``; it is an upper bound on
    $-\log p_\theta(x_0)$ and equals $-\log p(x_0)$ with the exact score (`concrete_score`).
    ``t`` defaults to $U(0, 1)$ per example.
    """
    _check_path(path)
    _check_x0(path, x0)
    dtype = torch.get_default_dtype()
    if t is None:
        t = torch.rand(x0.shape[0], generator=generator, dtype=dtype).clamp(1e-12, 1 - 1e-12)
    t = _batch_time(t, x0, dtype)
    if (t <= 0).any() or (t >= 1).any():
        raise ValueError(f"score entropy needs t in (0, 1), got {t.tolist()[:5]}")
    xt = path.sample(x0, t, generator=generator)
    log_score = score_model(xt, t)
    S = path.num_states
    if log_score.shape != (*xt.shape, S):
        raise ValueError(
            f"score_model must return shape (*xt.shape, S) = {(*xt.shape, S)}, got {tuple(log_score.shape)}"
        )
    forward = path.forward_probs(x0, t)  # Q̄_t[x0, ·]
    state = path._state(xt)
    current = forward.gather(-1, state[..., None])
    ratio = forward / current
    rates = _forward_generator(path, t, log_score)  # (B, S, S), rates from y (row) to x (col)
    rates = rates.reshape(rates.shape[0], *([1] * (xt.ndim - 1)), S, S).expand(*xt.shape, S, S)
    into_current = rates.gather(-1, state[..., None, None].expand(*xt.shape, S, 1)).squeeze(-1)
    other = torch.nn.functional.one_hot(state, S) == 0
    bregman = log_score.exp() - ratio * log_score + torch.special.xlogy(ratio, ratio) - ratio
    terms = torch.where(other & (into_current > 0), into_current * bregman, 0.0)
    return terms.reshape(x0.shape[0], -1).sum(-1)
