"""Discrete paths: the masking and uniform kernels compose, and their posteriors by Bayes.

Back `genmath.core.discrete` (`MaskPath`, `UniformPath`); the check at the end compares the
torch posterior with brute-force Bayes over the full kernel matrices.
"""

import itertools

import sympy as sp
import torch

from ._engine import Check, Derivation, Step
from ._registry import register

a, b = sp.symbols("abar_s r", positive=True)  # keep-probability up to s, and from s to t
K = sp.Symbol("K", integer=True, positive=True)


def _uniform(keep, k):
    return keep * sp.eye(k) + (1 - keep) * sp.ones(k, k) / k


def _mask(keep, k):
    # k data states then the mask; the mask row is absorbing
    m = keep * sp.eye(k + 1)
    for i in range(k):
        m[i, k] = 1 - keep
    m[k, k] = 1
    return m


register(
    Derivation(
        id="D-discrete-kernels",
        title="Masking and uniform kernels compose: Q̄_t = Q̄_s Q_{s→t} with keep-probability ᾱ_t/ᾱ_s",
        statement=(
            r"Let $\bar\alpha_s$ be the keep-probability up to $s$ and $r = \bar\alpha_t/\bar\alpha_s$ "
            r"that from $s$ to $t$. The uniform kernel $\bar Q = \bar\alpha I + (1-\bar\alpha)\mathbf 1"
            r"\mathbf 1^\top/K$ and the masking kernel $\bar Q = \bar\alpha I + (1-\bar\alpha)\mathbf 1"
            r"e_m^\top$ (mask row $e_m^\top$) satisfy $\bar Q(\bar\alpha_s)\,Q(r) = \bar Q(\bar\alpha_s r)$. "
            r"For general $K$ the uniform case rests on $J^2 = KJ$ for $J = \mathbf 1\mathbf 1^\top$: "
            r"the coefficient of $J$ in $(aI + \frac{1-a}{K}J)(rI + \frac{1-r}{K}J)$ is $\frac{1-ar}{K}$. "
            r"The matrix steps check $K = 3$ (uniform) and $K = 2$ plus mask."
        ),
        start=a * (1 - b) / K + b * (1 - a) / K + (1 - a) * (1 - b) / K**2 * K,
        steps=[
            Step(
                rhs=(1 - a * b) / K,
                reason=(
                    r"Collect the $J$ terms of the product: $aI\cdot\frac{1-r}{K}J + \frac{1-a}{K}J\cdot rI"
                    r" + \frac{(1-a)(1-r)}{K^2}J^2$ with $J^2 = KJ$; the $I$ coefficient is $ar$."
                ),
            ),
            Step(
                lhs=_uniform(a, 3) * _uniform(b, 3),
                rhs=_uniform(a * b, 3),
                reason="Uniform kernel, K = 3, as matrices.",
            ),
            Step(
                lhs=_mask(a, 2) * _mask(b, 2),
                rhs=_mask(a * b, 2),
                reason=(
                    "Masking kernel, K = 2 plus the mask: a token survives both steps with "
                    r"probability $\bar\alpha_s r$; otherwise it is masked and stays masked."
                ),
            ),
        ],
        symbols=(a, b, K),
        references=("austin2021structured",),
        code=(
            "genmath.core.discrete.UniformPath.cumulative_kernel",
            "genmath.core.discrete.MaskPath.cumulative_kernel",
            "genmath.core.discrete.DiscretePath.step_kernel",
        ),
        tests=("tests/core/test_discrete.py",),
    )
)

# evidence of the uniform posterior, summed over x_s in closed form: the j = x_t, j = x_0
# terms and the (K - 1) or (K - 2) others
_same = (b + (1 - b) / K) * (a + (1 - a) / K) + (K - 1) * ((1 - b) / K) * ((1 - a) / K)
_diff = (
    (b + (1 - b) / K) * ((1 - a) / K)
    + ((1 - b) / K) * (a + (1 - a) / K)
    + (K - 2) * ((1 - b) / K) * ((1 - a) / K)
)

register(
    Derivation(
        id="D-discrete-posterior",
        title="Posterior q(x_s | x_t, x_0) of the masking and uniform paths by Bayes' rule",
        statement=(
            r"$q(x_s \mid x_t, x_0) = \bar Q_s[x_0, x_s]\,Q_{s\to t}[x_s, x_t] / \bar Q_t[x_0, x_t]$: "
            r"the numerator is $q(x_s \mid x_0)\,q(x_t \mid x_s)$ (the path is Markov) and its sum "
            r"over $x_s$ is the evidence $\bar Q_t[x_0, x_t]$. For the masking path with $x_t$ masked "
            r"this gives $q(x_s = x_0) = (\bar\alpha_s - \bar\alpha_t)/(1 - \bar\alpha_t)$ and "
            r"$q(x_s = m) = (1 - \bar\alpha_s)/(1 - \bar\alpha_t)$; with $x_t = x_0$ unmasked, "
            r"$x_s = x_0$. For the uniform path the evidence is $\bar\alpha_t\delta_{x_0 x_t} + "
            r"(1 - \bar\alpha_t)/K$ with $\bar\alpha_t = \bar\alpha_s r$."
        ),
        start=a * (1 - b) + (1 - a) * 1,
        steps=[
            Step(
                rhs=1 - a * b,
                reason=(
                    r"Mask, $x_t = m$: sum over $x_s \in \{x_0, m\}$ of $q(x_s \mid x_0)\,q(m \mid x_s)$ "
                    r"$= \bar\alpha_s(1 - r) + (1 - \bar\alpha_s)\cdot 1 = 1 - \bar\alpha_t$."
                ),
            ),
            Step(
                lhs=a * (1 - b) / (1 - a * b),
                rhs=(a - a * b) / (1 - a * b),
                reason=r"So $q(x_s = x_0 \mid x_t = m, x_0) = (\bar\alpha_s - \bar\alpha_t)/(1 - \bar\alpha_t)$.",
            ),
            Step(
                lhs=_same,
                rhs=a * b + (1 - a * b) / K,
                reason=r"Uniform, $x_t = x_0$: the evidence is $\bar\alpha_t + (1 - \bar\alpha_t)/K$.",
            ),
            Step(
                lhs=_diff,
                rhs=(1 - a * b) / K,
                reason=r"Uniform, $x_t \ne x_0$ ($K \ge 2$): the evidence is $(1 - \bar\alpha_t)/K$.",
            ),
        ],
        symbols=(a, b, K),
        references=("austin2021structured", "sahoo2024simple"),
        code=("genmath.core.discrete.DiscretePath.posterior_probs",),
        tests=("tests/core/test_discrete.py",),
    )
)


def _posterior_brute_force_error() -> float:
    """Largest gap between `posterior_probs` and Bayes over the full kernel matrices, for
    every (x_0, x_t) pair of small K at a few (s, t)."""
    from ..core.discrete import MaskPath, UniformPath

    worst = 0.0
    for path in (MaskPath(4, mask_id=6), UniformPath(4)):
        noisy_ids = list(range(4)) + ([path.mask_id] if isinstance(path, MaskPath) else [])
        for s, t in ((0.1, 0.4), (0.3, 0.95), (0.0, 1.0)):
            prior = path.cumulative_kernel(torch.tensor(s, dtype=torch.float64))
            step = path.step_kernel(
                torch.tensor(s, dtype=torch.float64), torch.tensor(t, dtype=torch.float64)
            )
            for x0, xt in itertools.product(range(4), noisy_ids):
                state = 4 if xt == getattr(path, "mask_id", None) else xt
                joint = prior[x0, :] * step[:, state]
                if joint.sum() == 0:
                    continue  # x_t impossible given x_0
                expected = joint / joint.sum()
                got = path.posterior_probs(
                    torch.tensor([xt]),
                    torch.tensor([x0]),
                    torch.tensor(s, dtype=torch.float64),
                    torch.tensor(t, dtype=torch.float64),
                )[0]
                worst = max(worst, float((got - expected).abs().max()))
    return worst


register(
    Check(
        id="C-discrete-posterior",
        title="Discrete posteriors equal brute-force Bayes over the kernel matrices",
        function=_posterior_brute_force_error,
        tolerance=1e-14,
        code=("genmath.core.discrete.DiscretePath.posterior_probs",),
        tests=("tests/core/test_discrete.py",),
        derivation="D-discrete-posterior",
    )
)
