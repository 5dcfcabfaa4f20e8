"""Divergence and exact likelihood: Hutchinson's trace estimator (unbiasedness and variance),
the structured divergence of an MLP, bits per dimension of dequantized data; each bound to
`genmath.core.divergence`, `genmath.nn` and `genmath.core.likelihood`. The instantaneous change
of variables is D-instantaneous-change-of-variables."""

import sympy as sp
import torch

from ._engine import NUMERIC, Check, Derivation, Step
from ._registry import register
from .score_matching import GaussianExpectation, RademacherExpectation

t = sp.Symbol("t", real=True)

# --- Hutchinson's trace estimator ---------------------------------------------------------

_N = 3
J = sp.Matrix(_N, _N, lambda i, j: sp.Symbol(f"J_{i + 1}{j + 1}", real=True))
A = (J + J.T) / 2
_frobenius_sq = sum(A[i, j] ** 2 for i in range(_N) for j in range(_N))
_diagonal_sq = sum(A[i, i] ** 2 for i in range(_N))
_z = sp.Matrix(sp.symbols(f"z_1:{_N + 1}", real=True))
_r = sp.Matrix(sp.symbols(f"r_1:{_N + 1}", real=True))


def _quadratic_form(probe: sp.Matrix) -> sp.Expr:
    return sp.expand((probe.T * J * probe)[0])


_gauss_form, _rad_form = _quadratic_form(_z), _quadratic_form(_r)
TRACE = J.trace()
VARIANCES = sp.ImmutableMatrix([2 * _frobenius_sq, 2 * (_frobenius_sq - _diagonal_sq)])

register(
    Derivation(
        id="D-hutchinson-unbiased",
        title="Hutchinson's estimator z^T J z is unbiased for tr J",
        statement=(
            r"For a probe $z$ with independent entries, $\mathbb E z_i = 0$ and "
            r"$\mathbb E z_i^2 = 1$ (so $\mathbb E[zz^\top] = I$), "
            r"$\mathbb E[z^\top J z] = \operatorname{tr} J$ for every square $J$, symmetric or "
            "not. Checked on a symbolic $3\\times 3$ matrix for standard normal (first entry) "
            "and Rademacher ($\\pm 1$, second entry) probes, by their moments. `divergence` is "
            "bound to the trace, and its Hutchinson estimate averaged over all eight Rademacher "
            "probes of $\\mathbb R^3$ (the exact expectation)."
        ),
        start=sp.ImmutableMatrix(
            [GaussianExpectation(_gauss_form, *_z), RademacherExpectation(_rad_form, *_r)]
        ),
        steps=[
            Step(
                rhs=sp.ImmutableMatrix([TRACE, TRACE]),
                reason=(
                    r"Linearity: $\mathbb E[z_i z_j] J_{ij} = J_{ij}\delta_{ij}$ for either kind of "
                    "entry."
                ),
            ),
        ],
        symbols=tuple(J),
        references=("hutchinson1989stochastic", "grathwohl2019ffjord"),
        code=("genmath.core.divergence.divergence", "genmath.core.divergence.draw_probes"),
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
            "matrix. The estimator of `divergence` is bound to both variances: over the eight "
            "Rademacher probes, and over a Gauss–Hermite product rule (exact for this quartic)."
        ),
        start=sp.ImmutableMatrix(
            [
                GaussianExpectation(sp.expand(_gauss_form**2), *_z) - TRACE**2,
                RademacherExpectation(sp.expand(_rad_form**2), *_r) - TRACE**2,
            ]
        ),
        steps=[
            Step(
                rhs=VARIANCES,
                reason=(
                    r"$\operatorname{Var} = \mathbb E[(z^\top J z)^2] - (\operatorname{tr} J)^2$ "
                    r"with the Gaussian moments $\mathbb E z_i^2 = 1$, $\mathbb E z_i^4 = 3$, and "
                    r"the Rademacher ones, $\mathbb E z_i^4 = 1$, which remove the diagonal terms."
                ),
            ),
        ],
        symbols=tuple(J),
        references=("hutchinson1989stochastic",),
        code=("genmath.core.divergence.divergence",),
        tests=("tests/core/test_divergence.py",),
    )
)

# --- structured divergence of an MLP ------------------------------------------------------

_D, _H = 2, 2
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
_v_deep = W3 * _a2.applyfunc(phi)
_v_shallow = W3 * _a1.applyfunc(phi)


def _phi_prime(e: sp.Expr) -> sp.Expr:
    return sp.diff(phi(_u), _u).subs(_u, e)


_d1 = _a1.applyfunc(_phi_prime)
_d2 = _a2.applyfunc(_phi_prime)
_structured = sp.ImmutableMatrix(
    [
        (_d2.T * W2.multiply_elementwise((W1 * W3).T) * _d1)[0],
        (_d1.T * (W1 * W3).diagonal().T)[0],
    ]
)
ACTIVATIONS = {
    "softplus": sp.Lambda(_u, sp.log(1 + sp.exp(_u))),
    "tanh": sp.Lambda(_u, sp.tanh(_u)),
    "silu": sp.Lambda(_u, _u / (1 + sp.exp(-_u))),
    "sigmoid": sp.Lambda(_u, 1 / (1 + sp.exp(-_u))),
}


def activation_substitutions(name):
    r"""``where`` for a binding: the structured divergence with $\phi$ the named activation,
    its derivative $\phi'$ at each pre-activation taken by sympy (not typed)."""
    act = ACTIVATIONS[name]
    derivative = sp.Lambda(_u, sp.diff(act(_u), _u))
    explicit = {}
    a2 = W2 * _a1.applyfunc(act) + b2
    for k in range(_H):
        explicit[_d2[k]] = derivative(a2[k])
        explicit[_d1[k]] = derivative(_a1[k])
    return explicit


register(
    Derivation(
        id="D-mlp-structured-divergence",
        title="Divergence of a two-hidden-layer MLP: d2^T (W2 ⊙ (W1 W3)^T) d1",
        statement=(
            r"For $v = W_3\,\phi(W_2\,\phi(W_1 x + w t + b_1) + b_2) + b_3$ with an elementwise "
            r"$\phi$ and $d_k = \phi'(a_k)$ the derivatives at the pre-activations, "
            r"$\nabla\cdot v = \operatorname{tr}(W_3 D_2 W_2 D_1 W_1) = "
            r"d_2^\top (W_2 \odot (W_1 W_3)^\top) d_1$: one extra matrix-vector product per "
            r"sample instead of $D$ backward passes; with one hidden layer, "
            r"$\nabla\cdot v = d_1^\top\operatorname{diag}(W_1 W_3)$ (second entry). Checked for "
            r"$D = 2$ inputs, $H = 2$ hidden units and an undefined activation $\phi$. "
            "`VelocityMLP.velocity_and_divergence` is bound to it for each of its activations, "
            r"with $\phi'$ taken by sympy (the code writes each derivative by hand)."
        ),
        start=sp.ImmutableMatrix(
            [
                sum(sp.diff(_v_deep[i], xs[i]) for i in range(_D)),
                sum(sp.diff(_v_shallow[i], xs[i]) for i in range(_D)),
            ]
        ),
        steps=[
            Step(
                rhs=_structured,
                reason=(
                    r"Chain rule: $\partial v/\partial x = W_3 D_2 W_2 D_1 W_1$; then "
                    r"$\operatorname{tr}(W_3 D_2 W_2 D_1 W_1) = \sum_{k,j} d_{2,k} W_{2,kj} "
                    r"d_{1,j} (W_1 W_3)_{jk}$ by the cyclic property of the trace."
                ),
            ),
        ],
        symbols=(*xs, t),
        references=("grathwohl2019ffjord",),
        code=("genmath.nn.VelocityMLP.velocity_and_divergence",),
        tests=("tests/test_nn.py",),
    )
)

# --- bits per dimension --------------------------------------------------------------------

theta, kappa = sp.symbols("theta kappa", real=True)
width = sp.Symbol("Delta", positive=True)
u = sp.Symbol("u", real=True)
log_mass = sp.Symbol(r"\log P", real=True)
dims = sp.Symbol("D", integer=True, positive=True)
# a density exp(theta x + kappa) on one cell [0, Delta] of a dequantized integer
_cell_mass = width * sp.Integral(sp.exp(theta * width * u + kappa), (u, 0, 1))
_mean_log_density = sp.Integral(theta * width * u + kappa, (u, 0, 1))
BITS = -((theta * width / 2 + kappa) + sp.log(width)) / sp.log(2)

register(
    Derivation(
        id="D-bits-per-dim",
        title="Bits per dimension of uniformly dequantized data: the Jensen bound",
        statement=(
            r"Integer data $k \in \{0..L-1\}^D$ dequantized to $x = a + (b-a)(k+u)/L$, "
            r"$u \sim \mathcal U[0,1)^D$, own cells of side $\Delta = (b-a)/L$. A model density "
            r"$p$ gives the discrete mass $P(k) = \int_{\mathrm{cell}(k)} p = "
            r"\Delta^D\,\mathbb E_u[p(x)] \ge \Delta^D \exp \mathbb E_u[\log p(x)]$ (Jensen), so "
            r"$-\log_2 P(k)/D \le \mathbb E_u[-(\log p(x) + D\log\Delta)/(D\log 2)]$, the "
            "bits per dimension `bits_per_dim` reports: an upper bound on the discrete model's, "
            r"with equality for a density constant on each cell (Theis et al. 2016). Derived on "
            r"one cell with the density $e^{\theta x + \kappa}$, $x = \Delta u$; a product of "
            r"$D$ such cells gives the same value per dimension."
        ),
        start=-sp.log(_cell_mass) / sp.log(2),
        steps=[
            Step(
                rhs=-(sp.log(sp.Integral(sp.exp(theta * width * u + kappa), (u, 0, 1))) + sp.log(width))
                / sp.log(2),
                reason=r"Split the logarithm ($\Delta > 0$): the mean density on the cell, times $\Delta$.",
                tag=NUMERIC,
                samples=6,
            ),
            Step(
                rhs=-(_mean_log_density + sp.log(width)) / sp.log(2),
                relation="<=",
                reason=(
                    r"Jensen's inequality for the concave logarithm: $\log\mathbb E_u[p] \ge "
                    r"\mathbb E_u[\log p]$, so the bits of the dequantized density bound those of "
                    "the discrete mass from above (checked at random points)."
                ),
                tag=NUMERIC,
                samples=8,
            ),
            Step(
                rhs=BITS,
                reason=r"$\mathbb E_u[\theta\Delta u + \kappa] = \theta\Delta/2 + \kappa$.",
            ),
        ],
        symbols=(theta, kappa, width),
        domain={theta: (-5, 5), kappa: (-3, 3), width: (1e-3, 2)},
        references=("cover2006elements", "theis2016note"),
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

from . import _likelihood_bindings  # noqa: E402,F401  (the bindings of the derivations above)
