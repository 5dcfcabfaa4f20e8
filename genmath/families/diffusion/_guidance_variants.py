r"""Guidance beyond classifier-free: classifier guidance, autoguidance and CFG++.

* **Classifier guidance** (Dhariwal & Nichol 2021): $s_w = \nabla\log p_t(x) +
  w\,\nabla_x\log p_t(c \mid x)$, the gradient of a classifier of the noisy state; with the
  exact noisy classifier it equals classifier-free guidance at the same $w$, since
  $\nabla\log p_t(x \mid c) = \nabla\log p_t(x) + \nabla\log p_t(c \mid x)$ (D-classifier-guidance).
* **Autoguidance** (Karras et al. 2024): $D_w = D_0 + w\,(D_1 - D_0)$ with a *weaker* version
  $D_0$ of the model $D_1$ in place of the unconditional one (D-autoguidance).
* **CFG++** (Chung et al. 2024): a DDIM step that denoises with the guided prediction but
  renoises with the *unconditional* noise estimate,
  $x_s = \alpha_s\hat x_0^{\lambda} + \sigma_s\hat\varepsilon_\varnothing$,
  $\hat x_0^{\lambda} = \hat x_0^\varnothing + \lambda(\hat x_0^c - \hat x_0^\varnothing)$,
  $\lambda \in [0, 1]$ (D-cfgpp-step).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from ..._implements import implements
from ...core._shapes import check_batch, positive_int
from ...core._validate import check_callable, check_finite, non_negative
from ...core.dynamics import SampleResult
from ...core.grids import check_grid, uniform_grid
from ...core.path import GaussianPath, check_gaussian_path, check_parameterization
from ..flow_matching import guided as _guided_combination
from ._common import Model


def _scale(value, name: str = "scale") -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r:.40}")
    return float(value)


@implements("D-classifier-guidance")
def classifier_guidance(
    score: Model, classifier: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], scale: float
) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    r"""Classifier guidance (Dhariwal & Nichol 2021; Song et al. 2021): ``(x, t) ->``
    $\nabla\log p_t(x) + w\,\nabla_x \log p_t(c \mid x)$.

    Arguments:
        score: ``(x, t) ->`` the unconditional score $\nabla\log p_t(x)$, shape of ``x``.
        classifier: ``(x, t) ->`` $\log p_t(c \mid x)$ of the wanted condition, shape ``(B,)``,
            differentiable in ``x`` (its gradient is taken by autograd, per sample: the
            batch entries must not interact).
        scale: $w$; $w = 1$ with the exact noisy classifier is the conditional score
            (D-classifier-guidance).
    """
    check_callable(score, "score")
    check_callable(classifier, "classifier")
    scale = _scale(scale)

    def field(x: torch.Tensor, t) -> torch.Tensor:
        with torch.enable_grad():
            probe = x.detach().requires_grad_(True)
            log_likelihood = classifier(probe, t)
            if not isinstance(log_likelihood, torch.Tensor) or log_likelihood.shape != x.shape[:1]:
                raise ValueError(
                    f"classifier must return log p(c | x) of shape ({x.shape[0]},), got "
                    f"{getattr(log_likelihood, 'shape', type(log_likelihood).__name__)}"
                )
            (gradient,) = torch.autograd.grad(log_likelihood.sum(), probe)
        return score(x, t) + scale * gradient

    return field


@implements("D-autoguidance")
def autoguidance(model: Model, weak_model: Model, scale: float) -> Model:
    r"""Autoguidance (Karras et al. 2024): ``(x, t) ->`` $D_0 + w\,(D_1 - D_0)$, the model
    $D_1$ = ``model`` extrapolated away from a weaker version of itself $D_0$ = ``weak_model``
    (smaller, or trained less, on the same task and condition).

    Like classifier-free guidance it works in any parameterization (D-cfg-guided), and it
    needs no unconditional model. On Gaussian data with a weak model fitted to a broader
    Gaussian the guided score is the exact affine field of D-autoguidance: $w > 1$ sharpens
    the law towards the data's support, $w = 1$ is the model itself."""
    check_callable(model, "model")
    check_callable(weak_model, "weak_model")
    return _guided_combination(model, weak_model, _scale(scale))


@implements("D-cfgpp-step")
def cfgpp_sample(
    conditional: Model,
    unconditional: Model,
    x1: torch.Tensor,
    path: GaussianPath,
    *,
    scale: float,
    steps: int | None = None,
    grid=None,
    parameterization: str = "eps",
    keep_trajectory: bool = False,
) -> SampleResult:
    r"""CFG++ sampling (Chung et al. 2024): deterministic DDIM in which each step from $t$ to
    $s < t$ denoises with the guided prediction and renoises with the unconditional one,

    $$
    x_s = \alpha_s\big(\hat x_0^\varnothing + \lambda(\hat x_0^c - \hat x_0^\varnothing)\big)
    + \sigma_s\,\frac{x_t - \alpha_t\hat x_0^\varnothing}{\sigma_t},
    $$

    (D-cfgpp-step), where CFG's DDIM step renoises with the guided $\hat\varepsilon^\lambda$ too;
    the two differ by $\lambda\alpha_t\sigma_s/\sigma_t\,(\hat x_0^c - \hat x_0^\varnothing)$.
    $\lambda = 0$ is unconditional DDIM exactly; $\lambda = 1$ is *not* conditional DDIM (it
    still renoises with the unconditional noise). The paper uses $\lambda \in [0, 1]$, in the
    part CFG's $w$ plays.

    Arguments:
        conditional, unconditional: ``(x, t) ->`` predictions in ``parameterization``.
        x1: the start at the first grid time, ``(B, *event)``.
        path: the `GaussianPath`.
        scale: $\lambda \ge 0$.
        steps: number of uniform steps over the schedule's safe interval (without ``grid``).
        grid: an explicit decreasing grid in $[0, 1]$, which may end at $0$.
    """
    check_callable(conditional, "conditional")
    check_callable(unconditional, "unconditional")
    x = check_finite(check_batch(x1, "x1"), "x1", "the start of sampling")
    check_gaussian_path(path)
    check_parameterization(parameterization)
    scale = non_negative(scale, "scale")
    if grid is None:
        if steps is None:
            raise ValueError("cfgpp_sample needs steps (a positive integer) or an explicit grid")
        grid = uniform_grid(positive_int(steps, "steps"), path.schedule)
    grid = check_grid(grid).to(dtype=x.dtype, device=x.device)
    if grid[1] > grid[0]:
        raise ValueError("cfgpp_sample runs from noise to data: the grid must decrease")
    alpha, sigma = path.alpha(grid), path.sigma(grid)
    trajectory = [x] if keep_trajectory else None
    for k in range(grid.numel() - 1):
        t = grid[k]
        x0_c = path.convert(conditional(x, t), x, t, parameterization, "x0")
        prediction = unconditional(x, t)
        x0_n = path.convert(prediction, x, t, parameterization, "x0")
        eps_n = path.convert(prediction, x, t, parameterization, "eps")
        x = alpha[k + 1] * (x0_n + scale * (x0_c - x0_n)) + sigma[k + 1] * eps_n
        if not torch.isfinite(x).all():
            raise ValueError(f"non-finite state after CFG++ step {k} (t = {float(t):.6g})")
        if keep_trajectory:
            trajectory.append(x)
    return SampleResult(
        x=x,
        nfe=2 * (grid.numel() - 1),
        grid=grid,
        trajectory=torch.stack(trajectory) if keep_trajectory else None,
    )
