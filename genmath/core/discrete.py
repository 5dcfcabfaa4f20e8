r"""Discrete probability paths on K categories: masking (absorbing) and uniform kernels.

A discrete path corrupts each token independently. With a keep-probability schedule
$\bar\alpha_t$ decreasing from $\bar\alpha_0 = 1$ (data) to $\bar\alpha_1 = 0$ (noise), the
cumulative kernel $\bar Q_t[i, j] = q(x_t = j \mid x_0 = i)$ is

* **mask** (absorbing; Austin et al. 2021, Sahoo et al. 2024): a data token stays with
  probability $\bar\alpha_t$ and becomes the mask token $m$ otherwise,
  $\bar Q_t = \bar\alpha_t I + (1 - \bar\alpha_t)\,\mathbf 1 e_m^\top$ (the mask row is $e_m^\top$);
* **uniform** (Austin et al. 2021): $\bar Q_t = \bar\alpha_t I + (1 - \bar\alpha_t)\,\mathbf 1\mathbf 1^\top / K$.

Both compose: the one-step kernel from s to t > s has the same form with
$\bar\alpha_t / \bar\alpha_s$, so $\bar Q_t = \bar Q_s Q_{s \to t}$ (D-discrete-kernels), and the
posterior is Bayes' rule,
$q(x_s \mid x_t, x_0) = \bar Q_s[x_0, x_s]\, Q_{s\to t}[x_s, x_t] / \bar Q_t[x_0, x_t]$
(D-discrete-posterior).

Tokens are integer tensors of any shape; probabilities gain a trailing dimension over the
states. ``t`` is a float, a 0-d tensor, or a ``(B,)`` tensor when tokens have shape
``(B, ...)``.
"""

from __future__ import annotations

import sympy as sp
import torch

from .._implements import implements
from ._shapes import as_time
from .schedules import _compile

__all__ = ["DiscretePath", "MaskPath", "UniformPath"]

_T = sp.Symbol("t", nonnegative=True)
_GRID_POINTS = 257


class DiscretePath:
    r"""Common machinery of the discrete paths: the schedule $\bar\alpha_t$, validation,
    kernels and the posterior. Use `MaskPath` or `UniformPath`.

    Arguments:
        num_categories: K, the number of data symbols (ids ``0 .. K-1``).
        alpha_bar: sympy expression of $\bar\alpha_t$ in ``t`` (default ``1 - t``): must
            be 1 at t = 0, 0 at t = 1 and non-increasing (checked on a grid).
        t: the symbol of ``alpha_bar`` (default: the symbol in it, if any).
    """

    num_states: int
    mask_id: int | None = None  # the absorbing token of MaskPath; None for UniformPath

    def __init__(self, num_categories: int, alpha_bar=None, t: sp.Symbol | None = None) -> None:
        if isinstance(num_categories, bool) or not isinstance(num_categories, int):
            raise ValueError(f"num_categories must be an int, got {type(num_categories).__name__}")
        if num_categories < 2:
            raise ValueError(f"num_categories must be at least 2, got {num_categories}")
        self.num_categories = num_categories
        if alpha_bar is None:
            t = _T
            alpha_bar = 1 - _T
        alpha_bar = sp.sympify(alpha_bar)
        if t is None:
            free = alpha_bar.free_symbols
            if len(free) > 1:
                raise ValueError(
                    f"alpha_bar must depend on one symbol t, got {sorted(map(str, free))}"
                )
            t = next(iter(free)) if free else _T
        extra = alpha_bar.free_symbols - {t}
        if extra:
            raise ValueError(f"alpha_bar may depend only on {t}, got {sorted(map(str, extra))}")
        self.t_symbol = t
        self.alpha_bar_expr = alpha_bar
        self.d_alpha_bar_expr = sp.diff(alpha_bar, t)
        self._alpha_bar = _compile(alpha_bar, t)
        self._d_alpha_bar = _compile(self.d_alpha_bar_expr, t)
        self._validate_schedule()

    def _validate_schedule(self) -> None:
        grid = torch.linspace(0.0, 1.0, _GRID_POINTS, dtype=torch.float64)
        values = self._alpha_bar(grid)
        if not torch.isfinite(values).all():
            raise ValueError(
                f"alpha_bar(t) must be finite on [0, 1], got {values[~torch.isfinite(values)][:3].tolist()}"
            )
        if abs(float(values[0]) - 1.0) > 1e-12 or abs(float(values[-1])) > 1e-12:
            raise ValueError(
                "alpha_bar must be 1 at t = 0 (data) and 0 at t = 1 (noise), got "
                f"alpha_bar(0) = {float(values[0]):.6g}, alpha_bar(1) = {float(values[-1]):.6g}"
            )
        rising = values[1:] > values[:-1] + 1e-12
        if rising.any():
            i = int(rising.nonzero()[0])
            raise ValueError(
                "alpha_bar must be non-increasing in t (t = 0 data, t = 1 noise); it increases "
                f"on [{float(grid[i]):.4g}, {float(grid[i + 1]):.4g}]"
            )

    # -- schedule --------------------------------------------------------------------------

    def _time(self, t, like: torch.Tensor | None = None, name: str = "t") -> torch.Tensor:
        return as_time(t, like=like, name=name)

    @implements("D-discrete-kernels")
    def alpha_bar(self, t) -> torch.Tensor:
        r"""$\bar\alpha_t$, the probability that a token is still uncorrupted at t."""
        return self._alpha_bar(self._time(t)).clamp(0.0, 1.0)

    def d_alpha_bar(self, t) -> torch.Tensor:
        r"""$d\bar\alpha_t/dt$ (from `sympy.diff`; the weight of the continuous-time loss)."""
        return self._d_alpha_bar(self._time(t))

    # -- validation ------------------------------------------------------------------------

    def _check_tokens(self, tokens: torch.Tensor, name: str, allow_mask: bool) -> None:
        if (
            not isinstance(tokens, torch.Tensor)
            or tokens.is_floating_point()
            or tokens.is_complex()
        ):
            raise ValueError(f"{name} must be an integer tensor of token ids, got {tokens!r:.80}")
        bad = (tokens < 0) | (tokens >= self.num_categories)
        expected = f"in [0, {self.num_categories})"
        if allow_mask and self.mask_id is not None:
            bad = bad & (tokens != self.mask_id)
            expected += f" or the mask id {self.mask_id}"
        if bad.any():
            raise ValueError(f"{name} ids must be {expected}, got {tokens[bad][:5].tolist()}")

    def _per_token(self, value: torch.Tensor, tokens: torch.Tensor, name: str) -> torch.Tensor:
        # a (B,) time broadcasts over a token tensor of shape (B, ...)
        if value.ndim == 0:
            return value
        if tokens.ndim == 0 or value.shape[0] != tokens.shape[0]:
            raise ValueError(
                f"{name} has shape {tuple(value.shape)} but the tokens have shape "
                f"{tuple(tokens.shape)}: a per-sample {name} needs shape (B,) with B = tokens.shape[0]"
            )
        return value.reshape(value.shape[0], *([1] * (tokens.ndim - 1)))

    def _step_ratio(self, s, t, like=None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        s = self._time(s, like, "s")
        t = self._time(t, like, "t")
        if s.shape != t.shape and s.ndim and t.ndim:
            raise ValueError(
                f"s and t must have the same shape, got {tuple(s.shape)} and {tuple(t.shape)}"
            )
        if not bool((s < t).all()):
            raise ValueError(
                f"need s < t (s is the less noisy time), got s = {s.tolist()}, t = {t.tolist()}"
            )
        ab_s, ab_t = self._alpha_bar(s).clamp(0, 1), self._alpha_bar(t).clamp(0, 1)
        # once everything is corrupted (alpha_bar_s = 0) the step is the stationary kernel
        ratio = torch.where(ab_s > 0, ab_t / torch.where(ab_s > 0, ab_s, 1.0), 0.0)
        return ab_s, ab_t, ratio.clamp(0.0, 1.0)

    # -- kernels ---------------------------------------------------------------------------

    def _kernel(self, keep: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    @implements("D-discrete-kernels")
    def cumulative_kernel(self, t) -> torch.Tensor:
        r"""$\bar Q_t$, shape ``(*t.shape, S, S)`` with ``S = num_states``; rows are
        $q(x_t \mid x_0 = i)$."""
        return self._kernel(self.alpha_bar(t))

    @implements("D-discrete-kernels")
    def step_kernel(self, s, t) -> torch.Tensor:
        r"""$Q_{s \to t}$ for $s < t$: rows $q(x_t \mid x_s = i)$, the kernel of
        `cumulative_kernel` with keep-probability $\bar\alpha_t / \bar\alpha_s$
        (D-discrete-kernels)."""
        _, _, ratio = self._step_ratio(s, t)
        return self._kernel(ratio)

    def _row(self, x0: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _column(self, xt: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _state(self, tokens: torch.Tensor) -> torch.Tensor:
        return tokens

    @implements("D-discrete-kernels")
    def forward_probs(self, x0: torch.Tensor, t) -> torch.Tensor:
        r"""$q(x_t \mid x_0)$: shape ``(*x0.shape, S)``, the row $x_0$ of $\bar Q_t$."""
        self._check_tokens(x0, "x0", allow_mask=False)
        keep = self._per_token(self.alpha_bar(t), x0, "t")
        return self._row(x0, keep)

    def sample(self, x0: torch.Tensor, t, generator: torch.Generator | None = None) -> torch.Tensor:
        r"""Draw token ids $x_t \sim q(x_t \mid x_0)$ (same shape as ``x0``)."""
        probs = self.forward_probs(x0, t)
        flat = probs.reshape(-1, probs.shape[-1])
        states = torch.multinomial(flat, 1, generator=generator).reshape(x0.shape)
        return self._token(states)

    def _token(self, states: torch.Tensor) -> torch.Tensor:
        return states

    @implements("D-discrete-posterior")
    def posterior_probs(self, xt: torch.Tensor, x0: torch.Tensor, s, t) -> torch.Tensor:
        r"""$q(x_s \mid x_t, x_0)$ for $s < t$: shape ``(*x0.shape, S)``, by Bayes' rule
        $\bar Q_s[x_0, \cdot] \odot Q_{s\to t}[\cdot, x_t] / \bar Q_t[x_0, x_t]$
        (D-discrete-posterior). Raises ``ValueError`` if $x_t$ is impossible given $x_0$."""
        self._check_tokens(x0, "x0", allow_mask=False)
        self._check_tokens(xt, "xt", allow_mask=True)
        if xt.shape != x0.shape:
            raise ValueError(
                f"xt must have the shape of x0, {tuple(x0.shape)}; got {tuple(xt.shape)}"
            )
        ab_s, _, ratio = self._step_ratio(s, t)
        prior = self._row(x0, self._per_token(ab_s, x0, "s"))
        likelihood = self._column(self._state(xt), self._per_token(ratio, x0, "t"))
        joint = prior * likelihood
        evidence = joint.sum(-1, keepdim=True)  # = Q̄_t[x0, xt] (D-discrete-posterior)
        if not bool((evidence > 0).all()):
            raise ValueError("xt is impossible given x0 under this path (q(xt | x0) = 0)")
        return joint / evidence


class MaskPath(DiscretePath):
    r"""The masking (absorbing-state) path: a data token is kept with probability
    $\bar\alpha_t$ and replaced by the mask token otherwise; the mask is never left.

    Arguments:
        num_categories: K data symbols, ids ``0 .. K-1``.
        alpha_bar: keep-probability schedule (sympy expression, default ``1 - t``).
        mask_id: the token id of the mask, default K; it must not be a data id (so
            ``mask_id >= K``). Probabilities have ``S = K + 1`` states, the last one (index
            K) being the mask whatever its id.
    """

    def __init__(
        self,
        num_categories: int,
        alpha_bar=None,
        t: sp.Symbol | None = None,
        *,
        mask_id: int | None = None,
    ) -> None:
        super().__init__(num_categories, alpha_bar, t)
        mask_id = num_categories if mask_id is None else mask_id
        if isinstance(mask_id, bool) or not isinstance(mask_id, int) or mask_id < num_categories:
            raise ValueError(
                f"mask_id must be an int >= num_categories = {num_categories} so that it "
                f"does not collide with a data symbol, got {mask_id!r}"
            )
        self.mask_id = mask_id
        self.num_states = num_categories + 1

    def __repr__(self) -> str:
        return f"MaskPath(K={self.num_categories}, mask_id={self.mask_id}, alpha_bar={self.alpha_bar_expr})"

    def _state(self, tokens):
        return torch.where(tokens == self.mask_id, self.num_categories, tokens)

    def _token(self, states):
        return torch.where(states == self.num_categories, self.mask_id, states)

    def _kernel(self, keep):
        K = self.num_categories
        eye = torch.eye(K + 1, dtype=keep.dtype, device=keep.device)
        to_mask = torch.zeros(K + 1, K + 1, dtype=keep.dtype, device=keep.device)
        to_mask[:, K] = 1.0
        k = keep[..., None, None]
        kernel = k * eye + (1 - k) * to_mask
        kernel[..., K, :] = eye[K]  # the mask is absorbing
        return kernel

    def _row(self, x0, keep):
        K = self.num_categories
        keep = keep[..., None] if keep.ndim else keep
        onehot = torch.nn.functional.one_hot(x0, K + 1).to(keep.dtype)
        mask = torch.zeros(K + 1, dtype=keep.dtype, device=keep.device)
        mask[K] = 1.0
        return keep * onehot + (1 - keep) * mask

    def _column(self, xt_state, keep):
        # q(x_t | x_s = j) as a function of j: a data x_t can only come from itself (kept);
        # a mask x_t comes from the mask (prob. 1) or from any data token (prob. 1 - keep)
        K = self.num_categories
        keep = keep[..., None] if keep.ndim else keep
        onehot = torch.nn.functional.one_hot(xt_state, K + 1).to(keep.dtype)
        is_mask = (xt_state == K)[..., None].to(keep.dtype)
        data_part = (1 - is_mask) * keep * onehot
        mask_part = is_mask * torch.cat(
            [(1 - keep) * torch.ones_like(onehot[..., :K]), torch.ones_like(onehot[..., K:])], -1
        )
        return data_part + mask_part


class UniformPath(DiscretePath):
    r"""The uniform path: a token is kept with probability $\bar\alpha_t$ and otherwise
    resampled uniformly among the K symbols (possibly itself),
    $\bar Q_t = \bar\alpha_t I + (1 - \bar\alpha_t)\mathbf 1\mathbf 1^\top/K$ (D-discrete-kernels).

    Arguments:
        num_categories: K symbols, ids ``0 .. K-1`` (there is no extra state, S = K).
        alpha_bar: keep-probability schedule (sympy expression, default ``1 - t``).
    """

    def __init__(self, num_categories: int, alpha_bar=None, t: sp.Symbol | None = None) -> None:
        super().__init__(num_categories, alpha_bar, t)
        self.num_states = num_categories

    def __repr__(self) -> str:
        return f"UniformPath(K={self.num_categories}, alpha_bar={self.alpha_bar_expr})"

    def _kernel(self, keep):
        K = self.num_categories
        eye = torch.eye(K, dtype=keep.dtype, device=keep.device)
        k = keep[..., None, None]
        return k * eye + (1 - k) / K

    def _row(self, x0, keep):
        K = self.num_categories
        keep = keep[..., None] if keep.ndim else keep
        onehot = torch.nn.functional.one_hot(x0, K).to(keep.dtype)
        return keep * onehot + (1 - keep) / K

    # the uniform kernel is symmetric: the column x_t is the row x_t
    _column = _row
