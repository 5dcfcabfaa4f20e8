"""Discrete flow matching (Gat et al. 2024): the CTMC rates of the mixture path, the posterior
cross-entropy and the Euler sampler."""

from __future__ import annotations

import torch

from ..._implements import implements, plumbing
from ...core.discrete import DiscretePath
from ._common import (
    Denoiser,
    _batch_time,
    _check_path,
    _check_probs,
    _check_shape,
    _check_steps,
    _check_x0,
    _check_xt,
    _draw,
    _float_dtype,
    _per_token,
    _prior_tokens,
    _state_to_token,
)
from ._d3pm import denoiser_probs


@implements("D-dfm-kolmogorov")
def dfm_rates(path: DiscretePath, x0_probs: torch.Tensor, xt: torch.Tensor, t) -> torch.Tensor:
    r"""CTMC rates of discrete flow matching on the mixture path $p_t = \bar\alpha_t\,
    \delta_{x_0} + (1 - \bar\alpha_t)\,p_\mathrm{noise}$, for **decreasing** t (noise to
    data), per token: $u_t(y \mid x_t) = \frac{-\bar\alpha_t'}{1 - \bar\alpha_t}
    [\tilde p(x_0 = y \mid x_t) - \delta_{x_t}(y)]$ (Gat et al. 2024, D-dfm-kolmogorov),
    shape ``(*xt.shape, S)``; rows sum to 0, the diagonal is minus the rate of leaving.

    With the exact posterior the marginals solve the Kolmogorov forward equation
    $-\partial_t p_t(y) = \sum_x p_t(x)\,u_t(y \mid x)$.
    """
    _check_path(path)
    _check_xt(path, xt)
    K, S = path.num_categories, path.num_states
    _check_probs(x0_probs, xt, K, "x0_probs")
    t = _batch_time(t, xt, x0_probs.dtype)
    if (t <= 0).any():
        raise ValueError(f"rates need t in (0, 1], got {t[t <= 0].tolist()[:5]}")
    weight = _per_token(-path.d_alpha_bar(t) / (1 - path.alpha_bar(t)), xt)[..., None]
    target = torch.nn.functional.pad(x0_probs, (0, S - K))
    current = torch.nn.functional.one_hot(path._state(xt), S).to(x0_probs.dtype)
    return weight * (target - current)


@implements("D-dfm-posterior-loss")
def dfm_loss(
    denoiser: Denoiser,
    path: DiscretePath,
    x0: torch.Tensor,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    r"""Discrete flow-matching loss (Gat et al. 2024): the cross-entropy
    $\mathbb E_{t, x_t}\sum_\ell -\log\tilde p_\theta(x_0^\ell \mid x_t)$ of the posterior that
    the rates need, $t \sim U(0, 1)$; batch mean."""
    _check_path(path)
    _check_x0(path, x0)
    t = torch.rand(x0.shape[0], generator=generator, dtype=torch.get_default_dtype())
    xt = path.sample(x0, t, generator=generator)
    probs = denoiser_probs(path, denoiser(xt, t), xt)
    return -probs.gather(-1, x0[..., None]).log().reshape(x0.shape[0], -1).sum(-1).mean()


@plumbing(
    "the sampling loop on t_i = i/T: steps h = 1/T and draws from the bound Euler transition "
    "_euler_transition (D-dfm-euler)"
)
def dfm_euler_sample(
    denoiser: Denoiser,
    path: DiscretePath,
    n: int,
    event_shape,
    steps: int,
    generator: torch.Generator | None = None,
    *,
    dtype: torch.dtype | None = None,
) -> torch.Tensor:
    r"""Euler sampler of the discrete-flow-matching CTMC from $t = 1$ to $0$ on $t_i = i/T$:
    each token jumps to $y \ne x$ with probability $h\,u_t(y \mid x)$, $h = 1/T$
    (`dfm_rates`). When the jump probabilities of a token exceed 1 (a fast schedule at the
    last step) they are rescaled to sum to 1, so the token surely jumps."""
    _check_path(path)
    steps = _check_steps(steps)
    shape = _check_shape(n, event_shape)
    dtype = _float_dtype(dtype)
    xt = _prior_tokens(path, shape, generator)
    grid = torch.linspace(0.0, 1.0, steps + 1, dtype=dtype)
    for i in range(steps, 0, -1):
        t = grid[i].expand(n).clone()
        probs = denoiser_probs(path, denoiser(xt, t), xt)
        transition = _euler_transition(path, probs, xt, t, grid[i] - grid[i - 1])
        xt = _state_to_token(path, _draw(transition, generator))
    return xt


@implements("D-dfm-euler")
def _euler_transition(path: DiscretePath, x0_probs: torch.Tensor, xt: torch.Tensor, t, h):
    r"""One Euler step of the CTMC, $q(x_{t-h} = y \mid x_t) = \delta_{x_t}(y) + h\,u_t(y \mid
    x_t)$ (`dfm_rates`), per token, shape ``(*xt.shape, S)``; where the jump probabilities of a
    token exceed 1 they are rescaled to sum to 1 and the token surely jumps (D-dfm-euler)."""
    current = torch.nn.functional.one_hot(path._state(xt), path.num_states).to(x0_probs.dtype)
    jumps = (h * dfm_rates(path, x0_probs, xt, t) * (1 - current)).clamp_min(0)
    total = jumps.sum(-1, keepdim=True)
    jumps = torch.where(total > 1, jumps / total, jumps)
    stay = (1 - jumps.sum(-1, keepdim=True)).clamp_min(0)
    return jumps + stay * current
