"""KL divergence between Gaussians, and the VAE's closed-form KL term."""

import sympy as sp

from ._engine import SYMBOLIC, Check, Derivation, Step, sound_rewrite
from ._registry import register
from .elbo_gap import _Integral

x = sp.Symbol("x", real=True)
mu1, mu2 = sp.symbols("mu_1 mu_2", real=True)
s1, s2 = sp.symbols("sigma_1 sigma_2", positive=True)
mu = sp.Symbol("mu", real=True)
s = sp.Symbol("sigma", positive=True)


def _log_normal(x, m, sd):
    return -sp.log(sd) - sp.log(2 * sp.pi) / 2 - (x - m) ** 2 / (2 * sd**2)


# E_{x ~ N(mu1, s1^2)}[(x - m)^2] = s1^2 + (mu1 - m)^2: the only expectation the KL needs.
_second_moment = s1**2 + (mu1 - mu2) ** 2

register(
    Derivation(
        id="D-kl-gaussian",
        title="KL divergence between two univariate Gaussians",
        statement=(
            r"For $q = \mathcal N(\mu_1, \sigma_1^2)$ and $p = \mathcal N(\mu_2, \sigma_2^2)$, "
            r"$\mathrm{KL}(q\,\|\,p) = \mathbb E_q[\log q(x) - \log p(x)]$ has the closed form below; "
            "a diagonal Gaussian's KL is the sum of these over coordinates."
        ),
        start=_Integral(
            sp.exp(_log_normal(x, mu1, s1)) * (_log_normal(x, mu1, s1) - _log_normal(x, mu2, s2)),
            (x, -sp.oo, sp.oo),
        ),
        steps=[
            Step(
                rhs=sp.log(s2 / s1) - sp.Rational(1, 2) + _second_moment / (2 * s2**2),
                reason=(
                    r"Expand the log-ratio: the log-normaliser terms give $\log(\sigma_2/\sigma_1)$, "
                    r"$\mathbb E_q[(x-\mu_1)^2]/(2\sigma_1^2) = 1/2$, and "
                    r"$\mathbb E_q[(x-\mu_2)^2] = \sigma_1^2 + (\mu_1-\mu_2)^2$. "
                    "The integral is evaluated by quadrature at sampled parameters."
                ),
                tag="numeric",
                tolerance=1e-12,
                samples=6,
            ),
            Step(
                rhs=sp.log(s2)
                - sp.log(s1)
                + (s1**2 + (mu1 - mu2) ** 2) / (2 * s2**2)
                - sp.Rational(1, 2),
                reason="Split the logarithm of the ratio (both scales are positive).",
                tag=SYMBOLIC,
            ),
        ],
        symbols=(mu1, mu2, s1, s2),
        references=("kingma2014auto", "cover2006elements"),
        code=("genmath.core.elbo.kl_divergence", "genmath.core.elbo.diagonal_gaussian_kl"),
        tests=("tests/core/test_elbo.py",),
    )
)

# The VAE's KL term: q = N(mu, sigma^2) per coordinate against the standard-normal prior.
_kl_general = sp.log(s2) - sp.log(s1) + (s1**2 + (mu1 - mu2) ** 2) / (2 * s2**2) - sp.Rational(1, 2)

i = sp.Symbol("i", integer=True, positive=True)
d = sp.Symbol("d", integer=True, positive=True)
mu_i = sp.IndexedBase("mu", real=True)[i]
s_i = sp.IndexedBase("sigma", positive=True)[i]


@sound_rewrite(
    'linearity of a finite sum over a common range'
)
def _merge_sums(expr):
    """Linearity of a finite sum: collect ``Sum``s over the same range into one, then expand the
    summand (much faster than ``simplify`` for this shape)."""
    summands: dict = {}
    rest = sp.Integer(0)
    for term in sp.Add.make_args(sp.expand(expr)):
        coeff, body = term.as_independent(sp.Sum, as_Add=False)
        if isinstance(body, sp.Sum):
            summands[body.limits] = summands.get(body.limits, 0) + coeff * body.function
        else:
            rest += term
    for limits, summand in summands.items():
        summand = sp.expand(sp.expand_log(summand))
        if summand != 0:
            rest += sp.Sum(summand, *limits)
    return rest


def _per_coordinate_vae_kl(m, sd):
    return -sp.Rational(1, 2) * (1 + sp.log(sd**2) - m**2 - sd**2)


register(
    Derivation(
        id="D-kl-vae",
        title="The VAE's KL term: diagonal Gaussian posterior against a standard-normal prior",
        statement=(
            r"For $q(z\mid x) = \mathcal N(\mu, \operatorname{diag}\sigma^2)$ and "
            r"$p(z) = \mathcal N(0, I)$ in $d$ dimensions, "
            r"$\mathrm{KL}(q\,\|\,p) = -\tfrac12 \sum_{i=1}^d (1 + \log\sigma_i^2 - \mu_i^2 - \sigma_i^2)$, "
            "the closed form of the KL term of the VAE objective (Kingma & Welling 2014, appendix B)."
        ),
        start=sp.Subs(_kl_general, (mu1, mu2, s1, s2), (mu, 0, s, 1)),
        steps=[
            Step(
                rhs=-sp.log(s) + (s**2 + mu**2) / 2 - sp.Rational(1, 2),
                reason=(
                    r"Put $\mu_1 = \mu$, $\sigma_1 = \sigma$ and the prior's $\mu_2 = 0$, "
                    r"$\sigma_2 = 1$ into the univariate result `D-kl-gaussian`."
                ),
            ),
            Step(
                rhs=_per_coordinate_vae_kl(mu, s),
                reason=r"Write $-\log\sigma = -\tfrac12\log\sigma^2$ and collect the factor $-\tfrac12$.",
            ),
            Step(
                lhs=sp.Sum(sp.Subs(_kl_general, (mu1, mu2, s1, s2), (mu_i, 0, s_i, 1)), (i, 1, d)),
                rhs=sp.Sum(_per_coordinate_vae_kl(mu_i, s_i), (i, 1, d)),
                reason=(
                    "Both densities factorise over coordinates, so the log-ratio is a sum and, by "
                    "linearity of the expectation, the KL is the sum of the coordinate KLs; each "
                    "term is the line above."
                ),
                method=_merge_sums,
            ),
        ],
        symbols=(mu, s, mu_i, s_i, d),
        references=("kingma2014auto",),
        code=("genmath.core.elbo.elbo", "genmath.core.elbo.diagonal_gaussian_kl"),
        tests=("tests/core/test_elbo.py",),
    )
)


def _vae_kl_matches_torch() -> float:
    """Largest gap between `diagonal_gaussian_kl` (torch) and the VAE form of `D-kl-vae`."""
    import torch

    from ..core.elbo import diagonal_gaussian_kl

    generator = torch.Generator().manual_seed(0)
    mean = 2.0 * torch.randn(5, 4, dtype=torch.float64, generator=generator)
    std = torch.exp(torch.randn(5, 4, dtype=torch.float64, generator=generator))
    per_coordinate = sp.lambdify((mu, s), _per_coordinate_vae_kl(mu, s), "math")
    expected = [
        sum(per_coordinate(float(m_), float(s_)) for m_, s_ in zip(row_m, row_s, strict=True))
        for row_m, row_s in zip(mean, std, strict=True)
    ]
    got = diagonal_gaussian_kl(mean, std)
    return max(abs(float(g) - e) / (1.0 + abs(e)) for g, e in zip(got, expected, strict=True))


register(
    Check(
        id="C-kl-vae",
        title="diagonal_gaussian_kl equals the VAE form -1/2 sum(1 + log s^2 - m^2 - s^2)",
        function=_vae_kl_matches_torch,
        tolerance=1e-12,
        code=("genmath.core.elbo.diagonal_gaussian_kl",),
        tests=("tests/derivations/test_seed_derivations.py", "tests/core/test_elbo.py"),
        derivation="D-kl-vae",
    )
)
