"""D3PM (Austin et al. 2021): the x0-parameterized reverse model, ancestral sampling and the
discrete-time bound."""

from __future__ import annotations

import torch
from torch import distributions as D
from torch import nn

from ..._implements import implements, plumbing
from ...core._validate import non_negative
from ...core.discrete import DiscretePath, MaskPath
from ...core.elbo import kl_divergence
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
    _prior_tokens,
    _state_to_token,
)

# ------------------------------------------------------------------------- reverse model


@implements("D-masked-elbo")
def denoiser_probs(path: DiscretePath, logits: torch.Tensor, xt: torch.Tensor) -> torch.Tensor:
    r"""$\tilde p_\theta(x_0 \mid x_t)$ per token from the denoiser's ``logits``
    (``(B, *event, K)``): the softmax, with the observed token carried over at unmasked
    positions of a `MaskPath` (there the exact posterior is $\delta_{x_t}$, D-discrete-posterior)."""
    _check_path(path)
    _check_xt(path, xt)
    K = path.num_categories
    _check_probs(logits, xt, K, "logits (the denoiser's output)")
    probs = torch.softmax(logits, -1)
    if isinstance(path, MaskPath):
        visible = xt != path.mask_id
        carried = torch.nn.functional.one_hot(torch.where(visible, xt, 0), K).to(probs.dtype)
        probs = torch.where(visible[..., None], carried, probs)
    return probs


@implements("D-masked-elbo")
def reverse_probs(
    path: DiscretePath, x0_probs: torch.Tensor, xt: torch.Tensor, s, t
) -> torch.Tensor:
    r"""The x0-parameterized reverse model $p_\theta(x_s \mid x_t) = \sum_{x_0}
    q(x_s \mid x_t, x_0)\,\tilde p_\theta(x_0 \mid x_t)$ per token, shape ``(*xt.shape, S)``
    over the path's S states (the mask is the last state of a `MaskPath`).

    With the exact per-token posterior $p(x_0^\ell \mid x_t)$ this is the marginal at each
    position of the exact reverse transition $q(x_s \mid x_t)$ (D-discrete-posterior).

    Arguments:
        path: the discrete path.
        x0_probs: $\tilde p_\theta(x_0 \mid x_t)$, shape ``(*xt.shape, K)`` (see `denoiser_probs`).
        xt: noisy tokens, shape ``(B, *event)``.
        s, t: times with $s < t$ (scalars or ``(B,)``).
    """
    _check_path(path)
    _check_xt(path, xt)
    K = path.num_categories
    _check_probs(x0_probs, xt, K, "x0_probs")
    candidates = torch.arange(K, device=xt.device).expand(*xt.shape, K)
    noisy = xt[..., None].expand(*xt.shape, K)
    if isinstance(path, MaskPath):
        # at a visible position only x0 = xt is possible; its posterior is the point mass
        candidates = torch.where(noisy != path.mask_id, noisy, candidates)
    dtype = x0_probs.dtype
    s = _batch_time(s, xt, dtype, "s")
    t = _batch_time(t, xt, dtype, "t")
    posterior = path.posterior_probs(noisy.contiguous(), candidates.contiguous(), s, t)
    return (posterior * x0_probs[..., None]).sum(-2)


@plumbing(
    "the sampling loop on t_i = i/T: draws from the bound reverse_probs and counts denoiser calls"
)
def ancestral_sample(
    denoiser: Denoiser,
    path: DiscretePath,
    n: int,
    event_shape,
    steps: int,
    generator: torch.Generator | None = None,
    *,
    time_independent: bool = False,
    dtype: torch.dtype | None = None,
    return_trajectory: bool = False,
):
    r"""Ancestral sampling from $t = 1$ to $t = 0$ on the grid $t_i = i/T$ with the reverse
    model `reverse_probs`: D3PM's sampler, and for a `MaskPath` the MDLM unmasking sampler
    (a masked token is revealed with probability $(\bar\alpha_s - \bar\alpha_t)/(1 - \bar\alpha_t)$,
    its value drawn from $\tilde p_\theta(x_0 \mid x_t)$).

    With ``time_independent=True`` (a denoiser that ignores t, which is exact for masked
    diffusion: $p(x_0 \mid x_t)$ depends only on the visible tokens) the denoiser is called
    again only for the samples whose tokens changed in the last step (Sahoo et al. 2024).

    Returns the tokens ``(n, *event_shape)``; with ``return_trajectory`` also the list of
    states at $t_T, \dots, t_0$ and the number of denoiser evaluations (rows).
    """
    _check_path(path)
    steps = _check_steps(steps)
    shape = _check_shape(n, event_shape)
    dtype = _float_dtype(dtype)
    xt = _prior_tokens(path, shape, generator)
    grid = torch.linspace(0.0, 1.0, steps + 1, dtype=dtype)
    trajectory = [xt.clone()]
    cached: torch.Tensor | None = None
    changed = torch.ones(n, dtype=torch.bool)
    evaluations = 0
    for i in range(steps, 0, -1):
        t = grid[i].expand(n).clone()
        if cached is None or not time_independent:
            logits = denoiser(xt, t)
            evaluations += n
            cached = denoiser_probs(path, logits, xt)
        elif changed.any():
            rows = changed.nonzero().squeeze(-1)
            logits = denoiser(xt[rows], t[rows])
            evaluations += len(rows)
            cached = cached.clone()
            cached[rows] = denoiser_probs(path, logits, xt[rows])
        probs = reverse_probs(path, cached, xt, grid[i - 1], grid[i])
        new = _state_to_token(path, _draw(probs, generator))
        changed = (new != xt).reshape(n, -1).any(-1)
        xt = new
        trajectory.append(xt.clone())
    if return_trajectory:
        return xt, trajectory, evaluations
    return xt


class D3PM(nn.Module):
    r"""Discrete denoising diffusion (Austin et al. 2021) with T steps on $t_i = i/T$ of a
    `MaskPath` (absorbing) or `UniformPath`, x0-parameterized.

    Arguments:
        denoiser: ``denoiser(xt, t) -> logits (B, *event, K)`` (a module or a callable).
        path: the discrete path (its schedule $\bar\alpha_t$ gives the per-step kernels).
        steps: T.
        aux_weight: $\lambda$ of the hybrid loss $L_\mathrm{vb} + \lambda\,L_\mathrm{aux}$.
    """

    def __init__(self, denoiser: Denoiser, path: DiscretePath, steps: int, aux_weight: float = 0.0):
        super().__init__()
        self.path = _check_path(path)
        self.steps = _check_steps(steps)
        self.aux_weight = non_negative(aux_weight, "aux_weight")
        self.denoiser = denoiser

    @plumbing("the grid t_i = i/T")
    def times(self, dtype: torch.dtype | None = None) -> torch.Tensor:
        """The grid $t_0 = 0 < t_1 < \\dots < t_T = 1$."""
        return torch.linspace(0.0, 1.0, self.steps + 1, dtype=_float_dtype(dtype))

    def x0_probs(self, xt: torch.Tensor, t) -> torch.Tensor:
        r"""$\tilde p_\theta(x_0 \mid x_t)$, shape ``(*xt.shape, K)``."""
        return denoiser_probs(self.path, self.denoiser(xt, t), xt)

    @plumbing("indexes the grid and calls the bound module-level reverse_probs")
    def reverse_probs(self, xt: torch.Tensor, i: torch.Tensor | int) -> torch.Tensor:
        r"""$p_\theta(x_{t_{i-1}} \mid x_{t_i})$ per token for step index ``i`` in 1..T (int or ``(B,)``)."""
        grid = self.times()
        i = torch.as_tensor(i).expand(xt.shape[0])
        if (i < 1).any() or (i > self.steps).any():
            raise ValueError(f"step index must lie in [1, {self.steps}], got {i.tolist()[:5]}")
        t = grid[i]
        return reverse_probs(self.path, self.x0_probs(xt, t), xt, grid[i - 1], t)

    @implements("D-d3pm-hybrid-loss")
    def prior_kl(self, x0: torch.Tensor) -> torch.Tensor:
        r"""$\mathrm{KL}(q(x_1 \mid x_0)\,\|\,p(x_1))$, shape ``(B,)``; zero when $\bar\alpha_1 = 0$."""
        _check_x0(self.path, x0)
        dtype = torch.get_default_dtype()
        q = self.path.forward_probs(x0, torch.tensor(1.0, dtype=dtype))
        if isinstance(self.path, MaskPath):
            stationary = torch.zeros(self.path.num_states, dtype=dtype)
            stationary[-1] = 1.0
        else:
            stationary = torch.full(
                (self.path.num_states,), 1.0 / self.path.num_states, dtype=dtype
            )
        return kl_divergence(D.Categorical(probs=q), D.Categorical(probs=stationary.expand_as(q)))

    @implements("D-masked-elbo", "D-d3pm-hybrid-loss")
    def step_kl(self, x0: torch.Tensor, i, generator: torch.Generator | None = None):
        r"""One-sample estimate of $\mathbb E_{q(x_{t_i} \mid x_0)}\mathrm{KL}(q(x_{t_{i-1}}
        \mid x_{t_i}, x_0)\,\|\,p_\theta(x_{t_{i-1}} \mid x_{t_i}))$, shape ``(B,)``, and the
        auxiliary cross-entropy $-\log \tilde p_\theta(x_0 \mid x_{t_i})$ summed over tokens
        (``(B,)``). For $i = 1$ the KL is the reconstruction term $-\log p_\theta(x_0 \mid x_{t_1})$."""
        _check_x0(self.path, x0)
        grid = self.times()
        i = torch.as_tensor(i).expand(x0.shape[0])
        t, s = grid[i], grid[i - 1]
        xt = self.path.sample(x0, t, generator=generator)
        x0_probs = self.x0_probs(xt, t)
        model = reverse_probs(self.path, x0_probs, xt, s, t)
        target = self.path.posterior_probs(xt, x0, s, t)
        kl = kl_divergence(D.Categorical(probs=target), D.Categorical(probs=model))
        picked = x0_probs.gather(-1, x0[..., None]).squeeze(-1)
        cross_entropy = -picked.log().reshape(x0.shape[0], -1).sum(-1)
        return kl, cross_entropy

    @implements("D-d3pm-hybrid-loss")
    def negative_elbo(
        self, x0: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        r"""Unbiased estimate of $-\mathrm{ELBO}(x_0) \ge -\log p_\theta(x_0)$, shape ``(B,)``:
        the prior KL plus one sample of every step's KL term."""
        total = self.prior_kl(x0)
        for i in range(1, self.steps + 1):
            total = total + self.step_kl(x0, i, generator)[0]
        return total

    @implements("D-d3pm-hybrid-loss")
    def loss(self, x0: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        r"""The hybrid training loss (batch mean): $T\,\mathrm{KL}_i + \mathrm{KL}_\mathrm{prior}
        + \lambda\,\mathrm{CE}_i$ at one uniformly drawn step $i$ per example — an unbiased
        estimate of $-\mathrm{ELBO} + \lambda\,\mathbb E_i\,\mathrm{CE}_i$."""
        _check_x0(self.path, x0)
        i = torch.randint(1, self.steps + 1, (x0.shape[0],), generator=generator)
        kl, cross_entropy = self.step_kl(x0, i, generator)
        vb = self.steps * kl + self.prior_kl(x0)
        return (vb + self.aux_weight * cross_entropy).mean()

    def sample(self, n: int, event_shape, generator: torch.Generator | None = None, **kwargs):
        """Ancestral samples ``(n, *event_shape)`` (see `ancestral_sample`)."""
        return ancestral_sample(
            self.denoiser, self.path, n, event_shape, self.steps, generator, **kwargs
        )
