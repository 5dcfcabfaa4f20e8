"""Residual flows, bound to `genmath.families.residual`: the fixed-point inverse of a residual
block, the Neumann-series gradients of the log-determinant estimates (truncated series,
Russian roulette, exact) and of the inverse, and the spectral normalisation that makes the
residual a contraction. The linear blocks and the non-normal Jacobian
$J = V\\operatorname{diag}(\\lambda_1, \\lambda_2)V^{-1}$ are `_residual_common`'s.
"""

import sympy as sp

from ._chain import Earlier
from ._engine import NUMERIC, Binding, Derivation, Integers, Step, Uniform
from ._registry import register
from ._residual_common import (
    _CLASS,
    _J,
    _RESIDUAL,
    _TESTS,
    _V,
    _W,
    _block,
    _eigen_domain,
    _entries,
    _generator_for_extra,
    _point,
    _small_domain,
    _through_eigenvalues,
    _V_inv,
    _weight,
    j,
    k,
    lam1,
    lam2,
    m,
    n,
    n0,
    q,
    s,
    w11,
    w12,
    w21,
    w22,
)


def _power_entry(a, b, power):
    """Entry (a, b) of J^power = V diag(lambda^power) V^{-1}, for a symbolic power."""
    return _V[a, 0] * lam1**power * _V_inv[0, b] + _V[a, 1] * lam2**power * _V_inv[1, b]


def _neumann(lam, terms):
    """sum_{k<n} (-lambda)^k = (1 - (-lambda)^n) / (1 + lambda)."""
    return (1 - (-lam) ** terms) / (1 + lam)


def _roulette_factor(lam):
    """The roulette weights' sum_k w_k (-lambda)^(k-1) when G = j."""
    return sp.Sum((-lam) ** (k - 1), (k, 1, n0)) + sp.Sum((-lam) ** (n0 + m - 1) / q**m, (m, 1, j))


_series_gradient = [
    sp.Sum((-1) ** (k + 1) * _power_entry(b, a, k - 1), (k, 1, n)) for a, b in _entries
]  # d/dW_ab of sum_k (-1)^(k+1) tr(W^k)/k = (sum_k (-1)^(k+1) W^(k-1))^T
_inverse_jacobian = [sp.Sum((-1) ** k * _power_entry(a, b, k), (k, 0, n - 1)) for a, b in _entries]
_roulette_gradient = [
    sp.Sum((-1) ** (k + 1) * _power_entry(b, a, k - 1), (k, 1, n0))
    + sp.Sum((-1) ** (n0 + m + 1) * _power_entry(b, a, n0 + m - 1) / q**m, (m, 1, j))
    for a, b in _entries
]
_neumann_matrix = _through_eigenvalues(_neumann(lam1, n), _neumann(lam2, n))
_roulette_matrix = _through_eigenvalues(_roulette_factor(lam1), _roulette_factor(lam2))
_inverse_matrix = _through_eigenvalues(1 / (1 + lam1), 1 / (1 + lam2))
_identity_plus_J_inv = (sp.eye(2) + _J).inv()

register(
    Derivation(
        id="D-residual-flow-neumann-gradient",
        title="Residual flows: the Neumann-series gradients of the log-det estimate and of the inverse",
        statement=(
            r"Jacobi's formula gives $\nabla_W \log\det(I + W) = (I + W)^{-\top}$, and "
            r"$\partial\operatorname{tr}(W^k)/\partial W = k\,(W^{k-1})^\top$. So the gradient "
            r"of the $n$-term log-det series is the $n$-term Neumann series "
            r"$\big(\sum_{k<n}(-W)^k\big)^\top$, which tends to $(I + W)^{-\top}$; weighting term "
            r"$k$ by the roulette weights $w_k$ (D-russian-roulette-unbiased, "
            r"$\mathbb E w_k = 1$) makes it an unbiased estimate of it (Chen et al. 2019). The "
            r"inverse of $F(x) = x + Wx + b$ is a fixed point found without gradient; the "
            r"$n$ differentiable steps $x \leftarrow y - Wx - b$ taken from it give "
            r"$\partial x/\partial y = \sum_{k<n}(-W)^k$, the truncated Neumann series of "
            r"$(I + W)^{-1}$. Checked for a general $2\times 2$ $W$ (Jacobi, $k = 3$) and, in "
            r"closed form in $n$, for $W = J = V\operatorname{diag}(\lambda)V^{-1}$, where "
            r"$\sum_{k<n}(-J)^k = V\operatorname{diag}\big((1 - (-\lambda)^n)/(1 + \lambda)\big)"
            r"V^{-1}$."
        ),
        start=sp.ImmutableMatrix(
            [
                *[sp.Derivative((_W**3).trace(), _W[a, b]) for a, b in _entries],
                *[sp.Derivative(sp.log((sp.eye(2) + _W).det()), _W[a, b]) for a, b in _entries],
                *[_inverse_matrix[a, b] for a, b in _entries],
                *_series_gradient,
                *_inverse_jacobian,
                *_roulette_gradient,
            ]
        ),
        steps=[
            Step(
                rhs=sp.ImmutableMatrix(
                    [
                        *[3 * (_W**2)[b, a] for a, b in _entries],
                        *[(sp.eye(2) + _W).inv()[b, a] for a, b in _entries],
                        *[_identity_plus_J_inv[a, b] for a, b in _entries],
                        *[_neumann_matrix[b, a] for a, b in _entries],
                        *[_neumann_matrix[a, b] for a, b in _entries],
                        *[_roulette_matrix[b, a] for a, b in _entries],
                    ]
                ),
                reason=(
                    r"Jacobi's formula and the trace rule, for a general $W$ (derivatives taken "
                    r"exactly, compared at random matrices); "
                    r"$V\operatorname{diag}(1/(1 + \lambda))V^{-1} = (I + J)^{-1}$, the limit of "
                    r"the Neumann factors. By the trace rule each term of the series contributes "
                    r"$(-1)^{k+1}(J^{k-1})^\top$, and $J^k = VD^kV^{-1}$: the geometric sums of the "
                    r"eigenvalues, $(1 - (-\lambda)^n)/(1 + \lambda)$, through $V$ (transposed for "
                    "the gradient in W); the same with the roulette weights "
                    r"$1\{k \le N\}/P(N \ge k)$ when the code draws $G = j$ extra terms."
                ),
                tag=NUMERIC,
                samples=6,
            ),
        ],
        symbols=(w11, w12, w21, w22, lam1, lam2, s, n, n0, j, q),
        references=("chen2019residual", "behrmann2019invertible"),
        code=(_CLASS,),
        tests=_TESTS,
        domain={
            lam1: (-0.99, 0.99),
            lam2: (-0.99, 0.99),
            s: (-0.5, 0.5),
            n: Integers(1, 30),
            n0: Integers(1, 6),
            j: Integers(0, 5),
            q: (0.05, 0.95),
        },
    )
)


def _gradient_by_code(points, roulette=False, exact=False):
    import torch

    rows = []
    for i in range(len(points[lam1])):
        weight = _weight(points[lam1][i], points[lam2][i], points[s][i])
        generator = torch.Generator().manual_seed(i)
        if exact:
            options = {"logdet": "exact"}
        elif roulette:
            options = {"logdet": "roulette", "trace": "exact", "terms": int(points[n0][i])}
            options["roulette_continue"] = float(points[q][i])
            generator = _generator_for_extra(int(points[j][i]), float(points[q][i]))
        else:
            options = {"logdet": "series", "trace": "exact", "terms": int(points[n][i])}
        block = _block(weight, **options)
        _, logdet = block.forward_with_generator(_point(), generator)
        (gradient,) = torch.autograd.grad(logdet.sum(), block.layers[0].weight)
        rows.append(gradient.flatten())
    return tuple(torch.stack(rows).detach().T)


def _inverse_jacobian_by_code(points):
    import torch

    rows = []
    for i in range(len(points[lam1])):
        weight = _weight(points[lam1][i], points[lam2][i], points[s][i])
        block = _block(weight, logdet="series", trace="exact", terms=int(points[n][i]))
        y = _point().requires_grad_(True)
        x, _ = block.inverse(y)
        jacobian = torch.stack(
            [torch.autograd.grad(x[0, a], y, retain_graph=True)[0][0] for a in range(2)]
        )
        rows.append(jacobian.flatten())
    return tuple(torch.stack(rows).detach().T)


_neumann_bindings = (
    ("series", _neumann_matrix, True, lambda points: _gradient_by_code(points), {n: Integers(1, 30)}),
    (
        "roulette",
        _roulette_matrix,
        True,
        lambda points: _gradient_by_code(points, roulette=True),
        {n0: Integers(1, 6), j: Integers(0, 4), q: Uniform(0.3, 0.95)},
    ),
    ("exact", (sp.eye(2) + _W).inv(), True, lambda points: _gradient_by_code(points, exact=True), {}),
)
for _name, _matrix, _transposed, _evaluate, _extra in _neumann_bindings:
    if _name == "exact":
        # logdet='exact' differentiates slogdet: Jacobi's (I + W)^{-T}, at W = J
        _expressions = tuple((sp.eye(2) + _W).inv()[b, a] for a, b in _entries)
        _where = {_W[a, b]: _J[a, b] for a, b in _entries}
    else:
        _expressions = tuple(_matrix[b, a] for a, b in _entries)
        _where = {}
    register(
        Binding(
            derivation="D-residual-flow-neumann-gradient",
            code=(_CLASS,),
            expression=_expressions,
            where=_where,
            evaluate=_evaluate,
            domain={**_eigen_domain, s: Uniform(-0.1, 0.1), **_extra},
            samples=8,
            description=f"autograd gradient in the weight of the {_name} log-det (logdet='{_name}')",
        )
    )
register(
    Binding(
        derivation="D-residual-flow-neumann-gradient",
        code=(_CLASS,),
        expression=tuple(_neumann_matrix[a, b] for a, b in _entries),
        evaluate=_inverse_jacobian_by_code,
        domain={**_small_domain, s: Uniform(-0.1, 0.1), n: Integers(1, 20)},
        samples=8,
        description="autograd Jacobian of the inverse: n differentiable fixed-point steps",
    )
)


# --------------------------------------------------------------------------- the inverse

x1, x2, y1, y2, b1, b2 = sp.symbols("x_1 x_2 y_1 y_2 b_1 b_2", real=True)
_x, _y, _b = sp.Matrix([x1, x2]), sp.Matrix([y1, y2]), sp.Matrix([b1, b2])
_forward = _x + _J * _x + _b
_fixed_point = _inverse_matrix * (_y - _b)

register(
    Derivation(
        id="D-iresnet-inverse",
        title="The inverse of a linear residual block: the fixed point of x = y - g(x)",
        statement=(
            r"For $F(x) = x + Jx + b$ with $\|J\|_2 < 1$, the map $x \mapsto y - Jx - b$ is a "
            r"contraction, so Banach's iteration from any start converges to its unique fixed "
            r"point $x^* = (I + J)^{-1}(y - b)$, and $F(x^*) = y$; with "
            r"$J = V\operatorname{diag}(\lambda)V^{-1}$, $(I + J)^{-1} = "
            r"V\operatorname{diag}(1/(1 + \lambda))V^{-1}$. `InvertibleResidualBlock.inverse` "
            r"iterates until $\|x + g(x) - y\|_\infty \le$ `inverse_tol`, which bounds the error "
            r"by `inverse_tol`$/(1 - c)$; its gradient is D-residual-flow-neumann-gradient's."
        ),
        start=sp.ImmutableMatrix(list(_forward)),
        steps=[
            Step(
                rhs=sp.ImmutableMatrix(list((sp.eye(2) + _J) * _x + _b)),
                reason=r"$F(x) = (I + J)x + b$.",
            ),
            Step(
                lhs=Earlier("D-iresnet-inverse", {x1: _fixed_point[0], x2: _fixed_point[1]}, step=1),
                rhs=sp.ImmutableMatrix([y1, y2]),
                reason=r"At $x^* = (I + J)^{-1}(y - b)$: $F(x^*) = y$.",
            ),
        ],
        symbols=(lam1, lam2, s, x1, x2, y1, y2, b1, b2),
        references=("behrmann2019invertible",),
        code=(_CLASS,),
        tests=_TESTS,
    )
)


def _forward_value_by_code(points):
    import torch

    rows = []
    for i in range(len(points[lam1])):
        weight = _weight(points[lam1][i], points[lam2][i], points[s][i])
        block = _block(weight, bias=torch.stack([points[b1][i], points[b2][i]]))
        with torch.no_grad():
            rows.append(block(torch.stack([points[x1][i], points[x2][i]])[None])[0][0])
    return tuple(torch.stack(rows).T)


def _inverse_value_by_code(points):
    import torch

    rows = []
    for i in range(len(points[lam1])):
        weight = _weight(points[lam1][i], points[lam2][i], points[s][i])
        block = _block(weight, bias=torch.stack([points[b1][i], points[b2][i]]), inverse_tol=1e-14)
        y = torch.stack([points[y1][i], points[y2][i]])
        # inverted in a batch of three rows (the point first): the per-row stopping test
        # must group by row, which a batch of one cannot show
        with torch.no_grad():
            rows.append(block.inverse(torch.stack([y, 0.5 * y, -y]))[0][0])
    return tuple(torch.stack(rows).T)


_affine_domain = {b1: Uniform(-2, 2), b2: Uniform(-2, 2), s: Uniform(-0.1, 0.1)}
register(
    Binding(
        derivation="D-iresnet-inverse",
        code=(_CLASS,),
        expression=tuple(_forward),
        evaluate=_forward_value_by_code,
        domain={**_eigen_domain, **_affine_domain, x1: Uniform(-2, 2), x2: Uniform(-2, 2)},
        samples=12,
        description="forward value F(x) = x + g(x) of a linear block",
    )
)
register(
    Binding(
        derivation="D-iresnet-inverse",
        code=(_CLASS,),
        expression=tuple(_fixed_point),
        evaluate=_inverse_value_by_code,
        domain={**_small_domain, **_affine_domain, y1: Uniform(-2, 2), y2: Uniform(-2, 2)},
        samples=12,
        tolerance=1e-8,  # the fixed point is found to inverse_tol / (1 - c)
        description="inverse value: the fixed point reached by the code's iteration",
    )
)

# --------------------------------------------------------------------------- spectral normalisation

coefficient = sp.Symbol("c_sn", positive=True)


def _spectral_norm(matrix):
    """The largest singular value of a 2x2 matrix, from its Frobenius norm and determinant."""
    frobenius = sum(e**2 for e in matrix)
    determinant = matrix[0, 0] * matrix[1, 1] - matrix[0, 1] * matrix[1, 0]
    return sp.sqrt((frobenius + sp.sqrt(frobenius**2 - 4 * determinant**2)) / 2)


_sigma = _spectral_norm(_W)
_normalized = _W * coefficient / sp.Max(coefficient, _sigma)
_sigma_normalized = _spectral_norm(_normalized)

register(
    Derivation(
        id="D-spectral-normalization",
        title="Spectral normalisation: W c / max(c, ||W||_2) has spectral norm min(c, ||W||_2)",
        statement=(
            r"The largest singular value of a $2\times2$ $W$ is "
            r"$\sigma = \sqrt{(F + \sqrt{F^2 - 4\Delta^2})/2}$, $F = \|W\|_F^2$, "
            r"$\Delta = \det W$: $\sigma^2$ is the larger root of the characteristic polynomial "
            r"$\mu^2 - F\mu + \Delta^2$ of $W^\top W$. Rescaling, "
            r"$\hat W = W\,c/\max(c, \sigma)$ has $\|\hat W\|_2 = \min(c, \sigma) \le c$, and a "
            r"composition of such layers with 1-Lipschitz activations has "
            r"$\operatorname{Lip} \le \prod_l \|\hat W_l\|_2 \le c^L$ (Miyato et al. 2018; the "
            r"code computes $\|W\|_2$ exactly rather than by power iteration)."
        ),
        start=(_W.T * _W - _sigma**2 * sp.eye(2)).det(),
        steps=[
            Step(
                rhs=sp.Integer(0),
                reason=r"$\sigma^2$ is a root of $\det(W^\top W - \mu I) = \mu^2 - F\mu + \Delta^2$.",
            ),
            Step(
                lhs=_sigma_normalized,
                rhs=coefficient * _sigma / sp.Max(coefficient, _sigma),
                reason=r"Singular values scale with the matrix: $\sigma(aW) = |a|\,\sigma(W)$.",
                tag=NUMERIC,
            ),
            Step(
                rhs=sp.Min(coefficient, _sigma),
                reason=r"$c\sigma/\max(c, \sigma) = \min(c, \sigma)$.",
                tag=NUMERIC,
            ),
            Step(
                rhs=coefficient,
                relation="<=",
                reason=r"The normalised layer is $c$-Lipschitz.",
                tag=NUMERIC,
            ),
            Step(
                lhs=_sigma_normalized**2,
                rhs=coefficient**2,
                relation="<=",
                reason=(
                    r"Two such layers (with a 1-Lipschitz activation between them) are "
                    r"$c^2$-Lipschitz: the product of the layers' norms, `lipschitz_bound`."
                ),
                tag=NUMERIC,
            ),
        ],
        symbols=(w11, w12, w21, w22, coefficient),
        references=("miyato2018spectral", "behrmann2019invertible"),
        code=(
            f"{_RESIDUAL}.SpectralNormLinear.normalized_weight",
            f"{_RESIDUAL}.InvertibleResidualBlock.lipschitz_bound",
        ),
        tests=_TESTS,
        domain={coefficient: (0.05, 0.999)},
    )
)


def _spectral_by_code(points):
    import torch

    from ..families.residual import InvertibleResidualBlock

    rows = []
    for i in range(len(points[w11])):
        weight = torch.stack([points[w][i] for w in (w11, w12, w21, w22)]).reshape(2, 2)
        c_value = float(points[coefficient][i])
        one, two = (
            InvertibleResidualBlock(2, hidden, lipschitz=c_value).double() for hidden in ((), (2,))
        )
        with torch.no_grad():
            for layer in (*one.layers, *two.layers):
                layer.weight.copy_(weight)
            normalized = one.layers[0].normalized_weight()
            rows.append(
                torch.stack([*normalized.flatten(), one.lipschitz_bound(), two.lipschitz_bound()])
            )
    return tuple(torch.stack(rows).T)


register(
    Binding(
        derivation="D-spectral-normalization",
        code=(
            f"{_RESIDUAL}.SpectralNormLinear.normalized_weight",
            f"{_RESIDUAL}.InvertibleResidualBlock.lipschitz_bound",
        ),
        expression=(
            *[_normalized[a, b] for a, b in _entries],
            _sigma_normalized,
            _sigma_normalized**2,
        ),
        evaluate=_spectral_by_code,
        domain={
            w11: Uniform(-2, 2),
            w12: Uniform(-2, 2),
            w21: Uniform(-2, 2),
            w22: Uniform(-2, 2),
            coefficient: Uniform(0.05, 0.999),
        },
        samples=16,
        description="normalized_weight and lipschitz_bound of one and of two equal layers",
    )
)
