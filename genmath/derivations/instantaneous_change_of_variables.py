"""The instantaneous change of variables $\\frac{d}{dt}\\log p_t(x_t) = -\\nabla\\cdot v$, in
general from the continuity equation and for an affine field, where the divergence is
$\\operatorname{tr} A$; bound to `genmath.divergence` and `genmath.ode_log_likelihood`."""

import sympy as sp

from ._chain import Earlier
from ._engine import CITED, SYMBOLIC, Binding, Derivation, Step, Uniform
from ._registry import register

t = sp.Symbol("t", real=True)
x1, x2 = sp.symbols("x_1 x_2", real=True)
p = sp.Function("p", positive=True)(x1, x2, t)
v1 = sp.Function("v_1", real=True)(x1, x2, t)
v2 = sp.Function("v_2", real=True)(x1, x2, t)
_transport = v1 * sp.diff(p, x1) + v2 * sp.diff(p, x2)
_flux_divergence = sp.diff(p * v1, x1) + sp.diff(p * v2, x2)

# an affine field v = A x + c with a full, non-symmetric A
a11, a12, a21, a22, c1, c2 = sp.symbols("a_11 a_12 a_21 a_22 c_1 c_2", real=True)
_affine = {v1: a11 * x1 + a12 * x2 + c1, v2: a21 * x1 + a22 * x2 + c2}
MINUS_TRACE = -(a11 + a22)

register(
    Derivation(
        id="D-instantaneous-change-of-variables",
        title="Instantaneous change of variables: d/dt log p_t(x_t) = -div v",
        statement=(
            r"If $\dot x_t = v(x_t, t)$ and $p_t$ solves the continuity equation "
            r"$\partial_t p_t = -\nabla\cdot(p_t v)$, then along a trajectory "
            r"$\frac{d}{dt}\log p_t(x_t) = -\nabla\cdot v(x_t, t)$, hence "
            r"$\log p_0(x_0) = \log p_1(x_1) + \int_0^1 \nabla\cdot v(x_t, t)\,dt$ (Chen et al. "
            "2018). Shown in two dimensions; each coordinate contributes the same terms in $D$. "
            r"For an affine field $v = Ax + c$ the rate is $-\operatorname{tr}A$ (step 3, for a "
            r"full non-symmetric $A$), so $\log p_0(x_0) = \log p_1(x_1) + \operatorname{tr}A$: "
            "`divergence` and the integrated divergence of `ode_log_likelihood` are bound to it, "
            "exact and Hutchinson (with Rademacher probes, exact for a diagonal $A$)."
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
            Step(
                lhs=Earlier("D-instantaneous-change-of-variables", _affine, step=2),
                rhs=MINUS_TRACE,
                reason=(
                    r"An affine field $v = Ax + c$: $\nabla\cdot v = \operatorname{tr}A$ whatever "
                    "the off-diagonal entries, so the log-density changes at the constant rate "
                    r"$-\operatorname{tr}A$ along every trajectory (Liouville)."
                ),
            ),
        ],
        symbols=(x1, x2, t, a11, a12, a21, a22, c1, c2),
        references=("chen2018neural", "grathwohl2019ffjord"),
        code=("genmath.core.likelihood.ode_log_likelihood", "genmath.core.divergence.divergence"),
        tests=("tests/core/test_likelihood.py", "tests/core/test_divergence.py"),
    )
)


def _affine_field(points, diagonal):
    """Per-sample ``(A, c)`` of shapes ``(n, 2, 2)``, ``(n, 2)``: the diagonal from the points,
    fixed non-symmetric off-diagonal entries unless ``diagonal``."""
    import torch

    n = points[a11].shape[0]
    off = 0.0 if diagonal else 1.0
    A = torch.zeros(n, 2, 2, dtype=torch.float64)
    A[:, 0, 0], A[:, 1, 1] = points[a11], points[a22]
    A[:, 0, 1], A[:, 1, 0] = 0.7 * off, -1.3 * off
    c = torch.tensor([0.4, -0.2], dtype=torch.float64).expand(n, 2)
    return A, c


def _divergence_by_code(method):
    def evaluate(points):
        import torch

        from ..core.divergence import divergence

        A, c = _affine_field(points, diagonal=method == "hutchinson")
        x = torch.stack([torch.linspace(-1, 1, A.shape[0]), torch.linspace(2, -1, A.shape[0])], 1)
        x = x.to(torch.float64)
        field = lambda y: torch.einsum("bij,bj->bi", A, y) + c  # noqa: E731
        generator = torch.Generator().manual_seed(0)
        return -divergence(field, x, method, probes=2, generator=generator)

    return evaluate


def _ode_by_code(divergence):
    def evaluate(points):
        import torch

        from ..core.likelihood import ode_log_likelihood

        A, c = _affine_field(points, diagonal=divergence == "hutchinson")
        n = A.shape[0]
        x = torch.stack([torch.linspace(-1, 1, n), torch.linspace(0.5, -0.5, n)], 1).to(torch.float64)

        def velocity(y, time):
            return torch.einsum("bij,bj->bi", A, y) + c

        def prior(y):
            return -0.5 * (y**2).sum(-1)

        result = ode_log_likelihood(
            velocity,
            x,
            prior,
            divergence=divergence,
            method="rk4",
            options={"step_size": 0.25},
            generator=torch.Generator().manual_seed(0),
            return_result=True,
        )
        return -result.integrated_divergence, -(result.log_prob - result.prior_log_prob)

    return evaluate


_trace_domain = {a11: Uniform(-2, 2), a22: Uniform(-2, 2)}
for _method in ("exact", "hutchinson"):
    register(
        Binding(
            derivation="D-instantaneous-change-of-variables",
            code=("genmath.core.divergence.divergence",),
            expression=MINUS_TRACE,
            evaluate=_divergence_by_code(_method),
            domain=_trace_domain,
            samples=16,
            description=(
                f"minus divergence(A x + c, method={_method!r})"
                + (", Rademacher probes, diagonal A" if _method == "hutchinson" else ", non-symmetric A")
            ),
        )
    )
    register(
        Binding(
            derivation="D-instantaneous-change-of-variables",
            code=("genmath.core.likelihood.ode_log_likelihood",),
            expression=(MINUS_TRACE, MINUS_TRACE),
            evaluate=_ode_by_code(_method),
            domain=_trace_domain,
            samples=16,
            description=(
                f"ode_log_likelihood(A x + c, divergence={_method!r}): minus the integrated "
                "divergence, and minus log p_0 + log p_1(x_1)"
            ),
        )
    )
