"""Divergence and exact likelihood: the instantaneous change of variables, Hutchinson's
trace estimator (unbiasedness and variance), the structured divergence of an MLP, bits/dim."""

import sympy as sp
import torch
from sympy.stats import Expectation, Normal, Rademacher

from ._engine import CITED, SYMBOLIC, Check, Derivation, Step
from ._registry import register

# --- instantaneous change of variables (2-D, undefined density and velocity) -------------

t = sp.Symbol("t", real=True)
x1, x2 = sp.symbols("x_1 x_2", real=True)
p = sp.Function("p", positive=True)(x1, x2, t)
v1 = sp.Function("v_1", real=True)(x1, x2, t)
v2 = sp.Function("v_2", real=True)(x1, x2, t)
_transport = v1 * sp.diff(p, x1) + v2 * sp.diff(p, x2)
_flux_divergence = sp.diff(p * v1, x1) + sp.diff(p * v2, x2)

register(
    Derivation(
        id="D-instantaneous-change-of-variables",
        title="Instantaneous change of variables: d/dt log p_t(x_t) = -div v",
        statement=(
            r"If $\dot x_t = v(x_t, t)$ and $p_t$ solves the continuity equation "
            r"$\partial_t p_t = -\nabla\cdot(p_t v)$, then along a trajectory "
            r"$\frac{d}{dt}\log p_t(x_t) = -\nabla\cdot v(x_t, t)$, hence "
            r"$\log p_0(x_0) = \log p_1(x_1) + \int_0^1 \nabla\cdot v(x_t, t)\,dt$. "
            "Shown in two dimensions; each coordinate contributes the same terms in $D$."
        ),
        start=(sp.diff(p, t) + _transport) / p,
        steps=[
            Step(
                rhs=(-_flux_divergence + _transport) / p,
                reason=(
                    r"The start is $\frac{d}{dt}\log p_t(x_t)$ by the chain rule with "
                    r"$\dot x_t = v$; replace $\partial_t p$ by the continuity equation."
                ),
                tag=CITED,
                theorem="continuity equation of the flow (conservation of probability mass)",
                reference="chen2018neural",
            ),
            Step(
                rhs=-(sp.diff(v1, x1) + sp.diff(v2, x2)),
                reason=(
                    r"Product rule: $\nabla\cdot(p v) = v\cdot\nabla p + p\,\nabla\cdot v$; the "
                    r"transport terms cancel."
                ),
                tag=SYMBOLIC,
            ),
        ],
        symbols=(x1, x2, t),
        references=("chen2018neural", "grathwohl2019ffjord"),
        code=("genmath.core.likelihood.ode_log_likelihood",),
        tests=("tests/core/test_likelihood.py",),
    )
)

# --- Hutchinson's trace estimator ---------------------------------------------------------

_N = 3
J = sp.Matrix(_N, _N, lambda i, j: sp.Symbol(f"J_{i + 1}{j + 1}", real=True))
A = (J + J.T) / 2
_frobenius_sq = sum(A[i, j] ** 2 for i in range(_N) for j in range(_N))
_diagonal_sq = sum(A[i, i] ** 2 for i in range(_N))
_gaussian_probe = sp.Matrix([Normal(f"z_{i + 1}", 0, 1) for i in range(_N)])
_rademacher_probe = sp.Matrix([Rademacher(f"r_{i + 1}") for i in range(_N)])


def _quadratic_form(z: sp.Matrix) -> sp.Expr:
    return sp.expand((z.T * J * z)[0])


register(
    Derivation(
        id="D-hutchinson-unbiased",
        title="Hutchinson's estimator z^T J z is unbiased for tr J",
        statement=(
            r"For a probe $z$ with independent entries, $\mathbb E z_i = 0$ and "
            r"$\mathbb E z_i^2 = 1$ (so $\mathbb E[zz^\top] = I$), "
            r"$\mathbb E[z^\top J z] = \operatorname{tr} J$ for every square $J$, symmetric or "
            "not. Checked on a symbolic $3\\times 3$ matrix for standard normal and for "
            "Rademacher ($\\pm 1$) probes."
        ),
        start=Expectation(_quadratic_form(_gaussian_probe)),
        steps=[
            Step(
                rhs=J.trace(),
                reason=(
                    r"Linearity: $\mathbb E[z_i z_j J_{ij}] = J_{ij}\delta_{ij}$ for Gaussian "
                    "entries (sympy.stats evaluates the expectation)."
                ),
                tag=SYMBOLIC,
            ),
            Step(
                lhs=Expectation(_quadratic_form(_rademacher_probe)),
                rhs=J.trace(),
                reason="The same with Rademacher entries $z_i \\in \\{-1, 1\\}$.",
                tag=SYMBOLIC,
            ),
        ],
        symbols=tuple(J),
        references=("hutchinson1989stochastic", "grathwohl2019ffjord"),
        code=("genmath.core.divergence.divergence",),
        tests=("tests/core/test_divergence.py",),
    )
)

register(
    Derivation(
        id="D-hutchinson-variance",
        title="Variance of Hutchinson's estimator: Gaussian and Rademacher probes",
        statement=(
            r"With $A = (J + J^\top)/2$ (only the symmetric part enters $z^\top J z$), one "
            r"probe has variance $2\|A\|_F^2$ if $z \sim \mathcal N(0, I)$ and "
            r"$2(\|A\|_F^2 - \sum_i A_{ii}^2)$ if $z$ is Rademacher; the Rademacher probe is "
            "never worse and is exact for a diagonal $J$. Checked on a symbolic $3\\times 3$ "
            "matrix."
        ),
        start=Expectation(sp.expand(_quadratic_form(_gaussian_probe) ** 2)) - J.trace() ** 2,
        steps=[
            Step(
                rhs=2 * _frobenius_sq,
                reason=(
                    r"$\operatorname{Var} = \mathbb E[(z^\top J z)^2] - (\operatorname{tr} J)^2$ "
                    r"with the Gaussian moments $\mathbb E z_i^2 = 1$, $\mathbb E z_i^4 = 3$."
                ),
                tag=SYMBOLIC,
            ),
            Step(
                lhs=Expectation(sp.expand(_quadratic_form(_rademacher_probe) ** 2))
                - J.trace() ** 2,
                rhs=2 * (_frobenius_sq - _diagonal_sq),
                reason=r"Rademacher moments: $\mathbb E z_i^4 = 1$ removes the diagonal terms.",
                tag=SYMBOLIC,
            ),
        ],
        symbols=tuple(J),
        references=("hutchinson1989stochastic",),
        code=("genmath.core.divergence.divergence",),
        tests=("tests/core/test_divergence.py",),
    )
)

# --- structured divergence of a two-hidden-layer MLP ----------------------------------------

_D, _H = 2, 3
xs = sp.Matrix(sp.symbols(f"x_1:{_D + 1}", real=True))
W1 = sp.Matrix(_H, _D, lambda i, j: sp.Symbol(f"W1_{i + 1}{j + 1}", real=True))
wt = sp.Matrix(sp.symbols(f"w_1:{_H + 1}", real=True))
b1 = sp.Matrix(sp.symbols(f"b1_1:{_H + 1}", real=True))
W2 = sp.Matrix(_H, _H, lambda i, j: sp.Symbol(f"W2_{i + 1}{j + 1}", real=True))
b2 = sp.Matrix(sp.symbols(f"b2_1:{_H + 1}", real=True))
W3 = sp.Matrix(_D, _H, lambda i, j: sp.Symbol(f"W3_{i + 1}{j + 1}", real=True))
phi = sp.Function("phi")
_u = sp.Symbol("u", real=True)
_a1 = W1 * xs + wt * t + b1
_a2 = W2 * _a1.applyfunc(phi) + b2
_v = W3 * _a2.applyfunc(phi)


def _phi_prime(e: sp.Expr) -> sp.Expr:
    return sp.diff(phi(_u), _u).subs(_u, e)


_d1 = _a1.applyfunc(_phi_prime)
_d2 = _a2.applyfunc(_phi_prime)

register(
    Derivation(
        id="D-mlp-structured-divergence",
        title="Divergence of a two-hidden-layer MLP: d2^T (W2 ⊙ (W1 W3)^T) d1",
        statement=(
            r"For $v = W_3\,\phi(W_2\,\phi(W_1 x + w t + b_1) + b_2) + b_3$ with an elementwise "
            r"$\phi$ and $d_k = \phi'(a_k)$ the derivatives at the pre-activations, "
            r"$\nabla\cdot v = \operatorname{tr}(W_3 D_2 W_2 D_1 W_1) = "
            r"d_2^\top (W_2 \odot (W_1 W_3)^\top) d_1$: one extra matrix-vector product per "
            "sample instead of $D$ backward passes. Checked for $D = 2$ inputs, $H = 3$ hidden "
            r"units and an undefined activation $\phi$."
        ),
        start=sum(sp.diff(_v[i], xs[i]) for i in range(_D)),
        steps=[
            Step(
                rhs=(_d2.T * W2.multiply_elementwise((W1 * W3).T) * _d1)[0],
                reason=(
                    r"Chain rule: $\partial v/\partial x = W_3 D_2 W_2 D_1 W_1$; then "
                    r"$\operatorname{tr}(W_3 D_2 W_2 D_1 W_1) = \sum_{k,j} d_{2,k} W_{2,kj} "
                    r"d_{1,j} (W_1 W_3)_{jk}$ by the cyclic property of the trace."
                ),
                tag=SYMBOLIC,
            ),
        ],
        symbols=(*xs, t),
        references=("grathwohl2019ffjord",),
        code=("genmath.nn.VelocityMLP.velocity_and_divergence",),
        tests=("tests/test_nn.py",),
    )
)

# --- bits per dimension ------------------------------------------------------------------

logp = sp.Symbol(r"\log p", real=True)
D = sp.Symbol("D", positive=True, integer=True)
width = sp.Symbol("Delta", positive=True)

register(
    Derivation(
        id="D-bits-per-dim",
        title="Bits per dimension of uniformly dequantized data",
        statement=(
            r"Integer data $k \in \{0..L-1\}^D$ dequantized to $x = a + (b-a)(k+u)/L$, "
            r"$u \sim \mathcal U[0,1)^D$, own cells of side $\Delta = (b-a)/L$. A model density "
            r"$p$ gives the discrete mass $P(k) = \int_{\mathrm{cell}(k)} p \ge "
            r"\Delta^D \exp \mathbb E_u[\log p(x)]$ (Jensen), so "
            r"$-\log_2 P(k)/D \le \mathbb E_u[-(\log p(x) + D\log\Delta)/(D\log 2)]$, with "
            "equality for a density constant on each cell."
        ),
        start=-sp.log(sp.exp(logp) * width**D) / (D * sp.log(2)),
        steps=[
            Step(
                rhs=-(logp + D * sp.log(width)) / (D * sp.log(2)),
                reason=(
                    r"The start is $-\log_2(p\,\Delta^D)/D$, the bits of a density constant on "
                    r"the cell; split the logarithm ($\Delta > 0$)."
                ),
                tag=SYMBOLIC,
            ),
        ],
        symbols=(logp, D, width),
        references=("cover2006elements",),
        code=("genmath.core.likelihood.bits_per_dim",),
        tests=("tests/core/test_likelihood.py",),
    )
)

# --- exact-numeric checks ------------------------------------------------------------------


def _affine_divergence_error() -> float:
    from genmath.core.divergence import divergence

    gen = torch.Generator().manual_seed(0)
    dim = 6
    jac = torch.randn(dim, dim, dtype=torch.float64, generator=gen) + 2 * torch.eye(
        dim, dtype=torch.float64
    )
    shift = torch.randn(dim, dtype=torch.float64, generator=gen)
    x = torch.randn(5, dim, dtype=torch.float64, generator=gen)
    div = divergence(lambda y: y @ jac.T + shift, x)
    return float((div - torch.trace(jac)).abs().max())


def _mlp_divergence_error() -> float:
    from genmath.nn import VelocityMLP

    with torch.random.fork_rng(devices=[]):  # seed the weights without touching the caller's RNG
        torch.manual_seed(0)
        model = VelocityMLP(4, hidden=16).double()
        x = torch.randn(3, 4, dtype=torch.float64)
    _, div = model.velocity_and_divergence(x, 0.3)
    traces = [
        torch.autograd.functional.jacobian(lambda y: model(y[None], 0.3)[0], row).trace()
        for row in x
    ]
    return float((div - torch.stack(traces)).abs().max().detach())


def _linear_flow_likelihood_error() -> float:
    # v(x) = M x moves x0 to x1 = exp(M) x0 with constant divergence tr M; prior N(0, I) at t = 1.
    from genmath.core.likelihood import ode_log_likelihood

    gen = torch.Generator().manual_seed(1)
    dim = 3
    m = 0.5 * torch.randn(dim, dim, dtype=torch.float64, generator=gen)
    x = torch.randn(4, dim, dtype=torch.float64, generator=gen)
    prior = torch.distributions.MultivariateNormal(
        torch.zeros(dim, dtype=torch.float64), torch.eye(dim, dtype=torch.float64)
    )
    log_prob = ode_log_likelihood(lambda y, s: y @ m.T, x, prior.log_prob, rtol=1e-10, atol=1e-10)
    exact = prior.log_prob(x @ torch.linalg.matrix_exp(m).T) + torch.trace(m)
    return float((log_prob - exact).abs().max().detach())


register(
    Check(
        id="C-divergence-affine",
        title="Exact divergence of a non-symmetric affine field equals tr J",
        function=_affine_divergence_error,
        tolerance=1e-12,
        code=("genmath.core.divergence.divergence",),
        tests=("tests/core/test_divergence.py",),
        derivation="D-hutchinson-unbiased",
    )
)
register(
    Check(
        id="C-mlp-structured-divergence",
        title="VelocityMLP's structured divergence equals the trace of its explicit Jacobian",
        function=_mlp_divergence_error,
        tolerance=1e-12,
        code=("genmath.nn.VelocityMLP.velocity_and_divergence",),
        tests=("tests/test_nn.py",),
        derivation="D-mlp-structured-divergence",
    )
)
register(
    Check(
        id="C-ode-likelihood-linear-flow",
        title="ODE log-likelihood of a linear flow equals log N(exp(M) x; 0, I) + tr M",
        function=_linear_flow_likelihood_error,
        tolerance=1e-8,
        code=("genmath.core.likelihood.ode_log_likelihood",),
        tests=("tests/core/test_likelihood.py",),
        derivation="D-instantaneous-change-of-variables",
    )
)
