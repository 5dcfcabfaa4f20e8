r"""The exact oracle the conformance checks run code against: data with known marginals, on a path.

An `Oracle` pairs exact data (`genmath.analytic.Gaussian` or `GaussianMixture`) with a Gaussian
path and answers everything a sampler, a likelihood or a model could be compared with: exact
draws from $p_t$, $\log p_t$, the posterior means $\mathbb E[x_0 \mid x_t]$ and
$\mathbb E[\varepsilon \mid x_t]$, every parameterization, and the probability-flow map between
any two times (closed form for Gaussian data, D-gaussian-flow-map; for a mixture, the exact
velocity integrated by an adaptive Runge–Kutta method at tight tolerance).

Other libraries index noise differently (diffusers' discrete timesteps and $\sigma$, k-diffusion's
$\sigma$, flow_matching's $t = 1$ data). They all describe a state $x = a\,x_0 + b\,\varepsilon$ by
a **noise level** $(a, b)$. Two levels with the same signal-to-noise ratio $a/b$ differ only by a
scale, so every level maps to a time of the oracle's path and a factor: $t$ with
$\lambda_t = 2\log(a/b)$ and $c = a/\alpha_t$, $x = c\,x_t$ (`Oracle.time_of_level`). The adapters
use this one map; the posterior means are the same in both coordinates.
"""

from __future__ import annotations

import math

import torch

from ..core._shapes import as_time, check_batch, scalar_time
from ..core._validate import (
    check_finite,
    check_floating_dtype,
    check_tolerances,
    non_negative,
    positive_int,
)

__all__ = ["Oracle", "mixture_2d", "gaussian_2d"]


def _float(value) -> float:
    return float(value.item()) if isinstance(value, torch.Tensor) else float(value)


class Oracle:
    """Exact answers for data ``data`` pushed through ``path``.

    Arguments:
        data: `genmath.analytic.Gaussian` or `genmath.analytic.GaussianMixture` (anything with
            ``sample``, ``log_prob``, ``mean``, ``cov`` and ``marginal(path)``).
        path: a `genmath.GaussianPath` (its schedule's inverse log-SNR maps other libraries'
            noise levels onto it).
        rtol, atol: tolerances of the adaptive integration behind `flow_map` for mixtures.

    Times are genmath's: t = 0 data, t = 1 noise.
    """

    def __init__(self, data, path, *, rtol: float = 1e-10, atol: float = 1e-10):
        for attribute in ("sample", "log_prob", "marginal", "mean", "cov"):
            if not hasattr(data, attribute):
                raise TypeError(
                    "data must be exact data such as genmath.analytic.Gaussian or "
                    f"GaussianMixture (with .{attribute}), got {type(data).__name__}"
                )
        for attribute in ("alpha", "sigma", "d_alpha", "d_sigma"):
            if not hasattr(path, attribute):
                raise TypeError(
                    f"path must be a genmath.GaussianPath (with .{attribute}), "
                    f"got {type(path).__name__}"
                )
        rtol, atol = check_tolerances(rtol, atol)
        self.data = data
        self.path = path
        self.marginal = data.marginal(path)
        self.rtol = float(rtol)
        self.atol = float(atol)
        self._closed_form_flow = hasattr(self.marginal, "flow_map")

    def __repr__(self) -> str:
        return f"Oracle({self.data!r}, {self.path!r})"

    def _points(self, x, name: str = "x") -> torch.Tensor:
        """``x`` as states of the oracle: floating, ``(B, dim)``."""
        check_batch(x, name, event=True)
        if tuple(x.shape[1:]) != (self.dim,):
            raise ValueError(
                f"{name} must have shape (B, {self.dim}) (the oracle's data are {self.dim}-D), "
                f"got {tuple(x.shape)}"
            )
        return x

    @property
    def dim(self) -> int:
        return self.data.dim

    @property
    def dtype(self) -> torch.dtype:
        return self.data.mean.dtype

    # -- the path --------------------------------------------------------------------------

    @property
    def safe_interval(self) -> tuple[float, float]:
        """``(t_lo, t_hi)`` of the path's schedule (`Schedule.safe_interval`), else ``(0, 1)``."""
        schedule = getattr(self.path, "schedule", None)
        return tuple(schedule.safe_interval) if schedule is not None else (0.0, 1.0)

    def level(self, t) -> tuple[float, float]:
        """The noise level $(\\alpha_t, \\sigma_t)$ of the path at a scalar ``t``."""
        tt = torch.tensor(scalar_time(t), dtype=torch.float64)
        return _float(self.path.alpha(tt)), _float(self.path.sigma(tt))

    def time_of_level(self, a: float, b: float) -> tuple[float, float]:
        """``(t, c)``: the time of the path with the signal-to-noise ratio of $x = a x_0 + b
        \\varepsilon$, and the scale $c$ with $x = c\\,x_t$."""
        try:
            a, b = non_negative(a, "a"), non_negative(b, "b")
        except ValueError as error:
            raise type(error)(
                f"a noise level (a, b) of x = a x0 + b eps needs finite a, b >= 0: {error}"
            ) from None
        if a == b == 0:
            raise ValueError(
                "a noise level (a, b) of x = a x0 + b eps needs a and b not both 0; got (0, 0)"
            )
        if b == 0 or a == 0:
            t = 0.0 if b == 0 else 1.0
            alpha, sigma = self.level(t)
            if (b == 0 and sigma != 0) or (a == 0 and alpha != 0):
                end = "data (sigma = 0)" if b == 0 else "pure noise (alpha = 0)"
                raise ValueError(
                    f"the level ({a:g}, {b:g}) is {end}, which {self.path!r} never reaches: "
                    "use a path that does (CondOT reaches both ends)"
                )
        else:
            lam = torch.tensor(2 * (math.log(a) - math.log(b)), dtype=torch.float64)
            t = _float(self.path.schedule.inverse_log_snr(lam))
            alpha, sigma = self.level(t)
        scale = a / alpha if a > 0 else b / sigma
        return t, scale

    def _time_of(self, level, name: str) -> tuple[float, float]:
        """`time_of_level` of a level given as one argument ``(a, b)``, errors naming it."""
        if not isinstance(level, tuple | list) or len(level) != 2:
            raise ValueError(
                f"{name} must be a noise level (a, b) of x = a x0 + b eps, got {level!r:.40}"
            )
        try:
            return self.time_of_level(*level)
        except ValueError as error:
            raise type(error)(f"{name}: {error}") from None

    # -- exact draws and densities ----------------------------------------------------------

    def sample(self, n: int, t=0.0, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` exact draws from $p_t$, shape ``(n, d)``."""
        positive_int(n, "n")
        t = scalar_time(t)
        x0 = self.data.sample(n, generator=generator)
        if t == 0.0 and self.level(0.0) == (1.0, 0.0):
            return x0
        xt, _ = self.path.sample(x0, t, generator=generator)
        return xt

    def log_prob(self, x: torch.Tensor, t=0.0) -> torch.Tensor:
        """$\\log p_t(x)$, shape ``(B,)``."""
        x = self._points(x)
        return self.marginal.log_prob(x, as_time(t, like=x))

    def prior_log_prob(self, t=1.0):
        """The exact $\\log p_t$ as a function of ``x`` alone (a prior for a likelihood)."""
        t = scalar_time(t)
        return lambda x: self.log_prob(x, t)

    def mean(self, t=0.0) -> torch.Tensor:
        """$\\mathbb E[x_t] = \\alpha_t\\,\\mathbb E[x_0]$."""
        alpha, _ = self.level(t)
        return alpha * self.data.mean

    def cov(self, t=0.0) -> torch.Tensor:
        """$\\operatorname{Cov}[x_t] = \\alpha_t^2 \\operatorname{Cov}[x_0] + \\sigma_t^2 I$."""
        alpha, sigma = self.level(t)
        eye = torch.eye(self.dim, dtype=self.data.cov.dtype, device=self.data.cov.device)
        return alpha**2 * self.data.cov + sigma**2 * eye

    # -- exact fields ---------------------------------------------------------------------

    def predict(self, x: torch.Tensor, t, parameterization: str) -> torch.Tensor:
        """The exact prediction of a perfect model in ``parameterization`` (one of
        ``"x0", "eps", "score", "velocity", "v"``) at ``(x, t)``."""
        m = self.marginal
        x = self._points(x)
        t = as_time(t, like=x)
        if parameterization == "x0":
            return m.denoise(x, t)
        if parameterization == "eps":
            return m.eps(x, t)
        if parameterization == "score":
            return m.score(x, t)
        if parameterization == "velocity":
            return m.velocity(x, t)
        if parameterization == "v":
            # from whichever posterior mean keeps the conversion away from its singular end
            tt = t
            alpha, sigma = self.path.alpha(tt), self.path.sigma(tt)
            source = "x0" if bool((sigma >= alpha).all()) else "eps"
            return self.path.convert(self.predict(x, t, source), x, t, source, "v")
        raise ValueError(
            "parameterization must be one of ('x0', 'eps', 'score', 'velocity', 'v'), "
            f"got {parameterization!r}"
        )

    def model(self, parameterization: str = "velocity"):
        """A perfect model ``(x, t) -> prediction`` in genmath's conventions."""
        self.predict(self.data.mean[None], 0.5, parameterization)  # validates the name

        def exact_model(x: torch.Tensor, t) -> torch.Tensor:
            return self.predict(x, t, parameterization)

        return exact_model

    def posterior_at_level(self, x: torch.Tensor, a: float, b: float):
        """``(x0_hat, eps_hat)`` $= (\\mathbb E[x_0 \\mid x], \\mathbb E[\\varepsilon \\mid x])$ for
        a state $x = a x_0 + b \\varepsilon$ (another library's coordinates)."""
        x = self._points(x)
        t, scale = self.time_of_level(a, b)
        xt = x / scale
        return self.marginal.denoise(xt, t), self.marginal.eps(xt, t)

    # -- the flow map ------------------------------------------------------------------------

    def flow_map(self, x: torch.Tensor, t_from, t_to) -> torch.Tensor:
        """The exact probability-flow map: the point at time ``t_to`` of the trajectory through
        ``x`` at ``t_from`` (closed form for Gaussian data; otherwise the exact velocity
        integrated by dopri5 at ``rtol``/``atol``, in float64)."""
        x = self._points(x)
        t_from, t_to = scalar_time(t_from, "t_from"), scalar_time(t_to, "t_to")
        if t_from == t_to:
            return x.clone()
        if self._closed_form_flow:
            return self.marginal.flow_map(x, t_from, t_to)
        from torchdiffeq import odeint

        # an adaptive step on a NaN state has no size: refuse it here, by name
        check_finite(x, "x", "the start of the adaptive integration of a mixture's flow")
        dtype = x.dtype
        state = x.to(torch.float64)

        def velocity(t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            return self.marginal.velocity(y, t)

        times = torch.tensor([t_from, t_to], dtype=torch.float64)
        # steps forced to end on t_to: an adaptive step past it would evaluate outside [0, 1]
        out = odeint(
            velocity, state, times, method="dopri5", rtol=self.rtol, atol=self.atol,
            options={"step_t": times},
        )
        return out[-1].to(dtype)

    def flow_map_between_levels(self, x, level_from, level_to) -> torch.Tensor:
        """`flow_map` in another library's coordinates: ``x`` is a state at noise level
        ``level_from = (a, b)``; returns the exact state at ``level_to``."""
        x = self._points(x)
        t0, c0 = self._time_of(level_from, "level_from")
        t1, c1 = self._time_of(level_to, "level_to")
        return c1 * self.flow_map(x / c0, t0, t1)


def mixture_2d(path=None, dtype: torch.dtype = torch.float64) -> Oracle:
    """The 2-D Gaussian mixture of the conformance table: three anisotropic components of
    unequal weights, on ``path`` (default CondOT, which reaches both data and pure noise).

    Its denoiser is nonlinear, so an integrator's order shows in its error; the components
    are wide enough that the flow stays smooth down to t = 0."""
    from ..analytic import GaussianMixture
    from ..core.path import GaussianPath
    from ..core.schedules import CondOT

    check_floating_dtype(dtype)
    data = GaussianMixture(
        torch.tensor([0.5, 0.3, 0.2], dtype=dtype),
        torch.tensor([[-1.0, 0.5], [1.5, 1.0], [0.5, -1.5]], dtype=dtype),
        torch.tensor(
            [
                [[0.30, 0.10], [0.10, 0.20]],
                [[0.15, -0.05], [-0.05, 0.25]],
                [[0.20, 0.00], [0.00, 0.10]],
            ],
            dtype=dtype,
        ),
    )
    return Oracle(data, path if path is not None else GaussianPath(CondOT()))


def gaussian_2d(path=None, dtype: torch.dtype = torch.float64) -> Oracle:
    """A 2-D Gaussian with correlated, unequal variances (its flow map is closed form), on
    ``path`` (default CondOT)."""
    from ..analytic import Gaussian
    from ..core.path import GaussianPath
    from ..core.schedules import CondOT

    check_floating_dtype(dtype)
    data = Gaussian(
        torch.tensor([0.5, -1.0], dtype=dtype),
        torch.tensor([[0.6, 0.25], [0.25, 0.3]], dtype=dtype),
    )
    return Oracle(data, path if path is not None else GaussianPath(CondOT()))
