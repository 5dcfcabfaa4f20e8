r"""The exact Gaussian case of guidance: what the guided field is, what it is said to sample,
and what it does sample.

Data $x_0 \sim \mathcal N(\mu, \operatorname{diag} v)$ and a linear-Gaussian classifier
$p(c \mid x_0) = \mathcal N(c; x_0, \operatorname{diag} r)$ — coordinates are independent, so
everything below is per coordinate. The conditional law is
$\mathcal N(m_c, a)$, $a = (1/v + 1/r)^{-1}$, $m_c = a(\mu/v + c/r)$. Guidance at scale $w$
(classifier guidance with the exact noisy classifier, or classifier-free guidance — the same
field) is often read as sampling the **tilted** law
$p(x_0)\,p(c \mid x_0)^w \propto \mathcal N(m_T, v_T)$, $1/v_T = 1/v + w/r$. The guided
probability-flow ODE, started from $\mathcal N(0, 1)$ at $\alpha = 0$ on a variance-preserving
path, produces instead $\mathcal N(m_S, v_S)$ with the **geometric** variance
$v_S = v^{1-w} a^{w}$ where the tilted one is the harmonic
$v_T = \big((1-w)/v + w/a\big)^{-1}$: they differ for $w \notin \{0, 1\}$ and $a \ne v$
(D-guided-gaussian-law, D-guided-gaussian-mean, D-guided-tilted-law, D-guided-law-gap).
"""

from __future__ import annotations

import dataclasses

import torch

from ..._implements import implements
from ...core._shapes import as_time, check_batch, expand_time
from ...core._validate import as_parameter, non_negative, positive_tensor
from ...core.path import GaussianPath, check_gaussian_path

# Composite Gauss–Legendre for the sampled mean: panels [1 - 2^-k, 1 - 2^-(k+1)] graded
# towards s = 1, where the integrand has a pole at distance ~ a/2 for a small variance a;
# each panel is as wide as its distance to s = 1, so every panel converges geometrically.
_PANELS, _NODES = 48, 16


@dataclasses.dataclass(frozen=True)
class GaussianGuidanceLaws:
    r"""The three laws of guided Gaussian sampling, per coordinate (all ``(d,)``).

    Attributes:
        mean, variance: the data law $\mathcal N(\mu, v)$.
        conditional_mean, conditional_variance: $p(x_0 \mid c) = \mathcal N(m_c, a)$.
        tilted_mean, tilted_variance: $p(x_0)\,p(c \mid x_0)^w$ normalised, $\mathcal N(m_T, v_T)$.
        sampled_mean, sampled_variance: the law of the guided probability-flow ODE's output,
            $\mathcal N(m_S, v_S)$, $v_S = v^{1-w} a^w$.
        scale: $w$.
    """

    mean: torch.Tensor
    variance: torch.Tensor
    conditional_mean: torch.Tensor
    conditional_variance: torch.Tensor
    tilted_mean: torch.Tensor
    tilted_variance: torch.Tensor
    sampled_mean: torch.Tensor
    sampled_variance: torch.Tensor
    scale: float

    @implements("D-classifier-guidance")
    def guided_score(self, x: torch.Tensor, t, path: GaussianPath) -> torch.Tensor:
        r"""The guided score $(1 - w)\nabla\log p_t(x) + w\nabla\log p_t(x \mid c)$ in closed
        form on ``path``: $-(1-w)(x - \alpha_t\mu)/V_\varnothing - w(x - \alpha_t m_c)/V_c$ with
        $V_\varnothing = \alpha_t^2 v + \sigma_t^2$, $V_c = \alpha_t^2 a + \sigma_t^2$
        (D-classifier-guidance). ``x``: ``(B, d)``; ``t`` a time or ``(B,)``."""
        check_batch(x, "x", event=True)
        if x.ndim != 2 or x.shape[1] != self.mean.shape[0]:
            raise ValueError(f"x must have shape (B, {self.mean.shape[0]}), got {tuple(x.shape)}")
        if x.dtype != self.mean.dtype:
            raise ValueError(f"x has dtype {x.dtype} but the laws have dtype {self.mean.dtype}")
        check_gaussian_path(path)
        t = as_time(t, like=x)
        alpha, sigma = expand_time(path.alpha(t), x), expand_time(path.sigma(t), x)
        w = self.scale
        v_n = alpha**2 * self.variance + sigma**2
        v_c = alpha**2 * self.conditional_variance + sigma**2
        return -(1 - w) * (x - alpha * self.mean) / v_n - w * (x - alpha * self.conditional_mean) / v_c


def _vector(value, name: str, size: int | None, like: torch.Tensor | None) -> torch.Tensor:
    value = as_parameter(value, name)
    if like is not None:
        if value.dtype != like.dtype:
            raise ValueError(f"{name} has dtype {value.dtype} but mean has dtype {like.dtype}")
        value = value.to(like.device)
    if value.ndim != 1 or value.shape[0] == 0 or (size is not None and value.shape[0] != size):
        expected = f"({size},) to match mean" if size is not None else "(d,), d >= 1"
        raise ValueError(f"{name} must have shape {expected}, got {tuple(value.shape)}")
    return value


@implements("D-guided-gaussian-law", "D-guided-gaussian-mean", "D-guided-tilted-law", "D-guided-law-gap")
def gaussian_guidance_laws(mean, variance, likelihood_variance, condition, scale: float) -> GaussianGuidanceLaws:
    r"""The exact laws of guided sampling for Gaussian data $\mathcal N(\mu, \operatorname{diag} v)$
    and the classifier $p(c \mid x_0) = \mathcal N(c; x_0, \operatorname{diag} r)$ at guidance
    scale $w \ge 0$: the conditional, the tilted $p(x_0)p(c \mid x_0)^w$, and the law the guided
    probability-flow ODE actually samples (started from $\mathcal N(0, I)$ at $\alpha = 0$ on
    a variance-preserving path; by the path's scale invariance, on any path with
    $\alpha_1 = 0$, $\sigma_1 = 1$ too), whose variance is $v^{1-w}a^w$ and whose mean is the
    one-dimensional integral of D-guided-gaussian-law.

    Arguments:
        mean: $\mu$, ``(d,)``; variance: $v > 0$, ``(d,)``.
        likelihood_variance: $r > 0$, ``(d,)``; condition: the observed $c$, ``(d,)``.
        scale: $w \ge 0$.
    """
    mean = _vector(mean, "mean", None, None)
    d = mean.shape[0]
    variance = positive_tensor(_vector(variance, "variance", d, mean), "variance")
    noise = positive_tensor(_vector(likelihood_variance, "likelihood_variance", d, mean), "likelihood_variance")
    condition = _vector(condition, "condition", d, mean)
    w = non_negative(scale, "scale")
    cond_var = 1 / (1 / variance + 1 / noise)
    cond_mean = cond_var * (mean / variance + condition / noise)
    tilted_var = 1 / (1 / variance + w / noise)
    tilted_mean = tilted_var * (mean / variance + w * condition / noise)
    sampled_var = variance ** (1 - w) * cond_var**w
    sampled_mean = _sampled_mean(mean, variance, cond_mean, cond_var, w)
    return GaussianGuidanceLaws(
        mean=mean,
        variance=variance,
        conditional_mean=cond_mean,
        conditional_variance=cond_var,
        tilted_mean=tilted_mean,
        tilted_variance=tilted_var,
        sampled_mean=sampled_mean,
        sampled_variance=sampled_var,
        scale=w,
    )


def _sampled_mean(m_n, v_n, m_c, v_c, w: float) -> torch.Tensor:
    r"""$m_S = v^{(1-w)/2} a^{w/2}\int_0^1 V_\varnothing^{-(1-w)/2} V_c^{-w/2}\big((1-w)m_\varnothing
    / V_\varnothing + w\,m_c / V_c\big)\,ds$, $V_k = 1 + (v_k - 1)s^2$ (D-guided-gaussian-law)."""
    import numpy as np

    nodes, weights = np.polynomial.legendre.leggauss(_NODES)
    edges = 1 - 0.5 ** np.arange(_PANELS + 1)
    edges[-1] = 1.0
    low, high = edges[:-1, None], edges[1:, None]
    s = (low + (high - low) * (nodes[None, :] + 1) / 2).reshape(-1)
    ws = ((high - low) / 2 * weights[None, :]).reshape(-1)
    s = torch.as_tensor(s, dtype=m_n.dtype, device=m_n.device)[:, None]
    ws = torch.as_tensor(ws, dtype=m_n.dtype, device=m_n.device)[:, None]
    V_n = 1 + (v_n - 1) * s**2
    V_c = 1 + (v_c - 1) * s**2
    integrand = V_n ** (-(1 - w) / 2) * V_c ** (-w / 2) * ((1 - w) * m_n / V_n + w * m_c / V_c)
    return v_n ** ((1 - w) / 2) * v_c ** (w / 2) * (ws * integrand).sum(0)


