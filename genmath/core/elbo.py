r"""The evidence lower bound: ELBO, IWAE, KL terms, the score-function gradient, and the
continuous-time ELBO of a Gaussian path with the weighting view of Kingma & Gao.

For a latent-variable model $p(x, z) = p(z)\,p(x \mid z)$ and an encoder $q(z \mid x)$,

$$
\log p(x) \ \ge\ \mathcal L_k(x) = \mathbb E_{z_{1:k} \sim q}\Big[\log \frac1k \sum_{i=1}^k
\frac{p(x, z_i)}{q(z_i \mid x)}\Big] \ \ge\ \mathcal L_1(x) = \mathrm{ELBO}(x),
$$

and $\log p(x) - \mathrm{ELBO}(x) = \mathrm{KL}(q(z \mid x) \,\|\, p(z \mid x))$
(derivations D-elbo-gap, D-iwae-bound, D-kl-gaussian).

Distributions are `torch.distributions.Distribution`s. A distribution over a batch of
``B`` inputs has ``batch_shape[0] == B``; every dimension of a log-density after the batch
dimension is summed, so ``Normal(loc, scale)`` with ``loc`` of shape ``(B, k)`` and
``Independent(Normal(loc, scale), 1)`` give the same ELBO.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING

import torch
from torch import distributions as D

from .._implements import implements
from ._random import global_stream_from
from ._shapes import check_batch

if TYPE_CHECKING:
    from .path import GaussianPath

__all__ = [
    "elbo",
    "iwae",
    "kl_divergence",
    "diagonal_gaussian_kl",
    "score_function_surrogate",
    "reinforce_elbo",
    "gaussian_path_elbo",
    "elbo_weighting",
    "KL_METHODS",
    "LOSSES",
]

KL_METHODS = ("auto", "analytic", "mc")
"""How the KL term is computed: ``"analytic"`` (torch's registered closed form),
``"mc"`` (Monte Carlo on the same samples as the reconstruction term), ``"auto"``
(analytic when torch registers it, Monte Carlo otherwise)."""

LOSSES = ("eps", "x0", "score", "velocity", "v")
"""The regression losses whose ELBO weighting `elbo_weighting` gives: the mean squared error
of each parameterization of `GaussianPath`."""


# --------------------------------------------------------------------------- input handling


def _check_count(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return value


def _check_distribution(dist, role: str) -> D.Distribution:
    if not isinstance(dist, D.Distribution):
        raise ValueError(
            f"{role} must be a torch.distributions.Distribution, got {type(dist).__name__}"
        )
    return dist


def _check_input(x) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"x must be a torch.Tensor of shape (B, *event), got {type(x).__name__}")
    if x.ndim < 1:
        raise ValueError("x must have shape (B, *event), got a 0-d tensor")
    return x


def _per_example(log_density: torch.Tensor, leading: tuple[int, ...], what: str) -> torch.Tensor:
    """Sum every dimension after ``leading`` (the sample and batch dimensions): those are the
    event dimensions of a distribution whose ``batch_shape`` still carries them."""
    if tuple(log_density.shape[: len(leading)]) != leading:
        raise ValueError(
            f"{what} has shape {tuple(log_density.shape)}; expected leading dimensions "
            f"{leading} (samples, batch). Does the distribution's batch_shape start with the "
            "batch size B?"
        )
    extra = tuple(range(len(leading), log_density.ndim))
    return log_density.sum(extra) if extra else log_density


def _draw(q: D.Distribution, n: int, generator, reparameterize: bool) -> torch.Tensor:
    normal = q.base_dist if type(q) is D.Independent else q
    if reparameterize and type(normal) is D.Normal:
        # A diagonal Gaussian, the VAE's encoder: its reparameterized draw loc + scale * eps
        # (what `Normal.rsample` computes) with eps from the caller's generator directly,
        # rather than seeding, drawing from and restoring the global stream.
        loc, scale = normal.loc, normal.scale
        eps = torch.randn(
            (n, *normal.batch_shape), generator=generator, dtype=loc.dtype, device=loc.device
        )
        return torch.addcmul(loc, scale, eps)
    with global_stream_from(generator):
        if reparameterize and q.has_rsample:
            return q.rsample((n,))
        # Without a reparameterization gradients cannot flow through z; the score-function
        # estimator (`reinforce_elbo`) is the way to differentiate then.
        return q.sample((n,))


def _log_likelihood(x: torch.Tensor, z: torch.Tensor, decoder) -> torch.Tensor:
    """``log p(x | z_s)`` for samples ``z`` of shape ``(S, B, ...)``, as ``(S, B)``.

    The decoder sees the samples flattened into one batch of ``S * B`` latents, so it needs
    no knowledge of the sample dimension."""
    n, batch = z.shape[0], z.shape[1]
    px = _check_distribution(decoder(z.reshape(n * batch, *z.shape[2:])), "decoder(z)")
    x_rep = x.unsqueeze(0).expand(n, *x.shape).reshape(n * batch, *x.shape[1:])
    log_px = _per_example(px.log_prob(x_rep), (n * batch,), "decoder(z).log_prob(x)")
    return log_px.reshape(n, batch)


def _analytic_kl(q: D.Distribution, prior: D.Distribution, batch: int) -> torch.Tensor | None:
    try:
        kl = D.kl_divergence(q, prior)
    except NotImplementedError:
        return None
    return _per_example(kl, (batch,), "kl_divergence(q, prior)")


def _latent_terms(x, encoder, prior, n, generator, reparameterize, densities=True):
    """Encode, draw ``n`` latents per input, and evaluate ``log q`` and ``log p(z)`` (unless
    ``densities`` is false: an ELBO with a closed-form KL needs neither)."""
    x = _check_input(x)
    batch = x.shape[0]
    q = _check_distribution(encoder(x), "encoder(x)")
    prior = _check_distribution(prior, "prior")
    z = _draw(q, n, generator, reparameterize)
    if z.ndim < 2 or z.shape[1] != batch:
        raise ValueError(
            f"encoder(x) must have batch_shape starting with B = {batch}; "
            f"its samples have shape {tuple(z.shape[1:])}"
        )
    if not densities:
        return q, z, None, None
    log_q = _per_example(_log_prob_of_own_samples(q, z), (n, batch), "encoder(x).log_prob(z)")
    log_prior = _per_example(prior.log_prob(z), (n, batch), "prior.log_prob(z)")
    return q, z, log_q, log_prior


def _log_prob_of_own_samples(q: D.Distribution, z: torch.Tensor) -> torch.Tensor:
    """``q.log_prob(z)`` for draws ``z`` of ``q`` itself, without torch's check that ``z`` lies
    in ``q``'s support (it does by construction; the check is a sizeable share of a small
    ELBO). The distribution was just built by the encoder; its setting is restored."""
    validating = q.__dict__.get("_validate_args")
    if not validating:
        return q.log_prob(z)
    q._validate_args = False
    try:
        return q.log_prob(z)
    finally:
        q._validate_args = validating


def _kl_method(kl: str) -> str:
    if kl not in KL_METHODS:
        raise ValueError(f"kl must be one of {KL_METHODS}, got {kl!r}")
    return kl


def _resolve_kl(q, prior, batch: int, kl: str) -> torch.Tensor | None:
    """The analytic KL as ``(B,)`` when it is to be used, ``None`` for Monte Carlo."""
    if kl == "mc":
        return None
    analytic = _analytic_kl(q, prior, batch)
    if analytic is None and kl == "analytic":
        raise ValueError(
            f"kl='analytic' but torch registers no closed-form KL between "
            f"{type(q).__name__} and {type(prior).__name__}; use kl='mc' or kl='auto'"
        )
    return analytic


# --------------------------------------------------------------------------- ELBO and IWAE


@implements("D-elbo-linear-gaussian", "D-elbo-recon-kl", "D-elbo-gap", "D-iwae-bound")
def elbo(
    x: torch.Tensor,
    encoder: Callable[[torch.Tensor], D.Distribution],
    decoder: Callable[[torch.Tensor], D.Distribution],
    prior: D.Distribution,
    n_samples: int = 1,
    generator: torch.Generator | None = None,
    kl: str = "auto",
) -> torch.Tensor:
    r"""The evidence lower bound of each input, shape ``(B,)``.

    $$
    \mathrm{ELBO}(x) = \mathbb E_{q(z \mid x)}[\log p(x \mid z)]
      - \mathrm{KL}(q(z \mid x) \,\|\, p(z))
      = \log p(x) - \mathrm{KL}(q(z \mid x) \,\|\, p(z \mid x)),
    $$

    estimated with ``n_samples`` draws $z_s \sim q(z \mid x)$ (reparameterized with
    ``rsample`` when the encoder has one). The KL term is torch's closed form when
    ``kl="analytic"`` (or ``"auto"`` and torch registers one); otherwise it is
    $\frac1S \sum_s [\log q(z_s \mid x) - \log p(z_s)]$ on the same draws
    (``kl="mc"``). Derivations D-elbo-gap, D-kl-gaussian, D-iwae-bound ([Kingma & Welling 2014]).

    Arguments:
        x: data, shape ``(B, *event)``.
        encoder: ``x -> q(z | x)``, a Distribution with ``batch_shape[0] == B``.
        decoder: ``z -> p(x | z)``; it receives latents of shape ``(S * B, *latent)``.
        prior: ``p(z)``, broadcastable against the latents.
        n_samples: draws of $z$ per input.
        generator: seeds the draws (torch.distributions draw from the global stream; it is
            forked so the caller's stream is left untouched).
        kl: ``"auto"``, ``"analytic"`` or ``"mc"``.
    """
    n = _check_count(n_samples, "n_samples")
    kl = _kl_method(kl)
    q, z, _, _ = _latent_terms(x, encoder, prior, n, generator, True, densities=False)
    log_px = _log_likelihood(x, z, decoder)
    kl_term = _resolve_kl(q, prior, x.shape[0], kl)
    if kl_term is None:
        # Monte-Carlo KL on the same draws: only now are log q and log p(z) needed
        batch = x.shape[0]
        log_q = _per_example(_log_prob_of_own_samples(q, z), (n, batch), "encoder(x).log_prob(z)")
        log_prior = _per_example(prior.log_prob(z), (n, batch), "prior.log_prob(z)")
        return (log_px + log_prior - log_q).mean(0)
    return log_px.mean(0) - kl_term


@implements("D-iwae-bound")
def iwae(
    x: torch.Tensor,
    encoder: Callable[[torch.Tensor], D.Distribution],
    decoder: Callable[[torch.Tensor], D.Distribution],
    prior: D.Distribution,
    k: int,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    r"""The importance-weighted bound of Burda et al. (2016), shape ``(B,)``.

    $$
    \mathcal L_k(x) = \log \frac1k \sum_{i=1}^k w_i, \qquad
    w_i = \frac{p(x \mid z_i)\, p(z_i)}{q(z_i \mid x)}, \quad z_i \sim q(z \mid x),
    $$

    computed with ``logsumexp``. In expectation $\mathcal L_1 = \mathrm{ELBO}$,
    $\mathcal L_k \le \mathcal L_{k+1} \le \log p(x)$ and $\mathcal L_k \to \log p(x)$
    (derivation D-iwae-bound).
    """
    k = _check_count(k, "k")
    _, z, log_q, log_prior = _latent_terms(x, encoder, prior, k, generator, True)
    log_w = _log_likelihood(x, z, decoder) + log_prior - log_q
    return torch.logsumexp(log_w, dim=0) - math.log(k)


@implements("D-kl-gaussian", "D-kl-vae")
def kl_divergence(
    q: D.Distribution,
    p: D.Distribution,
    method: str = "auto",
    n_samples: int = 1,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    r"""$\mathrm{KL}(q \,\|\, p)$ per batch element, shape ``(B,)``.

    ``"analytic"`` calls `torch.distributions.kl_divergence` (closed forms such as
    D-kl-gaussian); ``"mc"`` averages $\log q(z) - \log p(z)$ over ``n_samples`` draws
    $z \sim q$ (unbiased); ``"auto"`` uses the closed form when torch registers one.
    Dimensions after the first are summed as event dimensions.
    """
    _check_distribution(q, "q")
    _check_distribution(p, "p")
    method = _kl_method(method)
    n = _check_count(n_samples, "n_samples")
    if not q.batch_shape:
        raise ValueError("q must have a batch dimension: batch_shape (B, ...), got ()")
    batch = q.batch_shape[0]
    analytic = _resolve_kl(q, p, batch, method)
    if analytic is not None:
        return analytic
    z = _draw(q, n, generator, True)
    log_q = _per_example(q.log_prob(z), (n, batch), "q.log_prob(z)")
    log_p = _per_example(p.log_prob(z), (n, batch), "p.log_prob(z)")
    return (log_q - log_p).mean(0)


@implements("D-kl-gaussian", "D-kl-vae")
def diagonal_gaussian_kl(
    mean: torch.Tensor,
    std: torch.Tensor,
    prior_mean: torch.Tensor | float = 0.0,
    prior_std: torch.Tensor | float = 1.0,
) -> torch.Tensor:
    r"""$\mathrm{KL}(\mathcal N(\mu, \operatorname{diag}\sigma^2) \,\|\,
    \mathcal N(\mu_p, \operatorname{diag}\sigma_p^2))$ summed over event dimensions, shape
    ``(B,)`` — the VAE's closed-form KL term, computed by torch (derivation D-kl-gaussian).
    """
    mean = check_batch(mean, "mean")
    if not torch.is_tensor(std) or std.shape != mean.shape:
        shape = tuple(std.shape) if torch.is_tensor(std) else type(std).__name__
        raise ValueError(
            f"std must be a tensor of the shape of mean {tuple(mean.shape)}, got {shape}"
        )
    if (std <= 0).any():
        raise ValueError(f"std must be positive, got minimum {float(std.min())}")
    prior_mean = torch.as_tensor(prior_mean, dtype=mean.dtype, device=mean.device)
    prior_std = torch.as_tensor(prior_std, dtype=mean.dtype, device=mean.device)
    if (prior_std <= 0).any():
        raise ValueError(f"prior_std must be positive, got minimum {float(prior_std.min())}")
    kl = D.kl_divergence(D.Normal(mean, std), D.Normal(prior_mean, prior_std))
    return _per_example(kl, (mean.shape[0],), "KL")


# --------------------------------------------------------------------------- score function


@implements("D-reinforce")
def score_function_surrogate(
    f: torch.Tensor,
    log_q: torch.Tensor,
    baseline: str | torch.Tensor | None = "leave_one_out",
) -> torch.Tensor:
    r"""A surrogate whose value is ``f`` and whose gradient is the REINFORCE estimate.

    For samples $z_s \sim q_\theta$ drawn *without* a reparameterization (``f`` and
    ``log_q`` evaluated at them, shape ``(S, ...)``),

    $$
    \nabla_\theta \,\mathrm{surrogate}_s = \nabla_\theta f(z_s)
      + \big(f(z_s) - b_s\big)\,\nabla_\theta \log q_\theta(z_s),
    $$

    an unbiased estimate of $\nabla_\theta \mathbb E_{q_\theta}[f]$ because
    $\mathbb E_q[b\, \nabla \log q] = b\, \nabla \int q = 0$ for any $b$ independent of
    $z_s$ (derivation D-reinforce; [Williams 1992]).

    Arguments:
        f: the integrand at each sample, shape ``(S, ...)``; may depend on $\theta$ directly.
        log_q: $\log q_\theta(z_s)$, same shape, differentiable in $\theta$.
        baseline: ``"leave_one_out"`` ($b_s$ = mean of ``f`` over the other samples, which is
            independent of $z_s$; needs $S \ge 2$), ``None`` (no baseline), or a tensor that
            must not depend on the samples (it is detached).
    """
    if f.shape != log_q.shape:
        raise ValueError(
            f"f and log_q must have the same shape, got {tuple(f.shape)} and {tuple(log_q.shape)}"
        )
    signal = f.detach()
    if isinstance(baseline, str):
        if baseline != "leave_one_out":
            raise ValueError(
                f"baseline must be 'leave_one_out', None or a tensor, got {baseline!r}"
            )
        n = signal.shape[0] if signal.ndim else 0
        if n < 2:
            raise ValueError(
                f"the leave-one-out baseline needs at least 2 samples along dim 0, got {n}"
            )
        signal = signal - (signal.sum(0, keepdim=True) - signal) / (n - 1)
    elif baseline is not None:
        signal = signal - torch.as_tensor(baseline, dtype=f.dtype, device=f.device).detach()
    # (log_q - log_q.detach()) is zero in value and carries grad log q: the surrogate's value
    # stays f, so it can be reported as the estimate itself.
    return f + signal * (log_q - log_q.detach())


@implements("D-reinforce", "D-elbo-linear-gaussian")
def reinforce_elbo(
    x: torch.Tensor,
    encoder: Callable[[torch.Tensor], D.Distribution],
    decoder: Callable[[torch.Tensor], D.Distribution],
    prior: D.Distribution,
    n_samples: int = 2,
    generator: torch.Generator | None = None,
    baseline: str | torch.Tensor | None = "leave_one_out",
    kl: str = "auto",
) -> torch.Tensor:
    r"""The ELBO, shape ``(B,)``, with the score-function (REINFORCE) gradient.

    For latents without a reparameterization (discrete $z$, say). The value equals the
    Monte-Carlo ELBO of `elbo`; its gradient is the unbiased estimate of
    `score_function_surrogate` applied to $f = \log p(x \mid z) + \log p(z) - \log q(z \mid x)$
    (or to $f = \log p(x \mid z)$ with the closed-form KL subtracted, when ``kl`` selects it),
    with the leave-one-out baseline by default (derivation D-reinforce).
    """
    n = _check_count(n_samples, "n_samples")
    kl = _kl_method(kl)
    q, z, log_q, log_prior = _latent_terms(x, encoder, prior, n, generator, False)
    z = z.detach()
    log_px = _log_likelihood(x, z, decoder)
    kl_term = _resolve_kl(q, prior, x.shape[0], kl)
    if kl_term is None:
        return score_function_surrogate(log_px + log_prior - log_q, log_q, baseline).mean(0)
    return score_function_surrogate(log_px, log_q, baseline).mean(0) - kl_term


# --------------------------------------------------------------------------- Gaussian path ELBO


def _interval(path, t_interval) -> tuple[float, float]:
    lo, hi = path.schedule.safe_interval if t_interval is None else t_interval
    lo, hi = float(lo), float(hi)
    if not 0.0 <= lo < hi <= 1.0:
        raise ValueError(f"t_interval must satisfy 0 <= t_lo < t_hi <= 1, got ({lo}, {hi})")
    return lo, hi


def _broadcast(coefficient: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return coefficient.reshape(coefficient.shape[0], *([1] * (x.ndim - 1)))


@implements("D-vdm-elbo")
def gaussian_path_elbo(
    model: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    x0: torch.Tensor,
    path: GaussianPath,
    parameterization: str = "x0",
    *,
    n_t: int = 1,
    method: str = "mc",
    sampling: str = "log_snr",
    t_interval: tuple[float, float] | None = None,
    generator: torch.Generator | None = None,
    terms: bool = False,
):
    r"""The continuous-time ELBO of a Gaussian path (Kingma et al. 2021), shape ``(B,)``.

    With $\lambda_t = \log(\alpha_t^2/\sigma_t^2)$, $[t_0, t_1]$ the schedule's
    ``safe_interval`` (or ``t_interval``), $d$ the data dimension and
    $\hat x_0 = \hat x_0(x_t, t)$ the model output converted to a denoiser by
    `GaussianPath.convert`,

    $$
    -\mathrm{ELBO}(x_0) = \underbrace{\tfrac12 e^{\lambda_{t_1}} \|x_0\|^2}_{\text{prior}}
      + \underbrace{\tfrac d2 \big(\log 2\pi + 1 - \lambda_{t_0}\big)}_{\text{reconstruction}}
      + \underbrace{\tfrac12 \int_{t_0}^{t_1} \Big(-\frac{d\lambda}{dt}\Big) e^{\lambda_t}\,
        \mathbb E_\varepsilon \|x_0 - \hat x_0(x_t, t)\|^2 \, dt}_{\text{diffusion}} .
    $$

    The prior is $p(x_{t_1}) = \mathcal N(0, \sigma_{t_1}^2 I)$ and the decoder
    $p(x_0 \mid x_{t_0}) = \mathcal N(x_{t_0}/\alpha_{t_0}, (\sigma_{t_0}/\alpha_{t_0})^2 I)$;
    their terms are exact expectations over $x_{t_1}$, $x_{t_0}$. The diffusion term is the
    $T \to \infty$ limit of the per-step KLs $\frac12(e^{\lambda_s} - e^{\lambda_t})
    \|x_0 - \hat x_0\|^2$ (derivation D-vdm-elbo). It is estimated by Monte Carlo:

    * ``sampling="log_snr"`` (default): $\lambda \sim U[\lambda_{t_1}, \lambda_{t_0}]$,
      $t = \lambda^{-1}(\lambda)$, integrand $\frac12 e^\lambda \|x_0 - \hat x_0\|^2$ times the
      interval length — the same integral in the variable $\lambda$, where it is flat for a
      good model, so the estimator has low variance;
    * ``sampling="t"``: $t \sim U[t_0, t_1]$ with the integrand above times $t_1 - t_0$.

    ``method="quadrature"`` replaces the random times by ``n_t`` Gauss–Legendre nodes in the
    chosen variable (still one $\varepsilon$ per node): deterministic in $t$, for tests.

    Arguments:
        model: ``(x_t, t) -> prediction`` in ``parameterization``; ``t`` has shape ``(N,)``.
        x0: data, shape ``(B, *event)``.
        path: a `GaussianPath`.
        parameterization: one of `GaussianPath`'s ``PARAMETERIZATIONS``.
        n_t: number of times (draws or nodes) per input.
        terms: also return the three terms of $-\mathrm{ELBO}$ as a dict of ``(B,)`` tensors
            (``"prior"``, ``"reconstruction"``, ``"diffusion"``).
    """
    x0 = check_batch(x0, "x0")
    n = _check_count(n_t, "n_t")
    if method not in ("mc", "quadrature"):
        raise ValueError(f"method must be 'mc' or 'quadrature', got {method!r}")
    if sampling not in ("log_snr", "t"):
        raise ValueError(f"sampling must be 'log_snr' or 't', got {sampling!r}")
    t_lo, t_hi = _interval(path, t_interval)
    batch, dim = x0.shape[0], x0[0].numel()
    like = dict(dtype=x0.dtype, device=x0.device)
    ends = torch.tensor([t_lo, t_hi], **like)
    lam_hi, lam_lo = path.log_snr(ends).unbind()  # lambda decreases with t

    if sampling == "log_snr":
        lo, hi = lam_lo, lam_hi
    else:
        lo, hi = torch.tensor(t_lo, **like), torch.tensor(t_hi, **like)
    if method == "quadrature":
        nodes, weights = _gauss_legendre(n, **like)
        u = nodes.repeat_interleave(batch)
        weight = weights.repeat_interleave(batch) * n  # the mean over nodes below undoes n
    else:
        u = torch.rand(n * batch, generator=generator, **like)
        weight = torch.ones_like(u)
    grid = lo + (hi - lo) * u
    if sampling == "log_snr":
        t = path.schedule.inverse_log_snr(grid).clamp(t_lo, t_hi)
    else:
        t = grid

    x_rep = x0.repeat(n, *([1] * (x0.ndim - 1)))
    xt, _ = path.sample(x_rep, t, generator=generator)
    x0_hat = path.convert(model(xt, t), xt, t, parameterization, "x0")
    lam = path.log_snr(t)
    squared_error = (x_rep - x0_hat).pow(2).flatten(1).sum(1)
    integrand = 0.5 * torch.exp(lam) * squared_error
    if sampling == "t":
        integrand = integrand * -path.schedule.d_log_snr(t)
    diffusion = ((hi - lo) * weight * integrand).reshape(n, batch).mean(0)

    prior = 0.5 * torch.exp(lam_lo) * x0.pow(2).flatten(1).sum(1)
    reconstruction = (0.5 * dim * (math.log(2 * math.pi) + 1 - lam_hi)).expand(batch)
    value = -(prior + reconstruction + diffusion)
    if terms:
        return value, {"prior": prior, "reconstruction": reconstruction, "diffusion": diffusion}
    return value


def _gauss_legendre(n: int, dtype, device) -> tuple[torch.Tensor, torch.Tensor]:
    """Nodes in [0, 1] and weights summing to 1."""
    import numpy as np

    nodes, weights = np.polynomial.legendre.leggauss(n)
    return (
        torch.as_tensor((nodes + 1) / 2, dtype=dtype, device=device),
        torch.as_tensor(weights / 2, dtype=dtype, device=device),
    )


@implements("D-elbo-weighting")
def elbo_weighting(loss: str, path: GaussianPath, lam: float | torch.Tensor) -> torch.Tensor:
    r"""The weighting $w(\lambda)$ by which a standard regression loss weights the ELBO.

    Kingma & Gao (2023) write a diffusion loss as
    $\mathcal L_w = \frac12 \mathbb E_{t \sim U(0,1)} \mathbb E_\varepsilon
    \big[w(\lambda_t)\,(-\tfrac{d\lambda}{dt})\,\|\varepsilon - \hat\varepsilon\|^2\big]$; the
    ELBO's diffusion term is $w \equiv 1$. At fixed $x_t$ every parameterization is affine in
    the prediction, so its squared error is $c_t^2 \|\varepsilon - \hat\varepsilon\|^2$ with
    $c_t$ read off `GaussianPath.convert` ($1$ for ``"eps"``, $e^{-\lambda/2}$ for ``"x0"``,
    $1/\sigma$ for ``"score"``, $(\alpha^2+\sigma^2)/\alpha$ for ``"v"``,
    $-\tfrac12\sigma\,d\lambda/dt$ for ``"velocity"``). The loss
    $\mathbb E_{t \sim U(0,1)}\mathbb E\|\mathrm{target} - \mathrm{prediction}\|^2$ therefore
    has

    $$
    w(\lambda) = \frac{2\, c_t^2}{-\,d\lambda/dt}\Big|_{t = \lambda^{-1}(\lambda)} ,
    $$

    e.g. $e^{-\lambda/2}$ for flow matching on the CondOT path (derivation D-elbo-weighting).

    Arguments:
        loss: one of `LOSSES`.
        path: the `GaussianPath` whose schedule maps $\lambda$ to $t$.
        lam: log-SNR values (float or tensor).
    """
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")
    lam = torch.as_tensor(lam, dtype=torch.get_default_dtype()) if not torch.is_tensor(lam) else lam
    shape = lam.shape
    t = path.schedule.inverse_log_snr(lam.reshape(-1))
    column = torch.zeros(t.shape[0], 1, dtype=t.dtype, device=t.device)
    # convert is affine in the prediction: the difference of two predictions one unit of
    # eps apart is the coefficient c_t of the loss in units of eps.
    coefficient = path.convert(column + 1, column, t, "eps", loss) - path.convert(
        column, column, t, "eps", loss
    )
    weight = 2 * coefficient.squeeze(1).pow(2) / -path.schedule.d_log_snr(t)
    return weight.reshape(shape)
