"""Score matching: Hyvärinen's integration by parts, sliced and denoising score matching.

Every expectation over Gaussian variables is written as an unevaluated
`GaussianExpectation` over independent standard normals; sympy evaluates it exactly by the
moment rule $\\mathbb E[u^{k}] = (k-1)!!$ for even $k$ and $0$ for odd $k$, so each
closed form below is derived, not typed.
"""

import sympy as sp

from ._chain import as_written
from ._engine import CITED, Binding, Check, Derivation, LogUniform, Step, Uniform
from ._registry import register

__all__ = ["GaussianExpectation", "RademacherExpectation"]


class GaussianExpectation(sp.Function):
    r"""$\mathbb E[f(u_1, \dots, u_n)]$ for independent $u_i \sim \mathcal N(0, 1)$ and a
    polynomial $f$: ``GaussianExpectation(f, u_1, ..., u_n)``; ``doit()`` evaluates it."""

    @classmethod
    def eval(cls, *args):
        return None  # stay unevaluated until doit(), so pages show the expectation

    def doit(self, **hints):
        expr, *variables = self.args
        poly = sp.Poly(sp.expand(expr.doit(**hints)), *variables)
        total = sp.Integer(0)
        for powers, coeff in poly.terms():
            moment = sp.Integer(1)
            for k in powers:
                moment *= 0 if k % 2 else sp.factorial2(k - 1)
            total += coeff * moment
        return total

    def _latex(self, printer, exp=None):
        body = r"\mathbb{E}\left[" + printer._print(self.args[0]) + r"\right]"
        return body if exp is None else body + "^{" + printer._print(exp) + "}"


class RademacherExpectation(sp.Function):
    r"""$\mathbb E[f(r_1, \dots, r_n)]$ for independent Rademacher $r_i \in \{-1, 1\}$ and a
    polynomial $f$: ``RademacherExpectation(f, r_1, ..., r_n)``; ``doit()`` evaluates it by the
    moments $\mathbb E[r^k] = 1$ for even $k$ and $0$ for odd $k$."""

    @classmethod
    def eval(cls, *args):
        return None

    def doit(self, **hints):
        expr, *variables = self.args
        poly = sp.Poly(sp.expand(expr.doit(**hints)), *variables)
        return sp.Add(
            *(coeff for powers, coeff in poly.terms() if all(k % 2 == 0 for k in powers))
        )

    def _latex(self, printer, exp=None):
        body = r"\mathbb{E}_{\pm}\left[" + printer._print(self.args[0]) + r"\right]"
        return body if exp is None else body + "^{" + printer._print(exp) + "}"


E = GaussianExpectation
half = sp.Rational(1, 2)

x = sp.Symbol("x", real=True)
u = sp.Symbol("u", real=True)
a, b, m = sp.symbols("a b m", real=True)
S = sp.Symbol("S", positive=True)

# Data N(m, S) in 1-D, written as x = m + sqrt(S) u; linear score model s(x) = -a (x - b).
_x_data = m + sp.sqrt(S) * u
_model = -a * (_x_data - b)
_true_score = -(_x_data - m) / S
_explicit_integrand = half * (_model - _true_score) ** 2
_implicit_integrand = half * _model**2 - a  # 1/2 s^2 + s', s' = -a
_implicit_closed = half * a**2 * (S + (m - b) ** 2) - a

register(
    Derivation(
        id="D-hyvarinen-score-matching",
        title="Explicit score matching equals implicit score matching plus a constant",
        statement=(
            r"For a score model $s_\theta$ and data density $p$ with $p\,s_\theta \to 0$ at "
            r"infinity, $J_\mathrm{ESM} = \mathbb E_p[\tfrac12\|s_\theta - \nabla\log p\|^2]$ and "
            r"$J_\mathrm{ISM} = \mathbb E_p[\tfrac12\|s_\theta\|^2 + \operatorname{tr}\nabla s_\theta]$ "
            r"differ by $\tfrac12\mathbb E_p\|\nabla\log p\|^2$, which does not depend on $\theta$ "
            r"(Hyvärinen 2005, Theorem 1). Worked case: $p = \mathcal N(m, S)$ and "
            r"$s(x) = -a(x - b)$: $J_\mathrm{ESM} = \tfrac S2(a - 1/S)^2 + \tfrac12 a^2(m - b)^2$, "
            r"minimised at $a = 1/S = \Sigma^{-1}$, $b = m$. `explicit` and `implicit` are bound "
            "to the two integrands, `score_from_log_prob` and `score_from_energy` to the score."
        ),
        start=E(_explicit_integrand, u),
        steps=[
            Step(
                rhs=E(_implicit_integrand, u) + E(half * _true_score**2, u),
                reason=(
                    r"Expand the square; the cross term is integrated by parts: "
                    r"$\mathbb E_p[s\, \partial_x \log p] = \int s\, \partial_x p = "
                    r"-\mathbb E_p[\partial_x s]$ (boundary term zero), here $-\mathbb E[-a]$: "
                    r"$J_\mathrm{ISM}$ plus $\tfrac12\mathbb E(\partial_x\log p)^2$ (checked by the "
                    "moments of $u$)."
                ),
            ),
            Step(
                rhs=E(_implicit_integrand, u) + E(half * _true_score**2, u),
                reason=(
                    r"In general the cross term of $\tfrac12\|s - \nabla\log p\|^2$ becomes the trace "
                    r"term in each coordinate, which is the whole of the theorem."
                ),
                tag=CITED,
                theorem="Hyvärinen (2005), Theorem 1 (integration by parts in each coordinate)",
                reference="hyvarinen2005estimation",
            ),
            Step(
                rhs=_implicit_closed + 1 / (2 * S),
                reason=(
                    r"The moments of $u$: $J_\mathrm{ISM} = \tfrac12 a^2(S + (m - b)^2) - a$ and the "
                    r"constant $\tfrac12\mathbb E\|\nabla\log p\|^2 = \tfrac12\operatorname{tr}"
                    r"\Sigma^{-1} = 1/(2S)$."
                ),
            ),
            Step(
                rhs=S / 2 * (a - 1 / S) ** 2 + half * a**2 * (m - b) ** 2,
                reason=r"Complete the square in $a$.",
            ),
            Step(
                rhs=sp.Integer(0),
                relation=">=",
                reason=r"A sum of squares ($S > 0$), zero exactly at $a = 1/S$, $b = m$: the minimiser.",
                method=as_written,
            ),
        ],
        symbols=(a, b, m, S, u),
        references=("hyvarinen2005estimation",),
        code=(
            "genmath.core.score.explicit",
            "genmath.core.score.implicit",
            "genmath.core.score.score_from_log_prob",
            "genmath.core.score.score_from_energy",
        ),
        tests=("tests/core/test_score.py",),
    )
)

# Sliced score matching in two dimensions with a generic Jacobian J and score vector s.
v1, v2 = sp.symbols("v_1 v_2", real=True)
J = sp.Matrix(2, 2, sp.symbols("J_11 J_12 J_21 J_22", real=True))
s1, s2 = sp.symbols("s_1 s_2", real=True)
_v = sp.Matrix([v1, v2])
_s = sp.Matrix([s1, s2])
_vJv = (_v.T * J * _v)[0]
_vs = (_v.T * _s)[0]
SLICED = J.trace() + half * (s1**2 + s2**2)

register(
    Derivation(
        id="D-sliced-score-matching",
        title="Sliced score matching equals implicit score matching in expectation",
        statement=(
            r"For projections with $\mathbb E[vv^\top] = I$, "
            r"$\mathbb E_v[v^\top \nabla s\, v + \tfrac12 (v^\top s)^2] = "
            r"\operatorname{tr}\nabla s + \tfrac12\|s\|^2$ at every $x$ (Song et al. 2020), so "
            r"sliced score matching is an unbiased estimate of implicit score matching; the "
            r"variance-reduced form replaces $\tfrac12(v^\top s)^2$ by its mean "
            r"$\tfrac12\|s\|^2$ and has the same mean. Shown for standard Gaussian $v$ in "
            r"$\mathbb R^2$ with a generic, non-symmetric Jacobian; for Rademacher $v$ and a "
            r"diagonal Jacobian $v^\top\nabla s\,v = \operatorname{tr}\nabla s$ exactly, which is "
            "where `sliced` is bound at each draw."
        ),
        start=E(_vJv + half * _vs**2, v1, v2),
        steps=[
            Step(
                rhs=E(_vJv, v1, v2) + half * (s1**2 + s2**2),
                reason=(
                    r"$\mathbb E[(v^\top s)^2] = s^\top\mathbb E[vv^\top]s = \|s\|^2$: the mean of the "
                    "variance-reduced objective."
                ),
            ),
            Step(
                rhs=SLICED,
                reason=(
                    r"$\mathbb E[v_i v_j] = \delta_{ij}$ picks the diagonal of $J$ (Hutchinson's "
                    "estimate of the trace): the implicit objective."
                ),
            ),
        ],
        symbols=(*J, s1, s2),
        references=("song2020sliced", "hutchinson1989stochastic"),
        code=("genmath.core.score.sliced", "genmath.core.score.implicit"),
        tests=("tests/core/test_score.py",),
    )
)


def _check_implicit_linear() -> float:
    """Per-sample implicit score matching of a linear model against its closed form."""
    import numpy as np
    import torch

    from ..core.score import implicit

    g = torch.Generator().manual_seed(0)
    A = torch.randn(4, 4, generator=g, dtype=torch.float64) + 2 * torch.eye(4, dtype=torch.float64)
    b = torch.randn(4, generator=g, dtype=torch.float64)
    x = torch.randn(16, 4, generator=g, dtype=torch.float64)
    value = implicit(lambda y: -(y - b) @ A.T, x, reduction="none")
    s = -(x.numpy() - b.numpy()) @ A.numpy().T
    expected = 0.5 * (s**2).sum(1) - np.trace(A.numpy())
    return float(np.abs(value.detach().numpy() - expected).max())


register(
    Check(
        id="C-implicit-score-matching-linear",
        title="Implicit score matching of a linear score model equals its closed form",
        function=_check_implicit_linear,
        tolerance=1e-10,
        code=("genmath.core.score.implicit",),
        tests=("tests/core/test_score.py",),
        derivation="D-hyvarinen-score-matching",
    )
)

# --------------------------------------------------------------------------- bindings

_sm_domain = {
    a: Uniform(-3, 3),
    b: Uniform(-3, 3),
    m: Uniform(-3, 3),
    S: LogUniform(1e-2, 1e2, ends=True),
    u: Uniform(-3, 3),
}


def _score_matching_by_code(which):
    """`explicit` / `implicit` per sample on two coordinates: the worked case in the first,
    and in the second a model that is exact (explicit) or zero (implicit), which adds nothing
    to a sum over coordinates but would halve a mean."""

    def evaluate(points):
        import torch

        from ..core.score import explicit, implicit, score_from_energy, score_from_log_prob

        x_point = points[m] + points[S].sqrt() * points[u]
        x = torch.stack([x_point, torch.full_like(x_point, 0.4)], 1)

        def model(y):
            first = -points[a] * (y[:, 0] - points[b])
            second = -(y[:, 1] - 0.4) / 2.0 if which == "explicit" else 0.0 * y[:, 1]
            return torch.stack([first, second], 1)

        if which == "implicit":
            return implicit(model, x, reduction="none")
        if which == "explicit":
            def log_density(y):
                return -((y[:, 0] - points[m]) ** 2) / (2 * points[S]) - (y[:, 1] - 0.4) ** 2 / 4

            target = score_from_log_prob(log_density)
        else:
            def energy(y):
                return (y[:, 0] - points[m]) ** 2 / (2 * points[S]) + (y[:, 1] - 0.4) ** 2 / 4

            target = score_from_energy(energy)
        return explicit(model, x, target, reduction="none")

    return evaluate


for _which, _expression, _code in (
    ("explicit", _explicit_integrand, ("genmath.core.score.explicit", "genmath.core.score.score_from_log_prob")),
    ("implicit", _implicit_integrand, ("genmath.core.score.implicit",)),
    ("energy", _explicit_integrand, ("genmath.core.score.score_from_energy",)),
):
    register(
        Binding(
            derivation="D-hyvarinen-score-matching",
            code=_code,
            expression=_expression,
            evaluate=_score_matching_by_code(_which),
            domain={k: v for k, v in _sm_domain.items() if k in sp.sympify(_expression).free_symbols},
            description=(
                f"{_which}: the per-sample value at x = m + sqrt(S) u"
                + (" (true score by score_from_energy)" if _which == "energy" else "")
            ),
        )
    )


def _sliced_by_code(mode):
    def evaluate(points):
        import torch

        from ..core.score import implicit, sliced

        n = points[s1].shape[0]
        x = torch.zeros(n, 2, dtype=torch.float64)
        jac = torch.stack(
            [
                torch.stack([points[J[0, 0]], points.get(J[0, 1], torch.zeros(n, dtype=torch.float64))], -1),
                torch.stack([points.get(J[1, 0], torch.zeros(n, dtype=torch.float64)), points[J[1, 1]]], -1),
            ],
            1,
        )
        offset = torch.stack([points[s1], points.get(s2, torch.zeros(n, dtype=torch.float64))], 1)

        def model(y):  # s(y) = s + J (y - x): value s and Jacobian J at x
            return offset + torch.einsum("bij,bj->bi", jac, y - x)

        if mode == "implicit":
            return implicit(model, x, reduction="none")
        generator = torch.Generator().manual_seed(0)
        return sliced(
            model,
            x,
            n_projections=3,
            generator=generator,
            variance_reduction=(mode == "vr"),
            projection="rademacher",
            reduction="none",
        )

    return evaluate


_diagonal = {J[0, 1]: 0, J[1, 0]: 0}
for _mode, _where in (("implicit", {}), ("vr", _diagonal), ("plain", {**_diagonal, s2: 0})):
    register(
        Binding(
            derivation="D-sliced-score-matching",
            code=("genmath.core.score." + ("implicit" if _mode == "implicit" else "sliced"),),
            expression=SLICED,
            where=_where,
            evaluate=_sliced_by_code(_mode),
            domain={
                k: Uniform(-3, 3)
                for k in SLICED.subs(_where, simultaneous=True).free_symbols
            },
            description={
                "implicit": "implicit at a non-symmetric Jacobian: tr J + |s|^2 / 2",
                "vr": "sliced(variance_reduction=True), Rademacher, diagonal Jacobian: exact per draw",
                "plain": "sliced, Rademacher, diagonal Jacobian and s along one axis: exact per draw",
            }[_mode],
        )
    )
