"""Log-determinants (and inverses) of the bijections of normalizing flows, with checks and
bindings tying the torch layers of `genmath.core.change_of_variables` to them.

Each layer is bound the same way (zuko's habit, as bindings): at random points and parameters
its forward log-determinant, the log-determinant of its autograd Jacobian in float64, minus
the inverse's log-determinant at the forward image (with the round-trip error added, so that
an inverse that does not invert shows), and minus that of the inverse's autograd Jacobian, all
against the derivation's log-determinant. The bindings are in `_flows_bindings`.
"""

import math

import sympy as sp
import torch

from ._chain import Earlier
from ._engine import NUMERIC, Check, Derivation, Step, sound_rewrite
from ._registry import register

_CODE = "genmath.core.change_of_variables"
_TESTS = ("tests/core/test_change_of_variables.py",)

# ---------------------------------------------------------------------------- coupling

x1, x2, x3 = sp.symbols("x_1 x_2 x_3", real=True)
s1, s2, s3, t1, t2, t3 = (
    sp.Function(n, real=True) for n in ("s_1", "s_2", "s_3", "t_1", "t_2", "t_3")
)

# a non-contiguous mask: A = {x_2} conditions, B = {x_1, x_3} is transformed
_coupling = sp.Matrix([x1 * sp.exp(s1(x2)) + t1(x2), x2, x3 * sp.exp(s3(x2)) + t3(x2)])
_coupling_jacobian = _coupling.jacobian([x1, x2, x3])
COUPLING_LOGDET = s1(x2) + s3(x2)

register(
    Derivation(
        id="D-flow-coupling-logdet",
        title="Log-determinant of an affine coupling layer",
        statement=(
            r"An affine coupling layer keeps $x_A$ and maps $y_B = x_B \odot e^{s(x_A)} + t(x_A)$. "
            r"Its Jacobian is block triangular after reordering the coordinates into $(A, B)$, "
            r"with the identity on $A$ and $\operatorname{diag}(e^{s(x_A)})$ on $B$, so "
            r"$\log|\det J| = \sum_{j \in B} s_j(x_A)$ whatever the networks $s, t$ are; the "
            r"inverse is one pass, $x_B = (y_B - t(y_A)) \odot e^{-s(y_A)}$. Checked here for "
            r"$d = 3$ with the non-contiguous mask $A = \{2\}$; `AffineCoupling` is bound with "
            r"conditioners affine in $x_A$ (and in a context), with and without the soft clamp "
            r"$s = c\tanh(\tilde s/c)$."
        ),
        start=sp.log(sp.Abs(sp.Determinant(_coupling_jacobian))),
        steps=[
            Step(
                rhs=sp.log(sp.Abs(sp.exp(s1(x2)) * sp.exp(s3(x2)))),
                reason=(
                    r"Permuting rows and columns by the same permutation to the order $(A, B)$ "
                    r"leaves the determinant unchanged and makes $J$ block lower triangular: "
                    r"$\det J = \det I \cdot \det \operatorname{diag}(e^{s})$. The entries "
                    r"$\partial y_B / \partial x_A$ (which involve $s'$ and $t'$) do not enter."
                ),
            ),
            Step(
                rhs=COUPLING_LOGDET,
                reason=r"$e^{s}$ is positive for real $s$, and $\log e^{s} = s$.",
            ),
        ],
        symbols=(x1, x2, x3),
        references=("dinh2017density", "papamakarios2021normalizing"),
        code=(f"{_CODE}.AffineCoupling",),
        tests=_TESTS,
    )
)

# ---------------------------------------------------------------------------- autoregressive

_maf = sp.Matrix(
    [
        x1 * sp.exp(s1()) + t1(),
        x2 * sp.exp(s2(x1)) + t2(x1),
        x3 * sp.exp(s3(x1, x2)) + t3(x1, x2),
    ]
)
MAF_LOGDET = s1() + s2(x1) + s3(x1, x2)

register(
    Derivation(
        id="D-flow-maf-logdet",
        title="Log-determinant of a masked autoregressive affine layer",
        statement=(
            r"In a masked autoregressive layer $y_i = x_i e^{s_i(x_{<i})} + t_i(x_{<i})$, so "
            r"$\partial y_i / \partial x_j = 0$ for $j > i$ (in the layer's ordering): the "
            r"Jacobian is lower triangular and $\log|\det J| = \sum_i s_i(x_{<i})$, computed "
            r"from one pass of the masked network. Checked here for $d = 3$; "
            "`MaskedAutoregressive` is bound with one masked layer whose weights are affine "
            "functions' coefficients, plus nonzero weights where the ordering forbids a "
            "dependency (the masks must remove them), for two orderings."
        ),
        start=sp.log(sp.Abs(sp.Determinant(_maf.jacobian([x1, x2, x3])))),
        steps=[
            Step(
                rhs=sp.log(sp.Abs(sp.exp(s1()) * sp.exp(s2(x1)) * sp.exp(s3(x1, x2)))),
                reason="The determinant of a triangular matrix is the product of its diagonal.",
            ),
            Step(
                rhs=MAF_LOGDET,
                reason=r"$e^{s}$ is positive for real $s$, and $\log e^{s} = s$.",
            ),
        ],
        symbols=(x1, x2, x3),
        references=("papamakarios2017masked", "germain2015made", "kingma2016improved"),
        code=(f"{_CODE}.MaskedAutoregressive",),
        tests=_TESTS,
    )
)

# ---------------------------------------------------------------------------- planar

u = sp.Matrix(sp.symbols("u_1:4", real=True))
w = sp.Matrix(sp.symbols("w_1:4", real=True))
psi = sp.Matrix(sp.symbols("psi_1:4", real=True))
z = sp.Matrix(sp.symbols("z_1:4", real=True))
b = sp.Symbol("b", real=True)

_wu = (w.T * u)[0]
_m = -1 + sp.log(1 + sp.exp(_wu))
U_HAT = u + (_m - _wu) * w / (w.T * w)[0]
_pre = (w.T * z)[0] + b
_planar = z + u * sp.tanh(_pre)
PLANAR_DET = _planar.jacobian(z).det()
W_U_HAT = (w.T * U_HAT)[0]

register(
    Derivation(
        id="D-flow-planar",
        title="Planar flow: matrix determinant lemma and the invertibility condition",
        statement=(
            r"For $f(z) = z + u\,h(w^\top z + b)$ the Jacobian is $I + u\,\psi^\top$ with "
            r"$\psi = h'(w^\top z + b)\,w$, and the matrix determinant lemma gives "
            r"$\det(I + u\psi^\top) = 1 + u^\top\psi$. With $h = \tanh$ ($0 < h' \le 1$) the "
            r"map is invertible when $w^\top u \ge -1$; Rezende & Mohamed's "
            r"$\hat u = u + [m(w^\top u) - w^\top u]\, w/\|w\|^2$, "
            r"$m(x) = -1 + \log(1 + e^x)$, satisfies $w^\top \hat u = m(w^\top u) > -1$, so "
            r"$1 + h'\, w^\top\hat u > 0$ everywhere. Checked for $d = 3$. `Planar` is bound with "
            r"$u$ replaced by $\hat u$: its log-determinant, its inverse (a scalar root found "
            "by safeguarded Newton steps, with the implicit-function gradient), and `u_hat`."
        ),
        start=sp.Determinant(sp.eye(3) + u * psi.T),
        steps=[
            Step(
                rhs=1 + (u.T * psi)[0],
                reason="Matrix determinant lemma for a rank-one update of the identity.",
            ),
            Step(
                lhs=Earlier("D-flow-planar", {psi[i]: (1 - sp.tanh(_pre) ** 2) * w[i] for i in range(3)}, step=1),
                rhs=PLANAR_DET,
                reason=(
                    r"The Jacobian of the planar map is $I + u\,\psi^\top$ with "
                    r"$\psi = \tanh'(w^\top z + b)\, w$ and $\tanh' = 1 - \tanh^2$: the lemma's "
                    "value is its determinant."
                ),
            ),
            Step(
                rhs=1 + (1 - sp.tanh(_pre) ** 2) * _wu,
                reason=r"Collect $u^\top w$.",
            ),
            Step(
                lhs=Earlier("D-flow-planar", {u[i]: U_HAT[i] for i in range(3)}, step=3),
                rhs=1 + (1 - sp.tanh(_pre) ** 2) * _m,
                reason=(
                    r"With $\hat u$ in place of $u$: $w^\top\hat u = w^\top u + m(w^\top u) - "
                    r"w^\top u = m(w^\top u)$ (the $w^\top u$ terms cancel, $w^\top w/\|w\|^2 = 1$)."
                ),
            ),
            Step(
                rhs=sp.tanh(_pre) ** 2 + (1 - sp.tanh(_pre) ** 2) * sp.log(1 + sp.exp(_wu)),
                reason=(
                    r"$= \tanh^2 + (1 - \tanh^2)\log(1 + e^{w^\top u})$, a sum of non-negative terms "
                    r"with $\log(1 + e^{a}) > 0$: the determinant is positive, $f$ is invertible."
                ),
            ),
        ],
        symbols=(*u, *w, *z, b),
        references=("rezende2015variational",),
        code=(f"{_CODE}.Planar", f"{_CODE}.Planar.u_hat"),
        tests=_TESTS,
    )
)

# ---------------------------------------------------------------------------- LU affine


@sound_rewrite(
    "the absolute value of a product is the product of the absolute values, and the log of a "
    "product of non-zero factors the sum of their logs"
)
def _split_abs_logs(expr):
    expr = sp.expand(expr.doit()).replace(
        lambda e: isinstance(e, sp.Abs) and isinstance(e.args[0], sp.Mul),
        lambda e: sp.Mul(*(sp.Abs(factor) for factor in e.args[0].args)),
    )
    return sp.expand(sp.expand_log(expr, force=True))


l21, l31, l32 = sp.symbols("l_21 l_31 l_32", real=True)
u11, u22, u33 = sp.symbols("u_11 u_22 u_33", real=True, nonzero=True)
u12, u13, u23 = sp.symbols("u_12 u_13 u_23", real=True)
th1, th2, th3 = sp.symbols("theta_1:4", real=True)
_P = sp.Matrix([[0, 1, 0], [0, 0, 1], [1, 0, 0]])
_L = sp.Matrix([[1, 0, 0], [l21, 1, 0], [l31, l32, 1]])
_U = sp.Matrix([[u11, u12, u13], [0, u22, u23], [0, 0, u33]])
PLU = sp.ImmutableMatrix(_P * _L * _U)
LU_LOGDET = sp.log(sp.Abs(u11)) + sp.log(sp.Abs(u22)) + sp.log(sp.Abs(u33))
POSITIVE_LOGDET = th1 + th2 + th3

register(
    Derivation(
        id="D-flow-lu-logdet",
        title="Log-determinant of an LU-parameterized affine map",
        statement=(
            r"With $W = P L U$ ($P$ a permutation, $L$ unit lower triangular, $U$ upper "
            r"triangular), $\log|\det W| = \sum_i \log|U_{ii}|$: an $O(d)$ log-determinant, "
            r"and $W$ is invertible exactly when every $U_{ii} \ne 0$. With the positive "
            r"parameterization $U_{ii} = e^{\theta_i}$ it is $\sum_i \theta_i$, which is also the "
            r"log-determinant of an elementwise affine map $e^\theta \odot x + t$ (the case "
            r"$P = L = I$, $U$ diagonal). The inverse map has log-determinant "
            r"$-\sum_i \log|U_{ii}|$. Checked for $d = 3$; `Affine` (both diagonals, and "
            "`from_matrix`) and `ElementwiseAffine` are bound to it."
        ),
        start=sp.log(sp.Abs(sp.Determinant(PLU))),
        steps=[
            Step(
                rhs=sp.log(sp.Abs(sp.Determinant(_P) * sp.Determinant(_L) * sp.Determinant(_U))),
                reason=r"The determinant is multiplicative.",
            ),
            Step(
                rhs=sp.log(sp.Abs(u11 * u22 * u33)),
                reason=(
                    r"$\det P = \pm 1$, $\det L = 1$ (unit diagonal), and $\det U$ is the product "
                    "of its diagonal."
                ),
            ),
            Step(
                rhs=LU_LOGDET,
                reason=r"$|U_{ii}| > 0$, so the logarithm of the product splits.",
                method=_split_abs_logs,
            ),
            Step(
                lhs=Earlier(
                    "D-flow-lu-logdet", {u11: sp.exp(th1), u22: sp.exp(th2), u33: sp.exp(th3)}, step=3
                ),
                rhs=POSITIVE_LOGDET,
                reason=r"Positive diagonal $U_{ii} = e^{\theta_i}$.",
            ),
        ],
        symbols=(l21, l31, l32, u11, u12, u13, u22, u23, u33, th1, th2, th3),
        references=("kingma2018glow",),
        code=(f"{_CODE}.Affine", f"{_CODE}.ElementwiseAffine"),
        tests=_TESTS,
    )
)

# ---------------------------------------------------------------------------- composition

# two dimensions: an elementwise affine layer e^theta * x + t, then W = P L U with the swap P
cl21, cu12 = sp.symbols("lambda_21 upsilon_12", real=True)
cu11, cu22 = sp.symbols("upsilon_11 upsilon_22", real=True, nonzero=True)
ct1, ct2 = sp.symbols("vartheta_1 vartheta_2", real=True)
_swap = sp.Matrix([[0, 1], [1, 0]])
_W2 = sp.ImmutableMatrix(_swap * sp.Matrix([[1, 0], [cl21, 1]]) * sp.Matrix([[cu11, cu12], [0, cu22]]))
_diag_theta = sp.diag(sp.exp(ct1), sp.exp(ct2))
COMPOSED_LOGDET = sp.log(sp.Abs(cu11)) + sp.log(sp.Abs(cu22)) + ct1 + ct2

register(
    Derivation(
        id="D-flow-composition",
        title="The log-determinant of a composition is the sum of the layers'",
        statement=(
            r"For $f = f_2 \circ f_1$, $J_f(x) = J_{f_2}(f_1(x))\,J_{f_1}(x)$ (chain rule) and "
            r"the determinant is multiplicative, so $\log|\det J_f| = \log|\det J_{f_2}| + "
            r"\log|\det J_{f_1}|$, and the inverse $f_1^{-1} \circ f_2^{-1}$ has minus that. "
            r"Shown in two dimensions for an elementwise affine layer ($J_{f_1} = "
            r"\operatorname{diag} e^{\vartheta}$) followed by an LU-parameterized one "
            r"($J_{f_2} = PLU$, D-flow-lu-logdet); `Compose` and `Inverse` are bound to it."
        ),
        start=sp.log(sp.Abs(sp.Determinant(_W2 * _diag_theta))),
        steps=[
            Step(
                rhs=sp.log(sp.Abs(sp.Determinant(_W2))) + sp.log(sp.Abs(sp.Determinant(_diag_theta))),
                reason=r"$\det(AB) = \det A\det B$, and both factors are non-zero.",
                method=_split_abs_logs,
            ),
            Step(
                rhs=COMPOSED_LOGDET,
                reason=(
                    r"$\det P = -1$, $\det L = 1$, $\det U = \upsilon_{11}\upsilon_{22}$ and "
                    r"$\det\operatorname{diag}e^{\vartheta} = e^{\vartheta_1 + \vartheta_2}$."
                ),
                method=_split_abs_logs,
            ),
        ],
        symbols=(cl21, cu11, cu12, cu22, ct1, ct2),
        references=("papamakarios2021normalizing",),
        code=(f"{_CODE}.Compose", f"{_CODE}.Inverse"),
        tests=_TESTS,
    )
)

# ---------------------------------------------------------------------------- ActNorm

xa, delta = sp.Symbol("x_a", real=True), sp.Symbol("delta", positive=True)
_xb = xa + delta  # a batch of two values of one coordinate, x_b > x_a
_batch_mean, _batch_std = (xa + _xb) / 2, delta / 2  # biased (1/N) standard deviation
_log_scale, _shift = -sp.log(_batch_std), -_batch_mean / _batch_std
ACTNORM_LOGDET = -sp.log(delta / 2)
_actnorm_start = sp.ImmutableMatrix(
    [sp.exp(_log_scale) * xa + _shift, sp.exp(_log_scale) * _xb + _shift, _log_scale]
)

register(
    Derivation(
        id="D-actnorm-init",
        title="ActNorm's data-dependent initialisation: zero mean, unit variance",
        statement=(
            r"ActNorm (Kingma & Dhariwal 2018) is $y = e^s x + t$ with $s = -\log\hat\sigma$ and "
            r"$t = -\hat m/\hat\sigma$ set from the first batch's mean $\hat m$ and biased standard "
            r"deviation $\hat\sigma$, so that batch leaves the layer standardised, and "
            r"$\log|\det J| = s = -\log\hat\sigma$ per entry. Shown for a batch of two values "
            r"$x_a < x_b = x_a + \delta$ of one coordinate ($\hat\sigma = \delta/2$): they map to "
            r"$\mp 1$."
        ),
        start=_actnorm_start,
        steps=[
            Step(
                rhs=sp.ImmutableMatrix([-1, 1, ACTNORM_LOGDET]),
                reason=r"$(x - \hat m)/\hat\sigma$ at $x = \hat m \mp \delta/2$.",
            ),
        ],
        symbols=(xa, delta),
        references=("kingma2018glow",),
        code=(f"{_CODE}.ActNorm",),
        tests=_TESTS,
    )
)

# ---------------------------------------------------------------------------- sigmoid / logit

x = sp.Symbol("x", real=True)
y = sp.Symbol("y", positive=True)
_sigmoid = 1 / (1 + sp.exp(-x))
SIGMOID_LOGDET = -sp.log(1 + sp.exp(-x)) - sp.log(1 + sp.exp(x))
LOGIT_MINUS_LOGDET = sp.log(y) + sp.log(1 - y)


def _cancel_inside_logs(expr):
    return sp.expand_log(
        expr.replace(sp.log, lambda arg: sp.log(sp.factor(sp.cancel(arg)))), force=False
    )


register(
    Derivation(
        id="D-flow-sigmoid-logdet",
        title="Log-derivatives of the sigmoid and the logit",
        statement=(
            r"$\sigma(x) = 1/(1 + e^{-x})$ has $\log \sigma'(x) = -\operatorname{softplus}(-x) "
            r"- \operatorname{softplus}(x)$ with $\operatorname{softplus}(x) = \log(1 + e^{x})$ "
            r"(stable for large $|x|$), and its inverse $\operatorname{logit}(y) = "
            r"\log(y/(1-y))$ on $(0, 1)$ has $\log \operatorname{logit}'(y) = -\log\sigma'"
            r"(\operatorname{logit} y) = -\log y - \log(1 - y)$. `Sigmoid` and `Logit` are bound "
            "in both directions over the whole real line (and the open unit interval)."
        ),
        start=sp.log(sp.Derivative(_sigmoid, x)),
        steps=[
            Step(
                rhs=sp.log(_sigmoid * (1 - _sigmoid)),
                reason=r"$\sigma' = \sigma(1 - \sigma)$.",
                method=_cancel_inside_logs,
            ),
            Step(
                rhs=SIGMOID_LOGDET,
                reason=(
                    r"$\sigma(x) = 1/(1 + e^{-x})$ and $1 - \sigma(x) = \sigma(-x) = 1/(1 + e^{x})$; "
                    "both factors are positive, so the logarithm splits."
                ),
                method=_cancel_inside_logs,
            ),
            Step(
                lhs=Earlier("D-flow-sigmoid-logdet", {x: sp.log(y / (1 - y))}, step=2),
                rhs=LOGIT_MINUS_LOGDET,
                reason=(
                    r"At $x = \operatorname{logit}(y)$: $1 + e^{-x} = 1/y$ and $1 + e^{x} = "
                    r"1/(1 - y)$, so $\log\sigma'(\operatorname{logit} y) = \log y + \log(1 - y)$, "
                    "minus the logit's log-derivative (checked at sampled $y \\in (0, 1)$)."
                ),
                tag=NUMERIC,
                tolerance=1e-12,
            ),
        ],
        symbols=(x, y),
        domain={y: (0.01, 0.99)},
        references=("dinh2017density", "papamakarios2017masked"),
        code=(f"{_CODE}.Sigmoid", f"{_CODE}.Logit"),
        tests=_TESTS,
    )
)

# ---------------------------------------------------------------------------- checks


def _autograd_logdets(fn, x):
    out = []
    for i in range(x.shape[0]):
        jac = torch.autograd.functional.jacobian(lambda v: fn(v[None])[0][0], x[i])
        out.append(torch.linalg.slogdet(jac)[1])
    return torch.stack(out)


def _randomized(module, seed, scale):
    generator = torch.Generator().manual_seed(seed)
    module = module.double()
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=generator, dtype=torch.float64) * scale)
    return module


def _points(seed, n=6, d=3):
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _check_coupling():
    from genmath.core.change_of_variables import AffineCoupling

    layer = AffineCoupling(
        3, mask=torch.tensor([False, True, False]), hidden=(8,), activation=torch.nn.Tanh
    )
    layer = _randomized(layer, 0, 0.7)
    x = _points(1)
    _, logdet = layer.forward(x)
    log_scale = layer.conditioner(x[:, 1:2])[:, 2:]  # outputs: shift (|B|), then log-scale
    return max(
        (logdet - log_scale.sum(-1)).abs().max().item(),
        (logdet - _autograd_logdets(layer.forward, x)).abs().max().item(),
    )


def _check_maf():
    from genmath.core.change_of_variables import MaskedAutoregressive

    layer = _randomized(
        MaskedAutoregressive(3, (8,), ordering=[1, 2, 0], activation=torch.nn.Tanh), 2, 0.7
    )
    x = _points(3)
    _, logdet = layer.forward(x)
    jac = torch.autograd.functional.jacobian(lambda v: layer(v[None])[0][0], x[0])
    order = layer.ordering
    upper = torch.triu(jac[order][:, order], 1).abs().max().item()  # must be exactly 0
    return max(upper, (logdet - _autograd_logdets(layer.forward, x)).abs().max().item())


def _check_planar():
    from genmath.core.change_of_variables import Planar

    layer = Planar(3).double()
    with torch.no_grad():
        layer.w.copy_(torch.tensor([1.2, -0.8, 0.5], dtype=torch.float64))
        layer.u.copy_(
            torch.tensor([-1.5, 0.9, 0.2], dtype=torch.float64)
        )  # w.u < -1: the reparameterization acts
        layer.b.fill_(0.3)
    x = _points(4)
    _, logdet = layer.forward(x)
    w_u_hat = (layer.w @ layer.u_hat()).item()
    w_u = (layer.w @ layer.u).item()
    formula = torch.log(torch.abs(1 + (1 - torch.tanh(x @ layer.w + layer.b) ** 2) * w_u_hat))
    return max(
        abs(w_u_hat - (-1 + math.log1p(math.exp(w_u)))),
        (logdet - formula).abs().max().item(),
        (logdet - _autograd_logdets(layer.forward, x)).abs().max().item(),
    )


def _check_lu():
    from genmath.core.change_of_variables import Affine

    layer = _randomized(Affine(3, permutation=[2, 0, 1], diagonal="signed"), 5, 0.8)
    with torch.no_grad():
        layer.diag.copy_(torch.tensor([2.0, -0.3, 1.7], dtype=torch.float64))
    x = _points(6)
    _, logdet = layer.forward(x)
    W = layer.matrix()
    return max(
        (logdet - math.log(2.0 * 0.3 * 1.7)).abs().max().item(),
        (logdet - torch.linalg.slogdet(W)[1]).abs().max().item(),
        (logdet - _autograd_logdets(layer.forward, x)).abs().max().item(),
    )


def _check_sigmoid():
    from genmath.core.change_of_variables import Logit, Sigmoid

    log_derivative = sp.lambdify(x, sp.log(sp.diff(_sigmoid, x)), "mpmath")
    xs = torch.tensor([-30.0, -3.0, -0.5, 0.0, 0.7, 4.0, 25.0], dtype=torch.float64)
    exact = torch.tensor([float(log_derivative(v)) for v in xs.tolist()], dtype=torch.float64)
    _, sigmoid_logdet = Sigmoid(event_dim=0).forward(xs)
    # logit is sigmoid's inverse: its log-derivative at sigma(x) is -log sigma'(x); only
    # moderate x, since rounding sigma(x) near 1 loses the digits of 1 - sigma(x)
    moderate = xs.abs() < 5
    _, logit_logdet = Logit(event_dim=0).forward(torch.sigmoid(xs[moderate]))
    return max(
        (sigmoid_logdet - exact).abs().max().item(),
        (logit_logdet + exact[moderate]).abs().max().item(),
    )


for _id, _title, _fn, _code, _derivation in (
    (
        "C-flow-coupling-logdet",
        "AffineCoupling log|det J| = sum of log-scales = slogdet of autograd Jacobian",
        _check_coupling,
        "AffineCoupling",
        "D-flow-coupling-logdet",
    ),
    (
        "C-flow-maf-logdet",
        "MaskedAutoregressive Jacobian is triangular in its ordering; log|det J| = slogdet",
        _check_maf,
        "MaskedAutoregressive",
        "D-flow-maf-logdet",
    ),
    (
        "C-flow-planar",
        "Planar log|det J| = log|1 + tanh' w.u_hat| = slogdet; w.u_hat = m(w.u)",
        _check_planar,
        "Planar",
        "D-flow-planar",
    ),
    (
        "C-flow-lu-logdet",
        "Affine (LU) log|det W| = sum log|U_ii| = slogdet",
        _check_lu,
        "Affine",
        "D-flow-lu-logdet",
    ),
    (
        "C-flow-sigmoid-logdet",
        "Sigmoid / Logit log-derivatives equal the sympy expression",
        _check_sigmoid,
        "Sigmoid",
        "D-flow-sigmoid-logdet",
    ),
):
    register(
        Check(
            id=_id,
            title=_title,
            function=_fn,
            tolerance=1e-12,
            code=(f"{_CODE}.{_code}",),
            tests=_TESTS,
            derivation=_derivation,
        )
    )

from . import _flows_bindings  # noqa: E402,F401  (the bindings of the derivations above)
