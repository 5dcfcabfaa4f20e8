"""Bindings of the ELBO topic (`genmath.derivations.elbo`): `genmath.core.elbo` and the VAE
family evaluated in float64 at random points and compared with the derivations' expressions.

* IWAE: the importance weights are set directly (a decoder whose likelihood is the latent, an
  encoder whose draws are preset), so `iwae` is bound at given weights, and its expectation
  over a two-point weight law by enumerating the equally likely draws;
* REINFORCE: the autograd gradient of `score_function_surrogate` against the derived
  per-draw gradient, with a given baseline, none, and the leave-one-out baseline;
* the Gaussian-path ELBO: term by term, on models whose error is a known polynomial in the
  integration variable (exact under Gauss–Legendre, and constant under Monte Carlo);
* the ELBO weightings: `elbo_weighting` for every loss on three schedules.
"""

from __future__ import annotations

import itertools

import sympy as sp

from . import elbo as T
from ._engine import Binding, LogUniform, Uniform
from ._registry import register
from .elbo_gap import _elbo_closed, _kl_prior, _linear_domain, _linear_model, _reconstruction

# --------------------------------------------------------------------------- IWAE


def _weights_problem(weights):
    """``(x, encoder, decoder, prior)`` whose importance weights are ``weights`` (shape
    ``(k, B)``): the draws are $z = 2w$, $\\log p(x \\mid z) = \\log z - z$ (an exponential of
    rate $z$ at $x = 1$), $\\log p(z) = -z$, $\\log q(z) = \\log 2 - 2z$, so $w = z/2$."""
    import torch

    from ._doubles import PresetDraws

    batch = weights.shape[1]
    q = PresetDraws(2 * weights[..., None])
    ones = torch.ones(1, dtype=weights.dtype)
    prior = torch.distributions.Independent(torch.distributions.Exponential(ones), 1)

    def decoder(latent):
        return torch.distributions.Independent(torch.distributions.Exponential(latent), 1)

    return torch.ones(batch, 1, dtype=weights.dtype), (lambda x: q), decoder, prior


def _iwae_at(points):
    import torch

    from ..core.elbo import iwae

    x, encoder, decoder, prior = _weights_problem(
        torch.stack([points[T.w1], points[T.w2], points[T.w3]])
    )
    return iwae(x, encoder, decoder, prior, 3)


def _log_likelihood_at(points):
    """`VAE.log_likelihood` in chunks of 2 and 1 draws, combined exactly."""
    import torch

    from ..families.vae import VAE

    x, encoder, decoder, prior = _weights_problem(
        torch.stack([points[T.w1], points[T.w2], points[T.w3]])
    )
    return VAE(encoder, decoder, prior).log_likelihood(x, k=3, chunk=2)


def _iwae_loss_at(points):
    """Minus `IWAE.loss` (a batch mean), one input at a time, given twice: a batch of two equal
    bounds, whose mean is the bound (a sum would double it)."""
    import torch

    from ..families.vae import IWAE

    out = []
    for j in range(points[T.w1].shape[0]):
        weights = torch.stack([points[s_][j].repeat(2) for s_ in (T.w1, T.w2, T.w3)])
        x, encoder, decoder, prior = _weights_problem(weights)
        out.append(-IWAE(encoder, decoder, k=3, prior=prior).loss(x))
    return torch.stack(out)


def _two_point_mean(k, estimator):
    """The mean of ``estimator`` over the $2^k$ equally likely draws of $k$ weights, each
    $w_a$ or $w_b$: the expectation $\\mathcal L_k$ of the two-point law, exactly."""

    def evaluate(points):
        import torch

        from ..core.elbo import elbo, iwae

        n = points[T.wa].shape[0]
        configurations = list(itertools.product((T.wa, T.wb), repeat=k))
        weights = torch.stack(
            [torch.cat([points[c[i]] for c in configurations]) for i in range(k)]
        )  # (k, 2^k n)
        x, encoder, decoder, prior = _weights_problem(weights)
        if estimator == "iwae":
            values = iwae(x, encoder, decoder, prior, k)
        else:
            values = elbo(x, encoder, decoder, prior, n_samples=1, kl="mc")
        return values.reshape(len(configurations), n).mean(0)

    return evaluate


_weight_domain = LogUniform(1e-3, 1e3, ends=True)
for _code, _evaluate, _what, _samples in (
    ("genmath.core.elbo.iwae", _iwae_at, "iwae with k = 3 at the weights w_1, w_2, w_3", 16),
    (
        "genmath.families.vae.VAE.log_likelihood",
        _log_likelihood_at,
        "VAE.log_likelihood with k = 3 in chunks of 2 and 1",
        16,
    ),
    ("genmath.families.vae.IWAE.loss", _iwae_loss_at, "minus IWAE(k=3).loss, one input given twice", 8),
):
    register(
        Binding(
            derivation="D-iwae-bound",
            code=(_code,),
            expression=T._iwae_start,
            evaluate=_evaluate,
            domain={T.w1: _weight_domain, T.w2: _weight_domain, T.w3: _weight_domain},
            samples=_samples,
            description=_what,
        )
    )
for _k, _estimator in ((1, "iwae"), (1, "elbo"), (2, "iwae"), (3, "iwae")):
    register(
        Binding(
            derivation="D-iwae-bound",
            code=(f"genmath.core.elbo.{_estimator}",),
            expression=T._iwae_two_point(_k),
            evaluate=_two_point_mean(_k, _estimator),
            domain={T.wa: _weight_domain, T.wb: _weight_domain},
            samples=10,
            description=(
                f"the mean of {_estimator}"
                + (" (kl='mc', one draw)" if _estimator == "elbo" else f" with k = {_k}")
                + f" over the {2**_k} two-point draws: L_{_k}"
            ),
        )
    )

# --------------------------------------------------------------------------- REINFORCE


def _surrogate_gradient(mode):
    def evaluate(points):
        import torch

        from ..core.elbo import score_function_surrogate

        def draw_terms(noise):
            mean = points[T.mu].clone().requires_grad_(True)
            z = (points[T.mu] + points[T.s] * noise).detach()
            log_q = torch.distributions.Normal(mean, points[T.s]).log_prob(z)
            return mean, z**2 + mean * z, log_q

        if mode == "leave_one_out":
            # two draws, each with its own copy of mu, so that the gradient of draw a is read
            # off alone; its baseline is the other draw's value
            mean_a, f_a, log_q_a = draw_terms(points[T.u])
            mean_b, f_b, log_q_b = draw_terms(points[T.u_other])
            surrogate = score_function_surrogate(
                torch.stack([f_a, f_b]), torch.stack([log_q_a, log_q_b]), "leave_one_out"
            )
            (gradient,) = torch.autograd.grad(surrogate.sum(), mean_a)
            return gradient, surrogate[0]
        mean, f, log_q = draw_terms(points[T.u])
        given = points[T.baseline][None] if mode == "given" else None
        surrogate = score_function_surrogate(f[None], log_q[None], given)
        (gradient,) = torch.autograd.grad(surrogate.sum(), mean)
        return gradient, surrogate[0]

    return evaluate


_reinforce_domain = {
    T.mu: Uniform(-3, 3),
    T.s: LogUniform(5e-2, 2e1, ends=True),
    T.baseline: Uniform(-10, 10),
    T.u: Uniform(-3, 3),
    T.u_other: Uniform(-3, 3),
}
for _mode, _where in (
    ("given", {}),
    ("none", {T.baseline: 0}),
    ("leave_one_out", {T.baseline: T._f(T.mu + T.s * T.u_other)}),
):
    register(
        Binding(
            derivation="D-reinforce",
            code=("genmath.core.elbo.score_function_surrogate",),
            expression=(T._gradient_estimate, T._f(T._draw)),
            where=_where,
            evaluate=_surrogate_gradient(_mode),
            domain={
                key: value
                for key, value in _reinforce_domain.items()
                if key in (T.mu, T.s, T.u)
                or (key is T.baseline and _mode == "given")
                or (key is T.u_other and _mode == "leave_one_out")
            },
            description=f"autograd gradient (and value) of score_function_surrogate, baseline {_mode}",
        )
    )


def _reinforce_elbo_by_code(kl):
    def evaluate(points):
        from ..core.elbo import reinforce_elbo

        data, encoder, decoder, prior = _linear_model(points)
        return reinforce_elbo(data, encoder, decoder, prior, n_samples=2, kl=kl)

    return evaluate


for _kl_method, _expression in (("mc", _reconstruction - _kl_prior), ("analytic", _elbo_closed)):
    register(
        Binding(
            derivation="D-elbo-linear-gaussian",
            code=("genmath.core.elbo.reinforce_elbo",),
            expression=_expression,
            evaluate=_reinforce_elbo_by_code(_kl_method),
            domain=_linear_domain,
            samples=16,
            description=f"the value of reinforce_elbo(..., kl={_kl_method!r}) over the sigma points",
        )
    )

# --------------------------------------------------------------------------- VDM ELBO

_tau, _lam = sp.Symbol("t", nonnegative=True), sp.Symbol("lambda", real=True)


def _vdm_where(alpha, sigma):
    at = {name: expr.subs(_tau, T.t0) for name, expr in (("a", alpha), ("s", sigma))}
    at1 = {name: expr.subs(_tau, T.t1) for name, expr in (("a", alpha), ("s", sigma))}
    return {
        T.alpha0: at["a"],
        T.sigma0: at["s"],
        T.alpha1: at1["a"],
        T.sigma1: at1["s"],
        T.lam0: sp.log(at["a"] ** 2 / at["s"] ** 2),
        T.lam1: sp.log(at1["a"] ** 2 / at1["s"] ** 2),
    }


def _vdm_by_code(schedule_name, method, sampling):
    def evaluate(points):
        import torch

        from ..core import schedules
        from ..core.elbo import gaussian_path_elbo
        from ..core.path import GaussianPath

        path = GaussianPath(getattr(schedules, schedule_name)())
        generator = torch.Generator().manual_seed(0)
        rows = []
        n = points[T.t0].shape[0]
        delta1 = points.get(T.delta1, torch.zeros(n, dtype=torch.float64))
        for j in range(n):
            x0 = points[T._x0][j].reshape(1, 1)
            d0, d1 = points[T.delta0][j], delta1[j]

            def model(xt, t, x0=x0, d0=d0, d1=d1):
                # the true noise of x_t plus an error known in the integration variable
                eps = (xt - path.alpha(t)[:, None] * x0) / path.sigma(t)[:, None]
                if sampling == "log_snr":
                    error = d0 + d1 * path.log_snr(t)
                else:
                    error = (d0 + d1 * t) / (-path.schedule.d_log_snr(t)).sqrt()
                return eps + error[:, None]

            value, terms = gaussian_path_elbo(
                model,
                x0,
                path,
                "eps",
                n_t=3,
                method=method,
                sampling=sampling,
                t_interval=(float(points[T.t0][j]), float(points[T.t1][j])),
                generator=generator,
                terms=True,
            )
            recon, prior, diffusion = terms["reconstruction"], terms["prior"], terms["diffusion"]
            rows.append(torch.cat([recon, prior, diffusion, -value - recon - prior]))
        return tuple(torch.stack(rows).T)

    return evaluate


def _register_vdm():
    from ..core.schedules import VP, CondOT

    definitions = {
        "CondOT": CondOT.definition(_tau, _lam)[:2],
        "VP": VP.definition(_tau, _lam, sp.Rational(1, 10), 20)[:2],
    }
    cases = (  # each method and each sampling variable, on two schedules
        ("CondOT", "quadrature", "log_snr"),
        ("CondOT", "mc", "t"),
        ("VP", "quadrature", "t"),
        ("VP", "mc", "log_snr"),
    )
    for name, method, sampling in cases:
        diffusion = T._diffusion_in_lambda if sampling == "log_snr" else T._diffusion_in_t
        where = _vdm_where(*definitions[name])
        domain = {
            T.t0: Uniform(1e-3, 0.45),
            T.t1: Uniform(0.55, 0.999),
            T._x0: Uniform(-3, 3),
            T.delta0: Uniform(-2, 2),
        }
        if method == "quadrature":
            domain[T.delta1] = Uniform(-1, 1)
        else:  # a Monte-Carlo estimate is exact only for an integrand constant in its variable
            where = {**where, T.delta1: 0}
        register(
            Binding(
                derivation="D-vdm-elbo",
                code=("genmath.core.elbo.gaussian_path_elbo",),
                expression=(T._reconstruction, T._prior, diffusion, diffusion),
                where=where,
                evaluate=_vdm_by_code(name, method, sampling),
                domain=domain,
                samples=6,
                description=(
                    f"gaussian_path_elbo on {name}, method={method!r}, sampling={sampling!r}: "
                    "reconstruction, prior, diffusion terms, and the value minus the first two"
                ),
            )
        )


_register_vdm()

# --------------------------------------------------------------------------- weightings


def _weighting_by_code(schedule_name, schedule_args):
    def evaluate(points):

        from ..core import schedules
        from ..core.elbo import elbo_weighting
        from ..core.path import GaussianPath

        path = GaussianPath(getattr(schedules, schedule_name)(*schedule_args))
        lam = path.log_snr(points[_tau])
        return tuple(elbo_weighting(loss, path, lam) for loss in T._LOSS_ORDER)

    return evaluate


def _register_weightings():
    from ..core.schedules import VP, CondOT

    cases = {
        "CondOT": ((), CondOT.definition(_tau, _lam)[:2]),
        "VP": ((0.1, 20.0), VP.definition(_tau, _lam, sp.Rational(1, 10), 20)[:2]),
    }
    for name, (args, (alpha, sigma)) in cases.items():
        register(
            Binding(
                derivation="D-elbo-weighting",
                code=("genmath.core.elbo.elbo_weighting",),
                expression=tuple(T._weightings),
                where={T.A: alpha, T.S: sigma, T.dA: sp.diff(alpha, _tau), T.dS: sp.diff(sigma, _tau)},
                evaluate=_weighting_by_code(name, args),
                domain={_tau: Uniform(0.02, 0.98)},
                samples=10,
                description=f"elbo_weighting of every loss on {name}",
            )
        )


_register_weightings()
