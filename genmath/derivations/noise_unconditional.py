"""The effective target of a noise-unconditional denoiser (Sun, Jiang, Zhao, He 2025): the
noise-conditional optimum averaged over the posterior of the time given the noisy point.

The bindings run `genmath.analytic.noise_unconditional_target` and `time_posterior` on 1-D
Gaussian data along CondOT and VP, with a non-uniform time density and loss weight, and compare
with the derivation's ratio of integrals, evaluated by mpmath quadrature at 30 digits with the
closed-form $p_t(z)$ and conditional optima put in."""

import sympy as sp

from ._engine import Binding, Derivation, LogUniform, Step, Uniform, sound_rewrite
from ._path_cases import schedule_case
from ._registry import register

t = sp.Symbol("t", real=True)  # the time, integrated over [0, 1]
g = sp.Symbol("g", real=True)  # the network's output at one z (the loss is pointwise in z)
rho = sp.Function("rho", positive=True)  # pi(t) w(t): time density times loss weight
p = sp.Function("p", positive=True)  # p_t(z) at the fixed z
R = sp.Function("R", real=True)  # E[r | z, t], the noise-conditional optimum
_evidence = sp.Integral(rho(t) * p(t), (t, 0, 1))
#: the effective target g*(z)
effective_target = sp.Integral(rho(t) * p(t) * R(t), (t, 0, 1)) / _evidence
_posterior = rho(t) * p(t) / _evidence
# the loss at one z, E_t E_{x0, eps | z, t} w(t) (g - r)^2 up to 1/p(z), on a quadrature rule
# of three nodes: weights w_j = (rule weight) rho(t_j) p_{t_j}(z), R_j = E[r | z, t_j] and
# V_j = Var[r | z, t_j] (untouched by g)
w_nodes = sp.symbols("w_1:4", positive=True)
R_nodes = sp.symbols("R_1:4", real=True)
V_nodes = sp.symbols("V_1:4", nonnegative=True)
objective_nodes = sum(
    w * ((g - r) ** 2 + v) for w, r, v in zip(w_nodes, R_nodes, V_nodes, strict=True)
)
target_nodes = sum(w * r for w, r in zip(w_nodes, R_nodes, strict=True)) / sum(w_nodes)


@sound_rewrite(
    "linearity of the integral: the integrand is expanded, the integral of a sum is the sum of "
    "the integrals, and a factor free of the variable of integration moves out"
)
def integral_linearity(expr):
    def split(integral):
        (variable, *_), *_ = integral.limits
        total = sp.Integer(0)
        for term in sp.Add.make_args(sp.expand(integral.function)):
            factor, rest = term.as_independent(variable, as_Mul=True)
            total += factor * sp.Integral(rest, *integral.limits)
        return total

    expr = sp.sympify(expr).doit(integrals=False)
    return sp.cancel(expr.replace(lambda e: isinstance(e, sp.Integral), split))

register(
    Derivation(
        id="D-noise-unconditional-target",
        title="A noise-unconditional network learns the conditional optimum averaged over p(t | z)",
        statement=(
            r"Train $g(z)$, not told the time, on $\mathbb E_{t, x_0, \varepsilon}\,w(t)\,"
            r"\|g(z) - r\|^2$ with $z = \alpha_t x_0 + \sigma_t\varepsilon$, $t \sim \pi$. "
            r"At each $z$ the loss is $\int \rho(t)\,p_t(z)\,\big[(g - R(z, t))^2 + "
            r"V(z, t)\big]\,dt$ (up to $1/p(z)$) with $\rho = \pi w$, $R = \mathbb E[r\mid z, t]$ "
            r"the noise-conditional optimum and $V$ the conditional variance. It is a convex "
            r"quadratic in $g$ (second derivative $2\int\rho\,p_t > 0$), stationary at "
            r"$g^*(z) = \int\rho\,p_t R\,dt / \int\rho\,p_t\,dt = \mathbb E_{t\mid z}[R(z, t)]$, "
            r"$p(t \mid z) \propto \rho(t)\,p_t(z)$ (Sun et al. 2025, the effective target). "
            r"For Gaussian data $p_t$ and $R$ are closed form (D-gaussian-path-marginal, "
            r"D-gaussian-posterior-mean), so $g^*$ is a one-dimensional integral over $t$."
        ),
        start=sp.ImmutableMatrix(
            [
                sp.Subs(sp.Derivative(objective_nodes, g), g, target_nodes),
                sp.Derivative(objective_nodes, (g, 2)),
            ]
        ),
        steps=[
            Step(
                rhs=sp.ImmutableMatrix([0, 2 * sum(w_nodes)]),
                reason=(
                    r"The loss on a quadrature rule in $t$ — what the code evaluates — with nodes "
                    r"of weight $w_j$ = (rule weight) $\times\,\rho(t_j)\,p_{t_j}(z)$ (shown for "
                    r"three; any number is the same algebra): $\sum_j w_j[(g - R_j)^2 + V_j]$ is "
                    r"a convex quadratic in $g$ (second derivative $2\sum_j w_j > 0$), stationary "
                    r"at the $w$-weighted mean $g^* = \sum_j w_j R_j/\sum_j w_j$. As the rule "
                    r"refines, the sums are the integrals: $g^* = \int\rho\,p_t R\,dt/\int"
                    r"\rho\,p_t\,dt$."
                ),
            ),
            Step(
                lhs=effective_target,
                rhs=sp.Integral(_posterior * R(t), (t, 0, 1)),
                reason=(
                    r"$g^*$ is the mean of $R(z, t)$ under the normalised posterior "
                    r"$p(t \mid z) = \rho(t)\,p_t(z)/\int\rho\,p_t$ (Bayes' rule with prior "
                    r"$\propto \pi w$)."
                ),
                method=integral_linearity,
            ),
        ],
        symbols=(t, g, *w_nodes, *R_nodes, *V_nodes),
        references=("sun2025noise",),
        code=(
            "genmath.analytic.noise_unconditional_target",
            "genmath.analytic.time_posterior",
        ),
        tests=("tests/analytic/test_noise_unconditional.py",),
    )
)

# ------------------------------------------------------------------ bindings
z, m = sp.symbols("z m", real=True)
q = sp.Symbol("q", positive=True)
c_exp, b_w = sp.symbols("c b", real=True)


def _gaussian_case(label: str, target: str):
    """{p(t): N(z; alpha m, alpha^2 q^2 + sigma^2), R(t): the target's closed form,
    rho(t): exp(c t) (1 + b t^2)} along the schedule ``label``."""
    alpha, sigma, d_alpha, d_sigma = schedule_case(label).at(t)
    variance = alpha**2 * q**2 + sigma**2
    centred = z - alpha * m
    density = sp.exp(-(centred**2) / (2 * variance)) / sp.sqrt(2 * sp.pi * variance)
    closed = {
        "x0": m + alpha * q**2 * centred / variance,
        "eps": sigma * centred / variance,
        "velocity": d_alpha * m + (alpha * d_alpha * q**2 + sigma * d_sigma) * centred / variance,
        "time": t,
    }[target]
    return {rho(t): sp.exp(c_exp * t) * (1 + b_w * t**2), p(t): density, R(t): closed}


def _by_code(label: str, target: str):
    def evaluate(points):
        import torch

        from ..analytic import Gaussian, noise_unconditional_target, time_posterior
        from ._path_cases import shared_path

        out = []
        for j in range(points[z].shape[0]):
            data = Gaussian(points[m][j].reshape(1), (points[q][j] ** 2).reshape(1, 1))
            marginal = data.marginal(shared_path(label))
            c, b = points[c_exp][j], points[b_w][j]
            options = dict(time_density=lambda s, c=c: torch.exp(c * s),
                           loss_weight=lambda s, b=b: 1 + b * s**2)
            x = points[z][j].reshape(1, 1)
            if target == "time":
                times, weights = time_posterior(marginal, x, **options)
                out.append((weights[0] * times).sum())
            else:
                out.append(noise_unconditional_target(marginal, x, target, **options)[0, 0])
        return torch.stack(out)

    return evaluate


for _label, _target in (("CondOT()", "x0"), ("CondOT()", "eps"), ("CondOT()", "velocity"),
                        ("VP()", "x0"), ("VP()", "velocity"), ("CondOT()", "time")):
    register(
        Binding(
            derivation="D-noise-unconditional-target",
            code=("genmath.analytic.time_posterior",) if _target == "time" else (
                "genmath.analytic.noise_unconditional_target",),
            expression=effective_target,
            where=_gaussian_case(_label, _target),
            evaluate=_by_code(_label, _target),
            domain={z: Uniform(-4, 4), m: Uniform(-2, 2), q: LogUniform(0.1, 3),
                    c_exp: Uniform(-3, 3), b_w: Uniform(0, 2, ends=True)},
            samples=3 if _label == "VP()" else 4,  # mpmath quadrature of VP: ~1 s a point
            tolerance=1e-9,
            description=(
                f"noise_unconditional_target(N(m, q^2).marginal(GaussianPath({_label})), z, "
                f"{_target!r}) with pi(t) = exp(c t), w(t) = 1 + b t^2" if _target != "time"
                else "time_posterior on CondOT: the posterior mean of t, E[t | z]"
            ),
        )
    )
