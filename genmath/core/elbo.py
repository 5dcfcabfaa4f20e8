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
import warnings
from collections.abc import Callable

import torch
from torch import distributions as D

from .._implements import implements
from ._path_elbo import LOSSES, elbo_weighting, gaussian_path_elbo
from ._random import global_stream_from
from ._shapes import check_batch, check_like
from ._validate import (
    InputTypeError,
    check_float_tensor,
    check_generator,
    check_option,
    check_real,
    positive_int,
    positive_tensor,
)

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


# --------------------------------------------------------------------------- input handling


def _check_count(value, name: str) -> int:
    return positive_int(value, name)


def _check_distribution(dist, role: str) -> D.Distribution:
    if not isinstance(dist, D.Distribution):
        raise InputTypeError(
            f"{role} must be a torch.distributions.Distribution, got {type(dist).__name__}"
        )
    return dist


def _check_input(x) -> torch.Tensor:
    """Data of shape ``(B, *event)``, ``B >= 1``: floating, or integer class values (for a
    categorical decoder)."""
    if not isinstance(x, torch.Tensor):
        raise InputTypeError(f"x must be a torch.Tensor of shape (B, *event), got {type(x).__name__}")
    if x.is_complex() or x.dtype == torch.bool:
        raise ValueError(f"x must hold real numbers or integer class values, got dtype {x.dtype}")
    if x.ndim < 1:
        raise ValueError("x must have shape (B, *event), got a 0-d tensor")
    if x.shape[0] == 0:
        raise ValueError(f"x must hold at least one sample, got an empty batch of shape {tuple(x.shape)}")
    return x


def _same_dtype_terms(x: torch.Tensor, terms: dict[str, torch.Tensor]) -> None:
    """The log-densities of one bound share the data's dtype (or, for integer data, the
    encoder's): a float64 prior must not turn float32 data into a float64 ELBO silently."""
    reference = x.dtype if x.is_floating_point() else next(iter(terms.values())).dtype
    for role, term in terms.items():
        if term.dtype != reference:
            what = "x" if x.is_floating_point() else "encoder(x)"
            raise InputTypeError(
                f"{role} has dtype {term.dtype} but {what} has dtype {reference}; the data, the "
                "encoder, the decoder and the prior must share a dtype (convert the data or "
                "the model/distribution)"
            )


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


def _as_multivariate_normal(dist: D.Distribution) -> D.Distribution:
    """A diagonal Gaussian vector (``Independent(Normal, 1)``) as the `MultivariateNormal`
    it is, so that torch's Gaussian-Gaussian closed form applies to it; others unchanged."""
    if (
        isinstance(dist, D.Independent)
        and isinstance(dist.base_dist, D.Normal)
        and dist.reinterpreted_batch_ndims == 1
    ):
        base = dist.base_dist
        return D.MultivariateNormal(base.loc, scale_tril=torch.diag_embed(base.scale))
    return dist


def _analytic_kl(q: D.Distribution, prior: D.Distribution, batch: int) -> torch.Tensor | None:
    try:
        kl = D.kl_divergence(q, prior)
    except NotImplementedError:
        # a diagonal Gaussian against a full-covariance one (PPCA's prior, an exact
        # posterior): torch's MultivariateNormal closed form covers both once rewritten
        q_mvn, prior_mvn = _as_multivariate_normal(q), _as_multivariate_normal(prior)
        if q_mvn is q and prior_mvn is prior:
            return None
        try:
            kl = D.kl_divergence(q_mvn, prior_mvn)
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
    _same_dtype_terms(x, {"encoder(x)": log_q, "prior": log_prior})
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


def _kl_method(kl: str, name: str = "kl") -> str:
    return check_option(kl, KL_METHODS, name)


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
    if analytic is None:
        warnings.warn(
            f"kl='auto': torch registers no closed-form KL between {_describe(q)} and "
            f"{_describe(prior)}, so the Monte-Carlo estimate (higher variance) is used; pass "
            "kl='mc' to choose it explicitly, or register a closed form with "
            "torch.distributions.kl.register_kl",
            stacklevel=3,
        )
    return analytic


def _describe(dist: D.Distribution) -> str:
    if isinstance(dist, D.Independent):
        return f"Independent({type(dist.base_dist).__name__})"
    return type(dist).__name__


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
    check_generator(generator)
    q, z, _, _ = _latent_terms(x, encoder, prior, n, generator, True, densities=False)
    log_px = _log_likelihood(x, z, decoder)
    _same_dtype_terms(x, {"encoder(x)": z, "decoder(z)": log_px})
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
    check_generator(generator)
    _, z, log_q, log_prior = _latent_terms(x, encoder, prior, k, generator, True)
    log_px = _log_likelihood(x, z, decoder)
    _same_dtype_terms(x, {"encoder(x)": log_q, "decoder(z)": log_px})
    log_w = log_px + log_prior - log_q
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
    method = _kl_method(method, "method")
    n = _check_count(n_samples, "n_samples")
    check_generator(generator)
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
    mean = check_batch(mean, "mean", event=True)
    check_like(std, mean, "std", "mean")
    positive_tensor(std, "std", like=mean)
    if isinstance(prior_mean, torch.Tensor):
        check_float_tensor(prior_mean, "prior_mean")
        if prior_mean.dtype != mean.dtype:
            raise InputTypeError(
                f"prior_mean has dtype {prior_mean.dtype} but mean has dtype {mean.dtype}"
            )
    else:
        prior_mean = torch.tensor(check_real(prior_mean, "prior_mean"), dtype=mean.dtype, device=mean.device)
    prior_std = positive_tensor(prior_std, "prior_std", like=mean)
    kl = D.kl_divergence(
        D.Normal(mean, std, validate_args=False), D.Normal(prior_mean, prior_std, validate_args=False)
    )
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
    check_float_tensor(f, "f")
    check_like(log_q, f, "log_q", "f")
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
    if isinstance(baseline, str) and baseline == "leave_one_out" and n < 2:
        raise ValueError(
            f"n_samples must be at least 2 for the leave-one-out baseline (each sample's baseline "
            f"is the mean of the others), got {n}; pass baseline=None for a single sample"
        )
    kl = _kl_method(kl)
    check_generator(generator)
    q, z, log_q, log_prior = _latent_terms(x, encoder, prior, n, generator, False)
    z = z.detach()
    log_px = _log_likelihood(x, z, decoder)
    _same_dtype_terms(x, {"encoder(x)": z, "decoder(z)": log_px})
    kl_term = _resolve_kl(q, prior, x.shape[0], kl)
    if kl_term is None:
        return score_function_surrogate(log_px + log_prior - log_q, log_q, baseline).mean(0)
    return score_function_surrogate(log_px, log_q, baseline).mean(0) - kl_term


