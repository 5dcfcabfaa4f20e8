"""Derivations behind the latent-variable and autoregressive families: the chain-rule NLL as a
cross-entropy, the straight-through identity, the Lloyd–Max quantizer of N(0, 1) with two
codes, and the Gaussian autoregression of a Cholesky factor."""

import math

import sympy as sp
import torch

from ._engine import NUMERIC, Check, Derivation, Step
from ._registry import register

# --------------------------------------------------------------------------- chain rule / CE

p1, p12, p123 = sp.symbols("p_1 p_12 p_123", positive=True)
l1, l2, l3 = sp.symbols("ell_1 ell_2 ell_3", real=True)
q1, q2 = sp.symbols("q_1 q_2", positive=True)
r1, r2 = sp.symbols("p_a p_b", positive=True)
_partition = sp.exp(l1) + sp.exp(l2) + sp.exp(l3)

register(
    Derivation(
        id="D-chain-rule-nll",
        title="Chain-rule log-likelihood, and the NLL of categorical conditionals as cross-entropy",
        statement=(
            r"$\log p(x_1, \dots, x_d) = \sum_i \log p(x_i \mid x_{<i})$ exactly (shown for "
            r"$d = 3$ with $p_1 = p(x_1)$, $p_{12} = p(x_1, x_2)$, $p_{123} = p(x_1, x_2, x_3)$). "
            r"For a conditional $\operatorname{softmax}(\ell)$ and observed class $y$, "
            r"$-\log p(y) = \log\sum_j e^{\ell_j} - \ell_y$ is the cross-entropy of the one-hot "
            r"target (shown for $K = 3$, $y = 1$), so an autoregressive model's NLL is its summed "
            r"cross-entropy; averaged over data $p$ it is $H(p, q) = H(p) + \mathrm{KL}(p \,\|\, q)$ "
            r"(shown for two classes), minimised by $q = p$."
        ),
        start=sp.log(p123),
        steps=[
            Step(
                rhs=sp.log(p1) + sp.log(p12 / p1) + sp.log(p123 / p12),
                reason=(
                    r"Multiply and divide by the marginals: $p_{123} = p_1 \cdot \frac{p_{12}}{p_1} "
                    r"\cdot \frac{p_{123}}{p_{12}}$, each ratio a conditional "
                    r"$p(x_i \mid x_{<i})$; the logarithm turns the product into a sum."
                ),
                method=sp.expand_log,
            ),
            Step(
                lhs=-sp.log(sp.exp(l1) / _partition),
                rhs=sp.log(_partition) - l1,
                reason=(
                    r"The softmax probability of class 1; $\log e^{\ell_1} = \ell_1$ for real "
                    r"$\ell_1$. The right side is $-\sum_j y_j \log \operatorname{softmax}(\ell)_j$ "
                    "with one-hot $y$: the cross-entropy loss."
                ),
                method=lambda e: sp.expand_log(e, force=True),
            ),
            Step(
                lhs=-(r1 * sp.log(q1) + r2 * sp.log(q2)),
                rhs=-(r1 * sp.log(r1) + r2 * sp.log(r2))
                + (r1 * sp.log(r1 / q1) + r2 * sp.log(r2 / q2)),
                reason=(
                    r"The expected NLL under the data, $H(p, q) = -\sum_i p_i \log q_i$, splits into "
                    r"the entropy $H(p)$ and $\mathrm{KL}(p \,\|\, q) \ge 0$."
                ),
                method=sp.expand_log,
            ),
        ],
        symbols=(p1, p12, p123, l1, l2, l3, r1, r2, q1, q2),
        references=("germain2015made", "cover2006elements"),
        code=(
            "genmath.families.autoregressive.chain_rule_log_prob",
            "genmath.families.autoregressive.MADE",
            "genmath.families.autoregressive.PixelCNN",
        ),
        tests=("tests/families/test_autoregressive.py",),
    )
)

# --------------------------------------------------------------------------- straight-through

z = sp.Symbol("z", real=True)
z_stop, q_stop = sp.symbols(r"\operatorname{sg}[z] \operatorname{sg}[q]", real=True)
_st = q_stop + (z - z_stop)

register(
    Derivation(
        id="D-straight-through",
        title="The straight-through estimator: the value of the code, the gradient of the identity",
        statement=(
            r"With the stop-gradient $\operatorname{sg}$ (a constant under differentiation, equal "
            r"to its argument in value), $\operatorname{st}(z) = \operatorname{sg}[q(z)] + z - "
            r"\operatorname{sg}[z]$ equals $q(z)$ in the forward pass and has derivative $1$ "
            r"(the identity Jacobian per coordinate) in the backward pass, whatever the "
            r"quantizer $q$. It is the same as $z + \operatorname{sg}[q(z) - z]$: the "
            "straight-through estimator (Bengio, Léonard & Courville 2013) that the VQ-VAE uses "
            "to copy the decoder's gradient at the code to the encoder output."
        ),
        start=sp.Subs(_st, z_stop, z),
        steps=[
            Step(
                rhs=q_stop,
                reason=(
                    r"Forward value: $\operatorname{sg}[z]$ takes the value $z$, and "
                    r"$z - z = 0$ exactly, so the output is the code $q(z)$."
                ),
            ),
            Step(
                lhs=sp.Derivative(_st, z),
                rhs=sp.Integer(1),
                reason=(
                    r"Backward: $\operatorname{sg}[q]$ and $\operatorname{sg}[z]$ are treated as "
                    "constants, so only the middle $z$ contributes."
                ),
            ),
        ],
        symbols=(z, z_stop, q_stop),
        references=("oord2017neural",),
        code=(
            "genmath.families.tokenizer.straight_through",
            "genmath.families.tokenizer.VectorQuantizer",
            "genmath.families.tokenizer.FSQ",
        ),
        tests=("tests/families/test_tokenizer.py",),
    )
)

# --------------------------------------------------------------------------- Lloyd–Max

x = sp.Symbol("x", real=True)
c = sp.Symbol("c", positive=True)
_phi = sp.exp(-(x**2) / 2) / sp.sqrt(2 * sp.pi)
_c_star = sp.sqrt(2 / sp.pi)

register(
    Derivation(
        id="D-lloyd-max-gaussian",
        title="Lloyd–Max quantizer of N(0, 1) with two codes: ±√(2/π), distortion 1 − 2/π",
        statement=(
            r"For $x \sim \mathcal N(0, 1)$ and the symmetric two-code quantizer "
            r"$q(x) = c\,\operatorname{sign}(x)$ (the nearest-code cells of $\pm c$ meet at 0), "
            r"the distortion is $D(c) = \mathbb E(x - q(x))^2 = 1 - 2c\sqrt{2/\pi} + c^2$, "
            r"minimised at the centroid $c^\star = \mathbb E[x \mid x > 0] = \sqrt{2/\pi}$, the "
            r"fixed point of Lloyd's algorithm, with $D(c^\star) = 1 - 2/\pi$."
        ),
        start=2 * sp.Integral((x - c) ** 2 * _phi, (x, 0, sp.oo)),
        steps=[
            Step(
                rhs=1 - 2 * c * sp.sqrt(2 / sp.pi) + c**2,
                reason=(
                    r"By symmetry the two cells contribute equally; expand $(x - c)^2$ and use "
                    r"$\int_0^\infty \phi = \tfrac12$, $\int_0^\infty x\phi = 1/\sqrt{2\pi}$, "
                    r"$\int_0^\infty x^2\phi = \tfrac12$."
                ),
            ),
            Step(
                lhs=sp.Derivative(1 - 2 * c * sp.sqrt(2 / sp.pi) + c**2, c),
                rhs=2 * (c - _c_star),
                reason=(
                    r"Stationarity: $D'(c) = 0$ exactly at $c = \sqrt{2/\pi}$, and $D'' = 2 > 0$: "
                    "the minimum."
                ),
            ),
            Step(
                lhs=2 * sp.Integral(x * _phi, (x, 0, sp.oo)),
                rhs=_c_star,
                reason=(
                    r"The Lloyd centroid condition: the code of the cell $x > 0$ is its "
                    r"conditional mean $\mathbb E[x \mid x > 0] = \int_0^\infty x \phi / "
                    r"\tfrac12$, the same $\sqrt{2/\pi}$: the optimum is Lloyd's fixed point."
                ),
            ),
            Step(
                lhs=(1 - 2 * c * sp.sqrt(2 / sp.pi) + c**2).subs(c, _c_star),
                rhs=1 - 2 / sp.pi,
                reason=r"The minimal distortion, $1 - 2/\pi \approx 0.3634$.",
            ),
        ],
        symbols=(x, c),
        references=("cover2006elements", "oord2017neural"),
        code=(
            "genmath.families.tokenizer.lloyd_step",
            "genmath.families.tokenizer.VectorQuantizer",
        ),
        tests=("tests/families/test_tokenizer.py",),
    )
)

# --------------------------------------------------------------------------- Gaussian AR

x1, x2, x3 = sp.symbols("x_1 x_2 x_3", real=True)
a11, a22, a33 = sp.symbols("L_11 L_22 L_33", positive=True)
a21, a31, a32 = sp.symbols("L_21 L_31 L_32", real=True)


def _log_normal(value, mean, var):
    return -sp.log(2 * sp.pi * var) / 2 - (value - mean) ** 2 / (2 * var)


def _joint(L, xs):
    cov = L * L.T
    vec = sp.Matrix(xs)
    quad = (vec.T * cov.inv() * vec)[0, 0]
    n = len(xs)
    return -n * sp.log(2 * sp.pi) / 2 - sp.log(cov.det()) / 2 - quad / 2


def _chain(L, xs):
    """Sum of the conditionals N(x_k; sum_{j<k} L_kj eps_j, L_kk^2), eps = L^{-1} x."""
    eps = L.inv() * sp.Matrix(xs)
    return sum(
        _log_normal(xs[k], sum(L[k, j] * eps[j] for j in range(k)), L[k, k] ** 2)
        for k in range(len(xs))
    )


_L2 = sp.Matrix([[a11, 0], [a21, a22]])
_L3 = sp.Matrix([[a11, 0, 0], [a21, a22, 0], [a31, a32, a33]])

register(
    Derivation(
        id="D-gaussian-autoregression",
        title="A Cholesky factor turns a Gaussian into linear-Gaussian autoregressive conditionals",
        statement=(
            r"For $x \sim \mathcal N(0, LL^\top)$ with $L$ lower triangular, "
            r"$\varepsilon = L^{-1}x$ and "
            r"$x_k \mid x_{<k} \sim \mathcal N(\sum_{j<k} L_{kj}\varepsilon_j,\ L_{kk}^2)$ "
            r"(the mean depends on $x_{<k}$ only, as $L^{-1}$ is lower triangular), and the sum "
            r"of the conditional log-densities is the joint log-density. Any ordering $\pi$ works "
            r"with $L$ the Cholesky factor of $\Sigma_{\pi\pi}$; a mean $\mu$ shifts every "
            r"conditional. In matrix form the conditional means are $\mu + (I - DL^{-1})(x - \mu)$, "
            r"$D = \operatorname{diag} L$."
        ),
        start=_joint(_L2, [x1, x2]),
        steps=[
            Step(
                rhs=_chain(_L2, [x1, x2]),
                reason=(
                    r"$\det LL^\top = L_{11}^2 L_{22}^2$ and $x^\top (LL^\top)^{-1} x = "
                    r"\|\varepsilon\|^2 = \sum_k ((x_k - \sum_{j<k} L_{kj}\varepsilon_j)/L_{kk})^2$: "
                    "the joint splits into one Gaussian factor per coordinate (d = 2)."
                ),
                method=lambda e: sp.simplify(sp.expand_log(sp.expand(e), force=True)),
            ),
            Step(
                lhs=_joint(_L3, [x1, x2, x3]),
                rhs=_chain(_L3, [x1, x2, x3]),
                reason="The same identity for d = 3, checked at random lower-triangular factors.",
                tag=NUMERIC,
                tolerance=1e-12,
                samples=8,
            ),
        ],
        symbols=(x1, x2, x3, a11, a21, a22, a31, a32, a33),
        references=("germain2015made",),
        code=("genmath.families.autoregressive.GaussianAutoregression",),
        tests=("tests/families/test_autoregressive.py",),
    )
)


# --------------------------------------------------------------------------- exact-numeric checks


def _check_gaussian_autoregression() -> float:
    from genmath.analytic import Gaussian
    from genmath.families.autoregressive import GaussianAutoregression

    g = torch.Generator().manual_seed(0)
    a = torch.randn(5, 5, generator=g, dtype=torch.float64)
    cov = a @ a.T + 0.3 * torch.eye(5, dtype=torch.float64)
    mean = torch.randn(5, generator=g, dtype=torch.float64)
    x = 2 * torch.randn(7, 5, generator=g, dtype=torch.float64)
    exact = Gaussian(mean, cov).log_prob(x)
    worst = 0.0
    for ordering in (None, [4, 3, 2, 1, 0], [2, 0, 4, 1, 3]):
        got = GaussianAutoregression(mean, cov, ordering).log_prob(x)
        worst = max(worst, float((got - exact).abs().max()))
    return worst


def _check_straight_through() -> float:
    from genmath.families.tokenizer import VectorQuantizer

    g = torch.Generator().manual_seed(0)
    vq = VectorQuantizer(6, 3, generator=g).double()
    z = torch.randn(4, 3, generator=g, dtype=torch.float64)
    out = vq(z)
    value_error = float((out.quantized - vq.codebook.detach()[out.indices]).abs().max())
    jac = torch.autograd.functional.jacobian(lambda u: vq(u).quantized, z).reshape(12, 12)
    return max(value_error, float((jac - torch.eye(12, dtype=torch.float64)).abs().max()))


def _check_lloyd_max() -> float:
    """`lloyd_step` on n quantiles of N(0, 1) (a deterministic stand-in for the law, error
    O(1/n)) converges to the Lloyd-Max codes +-sqrt(2/pi)."""
    from genmath.families.tokenizer import lloyd_step

    n = 100_000
    levels = (torch.arange(n, dtype=torch.float64) + 0.5) / n
    x = torch.special.ndtri(levels)[:, None]
    codebook = torch.tensor([[-0.05], [0.4]], dtype=torch.float64)
    for _ in range(60):
        codebook = lloyd_step(codebook, x)
    target = torch.tensor([-math.sqrt(2 / math.pi), math.sqrt(2 / math.pi)], dtype=torch.float64)
    return float((codebook.flatten() - target).abs().max())


register(
    Check(
        id="C-gaussian-autoregression",
        title="GaussianAutoregression.log_prob equals the joint Gaussian log-density for three orderings",
        function=_check_gaussian_autoregression,
        tolerance=1e-10,
        code=("genmath.families.autoregressive.GaussianAutoregression",),
        tests=("tests/families/test_autoregressive.py",),
        derivation="D-gaussian-autoregression",
    )
)
register(
    Check(
        id="C-straight-through",
        title="VectorQuantizer: forward value is the code, Jacobian w.r.t. the encoder output is I",
        function=_check_straight_through,
        tolerance=1e-15,
        code=("genmath.families.tokenizer.straight_through",),
        tests=("tests/families/test_tokenizer.py",),
        derivation="D-straight-through",
    )
)
register(
    Check(
        id="C-lloyd-max-gaussian",
        title="lloyd_step on 10^5 quantiles of N(0, 1) converges to ±√(2/π)",
        function=_check_lloyd_max,
        tolerance=1e-4,
        code=("genmath.families.tokenizer.lloyd_step",),
        tests=("tests/families/test_tokenizer.py",),
        derivation="D-lloyd-max-gaussian",
    )
)
