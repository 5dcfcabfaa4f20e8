"""The ELBO: its gap to the log-evidence, its reconstruction-minus-KL form, and Jensen's bound.

The general identities are checked on the integrands (densities are positive sympy functions,
integrals over the same variable are combined by linearity); the linear-Gaussian model, where
every term has a closed form, checks the same identities end to end.
"""

import mpmath
import sympy as sp
from sympy.core.function import AppliedUndef

from ._engine import (
    CITED,
    NUMERIC,
    Binding,
    Derivation,
    From,
    LogUniform,
    Step,
    Uniform,
    sound_rewrite,
)
from ._gaussian import log_normal
from ._registry import register
from ._stop_gradient import release_stop_gradient, stop_gradient
from .gaussian_kl import KL_GAUSSIAN
from .gaussian_kl import mu1 as _kl_mu1
from .gaussian_kl import mu2 as _kl_mu2
from .gaussian_kl import s1 as _kl_s1
from .gaussian_kl import s2 as _kl_s2
from .score_matching import GaussianExpectation as E

_kl_symbols = (_kl_mu1, _kl_mu2, _kl_s1, _kl_s2)

x = sp.Symbol("x", real=True)
z = sp.Symbol("z", real=True)
_p = sp.Function("p", positive=True)
q = sp.Function("q", positive=True)  # q(z | x); x is fixed throughout and left implicit
p_joint = sp.Lambda(z, _p(x, z))  # p(x, z)
p_cond = sp.Lambda(z, sp.Function(r"p_{x\mid z}", positive=True)(x, z))  # p(x | z)
p_prior = sp.Lambda(z, sp.Function("p_z", positive=True)(z))  # p(z)
evidence = _p(x)  # p(x)


class _Integral(sp.Integral):
    """An integral shown as such but never handed to sympy's symbolic integrator, which is slow
    on these integrands and cannot close integrals of unknown densities at all.

    Symbolic steps combine such integrals by linearity (`_merge_integrals`) and compare
    integrands; numeric steps evaluate one, once every parameter has a value, by mpmath
    quadrature of the lambdified integrand (about ten times faster than ``Integral.evalf``).
    """

    def doit(self, **hints):
        return self

    def _eval_evalf(self, prec):
        variables = [limit[0] for limit in self.limits]
        if self.function.free_symbols - set(variables) or self.function.atoms(AppliedUndef):
            return None  # parameters or unknown densities left: not a number
        integrand = sp.lambdify(variables, self.function, "mpmath")
        ranges = [
            [
                mpmath.mpf(sp.sympify(lo).evalf(prec)) if lo != -sp.oo else -mpmath.inf,
                mpmath.mpf(sp.sympify(hi).evalf(prec)) if hi != sp.oo else mpmath.inf,
            ]
            for _, lo, hi in self.limits
        ]
        with mpmath.workprec(prec):
            value = mpmath.quad(integrand, *reversed(ranges))
        return sp.Float(value, sp.Integer(prec).__int__() // 3 + 1)


def _expectation(integrand):
    """$\\int q(z)\\,f(z)\\,dz$ as an unevaluated integral (what the page shows)."""
    return _Integral(q(z) * integrand, (z, -sp.oo, sp.oo))


@sound_rewrite(
    'linearity of the integral over a common variable and limits; log of a product of positive densities is the sum of logs'
)
def _merge_integrals(expr):
    """Linearity of the integral: combine integrals over the same variable and limits into one,
    pulling factors that do not depend on the integration variable inside, then expand the
    integrand's logarithms (the densities are positive functions). An integrand that vanishes
    identically makes the integral zero."""
    integrands: dict = {}
    rest = sp.Integer(0)
    for term in sp.Add.make_args(sp.expand(expr)):
        coeff, body = term.as_independent(sp.Integral, as_Add=False)
        if isinstance(body, sp.Integral):
            key = (type(body), body.limits)
            integrands[key] = integrands.get(key, 0) + coeff * body.function
        else:
            rest += term
    for (kind, limits), integrand in integrands.items():
        integrand = sp.expand(sp.expand_log(sp.expand(integrand), force=False))
        if integrand != 0:
            rest += kind(integrand, *limits)
    return sp.expand(rest)


_elbo_general = _expectation(sp.log(p_joint(z)) - sp.log(q(z)))

# --- The linear-Gaussian model, where every term is closed form. ------------------------------
w, b, m = sp.symbols("w b m", real=True)
noise, v = sp.symbols("s v", positive=True)
u = sp.Symbol("u", real=True)  # standard normal: z = m + sqrt(v) u under q = N(m, v)
beta = sp.Symbol("beta", nonnegative=True)


def _kl(m1, s1, m2, s2):
    """D-kl-gaussian's result at these parameters (the one Gaussian KL of genmath)."""
    return KL_GAUSSIAN.subs(
        {_kl_symbols[0]: m1, _kl_symbols[1]: m2, _kl_symbols[2]: s1, _kl_symbols[3]: s2},
        simultaneous=True,
    )


_z_u = m + sp.sqrt(v) * u
_log_evidence = log_normal(x, b, w**2 + noise**2)
_post_mean = w * (x - b) / (w**2 + noise**2)
_post_var = noise**2 / (w**2 + noise**2)
# E_q[log N(x; w z + b, s^2)] with E_q[(x - wz - b)^2] = (x - wm - b)^2 + w^2 v
_reconstruction = -sp.log(2 * sp.pi * noise**2) / 2 - ((x - w * m - b) ** 2 + w**2 * v) / (
    2 * noise**2
)
_kl_prior = _kl(m, sp.sqrt(v), 0, 1)
_kl_posterior = _kl(m, sp.sqrt(v), _post_mean, sp.sqrt(_post_var))
_elbo_closed = _reconstruction + (1 + sp.log(v) - m**2 - v) / 2  # the KL in the VAE form
_linear_symbols = (x, w, b, noise, m, v)

register(
    Derivation(
        id="D-elbo-linear-gaussian",
        title="The ELBO of the linear-Gaussian model in closed form",
        statement=(
            r"For $z \sim \mathcal N(0, 1)$, $x \mid z \sim \mathcal N(wz + b, s^2)$ and an "
            r"encoder $q = \mathcal N(m, v)$, "
            r"$\mathrm{ELBO} = \mathbb E_q[\log p(x \mid z) + \log p(z) - \log q(z)] = "
            r"-\tfrac12\log(2\pi s^2) - \frac{(x - wm - b)^2 + w^2 v}{2s^2} - "
            r"\mathrm{KL}(\mathcal N(m, v)\,\|\,\mathcal N(0, 1))$, derived from the first two "
            r"moments of $q$ ($z = m + \sqrt v\,u$, $u \sim \mathcal N(0, 1)$), the KL being "
            "D-kl-gaussian's. It is the reference value of `genmath.elbo` on this model: the "
            "bindings evaluate the Monte-Carlo ELBO over the sigma points of $q$, where it is "
            "exact."
        ),
        start=E(
            log_normal(x, w * _z_u + b, noise**2) + log_normal(_z_u, 0, 1) - log_normal(_z_u, m, v),
            u,
        ),
        steps=[
            Step(
                rhs=E(log_normal(x, w * _z_u + b, noise**2), u)
                - E(log_normal(_z_u, m, v) - log_normal(_z_u, 0, 1), u),
                reason=(
                    "Linearity of the expectation: the reconstruction term, minus the expected "
                    r"log-ratio of $q$ to the prior, which is $\mathrm{KL}(q\,\|\,p(z))$."
                ),
            ),
            Step(
                rhs=_reconstruction - _kl_prior,
                reason=(
                    r"Gaussian moments: $\mathbb E(x - wm - b - w\sqrt v\,u)^2 = (x - wm - b)^2 + "
                    r"w^2 v$; the KL term is D-kl-gaussian with $\mu_1 = m$, $\sigma_1 = \sqrt v$, "
                    r"$\mu_2 = 0$, $\sigma_2 = 1$."
                ),
            ),
            Step(
                rhs=_elbo_closed,
                reason=r"The KL in the VAE's form, $-\tfrac12(1 + \log v - m^2 - v)$ (D-kl-vae).",
            ),
        ],
        symbols=_linear_symbols,
        references=("kingma2014auto", "tipping1999probabilistic"),
        code=("genmath.core.elbo.elbo",),
        tests=("tests/core/test_elbo.py",),
    )
)

register(
    Derivation(
        id="D-elbo-recon-kl",
        title="The ELBO as reconstruction minus KL to the prior",
        statement=(
            r"With $p(x, z) = p(x\mid z)\,p(z)$, "
            r"$\mathrm{ELBO}(q) = \mathbb E_q[\log p(x\mid z)] - \mathrm{KL}(q(z\mid x)\,\|\,p(z))$: "
            "a reconstruction term and a regulariser, the KL being closed form for Gaussians "
            "(D-kl-gaussian, D-kl-vae); this is the form `genmath.elbo` computes with "
            r"`kl=\"analytic\"`. Step 3 gives both terms for the linear-Gaussian model "
            r"$z \sim \mathcal N(0,1)$, $x\mid z \sim \mathcal N(wz + b, s^2)$, "
            r"$q = \mathcal N(m, v)$ (D-elbo-linear-gaussian)."
        ),
        start=_expectation(sp.log(p_cond(z) * p_prior(z)) - sp.log(q(z))),
        steps=[
            Step(
                rhs=_expectation(sp.log(p_cond(z)) + sp.log(p_prior(z)) - sp.log(q(z))),
                reason=r"Factor the joint and split its logarithm (densities are positive).",
                method=_merge_integrals,
            ),
            Step(
                rhs=_expectation(sp.log(p_cond(z)))
                - _expectation(sp.log(q(z)) - sp.log(p_prior(z))),
                reason=(
                    r"Split the integral by linearity: the second integral is "
                    r"$\mathrm{KL}(q\,\|\,p(z))$."
                ),
                method=_merge_integrals,
            ),
            Step(
                lhs=From("D-elbo-linear-gaussian", step=2),
                rhs=_elbo_closed,
                reason=(
                    "Linear-Gaussian model: the reconstruction term is closed form "
                    r"(D-elbo-linear-gaussian), and $\mathrm{KL}(\mathcal N(m, v)\,\|\,"
                    r"\mathcal N(0, 1)) = -\tfrac12(1 + \log v - m^2 - v)$ (D-kl-vae)."
                ),
            ),
        ],
        symbols=(x, z, *_linear_symbols[1:]),
        references=("kingma2014auto", "blei2017variational"),
        code=("genmath.core.elbo.elbo", "genmath.families.vae.VAE.elbo"),
        tests=("tests/core/test_elbo.py", "tests/families/test_vae.py"),
    )
)

@sound_rewrite("sympy's expand, expand_log (positive arguments only) and cancel")
def _expand_logs(expr):
    return sp.cancel(sp.expand(sp.expand_log(sp.expand(expr))))


# the gap with the model's posterior detached (as elbo_gap computes it), and its derivative
# along the direction that moves the encoder's mean and every model parameter at unit speed
_kl_detached = _kl(m, sp.sqrt(v), stop_gradient(_post_mean), stop_gradient(sp.sqrt(_post_var)))
# (differentiated by sympy with the stopped quantities held constant: what autograd computes)
_gap_slope = sp.Add(*(sp.diff(_kl_detached, s_) for s_ in (m, w, b, noise)))

_gap_rhs = sp.Add(_log_evidence, sp.Mul(-1, _kl_posterior, evaluate=False), evaluate=False)

register(
    Derivation(
        id="D-elbo-gap",
        title="The ELBO gap: log p(x) = ELBO(q) + KL(q(z|x) || p(z|x))",
        statement=(
            r"For any density $q(z)$ (the encoder's $q(z\mid x)$), "
            r"$\log p(x) = \mathbb E_q[\log p(x,z) - \log q(z)] "
            r"+ \mathrm{KL}(q\,\|\,p(z\mid x))$. "
            "The KL is non-negative, so the ELBO is a lower bound, tight exactly at the "
            "true posterior. Steps 1–3 show the identity for general densities, starting "
            r"from the KL with Bayes' rule $p(z\mid x) = p(x,z)/p(x)$ written in; steps 4–5 "
            "check it, and the bound, in closed form for the linear-Gaussian model "
            r"$z \sim \mathcal N(0,1)$, $x\mid z \sim \mathcal N(wz + b, s^2)$ with "
            r"$q = \mathcal N(m, v)$, whose posterior is $\mathcal N\big(w(x-b)/(w^2+s^2),\ "
            r"s^2/(w^2+s^2)\big)$ (D-ppca-posterior)."
        ),
        start=_expectation(sp.log(q(z)) - sp.log(p_joint(z) / evidence)),
        steps=[
            Step(
                rhs=_expectation(sp.log(q(z)) - sp.log(p_joint(z)) + sp.log(evidence)),
                reason=r"Split the logarithm of $p(x,z)/p(x)$ (all densities are positive).",
                method=_merge_integrals,
            ),
            Step(
                rhs=-_elbo_general + sp.log(evidence) * _Integral(q(z), (z, -sp.oo, sp.oo)),
                reason=(
                    r"Split the integral by linearity; $\log p(x)$ does not depend on $z$. "
                    "The first term is minus the ELBO."
                ),
                method=_merge_integrals,
            ),
            Step(
                rhs=-_elbo_general + sp.log(evidence),
                reason=r"$q$ is a probability density: $\int q(z)\,dz = 1$.",
                tag=CITED,
                theorem="normalisation of a probability density",
                reference="billingsley1995probability",
            ),
            Step(
                lhs=From("D-elbo-linear-gaussian"),
                rhs=_gap_rhs,
                reason=(
                    "The linear-Gaussian ELBO (D-elbo-linear-gaussian) is the log-evidence "
                    r"$\log \mathcal N(x; b, w^2 + s^2)$ minus the KL (D-kl-gaussian) from $q$ to "
                    "the exact posterior, for every $m$ and $v$: the gap identity, end to end."
                ),
                method=_expand_logs,
            ),
            Step(
                lhs=_log_evidence,
                rhs=_reconstruction - _kl_prior,
                relation=">=",
                reason=(
                    r"The bound, $\log p(x) \ge \mathrm{ELBO}$ (Jensen's inequality for the "
                    r"concave logarithm, or the KL above being $\ge 0$), checked at random model "
                    r"and variational parameters; $\log p(x)$ is what `PPCA.log_prob` computes."
                ),
                tag=NUMERIC,
                samples=16,
            ),
            Step(
                lhs=_gap_slope,
                rhs=(m - _post_mean) / _post_var,
                reason=(
                    r"What `LinearGaussianVAE.elbo_gap` trains: the KL to the posterior of a "
                    r"detached model (`as_ppca`), $\mathrm{KL}(q\,\|\,\operatorname{sg}(p(z"
                    r"\mid x)))$. Its slope along $(m, w, b, s)$ all moving together is its slope "
                    r"in $m$ alone, $(m - \mu)/\sigma^2$: the model's parameters enter only "
                    r"through the stopped posterior."
                ),
                method=release_stop_gradient,
            ),
        ],
        symbols=(x, z, *_linear_symbols[1:]),
        references=("kingma2014auto", "blei2017variational", "tipping1999probabilistic"),
        code=(
            "genmath.core.elbo.elbo",
            "genmath.analytic.PPCA.log_prob",
            "genmath.families.vae.LinearGaussianVAE.elbo_gap",
        ),
        tests=("tests/core/test_elbo.py", "tests/analytic/test_ppca.py"),
    )
)

register(
    Derivation(
        id="D-beta-vae",
        title="The β-VAE objective: the ELBO minus (β − 1) times the KL",
        statement=(
            r"The β-VAE (Higgins et al. 2017) maximises $\mathbb E_q[\log p(x\mid z)] - \beta\,"
            r"\mathrm{KL}(q\,\|\,p(z)) = \mathrm{ELBO} - (\beta - 1)\,\mathrm{KL}(q\,\|\,p(z))$; "
            r"$\beta = 1$ is the ELBO. `VAE.loss` is minus its batch mean. Shown on the "
            "linear-Gaussian model of D-elbo-linear-gaussian, where both terms are closed form."
        ),
        start=_reconstruction - beta * _kl_prior,
        steps=[
            Step(
                rhs=(_reconstruction - _kl_prior) - (beta - 1) * _kl_prior,
                reason=r"Add and subtract the KL once: the ELBO, minus $(\beta - 1)$ KLs.",
            ),
            Step(
                rhs=_elbo_closed + (beta - 1) * (1 + sp.log(v) - m**2 - v) / 2,
                reason="The ELBO of D-elbo-linear-gaussian and the KL in the VAE form (D-kl-vae).",
            ),
        ],
        symbols=(*_linear_symbols, beta),
        references=("higgins2017beta", "kingma2014auto"),
        code=("genmath.families.vae.VAE.loss", "genmath.families.vae.BetaVAE"),
        tests=("tests/families/test_vae.py",),
    )
)

# --- bindings -----------------------------------------------------------------------------------
#
# The Monte-Carlo ELBO is exact over the two sigma points m -+ sqrt(v) of q (every term is a
# quadratic in z), so the bindings compare `genmath.elbo` with the closed forms above to
# round-off, for each way of computing the KL term.

_linear_domain = {
    x: Uniform(-4, 4),
    w: Uniform(-3, 3),
    b: Uniform(-3, 3),
    noise: LogUniform(1e-2, 1e2, ends=True),
    m: Uniform(-3, 3),
    v: LogUniform(1e-3, 1e2, ends=True),
}


def _linear_model(points):
    """(x, encoder, decoder, prior) of the linear-Gaussian model, one model per point: the
    decoder maps the flattened (S * B, 1) latents back to their points' parameters."""
    import torch

    from ._doubles import SigmaPointGaussian

    w_, b_, s_ = points[w], points[b], points[noise]

    def encoder(data):
        return SigmaPointGaussian(points[m][:, None], points[v].sqrt()[:, None])

    def decoder(latent):
        n = latent.shape[0] // w_.shape[0]
        loc = w_.repeat(n)[:, None] * latent + b_.repeat(n)[:, None]
        return torch.distributions.Independent(
            torch.distributions.Normal(loc, s_.repeat(n)[:, None]), 1
        )

    zero = torch.zeros(1, dtype=torch.float64)
    prior = torch.distributions.Independent(torch.distributions.Normal(zero, zero + 1), 1)
    return points[x][:, None], encoder, decoder, prior


def _elbo_by_code(kl):
    def evaluate(points):
        from ..core.elbo import elbo

        data, encoder, decoder, prior = _linear_model(points)
        return elbo(data, encoder, decoder, prior, n_samples=2, kl=kl)

    return evaluate


def _vae_elbo_by_code(points):
    r"""VAE.elbo with a second data coordinate whose log-likelihood is exactly zero (decoded
    at its own value with scale $1/\sqrt{2\pi}$), so that the decoder's log-density is summed
    over an event of two coordinates: a mean over the event would halve it."""
    import math

    import torch

    from ..families.vae import VAE

    data, encoder, decoder, prior = _linear_model(points)
    second = torch.linspace(-1.5, 2.0, data.shape[0], dtype=torch.float64)[:, None]
    unit = 1 / math.sqrt(2 * math.pi)  # N(x; x, unit^2) = 1

    def two_coordinates(latent):
        first = decoder(latent).base_dist
        n = latent.shape[0] // second.shape[0]
        loc = torch.cat([first.loc, second.repeat(n, 1)], 1)
        scale = torch.cat([first.scale, torch.full_like(first.scale, unit)], 1)
        return torch.distributions.Independent(torch.distributions.Normal(loc, scale), 1)

    data = torch.cat([data, second], 1)
    return VAE(encoder, two_coordinates, prior).elbo(data, n_samples=2, kl="analytic")


def _beta_vae_objective_by_code(points):
    """Minus `VAE.loss` (a batch mean), one input per call."""
    import torch

    from ..families.vae import VAE

    out = []
    for j in range(points[x].shape[0]):
        single = {key: value[j : j + 1] for key, value in points.items()}
        data, encoder, decoder, prior = _linear_model(single)
        model = VAE(encoder, decoder, prior, beta=float(single[beta]))
        out.append(-model.loss(data, n_samples=2))
    return torch.stack(out)


for _kl_method, _expression in (("mc", _reconstruction - _kl_prior), ("auto", _elbo_closed)):
    register(
        Binding(
            derivation="D-elbo-linear-gaussian",
            code=("genmath.core.elbo.elbo",),
            expression=_expression,
            evaluate=_elbo_by_code(_kl_method),
            domain=_linear_domain,
            samples=16,
            description=f"elbo(..., kl={_kl_method!r}) over the sigma points of q (exact)",
        )
    )
register(
    Binding(
        derivation="D-elbo-recon-kl",
        code=("genmath.core.elbo.elbo",),
        expression=_elbo_closed,
        evaluate=_elbo_by_code("analytic"),
        domain=_linear_domain,
        samples=16,
        description="elbo(..., kl='analytic'): the reconstruction term minus torch's closed-form KL",
    )
)
register(
    Binding(
        derivation="D-elbo-recon-kl",
        code=("genmath.families.vae.VAE.elbo",),
        expression=_elbo_closed,
        evaluate=_vae_elbo_by_code,
        domain=_linear_domain,
        samples=16,
        description=(
            "VAE.elbo of the linear-Gaussian model (decoder checked, analytic KL), with a second "
            "data coordinate of log-likelihood 0: the event is summed, not averaged"
        ),
    )
)
register(
    Binding(
        derivation="D-beta-vae",
        code=("genmath.families.vae.VAE.loss",),
        expression=_reconstruction - beta * _kl_prior,
        evaluate=_beta_vae_objective_by_code,
        domain={**_linear_domain, beta: Uniform(0, 8)},
        samples=12,
        description="minus VAE(beta).loss on one input: reconstruction minus beta KL",
    )
)


def _per_point_ppca(fn):
    """Evaluate ``fn(ppca, data)`` for the 1-D linear-Gaussian model of each point."""

    def evaluate(points):
        import torch

        from ..analytic import PPCA

        out = []
        variational = [points.get(m, points[x]), points.get(v, points[noise])]  # unused if absent
        for x_j, w_j, b_j, s_j, *rest in zip(
            points[x], points[w], points[b], points[noise], *variational, strict=True
        ):
            ppca = PPCA(w_j.reshape(1, 1), b_j.reshape(1), s_j)
            out.append(fn(ppca, x_j.reshape(1, 1), *rest).reshape(()))
        return torch.stack(out)

    return evaluate


def _exact_posterior_elbo(ppca, data, *_):
    import torch

    from ..core.elbo import elbo

    g = torch.Generator().manual_seed(0)
    return elbo(data, ppca.posterior_distribution, ppca.likelihood, ppca.prior, 3, g, kl="mc")


def _linear_vae(ppca, m_j, v_j):
    """The 1-D LinearGaussianVAE with decoder ``ppca`` and a constant encoder N(m_j, v_j)."""
    import torch

    from ..families.vae import LinearGaussianVAE

    model = LinearGaussianVAE(1, 1, generator=torch.Generator().manual_seed(0)).double()
    with torch.no_grad():
        model.decoder.weight.copy_(ppca.W)
        model.decoder.bias.copy_(ppca.b)
        model.decoder.log_noise_std.copy_(ppca.noise_std.log())
        model.encoder.weight.zero_()
        model.encoder.bias.fill_(float(m_j))
        model.encoder.log_std.fill_(0.5 * float(v_j.log()))
    return model


def _linear_vae_gap(ppca, data, m_j, v_j):
    return _linear_vae(ppca, m_j, v_j).elbo_gap(data)


def _linear_vae_gap_slope(ppca, data, m_j, v_j):
    """The autograd slope of elbo_gap along (encoder mean, decoder weight, bias, noise std)."""
    import torch

    model = _linear_vae(ppca, m_j, v_j)
    leaves = (model.encoder.bias, model.decoder.weight, model.decoder.bias, model.decoder.log_noise_std)
    grads = torch.autograd.grad(model.elbo_gap(data).sum(), leaves, allow_unused=True)
    grads = [torch.zeros(()) if g is None else g.sum() for g in grads]
    # d/ds = (d/d log s) / s
    return (grads[0] + grads[1] + grads[2] + grads[3] / ppca.noise_std.reshape(())).reshape(1)


_gap_domain = {**_linear_domain, noise: LogUniform(1e-2, 1e1, ends=True)}
register(
    Binding(
        derivation="D-elbo-gap",
        code=("genmath.analytic.PPCA.log_prob",),
        expression=_log_evidence,
        evaluate=_per_point_ppca(lambda ppca, data, *_: ppca.log_prob(data)),
        domain={s_: _gap_domain[s_] for s_ in (x, w, b, noise)},
        samples=16,
        description="PPCA.log_prob of the 1-D model: log N(x; b, w^2 + s^2)",
    )
)
register(
    Binding(
        derivation="D-elbo-gap",
        code=("genmath.core.elbo.elbo", "genmath.analytic.PPCA.posterior_distribution"),
        expression=_log_evidence,
        evaluate=_per_point_ppca(_exact_posterior_elbo),
        domain=_gap_domain,
        samples=16,
        description="elbo with the exact posterior as encoder (kl='mc', 3 random draws) is log p(x)",
    )
)
register(
    Binding(
        derivation="D-elbo-gap",
        code=("genmath.families.vae.LinearGaussianVAE.elbo_gap",),
        expression=_kl_posterior,
        evaluate=_per_point_ppca(_linear_vae_gap),
        domain=_gap_domain,
        samples=16,
        description="LinearGaussianVAE.elbo_gap with encoder N(m, v): KL to the exact posterior",
    )
)
register(
    Binding(
        derivation="D-elbo-gap",
        code=("genmath.families.vae.LinearGaussianVAE.elbo_gap",
              "genmath.families.vae.LinearGaussianVAE.as_ppca"),
        expression=_gap_slope,
        evaluate=_per_point_ppca(_linear_vae_gap_slope),
        domain=_gap_domain,
        samples=12,
        description=(
            "elbo_gap's autograd slope along (m, w, b, s): the model is detached (as_ppca), so "
            "only the encoder's mean moves it"
        ),
    )
)
