"""DDPM's learned reverse variance (Nichol & Dhariwal 2021, eq. 15), its first-step rule, and
the gradient of the hybrid loss that the stopped mean defines.

The bindings run `DDPM.reverse_variance`, one ancestral step of `DDPM.sample` and the autograd
gradient of `DDPM.loss` on two-step schedules built from the sampled
$(\bar\alpha_{i-1}, \alpha_i)$ (helpers shared with ``families_diffusion.py``).
"""

import sympy as sp

from ._chain import FromStep
from ._engine import NUMERIC, Binding, Derivation, Integers, LogUniform, Step, Uniform
from ._registry import register
from .families_diffusion import (
    _ancestral_step,
    _constant,
    _ddpm,
    _ddpm_points,
    _gaussian_step_kl,
    _u,
    abar_s,
    alpha,
    beta,
    snr_s,
    snr_t,
    tilde,
    x0,
    x0_hat,
)

# --- D-ddpm-learned-variance ----------------------------------------------------------------
beta_i, beta_tilde_i = sp.symbols(r"beta_i \tilde{beta}_i", positive=True)
_interpolated = sp.exp(_u * sp.log(beta_i) + (1 - _u) * sp.log(beta_tilde_i))
_geometric = beta_i**_u * beta_tilde_i ** (1 - _u)

register(
    Derivation(
        id="D-ddpm-learned-variance",
        title="DDPM's learned reverse variance interpolates beta and beta-tilde in the log domain",
        statement=(
            r"Nichol & Dhariwal (2021, eq. 15) learn the reverse variance as $\Sigma_\theta = "
            r"\exp(v\log\beta_i + (1 - v)\log\tilde\beta_i) = \beta_i^v\tilde\beta_i^{1-v}$ from a "
            r"network output $v$: $v = 0$ is the posterior variance $\tilde\beta_i$, $v = 1$ is "
            r"$\beta_i$, the two choices of Ho et al. (2020), and since $\tilde\beta_i \le \beta_i$ "
            r"every $v \in [0, 1]$ lies between them. At the first step $\tilde\beta_1 = 0$ "
            r"($\bar\alpha_0 = 1$) has no logarithm; it is replaced by $\tilde\beta_2$, as in their "
            r"code (the bindings hold `DDPM.reverse_variance` to both)."
        ),
        start=_interpolated,
        steps=[
            Step(rhs=_geometric, reason=r"$e^{v\log\beta} = \beta^v$ for $\beta > 0$."),
            Step(
                lhs=FromStep("D-ddpm-learned-variance", {_u: 0}, step=1),
                rhs=beta_tilde_i,
                reason=r"$v = 0$: the posterior variance $\tilde\beta_i$ (D-ddpm-posterior).",
            ),
            Step(
                lhs=FromStep("D-ddpm-learned-variance", {_u: 1}, step=1),
                rhs=beta_i,
                reason=r"$v = 1$: the forward variance $\beta_i$.",
            ),
            Step(
                lhs=FromStep("D-ddpm-learned-variance", {_u: 0, beta_tilde_i: tilde}, step=1),
                rhs=beta,
                relation="<=",
                tag=NUMERIC,
                reason=(
                    r"$\tilde\beta_i = \frac{1 - \bar\alpha_{i-1}}{1 - \bar\alpha_i}\beta_i \le \beta_i$ "
                    r"because $\bar\alpha_i < \bar\alpha_{i-1}$: the interpolation runs between the "
                    "two."
                ),
            ),
        ],
        symbols=(beta_i, beta_tilde_i, _u, alpha, abar_s),
        references=("nichol2021improved", "ho2020denoising"),
        code=("genmath.families.diffusion.DDPM.reverse_variance",),
        tests=("tests/families/test_diffusion.py",),
        domain={alpha: (0.05, 0.95), abar_s: (0.05, 0.95)},
    )
)


def _reverse_variances(variance, step):
    def evaluate(points):
        import torch

        out = []
        for _, schedule, p in _ddpm_points(points):
            u = p.get(_u, torch.zeros(1, 1, dtype=torch.float64))
            ddpm = _ddpm(schedule, torch.zeros(1, 1, dtype=torch.float64), "x0", variance, u)
            out.append(ddpm.reverse_variance(torch.zeros(1, 1, dtype=torch.float64), step)[0, 0])
        return torch.stack(out)

    return evaluate


_variance_cases = (
    ("beta", 2, {_u: 1, beta_i: beta, beta_tilde_i: tilde}),
    ("beta_tilde", 2, {_u: 0, beta_i: beta, beta_tilde_i: tilde}),
    ("learned", 2, {beta_i: beta, beta_tilde_i: tilde}),
    # step 1: beta_1 = 1 - abar_1, and log(beta-tilde_1) = log(0) replaced by log(beta-tilde_2)
    ("learned", 1, {beta_i: 1 - abar_s, beta_tilde_i: tilde}),
    ("beta", 1, {_u: 1, beta_i: 1 - abar_s, beta_tilde_i: tilde}),
)
for _choice, _step, _where in _variance_cases:
    register(
        Binding(
            derivation="D-ddpm-learned-variance",
            code=("genmath.families.diffusion.DDPM.reverse_variance",),
            expression=_geometric,
            where=_where,
            evaluate=_reverse_variances(_choice, _step),
            domain={
                alpha: LogUniform(1e-5, 0.999),
                abar_s: Uniform(1e-3, 0.999),
                **({} if _u in _where else {_u: Uniform(-0.5, 1.5, ends=True)}),
            },
            samples=16,
            description=f"DDPM.reverse_variance at step {_step}, variance={_choice!r}",
        )
    )


# the sampler draws with reverse_variance's value, bound above for every choice: one suffices
for _choice, _where in (("learned", {beta_i: beta, beta_tilde_i: tilde}),):
    register(
        Binding(
            derivation="D-ddpm-learned-variance",
            code=("genmath.families.diffusion.DDPM.sample",),
            expression=_geometric,
            where=_where,
            evaluate=_ancestral_step(_choice, "variance"),
            domain={
                alpha: LogUniform(1e-3, 0.999),
                abar_s: Uniform(1e-2, 0.999),
                **({} if _u in _where else {_u: Uniform(-0.5, 1.5, ends=True)}),
            },
            samples=10,
            description=f"the noise variance of one ancestral step of DDPM.sample, variance={_choice!r}",
        )
    )


# --- D-ddpm-hybrid-loss: the gradient the stop-gradient defines ------------------------------
x0_stopped = sp.Symbol(r"\hat{x}_0^{\rm sg}", real=True)  # the mean's x0_hat, held constant
lam = sp.Symbol("lambda", nonnegative=True)
T = sp.Symbol("T", integer=True, positive=True)
# beta_i, beta-tilde_i and the SNR drop as symbols: the bindings put in DDPM's expressions
b, b_tilde, snr_drop = sp.symbols(r"beta \tilde{beta} \Delta_{SNR}", positive=True)
_learned = b**_u * b_tilde ** (1 - _u)


def _hybrid(mean_input):
    kl = _gaussian_step_kl(_learned, b_tilde, snr_drop).subs(x0_hat, mean_input)
    return (x0 - x0_hat) ** 2 + lam * (T - 1) * kl


_stopped, _full = _hybrid(x0_stopped), _hybrid(x0_hat)
_grad_x0_stopped = sp.Subs(sp.Derivative(_stopped, x0_hat), x0_stopped, x0_hat)
_grad_u = sp.Subs(sp.Derivative(_stopped, _u), x0_stopped, x0_hat)
_kl_gap = snr_drop * b_tilde * (x0 - x0_hat) ** 2
_log_ratio = sp.log(b) - sp.log(b_tilde)

register(
    Derivation(
        id="D-ddpm-hybrid-loss",
        title="DDPM's hybrid loss: the stopped mean makes L_vlb train the variance only",
        statement=(
            r"Nichol & Dhariwal's hybrid loss $L_\mathrm{simple} + \lambda L_\mathrm{vlb}$ stops "
            r"the gradient of the mean in $L_\mathrm{vlb}$, so that $L_\mathrm{simple}$ alone "
            r"trains the mean and $L_\mathrm{vlb}$ the learned variance "
            r"$\Sigma = \beta^u\tilde\beta^{1-u}$ (D-ddpm-learned-variance). Per coordinate, for an "
            r"$x_0$-prediction $\hat x_0$ and $L_\mathrm{vlb} = (T - 1)L_{i-1}$ (one random step "
            r"$i \ge 2$, D-ddpm-bound-simple): $\partial_{\hat x_0} = 2(\hat x_0 - x_0)$ and "
            r"$\partial_u = \lambda(T-1)\,\tfrac12\log(\beta/\tilde\beta)\,(1 - (\tilde\beta + "
            r"\tilde\beta\,\Delta\mathrm{SNR}\,(x_0 - \hat x_0)^2)/\Sigma)$; without the stop the "
            r"mean's gradient would gain $\lambda(T-1)\Delta\mathrm{SNR}\,\tilde\beta(\hat x_0 - "
            r"x_0)/\Sigma$ (the third entry), which is not zero unless $\hat x_0 = x_0$."
        ),
        start=sp.ImmutableMatrix(
            [_grad_x0_stopped, _grad_u, sp.Derivative(_full, x0_hat) - _grad_x0_stopped]
        ),
        steps=[
            Step(
                rhs=sp.ImmutableMatrix(
                    [
                        2 * (x0_hat - x0),
                        lam * (T - 1) * _log_ratio / 2 * (1 - (b_tilde + _kl_gap) / _learned),
                        lam * (T - 1) * snr_drop * b_tilde * (x0_hat - x0) / _learned,
                    ]
                ),
                reason=(
                    r"Differentiate with the stopped $\hat x_0^{\rm sg}$ held constant, then put "
                    r"$\hat x_0^{\rm sg} = \hat x_0$; $\partial_u\Sigma = \Sigma\log(\beta/\tilde\beta)$. "
                    "The last entry is the gradient a missing stop would add."
                ),
            ),
        ],
        symbols=(b, b_tilde, snr_drop, x0, x0_hat, x0_stopped, _u, lam, T),
        references=("nichol2021improved",),
        code=("genmath.families.diffusion.DDPM.loss",),
        tests=("tests/families/test_diffusion.py",),
        domain={lam: (0.0, 2.0), T: Integers(2, 5)},
    )
)


def _hybrid_gradients(points):
    """Autograd gradients of DDPM.loss(vlb_weight=lambda) with respect to the x0 model's output
    and the variance model's output, on a two-step schedule (T = 2: the vlb step is i = 2)."""
    import torch

    from ..families.diffusion import DDPM

    grads = []
    for j, schedule, p in _ddpm_points(points):
        prediction = p[x0_hat].clone().requires_grad_(True)
        weight = p[_u].clone().requires_grad_(True)
        ddpm = DDPM(_constant(prediction), schedule, "x0", "learned", _constant(weight))
        loss = ddpm.loss(p[x0], vlb_weight=float(points[lam][j]),
                         generator=torch.Generator().manual_seed(j), reduction="none")
        g_x0, g_u = torch.autograd.grad(loss.sum(), (prediction, weight))
        grads.append(torch.stack([g_x0[0, 0], g_u[0, 0]]))
    return tuple(torch.stack(grads).T)


register(
    Binding(
        derivation="D-ddpm-hybrid-loss",
        code=("genmath.families.diffusion.DDPM.loss",),
        expression=(
            2 * (x0_hat - x0),
            lam * (T - 1) * _log_ratio / 2 * (1 - (b_tilde + _kl_gap) / _learned),
        ),
        where={T: 2, b: beta, b_tilde: tilde, snr_drop: snr_s - snr_t},
        evaluate=_hybrid_gradients,
        domain={
            alpha: LogUniform(1e-3, 0.999),
            abar_s: Uniform(1e-2, 0.999),
            x0: Uniform(-3, 3),
            x0_hat: Uniform(-3, 3),
            _u: Uniform(-0.5, 1.5),
            lam: LogUniform(1e-3, 10.0),
        },
        samples=12,
        description=(
            "autograd gradients of DDPM.loss(vlb_weight=lambda) in the x0 model's and the "
            "variance model's outputs (the stopped mean: L_vlb adds nothing to the first)"
        ),
    )
)
