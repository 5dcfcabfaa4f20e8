"""EDM preconditioning: $c_{\\rm skip}$, $c_{\\rm out}$, $c_{\\rm in}$ give unit-variance network
inputs and training targets."""

import sympy as sp

from ._engine import Derivation, Step
from ._registry import register

sigma, sigma_d = sp.symbols("sigma sigma_d", positive=True)  # noise level, data std
c = sp.Symbol("c", real=True)  # a candidate skip weight
x = sp.Symbol("x", real=True)

c_skip = sigma_d**2 / (sigma**2 + sigma_d**2)
c_out = sigma * sigma_d / sp.sqrt(sigma**2 + sigma_d**2)
c_in = 1 / sp.sqrt(sigma**2 + sigma_d**2)


def _target_variance_numerator(skip):
    """Var(y - skip (y + n)) for independent y ~ (0, sigma_d^2), n ~ (0, sigma^2)."""
    return (1 - skip) ** 2 * sigma_d**2 + skip**2 * sigma**2


register(
    Derivation(
        id="D-edm-preconditioning",
        title="EDM preconditioning gives unit-variance inputs and training targets",
        statement=(
            r"EDM writes the denoiser as $D(x;\sigma) = c_{\rm skip}(\sigma)\,x + "
            r"c_{\rm out}(\sigma)\,F\big(c_{\rm in}(\sigma)\,x\big)$ for $x = y + n$, "
            r"$\operatorname{Var} y = \sigma_d^2$, $n \sim \mathcal N(0, \sigma^2)$. With "
            r"$c_{\rm in} = 1/\sqrt{\sigma^2+\sigma_d^2}$, $c_{\rm skip} = \sigma_d^2/(\sigma^2+"
            r"\sigma_d^2)$ and $c_{\rm out} = \sigma\sigma_d/\sqrt{\sigma^2+\sigma_d^2}$, the "
            r"network input $c_{\rm in}x$ and its training target $(y - c_{\rm skip}x)/"
            r"c_{\rm out}$ both have unit variance, and $c_{\rm skip}$ is the skip weight that "
            r"makes the target's variance smallest (Karras et al. 2022, appendix B.6)."
        ),
        start=c_in**2 * (sigma_d**2 + sigma**2),
        steps=[
            Step(
                rhs=sp.Integer(1),
                reason=(
                    r"Input: $\operatorname{Var}(c_{\rm in}x) = c_{\rm in}^2(\sigma_d^2 + \sigma^2)$ "
                    "for independent signal and noise."
                ),
            ),
            Step(
                lhs=sp.Subs(sp.Derivative(_target_variance_numerator(c), c), c, c_skip),
                rhs=sp.Integer(0),
                reason=(
                    r"Skip: $\operatorname{Var}(y - c\,x) = (1-c)^2\sigma_d^2 + c^2\sigma^2$ is a "
                    r"convex quadratic in $c$, stationary at $c = c_{\rm skip}$: the skip "
                    "connection removes as much of the target as $x$ predicts linearly."
                ),
            ),
            Step(
                lhs=_target_variance_numerator(c_skip),
                rhs=c_out**2,
                reason=(
                    r"Output: the remaining variance is $\sigma^2\sigma_d^2/(\sigma^2+\sigma_d^2) "
                    r"= c_{\rm out}^2$, so scaling by $1/c_{\rm out}$ makes the target unit-variance."
                ),
            ),
            Step(
                lhs=_target_variance_numerator(c_skip) / c_out**2,
                rhs=sp.Integer(1),
                reason=r"Target: $\operatorname{Var}\big((y - c_{\rm skip}x)/c_{\rm out}\big) = 1$.",
            ),
            Step(
                lhs=(sigma_d**2 / (sigma_d**2 + sigma**2) * x - c_skip * x) / c_out,
                rhs=sp.Integer(0),
                reason=(
                    r"For data $\mathcal N(0, \sigma_d^2)$ the ideal denoiser is the posterior mean "
                    r"$\mathbb E[y\mid x] = \sigma_d^2 x/(\sigma_d^2 + \sigma^2)$ (`D-tweedie`), "
                    r"which the skip branch already is: the optimal network output $F$ is $0$."
                ),
            ),
        ],
        symbols=(sigma, sigma_d, c, x),
        references=("karras2022elucidating",),
        code=("genmath.families.diffusion",),
        tests=("tests/families/test_diffusion.py",),
    )
)
