r"""ReMDM (Wang et al. 2025): masked-diffusion sampling that may **remask** decoded tokens.

The reverse step from $t$ to $s < t$ of the masking path, with the remasking probability
$\sigma_t \in [0, \sigma_t^{\max}]$, $\sigma_t^{\max} = \min\{1, (1 - \bar\alpha_s)/\bar\alpha_t\}$,

$$
q_\sigma(x_s \mid x_t, x_0) =
\begin{cases}
(1 - \sigma_t)\,\delta_{x_0} + \sigma_t\,\delta_m & x_t = x_0 \text{ (visible)},\\
\dfrac{\bar\alpha_s - (1 - \sigma_t)\bar\alpha_t}{1 - \bar\alpha_t}\,\delta_{x_0}
+ \dfrac{1 - \bar\alpha_s - \sigma_t\bar\alpha_t}{1 - \bar\alpha_t}\,\delta_m & x_t = m,
\end{cases}
$$

has the masking path's marginals, $\sum_{x_t} q_\sigma(x_s \mid x_t, x_0)\,q(x_t \mid x_0)
= q(x_s \mid x_0)$ for every admissible $\sigma_t$ (D-remdm-marginals); $\sigma_t = 0$ is the
MDLM posterior. The model replaces $x_0$ by $\tilde p_\theta(x_0 \mid x_t)$ per token, as in
`reverse_probs`.
"""

from __future__ import annotations

import torch

from ..._implements import implements, plumbing
from ...core._shapes import as_time
from ...core._validate import check_finite, check_option, non_negative
from ...core.discrete import MaskPath
from ._common import (
    Denoiser,
    _batch_time,
    _check_path,
    _check_probs,
    _check_shape,
    _check_steps,
    _check_xt,
    _draw,
    _float_dtype,
    _per_token,
    _prior_tokens,
    _state_to_token,
)
from ._d3pm import denoiser_probs

REMDM_SCHEDULES = ("rescale", "cap")


@implements("D-remdm-marginals")
def remdm_sigma(path: MaskPath, s, t, *, schedule: str = "rescale", eta: float = 0.05) -> torch.Tensor:
    r"""The remasking probability $\sigma_t$ of a step from $t$ to $s < t$, shape ``(B,)`` (or
    ``()`` for scalar times), inside its admissible range $[0, \sigma_t^{\max}]$,
    $\sigma_t^{\max} = \min\{1, (1 - \bar\alpha_s)/\bar\alpha_t\}$ (1 where $\bar\alpha_t = 0$):

    * ``"rescale"``: $\sigma_t = \eta\,\sigma_t^{\max}$, $\eta \in [0, 1]$;
    * ``"cap"``: $\sigma_t = \min\{\eta, \sigma_t^{\max}\}$, $\eta \ge 0$.

    $\eta = 0$ gives MDLM's sampler (Wang et al. 2025, D-remdm-marginals)."""
    _check_path(path, mask_only=True)
    check_option(schedule, REMDM_SCHEDULES, "schedule")
    eta = non_negative(eta, "eta")
    if schedule == "rescale" and eta > 1:
        raise ValueError(f"eta of the 'rescale' schedule must lie in [0, 1], got {eta}")
    dtype = torch.get_default_dtype()
    s, t = _pair_times(s, t, dtype)
    alpha_s, alpha_t = path.alpha_bar(s), path.alpha_bar(t)
    ratio = (1 - alpha_s) / torch.where(alpha_t > 0, alpha_t, 1.0)
    sigma_max = torch.where(alpha_t > 0, ratio.clamp_max(1.0), 1.0)
    if schedule == "rescale":
        return eta * sigma_max
    return sigma_max.clamp_max(eta)


def _pair_times(s, t, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """``s`` and ``t`` as tensors of one shape with $0 \\le s < t \\le 1$."""
    like = torch.empty(0, dtype=dtype)
    s, t = as_time(s, like=like, name="s"), as_time(t, like=like, name="t")
    s, t = torch.broadcast_tensors(s, t)
    if not bool((s < t).all()):
        raise ValueError(f"a reverse step needs s < t, got s = {s.tolist()}, t = {t.tolist()}")
    return s, t


@implements("D-remdm-marginals")
def remdm_probs(
    path: MaskPath, x0_probs: torch.Tensor, xt: torch.Tensor, s, t, sigma
) -> torch.Tensor:
    r"""The ReMDM reverse step $p_\theta(x_s \mid x_t)$ per token, shape ``(*xt.shape, S)``
    (the mask is the last state): at a visible token $x_t^\ell$, $1 - \sigma_t$ on it and
    $\sigma_t$ on the mask; at a masked token,
    $\frac{\bar\alpha_s - (1 - \sigma_t)\bar\alpha_t}{1 - \bar\alpha_t}\,\tilde p_\theta(\cdot
    \mid x_t)$ on the data symbols and $\frac{1 - \bar\alpha_s - \sigma_t\bar\alpha_t}{1 -
    \bar\alpha_t}$ on the mask (D-remdm-marginals).

    With the exact per-token posterior $p(x_0^\ell \mid x_t)$ and $x_t \sim p_t$, each
    token's law at $s$ is that of the masking path, $p_s^\ell$, for every admissible
    $\sigma_t$. ``sigma`` is a number or ``(B,)`` in $[0, \sigma_t^{\max}]$ (see `remdm_sigma`);
    $\sigma_t = 0$ is `reverse_probs`.
    """
    path = _check_path(path, mask_only=True)
    _check_xt(path, xt)
    K = path.num_categories
    _check_probs(x0_probs, xt, K, "x0_probs")
    check_finite(x0_probs, "x0_probs")
    dtype = x0_probs.dtype
    s = _batch_time(s, xt, dtype, "s")
    t = _batch_time(t, xt, dtype, "t")
    if not bool((s < t).all()):
        raise ValueError(f"a reverse step needs s < t, got s = {s.tolist()[:5]}, t = {t.tolist()[:5]}")
    sigma = _batch_time(sigma, xt, dtype, "sigma")
    alpha_s, alpha_t = path.alpha_bar(s), path.alpha_bar(t)
    # admissible: the mask probability 1 - abar_s - sigma abar_t of a masked token is >= 0
    slack = 1 - alpha_s - sigma * alpha_t
    if bool((slack < -1e3 * torch.finfo(dtype).eps).any()):
        raise ValueError(
            "sigma must lie in [0, min(1, (1 - abar_s)/abar_t)] (see remdm_sigma), got "
            f"{sigma[slack < 0].tolist()[:5]}"
        )
    unmask = _per_token((alpha_s - (1 - sigma) * alpha_t) / (1 - alpha_t), xt)[..., None]
    stay = _per_token(slack.clamp_min(0) / (1 - alpha_t), xt)[..., None]
    remask = _per_token(sigma, xt)[..., None]
    masked = (xt == path.mask_id)[..., None]
    # a visible token is its own x0 (whatever x0_probs says there): keep it or remask it
    visible = torch.nn.functional.one_hot(torch.where(masked[..., 0], 0, xt), K).to(dtype)
    data = torch.where(masked, unmask * x0_probs, (1 - remask) * visible)
    mask = torch.where(masked, stay, remask)
    return torch.cat([data, mask], -1)


@plumbing(
    "the sampling loop on t_i = i/T: sigma from the bound remdm_sigma, draws from the bound "
    "remdm_probs"
)
def remdm_sample(
    denoiser: Denoiser,
    path: MaskPath,
    n: int,
    event_shape,
    steps: int,
    generator: torch.Generator | None = None,
    *,
    schedule: str = "rescale",
    eta: float = 0.05,
    dtype: torch.dtype | None = None,
) -> torch.Tensor:
    r"""ReMDM sampling from $t = 1$ (all masks) to $t = 0$ on $t_i = i/T$: each step draws
    from `remdm_probs` with $\sigma_{t_i}$ = `remdm_sigma` (``schedule``, ``eta``). A decoded
    token may be remasked and decoded again, which lets later steps correct earlier ones; the
    last step ($s = 0$) never remasks ($\sigma^{\max} = 0$), so every token is decoded.
    Returns the tokens ``(n, *event_shape)``."""
    path = _check_path(path, mask_only=True)
    steps = _check_steps(steps)
    shape = _check_shape(n, event_shape)
    dtype = _float_dtype(dtype)
    remdm_sigma(path, 0.0, 1.0, schedule=schedule, eta=eta)  # checks schedule and eta once
    xt = _prior_tokens(path, shape, generator)
    grid = torch.linspace(0.0, 1.0, steps + 1, dtype=dtype)
    for i in range(steps, 0, -1):
        t = grid[i].expand(n).clone()
        probs = denoiser_probs(path, denoiser(xt, t), xt)
        sigma = remdm_sigma(path, grid[i - 1], grid[i], schedule=schedule, eta=eta).to(dtype)
        step = remdm_probs(path, probs, xt, grid[i - 1], grid[i], sigma)
        xt = _state_to_token(path, _draw(step, generator))
    return xt
