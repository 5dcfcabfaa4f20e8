"""Derivations of the flow families: the i-ResNet log-determinant series, the unbiasedness of
the Russian-roulette estimator of residual flows, and the log-determinant of Glow's 1×1
convolution; with checks tying `genmath.families.residual` and `genmath.families.flows` to them."""

import sympy as sp

from ._engine import CITED, NUMERIC, Check, Derivation, Step
from ._registry import register

_RESIDUAL = "genmath.families.residual"
_FLOWS = "genmath.families.flows"

# ---------------------------------------------------------------- i-ResNet log-det series

lam1, lam2 = sp.symbols("lambda_1 lambda_2", real=True)
s = sp.Symbol("s", real=True)
k = sp.Symbol("k", integer=True, positive=True)
# a non-symmetric J with eigenvalues lambda_1, lambda_2: J = S diag(lambda) S^{-1}
_S = sp.Matrix([[1, s], [0, 1]])
_J = _S * sp.diag(lam1, lam2) * _S.inv()


# Mercator's series is checked through its partial sum of _TERMS terms: sympy cannot sum the
# infinite series at floating-point arguments, and for |lambda| <= 1/2 the tail is below
# 2 (1/2)^(_TERMS + 1) / (_TERMS + 1) < 1e-25, far under the tolerance of the numeric steps.
_TERMS = 80


def _series(lam):
    return sp.Sum((-1) ** (k + 1) * lam**k / k, (k, 1, _TERMS))


register(
    Derivation(
        id="D-iresnet-logdet-series",
        title="Log-determinant of an invertible residual block as a power series of traces",
        statement=(
            r"For $F(x) = x + g(x)$ with $J = \partial g/\partial x$ and spectral radius "
            r"$\rho(J) \le \|J\|_2 \le \operatorname{Lip}(g) < 1$, "
            r"$\log|\det(I + J)| = \sum_{k \ge 1} (-1)^{k+1} \operatorname{tr}(J^k)/k$ "
            r"(Behrmann et al. 2019). Shown for a non-symmetric $2\times2$ "
            r"$J = S\,\operatorname{diag}(\lambda_1,\lambda_2)\,S^{-1}$; the argument (eigenvalues "
            r"$\lambda_i$ of $J$, $\operatorname{tr}J^k = \sum_i \lambda_i^k$, Mercator's series "
            r"for each $\log(1 + \lambda_i)$) holds in any dimension, for diagonalisable $J$ "
            r"directly and for the rest by density and continuity. Truncating after $n$ "
            r"terms errs by at most $d\,c^{n+1}/((n+1)(1-c))$ when $\|J\|_2 \le c$."
        ),
        start=sp.log(sp.Determinant(sp.eye(2) + _J)),
        steps=[
            Step(
                rhs=sp.log((1 + lam1) * (1 + lam2)),
                reason=(
                    r"$\det(I + S D S^{-1}) = \det(S (I + D) S^{-1}) = \det(I + D)$; "
                    r"$1 + \lambda_i > 0$ for $|\lambda_i| < 1$, so no absolute value is needed."
                ),
            ),
            Step(
                rhs=sp.log(1 + lam1) + sp.log(1 + lam2),
                reason=r"Both factors are positive when $|\lambda_i| < 1$.",
                tag=NUMERIC,
            ),
            Step(
                rhs=_series(lam1) + _series(lam2),
                reason=(
                    r"Mercator's series $\log(1 + \lambda) = \sum_{k\ge1}(-1)^{k+1}\lambda^k/k$, "
                    r"absolutely convergent for $|\lambda| < 1$; checked at sampled "
                    r"$|\lambda_i| \le 1/2$ through the partial sum shown, whose tail is below "
                    r"$10^{-25}$ there."
                ),
                tag=NUMERIC,
                samples=6,
            ),
            Step(
                rhs=sp.Sum((-1) ** (k + 1) * (lam1**k + lam2**k) / k, (k, 1, _TERMS)),
                reason="Two absolutely convergent series add term by term.",
            ),
            Step(
                lhs=(_J**3).trace(),
                rhs=lam1**3 + lam2**3,
                reason=(
                    r"$\operatorname{tr}J^k = \operatorname{tr}(S D^k S^{-1}) = "
                    r"\lambda_1^k + \lambda_2^k$; checked here for $k = 3$ (and $k = 2$ below), "
                    r"so the series is $\sum_k (-1)^{k+1}\operatorname{tr}(J^k)/k$."
                ),
            ),
            Step(
                lhs=(_J**2).trace(),
                rhs=lam1**2 + lam2**2,
                reason=r"The same identity for $k = 2$.",
            ),
        ],
        symbols=(lam1, lam2, s),
        references=("behrmann2019invertible",),
        code=(f"{_RESIDUAL}.InvertibleResidualBlock", f"{_RESIDUAL}.power_series_logdet_bound"),
        tests=("tests/families/test_residual.py",),
        domain={lam1: (-0.5, 0.5), lam2: (-0.5, 0.5), s: (-2.0, 2.0)},
    )
)

# ---------------------------------------------------------------- Russian roulette

q = sp.Symbol("q", positive=True)
a = sp.Symbol("a", real=True)
n = sp.Symbol("n", integer=True, positive=True)


def _term(index):
    # the terms c_k of log(1 + a): the i-ResNet series of a 1x1 Jacobian
    return (-1) ** (index + 1) * a**index / index


_p_stop = (1 - q) * q ** (n - 1)  # P(N = n), N = 1 + geometric


def _truncated_expectation(largest: int):
    """E[S_hat 1{N <= largest}] written out term by term (sympy's summation of the nested
    symbolic-limit sum fails at floating-point arguments)."""
    total = sp.Integer(0)
    partial = sp.Integer(0)
    for count in range(1, largest + 1):
        partial += _term(count) / q ** (count - 1)
        total += (1 - q) * q ** (count - 1) * partial
    return total


_p_survive = q ** (k - 1)  # P(N >= k)

register(
    Derivation(
        id="D-russian-roulette-unbiased",
        title="The Russian-roulette estimator of an infinite series is unbiased",
        statement=(
            r"Let $N \ge 1$ be random with $P(N \ge k) > 0$ for all $k$ and "
            r"$\sum_k |c_k| < \infty$. Then $\hat S = \sum_{k=1}^{N} c_k / P(N \ge k)$ has "
            r"$\mathbb E[\hat S] = \sum_{k\ge1} c_k$ (Chen et al. 2019, residual flows). Shown "
            r"for $N - 1$ geometric, $P(N = n) = (1-q) q^{n-1}$, $P(N \ge k) = q^{k-1}$, and the "
            r"terms $c_k = (-1)^{k+1} a^k/k$ of $\log(1 + a)$, $|a| < 1$. The estimator's "
            r"variance $\sum_k c_k^2/P(N\ge k) - (\sum c_k)^2$ is finite when $a^2 < q$. "
            r"`InvertibleResidualBlock` always computes the first $n_0$ terms "
            r"($P(N \ge k) = 1$ for $k \le n_0$), which changes nothing in the argument."
        ),
        start=sp.Sum(_p_stop * sp.Sum(_term(k) / _p_survive, (k, 1, n)), (n, 1, sp.oo)),
        steps=[
            Step(
                rhs=sp.Sum(_term(k) / _p_survive * sp.Sum(_p_stop, (n, k, sp.oo)), (k, 1, sp.oo)),
                reason=(
                    r"Exchange the order of summation over $\{(n, k): 1 \le k \le n\}$; "
                    r"the double series converges absolutely because $\sum_k |c_k| < \infty$."
                ),
                tag=CITED,
                theorem="Fubini–Tonelli for absolutely convergent double series",
                reference="rudin1976principles",
            ),
            Step(
                lhs=sp.Sum(_p_stop, (n, k, sp.oo)),
                rhs=_p_survive,
                reason=r"A geometric tail: $\sum_{n \ge k} (1 - q) q^{n-1} = q^{k-1} = P(N \ge k)$.",
                tag=NUMERIC,
                samples=6,
            ),
            Step(
                lhs=_term(k) / _p_survive * _p_survive,
                rhs=_term(k),
                reason=(
                    r"In each term the weight $1/P(N \ge k)$ cancels the probability that term "
                    r"$k$ is reached, so the expectation is $\sum_k c_k$."
                ),
            ),
            Step(
                lhs=sp.Sum(_term(k), (k, 1, _TERMS)),
                rhs=sp.log(1 + a),
                reason=(
                    r"Mercator's series, $|a| < 1$: the estimator is unbiased for $\log(1+a)$ "
                    r"(checked through the partial sum; the tail is below $10^{-25}$ for "
                    r"$|a| \le 1/2$)."
                ),
                tag=NUMERIC,
                samples=6,
            ),
            Step(
                lhs=_truncated_expectation(60),
                rhs=sp.log(1 + a),
                reason=(
                    r"Numeric confirmation of the whole chain: the expectation computed over "
                    r"$N \le 60$, written out (what is left out is of order "
                    r"$\max(|a|, q)^{60} < 10^{-9}$ at the sampled $|a| \le 1/2$, $q \le 0.7$)."
                ),
                tag=NUMERIC,
                tolerance=1e-8,
                samples=4,
            ),
        ],
        symbols=(a, q),
        references=("chen2019residual",),
        code=(f"{_RESIDUAL}.InvertibleResidualBlock",),
        tests=("tests/families/test_residual.py",),
        domain={a: (-0.5, 0.5), q: (0.6, 0.7)},
    )
)

# ---------------------------------------------------------------- Glow 1x1 convolution

w11, w12, w21, w22 = sp.symbols("w_11 w_12 w_21 w_22", real=True)
_W = sp.Matrix([[w11, w12], [w21, w22]])
pixels = sp.symbols("x_1:7", real=True)  # C = 2 channels at h w = 3 pixels
_image = [sp.Matrix(pixels[2 * p : 2 * p + 2]) for p in range(3)]
_conv = sp.Matrix.vstack(*[_W * v for v in _image])
hw = sp.Symbol("hw", integer=True, positive=True)

register(
    Derivation(
        id="D-glow-conv1x1-logdet",
        title="Log-determinant of Glow's invertible 1×1 convolution",
        statement=(
            r"A 1×1 convolution with kernel $W \in \mathbb R^{C\times C}$ multiplies the channel "
            r"vector of each of the $h\,w$ pixels by $W$. Ordering the coordinates pixel by "
            r"pixel, its Jacobian is block diagonal with $h w$ copies of $W$, so "
            r"$\log|\det J| = h\,w\,\log|\det W|$ (Kingma & Dhariwal 2018), which the LU "
            r"parameterization evaluates in $O(C)$ (D-flow-lu-logdet). Checked for $C = 2$ "
            r"and $h w = 3$."
        ),
        start=sp.log(sp.Abs(sp.Determinant(_conv.jacobian(pixels)))),
        steps=[
            Step(
                rhs=sp.log(sp.Abs(_W.det() ** 3)),
                reason=(
                    r"The Jacobian is $\operatorname{diag}(W, W, W)$; the determinant of a block "
                    r"diagonal matrix is the product of the blocks' determinants."
                ),
            ),
            Step(
                rhs=3 * sp.log(sp.Abs(_W.det())),
                reason=r"$\log|u^{3}| = 3\log|u|$ for $u = \det W \ne 0$.",
                tag=NUMERIC,
            ),
        ],
        symbols=(w11, w12, w21, w22),
        references=("kingma2018glow",),
        code=(f"{_FLOWS}.InvertibleConv1x1",),
        tests=("tests/families/test_flows.py",),
    )
)


# ---------------------------------------------------------------- rational-quadratic spline

xi = sp.Symbol("xi", positive=True)
w_k, h_k, d_0, d_1 = sp.symbols("w_k h_k delta_k delta_k+1", positive=True)
x_k, y_k, dy = sp.symbols("x_k y_k Delta", real=True)
_slope = h_k / w_k
_bend = d_1 + d_0 - 2 * _slope
_rq = y_k + h_k * (_slope * xi**2 + d_0 * xi * (1 - xi)) / (_slope + _bend * xi * (1 - xi))
_rq_derivative = (
    _slope**2
    * (d_1 * xi**2 + 2 * _slope * xi * (1 - xi) + d_0 * (1 - xi) ** 2)
    / (_slope + _bend * xi * (1 - xi)) ** 2
)
xs = sp.Symbol("x", real=True)

register(
    Derivation(
        id="D-rq-spline-derivative",
        title="Rational-quadratic spline: derivative, knot values and inverse",
        statement=(
            r"In bin $k$ of a monotone rational-quadratic spline (Gregory & Delbourgo 1982; "
            r"Durkan et al. 2019), with $\xi = (x - x_k)/w_k$, $s_k = h_k/w_k$ and knot "
            r"derivatives $\delta_k, \delta_{k+1} > 0$, "
            r"$g = y_k + h_k\,[s_k\xi^2 + \delta_k\xi(1-\xi)]/[s_k + (\delta_{k+1}+\delta_k-2s_k)\xi(1-\xi)]$. "
            r"Its derivative is the closed form below (positive, so $g$ is increasing), it "
            r"takes the values $y_k, y_k + h_k$ and slopes $\delta_k, \delta_{k+1}$ at the "
            r"bin's ends, and $g(\xi) = y_k + \Delta$ is the quadratic "
            r"$a\xi^2 + b\xi + c = 0$ used by the inverse."
        ),
        start=sp.diff(_rq.subs(xi, (xs - x_k) / w_k), xs).subs(xs, x_k + xi * w_k),
        steps=[
            Step(
                rhs=_rq_derivative,
                reason=r"Quotient rule in $\xi$ and $d\xi/dx = 1/w_k$.",
                method=sp.factor,
            ),
            Step(
                lhs=sp.Matrix([_rq_derivative.subs(xi, 0), _rq_derivative.subs(xi, 1)]),
                rhs=sp.Matrix([d_0, d_1]),
                reason=(
                    r"At the bin's ends the slope is the knot derivative, so the spline is "
                    r"$C^1$ across knots (and, with $\delta = 1$ at $\pm B$, into the identity tails)."
                ),
            ),
            Step(
                lhs=sp.Matrix([_rq.subs(xi, 0), _rq.subs(xi, 1)]),
                rhs=sp.Matrix([y_k, y_k + h_k]),
                reason="The spline interpolates the knots, so bins join continuously.",
            ),
            Step(
                lhs=h_k * (_slope * xi**2 + d_0 * xi * (1 - xi))
                - dy * (_slope + _bend * xi * (1 - xi)),
                rhs=(h_k * (_slope - d_0) + dy * _bend) * xi**2
                + (h_k * d_0 - dy * _bend) * xi
                - _slope * dy,
                reason=(
                    r"Multiply $g - y_k = \Delta$ by the denominator: a quadratic in $\xi$ with "
                    r"$a = h_k(s_k - \delta_k) + \Delta(\delta_{k+1}+\delta_k-2s_k)$, "
                    r"$b = h_k\delta_k - \Delta(\delta_{k+1}+\delta_k-2s_k)$, $c = -s_k\Delta$; "
                    r"the root in $[0, 1]$ is $\xi = 2c/(-b - \sqrt{b^2 - 4ac})$ (the form without "
                    r"cancellation)."
                ),
            ),
        ],
        symbols=(xi, w_k, h_k, d_0, d_1, x_k, y_k, dy),
        references=("durkan2019neural",),
        code=(f"{_FLOWS}.RationalQuadraticCoupling", f"{_FLOWS}.NSF"),
        tests=("tests/families/test_flows.py",),
    )
)


def _iresnet_series_convergence() -> float:
    """Error of the torch series with exact traces and 60 terms against `slogdet(I + J)`
    for a linear residual whose J is non-symmetric with spectral norm 0.7."""
    import torch

    from ..families.residual import InvertibleResidualBlock

    generator = torch.Generator().manual_seed(3)
    block = InvertibleResidualBlock(
        3, (), lipschitz=0.7, logdet="series", trace="exact", terms=60
    ).double()
    with torch.no_grad():
        block.layers[0].weight.copy_(torch.randn(3, 3, generator=generator, dtype=torch.float64))
        matrix = block.layers[0].normalized_weight()
    x = torch.randn(4, 3, generator=generator, dtype=torch.float64)
    with torch.no_grad():
        _, logdet = block(x)
    exact = torch.linalg.slogdet(torch.eye(3, dtype=torch.float64) + matrix).logabsdet
    return float((logdet - exact).abs().max())


register(
    Check(
        id="C-iresnet-series-convergence",
        title="i-ResNet power-series log-det (60 terms, exact traces) equals slogdet(I + J)",
        function=_iresnet_series_convergence,
        tolerance=1e-9,
        code=(f"{_RESIDUAL}.InvertibleResidualBlock",),
        tests=("tests/families/test_residual.py",),
        derivation="D-iresnet-logdet-series",
    )
)


def _glow_conv_logdet() -> float:
    """Largest gap between InvertibleConv1x1's log-det and h w log|det W| on a 3x4x5 image."""
    import torch

    from ..families.flows import InvertibleConv1x1

    generator = torch.Generator().manual_seed(5)
    kernel = torch.randn(3, 3, generator=generator, dtype=torch.float64) * 1.7
    conv = InvertibleConv1x1.from_matrix(kernel)
    x = torch.randn(2, 3, 4, 5, generator=generator, dtype=torch.float64)
    with torch.no_grad():
        _, logdet = conv(x)
    expected = 4 * 5 * torch.linalg.slogdet(kernel).logabsdet
    return float((logdet - expected).abs().max())


register(
    Check(
        id="C-glow-conv1x1-logdet",
        title="InvertibleConv1x1 log-det equals h w log|det W|",
        function=_glow_conv_logdet,
        tolerance=1e-12,
        code=(f"{_FLOWS}.InvertibleConv1x1",),
        tests=("tests/families/test_flows.py",),
        derivation="D-glow-conv1x1-logdet",
    )
)
