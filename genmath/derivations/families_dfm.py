"""Discrete flow matching (Gat et al. 2024): the mixture path's CTMC rates solve the Kolmogorov
forward equation, the marginal rate is the posterior-weighted one, its Euler step, and the
cross-entropy that trains the posterior.

The bindings run `dfm_rates` with the exact posterior (Bayes over the mixture path, from the
expressions below) on a uniform and a masking path of three states, the Euler transition of
`dfm_euler_sample`, and `dfm_loss`.
"""

import functools

import sympy as sp
import torch

from ._draws import in_float64
from ._engine import Binding, Check, Derivation, LogUniform, Step, Uniform
from ._registry import register

t = sp.Symbol("t", positive=True)
kappa = sp.Function("kappa")(t)
n0, n1 = sp.symbols("n_0 n_1", positive=True)
noise = sp.Matrix([n0, n1, 1 - n0 - n1])
delta0 = sp.Matrix([1, 0, 0])
delta1 = sp.Matrix([0, 1, 0])
rate_weight = -sp.diff(kappa, t) / (1 - kappa)


def _conditional(target):
    return kappa * target + (1 - kappa) * noise


def _rates_matrix(target):
    """Row x: rates u(. | x, x0) = (-kappa'/(1 - kappa)) (delta_x0 - delta_x), t decreasing."""
    return sp.Matrix.vstack(*[(rate_weight * (target - sp.eye(3)[:, x])).T for x in range(3)])


conditional_flux = (_conditional(delta0).T * _rates_matrix(delta0)).T  # sum_x p_t(x) u(y | x)

# two data points with weights w, 1 - w: the marginal rate is the posterior mixture
w = sp.Symbol("w", positive=True)
p_marginal = w * _conditional(delta0) + (1 - w) * _conditional(delta1)
marginal_rates = sp.ImmutableMatrix(
    sp.Matrix.vstack(
        *[
            (
                (
                    w * _conditional(delta0)[x] * _rates_matrix(delta0)[x, :]
                    + (1 - w) * _conditional(delta1)[x] * _rates_matrix(delta1)[x, :]
                )
                / p_marginal[x]
            )
            for x in range(3)
        ]
    )
)
marginal_flux = (p_marginal.T * sp.Matrix(marginal_rates)).T
# the posterior p(x0 = y | x_t = x) of the two data points (y = 0, 1; the third state is noise)
posterior = sp.Matrix(
    3, 3,
    lambda x, y: (w * _conditional(delta0)[x] if y == 0 else (1 - w) * _conditional(delta1)[x])
    / p_marginal[x] if y < 2 else 0,
)
posterior_rates = sp.ImmutableMatrix(rate_weight * (posterior - sp.eye(3)))
_row_total = sum(marginal_rates[0, :])

register(
    Derivation(
        id="D-dfm-kolmogorov",
        title="Discrete flow matching: the mixture path's CTMC rates satisfy the Kolmogorov forward equation",
        statement=(
            r"On the mixture path $p_t(\cdot \mid x_0) = \kappa_t\delta_{x_0} + (1 - \kappa_t)"
            r"p_\mathrm{noise}$ ($\kappa_t = \bar\alpha_t$, t = 0 data), the rates for decreasing t "
            r"$u_t(y \mid x, x_0) = \frac{-\kappa_t'}{1 - \kappa_t}[\delta_{x_0}(y) - \delta_x(y)]$ "
            r"satisfy $-\partial_t p_t(y \mid x_0) = \sum_x p_t(x \mid x_0)\,u_t(y \mid x, x_0)$ "
            r"(Gat et al. 2024, in genmath's time). The marginal rate $u_t(y \mid x) = \sum_{x_0} "
            r"p(x_0 \mid x_t = x)\,u_t(y \mid x, x_0) = \frac{-\kappa_t'}{1 - \kappa_t}[p(x_0 = y "
            r"\mid x_t = x) - \delta_x(y)]$ — what `dfm_rates` computes from the posterior — then "
            r"satisfies it for the marginal $p_t$ (linearity). Shown on three states for any noise "
            r"law (uniform, or the mask as a point mass) and, for the marginal, two data points "
            r"with weights $w, 1 - w$. Per token of a sequence the same holds with the per-token "
            "posterior, since rates change one token."
        ),
        start=sp.ImmutableMatrix(
            sp.Matrix.vstack(conditional_flux, marginal_flux, sp.Matrix(marginal_rates).reshape(9, 1))
        ),
        steps=[
            Step(
                rhs=sp.ImmutableMatrix(
                    sp.Matrix.vstack(
                        -sp.diff(_conditional(delta0), t),
                        -sp.diff(p_marginal, t),
                        sp.Matrix(posterior_rates).reshape(9, 1),
                    )
                ),
                reason=(
                    r"$\sum_x p_t(x)[\delta_{x_0} - \delta_x] = \delta_{x_0} - p_t = (1 - \kappa_t)"
                    r"(\delta_{x_0} - p_\mathrm{noise})$; times $-\kappa_t'/(1 - \kappa_t)$ it is "
                    r"$-\kappa_t'(\delta_{x_0} - p_\mathrm{noise}) = -\partial_t p_t$. For the "
                    r"marginal, the posterior weight $p(x_0 \mid x) = p(x_0)p_t(x \mid x_0)/p_t(x)$ "
                    r"cancels $p_t(x)$, leaving the mixture of the conditional equations. The "
                    r"posterior mixture of the conditional rates is the weight times "
                    r"$p(x_0 = y \mid x) - \delta_x(y)$ (the posterior sums to one)."
                ),
            ),
            Step(
                lhs=_row_total,
                rhs=sp.Integer(0),
                reason="The rates of a row sum to zero: the probability flowing out of a state is the diagonal.",
            ),
        ],
        symbols=(t, n0, n1, w),
        references=("gat2024discrete",),
        code=(
            "genmath.families.discrete_diffusion.dfm_rates",
            "genmath.families.discrete_diffusion.dfm_euler_sample",
        ),
        tests=("tests/families/test_discrete_diffusion.py",),
    )
)

_tau = sp.Symbol("tau", real=True)
_schedule = sp.cos(sp.pi * _tau / 2)  # the paths the bindings run use the cosine schedule


def _path(kind):
    from ..core.discrete import MaskPath, UniformPath

    return UniformPath(3, _schedule, _tau) if kind == "uniform" else MaskPath(2, _schedule, _tau)


def _case(kind):
    """where-entries: the schedule for kappa, and the noise law of the path."""
    law = {n0: sp.Rational(1, 3), n1: sp.Rational(1, 3)} if kind == "uniform" else {n0: 0, n1: 0}
    return {
        **law,
        kappa: _schedule.subs(_tau, t),
        sp.Derivative(kappa, t): sp.diff(_schedule, _tau).subs(_tau, t),
    }


@functools.cache
def _posterior_function(kind):
    """The exact posterior over the data symbols, per state x, compiled from the expression."""
    matrix = posterior.subs(_case(kind)).doit()
    columns = 3 if kind == "uniform" else 2
    return sp.lambdify((t, w), matrix[:, :columns], modules=[{"cos": torch.cos, "sin": torch.sin}, torch])


def _rates(kind):
    def evaluate(points):
        from ..families.discrete_diffusion import dfm_rates

        path = _path(kind)
        exact = _posterior_function(kind)
        tokens = torch.tensor([0, 1, 2 if kind == "uniform" else path.mask_id])
        out = []
        for j in range(points[t].numel()):
            probs = torch.as_tensor(exact(points[t][j], points[w][j]), dtype=torch.float64)
            rates = dfm_rates(path, probs[:, None, :], tokens[:, None], points[t][j])[:, 0, :]
            out.append(torch.cat([rates.reshape(-1), rates[0].sum()[None]]))
        return tuple(torch.stack(out).T)

    return evaluate


for _kind in ("uniform", "mask"):
    register(
        Binding(
            derivation="D-dfm-kolmogorov",
            code=("genmath.families.discrete_diffusion.dfm_rates",),
            expression=(*posterior_rates, _row_total),
            where=_case(_kind),
            evaluate=in_float64(_rates(_kind)),
            domain={t: Uniform(0.02, 0.999), w: Uniform(0.05, 0.95)},
            samples=8,
            description=(
                f"dfm_rates with the exact posterior on a {_kind} path of three states (cosine "
                "schedule): all nine rates, and the first row's total"
            ),
        )
    )


def _dfm_kolmogorov_error() -> float:
    """Largest residual of the Kolmogorov forward equation for `dfm_rates` with the exact
    posterior (Bayes over the closed-form kernels), one token, K = 4, both paths; the time
    derivative by a central difference."""
    from ..core.discrete import MaskPath, UniformPath
    from ..families.discrete_diffusion import dfm_rates

    dtype = torch.float64
    data = torch.tensor([0.1, 0.2, 0.3, 0.4], dtype=dtype)
    worst = 0.0

    def marginal(path, at):
        return data @ path.cumulative_kernel(torch.tensor(at, dtype=dtype))[:4]

    for path in (MaskPath(4), UniformPath(4, sp.cos(sp.pi * t / 2), t)):
        states = torch.arange(path.num_states)
        tokens = path._token(states)
        for time in (0.25, 0.6):
            kernel = path.cumulative_kernel(torch.tensor(time, dtype=dtype))[:4]  # (x0, x)
            joint = data[:, None] * kernel
            posterior_probs = (joint / joint.sum(0).clamp_min(1e-300)).T  # (x, x0)
            rates = dfm_rates(path, posterior_probs[:, None, :], tokens[:, None], time)[:, 0, :]
            step = 1e-5
            derivative = (marginal(path, time + step) - marginal(path, time - step)) / (2 * step)
            worst = max(worst, float((marginal(path, time) @ rates + derivative).abs().max()))
    return worst


register(
    Check(
        id="C-dfm-kolmogorov",
        title="dfm_rates with the exact posterior solve the Kolmogorov forward equation",
        function=_dfm_kolmogorov_error,
        tolerance=1e-8,
        code=("genmath.families.discrete_diffusion.dfm_rates",),
        tests=("tests/families/test_discrete_diffusion.py",),
        derivation="D-dfm-kolmogorov",
    )
)


# ------------------------------------------------------------------------ the Euler step
h = sp.Symbol("h", positive=True)
rate, p0, p1 = sp.symbols("r p_0 p_1", positive=True)  # the weight -kappa'/(1 - kappa), posterior
_pi = sp.Matrix([p0, p1, 1 - p0 - p1])  # posterior over the three states; the token is at 0
_rates_row = rate * (_pi - delta0)
euler_row = sp.ImmutableMatrix(delta0 + h * _rates_row)  # q(x_{t-h} = y | x_t = 0)
rescaled_row = sp.ImmutableMatrix([0, p1 / (p1 + (1 - p0 - p1)), (1 - p0 - p1) / (p1 + (1 - p0 - p1))])

register(
    Derivation(
        id="D-dfm-euler",
        title="The Euler step of the discrete-flow-matching CTMC is a distribution over the next token",
        statement=(
            r"One step of length $h$ of the CTMC with rates $u(y \mid x) = r\,[\pi_y - "
            r"\delta_x(y)]$ (D-dfm-kolmogorov, $r = -\kappa_t'/(1 - \kappa_t)$, $\pi$ the "
            r"posterior) moves a token from $x$ to $y \ne x$ with probability $h\,u(y \mid x) = "
            r"h r\pi_y \ge 0$ and keeps it with $1 + h\,u(x \mid x) = 1 - h r(1 - \pi_x)$: the "
            r"first-order solution $\delta_x + h u$ of the Kolmogorov equation, a distribution "
            r"because the rates of a row sum to zero. Where the jump probabilities exceed one "
            r"($h r(1 - \pi_x) > 1$, a fast schedule at the last step), `dfm_euler_sample` rescales "
            r"them to $\pi_y/(1 - \pi_x)$: the token surely jumps, to a state drawn from the "
            "posterior without its current state."
        ),
        start=sum(euler_row),
        steps=[
            Step(rhs=sp.Integer(1), reason=r"$\sum_y u(y \mid x) = r(\sum_y \pi_y - 1) = 0$."),
            Step(
                lhs=sum(rescaled_row),
                rhs=sp.Integer(1),
                reason="The rescaled jump probabilities of a sure jump also sum to one.",
            ),
        ],
        symbols=(h, rate, p0, p1),
        references=("gat2024discrete",),
        code=(
            "genmath.families.discrete_diffusion._euler_transition",
            "genmath.families.discrete_diffusion.dfm_euler_sample",
        ),
        tests=("tests/families/test_discrete_diffusion.py",),
        domain={p0: (0.05, 0.3), p1: (0.05, 0.3)},
    )
)


def _euler(rescale):
    """The Euler transition of a token at state 0 of UniformPath(3) (cosine schedule) with the
    posterior (p0, p1, 1 - p0 - p1), at t, for a step h small (1e-3 t) or long (t)."""

    def evaluate(points):
        from ..families.discrete_diffusion import _euler_transition

        path = _path("uniform")
        out = []
        for j in range(points[p0].numel()):
            # the sure jump does not depend on t: near t = 1, where h r (1 - p_0) > 1
            time = points[t][j] if t in points else torch.tensor(0.95, dtype=torch.float64)
            probs = torch.stack([points[p0][j], points[p1][j], 1 - points[p0][j] - points[p1][j]])
            step = time if rescale else 1e-3 * time
            row = _euler_transition(path, probs[None, None], torch.zeros(1, 1, dtype=torch.long), time, step)
            out.append(torch.cat([row[0, 0], row[0, 0].sum()[None]])[int(rescale):])
        return tuple(torch.stack(out).T)

    return evaluate


_weight_at = {rate: rate_weight.subs(_case("uniform")).doit()}
for _rescale, _row in ((False, euler_row), (True, rescaled_row)):
    register(
        Binding(
            derivation="D-dfm-euler",
            code=("genmath.families.discrete_diffusion._euler_transition",),
            # the long step's stay probability is 0: checked through the total and the jumps
            expression=(*_row[int(_rescale):], sum(_row)),
            where={**_weight_at, h: (t if _rescale else t / 1000)},
            evaluate=in_float64(_euler(_rescale)),
            # the long step jumps surely near t = 1 (r is large there); the short one never
            domain={t: Uniform(0.9, 0.999) if _rescale else Uniform(0.05, 0.999), p0: Uniform(0.05, 0.3), p1: Uniform(0.05, 0.3)},
            samples=12,
            description=(
                "the Euler transition of dfm_euler_sample, "
                + ("a long step: the rescaled sure jump" if _rescale else "a short step: delta + h u")
            ),
        )
    )


# ------------------------------------------------------------- the loss: the posterior's CE
q_true, p_model = sp.symbols("q p", positive=True)
_cross_entropy = -(q_true * sp.log(p_model) + (1 - q_true) * sp.log(1 - p_model))

register(
    Derivation(
        id="D-dfm-posterior-loss",
        title="Discrete flow matching trains the posterior the rates need by cross-entropy",
        statement=(
            r"`dfm_rates` needs $p(x_0 \mid x_t)$; `dfm_loss` trains $\tilde p_\theta$ on "
            r"$\mathbb E_{t, x_0, x_t}\sum_\ell -\log\tilde p_\theta(x_0^\ell \mid x_t)$ (Gat et al. "
            r"2024), whose minimiser at each $x_t$ is the posterior: for a two-point posterior "
            r"$(q, 1 - q)$ the expected cross-entropy $-(q\log p + (1 - q)\log(1 - p))$ is "
            r"stationary at $p = q$ (Gibbs' inequality: it exceeds the entropy by the KL)."
        ),
        start=sp.Subs(sp.Derivative(_cross_entropy, p_model), p_model, q_true),
        steps=[Step(rhs=sp.Integer(0), reason=r"$-q/p + (1 - q)/(1 - p) = 0$ at $p = q$.")],
        symbols=(q_true, p_model),
        references=("gat2024discrete",),
        code=("genmath.families.discrete_diffusion.dfm_loss",),
        tests=("tests/families/test_discrete_diffusion.py",),
        domain={q_true: (0.05, 0.95), p_model: (0.05, 0.95)},
    )
)


def _dfm_losses(points):
    """dfm_loss with probability p on every data token: -log p per token on a uniform path
    (every token counts), per masked token on a masking path (visible ones carry over: 0)."""
    from ..families.discrete_diffusion import dfm_loss
    from .families_discrete import _masked_count, _Recording

    x0 = torch.arange(64)[None] % 2
    out = []
    for kind in ("uniform", "mask"):
        path = _path(kind)
        column = []
        for j in range(points[p_model].numel()):
            categories = path.num_categories
            data = x0 % categories
            for seed in range(j, j + 50):  # a draw that masks no token says nothing: skip it
                denoiser = _Recording(data, points[p_model][j], categories)
                value = dfm_loss(denoiser, path, data, generator=torch.Generator().manual_seed(seed))
                tokens = denoiser.inputs[-1][0]
                count = data.numel() if kind == "uniform" else _masked_count(path, tokens)
                if count:
                    break
            column.append(value / count)
        out.append(torch.stack(column))
    return tuple(out)


register(
    Binding(
        derivation="D-dfm-posterior-loss",
        code=("genmath.families.discrete_diffusion.dfm_loss",),
        expression=(-sp.log(p_model), -sp.log(p_model)),
        evaluate=in_float64(_dfm_losses),
        domain={p_model: LogUniform(1e-3, 0.999)},
        samples=12,
        description="dfm_loss per token (uniform path) and per masked token (masking path): -log p",
    )
)
