r"""Noise schedules of Gaussian paths, defined once from sympy expressions.

A schedule is a pair of functions $\alpha_t, \sigma_t$ on $t \in [0, 1]$ (t = 0 data, t = 1
noise) such that $x_t = \alpha_t x_0 + \sigma_t \varepsilon$. Everything else a path needs is
*derived* from the two expressions with sympy and compiled to torch, so no derivative is
typed by hand:

* $\dot\alpha_t$, $\dot\sigma_t$ by `sympy.diff`;
* the log signal-to-noise ratio $\lambda_t = \log(\alpha_t^2 / \sigma_t^2)$ and $\dot\lambda_t$;
* the coefficients of the forward SDE $dx = f(t)\,x\,dt + g(t)\,dW$ with the path's marginals,
  $f = \dot\alpha/\alpha$ and $g^2 = \tfrac{d}{dt}\sigma^2 - 2 f \sigma^2$ (derivation
  D-forward-sde);
* the inverse $t(\lambda)$ of the log-SNR: closed form for the built-in schedules (each one
  verified symbolically in D-schedule-log-snr-inverse), otherwise a bisection on the
  strictly decreasing $\lambda_t$ (documented in `Schedule.inverse_log_snr`).

**The ends t = 0 and t = 1.** A compiled expression can go wrong exactly at an end where it
is singular: $0 \cdot \infty$ gives NaN (the cosine schedule's $\dot\sigma_0$), the sign of a
zero denominator flips a pole (CondOT's $\dot\lambda_1 = -\infty$ read as $+\infty$), and
float32 rounding leaves $\alpha_1 = \cos(\pi/2) < 0$. At construction every derived
function is compared, at t = 0 and t = 1, with its one-sided limit from inside [0, 1]
(evaluated from the sympy expression, see `_one_sided_limit`); where float64 or float32
disagree, that end returns the limit. So every schedule function is defined on all of
[0, 1], with $\pm\infty$ exactly where the mathematics has a pole and never NaN.

The boundary rule lives in one place, `Schedule.safe_interval`: conversions between
parameterizations that divide by $\alpha_t$ or $\sigma_t$ are singular where these vanish
(at t = 0 for $\sigma$, at t = 1 for $\alpha$ on most schedules), and are only allowed on
the safe interval, where both are at least `min_scale`.
"""

from __future__ import annotations

import functools
import math

import torch

from .._implements import implements
from .._lazy import lazy_import
from ._schedule_symbolic import (
    _bisect_decreasing,
    _compile,
    _derive,
    _softplus,
)
from ._shapes import as_time
from ._validate import InputTypeError, in_unit_interval, positive

sp = lazy_import("sympy")  # imported when the first schedule is built, not with genmath

__all__ = ["Schedule", "CondOT", "VP", "CosineVP", "VE"]

_GRID_POINTS = 257  # points on which a user's schedule is validated at construction

# The boundary rule, in one place: a schedule's `safe_interval` is where sigma_t (near t = 0)
# and alpha_t (near t = 1) stay at least this value, so conversions dividing by either lose at
# most ~3 digits there (see `Schedule.safe_interval`). Every schedule takes it as `min_scale`.
DEFAULT_MIN_SCALE = 1e-3
# How exactly a user-supplied closed-form inverse of the log-SNR must invert it to be accepted.
_INVERSE_CHECK_TOLERANCE = 1e-8


class Schedule:
    r"""A Gaussian-path schedule $(\alpha_t, \sigma_t)$ from two sympy expressions in ``t``.

    Arguments:
        alpha: sympy expression of $\alpha_t$ (the data coefficient).
        sigma: sympy expression of $\sigma_t$ (the noise coefficient).
        t: the sympy symbol both expressions use; no other free symbol is allowed.
        inverse_log_snr: optional closed form of $t(\lambda)$, a sympy expression in ``lam``;
            it is checked to invert $\lambda_t$ on a grid. Without it the inverse is
            computed by bisection.
        lam: the symbol of ``inverse_log_snr``.
        name: shown by ``repr``.
        min_scale: the boundary rule's threshold (see `safe_interval`).

    Requirements (checked on a grid of t, raising ``ValueError``): $\alpha_t, \sigma_t \ge 0$
    and finite, and $\lambda_t$ strictly decreasing — data at t = 0, noise at t = 1. A schedule
    written for the opposite convention (data at t = 1) fails this check; substitute
    $t \mapsto 1 - t$.

    Inputs ``t`` of every method: a float, a 0-d tensor or a ``(B,)`` tensor in [0, 1];
    outputs have the shape of ``t``.
    """

    def __init__(
        self,
        alpha,
        sigma,
        t: sp.Symbol,
        *,
        inverse_log_snr=None,
        lam: sp.Symbol | None = None,
        name: str | None = None,
        min_scale: float = DEFAULT_MIN_SCALE,
    ) -> None:
        if not isinstance(t, sp.Symbol):
            raise InputTypeError(f"t must be a sympy Symbol, got {type(t).__name__}")
        alpha, sigma = sp.sympify(alpha), sp.sympify(sigma)
        for label, expr in (("alpha", alpha), ("sigma", sigma)):
            extra = expr.free_symbols - {t}
            if extra:
                raise ValueError(
                    f"{label} may depend only on {t}, got free symbols {sorted(map(str, extra))}; "
                    "substitute numbers for parameters first"
                )
        self.name = name or "Schedule"
        self.min_scale = in_unit_interval(min_scale, "min_scale", open_low=True, open_high=True)
        self.t_symbol = t
        self.alpha_expr = alpha
        self.sigma_expr = sigma
        for key, value in _derive(alpha, sigma, t).items():
            setattr(self, key, value)

        if inverse_log_snr is not None:
            if not isinstance(lam, sp.Symbol):
                raise ValueError("inverse_log_snr needs its symbol: pass lam=<sympy Symbol>")
            inverse_log_snr = sp.sympify(inverse_log_snr)
            extra = inverse_log_snr.free_symbols - {lam}
            if extra:
                raise ValueError(
                    f"inverse_log_snr may depend only on {lam}, got {sorted(map(str, extra))}"
                )
            self.inverse_log_snr_expr = inverse_log_snr
            self._inverse = _compile(inverse_log_snr, lam)
        else:
            self.inverse_log_snr_expr = None
            self._inverse = None
        self._validate()

    @classmethod
    def from_sympy(cls, alpha, sigma, t: sp.Symbol, **kwargs) -> Schedule:
        """A schedule from sympy expressions of $\\alpha_t$ and $\\sigma_t$ in the symbol ``t``
        (keyword arguments as for `Schedule`)."""
        return Schedule(alpha, sigma, t, **kwargs)

    def _validate(self) -> None:
        grid = torch.linspace(0.0, 1.0, _GRID_POINTS, dtype=torch.float64)
        alpha, sigma = self._alpha(grid), self._sigma(grid)
        for label, values in (("alpha", alpha), ("sigma", sigma)):
            if not torch.isfinite(values).all() or (values < 0).any():
                i = int((~torch.isfinite(values) | (values < 0)).nonzero()[0])
                raise ValueError(
                    f"{self.name}: {label}(t) must be finite and >= 0 on [0, 1], "
                    f"got {float(values[i])} at t = {float(grid[i]):.4g}"
                )
        log_snr = self._log_snr(grid)
        both = torch.isfinite(log_snr[1:]) & torch.isfinite(log_snr[:-1])
        rising = both & (log_snr[1:] >= log_snr[:-1])
        if rising.any() or log_snr[0] == -math.inf or log_snr[-1] == math.inf:
            i = int(rising.nonzero()[0]) if rising.any() else 0
            raise ValueError(
                f"{self.name}: the log-SNR log(alpha^2/sigma^2) must decrease strictly in t "
                f"(t = 0 data, t = 1 noise), but it does not near t = {float(grid[i]):.4g}; "
                "a schedule with data at t = 1 needs t -> 1 - t"
            )
        self._log_snr_range = (float(log_snr[-1]), float(log_snr[0]))
        if self._inverse is not None:
            inner = grid[1:-1]
            error = (self._inverse(self._log_snr(inner)) - inner).abs().max()
            if not error <= _INVERSE_CHECK_TOLERANCE:
                raise ValueError(
                    f"{self.name}: inverse_log_snr does not invert the log-SNR: "
                    f"|t(lambda(t)) - t| reaches {float(error):.3g} on [0, 1]"
                )

    def _time(self, t) -> torch.Tensor:
        return as_time(t)

    def alpha(self, t) -> torch.Tensor:
        r"""$\alpha_t$."""
        return self._alpha(self._time(t))

    def sigma(self, t) -> torch.Tensor:
        r"""$\sigma_t$."""
        return self._sigma(self._time(t))

    def d_alpha(self, t) -> torch.Tensor:
        r"""$\dot\alpha_t = d\alpha_t/dt$, from `sympy.diff` of the definition."""
        return self._d_alpha(self._time(t))

    def d_sigma(self, t) -> torch.Tensor:
        r"""$\dot\sigma_t = d\sigma_t/dt$, from `sympy.diff` of the definition."""
        return self._d_sigma(self._time(t))

    def log_snr(self, t) -> torch.Tensor:
        r"""$\lambda_t = \log(\alpha_t^2/\sigma_t^2)$; $+\infty$ where $\sigma_t = 0$,
        $-\infty$ where $\alpha_t = 0$."""
        return self._log_snr(self._time(t))

    def d_log_snr(self, t) -> torch.Tensor:
        r"""$\dot\lambda_t$ (negative on the open interval)."""
        return self._d_log_snr(self._time(t))

    def drift_coefficient(self, t) -> torch.Tensor:
        r"""$f(t) = \dot\alpha_t/\alpha_t$ of the forward SDE (D-forward-sde)."""
        return self._drift_coefficient(self._time(t))

    def diffusion_squared(self, t) -> torch.Tensor:
        r"""$g(t)^2 = \tfrac{d}{dt}\sigma_t^2 - 2 f(t)\sigma_t^2 = -\sigma_t^2\dot\lambda_t$ of the
        forward SDE (D-forward-sde)."""
        return self._diffusion_squared(self._time(t))

    @implements("D-schedule-log-snr-inverse")
    def inverse_log_snr(self, lam) -> torch.Tensor:
        r"""The time $t$ at which $\lambda_t$ equals ``lam``.

        Closed form when the schedule has one (built-ins: D-schedule-log-snr-inverse);
        otherwise bisection on $[0, 1]$, valid because $\lambda_t$ is strictly decreasing
        (checked at construction), with 64 halvings (below float64 resolution).
        ``lam`` must lie in $[\lambda_1, \lambda_0]$, the range of the log-SNR.
        """
        if isinstance(lam, torch.Tensor):
            lam = lam if lam.is_floating_point() else lam.to(torch.get_default_dtype())
        elif isinstance(lam, bool) or not isinstance(lam, int | float | list | tuple):
            raise InputTypeError(
                f"{self.name}: lam must be a number or a tensor of log-SNR values, got "
                f"{type(lam).__name__}"
            )
        else:
            lam = torch.as_tensor(lam, dtype=torch.get_default_dtype())
        if torch.isnan(lam).any():
            raise ValueError(f"{self.name}: lam must not be NaN, got {lam}")
        low, high = self._log_snr_range
        slack = 1e-9 * (1.0 + max((abs(v) for v in (low, high) if math.isfinite(v)), default=0.0))
        if ((lam < low - slack) | (lam > high + slack)).any():
            raise ValueError(
                f"{self.name}: lam must lie in the log-SNR range [{low:.6g}, {high:.6g}], "
                f"got values in [{float(lam.min()):.6g}, {float(lam.max()):.6g}]"
            )
        if self._inverse is not None:
            return self._inverse(lam).clamp(0.0, 1.0)
        return _bisect_decreasing(self._log_snr, lam)

    @functools.cached_property
    @implements("D-schedule-safe-interval")
    def safe_interval(self) -> tuple[float, float]:
        r"""$(t_{lo}, t_{hi})$: where conversions that divide by $\alpha_t$ or $\sigma_t$ are
        well conditioned. **The boundary rule** of genmath:

        * $t_{lo} = 0$ if $\sigma_0 \ge$ ``min_scale``, else the time where $\sigma_t$ reaches
          ``min_scale``;
        * $t_{hi} = 1$ if $\alpha_1 \ge$ ``min_scale``, else the time where $\alpha_t$ falls to
          ``min_scale``.

        With the default ``min_scale = 1e-3``: CondOT $(10^{-3}, 1 - 10^{-3})$; VP with
        $\beta_{min} = 0.1$ gives $t_{lo} \approx 10^{-5}$ (the usual $\epsilon$ of
        continuous-time diffusion) and $t_{hi} = 1$; VE with $\sigma_{min} \ge 10^{-3}$ gives
        $(0, 1)$. `GaussianPath.convert` refuses a conversion that is singular at an end
        (its coefficients blow up there) for a t beyond that end of this interval.
        """
        m = torch.tensor(self.min_scale, dtype=torch.float64)
        ends = torch.tensor([0.0, 1.0], dtype=torch.float64)
        sigma, alpha = self._sigma(ends), self._alpha(ends)
        t_lo = 0.0
        if sigma[0] < m:
            if sigma[1] < m:
                raise ValueError(f"{self.name}: sigma stays below min_scale = {self.min_scale}")
            t_lo = float(_bisect_decreasing(lambda t: -self._sigma(t), -m))
        t_hi = 1.0
        if alpha[1] < m:
            if alpha[0] < m:
                raise ValueError(f"{self.name}: alpha stays below min_scale = {self.min_scale}")
            t_hi = float(_bisect_decreasing(self._alpha, m))
        if not t_lo < t_hi:
            raise ValueError(f"{self.name}: empty safe interval ({t_lo:.4g}, {t_hi:.4g})")
        return (t_lo, t_hi)

    def __repr__(self) -> str:
        return f"{self.name}(alpha={self.alpha_expr}, sigma={self.sigma_expr})"


@functools.cache
def _symbols():
    """The time and log-SNR symbols of the built-in schedules (made on first use)."""
    return sp.Symbol("t", nonnegative=True), sp.Symbol("lambda", real=True)


class CondOT(Schedule):
    r"""Conditional optimal transport / rectified flow: $\alpha_t = 1 - t$, $\sigma_t = t$;
    with ``sigma_min`` $= \sigma_{min} > 0$, Lipman et al.'s OT path,
    $\sigma_t = \sigma_{min} + (1 - \sigma_{min})\,t$.

    $\lambda_t = 2\log\frac{1-t}{\sigma_t}$, inverse $t = 1/(1 + e^{\lambda/2})$, and with
    $r = e^{\lambda/2}$, $t = (1 - \sigma_{min} r)/(1 + (1 - \sigma_{min}) r)$
    (D-schedule-log-snr-inverse, D-schedule-condot-sigma-min). Lipman et al. (2023) and Liu
    et al. (2023) put data at t = 1; their $t$ is $1 - t$ here, so Lipman's
    $\mu_t = t x_1$, $\sigma_t = 1 - (1 - \sigma_{min})t$ is ``CondOT(sigma_min=...)``.

    Arguments:
        sigma_min: the noise left at the data end, $\sigma_0 \in [0, 1)$ (default 0).
        min_scale: the boundary rule's threshold (see `Schedule.safe_interval`).
    """

    def __init__(self, *, sigma_min: float = 0.0, min_scale: float = DEFAULT_MIN_SCALE) -> None:
        self.sigma_min = in_unit_interval(sigma_min, "sigma_min", open_high=True)
        _T, _LAM = _symbols()
        alpha, sigma, inverse = self.definition(_T, _LAM, self.sigma_min)
        super().__init__(
            alpha, sigma, _T, inverse_log_snr=inverse, lam=_LAM, name="CondOT", min_scale=min_scale
        )

    @staticmethod
    @implements("D-schedule-log-snr-inverse", "D-schedule-condot-sigma-min")
    def definition(t, lam, sigma_min=0):
        """The symbolic definition ``(alpha, sigma, t(lam))``, shared with the derivations."""
        if sigma_min == 0:
            return 1 - t, t, 1 / (1 + sp.exp(lam / 2))
        ratio = sp.exp(lam / 2)
        return 1 - t, sigma_min + (1 - sigma_min) * t, (1 - sigma_min * ratio) / (
            1 + (1 - sigma_min) * ratio
        )

    def __repr__(self) -> str:
        return "CondOT()" if self.sigma_min == 0 else f"CondOT(sigma_min={self.sigma_min})"


class VP(Schedule):
    r"""Variance preserving, linear $\beta(t) = \beta_{min} + t(\beta_{max} - \beta_{min})$
    (Song et al. 2021; continuous-time DDPM):

    $$
    \alpha_t = e^{-\frac12 B(t)},\quad \sigma_t = \sqrt{1 - e^{-B(t)}},\quad
    B(t) = \int_0^t \beta = \beta_{min} t + \tfrac12(\beta_{max} - \beta_{min}) t^2
    $$

    (derivation D-schedule-vp). The inverse log-SNR solves $B(t) = \log(1 + e^{-\lambda})$,
    $t = 2L / (\beta_{min} + \sqrt{\beta_{min}^2 + 2(\beta_{max} - \beta_{min}) L})$ with
    $L = \log(1 + e^{-\lambda})$ (D-schedule-log-snr-inverse).
    """

    def __init__(
        self, beta_min: float = 0.1, beta_max: float = 20.0, *, min_scale: float = DEFAULT_MIN_SCALE
    ) -> None:
        _T, _LAM = _symbols()
        self.beta_min = positive(beta_min, "beta_min")
        self.beta_max = positive(beta_max, "beta_max")
        alpha, sigma, inverse = self.definition(_T, _LAM, self.beta_min, self.beta_max)
        super().__init__(
            alpha, sigma, _T, inverse_log_snr=inverse, lam=_LAM, name="VP", min_scale=min_scale
        )

    @staticmethod
    @implements("D-schedule-vp", "D-schedule-log-snr-inverse")
    def definition(t, lam, beta_min, beta_max):
        """The symbolic definition ``(alpha, sigma, t(lam))``, shared with the derivations."""
        integrated_beta = beta_min * t + (beta_max - beta_min) * t**2 / 2
        alpha = sp.exp(-integrated_beta / 2)
        sigma = sp.sqrt(1 - sp.exp(-integrated_beta))
        level = _softplus()(-lam)  # log(1 + e^{-lam}), evaluated without overflow
        inverse = 2 * level / (beta_min + sp.sqrt(beta_min**2 + 2 * (beta_max - beta_min) * level))
        return alpha, sigma, inverse

    def __repr__(self) -> str:
        return f"VP(beta_min={self.beta_min}, beta_max={self.beta_max})"


class CosineVP(Schedule):
    r"""The cosine schedule of Nichol & Dhariwal (2021), variance preserving:
    $\alpha_t = \cos(\phi_t)/\cos(\phi_0)$ with $\phi_t = \frac{\pi}{2}\frac{t + s}{1 + s}$ and
    $\sigma_t = \sqrt{1 - \alpha_t^2}$, written as
    $\sqrt{\sin(\phi_t - \phi_0)\sin(\phi_t + \phi_0)}/\cos\phi_0$ to stay accurate near
    t = 0. ``s = 0`` gives $\alpha_t = \cos(\pi t/2)$, $\sigma_t = \sin(\pi t/2)$.
    Inverse: $t = (1 + s)\frac{2}{\pi}\arccos\big(\cos\phi_0/\sqrt{1 + e^{-\lambda}}\big) - s$.
    """

    def __init__(self, s: float = 0.008, *, min_scale: float = DEFAULT_MIN_SCALE) -> None:
        _T, _LAM = _symbols()
        self.s = s = in_unit_interval(s, "s", open_high=True)
        alpha, sigma, inverse = self.definition(_T, _LAM, sp.nsimplify(s))
        super().__init__(
            alpha,
            sigma,
            _T,
            inverse_log_snr=inverse,
            lam=_LAM,
            name="CosineVP",
            min_scale=min_scale,
        )

    @staticmethod
    @implements("D-schedule-cosine", "D-schedule-log-snr-inverse")
    def definition(t, lam, s):
        """The symbolic definition ``(alpha, sigma, t(lam))``, shared with the derivations."""
        phi = sp.pi / 2 * (t + s) / (1 + s)
        phi0 = sp.pi / 2 * s / (1 + s)
        alpha = sp.cos(phi) / sp.cos(phi0)
        if s == 0:  # sympy cannot see that sqrt(sin^2) = sin on [0, 1]; say it
            sigma = sp.sin(phi)
        else:
            sigma = sp.sqrt(sp.sin(phi - phi0) * sp.sin(phi + phi0)) / sp.cos(phi0)
        inverse = (1 + s) * 2 / sp.pi * sp.acos(sp.cos(phi0) / sp.sqrt(1 + sp.exp(-lam))) - s
        return alpha, sigma, inverse

    def __repr__(self) -> str:
        return f"CosineVP(s={self.s})"


class VE(Schedule):
    r"""Variance exploding (Song et al. 2021): $\alpha_t = 1$,
    $\sigma_t = \sigma_{min}(\sigma_{max}/\sigma_{min})^t$; $\lambda_t = -2\log\sigma_t$ is
    linear in t with inverse $t = (-\lambda/2 - \log\sigma_{min}) / \log(\sigma_{max}/\sigma_{min})$.
    Requires $0 < \sigma_{min} < \sigma_{max}$.
    """

    def __init__(
        self,
        sigma_min: float = 0.01,
        sigma_max: float = 50.0,
        *,
        min_scale: float = DEFAULT_MIN_SCALE,
    ):
        _T, _LAM = _symbols()
        self.sigma_min = positive(sigma_min, "sigma_min")
        self.sigma_max = positive(sigma_max, "sigma_max")
        if not self.sigma_min < self.sigma_max:
            raise ValueError(
                f"VE needs sigma_min < sigma_max, got sigma_min={self.sigma_min}, "
                f"sigma_max={self.sigma_max}"
            )
        alpha, sigma, inverse = self.definition(_T, _LAM, self.sigma_min, self.sigma_max)
        super().__init__(
            alpha, sigma, _T, inverse_log_snr=inverse, lam=_LAM, name="VE", min_scale=min_scale
        )

    @staticmethod
    @implements("D-schedule-log-snr-inverse")
    def definition(t, lam, sigma_min, sigma_max):
        """The symbolic definition ``(alpha, sigma, t(lam))``, shared with the derivations."""
        ratio = sp.log(sp.sympify(sigma_max) / sigma_min)
        return (
            sp.Integer(1),
            sigma_min * sp.exp(t * ratio),
            (-lam / 2 - sp.log(sigma_min)) / ratio,
        )

    def __repr__(self) -> str:
        return f"VE(sigma_min={self.sigma_min}, sigma_max={self.sigma_max})"
