"""Log-determinants of the bijections of normalizing flows, and checks tying the torch layers
of `genmath.core.change_of_variables` to them."""

import math

import sympy as sp
import torch

from ._engine import NUMERIC, Check, Derivation, Step
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

register(
    Derivation(
        id="D-flow-coupling-logdet",
        title="Log-determinant of an affine coupling layer",
        statement=(
            r"An affine coupling layer keeps $x_A$ and maps $y_B = x_B \odot e^{s(x_A)} + t(x_A)$. "
            r"Its Jacobian is block triangular after reordering the coordinates into $(A, B)$, "
            r"with the identity on $A$ and $\operatorname{diag}(e^{s(x_A)})$ on $B$, so "
            r"$\log|\det J| = \sum_{j \in B} s_j(x_A)$ whatever the networks $s, t$ are. "
            r"Checked here for $d = 3$ with the non-contiguous mask $A = \{2\}$."
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
                rhs=s1(x2) + s3(x2),
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

register(
    Derivation(
        id="D-flow-maf-logdet",
        title="Log-determinant of a masked autoregressive affine layer",
        statement=(
            r"In a masked autoregressive layer $y_i = x_i e^{s_i(x_{<i})} + t_i(x_{<i})$, so "
            r"$\partial y_i / \partial x_j = 0$ for $j > i$ (in the layer's ordering): the "
            r"Jacobian is lower triangular and $\log|\det J| = \sum_i s_i(x_{<i})$, computed "
            r"from one pass of the masked network. Checked here for $d = 3$."
        ),
        start=sp.log(sp.Abs(sp.Determinant(_maf.jacobian([x1, x2, x3])))),
        steps=[
            Step(
                rhs=sp.log(sp.Abs(sp.exp(s1()) * sp.exp(s2(x1)) * sp.exp(s3(x1, x2)))),
                reason="The determinant of a triangular matrix is the product of its diagonal.",
            ),
            Step(
                rhs=s1() + s2(x1) + s3(x1, x2),
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
a = sp.Symbol("a", real=True)
k = sp.Symbol("k", nonnegative=True)

_wu = (w.T * u)[0]
_m = -1 + sp.log(1 + sp.exp(_wu))
_u_hat = u + (_m - _wu) * w / (w.T * w)[0]
_pre = (w.T * z)[0] + b
_planar = z + u * sp.tanh(_pre)

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
            r"$1 + h'\, w^\top\hat u > 0$ everywhere. Checked for $d = 3$; in the last step "
            r"$h' = 1/(1 + k)$ with $k \ge 0$ covers every value in $(0, 1]$."
        ),
        start=sp.Determinant(sp.eye(3) + u * psi.T),
        steps=[
            Step(
                rhs=1 + (u.T * psi)[0],
                reason="Matrix determinant lemma for a rank-one update of the identity.",
            ),
            Step(
                lhs=sp.Determinant(_planar.jacobian(z)),
                rhs=1 + (1 - sp.tanh(_pre) ** 2) * _wu,
                reason=(
                    r"The Jacobian of the planar map is $I + u\,\psi^\top$ with "
                    r"$\psi = \tanh'(w^\top z + b)\, w$ and $\tanh' = 1 - \tanh^2$; apply the lemma."
                ),
            ),
            Step(
                lhs=(w.T * _u_hat)[0],
                rhs=_m,
                reason=r"Expand $w^\top \hat u$: the $w^\top u$ terms cancel and $w^\top w / \|w\|^2 = 1$.",
            ),
            Step(
                lhs=1 + (-1 + sp.log(1 + sp.exp(a))) / (1 + k),
                rhs=0,
                relation=">=",
                reason=(
                    r"With $h' = 1/(1+k) \in (0, 1]$ and $w^\top \hat u = -1 + \log(1 + e^{a})$, "
                    r"$1 + h' w^\top\hat u = (k + \log(1 + e^{a}))/(1 + k)$, a positive quantity: "
                    r"the determinant never vanishes and $f$ is strictly monotone along $w$."
                ),
            ),
        ],
        symbols=(*u, *w, *psi, *z, b, a, k),
        references=("rezende2015variational",),
        code=(f"{_CODE}.Planar",),
        tests=_TESTS,
    )
)

# ---------------------------------------------------------------------------- LU affine

l21, l31, l32 = sp.symbols("l_21 l_31 l_32", real=True)
u11, u22, u33 = sp.symbols("u_11 u_22 u_33", real=True, nonzero=True)
u12, u13, u23 = sp.symbols("u_12 u_13 u_23", real=True)
th1, th2, th3 = sp.symbols("theta_1:4", real=True)
_P = sp.Matrix([[0, 1, 0], [0, 0, 1], [1, 0, 0]])
_L = sp.Matrix([[1, 0, 0], [l21, 1, 0], [l31, l32, 1]])
_U = sp.Matrix([[u11, u12, u13], [0, u22, u23], [0, 0, u33]])

register(
    Derivation(
        id="D-flow-lu-logdet",
        title="Log-determinant of an LU-parameterized affine map",
        statement=(
            r"With $W = P L U$ ($P$ a permutation, $L$ unit lower triangular, $U$ upper "
            r"triangular), $\log|\det W| = \sum_i \log|U_{ii}|$: an $O(d)$ log-determinant, "
            r"and $W$ is invertible exactly when every $U_{ii} \ne 0$. With the positive "
            r"parameterization $U_{ii} = e^{\theta_i}$ it is $\sum_i \theta_i$. The inverse map "
            r"has log-determinant $-\sum_i \log|U_{ii}|$. Checked for $d = 3$."
        ),
        start=sp.log(sp.Abs(sp.Determinant(_P * _L * _U))),
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
                rhs=sp.log(sp.Abs(u11)) + sp.log(sp.Abs(u22)) + sp.log(sp.Abs(u33)),
                reason=r"$|U_{ii}| > 0$, so the logarithm of the product splits.",
            ),
            Step(
                lhs=sp.log(sp.Abs(sp.exp(th1) * sp.exp(th2) * sp.exp(th3))),
                rhs=th1 + th2 + th3,
                reason=r"Positive diagonal $U_{ii} = e^{\theta_i}$.",
            ),
        ],
        symbols=(l21, l31, l32, u11, u12, u13, u22, u23, u33, th1, th2, th3),
        references=("kingma2018glow",),
        code=(f"{_CODE}.Affine",),
        tests=_TESTS,
    )
)

# ---------------------------------------------------------------------------- sigmoid / logit

x = sp.Symbol("x", real=True)
y = sp.Symbol("y", positive=True)
_sigmoid = 1 / (1 + sp.exp(-x))


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
            r"\log(y/(1-y))$ on $(0, 1)$ has $\log \operatorname{logit}'(y) = -\log y - \log(1 - y)$."
        ),
        start=sp.log(sp.Derivative(_sigmoid, x)),
        steps=[
            Step(
                rhs=sp.log(_sigmoid * (1 - _sigmoid)),
                reason=r"$\sigma' = \sigma(1 - \sigma)$.",
                method=_cancel_inside_logs,
            ),
            Step(
                rhs=-sp.log(1 + sp.exp(-x)) - sp.log(1 + sp.exp(x)),
                reason=(
                    r"$\sigma(x) = 1/(1 + e^{-x})$ and $1 - \sigma(x) = \sigma(-x) = 1/(1 + e^{x})$; "
                    "both factors are positive, so the logarithm splits."
                ),
                method=_cancel_inside_logs,
            ),
            Step(
                lhs=sp.log(sp.Derivative(sp.log(y / (1 - y)), y)),
                rhs=-sp.log(y) - sp.log(1 - y),
                reason=(
                    r"$\operatorname{logit}'(y) = 1/y + 1/(1-y) = 1/(y(1-y))$, positive on $(0, 1)$ "
                    r"(checked at sampled $y \in (0, 1)$)."
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
