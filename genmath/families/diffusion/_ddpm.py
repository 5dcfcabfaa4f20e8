"""DDPM: ancestral sampling, the discrete-time bound, the simple loss and respacing."""

from __future__ import annotations

import torch
from torch import nn

from ..._implements import implements
from ...core import score as _score
from ...core._shapes import check_batch, expand_time, positive_int
from ...core.dynamics import SampleResult
from ...core.elbo import diagonal_gaussian_kl
from ...core.path import check_parameterization
from ._common import Model, _bind_condition, _sum_event
from ._discrete import DiscreteSchedule, discretized_gaussian_log_likelihood
from ._guidance import drop_condition

VARIANCES = ("beta", "beta_tilde", "learned")
"""Reverse-kernel variances of `DDPM`: $\\beta_i$, the posterior $\\tilde\\beta_i$, or learned
interpolation between their logarithms (Nichol & Dhariwal 2021)."""
DECODERS = ("gaussian", "discretized")
"""Decoders $p(x_0 \\mid x_1)$ of the DDPM bound: a Gaussian density (continuous data) or
Ho et al.'s discretised Gaussian on 256 levels in $[-1, 1]$ (images)."""


class DDPM(nn.Module):
    r"""Denoising diffusion probabilistic model (Ho et al. 2020; Nichol & Dhariwal 2021).

    Forward process $q(x_i \mid x_{i-1}) = \mathcal N(\sqrt{1-\beta_i}\,x_{i-1}, \beta_i I)$ on
    a `DiscreteSchedule`; reverse kernels $p(x_{i-1} \mid x_i) = \mathcal N(\mu_\theta(x_i, i),
    \Sigma_i)$ with the posterior mean of the predicted $\hat x_0$ (D-ddpm-posterior)

    $$
    \mu_\theta(x_i, i) = \tilde\mu_i(x_i, \hat x_0) = \frac{1}{\sqrt{1-\beta_i}}\Big(x_i -
    \frac{\beta_i}{\sqrt{1-\bar\alpha_i}}\hat\varepsilon\Big),
    $$

    and $\Sigma_i = \beta_i$, $\tilde\beta_i$, or $\exp(v\log\beta_i + (1-v)\log\tilde\beta_i)$
    with $v$ from ``variance_model`` (Nichol & Dhariwal 2021, eq. 15; $\tilde\beta_1 = 0$ is
    replaced by $\tilde\beta_2$ in the logarithm, as there).

    Arguments:
        model: ``model(x, t[, condition])`` predicting ``parameterization`` at the times
            $t_i$ of the schedule (``t`` of shape ``(B,)``).
        schedule: a `DiscreteSchedule`.
        parameterization: what the model predicts; converted by ``schedule.path.convert``.
        variance: one of `VARIANCES`.
        variance_model: ``(x, t[, condition]) -> v`` shaped like ``x``, for ``"learned"``.
    """

    def __init__(
        self,
        model: Model,
        schedule: DiscreteSchedule,
        parameterization: str = "eps",
        variance: str = "beta_tilde",
        variance_model: Model | None = None,
    ):
        super().__init__()
        if not isinstance(schedule, DiscreteSchedule):
            raise ValueError(f"schedule must be a DiscreteSchedule, got {type(schedule).__name__}")
        if variance not in VARIANCES:
            raise ValueError(f"variance must be one of {VARIANCES}, got {variance!r}")
        if (variance == "learned") != (variance_model is not None):
            raise ValueError(
                "variance='learned' needs variance_model (and only it takes one); got "
                f"variance={variance!r}, variance_model={variance_model!r}"
            )
        self.model = model
        self.variance_model = variance_model
        self.schedule = schedule
        self.path = schedule.path
        self.parameterization = check_parameterization(parameterization)
        self.variance = variance

    # -- the reverse kernel ----------------------------------------------------------------

    def _steps(self, i, batch: int, device) -> torch.Tensor:
        i = torch.as_tensor(i, device=device)
        if i.is_floating_point() or i.is_complex():
            raise ValueError(f"timesteps must be integers, got dtype {i.dtype}")
        if i.ndim == 0:
            i = i.expand(batch)
        if i.shape != (batch,):
            raise ValueError(
                f"timesteps must be a scalar or have shape ({batch},), got {tuple(i.shape)}"
            )
        T = self.schedule.steps
        if ((i < 1) | (i > T)).any():
            bad = i[(i < 1) | (i > T)]
            raise ValueError(f"timesteps must lie in 1..{T}, got {bad.tolist()[:5]}")
        return i.long()

    def _coefficient(self, table: torch.Tensor, i, x: torch.Tensor):
        """``table[i]`` for an integer ``i`` (0-d) or a ``(B,)`` index, broadcastable to x."""
        return expand_time(table.to(dtype=x.dtype, device=x.device)[i], x)

    def predict_eps(self, x: torch.Tensor, i, condition=None) -> torch.Tensor:
        """The model's prediction at step ``i`` converted to $\\hat\\varepsilon$."""
        i = self._steps(i, x.shape[0], x.device)
        t = self.schedule.times.to(dtype=x.dtype, device=x.device)[i]
        prediction = _bind_condition(self.model, condition, x.shape[0])(x, t)
        return self.path.convert(prediction, x, t, self.parameterization, "eps")

    @implements("D-ddpm-posterior")
    def reverse_mean(self, x: torch.Tensor, i, eps: torch.Tensor) -> torch.Tensor:
        r"""$\tilde\mu_i(x_i, \hat x_0)$ in its $\varepsilon$-form (D-ddpm-posterior), for step
        ``i`` (an integer or a ``(B,)`` tensor in 1..T)."""
        _, _, _, d_x, d_eps = self.schedule.posterior_coefficients()
        return self._coefficient(d_x, i - 1, x) * x + self._coefficient(d_eps, i - 1, x) * eps

    @implements("D-ddpm-learned-variance")
    def reverse_variance(self, x: torch.Tensor, i, condition=None) -> torch.Tensor:
        r"""$\Sigma_i$, broadcastable against ``x``."""
        i = self._steps(i, x.shape[0], x.device)
        beta = self._coefficient(self.schedule.betas, i - 1, x)
        if self.variance == "beta":
            return beta
        tilde = self.schedule.posterior_variance
        if self.variance == "beta_tilde":
            return self._coefficient(tilde, i - 1, x)
        clipped = torch.cat([tilde[1:2], tilde[1:]]) if tilde.numel() > 1 else self.schedule.betas
        log_tilde = self._coefficient(torch.log(clipped), i - 1, x)
        t = self.schedule.times.to(dtype=x.dtype, device=x.device)[i]
        v = _bind_condition(self.variance_model, condition, x.shape[0])(x, t)
        return torch.exp(v * torch.log(beta) + (1 - v) * log_tilde)

    def reverse_kernel(self, x: torch.Tensor, i, condition=None):
        """``(mean, variance)`` of $p_\\theta(x_{i-1} \\mid x_i)$."""
        i = self._steps(i, x.shape[0], x.device)
        eps = self.predict_eps(x, i, condition)
        return self.reverse_mean(x, i, eps), self.reverse_variance(x, i, condition)

    # -- training ----------------------------------------------------------------------------

    @implements("D-ddpm-bound-simple", "D-ddpm-hybrid-loss")
    def loss(
        self,
        x0: torch.Tensor,
        condition=None,
        *,
        condition_dropout: float = 0.0,
        vlb_weight: float = 0.0,
        generator: torch.Generator | None = None,
        reduction: str = "mean",
    ) -> torch.Tensor:
        r"""$L_\mathrm{simple} = \mathbb E_{i, x_0, \varepsilon}\|y - f_\theta(x_i, t_i)\|^2$,
        $i \sim U\{1..T\}$, with $y$ the parameterization's target (for ``"eps"``: Ho et al.'s
        $\|\varepsilon - \hat\varepsilon\|^2$, the per-step KL without its weight,
        D-ddpm-bound-simple). Computed by core's `genmath.score_matching.denoising` (twice
        its $\tfrac12$-scaled value). With a condition, entries are dropped to `NULL_LABEL`
        with probability ``condition_dropout`` (classifier-free guidance training).
        ``vlb_weight`` $\lambda > 0$ adds Nichol & Dhariwal's $\lambda L_\mathrm{vlb}$ for a
        learned variance: $T$ times one random per-step KL term with the mean held fixed.
        """
        x0 = check_batch(x0, "x0")
        if condition is not None:
            condition = drop_condition(condition, condition_dropout, generator=generator)
        batch = x0.shape[0]
        model = _bind_condition(self.model, condition, batch)
        i = torch.randint(1, self.schedule.steps + 1, (batch,), generator=generator)
        t = self.schedule.times.to(dtype=x0.dtype)[i].to(x0.device)
        values = 2 * _score.denoising(
            model,
            x0,
            self.path,
            t=t,
            parameterization=self.parameterization,
            generator=generator,
            reduction="none",
        )
        if vlb_weight:
            if self.variance != "learned":
                raise ValueError("vlb_weight applies to variance='learned' only")
            values = values + vlb_weight * self._vlb_term(x0, condition, generator)
        return values.mean() if reduction == "mean" else values

    def _vlb_term(self, x0, condition, generator) -> torch.Tensor:
        batch = x0.shape[0]
        if self.schedule.steps < 2:
            return x0.new_zeros(batch)
        # steps 2..T only: step 1 is the decoder, whose variance is beta_1 for every choice
        i = torch.randint(2, self.schedule.steps + 1, (batch,), generator=generator)
        xi, _ = self.path.sample(x0, self.schedule.times.to(x0)[i], generator=generator)
        with torch.no_grad():
            eps = self.predict_eps(xi, i, condition)
        mean = self.reverse_mean(xi, i, eps)
        variance = self.reverse_variance(xi, i, condition).expand_as(xi)
        return (self.schedule.steps - 1) * self._step_kl(x0, xi, i, mean, variance)

    # -- the bound -------------------------------------------------------------------------

    def _step_kl(self, x0, xi, i, mean, variance) -> torch.Tensor:
        r"""$\mathrm{KL}(q(x_{i-1} \mid x_i, x_0)\,\|\,p_\theta(x_{i-1} \mid x_i))$, ``(B,)``."""
        c_x0, c_xi, true_variance, _, _ = self.schedule.posterior_coefficients()
        true_mean = self._coefficient(c_x0, i - 1, xi) * x0 + self._coefficient(c_xi, i - 1, xi) * xi
        true_std = self._coefficient(true_variance, i - 1, xi).sqrt().expand_as(xi)
        return diagonal_gaussian_kl(true_mean, true_std, mean, variance.sqrt().expand_as(xi))

    @implements("D-ddpm-bound-simple", "D-ddpm-discretized-decoder")
    def elbo(
        self,
        x0: torch.Tensor,
        condition=None,
        *,
        decoder: str = "gaussian",
        generator: torch.Generator | None = None,
        terms: bool = False,
        chunk: int = 100,
    ):
        r"""The discrete-time variational bound (Sohl-Dickstein et al. 2015; Ho et al. 2020),
        $\log p(x_0) \ge -(L_T + \sum_{i=2}^T L_{i-1} + L_0)$, shape ``(B,)``, with

        * prior $L_T = \mathrm{KL}(q(x_T \mid x_0)\,\|\,\mathcal N(0, I))$, exact;
        * per-step $L_{i-1} = \mathrm{KL}(q(x_{i-1} \mid x_i, x_0)\,\|\,p_\theta(x_{i-1}\mid
          x_i))$ (closed-form Gaussian KL by core's `diagonal_gaussian_kl`), at one draw of
          $x_i \sim q(x_i \mid x_0)$ for every $i$;
        * decoder $L_0 = -\log p_\theta(x_0 \mid x_1)$: $\mathcal N(\mu_\theta(x_1, 1),
          \beta_1)$ (``"gaussian"``) or its discretised version on 256 levels
          (``"discretized"``, data in $[-1, 1]$, `discretized_gaussian_log_likelihood`).

        Exact Gaussian data make the gap explicit: averaged over $x_0 \sim q$,
        $\mathbb E[\log q(x_0)] - \mathbb E[\mathrm{bound}] = \mathrm{KL}(q(x_T)\,\|\,\mathcal
        N(0, I)) + \sum_{i=1}^T\mathbb E\,\mathrm{KL}(q(x_{i-1}\mid x_i)\,\|\,p_\theta(x_{i-1}
        \mid x_i))$ (tested). ``terms=True`` also returns ``{"prior": (B,), "steps": (B, T-1)
        for i = 2..T, "decoder": (B,)}``. ``chunk`` steps are evaluated per model call.
        """
        x0 = check_batch(x0, "x0")
        if decoder not in DECODERS:
            raise ValueError(f"decoder must be one of {DECODERS}, got {decoder!r}")
        positive_int(chunk, "chunk")
        batch, T = x0.shape[0], self.schedule.steps
        abar = self.schedule.alphas_cumprod.to(x0)
        abar_T = abar[-1]
        prior = diagonal_gaussian_kl(
            abar_T.sqrt() * x0, (1 - abar_T).sqrt().expand_as(x0), 0.0, 1.0
        )
        step_terms = []
        for start in range(2, T + 1, chunk):
            idx = torch.arange(start, min(start + chunk, T + 1), device=x0.device)
            i = idx.repeat_interleave(batch)
            x_rep = x0.repeat(idx.numel(), *([1] * (x0.ndim - 1)))
            c_rep = (
                None
                if condition is None
                else condition.repeat(idx.numel(), *([1] * (condition.ndim - 1)))
            )
            xi, _ = self.path.sample(x_rep, self.schedule.times.to(x0)[i], generator=generator)
            mean, variance = self.reverse_kernel(xi, i, c_rep)
            kl = self._step_kl(x_rep, xi, i, mean, variance.expand_as(xi))
            step_terms.append(kl.reshape(idx.numel(), batch).T)
        steps = torch.cat(step_terms, 1) if step_terms else x0.new_zeros(batch, 0)

        one = torch.ones(batch, dtype=torch.long, device=x0.device)
        x1, _ = self.path.sample(x0, self.schedule.times.to(x0)[one], generator=generator)
        mean, _ = self.reverse_kernel(x1, one, condition)
        std = self.schedule.betas[0].to(x0).sqrt().expand_as(x0)
        if decoder == "gaussian":
            log_likelihood = _sum_event(torch.distributions.Normal(mean, std).log_prob(x0))
        else:
            log_likelihood = discretized_gaussian_log_likelihood(x0, mean, std)
        decoder_term = -log_likelihood
        value = -(prior + steps.sum(1) + decoder_term)
        if terms:
            return value, {"prior": prior, "steps": steps, "decoder": decoder_term}
        return value

    # -- sampling ----------------------------------------------------------------------------

    @implements("D-ddpm-posterior", "D-ddpm-learned-variance")
    def sample(
        self,
        xT: torch.Tensor,
        condition=None,
        *,
        generator: torch.Generator | None = None,
        keep_trajectory: bool = False,
    ) -> SampleResult:
        r"""Ancestral sampling (Ho et al. 2020, Algorithm 2) from $x_T$ (pass
        $\mathcal N(0, I)$ draws): $x_{i-1} = \mu_\theta(x_i, i) + \Sigma_i^{1/2} z$, no noise at
        the last step. Returns a `SampleResult` with ``grid`` the times $t_T..t_0$."""
        x = check_batch(xT, "xT")
        trajectory = [x] if keep_trajectory else None
        model = _bind_condition(self.model, condition, x.shape[0])
        sched = self.schedule
        times = sched.times.to(dtype=x.dtype, device=x.device)
        nfe = 0
        for step in range(sched.steps, 0, -1):
            # every sample is at the same step: 0-d times and Python-float coefficients keep
            # the loop as cheap as the model call
            t = times[step]
            eps = self.path.convert(model(x, t), x, t, self.parameterization, "eps")
            nfe += 1
            mean = self.reverse_mean(x, step, eps)
            if step > 1:
                index = torch.full((x.shape[0],), step, dtype=torch.long, device=x.device)
                variance = self.reverse_variance(x, index, condition)
                z = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
                x = mean + variance.sqrt() * z
            else:
                x = mean
            if not torch.isfinite(x).all():
                raise ValueError(f"non-finite state after DDPM step {step}; check the model")
            if keep_trajectory:
                trajectory.append(x)
        grid = self.schedule.times.flip(0).to(dtype=x.dtype, device=x.device)
        return SampleResult(
            x=x,
            nfe=nfe,
            grid=grid,
            trajectory=torch.stack(trajectory) if keep_trajectory else None,
        )

    def respaced(self, steps: int) -> DDPM:
        """The same model on `DiscreteSchedule.respace` ``(steps)``."""
        return DDPM(
            self.model,
            self.schedule.respace(steps),
            self.parameterization,
            self.variance,
            self.variance_model,
        )
