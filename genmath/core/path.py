r"""Gaussian probability paths and the one table of parameterization conversions.

A Gaussian path with schedule $(\alpha_t, \sigma_t)$ (see `genmath.schedules`) is
$x_t = \alpha_t x_0 + \sigma_t \varepsilon$, $\varepsilon \sim \mathcal N(0, I)$, t = 0 data,
t = 1 noise. Its five parameterizations are linear in $(x_0, \varepsilon)$ given $x_t$:

| name | quantity | in terms of $(x_0, \varepsilon)$ |
| --- | --- | --- |
| ``"x0"`` | $\mathbb E[x_0 \mid x_t]$ | $x_0$ |
| ``"eps"`` | $\mathbb E[\varepsilon \mid x_t]$ | $\varepsilon$ |
| ``"score"`` | $\nabla \log p_t(x_t)$ | $-\varepsilon / \sigma_t$ |
| ``"velocity"`` | $\mathbb E[\dot x_t \mid x_t]$ | $\dot\alpha_t x_0 + \dot\sigma_t \varepsilon$ |
| ``"v"`` | Salimans–Ho $v$ | $\alpha_t \varepsilon - \sigma_t x_0$ |

(derivation D-parameterizations). Because each is linear and conditional expectations are
linear, one 2×2 solve converts any of them into any other.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import NamedTuple

import torch

from .._implements import implements
from .._lazy import lazy_import
from ._shapes import as_time, check_batch, expand_time
from .schedules import Schedule

sp = lazy_import("sympy")  # the conversion table is solved on first use

__all__ = ["GaussianPath", "PARAMETERIZATIONS", "gaussian_posterior_coefficients"]

PARAMETERIZATIONS = ("x0", "eps", "score", "velocity", "v")


class GaussianPath:
    r"""The Gaussian path $x_t = \alpha_t x_0 + \sigma_t\varepsilon$ of a `Schedule`.

    Arguments:
        schedule: a `genmath.schedules.Schedule` (``CondOT()``, ``VP()``, ...).

    ``t`` is a float, a 0-d tensor or a ``(B,)`` tensor in [0, 1]; with data ``x`` of shape
    ``(B, *event)`` a per-sample ``t`` broadcasts over the event dimensions. Results are in
    the dtype and device of ``x``.
    """

    def __init__(self, schedule: Schedule) -> None:
        if not isinstance(schedule, Schedule):
            raise ValueError(
                "GaussianPath needs a genmath.schedules.Schedule (CondOT(), VP(), ...), "
                f"got {type(schedule).__name__}"
            )
        self.schedule = schedule
        self._directions: dict[tuple[str, str], _Direction] = {}
        # alpha, sigma and their derivatives as Python numbers where the schedule makes them
        # constant (CondOT's derivatives, VE's alpha): a number multiplies a tensor in one
        # operation, where the compiled constant would first be broadcast to a tensor
        t_symbol = schedule.t_symbol
        self._terms = tuple(
            _polynomial(expr, t_symbol) if expr.is_polynomial(t_symbol) else fn
            for expr, fn in (
                (schedule.alpha_expr, schedule._alpha),
                (schedule.sigma_expr, schedule._sigma),
                (schedule.d_alpha_expr, schedule._d_alpha),
                (schedule.d_sigma_expr, schedule._d_sigma),
            )
        )

    def __repr__(self) -> str:
        return f"GaussianPath({self.schedule!r})"

    def alpha(self, t) -> torch.Tensor:
        r"""$\alpha_t$ (shape of ``t``)."""
        return self.schedule.alpha(t)

    def sigma(self, t) -> torch.Tensor:
        r"""$\sigma_t$ (shape of ``t``)."""
        return self.schedule.sigma(t)

    def d_alpha(self, t) -> torch.Tensor:
        r"""$\dot\alpha_t$ (shape of ``t``)."""
        return self.schedule.d_alpha(t)

    def d_sigma(self, t) -> torch.Tensor:
        r"""$\dot\sigma_t$ (shape of ``t``)."""
        return self.schedule.d_sigma(t)

    def log_snr(self, t) -> torch.Tensor:
        r"""$\lambda_t = \log(\alpha_t^2/\sigma_t^2)$ (shape of ``t``)."""
        return self.schedule.log_snr(t)

    # -- sampling and the conditional path -------------------------------------------------

    def _broadcast_time(self, t, x: torch.Tensor) -> torch.Tensor:
        return expand_time(as_time(t, like=x), x)

    @implements("D-parameterizations")
    def sample(
        self,
        x0: torch.Tensor,
        t,
        generator: torch.Generator | None = None,
        *,
        eps: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        r"""Draw $x_t = \alpha_t x_0 + \sigma_t\varepsilon$; returns ``(xt, eps)``.

        ``eps`` pairs ``x0`` with given noise (a coupling, e.g. minibatch OT or reflow) instead
        of a fresh $\varepsilon \sim \mathcal N(0, I)$."""
        check_batch(x0, "x0")
        tt = self._broadcast_time(t, x0)
        if eps is None:
            eps = torch.randn(x0.shape, generator=generator, dtype=x0.dtype, device=x0.device)
        else:
            _same_shape(eps, x0, "eps", "x0")
        return self._combine(0, 1, x0, eps, tt), eps

    @implements("D-parameterizations")
    def conditional_velocity(self, x0: torch.Tensor, eps: torch.Tensor, t) -> torch.Tensor:
        r"""$\frac{d}{dt}x_t = \dot\alpha_t x_0 + \dot\sigma_t\varepsilon$, the flow-matching
        target for the pair $(x_0, \varepsilon)$."""
        check_batch(x0, "x0")
        _same_shape(eps, x0, "eps", "x0")
        tt = self._broadcast_time(t, x0)
        return self._combine(2, 3, x0, eps, tt)

    def _sample_and_velocity(
        self, x0: torch.Tensor, eps: torch.Tensor, tt: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(x_t, conditional velocity)`` of `sample` and `conditional_velocity` for inputs
        a caller has validated, with ``tt`` already broadcast against ``x0`` (a training loss
        validates its time once, not once per term)."""
        return self._combine(0, 1, x0, eps, tt), self._combine(2, 3, x0, eps, tt)

    def _combine(self, i: int, j: int, x0: torch.Tensor, eps: torch.Tensor, tt) -> torch.Tensor:
        """``c_i(t) x0 + c_j(t) eps`` for two of (alpha, sigma, d_alpha, d_sigma)."""
        a, b = self._terms[i], self._terms[j]
        a = a if isinstance(a, float) else a(tt)
        b = b if isinstance(b, float) else b(tt)
        if isinstance(a, float) and isinstance(b, float):
            return torch.add(x0 * a, eps, alpha=b)
        if isinstance(b, float):
            return torch.add(a * x0, eps, alpha=b)
        if isinstance(a, float):
            return torch.addcmul(x0 * a, b, eps)
        return torch.addcmul(a * x0, b, eps)

    # -- the posterior between two times ---------------------------------------------------

    @implements("D-gaussian-path-posterior")
    def posterior_coefficients(self, s, t, like: torch.Tensor | None = None):
        r"""Coefficients of $q(x_s \mid x_t, x_0)$ for $s < t$ (derivation
        D-gaussian-path-posterior): ``(c_x0, c_xt, variance, d_xt, d_eps)`` with

        $$
        \mathbb E[x_s \mid x_t, x_0] = c_{x_0} x_0 + c_{x_t} x_t
        = d_{x_t} x_t + d_\varepsilon \varepsilon, \qquad
        \operatorname{Var}[x_s \mid x_t, x_0] = \tilde\sigma^2_{s|t},
        $$

        where $\varepsilon = (x_t - \alpha_t x_0)/\sigma_t$. Shapes are those of ``s``/``t``
        broadcast; the dtype/device of ``like`` (default: of the times). See
        `gaussian_posterior_coefficients` for the formula.
        """
        s = as_time(s, like=like, name="s")
        t = as_time(t, like=like if like is not None else s, name="t")
        if bool((s >= t).any()):
            raise ValueError(
                "the posterior q(x_s | x_t, x_0) needs s < t (s nearer the data), got "
                f"s = {s.tolist()} and t = {t.tolist()}"
            )
        sch = self.schedule
        return gaussian_posterior_coefficients(
            sch.alpha(s), sch.sigma(s), sch.alpha(t), sch.sigma(t)
        )

    @implements("D-gaussian-path-posterior")
    def posterior(
        self, x0: torch.Tensor, xt: torch.Tensor, s, t
    ) -> tuple[torch.Tensor, torch.Tensor]:
        r"""``(mean, variance)`` of $q(x_s \mid x_t, x_0)$, $s < t$: the Gaussian-path posterior
        that DDPM's reverse kernel, DDIM($\eta$) and the discrete ELBO are built on
        (D-gaussian-path-posterior). ``mean`` has the shape of ``x0``; ``variance`` broadcasts
        against it."""
        check_batch(x0, "x0")
        _same_shape(xt, x0, "xt", "x0")
        c_x0, c_xt, variance, _, _ = self.posterior_coefficients(s, t, like=x0)
        c_x0, c_xt, variance = (expand_time(c, x0) for c in (c_x0, c_xt, variance))
        return c_x0 * x0 + c_xt * xt, variance

    # -- forward SDE with the path's marginals -------------------------------------------

    def drift_coefficient(self, t) -> torch.Tensor:
        r"""$f(t) = \dot\alpha_t / \alpha_t$ (D-forward-sde)."""
        return self.schedule.drift_coefficient(t)

    @implements("D-forward-sde")
    def drift(self, x: torch.Tensor, t) -> torch.Tensor:
        r"""Drift $f(t)\,x$ of the forward SDE $dx = f(t)x\,dt + g(t)\,dW$ whose marginals
        given $x_0$ are those of the path, $\mathcal N(\alpha_t x_0, \sigma_t^2 I)$
        (D-forward-sde)."""
        check_batch(x, "x")
        return self.schedule._drift_coefficient(self._broadcast_time(t, x)) * x

    @implements("D-forward-sde")
    def diffusion(self, t) -> torch.Tensor:
        r"""$g(t) = \sqrt{\tfrac{d}{dt}\sigma_t^2 - 2 f(t)\sigma_t^2}$ (shape of ``t``;
        D-forward-sde). Like $f$, singular where $\alpha_t = 0$ (CondOT at t = 1 gives
        ``inf``)."""
        g2 = self.schedule.diffusion_squared(t)
        # a strictly decreasing log-SNR makes g^2 = -sigma^2 dlambda/dt >= 0: clamp round-off,
        # but let a pole stay a pole (2t/(t - 1) reads -inf at t = 1 through the zero's sign)
        return torch.where(torch.isfinite(g2), g2.clamp_min(0.0), g2.abs()).sqrt()

    # -- conversions -----------------------------------------------------------------------

    def _direction(self, src: str, dst: str) -> _Direction:
        key = (src, dst)
        if key not in self._directions:
            sch = self.schedule
            coefficients, apply = _conversion_coefficients(sch, src, dst)
            # a direction is singular at an end when its coefficients blow up there (beyond
            # 1/min_scale, the boundary rule's own threshold)
            c_xt, c_pred = coefficients(torch.tensor([0.0, 1.0], dtype=torch.float64))
            size = torch.maximum(c_xt.abs(), c_pred.abs())
            blown = ~torch.isfinite(size) | (size > 1.0 / sch.min_scale)
            t_lo, t_hi = sch.safe_interval
            self._directions[key] = _Direction(
                coefficients, apply, t_lo if blown[0] else 0.0, t_hi if blown[1] else 1.0
            )
        return self._directions[key]

    @implements("D-parameterizations")
    def convert(self, pred: torch.Tensor, xt: torch.Tensor, t, src: str, dst: str) -> torch.Tensor:
        r"""Convert a prediction ``pred`` in parameterization ``src`` to ``dst`` at ``(xt, t)``.

        ``src`` and ``dst`` are among ``PARAMETERIZATIONS`` = ``("x0", "eps", "score",
        "velocity", "v")``; all 20 directions go through one 2×2 solve
        (D-parameterizations): each parameterization is $(a x_0 + b\varepsilon)/s$ with
        $x_t = \alpha_t x_0 + \sigma_t\varepsilon$, so
        $\mathrm{dst} = c_{x}(t)\,x_t + c_{p}(t)\,\mathrm{pred}$. The solve is done once per
        direction and schedule in sympy (common factors cancelled, so ``eps → score`` does not
        divide by $\alpha_t$), and $c_x, c_p$ are compiled to torch.

        **Boundary rule.** A direction whose coefficients blow up at t = 0 (it divides by
        $\sigma_t$, e.g. ``x0 → score``, ``x0 → eps``) or at t = 1 (it divides by
        $\alpha_t$, e.g. ``eps → x0``, ``score → x0``) is singular there and is only defined
        on the schedule's `safe_interval`; a ``t`` outside it raises ``ValueError``.
        Directions that stay finite (``v → x0``, ``v → eps``, CondOT's ``velocity → x0``)
        accept all of [0, 1]. ``src == dst`` returns ``pred`` unchanged.
        """
        for label, name in (("src", src), ("dst", dst)):
            if name not in PARAMETERIZATIONS:
                raise ValueError(
                    f"unknown {label} parameterization {name!r}; expected one of {PARAMETERIZATIONS}"
                )
        check_batch(xt, "xt")
        _same_shape(pred, xt, "pred", "xt")
        if src == dst:
            as_time(t, like=xt)
            return pred
        direction = self._direction(src, dst)
        t, inside = _fast_time(t, xt, direction.t_min, direction.t_max)
        if not inside:
            end = 0 if bool((t < direction.t_min).any()) else 1
            raise ValueError(
                f"converting {src!r} to {dst!r} is singular at t = {end} for {self.schedule!r}: "
                f"t must lie in its safe interval [{direction.t_min:.6g}, {direction.t_max:.6g}], "
                f"got t in [{float(t.min()):.6g}, {float(t.max()):.6g}]"
            )
        return direction.apply(xt, pred, expand_time(t, xt))


def _posterior_expressions():
    r"""The posterior's coefficients as sympy expressions of $(\alpha_s, \sigma_s, \alpha_t,
    \sigma_t)$ and of $r = e^{\lambda_t - \lambda_s} = \alpha_t^2\sigma_s^2/(\alpha_s^2
    \sigma_t^2)$, $\bar r = 1 - r$ (kept as symbols so the code evaluates $\bar r$ by
    ``expm1``: it is a small difference of nearly equal numbers when $s \approx t$). The
    derivation D-gaussian-path-posterior proves these equal Bayes' rule."""
    alpha_s, sigma_s, alpha_t, sigma_t, r, r_bar = sp.symbols(
        "alpha_s sigma_s alpha_t sigma_t r r_bar", positive=True
    )
    coefficients = (
        alpha_s * r_bar,  # c_x0
        r * alpha_s / alpha_t,  # c_xt
        sigma_s**2 * r_bar,  # variance
        alpha_s / alpha_t,  # d_xt
        -alpha_s * sigma_t * r_bar / alpha_t,  # d_eps
    )
    return (alpha_s, sigma_s, alpha_t, sigma_t, r, r_bar), coefficients


@functools.cache
def _compiled_posterior():
    symbols, coefficients = _posterior_expressions()
    return sp.lambdify(symbols, coefficients, modules=[{"sqrt": torch.sqrt}, "math"])


@implements("D-gaussian-path-posterior")
def gaussian_posterior_coefficients(alpha_s, sigma_s, alpha_t, sigma_t):
    r"""$q(x_s \mid x_t, x_0)$ of any Gaussian path from its scales at the two times, $s < t$:
    ``(c_x0, c_xt, variance, d_xt, d_eps)`` with $r = e^{\lambda_t - \lambda_s}
    = \alpha_t^2\sigma_s^2/(\alpha_s^2\sigma_t^2) \in [0, 1)$,

    $$
    c_{x_0} = \alpha_s(1 - r),\quad c_{x_t} = r\,\frac{\alpha_s}{\alpha_t},\quad
    \tilde\sigma^2_{s|t} = \sigma_s^2(1 - r),\quad d_{x_t} = \frac{\alpha_s}{\alpha_t},\quad
    d_\varepsilon = -\frac{\alpha_s\sigma_t}{\alpha_t}(1 - r)
    $$

    (D-gaussian-path-posterior; DDPM's $\tilde\mu_t, \tilde\beta_t$ are the case
    $\alpha_s^2 = \bar\alpha_{t-1}$, $\alpha_t^2 = \bar\alpha_t$, D-ddpm-posterior). Generated
    from the sympy expressions the derivation verifies; $1 - r$ is computed as
    $-\operatorname{expm1}(\lambda_t - \lambda_s)$, exact where $s \approx t$, and $s$ at
    the data ($\sigma_s = 0$, $\lambda_s = \infty$) gives $r = 0$. Arguments are tensors
    (or numbers) that broadcast together; $\alpha_t > 0$ is required.
    """
    alpha_s, sigma_s, alpha_t, sigma_t = (
        torch.as_tensor(v) for v in (alpha_s, sigma_s, alpha_t, sigma_t)
    )
    # lambda_t - lambda_s = 2 log(alpha_t sigma_s / (alpha_s sigma_t)), -inf when sigma_s = 0
    gap = 2 * (
        torch.log(alpha_t) + torch.log(sigma_s) - torch.log(alpha_s) - torch.log(sigma_t)
    )
    r, r_bar = torch.exp(gap), -torch.expm1(gap)
    return _compiled_posterior()(alpha_s, sigma_s, alpha_t, sigma_t, r, r_bar)


def check_parameterization(name: str) -> str:
    """``name`` if it is one of `PARAMETERIZATIONS`, else a ValueError saying which are known."""
    if name not in PARAMETERIZATIONS:
        raise ValueError(f"parameterization must be one of {PARAMETERIZATIONS}, got {name!r}")
    return name


def check_gaussian_path(path) -> GaussianPath:
    """``path`` if it is a `GaussianPath`, else a ValueError naming what was given."""
    if not isinstance(path, GaussianPath):
        raise ValueError(
            f"path must be a genmath.GaussianPath (e.g. GaussianPath(CondOT())), "
            f"got {type(path).__name__}"
        )
    return path


class _Direction(NamedTuple):
    coefficients: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
    apply: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]  # (xt, pred, t)
    t_min: float  # the boundary rule: 0 or the safe interval's t_lo
    t_max: float  # 1 or the safe interval's t_hi


def _row(name: str, alpha, sigma, d_alpha, d_sigma):
    """A parameterization as ``(a, b, scale)``: it equals ``(a x0 + b eps) / scale``. The score
    keeps its ``1/sigma`` in ``scale`` so that converting *from* a score never divides by it."""
    one, zero = sp.Integer(1), sp.Integer(0)
    return {
        "x0": (one, zero, one),
        "eps": (zero, one, one),
        "score": (zero, -one, sigma),
        "velocity": (d_alpha, d_sigma, one),
        "v": (-sigma, alpha, one),
    }[name]


def _conversion_coefficients(schedule: Schedule, src: str, dst: str):
    """``(c_xt, c_pred)`` as functions of t, with ``dst = c_xt xt + c_pred pred``, from the
    2×2 solve $[x_t, s_{src}\\,pred] = M [x_0, \varepsilon]$,
    $M = [[\alpha, \\sigma], [a_{src}, b_{src}]]$, followed by the ``dst`` row
    (D-parameterizations).

    Evaluated in torch from the schedule's compiled $\alpha, \\sigma, \\dot\alpha, \\dot\\sigma$
    rather than compiled as one expression: sympy's rewriting of the combined expression loses
    the ``expm1`` forms that keep VP accurate near t = 0. Whether ``dst`` is parallel to
    ``src`` (``eps ↔ score``) is decided symbolically, so such a direction is a pure rescaling
    and stays defined where the solve is singular (``eps → score`` at $\alpha = 0$)."""
    symbols = sp.symbols("alpha sigma d_alpha d_sigma")
    a_s, b_s, s_s = _row(src, *symbols)
    a_d, b_d, s_d = _row(dst, *symbols)
    cross = sp.expand(a_d * b_s - b_d * a_s)
    if cross == 0:
        ratio = b_d / b_s if b_s != 0 else a_d / a_s
        c_xt_expr, c_pred_expr = sp.Integer(0), s_s * ratio / s_d
    else:
        determinant = (symbols[0] * b_s - symbols[1] * a_s) * s_d
        c_xt_expr = cross / determinant
        c_pred_expr = s_s * (b_d * symbols[0] - a_d * symbols[1]) / determinant
    definitions = (
        schedule.alpha_expr,
        schedule.sigma_expr,
        schedule.d_alpha_expr,
        schedule.d_sigma_expr,
    )
    # constants (CondOT's derivatives, VE's alpha) go in symbolically: fewer tensor ops
    constants = {
        sym: expr for sym, expr in zip(symbols, definitions, strict=True) if not expr.free_symbols
    }
    c_xt_expr, c_pred_expr = c_xt_expr.subs(constants), c_pred_expr.subs(constants)
    uses = set().union(c_xt_expr.free_symbols, c_pred_expr.free_symbols)
    fns = {
        symbols[0]: schedule._alpha,
        symbols[1]: schedule._sigma,
        symbols[2]: schedule._d_alpha,
        symbols[3]: schedule._d_sigma,
    }
    needed = [sym for sym in symbols if sym in uses]
    raw = sp.lambdify(needed, (c_xt_expr, c_pred_expr), cse=True)

    def coefficients(t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        c_xt, c_pred = raw(*[fns[sym](t) for sym in needed])
        # a constant coefficient (0 for eps -> score) comes back as a number
        if not isinstance(c_xt, torch.Tensor):
            c_xt = torch.full_like(t, c_xt)
        if not isinstance(c_pred, torch.Tensor):
            c_pred = torch.full_like(t, c_pred)
        return c_xt, c_pred

    if all(expr.is_polynomial(schedule.t_symbol) for expr in definitions):
        in_t = dict(zip(symbols, definitions, strict=True))
        apply = _rational_apply(c_xt_expr.subs(in_t), c_pred_expr.subs(in_t), schedule.t_symbol)
    else:

        def apply(xt: torch.Tensor, pred: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            c_xt, c_pred = coefficients(t)
            return torch.addcmul(c_xt * xt, c_pred, pred)

    return coefficients, apply


def _rational_apply(c_xt_expr, c_pred_expr, t_symbol):
    """``(xt, pred, t) -> c_xt xt + c_pred pred`` for coefficients that are rational in t.

    A polynomial schedule (CondOT) makes both coefficients rational functions of t, which
    sympy puts over one denominator exactly: ``dst = (n_x xt + n_p pred) / d``. CondOT's
    ``x0 -> velocity`` becomes ``(xt - pred) / t``: two tensor operations instead of forming
    alpha, sigma and two coefficient tensors, and no less accurate (one rounding fewer)."""
    c_xt_num, c_xt_den = sp.fraction(sp.cancel(sp.together(c_xt_expr)))
    c_pred_num, c_pred_den = sp.fraction(sp.cancel(sp.together(c_pred_expr)))
    den = sp.lcm(c_xt_den, c_pred_den)
    num_xt = sp.expand(sp.cancel(c_xt_num * den / c_xt_den))
    num_pred = sp.expand(sp.cancel(c_pred_num * den / c_pred_den))
    den = sp.expand(den)
    if num_xt.is_number and num_xt < 0:  # (-xt + t pred) / (t - 1) -> (xt - t pred) / (1 - t)
        num_xt, num_pred, den = -num_xt, -num_pred, -den
    # a pred term -q(t) is added as q(t) with value -1: one tensor operation fewer
    sign = -1.0 if num_pred.could_extract_minus_sign() else 1.0
    num_pred = sign * num_pred

    f_xt, f_pred, f_den = (_polynomial(e, t_symbol) for e in (num_xt, num_pred, den))

    def apply(xt: torch.Tensor, pred: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if isinstance(f_xt, float):
            first = xt if f_xt == 1.0 else f_xt * xt
        else:
            first = f_xt(t) * xt
        if isinstance(f_pred, float):
            out = torch.add(first, pred, alpha=sign * f_pred)
        else:
            out = torch.addcmul(first, f_pred(t), pred, value=sign)
        if isinstance(f_den, float):
            return out if f_den == 1.0 else out / f_den
        return out / f_den(t)

    return apply


def _polynomial(expr, t_symbol):
    """A polynomial in t as a Python number (constant) or a function evaluating it by Horner's
    rule with torch functions: ``torch.rsub(t, 1.0)`` for ``1 - t`` costs half of what the
    operator form costs on a small tensor (the Python-scalar operators take a slow path)."""
    if expr.is_number:
        return float(expr)
    lead, *rest = (float(c) for c in sp.Poly(expr, t_symbol).all_coeffs())

    def evaluate(t: torch.Tensor) -> torch.Tensor:
        if not rest[:-1] and lead == -1.0:  # c - t
            return torch.rsub(t, rest[-1])
        acc = t if lead == 1.0 else torch.mul(t, lead)
        for c in rest[:-1]:
            acc = torch.mul(torch.add(acc, c) if c else acc, t)
        return torch.add(acc, rest[-1]) if rest[-1] else acc

    return evaluate


def _fast_time(
    t, x: torch.Tensor, t_min: float = 0.0, t_max: float = 1.0
) -> tuple[torch.Tensor, bool]:
    """``(t, inside)``: ``t`` in x's dtype/device and whether it lies in
    [t_min, t_max] ⊆ [0, 1]. The common case costs one reduction; otherwise `as_time` raises
    the error that says why ``t`` is not a valid time."""
    if isinstance(t, torch.Tensor) and t.ndim <= 1 and t.numel():
        t_cast = t.to(dtype=x.dtype, device=x.device)
        # one pass over t, NaN propagates and fails both comparisons
        bounds = torch.aminmax(t_cast.detach() if t_cast.requires_grad else t_cast)
        # one transfer to the host (two small reads on CPU cost less than stacking)
        low, high = (
            (bounds.min.item(), bounds.max.item())
            if t_cast.device.type == "cpu"
            else torch.stack(tuple(bounds)).tolist()
        )
        if low >= t_min and high <= t_max:
            return t_cast, True
    t = as_time(t, like=x)
    return t, bool(((t >= t_min) & (t <= t_max)).all())


def _same_shape(a: torch.Tensor, b: torch.Tensor, name_a: str, name_b: str) -> None:
    if not isinstance(a, torch.Tensor):
        raise ValueError(f"{name_a} must be a torch.Tensor, got {type(a).__name__}")
    if a.shape != b.shape:
        raise ValueError(
            f"{name_a} must have the shape of {name_b}, {tuple(b.shape)}; got {tuple(a.shape)}"
        )
