"""Continuous normalizing flows, bound to `genmath.families.cnf`: the standard-normal prior
and RNODE's regularisers (kinetic energy and Jacobian Frobenius norm along the trajectory).

`CNF.log_prob` and FFJORD's loss are core's `ode_log_likelihood` (the instantaneous change of
variables, D-instantaneous-change-of-variables, bound by core's bindings) composed with this
prior; they are declared plumbing. The regularisers are integrated by the trapezoidal rule on
the solver's grid: for a velocity whose trajectories RK4 follows exactly, the code's value is
the trapezoidal sum of the exact integrand, and Euler–Maclaurin gives its gap to the integral.
"""

import sympy as sp

from ._engine import NUMERIC, Binding, Derivation, Integers, Step, Uniform
from ._gaussian import log_normal
from ._registry import register

_CNF = "genmath.families.cnf"

t = sp.Symbol("t", real=True)
kappa, c1, c2, p1, p2, z1, z2 = sp.symbols("kappa c_1 c_2 p_1 p_2 z_1 z_2", real=True)
i = sp.Symbol("i", integer=True, nonnegative=True)
n = sp.Symbol("n", integer=True, positive=True)
beta = sp.Symbol("beta", integer=True)  # a Rademacher probe's first entry is (-1)^beta

_A = sp.Matrix([[0, kappa], [0, 0]])  # nilpotent: A^2 = 0
_c = sp.Matrix([c1, c2])
_x0 = sp.Matrix([p1, p2])
_path = _x0 + t * _A * _x0 + t**2 / 2 * _c + t**3 / 6 * _A * _c  # solves dx/dt = A x + t c


def _velocity(point, time):
    return _A * point + time * _c


_speed = (_velocity(_path, t).T * _velocity(_path, t))[0]  # |v(x_t, t)|^2, a quartic in t


def _at(expr, time):
    return expr.subs(t, time)


_trapezoid = sp.Sum((_at(_speed, i / n) + _at(_speed, (i + 1) / n)) / (2 * n), (i, 0, n - 1))
_euler_maclaurin = (
    sp.integrate(_speed, (t, 0, 1))
    + (_at(sp.diff(_speed, t), 1) - _at(sp.diff(_speed, t), 0)) / (12 * n**2)
    - (_at(sp.diff(_speed, t, 3), 1) - _at(sp.diff(_speed, t, 3), 0)) / (720 * n**4)
)
_probe = sp.Matrix([(-1) ** beta, 0])  # only the first entry of a probe meets A
_prior = -(z1**2 + z2**2) / 2 - sp.log(2 * sp.pi)

register(
    Derivation(
        id="D-rnode-regularizers",
        title="CNF: the standard-normal prior, and RNODE's regularisers on a uniform grid",
        statement=(
            r"The CNF's prior is $\log\mathcal N(z; 0, I) = -\|z\|^2/2 - (d/2)\log 2\pi$. "
            r"RNODE's kinetic energy $\int_0^1\|v(x_t, t)\|^2dt$ and Jacobian Frobenius norm "
            r"$\int_0^1\|\nabla_x v\|_F^2dt$ (Finlay et al. 2020) are integrated by "
            r"`CNF.regularizers` with the trapezoidal rule on the $n$-step grid of the solver, "
            r"the Frobenius norm by $\|\varepsilon^\top\nabla_x v\|^2$, unbiased for "
            r"$\mathbb E\varepsilon\varepsilon^\top = I$. For $v(x, t) = Ax + tc$ with "
            r"$A = \begin{pmatrix}0 & \kappa\\ 0 & 0\end{pmatrix}$ ($A^2 = 0$) the trajectory is "
            r"the cubic $x_t = x_0 + tAx_0 + \tfrac{t^2}{2}c + \tfrac{t^3}{6}Ac$, which RK4 "
            r"follows exactly; the trapezoidal sum of the quartic $\|v(x_t, t)\|^2$ then differs "
            r"from its integral by the Euler–Maclaurin terms $h^2(f'(1) - f'(0))/12 - "
            r"h^4(f'''(1) - f'''(0))/720$, $h = 1/n$, exactly; and $\|\varepsilon^\top A\|^2 = "
            r"\kappa^2 = \|A\|_F^2$ for every Rademacher probe."
        ),
        start=sp.ImmutableMatrix(
            [
                log_normal(z1, 0, 1) + log_normal(z2, 0, 1),
                *(sp.diff(_path, t) - _velocity(_path, t)),
                _trapezoid,
                (_probe.T * _A * _A.T * _probe)[0],
            ]
        ),
        steps=[
            Step(
                rhs=sp.ImmutableMatrix([_prior, 0, 0, _euler_maclaurin, kappa**2]),
                reason=(
                    r"The Gaussian log-densities add; $\dot x_t = Ax_0 + tc + \tfrac{t^2}{2}Ac = "
                    r"Ax_t + tc$ since $A^2 = 0$; Euler–Maclaurin is exact for polynomials of "
                    r"degree at most 5; $\varepsilon^\top A = (0, \pm\kappa)$ (compared at random "
                    "coefficients and numbers of steps; the sum over the grid is taken term by term)."
                ),
                tag=NUMERIC,
            ),
        ],
        symbols=(z1, z2, kappa, c1, c2, p1, p2, n, beta),
        domain={n: Integers(1, 12), beta: Integers(0, 1)},
        references=("chen2018neural", "grathwohl2019ffjord", "finlay2020how"),
        code=(f"{_CNF}.CNF.prior_log_prob", f"{_CNF}.CNF.regularizers"),
        tests=("tests/families/test_cnf.py",),
    )
)


class _NilpotentVelocity:
    def __init__(self, k, c):
        import torch

        zero = torch.zeros((), dtype=torch.float64)
        self.matrix = torch.stack([torch.stack([zero, k]), torch.stack([zero, zero])])
        self.shift = c

    def __call__(self, x, time):
        return x @ self.matrix.T + time * self.shift


def _regularizers_by_code(points):
    import torch

    from ..families.cnf import CNF

    rows = []
    for j in range(len(points[kappa])):
        velocity = _NilpotentVelocity(points[kappa][j], torch.stack([points[c1][j], points[c2][j]]))
        cnf = CNF(2, velocity=velocity).double()
        # x_0's first coordinate never meets the nilpotent A: the kinetic energy does not
        # sample it, any value will do
        first = points[p1][j] if p1 in points else torch.tensor(0.4, dtype=torch.float64)
        start = torch.stack([first, points[p2][j]])[None].repeat(2, 1)
        with torch.no_grad():
            kinetic, frobenius = cnf.regularizers(
                start,
                steps=int(points[n][j]),
                method="rk4",
                probes=1 + j % 2,
                noise="rademacher",
                generator=torch.Generator().manual_seed(j),
            )
        rows.append(torch.stack([kinetic[0], frobenius[1]]))
    return tuple(torch.stack(rows).T)


def _prior_by_code(points):
    import torch

    from ..families.cnf import CNF

    return CNF(2).double().prior_log_prob(torch.stack([points[z1], points[z2]], 1))


_domain = {s: Uniform(-2, 2) for s in (kappa, c1, c2, p1, p2)}
register(
    Binding(
        derivation="D-rnode-regularizers",
        code=(f"{_CNF}.CNF.regularizers",),
        expression=(_euler_maclaurin, kappa**2),
        evaluate=_regularizers_by_code,
        domain={**_domain, n: Integers(1, 12)},
        samples=12,
        description="CNF.regularizers with RK4 on n steps: kinetic energy and Frobenius norm",
    )
)
register(
    Binding(
        derivation="D-rnode-regularizers",
        code=(f"{_CNF}.CNF.prior_log_prob",),
        expression=_prior,
        evaluate=_prior_by_code,
        domain={z1: Uniform(-6, 6), z2: Uniform(-6, 6)},
        description="CNF.prior_log_prob, the standard-normal log-density",
    )
)

# --------------------------------------------------------------------------- FFJORD's loss

lam_k, lam_j = sp.symbols("lambda_K lambda_J", nonnegative=True)
_ROW_SHIFT = (sp.Rational(1, 2), -1)  # the second row of the batch: x_0 + (1/2, -1)
_rows = [{}, {p1: p1 + _ROW_SHIFT[0], p2: p2 + _ROW_SHIFT[1]}]


def _row(expr, shift):
    return expr.subs(shift, simultaneous=True) if shift else expr


_end = _path.subs(t, 1)
_divergence_integral = sp.Integral(_A.trace(), (t, 0, 1))
_log_density = [_row(log_normal(_end[0], 0, 1) + log_normal(_end[1], 0, 1), r) for r in _rows]
_loss = (
    -sum(_row(_prior.subs({z1: _end[0], z2: _end[1]}), r) for r in _rows) / 2
    + lam_k * sum(_row(_euler_maclaurin, r) for r in _rows) / 2
    + lam_j * kappa**2
)

register(
    Derivation(
        id="D-ffjord-loss",
        title="FFJORD's loss: minus the mean log-likelihood plus RNODE's weighted regularisers",
        statement=(
            r"`ffjord_loss` is $-\frac1B\sum_b\log p_0(x_b) + \lambda_K\frac1B\sum_b K_b + "
            r"\lambda_J\frac1B\sum_b F_b$, with $\log p_0(x_0) = \log\mathcal N(x_1; 0, I) + "
            r"\int_0^1\nabla\cdot v(x_t, t)\,dt$ (D-instantaneous-change-of-variables, by "
            r"`CNF.log_prob`) and the kinetic energy $K$ and Frobenius norm $F$ of "
            r"D-rnode-regularizers. Worked out for $B = 2$ rows through the nilpotent field "
            r"$v = Ax + tc$ of D-rnode-regularizers: $\nabla\cdot v = \operatorname{tr}A = 0$, "
            r"so $\log p_0(x_0) = \log\mathcal N(x_1; 0, I)$ at the end $x_1$ of the cubic "
            r"trajectory; $K_b$ is the trapezoidal sum (Euler–Maclaurin) and $F_b = \kappa^2$ "
            "for Rademacher probes."
        ),
        start=-sum(ld + _divergence_integral for ld in _log_density) / 2
        + lam_k * sum(_row(_trapezoid, r) for r in _rows) / 2
        + lam_j * sum(_row((_probe.T * _A * _A.T * _probe)[0], r) for r in _rows) / 2,
        steps=[
            Step(
                rhs=_loss,
                reason=(
                    r"$\operatorname{tr}A = 0$; the Gaussian log-densities of the two ends; "
                    r"the trapezoidal sums and the Rademacher Frobenius estimates of "
                    "D-rnode-regularizers (compared at random coefficients, weights and grids)."
                ),
                tag=NUMERIC,
            ),
        ],
        symbols=(kappa, c1, c2, p1, p2, n, beta, lam_k, lam_j),
        domain={n: Integers(1, 12), beta: Integers(0, 1)},
        references=("grathwohl2019ffjord", "finlay2020how"),
        code=(f"{_CNF}.ffjord_loss",),
        tests=("tests/families/test_cnf.py",),
    )
)


def _ffjord_loss_by_code(points):
    import torch

    from ..families.cnf import CNF, ffjord_loss

    values = []
    for j in range(len(points[kappa])):
        velocity = _NilpotentVelocity(points[kappa][j], torch.stack([points[c1][j], points[c2][j]]))
        cnf = CNF(2, velocity=velocity).double()
        start = torch.stack([points[p1][j], points[p2][j]])
        shift = torch.tensor([float(v) for v in _ROW_SHIFT], dtype=torch.float64)
        x = torch.stack([start, start + shift])
        with torch.no_grad():
            loss = ffjord_loss(
                cnf,
                x,
                divergence="exact",
                kinetic=float(points[lam_k][j]),
                jacobian=float(points[lam_j][j]),
                regularizer_steps=int(points[n][j]),
                generator=torch.Generator().manual_seed(j),
                method="rk4",
                options={"step_size": 0.25},
                noise="rademacher",
            )
        values.append(loss)
    return torch.stack(values)


register(
    Binding(
        derivation="D-ffjord-loss",
        code=(f"{_CNF}.ffjord_loss",),
        expression=_loss,
        evaluate=_ffjord_loss_by_code,
        domain={**_domain, n: Integers(1, 12), lam_k: Uniform(0, 4), lam_j: Uniform(0, 4)},
        samples=12,
        description="ffjord_loss (exact divergence, RK4) on a batch of two, both regularisers weighted",
    )
)
