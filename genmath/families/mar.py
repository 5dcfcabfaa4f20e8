r"""Autoregression with continuous tokens: MAR's per-token diffusion head (Li et al. 2024) and
Diffusion Forcing (Chen et al. 2024), with an exact linear-Gaussian sequence to test them on.

**Composition.** A sequence $x = (x^1, \dots, x^L)$ of continuous tokens $x^k \in \mathbb R^d$,
shape ``(B, L, d)``, and a Gaussian path (`genmath.GaussianPath`) applied **per token**:

* **MAR** = an AR context model $z = f(x_{\text{known}})$ over a random subset of known
  tokens + a small diffusion head $\hat\varepsilon(x^k_t, t, z^k)$ per unknown token, trained
  with the path's ε-loss (`mar_loss`) and sampled by the core's probability-flow ODE
  (`genmath.sample_ode` on the head converted by `GaussianPath.convert`), in a random order
  with a cosine masking schedule (`mar_sample`).
* **Diffusion Forcing** = one denoiser $\hat\varepsilon(x_t, t)$ of the whole sequence with an
  **independent noise level per token**, $t \in [0, 1]^L$, trained with the ε-loss at i.i.d.
  levels (`diffusion_forcing_loss`) and sampled along a schedule matrix of levels in which
  earlier tokens are cleaner (`diffusion_forcing_schedule`, `diffusion_forcing_sample`: the
  probability-flow ODE of each token's level, integrated by `genmath.sample_ode`).

**Exact case.** `GaussianSequence` (an AR(1) sequence, $x^{k+1} = a x^k + b + \nu\,\eta^k$)
is jointly Gaussian, so the conditional of a token given any context is Gaussian in closed form
(D-mar-gaussian-sequence), and so is the exact ε-prediction of a sequence noised at any
per-token levels (D-mar-eps-loss). With them, `mar_loss` and `diffusion_forcing_loss` take
their minimal values and the samplers draw the sequence's law.

Time runs as everywhere in genmath: $t = 0$ data, $t = 1$ noise.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from .._implements import implements, plumbing
from ..core._shapes import as_time
from ..core._validate import (
    InputTypeError,
    check_callable,
    check_finite,
    check_generator,
    check_int,
    check_real,
    positive,
    positive_int,
)
from ..core.dynamics import sample_ode
from ..core.path import check_gaussian_path

__all__ = [
    "GaussianSequence",
    "mar_mask",
    "mar_loss",
    "mar_sample",
    "diffusion_forcing_loss",
    "diffusion_forcing_schedule",
    "diffusion_forcing_sample",
]

ContextModel = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Head = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
SequenceDenoiser = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


# ----------------------------------------------------------------------------- checks


def _check_sequence(x, name: str = "x0") -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise InputTypeError(f"{name} must be a torch.Tensor of shape (B, L, d), got {type(x).__name__}")
    if not x.is_floating_point():
        raise ValueError(f"{name} must be floating point, got dtype {x.dtype}")
    if x.ndim != 3 or 0 in x.shape:
        raise ValueError(f"{name} must have shape (B, L, d) with B, L, d >= 1, got {tuple(x.shape)}")
    return x


def _token_times(t, x: torch.Tensor, name: str = "t") -> torch.Tensor:
    """``t`` as ``(B, L)`` noise levels in [0, 1] (a scalar or ``(B,)`` is repeated over tokens)."""
    B, L = x.shape[:2]
    if isinstance(t, torch.Tensor) and t.ndim == 2:
        if t.shape != (B, L):
            raise ValueError(f"{name} must have shape (B, L) = {(B, L)}, got {tuple(t.shape)}")
        return as_time(t.reshape(-1), like=x, name=name).reshape(B, L)
    t = as_time(t, like=x, name=name)
    if t.ndim == 1 and t.shape[0] != B:
        raise ValueError(f"{name} must be a scalar, (B,) or (B, L) = {(B, L)}, got {tuple(t.shape)}")
    return (t[:, None] if t.ndim == 1 else t).expand(B, L).clone()


def _check_known(known, x: torch.Tensor) -> torch.Tensor:
    if not isinstance(known, torch.Tensor) or known.dtype != torch.bool:
        raise InputTypeError(f"known must be a bool tensor of shape (B, L), got {known!r:.60}")
    if known.shape != x.shape[:2]:
        raise ValueError(f"known must have shape (B, L) = {tuple(x.shape[:2])}, got {tuple(known.shape)}")
    return known


def _check_output(out, expected: tuple, name: str) -> torch.Tensor:
    if not isinstance(out, torch.Tensor) or out.shape != expected:
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ValueError(f"{name} must return shape {expected}, got {got}")
    return out


def _levels(path, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """$\\alpha$ and $\\sigma$ of the path at per-token levels ``t`` of any shape."""
    flat = t.reshape(-1)
    return path.alpha(flat).reshape(t.shape), path.sigma(flat).reshape(t.shape)


# ---------------------------------------------------------------- the exact sequence


@implements("D-mar-eps-loss")
def _gaussian_eps(mean, cov, xt, alpha, sigma) -> torch.Tensor:
    r"""$\mathbb E[\varepsilon \mid x_t]$ for $x \sim \mathcal N(\mu, \Sigma)$ over the token
    axis (coordinates independent), each token noised at its own level:
    $x_t = A x + S\varepsilon$, $A = \mathrm{diag}(\alpha)$, $S = \mathrm{diag}(\sigma)$, so
    $\mathbb E[\varepsilon \mid x_t] = S\,(A\Sigma A + S^2)^{-1}(x_t - A\mu)$
    (D-mar-eps-loss). Shapes: ``mean``, ``xt`` ``(B, L, d)``; ``cov`` ``(B, L, L)``;
    ``alpha``, ``sigma`` ``(B, L)``."""
    joint = alpha[:, :, None] * cov * alpha[:, None, :] + torch.diag_embed(sigma**2)
    centred = xt - alpha[..., None] * mean
    return sigma[..., None] * torch.linalg.solve(joint, centred)


class GaussianSequence:
    r"""An AR(1) sequence of ``length`` tokens in $\mathbb R^d$ (coordinates independent):
    $x^1 \sim \mathcal N(m_1, s_1^2 I)$, $x^{k+1} = a\,x^k + b + \nu\,\eta^k$, $\eta^k \sim
    \mathcal N(0, I)$ — jointly Gaussian, with mean $\mu_{k+1} = a\mu_k + b$, variances
    $v_{k+1} = a^2 v_k + \nu^2$ and covariances $\Sigma_{jk} = a^{k - j} v_j$ for $j \le k$
    (D-mar-gaussian-sequence). Exact conditionals (`conditional`), the exact MAR context and
    head (`context`, `head`) and the exact Diffusion-Forcing denoiser (`eps`)."""

    def __init__(
        self,
        length: int,
        dim: int = 1,
        coefficient: float = 0.8,
        offset: float = 0.0,
        noise_std: float = 0.6,
        initial_mean: float = 0.0,
        initial_std: float = 1.0,
    ):
        self.length = positive_int(length, "length")
        self.dim = positive_int(dim, "dim")
        self.coefficient = check_real(coefficient, "coefficient")
        self.offset = check_real(offset, "offset")
        self.noise_std = positive(noise_std, "noise_std")
        self.initial_mean = check_real(initial_mean, "initial_mean")
        self.initial_std = positive(initial_std, "initial_std")

    def __repr__(self) -> str:
        return (
            f"GaussianSequence(length={self.length}, dim={self.dim}, a={self.coefficient}, "
            f"b={self.offset}, nu={self.noise_std})"
        )

    @implements("D-mar-gaussian-sequence")
    def mean(self, dtype: torch.dtype | None = None) -> torch.Tensor:
        r"""$\mu_k$, shape ``(L,)``."""
        out = [self.initial_mean]
        for _ in range(self.length - 1):
            out.append(self.coefficient * out[-1] + self.offset)
        return torch.tensor(out, dtype=dtype or torch.get_default_dtype())

    @implements("D-mar-gaussian-sequence")
    def covariance(self, dtype: torch.dtype | None = None) -> torch.Tensor:
        r"""$\Sigma$ over tokens, shape ``(L, L)`` (the same for every coordinate)."""
        variances = [self.initial_std**2]
        for _ in range(self.length - 1):
            variances.append(self.coefficient**2 * variances[-1] + self.noise_std**2)
        dtype = dtype or torch.get_default_dtype()
        v = torch.tensor(variances, dtype=dtype)
        k = torch.arange(self.length)
        lag = (k[None, :] - k[:, None]).abs().to(dtype)
        return torch.as_tensor(self.coefficient, dtype=dtype) ** lag * v[torch.minimum(k[:, None], k[None, :])]

    @plumbing("draws the AR(1) recursion whose moments mean/covariance are bound")
    def sample(self, n: int, generator: torch.Generator | None = None, dtype=None) -> torch.Tensor:
        """Draws ``(n, L, d)``."""
        n = positive_int(n, "n")
        check_generator(generator)
        dtype = dtype or torch.get_default_dtype()
        noise = torch.randn(n, self.length, self.dim, generator=generator, dtype=dtype)
        tokens = [self.initial_mean + self.initial_std * noise[:, 0]]
        for k in range(1, self.length):
            tokens.append(self.coefficient * tokens[-1] + self.offset + self.noise_std * noise[:, k])
        return torch.stack(tokens, 1)

    @implements("D-mar-gaussian-sequence")
    def conditional(self, x: torch.Tensor, known: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        r"""Mean ``(B, L, d)`` and variance ``(B, L)`` of each token given the ``known`` ones
        (``(B, L)`` bool; the values at unknown positions of ``x`` are ignored): with the
        precision $\Lambda = \Sigma^{-1}$, the unknown block $U$ given the known $K$ is
        $\mathcal N(\mu_U - \Lambda_{UU}^{-1}\Lambda_{UK}(x_K - \mu_K),\ \Lambda_{UU}^{-1})$
        (D-mar-gaussian-sequence); a known token has its value and variance 0."""
        _check_sequence(x, "x")
        self._check_shape(x)
        known = _check_known(known, x)
        # the unknown values are ignored, but a NaN there is a caller's bug, not a placeholder
        check_finite(x, "x", "pass a finite placeholder (e.g. 0) at the unknown tokens")
        mu = self.mean(x.dtype)[None, :, None]
        precision = torch.linalg.inv(self.covariance(x.dtype))
        unknown = (~known).to(x.dtype)
        # Lambda_UU padded with the identity on the known tokens: its inverse is Lambda_UU^-1 there
        block = precision * unknown[:, :, None] * unknown[:, None, :] + torch.diag_embed(1 - unknown)
        inverse = torch.linalg.inv(block)
        offset = torch.where(known[..., None], x - mu, 0.0)
        mean = mu - inverse @ ((precision @ offset) * unknown[..., None])
        mean = torch.where(known[..., None], x, mean)
        return mean, torch.diagonal(inverse, dim1=-2, dim2=-1) * unknown

    @plumbing("packs the bound conditional mean and variance as the context z")
    def context(self, x: torch.Tensor, known: torch.Tensor) -> torch.Tensor:
        r"""The exact MAR context $z^k$ = (conditional mean, conditional variance) of each
        token given the known ones, shape ``(B, L, d + 1)`` — a sufficient statistic for the
        exact head."""
        mean, var = self.conditional(x, known)
        return torch.cat([mean, var[..., None]], -1)

    def head(self, path) -> Head:
        r"""The exact MAR head for ``path``: ``head(xt, t, z) -> eps``, ``xt`` ``(N, d)``,
        ``t`` ``(N,)``, ``z`` ``(N, d + 1)`` from `context`: $\mathbb E[\varepsilon \mid x_t]$
        for the token $\sim \mathcal N(m, vI)$, $\sigma_t (x_t - \alpha_t m)/(\alpha_t^2 v +
        \sigma_t^2)$ (D-mar-eps-loss with one token)."""
        path = check_gaussian_path(path)

        def exact_head(xt: torch.Tensor, t: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
            t = as_time(t, like=xt).expand(xt.shape[0])
            alpha, sigma = path.alpha(t)[:, None], path.sigma(t)[:, None]
            return _gaussian_eps(z[:, None, :-1], z[:, None, -1:], xt[:, None], alpha, sigma)[:, 0]

        return exact_head

    @plumbing("a closure: the bound _gaussian_eps at the bound moments and the path's levels")
    def eps(self, path) -> SequenceDenoiser:
        r"""The exact Diffusion-Forcing denoiser for ``path``: ``eps(xt, t)`` with ``xt``
        ``(B, L, d)`` and per-token levels ``t`` ``(B, L)``: $\mathbb E[\varepsilon \mid x_t]$
        given the whole noisy sequence (D-mar-eps-loss)."""
        path = check_gaussian_path(path)

        def exact_eps(xt: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            self._check_shape(_check_sequence(xt, "xt"), "xt")
            alpha, sigma = _levels(path, _token_times(t, xt))
            B = xt.shape[0]
            mean = self.mean(xt.dtype)[None, :, None].expand(B, -1, 1)
            cov = self.covariance(xt.dtype).expand(B, -1, -1)
            return _gaussian_eps(mean, cov, xt, alpha, sigma)

        return exact_eps

    def _check_shape(self, x: torch.Tensor, name: str = "x") -> None:
        if x.shape[1:] != (self.length, self.dim):
            raise ValueError(
                f"{name} must have shape (B, {self.length}, {self.dim}) for this sequence, got {tuple(x.shape)}"
            )


# ------------------------------------------------------------------------------ MAR


@plumbing("draws a random order and a cosine mask ratio per example; counts are bookkeeping")
def mar_mask(n: int, length: int, generator: torch.Generator | None = None) -> torch.Tensor:
    r"""MAR's training mask, ``(n, L)`` bool, True = known: a random order per example and
    $\lceil L\cos(\pi r/2)\rceil$ unknown tokens, $r \sim U(0, 1)$ (at least one unknown)."""
    n, length = positive_int(n, "n"), positive_int(length, "length")
    check_generator(generator)
    ratio = torch.cos(math.pi / 2 * torch.rand(n, generator=generator, dtype=torch.float64))
    unknown = (length * ratio).ceil().clamp(1, length).long()
    order = torch.rand(n, length, generator=generator).argsort(-1)
    rank = order.argsort(-1)  # position of each token in its example's order
    return rank >= unknown[:, None]


@implements("D-mar-eps-loss")
def mar_loss(
    context: ContextModel,
    head: Head,
    path,
    x0: torch.Tensor,
    generator: torch.Generator | None = None,
    *,
    known: torch.Tensor | None = None,
    t=None,
) -> torch.Tensor:
    r"""MAR's loss (Li et al. 2024), shape ``(B,)``: for each unknown token $k$ the ε-loss of
    the diffusion head conditioned on the AR context, averaged over the unknown tokens,

    $$
    \frac{1}{|U|}\sum_{k \in U}\big\|\varepsilon^k - \hat\varepsilon(\alpha_t x_0^k +
    \sigma_t\varepsilon^k,\ t^k,\ z^k)\big\|^2, \qquad z = \text{context}(x_0, \text{known}),
    $$

    with $x_t$ drawn by the path (`GaussianPath.sample`). ``known`` defaults to `mar_mask`,
    ``t`` (scalar, ``(B,)`` or ``(B, L)``) to i.i.d. $U(0, 1)$ levels per token. The context
    model sees ``x0`` with the unknown tokens zeroed. Minimised by the exact conditional head
    $\mathbb E[\varepsilon^k \mid x^k_t, x_{\text{known}}]$; with it the value is
    $\frac1{|U|}\sum_{k\in U} d\,\alpha_t^2 v_k/(\alpha_t^2 v_k + \sigma_t^2)$ for Gaussian
    conditionals of variance $v_k$."""
    context, head = check_callable(context, "context"), check_callable(head, "head")
    path = check_gaussian_path(path)
    x0 = _check_sequence(x0)
    check_generator(generator)
    B, L, d = x0.shape
    known = mar_mask(B, L, generator) if known is None else _check_known(known, x0)
    if bool(known.all(-1).any()):
        raise ValueError("known must leave at least one unknown token per example")
    if t is None:
        t = torch.rand(B, L, generator=generator, dtype=x0.dtype)
    t = _token_times(t, x0)
    z = context(torch.where(known[..., None], x0, 0.0), known)
    if not isinstance(z, torch.Tensor) or z.shape[:2] != (B, L) or z.ndim != 3:
        raise ValueError(f"context must return shape (B, L, c) = ({B}, {L}, c), got {getattr(z, 'shape', z)}")
    rows = (~known).nonzero(as_tuple=True)
    xt, eps = path.sample(x0[rows], t[rows], generator=generator)
    predicted = _check_output(head(xt, t[rows], z[rows]), xt.shape, "head")
    per_token = ((eps - predicted) ** 2).sum(-1)
    total = torch.zeros(B, dtype=x0.dtype).index_add(0, rows[0], per_token)
    return total / (~known).sum(-1).to(x0.dtype)


def _reveal_counts(length: int, steps: int) -> list[int]:
    """Unknown tokens left after each iteration: $\\lfloor L\\cos(\\pi (i + 1)/(2N))\\rfloor$,
    at least one fewer each time, 0 at the end."""
    left, out = length, []
    for i in range(steps):
        target = 0 if i == steps - 1 else math.floor(length * math.cos(math.pi / 2 * (i + 1) / steps))
        left = max(0, min(left - 1, target))
        out.append(left)
        if left == 0:
            break
    return out


@plumbing(
    "the any-order loop: a random order, the cosine schedule's counts, and per-token draws by "
    "the core's sample_ode on the head converted by the path"
)
def mar_sample(
    context: ContextModel,
    head: Head,
    path,
    n: int,
    length: int,
    dim: int,
    steps: int,
    generator: torch.Generator | None = None,
    *,
    ode_steps: int = 32,
    method: str = "dpm++2m",
    dtype: torch.dtype | None = None,
) -> torch.Tensor:
    r"""Any-order masked generation (Li et al. 2024), ``(n, L, d)``: a random order per sample;
    at iteration $i$ of ``steps`` the next tokens in the order are revealed until
    $\lfloor L\cos(\pi(i + 1)/(2N))\rfloor$ stay unknown (at least one per iteration). Each
    revealed token is drawn from noise by the probability-flow ODE of the head at its context,
    `genmath.sample_ode` (``method``, ``ode_steps`` on the log-SNR grid). Tokens revealed in
    the same iteration are drawn independently given the context, so the law is exact (with
    exact heads) only when each iteration reveals one token, ``steps = L``."""
    context, head = check_callable(context, "context"), check_callable(head, "head")
    path = check_gaussian_path(path)
    n, length, dim = positive_int(n, "n"), positive_int(length, "length"), positive_int(dim, "dim")
    steps, ode_steps = positive_int(steps, "steps"), positive_int(ode_steps, "ode_steps")
    check_generator(generator)
    dtype = dtype or torch.get_default_dtype()
    order = torch.rand(n, length, generator=generator).argsort(-1)
    x = torch.zeros(n, length, dim, dtype=dtype)
    known = torch.zeros(n, length, dtype=torch.bool)
    left = length
    for remaining in _reveal_counts(length, steps):
        z = context(x, known.clone())
        reveal = order[:, length - left : length - remaining]  # (n, r): the next in each order
        rows = torch.arange(n)[:, None].expand_as(reveal).reshape(-1)
        cols = reveal.reshape(-1)
        z_rows = z[rows, cols]

        def field(xt, t, z_rows=z_rows):
            return head(xt, t.expand(xt.shape[0]), z_rows)

        noise = torch.randn(len(rows), dim, generator=generator, dtype=dtype)
        drawn = sample_ode(
            field, noise, path=path, parameterization="eps", method=method, steps=ode_steps,
            grid="log_snr",
        ).x
        x = x.index_put((rows, cols), drawn)
        known = known.index_put((rows, cols), torch.ones(len(rows), dtype=torch.bool))
        left = remaining
    return x


# ------------------------------------------------------------------ Diffusion Forcing


@implements("D-mar-eps-loss")
def diffusion_forcing_loss(
    denoiser: SequenceDenoiser,
    path,
    x0: torch.Tensor,
    t=None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    r"""Diffusion Forcing's loss (Chen et al. 2024), shape ``(B,)``: each token noised at its
    own level, $x_t^k = \alpha_{t^k}x_0^k + \sigma_{t^k}\varepsilon^k$ (`GaussianPath.sample`
    per token), and the ε-loss of the sequence denoiser averaged over tokens,
    $\frac1L\sum_k\|\varepsilon^k - \hat\varepsilon(x_t, t)^k\|^2$. ``t`` defaults to i.i.d.
    $U(0, 1)$ levels, shape ``(B, L)``. Minimised by $\mathbb E[\varepsilon \mid x_t]$; for a
    Gaussian sequence its value is $\frac dL\,\mathrm{tr}(I - S C^{-1} S)$,
    $C = A\Sigma A + S^2$ (D-mar-eps-loss)."""
    denoiser = check_callable(denoiser, "denoiser")
    path = check_gaussian_path(path)
    x0 = _check_sequence(x0)
    check_generator(generator)
    B, L, d = x0.shape
    if t is None:
        t = torch.rand(B, L, generator=generator, dtype=x0.dtype)
    t = _token_times(t, x0)
    xt, eps = path.sample(x0.reshape(B * L, d), t.reshape(-1), generator=generator)
    xt, eps = xt.reshape(B, L, d), eps.reshape(B, L, d)
    predicted = _check_output(denoiser(xt, t), xt.shape, "denoiser")
    return ((eps - predicted) ** 2).sum(-1).mean(-1)


@plumbing("the schedule matrix: clipped integer offsets, a bookkeeping table of levels")
def diffusion_forcing_schedule(length: int, steps: int, lag: int | None = None, dtype=None) -> torch.Tensor:
    r"""Noise levels ``(M + 1, L)``, row $m$ = the levels of the $L$ tokens after $m$ of
    $M = \text{steps} + (L - 1)\,\text{lag}$ iterations: $t^k_m = \mathrm{clip}(1 - (m -
    k\,\text{lag})/\text{steps}, 0, 1)$. ``lag = 0`` is full-sequence diffusion (all tokens at
    one level); ``lag = steps`` (the default) is autoregressive (a token starts when the previous
    one is clean); in between, the pyramid: earlier tokens are always cleaner."""
    length, steps = positive_int(length, "length"), positive_int(steps, "steps")
    lag = steps if lag is None else check_int(lag, "lag", 0)
    total = steps + (length - 1) * lag
    m = torch.arange(total + 1, dtype=dtype or torch.get_default_dtype())[:, None]
    k = torch.arange(length)[None, :]
    return (1 - (m - k * lag) / steps).clamp(0.0, 1.0)


@plumbing(
    "per iteration of the schedule matrix: the token levels as linear functions of a local time, "
    "the path's converted velocity of each token times its level's rate, integrated by the "
    "core's sample_ode"
)
def diffusion_forcing_sample(
    denoiser: SequenceDenoiser,
    path,
    n: int,
    length: int,
    dim: int,
    steps: int,
    generator: torch.Generator | None = None,
    *,
    lag: int | None = None,
    substeps: int = 4,
    dtype: torch.dtype | None = None,
) -> torch.Tensor:
    r"""Diffusion Forcing sampling, ``(n, L, d)``: from noise, along the rows of
    `diffusion_forcing_schedule` (mapped into the path's safe interval). Between two rows each
    token's level moves linearly, $t^k(\tau)$, and the state follows the probability-flow ODE of
    per-token levels, $\dot x^k = \dot t^k\,v^k(x, t)$, where $v^k$ is the path's velocity of
    token $k$ converted from the denoiser's ε (`GaussianPath.convert`); it keeps the marginals
    of the per-token noising exactly when the denoiser is exact. Each row is integrated by
    `genmath.sample_ode` (RK4, ``substeps`` steps)."""
    denoiser = check_callable(denoiser, "denoiser")
    path = check_gaussian_path(path)
    n, length, dim = positive_int(n, "n"), positive_int(length, "length"), positive_int(dim, "dim")
    substeps = positive_int(substeps, "substeps")
    check_generator(generator)
    dtype = dtype or torch.get_default_dtype()
    low, high = path.schedule.safe_interval
    levels = low + (high - low) * diffusion_forcing_schedule(length, steps, lag, dtype)
    x = torch.randn(n, length, dim, generator=generator, dtype=dtype)
    local = torch.linspace(1.0, 0.0, substeps + 1, dtype=dtype)
    for start, end in zip(levels[:-1], levels[1:], strict=True):
        rate = start - end  # dt^k/dtau over the row, tau from 1 to 0

        def field(state, tau, start=start, end=end, rate=rate):
            t = (end + tau * rate).expand(n, length)
            eps = _check_output(denoiser(state, t), state.shape, "denoiser")
            flat = state.reshape(n * length, dim)
            velocity = path.convert(eps.reshape(n * length, dim), flat, t.reshape(-1), "eps", "velocity")
            return velocity.reshape(n, length, dim) * rate[None, :, None]

        x = sample_ode(field, x, method="rk4", grid=local).x
    return x
