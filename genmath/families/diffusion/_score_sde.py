"""Score SDEs (Song et al. 2021): VP / sub-VP / VE paths, reverse-SDE sampling, exact likelihood."""

from __future__ import annotations

import math

import sympy as sp
import torch

from ..._implements import implements
from ...core import score as _score
from ...core.dynamics import ReverseSDE, SampleResult, reparameterize
from ...core.likelihood import bits_per_dim, ode_log_likelihood
from ...core.path import GaussianPath, check_gaussian_path, check_parameterization
from ...core.schedules import Schedule
from ._common import Model, _bind_condition, _sum_event


@implements("D-sub-vp-sde")
def sub_vp(beta_min: float = 0.1, beta_max: float = 20.0) -> Schedule:
    r"""The sub-VP SDE of Song et al. (2021) as a Gaussian path: $\alpha_t = e^{-B_t/2}$,
    $\sigma_t = 1 - e^{-B_t}$, $B_t = \beta_{min}t + \tfrac12(\beta_{max}-\beta_{min})t^2$.
    Its forward SDE (the path's, `GaussianPath.drift`/`diffusion`) has
    $f = -\beta_t/2$ and $g^2 = \beta_t(1 - e^{-2B_t})$, below VP's $\beta_t$
    (D-sub-vp-sde)."""
    for name, value in (("beta_min", beta_min), ("beta_max", beta_max)):
        if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
            raise ValueError(f"{name} must be a positive number, got {value!r}")
    if not beta_min < beta_max:
        raise ValueError(f"need beta_min < beta_max, got {beta_min}, {beta_max}")
    t = sp.Symbol("t", nonnegative=True)
    # float coefficients: with nsimplify's rationals the compiler's expm1 rewrite factors
    # polynomials with huge integer coefficients (a minute per schedule)
    integral = sp.Float(beta_min) * t + sp.Float(beta_max - beta_min) / 2 * t**2
    # the compiler rewrites 1 - exp(-B) to -expm1(-B), accurate where sigma_t is tiny
    return Schedule.from_sympy(sp.exp(-integral / 2), 1 - sp.exp(-integral), t, name="subVP")


def _standard_log_prob(x: torch.Tensor, std) -> torch.Tensor:
    flat = x.flatten(1)
    std = torch.as_tensor(std, dtype=x.dtype, device=x.device)
    return _sum_event(torch.distributions.Normal(torch.zeros_like(flat), std).log_prob(flat))


class ScoreSDE:
    r"""Score-based generative modelling through SDEs (Song et al. 2021): a Gaussian path (VP,
    `sub_vp`, VE), a model in any parameterization, and the reverse-SDE family of the core.

    * `loss`: denoising score matching with $\lambda(t) = \sigma_t^2$ (their likelihood-free
      weighting; for the score parameterization this is $\|\sigma_t s_\theta +
      \varepsilon\|^2$), via core's `genmath.score_matching.denoising`;
    * `sample`: ``"euler_maruyama"`` or ``"pc"`` (predictor–corrector, Langevin corrector) on
      `ReverseSDE` with $\nu = g$, or any `sample_ode` method on the probability-flow ODE;
    * `log_likelihood` / `bits_per_dim`: `ode_log_likelihood` on the probability-flow ODE over
      the safe interval $[t_{lo}, t_{hi}]$, prior $\mathcal N(0, \sigma_{t_{hi}}^2 I)$ unless
      given (the usual approximation of $p_{t_{hi}}$; pass the exact one where it is known).
    """

    def __init__(self, model: Model, path: GaussianPath, parameterization: str = "score"):
        self.model = model
        self.path = check_gaussian_path(path)
        self.parameterization = check_parameterization(parameterization)

    @implements("D-score-sde-weighting")
    def loss(
        self,
        x0: torch.Tensor,
        condition=None,
        *,
        generator: torch.Generator | None = None,
        reduction: str = "mean",
    ) -> torch.Tensor:
        model = _bind_condition(self.model, condition, x0.shape[0])
        weighting = (
            (lambda t: self.path.sigma(t) ** 2) if self.parameterization == "score" else None
        )
        return _score.denoising(
            model,
            x0,
            self.path,
            parameterization=self.parameterization,
            weighting=weighting,
            generator=generator,
            reduction=reduction,
        )

    def _reverse_sde(
        self, condition=None, batch: int | None = None, noise: float = 1.0
    ) -> ReverseSDE:
        model = self.model if condition is None else _bind_condition(self.model, condition, batch)
        return ReverseSDE(self.path, model, self.parameterization, noise=noise)

    def sample(
        self,
        x1: torch.Tensor,
        condition=None,
        *,
        steps: int = 500,
        method: str = "euler_maruyama",
        generator: torch.Generator | None = None,
        **options,
    ) -> SampleResult:
        """Sample from ``x1`` (draws of the prior at the top of the safe interval)."""
        sde = self._reverse_sde(condition, x1.shape[0])
        if method in ("euler_maruyama", "pc"):
            return sde.sample(x1, steps=steps, method=method, generator=generator, **options)
        return sde.probability_flow().sample(x1, steps=steps, method=method, **options)

    def prior_log_prob(self, x: torch.Tensor) -> torch.Tensor:
        r"""$\log\mathcal N(x; 0, \sigma_{t_{hi}}^2 I)$, shape ``(B,)``."""
        t_hi = self.path.schedule.safe_interval[1]
        return _standard_log_prob(x, self.path.sigma(torch.tensor(t_hi, dtype=x.dtype)))

    def log_likelihood(self, x: torch.Tensor, condition=None, *, prior_log_prob=None, **options):
        r"""$\log p_{t_{lo}}(x)$ by the probability-flow ODE, shape ``(B,)``."""
        model = _bind_condition(self.model, condition, x.shape[0])
        velocity = reparameterize(model, self.path, self.parameterization, "velocity")
        t_lo, t_hi = self.path.schedule.safe_interval
        return ode_log_likelihood(
            velocity,
            x,
            prior_log_prob or self.prior_log_prob,
            t0=t_lo,
            t1=t_hi,
            **options,
        )

    def bits_per_dim(
        self,
        x: torch.Tensor,
        condition=None,
        *,
        levels: int = 256,
        data_range=(0.0, 1.0),
        **options,
    ) -> torch.Tensor:
        """Bits per dimension of uniformly dequantized data (core's `bits_per_dim`)."""
        log_prob = self.log_likelihood(x, condition, **options)
        return bits_per_dim(log_prob, tuple(x.shape[1:]), levels=levels, data_range=data_range)
