"""Invertible residual networks and residual flows, bound to `genmath.families.residual`: the
i-ResNet log-determinant series with its remainder and truncation bound over the code's whole
range (eigenvalues up to 0.99 in modulus, any number of terms), and the Russian-roulette
estimator with the code's law of the number of terms. The inverse, the Neumann-series
gradients and the spectral normalisation are in `families_residual_inverse`.

The bindings use a linear residual $g(x) = Wx + b$ (``hidden=()``), whose Jacobian is the
non-normal $W = V\\operatorname{diag}(\\lambda_1, \\lambda_2)V^{-1}$, $V = RS$ with a
rotation $R$ and a shear $S$ (`_residual_common`): every trace, power and gradient is then
closed form in the eigenvalues, and a transposed or misplaced matrix entry changes it.
"""

import sympy as sp

from ._earlier import Limited
from ._engine import CITED, NUMERIC, Binding, Check, Derivation, Integers, LogUniform, Step, Uniform
from ._registry import register
from ._residual_common import (
    _CLASS,
    _J,
    _RESIDUAL,
    _TESTS,
    M,
    _block,
    _eigen_domain,
    _exact_logdet_by_code,
    _factor_logs,
    _generator_for_extra,
    _partial_sum,
    _point,
    _remainder,
    _series,
    _series_by_code,
    _shear,
    _small_domain,
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
)

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


# --------------------------------------------------------------------------- bindings


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
