r"""Exponential Adams weights: the coefficients of `sample_ode`'s ``"dpm++3m"`` and ``"unipc"``.

In $\lambda = \log(\alpha/\sigma)$ the probability-flow ODE is solved exactly by
$x_{k+1} = \frac{\sigma_{k+1}}{\sigma_k}x_k + \alpha_{k+1}\int_0^h e^{-(h-u)}\hat x_0\,du$
(D-dpm-solver-pp-2m's first line). An Adams-type method replaces $\hat x_0(\lambda_k + u)$ by
the polynomial through denoiser outputs $D_j$ at offsets $u_j$ and integrates it exactly;
here the weights of two and three nodes are derived, and bound to the one function that
computes them for every node set (`genmath.core._multistep.exponential_weights`, which solves
the moment equations instead of writing the Lagrange forms out).
"""

from __future__ import annotations

import sympy as sp

from ._engine import SYMBOLIC, Binding, Derivation, From, Step, Uniform
from ._registry import register

u = sp.Symbol("u", real=True)
h = sp.Symbol("h", positive=True)
u0, u1, u2 = sp.symbols("u_0 u_1 u_2", real=True)
d0, d1, d2 = sp.symbols("D_0 D_1 D_2", real=True)
a, b = sp.symbols("a b", positive=True)

# psi_k(h) = int_0^h e^{-(h-u)} u^k / k! du, written out (not integrated by the code)
psi0 = 1 - sp.exp(-h)
psi1 = h - 1 + sp.exp(-h)
psi2 = h**2 / 2 - h + 1 - sp.exp(-h)
_kernel = sp.exp(-(h - u))


def _integrated_interpolant(nodes, values):
    r"""$\int_0^h e^{-(h-u)} p(u)\,du$ for the Lagrange interpolant $p$ of ``values`` at
    ``nodes``, by linearity one basis polynomial per value (its node differences outside the
    integral, so the integrand is a polynomial times the kernel)."""
    total = 0
    for j, (node, value) in enumerate(zip(nodes, values, strict=True)):
        numerator, denominator = 1, 1
        for i, other in enumerate(nodes):
            if i != j:
                numerator *= u - other
                denominator *= node - other
        total += value / denominator * sp.Integral(_kernel * sp.expand(numerator), (u, 0, h))
    return total


# --- two nodes -----------------------------------------------------------------------------
w2 = (
    (psi1 - u1 * psi0) / (u0 - u1),
    (psi1 - u0 * psi0) / (u1 - u0),
)

register(
    Derivation(
        id="D-exponential-adams-2",
        title="Exponential Adams weights of two nodes",
        statement=(
            r"The line through denoiser outputs $D_0, D_1$ at $\lambda$-offsets $u_0 \ne u_1$, "
            r"integrated against $e^{-(h-u)}$ over the step $[0, h]$, is $w_0 D_0 + w_1 D_1$ with "
            r"$w_j = (\psi_1 - u_{1-j}\psi_0)/(u_j - u_{1-j})$, $\psi_0 = 1 - e^{-h}$, "
            r"$\psi_1 = h - 1 + e^{-h}$. With nodes $(0, -h_{k-1})$ it is the exact-weight "
            r"second-order predictor of `unipc`; the step is then "
            r"$x_{k+1} = \tfrac{\sigma_{k+1}}{\sigma_k}x_k + \alpha_{k+1}(w_0 D_0 + w_1 D_1)$."
        ),
        start=_integrated_interpolant((u0, u1), (d0, d1)),
        steps=[
            Step(
                rhs=d0 * w2[0] + d1 * w2[1],
                reason=(
                    r"$\int_0^h e^{-(h-u)}\,du = \psi_0$ and $\int_0^h e^{-(h-u)}u\,du = \psi_1$ "
                    r"(integration by parts), so each basis integral is $(\psi_1 - u_i\psi_0)$ "
                    r"over the difference of the nodes."
                ),
                tag=SYMBOLIC,
            ),
        ],
        symbols=(u, h, u0, u1, d0, d1),
        references=("lu2022dpmpp", "zhao2023unipc"),
        code=("genmath.core.dynamics.sample_ode",),
        tests=("tests/core/test_samplers.py",),
    )
)

# --- three nodes ---------------------------------------------------------------------------
_nodes3 = (u0, u1, u2)


def _weight3(j):
    others = [n for i, n in enumerate(_nodes3) if i != j]
    denominator = (_nodes3[j] - others[0]) * (_nodes3[j] - others[1])
    return (2 * psi2 - (others[0] + others[1]) * psi1 + others[0] * others[1] * psi0) / denominator


w3 = tuple(_weight3(j) for j in range(3))
# Lu et al.'s divided differences at nodes (0, -a, -(a + b)), r0 = a/h, r1 = b/h
_r0, _r1 = a / h, b / h
_d1_0, _d1_1 = (d0 - d1) / _r0, (d1 - d2) / _r1
lu_d1 = _d1_0 + _r0 / (_r0 + _r1) * (_d1_0 - _d1_1)
lu_d2 = (_d1_0 - _d1_1) / (_r0 + _r1)

register(
    Derivation(
        id="D-exponential-adams-3",
        title="Exponential Adams weights of three nodes (dpm++3m, the unipc corrector)",
        statement=(
            r"The quadratic through $D_0, D_1, D_2$ at distinct offsets $u_0, u_1, u_2$, "
            r"integrated against $e^{-(h-u)}$ over $[0, h]$, is $\sum_j w_j D_j$ with "
            r"$w_j = (2\psi_2 - s_j\psi_1 + p_j\psi_0)/\prod_{i \ne j}(u_j - u_i)$, $s_j$ and "
            r"$p_j$ the sum and product of the other two nodes, "
            r"$\psi_2 = h^2/2 - h + 1 - e^{-h}$. Nodes $(0, -a, -(a+b))$ (the last three "
            r"steps) give `dpm++3m`, third order; nodes $(h, 0, -a)$ give `unipc`'s corrector. "
            r"In the divided differences $D_1', D_2'$ of Lu et al. (2022) the same update is "
            r"$\psi_0 D_0 + (\psi_1/h) D_1' + (2\psi_2/h^2) D_2'$; their DPM-Solver++(3M) (and "
            r"diffusers') weights $D_2'$ by $\psi_2/h^2$, half of the interpolant's, which leaves "
            r"a local error $\psi_2 D_2'/h^2 = O(h^3)$: second order, not third (measured in "
            r"benchmarks/bench_samplers.py)."
        ),
        start=_integrated_interpolant(_nodes3, (d0, d1, d2)),
        steps=[
            Step(
                rhs=d0 * w3[0] + d1 * w3[1] + d2 * w3[2],
                reason=(
                    r"Each basis polynomial $(u - u_i)(u - u_l)/\prod$ "
                    r"integrates against the kernel through the moments $\psi_0$, $\psi_1$ and "
                    r"$\int_0^h e^{-(h-u)}u^2\,du = 2\psi_2$."
                ),
                tag=SYMBOLIC,
            ),
        ],
        symbols=(u, h, u0, u1, u2, d0, d1, d2),
        references=("lu2022dpmpp", "zhao2023unipc"),
        code=("genmath.core.dynamics.sample_ode",),
        tests=("tests/core/test_samplers.py",),
    )
)

register(
    Derivation(
        id="D-dpm-solver-pp-3m-exact-weights",
        title="DPM-Solver++(3M) in divided differences: the quadratic term carries 2 psi_2 / h^2",
        statement=(
            r"At the multistep nodes $(0, -a, -(a+b))$ (the steps $a = h_{k-1}$, $b = h_{k-2}$ "
            r"before the current $h$) the three-node weights of D-exponential-adams-3 regroup "
            r"into Lu et al.'s divided differences $D_1' = D_{1,0} + \frac{r_0}{r_0 + r_1}"
            r"(D_{1,0} - D_{1,1})$, $D_2' = (D_{1,0} - D_{1,1})/(r_0 + r_1)$, "
            r"$D_{1,0} = (D_0 - D_1)/r_0$, $D_{1,1} = (D_1 - D_2)/r_1$, $r_0 = a/h$, $r_1 = b/h$: "
            r"$\sum_j w_j D_j = \psi_0 D_0 + (\psi_1/h)D_1' + (2\psi_2/h^2)D_2'$. Since "
            r"$D_1' \approx h\hat x_0'$ and $D_2' \approx h^2\hat x_0''/2$, the quadratic term "
            r"needs $2\psi_2/h^2$; DPM-Solver++(3M) as published and in diffusers uses "
            r"$\psi_2/h^2$, which leaves a local error $\psi_2 D_2'/h^2 = O(h^3)$ — second "
            r"order, not third (measured in benchmarks/bench_samplers.py)."
        ),
        start=From("D-exponential-adams-3", {u0: 0, u1: -a, u2: -a - b}),
        steps=[
            Step(
                rhs=psi0 * d0 + psi1 / h * lu_d1 + 2 * psi2 / h**2 * lu_d2,
                reason=(
                    r"Substitute the nodes into the three-node weights and collect the values "
                    r"into the divided differences; the coefficients match term by term."
                ),
                tag=SYMBOLIC,
            ),
        ],
        symbols=(h, d0, d1, d2, a, b),
        references=("lu2022dpmpp",),
        code=("genmath.core.dynamics.sample_ode",),
        tests=("tests/core/test_samplers.py",),
    )
)


# --- bindings: the code's weights at random steps and node spacings ------------------------
def _weights_by_code(node_lists):
    def evaluate(points):
        import torch

        from genmath.core._multistep import exponential_weights

        rows = []
        for i in range(points[h].shape[0]):
            nodes = [float(n[i]) for n in node_lists(points)]
            rows.append(exponential_weights(float(points[h][i]), nodes))
        table = torch.tensor(rows, dtype=torch.float64)
        return tuple(table[:, j] for j in range(table.shape[1]))

    return evaluate


_step = {h: Uniform(0.02, 4.0), a: Uniform(0.02, 4.0), b: Uniform(0.02, 4.0)}

register(
    Binding(
        derivation="D-exponential-adams-2",
        code=("genmath.core._multistep.exponential_weights",),
        expression=w2,
        where={u0: 0, u1: -a},
        evaluate=_weights_by_code(lambda p: (p[h] * 0, -p[a])),
        domain={h: _step[h], a: _step[a]},
        description="predictor weights of unipc: nodes 0 and -a, steps h and a up to 4",
    )
)
register(
    Binding(
        derivation="D-exponential-adams-3",
        code=("genmath.core._multistep.exponential_weights",),
        expression=w3,
        where={u0: 0, u1: -a, u2: -a - b},
        evaluate=_weights_by_code(lambda p: (p[h] * 0, -p[a], -p[a] - p[b])),
        domain=_step,
        description="dpm++3m weights: nodes 0, -a, -(a + b)",
    )
)


def _update_by_code(points):
    from genmath.core._multistep import exponential_weights

    total = []
    for i in range(points[h].shape[0]):
        step, first, second = (float(points[s][i]) for s in (h, a, b))
        weights = exponential_weights(step, [0.0, -first, -first - second])
        values = (float(points[d][i]) for d in (d0, d1, d2))
        total.append(sum(w * v for w, v in zip(weights, values, strict=True)))
    import torch

    return torch.tensor(total, dtype=torch.float64)


register(
    Binding(
        derivation="D-dpm-solver-pp-3m-exact-weights",
        code=("genmath.core._multistep.exponential_weights",),
        expression=psi0 * d0 + psi1 / h * lu_d1 + 2 * psi2 / h**2 * lu_d2,
        evaluate=_update_by_code,
        domain={**_step, d0: Uniform(-3, 3), d1: Uniform(-3, 3), d2: Uniform(-3, 3)},
        description="the dpm++3m update of three denoiser values in Lu et al.'s variables",
    )
)
register(
    Binding(
        derivation="D-exponential-adams-3",
        code=("genmath.core._multistep.exponential_weights",),
        expression=w3,
        where={u0: h, u1: 0, u2: -a},
        evaluate=_weights_by_code(lambda p: (p[h], p[h] * 0, -p[a])),
        domain={h: _step[h], a: _step[a]},
        description="unipc corrector weights: nodes h, 0, -a",
    )
)


# --- bindings: each step's nodes, as sample_ode's plan takes them from the grid ------------
def _plan_by_code(method, grid, step, part, lower_order_final=0):
    """The weights `multistep_plan` gives step ``step`` of the half-log-SNR grid
    ``grid(h, a, b)`` (increasing: from noise towards data), its last ``lower_order_final``
    steps predicting from the current output alone."""

    def evaluate(points):
        import torch

        from genmath.core._multistep import multistep_plan

        rows = []
        for i in range(points[h].shape[0]):
            # (a symbol the weights do not depend on is not drawn: a unit step stands in)
            values = (float(points[s][i]) if s in points else 1.0 for s in (h, a, b))
            rows.append(multistep_plan(method, grid(*values), lower_order_final)[step][part])
        table = torch.tensor(rows, dtype=torch.float64)
        return tuple(table[:, j] for j in range(table.shape[1]))

    return evaluate


_plan_code = ("genmath.core._multistep.multistep_plan", "genmath.core._multistep.psi")

register(
    Binding(
        derivation="D-exponential-adams-3",
        code=_plan_code,
        expression=w3,
        where={u0: 0, u1: -a, u2: -a - b},
        # steps b, a, h: the third step has the two before it as nodes 0, -a, -(a + b)
        evaluate=_plan_by_code(
            "dpm++3m", lambda h_, a_, b_: [0.0, b_, a_ + b_, a_ + b_ + h_], 2, "predictor"
        ),
        domain=_step,
        description="dpm++3m's plan on a grid of steps b, a, h: the third step's weights",
    )
)
register(
    Binding(
        derivation="D-exponential-adams-2",
        code=_plan_code,
        expression=w2,
        where={u0: 0, u1: -a},
        evaluate=_plan_by_code(
            "unipc", lambda h_, a_, b_: [0.0, a_, a_ + h_, a_ + h_ + b_], 1, "predictor"
        ),
        domain={h: _step[h], a: _step[a]},
        description="unipc's plan on a grid of steps a, h, b: the second step's predictor",
    )
)
register(
    Binding(
        derivation="D-exponential-adams-3",
        code=_plan_code,
        expression=w3,
        where={u0: h, u1: 0, u2: -a},
        evaluate=_plan_by_code(
            "unipc", lambda h_, a_, b_: [0.0, a_, a_ + h_, a_ + h_ + b_], 1, "corrector"
        ),
        domain={h: _step[h], a: _step[a]},
        description="unipc's plan on a grid of steps a, h, b: the second step's corrector (nodes h, 0, -a)",
    )
)

# the lower-order final steps (sample_ode below 15 steps): the first step's node sets, one
# node for the predictor (the weight psi_0, DDIM's) and nodes (h, 0) for unipc's corrector
register(
    Binding(
        derivation="D-exponential-adams-2",
        code=_plan_code,
        expression=(psi0,),
        evaluate=_plan_by_code(
            "dpm++3m", lambda h_, a_, b_: [0.0, a_, a_ + b_, a_ + b_ + h_], 2, "predictor", 2
        ),
        domain={h: _step[h], a: _step[a], b: _step[b]},
        description="dpm++3m's plan, last two steps lowered: the last step's one weight psi_0",
    )
)
register(
    Binding(
        derivation="D-exponential-adams-2",
        code=_plan_code,
        expression=w2,
        where={u0: h, u1: 0},
        evaluate=_plan_by_code(
            "unipc", lambda h_, a_, b_: [0.0, a_, a_ + h_, a_ + h_ + b_], 1, "corrector", 2
        ),
        domain={h: _step[h], a: _step[a]},
        description=(
            "unipc's plan, last two steps lowered: the second-to-last step's corrector has the "
            "nodes h, 0 (not h, 0, -a)"
        ),
    )
)

# --- bindings: unipc's steps as the integrator runs them -----------------------------------
# The weights above are bound where they are computed; these bind the loop that applies them
# (genmath.core._solvers._integrate_adams): which outputs it weights, at which point and time
# the corrector evaluates the model, the state and data coefficients. A time-dependent model
# on a non-uniform grid tells the corrector's time t_{k+1} from t_k; a state-dependent model
# tells the predicted point from the current state.
tau0, tau1, tau2 = sp.symbols("tau_0 tau_1 tau_2", positive=True)
kappa, x_start = sp.symbols("kappa x_start", real=True)
sigma_ratio, alpha_next = sp.symbols("s_1 alpha_1", positive=True)


def _model_of_time(t):
    """A denoiser output that depends on time only (sympy or torch)."""
    return (t * 3).sin() + t**2 if not isinstance(t, sp.Basic) else sp.sin(3 * t) + t**2


def _unipc_run(grid, alpha, sigma, model, x):
    import torch

    from genmath.core._solvers import CountedField, integrate_exponential

    field = CountedField(model, "denoiser")
    as64 = lambda v: torch.tensor(v, dtype=torch.float64)  # noqa: E731
    _, trajectory = integrate_exponential(
        "unipc", field, x, as64(grid), as64(alpha), as64(sigma), keep_trajectory=True
    )
    return trajectory


def _unipc_second_step_correction(points):
    """On the half-log-SNR grid (0, a, a + h, a + h + 1) at times tau_0 > tau_1 > tau_2 > tau_2/2
    with the model D(x, t) = sin 3t + t^2: the second step's correction
    (x_2 - sigma_2/sigma_1 x_1) / alpha_2, which the corrector weights at nodes (h, 0, -a)."""
    import math

    import torch

    rows = []
    for i in range(points[h].shape[0]):
        step_a, step_h = float(points[a][i]), float(points[h][i])
        times = [float(points[s][i]) for s in (tau0, tau1, tau2)]
        times.append(times[2] / 2)
        lam = [0.0, step_a, step_a + step_h, step_a + step_h + 1.0]
        sigma = [1.0, 0.8, 0.5, 0.3]
        alpha = [s * math.exp(v) for s, v in zip(sigma, lam, strict=True)]
        x0 = torch.zeros(1, 1, dtype=torch.float64)
        trajectory = _unipc_run(
            times, alpha, sigma, lambda x, t: _model_of_time(t) * torch.ones_like(x), x0
        )
        x1, x2 = float(trajectory[1]), float(trajectory[2])
        rows.append((x2 - sigma[2] / sigma[1] * x1) / alpha[2])
    return torch.tensor(rows, dtype=torch.float64)


register(
    Binding(
        derivation="D-exponential-adams-3",
        code=("genmath.core._solvers.integrate_exponential",),
        expression=d0 * w3[0] + d1 * w3[1] + d2 * w3[2],
        where={
            u0: h, u1: 0, u2: -a,
            d0: _model_of_time(tau2), d1: _model_of_time(tau1), d2: _model_of_time(tau0),
        },
        evaluate=_unipc_second_step_correction,
        domain={
            h: _step[h], a: _step[a],
            tau0: Uniform(0.6, 1.0), tau1: Uniform(0.3, 0.6), tau2: Uniform(0.02, 0.3),
        },
        samples=12,
        description=(
            "unipc's second corrected step on a non-uniform grid with a time-dependent model: "
            "the corrector weighs the model at t_2 (the predicted point's time), t_1 and t_0"
        ),
    )
)


def _unipc_first_step_correction(points):
    """On the half-log-SNR grid (lambda_0, lambda_0 + h, lambda_0 + h + 1), sigma_0 = 1,
    sigma_1 = s_1, alpha_1 given, with the model D(x, t) = kappa x: the first step's
    correction (x_1 - s_1 x_0) / alpha_1 from x_0 = x_start."""
    import math

    import torch

    rows = []
    for i in range(points[h].shape[0]):
        step_h, ratio, scale = (float(points[s][i]) for s in (h, sigma_ratio, alpha_next))
        k, start = float(points[kappa][i]), float(points[x_start][i])
        sigma = [1.0, ratio, ratio / 2]
        lam1 = math.log(scale / ratio)
        lam = [lam1 - step_h, lam1, lam1 + 1.0]
        alpha = [s * math.exp(v) for s, v in zip(sigma, lam, strict=True)]
        x0 = torch.full((1, 1), start, dtype=torch.float64)
        trajectory = _unipc_run([0.9, 0.5, 0.2], alpha, sigma, lambda x, t, k=k: k * x, x0)
        rows.append((float(trajectory[1]) - ratio * start) / scale)
    return torch.tensor(rows, dtype=torch.float64)


_predicted_start = sigma_ratio * x_start + alpha_next * psi0 * kappa * x_start
register(
    Binding(
        derivation="D-exponential-adams-2",
        code=("genmath.core._solvers.integrate_exponential",),
        expression=d0 * w2[0] + d1 * w2[1],
        where={u0: h, u1: 0, d0: kappa * _predicted_start, d1: kappa * x_start},
        evaluate=_unipc_first_step_correction,
        domain={
            h: _step[h], sigma_ratio: Uniform(0.1, 1.0), alpha_next: Uniform(0.1, 2.0),
            kappa: Uniform(-2, 2), x_start: Uniform(-3, 3),
        },
        samples=12,
        description=(
            "unipc's first corrected step with a state-dependent model: the corrector (nodes h, "
            "0) weighs the model at the predicted point s_1 x_0 + alpha_1 psi_0 D(x_0), not at x_0"
        ),
    )
)
