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
  (D-masked-elbo), for any schedule; with the exact denoiser it equals $-\log p(x_0)$.
* **Discrete flow matching** (Gat et al. 2024) with the mixture path
  $p_t(x \mid x_0) = \kappa_t\,\delta_{x_0} + (1 - \kappa_t)\,p_\mathrm{noise}$,
  $\kappa_t = \bar\alpha_t$ — the cumulative kernel of the path — and the CTMC rates, for
  decreasing t, $u_t(y \mid x) = \frac{-\bar\alpha_t'}{1 - \bar\alpha_t}
  [\tilde p(x_0 = y \mid x_t = x) - \delta_x(y)]$ per token (D-dfm-kolmogorov); an Euler
  sampler; the denoising score-entropy loss (Lou et al. 2024) on the concrete score.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import distributions as D
from torch import nn

from .._implements import implements, plumbing
from ..core._shapes import as_time
from ..core.discrete import DiscretePath, MaskPath
from ..core.elbo import kl_divergence

__all__ = [
    "denoiser_probs",
    "reverse_probs",
    "D3PM",
    "masked_diffusion_nelbo",
    "ancestral_sample",
    "dfm_rates",
    "dfm_loss",
    "dfm_euler_sample",
    "concrete_score",
    "score_entropy_loss",
    "TokenMLP",
]

Denoiser = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


# ----------------------------------------------------------------------------------- checks


def _check_path(path, mask_only: bool = False) -> DiscretePath:
    expected = "a genmath.core.discrete.MaskPath" if mask_only else "a MaskPath or UniformPath"
    if not isinstance(path, DiscretePath) or (mask_only and not isinstance(path, MaskPath)):
        raise ValueError(f"path must be {expected}, got {type(path).__name__}")
    return path


def _check_steps(steps) -> int:
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive int, got {steps!r}")
    return steps


def _check_x0(path: DiscretePath, x0: torch.Tensor) -> torch.Tensor:
    if not isinstance(x0, torch.Tensor) or x0.ndim < 1:
        raise ValueError(f"x0 must be an integer tensor of shape (B, *event), got {x0!r:.80}")
    path._check_tokens(x0, "x0", allow_mask=False)
    return x0


def _check_xt(path: DiscretePath, xt: torch.Tensor) -> torch.Tensor:
    if not isinstance(xt, torch.Tensor) or xt.ndim < 1:
        raise ValueError(f"xt must be an integer tensor of shape (B, *event), got {xt!r:.80}")
    path._check_tokens(xt, "xt", allow_mask=True)
    return xt


def _batch_time(t, tokens: torch.Tensor, dtype: torch.dtype, name: str = "t") -> torch.Tensor:
    """``t`` as a ``(B,)`` tensor in ``dtype`` (a scalar is repeated over the batch)."""
    # validate in the target dtype: a Python float must not pass through a float32 default
    t = as_time(t, like=torch.empty(0, dtype=dtype, device=tokens.device), name=name)
    if t.ndim == 0:
        return t.expand(tokens.shape[0]).clone()
    if t.shape[0] != tokens.shape[0]:
        raise ValueError(
            f"{name} must be a scalar or have shape (B,) = ({tokens.shape[0]},), got {tuple(t.shape)}"
        )
    return t


def _per_token(value: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    return value.reshape(value.shape[0], *([1] * (tokens.ndim - 1)))


def _float_dtype(dtype: torch.dtype | None) -> torch.dtype:
    return torch.get_default_dtype() if dtype is None else dtype


# ------------------------------------------------------------------------- reverse model


@implements("D-masked-elbo")
def denoiser_probs(path: DiscretePath, logits: torch.Tensor, xt: torch.Tensor) -> torch.Tensor:
    r"""$\tilde p_\theta(x_0 \mid x_t)$ per token from the denoiser's ``logits``
    (``(B, *event, K)``): the softmax, with the observed token carried over at unmasked
    positions of a `MaskPath` (there the exact posterior is $\delta_{x_t}$, D-discrete-posterior)."""
    _check_path(path)
    _check_xt(path, xt)
    K = path.num_categories
    if logits.shape != (*xt.shape, K):
        raise ValueError(
            f"denoiser logits must have shape (*xt.shape, K) = {(*xt.shape, K)}, "
            f"got {tuple(logits.shape)}"
        )
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
    if x0_probs.shape != (*xt.shape, K):
        raise ValueError(
            f"x0_probs must have shape (*xt.shape, K) = {(*xt.shape, K)}, got {tuple(x0_probs.shape)}"
        )
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


def _state_to_token(path: DiscretePath, states: torch.Tensor) -> torch.Tensor:
    return path._token(states)


def _draw(probs: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    flat = probs.reshape(-1, probs.shape[-1]).clamp_min(0)
    return torch.multinomial(flat, 1, generator=generator).reshape(probs.shape[:-1])


def _prior_tokens(path: DiscretePath, shape, generator, device=None) -> torch.Tensor:
    if isinstance(path, MaskPath):
        return torch.full(shape, path.mask_id, dtype=torch.long, device=device)
    return torch.randint(0, path.num_categories, shape, generator=generator, device=device)


def _check_shape(n, event_shape) -> tuple[int, ...]:
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive int, got {n!r}")
    event_shape = (event_shape,) if isinstance(event_shape, int) else tuple(event_shape)
    if not event_shape or any(not isinstance(d, int) or d < 1 for d in event_shape):
        raise ValueError(f"event_shape must be positive ints, got {event_shape!r}")
    return (n, *event_shape)


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
        if not aux_weight >= 0:
            raise ValueError(f"aux_weight must be >= 0, got {aux_weight!r}")
        self.aux_weight = float(aux_weight)
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


# ---------------------------------------------------------------------- masked diffusion


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


# ---------------------------------------------------------------- discrete flow matching


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
    if x0_probs.shape != (*xt.shape, K):
        raise ValueError(
            f"x0_probs must have shape (*xt.shape, K) = {(*xt.shape, K)}, got {tuple(x0_probs.shape)}"
        )
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


# --------------------------------------------------------------------------- small network


class TokenMLP(nn.Module):
    r"""A small MLP denoiser on token sequences: one-hot tokens (S states) of a length-L
    sequence, optionally the time, to logits ``(B, L, K)``. ``time_conditioned=False`` gives
    the time-independent denoiser of masked diffusion (enables caching in `ancestral_sample`).
    """

    def __init__(
        self,
        length: int,
        num_states: int,
        num_categories: int,
        hidden: int = 256,
        time_conditioned: bool = True,
        mask_id: int | None = None,
    ):
        super().__init__()
        self.length, self.num_states, self.num_categories = length, num_states, num_categories
        self.time_conditioned = time_conditioned
        self.mask_id = mask_id
        inputs = length * num_states + int(time_conditioned)
        self.net = nn.Sequential(
            nn.Linear(inputs, hidden),
            nn.SiLU(),
            nn.Linear(hidden, hidden),
            nn.SiLU(),
            nn.Linear(hidden, length * num_categories),
        )

    @plumbing("network architecture: one-hot tokens (and the time) through an MLP")
    def forward(self, xt: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        states = (
            xt if self.mask_id is None else torch.where(xt == self.mask_id, self.num_states - 1, xt)
        )
        dtype = self.net[0].weight.dtype
        features = torch.nn.functional.one_hot(states, self.num_states).to(dtype).flatten(1)
        if self.time_conditioned:
            features = torch.cat([features, t.to(dtype).reshape(-1, 1)], -1)
        return self.net(features).reshape(xt.shape[0], self.length, self.num_categories)
