"""KL divergence between Gaussians, derived from the Gaussian moments, and the VAE's
closed-form KL term; both bound to `genmath.core.elbo`'s `diagonal_gaussian_kl` and
`kl_divergence` over the whole domain they accept.

`D-kl-gaussian`'s result is *the* Gaussian KL of genmath: other derivations use it with
``From("D-kl-gaussian", {mu_1: ..., mu_2: ..., sigma_1: ..., sigma_2: ...})`` (or, inside
this file, the expression itself), never a re-typed copy.
"""

import sympy as sp

from ._engine import Binding, Check, Derivation, LogUniform, Step, Uniform
from ._gaussian import log_normal
from ._registry import register
from .score_matching import GaussianExpectation as E

u = sp.Symbol("u", real=True)  # standard normal: x = mu_1 + sigma_1 u under q
mu1, mu2 = sp.symbols("mu_1 mu_2", real=True)
s1, s2 = sp.symbols("sigma_1 sigma_2", positive=True)
mu = sp.Symbol("mu", real=True)
s = sp.Symbol("sigma", positive=True)

_x = mu1 + s1 * u
_log_ratio = log_normal(_x, mu1, s1**2) - log_normal(_x, mu2, s2**2)
KL_GAUSSIAN = (
    sp.log(s2) - sp.log(s1) + (s1**2 + (mu1 - mu2) ** 2) / (2 * s2**2) - sp.Rational(1, 2)
)
"""$\\mathrm{KL}(\\mathcal N(\\mu_1, \\sigma_1^2) \\,\\|\\, \\mathcal N(\\mu_2, \\sigma_2^2))$: the
result of D-kl-gaussian."""

register(
    Derivation(
        id="D-kl-gaussian",
        title="KL divergence between two univariate Gaussians",
        statement=(
            r"For $q = \mathcal N(\mu_1, \sigma_1^2)$ and $p = \mathcal N(\mu_2, \sigma_2^2)$, "
            r"$\mathrm{KL}(q\,\|\,p) = \mathbb E_q[\log q(x) - \log p(x)] = \log\frac{\sigma_2}"
            r"{\sigma_1} + \frac{\sigma_1^2 + (\mu_1 - \mu_2)^2}{2\sigma_2^2} - \frac12$, derived "
            r"from the first two moments of $q$: write $x = \mu_1 + \sigma_1 u$ with "
            r"$u \sim \mathcal N(0, 1)$ and take $\mathbb E u = 0$, $\mathbb E u^2 = 1$. A "
            "diagonal Gaussian's KL is the sum of these over coordinates (D-kl-vae)."
        ),
        start=E(_log_ratio, u),
        steps=[
            Step(
                rhs=sp.log(s2 / s1)
                + E((mu1 + s1 * u - mu2) ** 2, u) / (2 * s2**2)
                - E(u**2, u) / 2,
                reason=(
                    r"Expand the log-ratio: the normalisers give $\log(\sigma_2/\sigma_1)$, "
                    r"$-(x - \mu_1)^2/(2\sigma_1^2) = -u^2/2$, and $(x - \mu_2)^2/(2\sigma_2^2)$ "
                    "stays; the expectation is linear."
                ),
            ),
            Step(
                rhs=sp.log(s2 / s1) + (s1**2 + (mu1 - mu2) ** 2) / (2 * s2**2) - sp.Rational(1, 2),
                reason=(
                    r"Gaussian moments: $\mathbb E u^2 = 1$ and "
                    r"$\mathbb E(\mu_1 - \mu_2 + \sigma_1 u)^2 = (\mu_1 - \mu_2)^2 + \sigma_1^2$ "
                    r"(the cross term has $\mathbb E u = 0$)."
                ),
            ),
            Step(
                rhs=KL_GAUSSIAN,
                reason="Split the logarithm of the ratio (both scales are positive).",
            ),
        ],
        symbols=(mu1, mu2, s1, s2),
        references=("kingma2014auto", "cover2006elements"),
        code=("genmath.core.elbo.diagonal_gaussian_kl", "genmath.core.elbo.kl_divergence"),
        tests=("tests/core/test_elbo.py",),
    )
)

# --------------------------------------------------------------------------- D-kl-vae

# two coordinates of a diagonal q against the standard-normal prior
mq1, mq2 = sp.symbols("mu_1 mu_2", real=True)
sq1, sq2 = sp.symbols("sigma_1 sigma_2", positive=True)
u1, u2 = sp.symbols("u_1 u_2", real=True)


def _kl(m_q, s_q, m_p, s_p):
    return KL_GAUSSIAN.subs({mu1: m_q, s1: s_q, mu2: m_p, s2: s_p}, simultaneous=True)


def _vae_form(m, sd):
    return -sp.Rational(1, 2) * (1 + sp.log(sd**2) - m**2 - sd**2)


_z1, _z2 = mq1 + sq1 * u1, mq2 + sq2 * u2
_vae_log_ratio = (
    log_normal(_z1, mq1, sq1**2)
    + log_normal(_z2, mq2, sq2**2)
    - log_normal(_z1, 0, 1)
    - log_normal(_z2, 0, 1)
)
KL_VAE = _vae_form(mq1, sq1) + _vae_form(mq2, sq2)

register(
    Derivation(
        id="D-kl-vae",
        title="The VAE's KL term: diagonal Gaussian posterior against a standard-normal prior",
        statement=(
            r"For $q(z\mid x) = \mathcal N(\mu, \operatorname{diag}\sigma^2)$ and "
            r"$p(z) = \mathcal N(0, I)$ the densities factorise over coordinates, so "
            r"$\mathrm{KL}(q\,\|\,p) = \sum_i \mathrm{KL}(\mathcal N(\mu_i, \sigma_i^2)\,\|\,"
            r"\mathcal N(0, 1))$, each term D-kl-gaussian, which is the VAE's KL term "
            r"$-\tfrac12 \sum_i (1 + \log\sigma_i^2 - \mu_i^2 - \sigma_i^2)$ (Kingma & Welling "
            "2014, appendix B). Shown for two coordinates; every coordinate adds the same term, "
            "and a diagonal prior other than the standard one the same way (bound through "
            "D-kl-gaussian)."
        ),
        start=E(_vae_log_ratio, u1, u2),
        steps=[
            Step(
                rhs=_kl(mq1, sq1, 0, 1) + _kl(mq2, sq2, 0, 1),
                reason=(
                    r"With $z_i = \mu_i + \sigma_i u_i$, $u_i$ independent standard normals, the "
                    "log-ratio is a sum over coordinates and each expectation involves one "
                    r"$u_i$ only: each is the univariate KL of D-kl-gaussian (its result, with "
                    r"$\mu_1 = \mu_i$, $\sigma_1 = \sigma_i$, $\mu_2 = 0$, $\sigma_2 = 1$), by the "
                    "Gaussian moments."
                ),
            ),
            Step(
                rhs=KL_VAE,
                reason=r"Write $-\log\sigma_i = -\tfrac12\log\sigma_i^2$ and collect the factor $-\tfrac12$.",
            ),
        ],
        symbols=(mq1, mq2, sq1, sq2),
        references=("kingma2014auto",),
        code=(
            "genmath.core.elbo.diagonal_gaussian_kl",
            "genmath.core.elbo.kl_divergence",
            "genmath.families.vae.VAE.kl",
        ),
        tests=("tests/core/test_elbo.py", "tests/families/test_vae.py"),
    )
)

# --------------------------------------------------------------------------- bindings

_location = Uniform(-5, 5)
_scale = LogUniform(1e-3, 1e3, ends=True)


def _normal(loc, scale):
    import torch

    return torch.distributions.Normal(loc, scale)


def _diagonal_kl_1d(points):
    """`diagonal_gaussian_kl` on events of two coordinates, the second equal under q and p
    (a zero term: a mean over coordinates instead of a sum would halve the value)."""
    import torch

    from ..core.elbo import diagonal_gaussian_kl

    n = points[mu1].shape[0]
    filler_mean, filler_std = torch.full((n,), 0.7, dtype=torch.float64), torch.full(
        (n,), 2.5, dtype=torch.float64
    )
    return diagonal_gaussian_kl(
        torch.stack([points[mu1], filler_mean], 1),
        torch.stack([points[s1], filler_std], 1),
        torch.stack([points[mu2], filler_mean], 1),
        torch.stack([points[s2], filler_std], 1),
    )


def _kl_divergence_1d(method):
    def evaluate(points):
        from ..core.elbo import kl_divergence
        from ._doubles import SigmaPointGaussian

        if method == "mc":  # the Monte-Carlo KL is exact over the two sigma points
            q = SigmaPointGaussian(points[mu1][:, None], points[s1][:, None])
            p = _normal(points[mu2][:, None], points[s2][:, None])
            return kl_divergence(q, p, "mc", n_samples=2)
        q, p = _normal(points[mu1], points[s1]), _normal(points[mu2], points[s2])
        return kl_divergence(q, p, method)

    return evaluate


_domain_1d = {mu1: _location, mu2: _location, s1: _scale, s2: _scale}
register(
    Binding(
        derivation="D-kl-gaussian",
        code=("genmath.core.elbo.diagonal_gaussian_kl",),
        expression=KL_GAUSSIAN,
        evaluate=_diagonal_kl_1d,
        domain=_domain_1d,
        samples=16,
        description="diagonal_gaussian_kl against a non-standard prior (means, scales 1e-3..1e3)",
    )
)
for _method in ("analytic", "auto", "mc"):
    register(
        Binding(
            derivation="D-kl-gaussian",
            code=("genmath.core.elbo.kl_divergence",),
            expression=KL_GAUSSIAN,
            evaluate=_kl_divergence_1d(_method),
            domain=_domain_1d,
            samples=16,
            description=f"kl_divergence(Normal, Normal, {_method!r})"
            + (" over the two sigma points of q (exact)" if _method == "mc" else ""),
        )
    )


def _diagonal_kl_2d(points):
    import torch

    from ..core.elbo import diagonal_gaussian_kl

    mean = torch.stack([points[mq1], points[mq2]], 1)
    return diagonal_gaussian_kl(mean, torch.stack([points[sq1], points[sq2]], 1))


def _kl_divergence_2d(method):
    def evaluate(points):
        import torch

        from ..core.elbo import kl_divergence
        from ._doubles import SigmaPointGaussian

        mean = torch.stack([points[mq1], points[mq2]], 1)
        std = torch.stack([points[sq1], points[sq2]], 1)
        prior = torch.distributions.Independent(_normal(torch.zeros_like(mean), 1.0), 1)
        if method == "mc":
            return kl_divergence(SigmaPointGaussian(mean, std), prior, "mc", n_samples=4)
        q = torch.distributions.Independent(_normal(mean, std), 1)
        return kl_divergence(q, prior, method)

    return evaluate


_domain_2d = {mq1: _location, mq2: _location, sq1: _scale, sq2: _scale}
register(
    Binding(
        derivation="D-kl-vae",
        code=("genmath.core.elbo.diagonal_gaussian_kl",),
        expression=KL_VAE,
        evaluate=_diagonal_kl_2d,
        domain=_domain_2d,
        samples=16,
        description="diagonal_gaussian_kl of two coordinates against its default prior N(0, I)",
    )
)
for _method in ("analytic", "mc"):
    register(
        Binding(
            derivation="D-kl-vae",
            code=("genmath.core.elbo.kl_divergence",),
            expression=KL_VAE,
            evaluate=_kl_divergence_2d(_method),
            domain=_domain_2d,
            samples=16,
            description=f"kl_divergence(Independent(Normal), N(0, I), {_method!r}), two coordinates"
            + (", over the four sigma points of q (exact)" if _method == "mc" else ""),
        )
    )


def _vae_kl_matches_torch() -> float:
    """Largest gap between `diagonal_gaussian_kl` (torch) and the VAE form of `D-kl-vae`."""
    import torch

    from ..core.elbo import diagonal_gaussian_kl

    generator = torch.Generator().manual_seed(0)
    mean = 2.0 * torch.randn(5, 4, dtype=torch.float64, generator=generator)
    std = torch.exp(torch.randn(5, 4, dtype=torch.float64, generator=generator))
    per_coordinate = sp.lambdify((mu, s), _vae_form(mu, s), "math")
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
