"""KL divergence between Gaussians, and the VAE's closed-form KL term."""

import sympy as sp

from ._engine import SYMBOLIC, Derivation, Step
from ._registry import register

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
        start=sp.Integral(
            sp.exp(_log_normal(x, mu1, s1)) * (_log_normal(x, mu1, s1) - _log_normal(x, mu2, s2)),
            (x, -sp.oo, sp.oo),
        ),
        steps=[
            Step(
                rhs=sp.log(s2 / s1)
                - sp.Rational(1, 2)
                + _second_moment / (2 * s2**2),
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
                rhs=sp.log(s2) - sp.log(s1) + (s1**2 + (mu1 - mu2) ** 2) / (2 * s2**2) - sp.Rational(1, 2),
                reason="Split the logarithm of the ratio (both scales are positive).",
                tag=SYMBOLIC,
            ),
        ],
        symbols=(mu1, mu2, s1, s2),
        references=("kingma2014auto", "cover2006elements"),
    )
)
