"""Invertible residual networks and residual flows, bound to `genmath.families.residual`: the
i-ResNet log-determinant series with its remainder and truncation bound over the code's whole
range (Lipschitz constants up to 1, any number of terms), the Russian-roulette estimator with
the code's law of the number of terms, the Neumann-series gradients of the log-determinant
estimate and of the fixed-point inverse, and the spectral normalisation of the layers.

The bindings use a linear residual $g(x) = Wx + b$ (``hidden=()``), whose Jacobian is the
non-normal $W = V\\operatorname{diag}(\\lambda_1, \\lambda_2)V^{-1}$, $V = RS$ with a
rotation $R$ and a shear $S$: every trace, power and gradient is then closed form in the
eigenvalues, and a transposed or misplaced matrix entry changes it.
"""

import sympy as sp

from ._chain import Earlier
from ._earlier import Limited
from ._engine import CITED, NUMERIC, Binding, Check, Derivation, Integers, LogUniform, Step, Uniform
from ._registry import register
from .elbo_gap import _Integral

_RESIDUAL = "genmath.families.residual"
_TESTS = ("tests/families/test_residual.py",)

lam1, lam2 = sp.symbols("lambda_1 lambda_2", real=True)
s = sp.Symbol("s", real=True)  # the shear: how far W is from normal
k, m = sp.symbols("k m", integer=True, positive=True)  # summation indices
n = sp.Symbol("n", integer=True, positive=True)  # terms of the series
t = sp.Symbol("t", real=True)

_R = sp.Matrix([[sp.Rational(3, 5), -sp.Rational(4, 5)], [sp.Rational(4, 5), sp.Rational(3, 5)]])
_V = _R * sp.Matrix([[1, s], [0, 1]])
_V_inv = _V.inv()
_J = _V * sp.diag(lam1, lam2) * _V_inv


def _through_eigenvalues(f1, f2):
    """$V\\operatorname{diag}(f_1, f_2)V^{-1}$: a function of $W$ given by its eigenvalues."""
    return _V * sp.diag(f1, f2) * _V_inv


def _partial_sum(lam, terms):
    return sp.Sum((-1) ** (k + 1) * lam**k / k, (k, 1, terms))


def _remainder(lam, terms):
    # log(1 + lam) minus its partial sum: integrate 1/(1+t) = sum_{k<n} (-t)^k + (-t)^n/(1+t)
    return (-1) ** terms * _Integral(t**terms / (1 + t), (t, 0, lam))


_series = sp.Sum((-1) ** (k + 1) * (lam1**k + lam2**k) / k, (k, 1, n))


def _factor_logs(expr):
    """Each logarithm's argument factored (the determinant of I + J as a product)."""
    return expr.replace(lambda e: isinstance(e, sp.log), lambda e: sp.log(sp.factor(e.args[0])))


register(
    Derivation(
        id="D-iresnet-logdet-series",
        title="Log-determinant of an invertible residual block as a power series of traces",
        statement=(
            r"For $F(x) = x + g(x)$ with $J = \partial g/\partial x$ and spectral radius "
            r"$\rho(J) \le \|J\|_2 \le \operatorname{Lip}(g) < 1$, "
            r"$\log|\det(I + J)| = \sum_{k=1}^{n} (-1)^{k+1} \operatorname{tr}(J^k)/k + R_n$ "
            r"for every number of terms $n$, with the remainder "
            r"$R_n = \sum_i (-1)^n\int_0^{\lambda_i} t^n/(1 + t)\,dt$ over the eigenvalues "
            r"$\lambda_i$ of $J$, which tends to 0 (D-iresnet-truncation-bound; Behrmann et al. "
            r"2019). Shown for a non-normal $2\times2$ $J = V\operatorname{diag}(\lambda_1, "
            r"\lambda_2)V^{-1}$, $\operatorname{tr}J^k = \lambda_1^k + \lambda_2^k$, at "
            r"eigenvalues up to $0.99$ in modulus and up to 40 terms; the argument (Mercator's "
            r"series with its integral remainder for each $\log(1 + \lambda_i)$) holds in any "
            "dimension, for diagonalisable $J$ directly and for the rest by density and continuity."
        ),
        start=sp.log(sp.Determinant(sp.eye(2) + _J)),
        steps=[
            Step(
                rhs=sp.log((1 + lam1) * (1 + lam2)),
                reason=(
                    r"$\det(I + VDV^{-1}) = \det(V(I + D)V^{-1}) = \det(I + D)$; "
                    r"$1 + \lambda_i > 0$ for $|\lambda_i| < 1$, so no absolute value is needed."
                ),
                method=_factor_logs,
            ),
            Step(
                rhs=sp.log(1 + lam1) + sp.log(1 + lam2),
                reason=r"Both factors are positive when $|\lambda_i| < 1$.",
                tag=NUMERIC,
            ),
            Step(
                rhs=_partial_sum(lam1, n)
                + _partial_sum(lam2, n)
                + _remainder(lam1, n)
                + _remainder(lam2, n),
                reason=(
                    r"$\frac{1}{1 + t} = \sum_{k=0}^{n-1}(-t)^k + \frac{(-t)^n}{1 + t}$, "
                    r"integrated from $0$ to $\lambda$: Mercator's partial sum plus its remainder, "
                    "exactly, for every $n$ (checked by quadrature at random eigenvalues and "
                    "numbers of terms)."
                ),
                tag=NUMERIC,
            ),
            Step(
                rhs=_series + _remainder(lam1, n) + _remainder(lam2, n),
                reason=(
                    r"The two partial sums add term by term into "
                    r"$\sum_{k=1}^n (-1)^{k+1}(\lambda_1^k + \lambda_2^k)/k$, and "
                    r"$\lambda_1^k + \lambda_2^k = \operatorname{tr}(VD^kV^{-1}) = "
                    r"\operatorname{tr}J^k$: the code's series of traces."
                ),
                tag=NUMERIC,
            ),
        ],
        symbols=(lam1, lam2, s, n),
        references=("behrmann2019invertible",),
        code=(f"{_RESIDUAL}.InvertibleResidualBlock",),
        tests=_TESTS,
        domain={lam1: (-0.99, 0.99), lam2: (-0.99, 0.99), s: (-0.5, 0.5), n: Integers(1, 40)},
    )
)


# --------------------------------------------------------------------------- binding helpers


def _weight(l1, l2, shear=None):
    """W = V diag(l1, l2) V^{-1} as a float64 tensor (the bindings' Jacobian); without a
    shear, diag(l1, l2) itself."""
    import torch

    if shear is None:
        return torch.diag(torch.stack([l1, l2]))
    rotation = torch.tensor([[0.6, -0.8], [0.8, 0.6]], dtype=torch.float64)
    one = torch.ones((), dtype=torch.float64)
    basis = rotation @ torch.stack([torch.stack([one, shear]), torch.stack([0 * one, one])])
    return basis @ torch.diag(torch.stack([l1, l2])) @ torch.linalg.inv(basis)


def _block(weight, bias=(0.3, -0.2), **options):
    """A linear residual block with the given weight, its Lipschitz bound just above ||W||_2
    so that the spectral normalisation leaves W as it is."""
    import torch

    from ..families.residual import InvertibleResidualBlock

    norm = float(torch.linalg.matrix_norm(weight, ord=2))
    block = InvertibleResidualBlock(2, (), lipschitz=(1 + norm) / 2, **options).double()
    with torch.no_grad():
        block.layers[0].weight.copy_(weight)
        block.layers[0].bias.copy_(torch.as_tensor(bias, dtype=torch.float64))
    return block


def _shear(points, j):
    """A shear in [-0.1, 0.1] that varies with the point (the expressions do not depend on it:
    a code that did would fail), keeping ||W||_2 < 1 for |lambda| <= 0.9."""
    import torch

    return 0.1 * torch.cos(7 * points[lam1][j] + 3 * points[lam2][j])


_POINT = ((0.4, -1.1),)


def _point():
    import torch

    return torch.tensor(_POINT, dtype=torch.float64)


def _series_by_code(points, trace="exact", inverse=False, diagonal=False):
    import torch

    values = []
    for j in range(len(points[lam1])):
        weight = _weight(points[lam1][j], points[lam2][j], None if diagonal else _shear(points, j))
        options = {"logdet": "series", "trace": trace, "terms": int(points[n][j])}
        if trace == "hutchinson":
            options.update(noise="rademacher", probes=1 + j % 3)
        block = _block(weight, **options)
        generator = torch.Generator().manual_seed(j)
        with torch.no_grad():
            if inverse:
                _, logdet = block.inverse(_point())
                values.append(-logdet[0])
            else:
                values.append(block.forward_with_generator(_point(), generator)[1][0])
    return torch.stack(values)


def _exact_logdet_by_code(points):
    import torch

    values = []
    for j in range(len(points[lam1])):
        block = _block(_weight(points[lam1][j], points[lam2][j], _shear(points, j)), logdet="exact")
        with torch.no_grad():
            values.append(block(_point())[1][0])
    return torch.stack(values)


_eigen_domain = {lam1: Uniform(-0.9, 0.9), lam2: Uniform(-0.9, 0.9)}
_small_domain = {lam1: Uniform(-0.5, 0.5), lam2: Uniform(-0.5, 0.5)}
_CLASS = f"{_RESIDUAL}.InvertibleResidualBlock"

register(
    Binding(
        derivation="D-iresnet-logdet-series",
        code=(_CLASS,),
        expression=_series,
        evaluate=_series_by_code,
        domain={**_eigen_domain, n: Integers(1, 40)},
        samples=16,
        description="forward log-det, truncated series with exact traces of a non-normal J",
    )
)
register(
    Binding(
        derivation="D-iresnet-logdet-series",
        code=(_CLASS,),
        expression=_series,
        evaluate=lambda points: _series_by_code(points, inverse=True),
        domain={**_small_domain, n: Integers(1, 20)},
        samples=12,
        description="minus the inverse's log-det at the fixed point (a contraction of norm <= 0.6)",
    )
)
register(
    Binding(
        derivation="D-iresnet-logdet-series",
        code=(_CLASS,),
        expression=_series,
        evaluate=lambda points: _series_by_code(points, trace="hutchinson", diagonal=True),
        domain={lam1: Uniform(-0.9, 0.9), lam2: Uniform(-0.9, 0.9), n: Integers(1, 40)},
        samples=16,
        description=(
            "Hutchinson traces with 1-3 Rademacher probes of a diagonal J (v^T J^k v = tr J^k "
            "exactly when v_i^2 = 1)"
        ),
    )
)
register(
    Binding(
        derivation="D-iresnet-logdet-series",
        code=(_CLASS,),
        expression=sp.log((1 + lam1) * (1 + lam2)),
        evaluate=_exact_logdet_by_code,
        domain=_eigen_domain,
        samples=16,
        description="logdet='exact': log|det(I + J)| from the full Jacobian",
    )
)

# --------------------------------------------------------------------------- truncation bound

c = sp.Symbol("c", positive=True)  # the Lipschitz bound: |lambda_i| <= c < 1
r1, r2 = sp.symbols("r_1 r_2", real=True)  # lambda_i = c r_i, |r_i| <= 1
dim = sp.Symbol("d", integer=True, positive=True)
_l1, _l2 = c * r1, c * r2


def _tail_bound(lam):
    return sp.Abs(lam) ** (n + 1) / ((n + 1) * (1 - sp.Abs(lam)))


_bound = dim * c ** (n + 1) / ((n + 1) * (1 - c))

register(
    Derivation(
        id="D-iresnet-truncation-bound",
        title="Truncating the i-ResNet series after n terms errs by at most d c^(n+1)/((n+1)(1-c))",
        statement=(
            r"When every eigenvalue of $J$ has $|\lambda_i| \le c < 1$ (so when "
            r"$\operatorname{Lip}(g) \le c$), the $n$-term series of D-iresnet-logdet-series "
            r"misses $\log|\det(I + J)|$ by at most $d\,c^{n+1}/((n+1)(1 - c))$ in dimension "
            r"$d$: each remainder $\big|\int_0^{\lambda} t^n/(1+t)\,dt\big| \le "
            r"|\lambda|^{n+1}/((n+1)(1 - |\lambda|))$. This is "
            "`power_series_logdet_bound(c, n, d)`; shown for $d = 2$ over the whole range "
            "$0 < c < 1$ and up to 40 terms (the last step is the bound for any $d \\ge 2$)."
        ),
        start=sp.Abs(
            sp.log(1 + _l1) + sp.log(1 + _l2) - _series.subs({lam1: _l1, lam2: _l2})
        ),
        steps=[
            Step(
                rhs=sp.Abs(_remainder(_l1, n) + _remainder(_l2, n)),
                reason="The remainder form of D-iresnet-logdet-series (step 3).",
                tag=NUMERIC,
            ),
            Step(
                rhs=sp.Abs(_remainder(_l1, n)) + sp.Abs(_remainder(_l2, n)),
                relation="<=",
                reason="The triangle inequality.",
                tag=NUMERIC,
            ),
            Step(
                rhs=_tail_bound(_l1) + _tail_bound(_l2),
                relation="<=",
                reason=(
                    r"On $[0, \lambda]$ (or $[\lambda, 0]$), $1 + t \ge 1 - |\lambda|$, and "
                    r"$\int_0^{|\lambda|} t^n\,dt = |\lambda|^{n+1}/(n+1)$."
                ),
                tag=NUMERIC,
                samples=24,
            ),
            Step(
                rhs=2 * c ** (n + 1) / ((n + 1) * (1 - c)),
                relation="<=",
                reason=r"$|\lambda_i| \le c$ and $u \mapsto u^{n+1}/(1 - u)$ increases on $[0, 1)$.",
                tag=NUMERIC,
                samples=24,
            ),
            Step(
                rhs=_bound,
                relation="<=",
                reason=r"$2 \le d$: the bound the code states for dimension $d$.",
                tag=NUMERIC,
            ),
        ],
        symbols=(c, r1, r2, n, dim),
        references=("behrmann2019invertible",),
        code=(f"{_RESIDUAL}.power_series_logdet_bound",),
        tests=_TESTS,
        domain={
            c: (0.01, 0.99),
            r1: (-1.0, 1.0),
            r2: (-1.0, 1.0),
            n: Integers(1, 40),
            dim: Integers(2, 64),
        },
    )
)


def _bound_by_code(points):
    import torch

    from ..families.residual import power_series_logdet_bound

    return torch.tensor(
        [
            power_series_logdet_bound(float(c_), int(n_), int(d_))
            for c_, n_, d_ in zip(points[c], points[n], points[dim], strict=True)
        ],
        dtype=torch.float64,
    )


register(
    Binding(
        derivation="D-iresnet-truncation-bound",
        code=(f"{_RESIDUAL}.power_series_logdet_bound",),
        expression=_bound,
        evaluate=_bound_by_code,
        domain={c: LogUniform(1e-3, 0.999), n: Integers(1, 100), dim: Integers(1, 64)},
        description="power_series_logdet_bound over Lipschitz bounds, terms and dimensions",
    )
)

# --------------------------------------------------------------------------- Russian roulette

q = sp.Symbol("q", positive=True)  # roulette_continue: P(one more term)
n0 = sp.Symbol("n_0", integer=True, positive=True)  # terms always computed
j = sp.Symbol("j", integer=True, nonnegative=True)  # the extra terms drawn, G
M = sp.Symbol("M", integer=True, nonnegative=True)  # a cap on G


def _term(index):
    """The i-ResNet terms c_k = (-1)^(k+1) tr(J^k)/k."""
    return (-1) ** (index + 1) * (lam1**index + lam2**index) / index


def _estimate(extra):
    """The roulette estimate when G = extra: term n_0 + m is reweighted by 1/P(G >= m) = q^-m."""
    return sp.Sum(_term(k), (k, 1, n0)) + sp.Sum(_term(n0 + m) / q**m, (m, 1, extra))


_capped = sp.Sum((q**j - q ** (j + 1)) * _estimate(j), (j, 0, M - 1)) + q**M * _estimate(M)

register(
    Derivation(
        id="D-russian-roulette-unbiased",
        title="The Russian-roulette estimator of the i-ResNet series is unbiased",
        statement=(
            r"`InvertibleResidualBlock(logdet='roulette')` always computes $n_0$ = `terms` "
            r"terms and draws the number of extra terms as $G = \lfloor \log U/\log q\rfloor$, "
            r"$U$ uniform on $(0, 1]$: $P(G \ge j) = P(U \le q^j) = q^j$. Term $n_0 + m$ is "
            r"reweighted by $1/P(G \ge m) = q^{-m}$, so the estimate is "
            r"$\hat S(G) = \sum_{k \le n_0} c_k + \sum_{m=1}^{G} c_{n_0+m}q^{-m}$ with "
            r"$c_k = (-1)^{k+1}\operatorname{tr}(J^k)/k$. Stopped at any cap $M$, its expectation "
            r"is exactly the partial sum to $n_0 + M$ (each weight has expectation one); letting "
            r"$M \to \infty$ (dominated convergence, $\sum_k |c_k| < \infty$ for $\rho(J) < 1$), "
            r"$\mathbb E[\hat S(G)] = \sum_k c_k = \log\det(I + J)$ (Chen et al. 2019). The "
            r"variance is finite when $\rho(J)^2 < q$."
        ),
        start=_capped,
        steps=[
            Step(
                rhs=sp.Sum(_term(k), (k, 1, n0 + M)),
                reason=(
                    r"With $P(G = j) = q^j - q^{j+1}$ for $j < M$ and $P(G \ge M) = q^M$, term "
                    r"$n_0 + m$ ($m \le M$) is kept with probability $q^m$ and weighted by "
                    r"$q^{-m}$: the stopped estimator is unbiased for the partial sum, exactly "
                    "(checked at random eigenvalues, caps, terms and q)."
                ),
                tag=NUMERIC,
            ),
            Step(
                lhs=Limited("D-russian-roulette-unbiased", step=0, variable=M),
                rhs=sp.Sum((1 - q) * q**j * _estimate(j), (j, 0, sp.oo)),
                reason=(
                    r"As $M \to \infty$, $\hat S(\min(G, M)) \to \hat S(G)$, and "
                    r"$|\hat S(\min(G, M))| \le \sum_k |c_k|\,w_k$ with "
                    r"$\mathbb E\sum_k |c_k| w_k = \sum_k|c_k| < \infty$: the stopped "
                    r"expectations converge to $\mathbb E[\hat S(G)]$."
                ),
                tag=CITED,
                theorem="dominated convergence",
                reference="billingsley1995probability",
            ),
            Step(
                lhs=Limited("D-russian-roulette-unbiased", step=1, variable=M),
                rhs=sp.Sum(_term(k), (k, 1, sp.oo)),
                reason=(
                    r"The partial sums of an absolutely convergent series ($|\lambda_i| < 1$) "
                    "converge to its sum."
                ),
                tag=CITED,
                theorem="absolute convergence of the power series for |lambda| < 1",
                reference="rudin1976principles",
            ),
            Step(
                rhs=sp.log(1 + lam1) + sp.log(1 + lam2),
                reason=(
                    r"Mercator's series: the remainder of D-iresnet-logdet-series tends to 0 "
                    "(D-iresnet-truncation-bound), so the estimator is unbiased for "
                    r"$\log\det(I + J)$."
                ),
                tag=CITED,
                theorem="Mercator's series log(1 + x) = sum (-1)^(k+1) x^k / k for |x| < 1",
                reference="rudin1976principles",
            ),
        ],
        symbols=(lam1, lam2, q, n0, M),
        references=("chen2019residual", "behrmann2019invertible"),
        code=(f"{_RESIDUAL}.InvertibleResidualBlock",),
        tests=_TESTS,
        domain={
            lam1: (-0.99, 0.99),
            lam2: (-0.99, 0.99),
            q: (0.02, 0.98),
            n0: Integers(1, 6),
            M: Integers(0, 8),
        },
    )
)


def _generator_for_extra(extra, continue_probability):
    """A generator whose first draw makes the code take ``extra`` roulette terms, found by
    replaying seeds through the law the derivation states, G = floor(log U / log q)."""
    import math

    import torch

    for seed in range(100_000):
        u = 1 - torch.rand(1, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
        if math.floor(math.log(float(u)) / math.log(continue_probability)) == extra:
            return torch.Generator().manual_seed(seed)
    raise RuntimeError(f"no seed draws {extra} extra terms at q = {continue_probability}")


def _roulette_by_code(points):
    import torch

    values = []
    for i in range(len(points[lam1])):
        row = []
        for trace, sheared in (("exact", _shear(points, i)), ("hutchinson", None)):
            weight = _weight(points[lam1][i], points[lam2][i], sheared)
            options = {"logdet": "roulette", "trace": trace, "terms": int(points[n0][i])}
            options["roulette_continue"] = float(points[q][i])
            if trace == "hutchinson":
                options["noise"] = "rademacher"
            block = _block(weight, **options)
            generator = _generator_for_extra(int(points[j][i]), float(points[q][i]))
            with torch.no_grad():
                row.append(block.forward_with_generator(_point(), generator)[1][0])
        values.append(torch.stack(row))
    return tuple(torch.stack(values).T)


register(
    Binding(
        derivation="D-russian-roulette-unbiased",
        code=(_CLASS,),
        expression=(_estimate(j), _estimate(j)),
        evaluate=_roulette_by_code,
        domain={
            lam1: Uniform(-0.9, 0.9),
            lam2: Uniform(-0.9, 0.9),
            q: Uniform(0.3, 0.95),
            n0: Integers(1, 6),
            j: Integers(0, 4),
        },
        samples=16,
        description=(
            "the roulette log-det when the code draws G = j extra terms (exact traces of a "
            "non-normal J; Rademacher Hutchinson traces of a diagonal J)"
        ),
    )
)


# --------------------------------------------------------------------------- Neumann gradients

w11, w12, w21, w22 = sp.symbols("w_11 w_12 w_21 w_22", real=True)
_W = sp.Matrix([[w11, w12], [w21, w22]])
_entries = ((0, 0), (0, 1), (1, 0), (1, 1))


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
        with torch.no_grad():
            rows.append(block.inverse(torch.stack([points[y1][i], points[y2][i]])[None])[0][0])
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
