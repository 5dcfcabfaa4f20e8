"""Derivations behind the latent-variable and autoregressive families: the chain-rule
likelihood of masked autoregressive models (Gaussian and Bernoulli conditionals, the NLL as a
cross-entropy), the straight-through estimator's value and gradients in the VQ-VAE and FSQ
losses, Lloyd's update, the Lloyd–Max quantizer of N(0, 1) with two codes, and the Gaussian
autoregression of a Cholesky factor. The bindings are in `_latent_bindings`."""

import math

import sympy as sp
import torch

from ._chain import Earlier, as_written
from ._engine import NUMERIC, Check, Derivation, Step, sound_rewrite
from ._gaussian import log_normal
from ._registry import register

# --------------------------------------------------------------------------- chain rule / CE

p1, p12, p123 = sp.symbols("p_1 p_12 p_123", positive=True)
x1, x2, x3 = sp.symbols("x_1 x_2 x_3", real=True)
# Gaussian conditionals whose parameters depend on the entries before them only (what a masked
# network computes): means c_i + sum_{j<i} W_ij x_j, log-stds d_i + sum_{j<i} V_ij x_j
c1, c2, c3, d1, d2, d3 = sp.symbols("c_1 c_2 c_3 d_1 d_2 d_3", real=True)
W21, W31, W32, V21, V31, V32 = sp.symbols("W_21 W_31 W_32 V_21 V_31 V_32", real=True)
_means = (c1, c2 + W21 * x1, c3 + W31 * x1 + W32 * x2)
_log_stds = (d1, d2 + V21 * x1, d3 + V31 * x1 + V32 * x2)
_xs = (x1, x2, x3)


def _normal_pdf(value, mean, log_std):
    return sp.exp(-((value - mean) ** 2) / (2 * sp.exp(2 * log_std))) / (
        sp.sqrt(2 * sp.pi) * sp.exp(log_std)
    )


_gauss = [_normal_pdf(x, m, ls) for x, m, ls in zip(_xs, _means, _log_stds, strict=True)]
GAUSSIAN_CHAIN = sum(
    log_normal(x, m, sp.exp(2 * ls)) for x, m, ls in zip(_xs, _means, _log_stds, strict=True)
)
# Bernoulli conditionals with logits e_i + sum_{j<i} U_ij x_j: the NLL is the binary
# cross-entropy log(1 + e^l) - x l, summed
e1, e2, e3, U21, U31, U32 = sp.symbols("e_1 e_2 e_3 U_21 U_31 U_32", real=True)
_logits = (e1, e2 + U21 * x1, e3 + U31 * x1 + U32 * x2)


def _bernoulli(x, logit):
    p = 1 / (1 + sp.exp(-logit))
    return p**x * (1 - p) ** (1 - x)


_bern = [_bernoulli(x, logit) for x, logit in zip(_xs, _logits, strict=True)]
BERNOULLI_CHAIN = sum(x * logit - sp.log(1 + sp.exp(logit)) for x, logit in zip(_xs, _logits, strict=True))


@sound_rewrite(
    "expands logarithms of products and powers whose factors are positive (Gaussian and "
    "Bernoulli densities of real parameters)"
)
def _split_logs(expr):
    """Split the logarithms of products and powers of the (positive) densities."""
    return sp.expand(sp.expand_log(expr, force=True))


register(
    Derivation(
        id="D-chain-rule-nll",
        title="Chain-rule log-likelihood of a masked autoregressive model; the NLL as cross-entropy",
        statement=(
            r"$\log p(x_1, \dots, x_d) = \sum_i \log p(x_i \mid x_{<i})$ exactly (step 1, for "
            r"$d = 3$ with $p_1 = p(x_1)$, $p_{12} = p(x_1, x_2)$, $p_{123} = p(x_1, x_2, x_3)$). A "
            r"masked network (MADE, PixelCNN) computes the parameters of conditional $i$ from "
            r"$x_{<i}$ only, so its outputs' Jacobian in $x$ is strictly lower triangular in "
            r"the ordering and the product of its conditionals is a normalised joint. Step 2 "
            r"puts in Gaussian conditionals whose means and log-scales are affine in $x_{<i}$: "
            r"`MADE(conditional=\"gaussian\")` with one masked layer is bound to it at weights "
            r"that include the *forbidden* entries, which its masks must ignore. Step 3 does "
            r"the same for Bernoulli conditionals with logits $\ell_i$: the NLL is the summed "
            r"binary cross-entropy $\sum_i \log(1 + e^{\ell_i}) - x_i\ell_i$ (problem set 2)."
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
                lhs=Earlier(
                    "D-chain-rule-nll",
                    {p1: _gauss[0], p12: _gauss[0] * _gauss[1], p123: sp.Mul(*_gauss)},
                    step=1,
                ),
                rhs=GAUSSIAN_CHAIN,
                reason=(
                    r"Gaussian conditionals $\mathcal N(x_i; \mu_i(x_{<i}), \sigma_i(x_{<i})^2)$: "
                    "each ratio of marginals is one conditional, so the log-likelihood is the sum "
                    "of the conditional log-densities."
                ),
                method=_split_logs,
            ),
            Step(
                lhs=Earlier(
                    "D-chain-rule-nll",
                    {p1: _bern[0], p12: _bern[0] * _bern[1], p123: sp.Mul(*_bern)},
                    step=1,
                ),
                rhs=BERNOULLI_CHAIN,
                reason=(
                    r"Bernoulli conditionals with $p(x_i = 1 \mid x_{<i}) = \sigma(\ell_i)$: "
                    r"$\log\sigma(\ell)^x(1 - \sigma(\ell))^{1-x} = x\ell - \log(1 + e^\ell)$, minus "
                    "the binary cross-entropy of the target $x_i$ (checked at random points)."
                ),
                tag=NUMERIC,
                samples=8,
                tolerance=1e-12,
            ),
        ],
        symbols=(p1, p12, p123, *_xs, c1, c2, c3, d1, d2, d3, W21, W31, W32, V21, V31, V32),
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

z, q, x_target, e = sp.symbols("z q x e", real=True)
beta = sp.Symbol("beta", nonnegative=True)
half_range, fsq_eps = sp.symbols("h epsilon", positive=True)
rounded = sp.Symbol("r", real=True)  # the rounded FSQ value: piecewise constant in z
sg_z, sg_q, sg_e, sg_b, sg_r = sp.symbols(
    r"\operatorname{sg}[z] \operatorname{sg}[q] \operatorname{sg}[e] \operatorname{sg}[b] "
    r"\operatorname{sg}[r]",
    real=True,
)
_bound = (1 - fsq_eps) * half_range * sp.tanh(z)  # FSQ's bounded coordinate b(z)


def _stopped(expr, pairs, wrt=None):
    """``expr`` with the stop-gradient symbols held constant under ``d/d wrt``, then set to the
    values they stop (the semantics of ``.detach()``)."""
    body = expr if wrt is None else sp.Derivative(expr, wrt)
    symbols, values = zip(*pairs, strict=True)
    return sp.Subs(body, symbols, values)


_st = sg_q + z - sg_z  # straight_through(z, q)
_decoder_loss = (x_target - _st) ** 2
# the VQ-VAE loss of one coordinate: a decoder loss at the straight-through code, the codebook
# loss ||sg[z] - e||^2 and the commitment loss beta ||z - sg[e]||^2, with q = sg[e] the code
_vq_st = sg_e + z - sg_z
_vq_loss = (x_target - _vq_st) ** 2 + (sg_z - e) ** 2 + beta * (z - sg_e) ** 2
_fsq_st = (sg_r + _bound - sg_b) / half_range
_fsq_loss = (x_target - _fsq_st) ** 2
_st_pairs = ((sg_z, z), (sg_q, q))
_vq_pairs = ((sg_z, z), (sg_e, e))
_fsq_pairs = ((sg_b, _bound), (sg_r, rounded))

STRAIGHT_THROUGH = sp.ImmutableMatrix(
    [
        (x_target - q) ** 2,
        -2 * (x_target - q),
        (x_target - e) ** 2 + (1 + beta) * (z - e) ** 2,
        -2 * (x_target - e) + 2 * beta * (z - e),
        2 * (e - z),
        (x_target - rounded / half_range) ** 2,
        -2 * (x_target - rounded / half_range) * (1 - fsq_eps) * (1 - sp.tanh(z) ** 2),
    ]
)

register(
    Derivation(
        id="D-straight-through",
        title="The straight-through estimator: the value of the code, the gradient of the identity",
        statement=(
            r"With the stop-gradient $\operatorname{sg}$ (equal to its argument in value, a "
            r"constant under differentiation), $\operatorname{st}(z, q) = \operatorname{sg}[q] + "
            r"z - \operatorname{sg}[z]$ has the value $q$ and passes $\partial/\partial z$ through "
            r"unchanged while $q$ gets no gradient (Bengio, Léonard & Courville 2013). Derived "
            r"here through the losses that use it, differentiating with the $\operatorname{sg}"
            r"[\cdot]$ symbols held fixed and only then setting their values: (rows 1–2) a "
            r"decoder loss $(x - \operatorname{st})^2$; (rows 3–5) the VQ-VAE loss of one "
            r"coordinate, $(x - \operatorname{st}(z, e))^2 + \|\operatorname{sg}[z] - e\|^2 + "
            r"\beta\|z - \operatorname{sg}[e]\|^2$ (van den Oord et al. 2017): the encoder output "
            r"$z$ gets the decoder's gradient plus the commitment term, the code $e$ only the "
            r"codebook term; (rows 6–7) FSQ's $\operatorname{st}(b(z), r)/h$ with "
            r"$b(z) = (1 - \epsilon)h\tanh z$ and $r$ the rounded value (Mentzer et al. 2024): "
            r"the gradient of the bound. Misplacing a stop-gradient (on $q$'s side, or both "
            "commitment factors) changes these gradients; the bindings compare autograd's."
        ),
        start=sp.ImmutableMatrix(
            [
                _stopped(_decoder_loss, _st_pairs),
                _stopped(_decoder_loss, _st_pairs, z),
                _stopped(_vq_loss, _vq_pairs),
                _stopped(_vq_loss, _vq_pairs, z),
                _stopped(_vq_loss, _vq_pairs, e),
                _stopped(_fsq_loss, _fsq_pairs),
                _stopped(_fsq_loss, _fsq_pairs, z),
            ]
        ),
        steps=[
            Step(
                rhs=STRAIGHT_THROUGH,
                reason=(
                    r"Differentiate with $\operatorname{sg}[\cdot]$ fixed, then put in their "
                    r"values: $z - \operatorname{sg}[z] = 0$ in value and $1$ in derivative; "
                    r"$\operatorname{sg}[q]$, $\operatorname{sg}[e]$, $\operatorname{sg}[r]$ carry no "
                    r"derivative, so $e$ is moved only by the codebook term, $-2(z - e)$... "
                    r"$= 2(e - z)$; FSQ's gradient is $b'(z)/h = (1 - \epsilon)(1 - \tanh^2 z)$ "
                    "times the decoder's."
                ),
            ),
        ],
        symbols=(z, q, x_target, e, beta, half_range, fsq_eps, rounded),
        references=("bengio2013estimating", "oord2017neural", "mentzer2024finite"),
        code=(
            "genmath.families.tokenizer.straight_through",
            "genmath.families.tokenizer.VectorQuantizer",
            "genmath.families.tokenizer.FSQ",
        ),
        tests=("tests/families/test_tokenizer.py",),
    )
)

# --------------------------------------------------------------------------- codebook perplexity

m_1, m_2, m_3 = sp.symbols("m_1 m_2 m_3", positive=True)  # how many positions chose each code
_used = m_1 + m_2 + m_3
PERPLEXITY = sp.exp(-sum((m / _used) * sp.log(m / _used) for m in (m_1, m_2, m_3)))

register(
    Derivation(
        id="D-codebook-perplexity",
        title="Codebook perplexity: the exponentiated entropy of code usage, k for k codes used alike",
        statement=(
            r"With $m_k$ positions assigned to code $k$ and usage $u_k = m_k / M$, "
            r"$M = \sum_k m_k$, the perplexity $\exp(-\sum_k u_k \log u_k)$ equals "
            r"$M \prod_k m_k^{-m_k/M}$, and $k$ when $k$ codes are used equally often: the "
            r"effective number of codes. A code no position chose has $u_k = 0$ and adds "
            r"nothing ($u \log u \to 0$), so the perplexity counts used codes only. Shown for "
            r"three used codes (a fourth, unused, in the binding)."
        ),
        start=PERPLEXITY,
        steps=[
            Step(
                rhs=_used * m_1 ** (-m_1 / _used) * m_2 ** (-m_2 / _used) * m_3 ** (-m_3 / _used),
                reason=(
                    r"$-\sum_k u_k \log u_k = \log M \sum_k u_k - \sum_k u_k \log m_k$ and "
                    r"$\sum_k u_k = 1$; exponentiate."
                ),
            ),
            Step(
                lhs=Earlier("D-codebook-perplexity", {m_2: m_1, m_3: m_1}, step=1),
                rhs=sp.Integer(3),
                reason=r"Equal counts $m$: $M = 3m$ and each factor is $m^{-1/3}$, so $3m \cdot m^{-1} = 3$.",
            ),
        ],
        symbols=(m_1, m_2, m_3),
        references=("oord2017neural",),
        code=("genmath.families.tokenizer.VectorQuantizer",),
        tests=("tests/families/test_tokenizer.py",),
    )
)

# --------------------------------------------------------------------------- Lloyd's update

y1, y2, y3, code = sp.symbols("y_1 y_2 y_3 c", real=True)
gamma = sp.Symbol("gamma", nonnegative=True)
n_1, n_2 = sp.symbols("n_1 n_2", positive=True)
s_1, s_2 = sp.symbols("s_1 s_2", real=True)
CELL_MEAN = (y1 + y2 + y3) / 3
_count_1, _sum_1 = (1 - gamma) * n_1, (1 - gamma) * s_1  # moving averages after one update
_count_2, _sum_2 = gamma * _count_1 + (1 - gamma) * n_2, gamma * _sum_1 + (1 - gamma) * s_2
EMA_CODE = (gamma * s_1 + s_2) / (gamma * n_1 + n_2)

register(
    Derivation(
        id="D-lloyd-step",
        title="Lloyd's update moves each code to its cell's mean; the EMA codebook of VQ-VAE",
        statement=(
            r"For the points $y_i$ of one cell, $\sum_i (y_i - c)^2 = n(c - \bar y)^2 + "
            r"\sum_i(y_i - \bar y)^2$: the distortion is smallest at the cell mean $\bar y$, "
            r"which is Lloyd's update (`lloyd_step`; Lloyd 1982). The VQ-VAE's moving averages "
            r"(van den Oord et al. 2017, appendix) keep a count $N \leftarrow \gamma N + "
            r"(1 - \gamma)n$ and a sum $M \leftarrow \gamma M + (1 - \gamma)s$ of the points "
            r"assigned to a code, which is $M/N$; from $N = M = 0$ one update gives the batch "
            r"mean $s/n$ whatever $\gamma$ is (so `decay=0` is one Lloyd step) and two give "
            r"$(\gamma s_1 + s_2)/(\gamma n_1 + n_2)$. Shown for a cell of three points."
        ),
        start=sp.ImmutableMatrix([(y1 - code) ** 2 + (y2 - code) ** 2 + (y3 - code) ** 2, _sum_1 / _count_1, _sum_2 / _count_2]),
        steps=[
            Step(
                rhs=sp.ImmutableMatrix(
                    [
                        3 * (code - CELL_MEAN) ** 2
                        + (y1 - CELL_MEAN) ** 2
                        + (y2 - CELL_MEAN) ** 2
                        + (y3 - CELL_MEAN) ** 2,
                        s_1 / n_1,
                        EMA_CODE,
                    ]
                ),
                reason=(
                    r"Complete the square in $c$ (the cross term vanishes because "
                    r"$\sum_i (y_i - \bar y) = 0$); the factors $1 - \gamma$ cancel in $M/N$."
                ),
            ),
        ],
        symbols=(y1, y2, y3, code, gamma, n_1, n_2, s_1, s_2),
        references=("lloyd1982least", "oord2017neural"),
        code=(
            "genmath.families.tokenizer.lloyd_step",
            "genmath.families.tokenizer.VectorQuantizer",
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
            r"the distortion is $D(c) = \mathbb E(x - q(x))^2 = 1 - 2c\sqrt{2/\pi} + c^2 = "
            r"(c - \sqrt{2/\pi})^2 + 1 - 2/\pi$, minimised at the centroid "
            r"$c^\star = \mathbb E[x \mid x > 0] = 2\int_0^\infty x\phi = \sqrt{2/\pi}$, the fixed "
            r"point of Lloyd's algorithm (D-lloyd-step), with $D(c^\star) = 1 - 2/\pi$. "
            r"`lloyd_step` is bound to the centroid on quantiles of $\mathcal N(0, 1)$ (a "
            r"quadrature with error $O(1/n)$, hence the binding's tolerance)."
        ),
        start=2 * sp.Integral((x - c) ** 2 * _phi, (x, 0, sp.oo)),
        steps=[
            Step(
                rhs=1 - 2 * c * _c_star + c**2,
                reason=(
                    r"By symmetry the two cells contribute equally; expand $(x - c)^2$ and use "
                    r"$\int_0^\infty \phi = \tfrac12$, $\int_0^\infty x\phi = 1/\sqrt{2\pi}$, "
                    r"$\int_0^\infty x^2\phi = \tfrac12$."
                ),
                tag=NUMERIC,
                samples=4,
            ),
            Step(
                rhs=(c - _c_star) ** 2 + 1 - 2 / sp.pi,
                reason=r"Complete the square: the minimum is at $c = \sqrt{2/\pi}$.",
            ),
            Step(
                rhs=1 - 2 / sp.pi,
                relation=">=",
                reason=r"A square is non-negative: the minimal distortion is $1 - 2/\pi \approx 0.3634$.",
                method=as_written,
            ),
        ],
        symbols=(x, c),
        references=("cover2006elements", "oord2017neural", "max1960quantizing"),
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

from . import _latent_bindings  # noqa: E402,F401  (the bindings of the derivations above)
