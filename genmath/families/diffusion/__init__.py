r"""Diffusion models: DDPM, DDIM, score SDEs, EDM and classifier-free guidance — one Gaussian
path, one reverse-SDE family, one ELBO.

**Composition.** Every model here is a Gaussian path (`genmath.GaussianPath` with a VP,
cosine, sub-VP or VE schedule) + a network predicting one of the five parameterizations,
converted by the path's one table (`GaussianPath.convert`) + the reverse-SDE family and the
probability-flow ODE of `genmath.core.dynamics` for sampling + the ELBO
(`genmath.core.elbo`: `diagonal_gaussian_kl` for the discrete bound,
`gaussian_path_elbo` for its continuous-time limit) + `ode_log_likelihood` and
`bits_per_dim` (`genmath.core.likelihood`) for exact likelihoods. What lives here is the
bookkeeping of each paper:

| model | what it adds to the core | derivations |
| --- | --- | --- |
| `DDPM` | a *discrete* schedule: the path observed at times $t_0 = 0 < t_1 < \dots < t_T$ (`DiscreteSchedule`); ancestral sampling; the discrete-time bound with per-step KLs and a (discretised) decoder; respacing | D-ddpm-posterior, D-ddpm-bound-simple |
| `ddim_sample` | DDIM($\eta$): the non-Markovian process with the path's marginals; $\eta = 0$ is core's `"ddim"` ODE step, $\eta = 1$ DDPM's ancestral step | D-ddim-marginals |
| `ScoreSDE` | VP / sub-VP / VE as paths (`sub_vp`); Euler–Maruyama and predictor–corrector sampling of `ReverseSDE`; exact likelihood by the probability-flow ODE | D-sub-vp-sde, D-reverse-sde-marginals |
| `EDM` | the preconditioning $c_\mathrm{skip}, c_\mathrm{out}, c_\mathrm{in}, c_\mathrm{noise}$, the loss weight, log-normal noise levels, and Heun / stochastic-churn sampling on the $\rho$-grid | D-edm-preconditioning, D-edm-loss-weight |
| `guide` | classifier-free guidance in any parameterization; training by condition dropout | D-cfg-not-a-marginal |
| `classifier_guidance`, `autoguidance`, `cfgpp_sample` | classifier guidance by autograd; a weak model in place of the unconditional one; CFG++'s unconditional renoising | D-classifier-guidance, D-autoguidance, D-cfgpp-step |
| `gaussian_guidance_laws` | the exact Gaussian case: guided field, tilted law, and the different law guided sampling produces | D-guided-gaussian-law, D-guided-tilted-law |

Time runs as everywhere in genmath: $t = 0$ data, $t = 1$ noise,
$x_t = \alpha_t x_0 + \sigma_t\varepsilon$. A DDPM step index $i \in \{1, \dots, T\}$ is the
time $t_i$; its $\bar\alpha_i = \alpha_{t_i}^2$ and $\beta_i = 1 - \bar\alpha_i/\bar\alpha_{i-1}$.
EDM's noise level is $s_t = \sigma_t/\alpha_t = e^{-\lambda_t/2}$ on any path, and its state
is the scaled $x_t/\alpha_t = x_0 + s_t\varepsilon$.

Models are called ``model(x, t)`` with ``t`` a ``(B,)`` tensor of times (or a 0-d tensor in
the core samplers), or ``model(x, t, condition)`` when a condition is given.
"""

from ._ddim import ddim_sample
from ._ddpm import DDPM, DECODERS, VARIANCES
from ._discrete import (
    DiscreteSchedule,
    cosine_betas,
    discretized_gaussian_log_likelihood,
    linear_betas,
)
from ._edm import EDM, edm_loss_weight, edm_preconditioning, edm_sample, lognormal_noise_levels
from ._guidance import drop_condition, guide
from ._guidance_gaussian import GaussianGuidanceLaws, gaussian_guidance_laws
from ._guidance_variants import autoguidance, cfgpp_sample, classifier_guidance
from ._score_sde import ScoreSDE, sub_vp

__all__ = [
    "VARIANCES",
    "DECODERS",
    "linear_betas",
    "cosine_betas",
    "DiscreteSchedule",
    "DDPM",
    "discretized_gaussian_log_likelihood",
    "ddim_sample",
    "sub_vp",
    "ScoreSDE",
    "edm_preconditioning",
    "edm_loss_weight",
    "lognormal_noise_levels",
    "EDM",
    "edm_sample",
    "drop_condition",
    "guide",
    "classifier_guidance",
    "autoguidance",
    "cfgpp_sample",
    "GaussianGuidanceLaws",
    "gaussian_guidance_laws",
]
