"""Masked diffusion sampling: the importance time sampler of the masked ELBO (finite variance,
same mean) and ReMDM's remasking step (the masking path's marginals for every admissible
remasking probability).

The bindings run `_proposal_times` (the sampler's times and weights from given uniforms) and
the public `remdm_sigma` / `remdm_probs` at given times, tokens and model probabilities:
exactly, no Monte Carlo. The unbiasedness of `masked_diffusion_nelbo` under each sampler and
the variances are measured in ``tests/families/test_discrete_diffusion_sampling.py``.
"""

import sympy as sp
import torch

from ._chain import FromStep
from ._draws import in_float64
from ._engine import NUMERIC, Binding, Derivation, LogUniform, Step, Uniform
from ._registry import register
from .families_discrete import SCHEDULES, _mask_path, _probs_with, _schedule_at

# ------------------------------------------------------------------- the time sampler
t, c, u = sp.symbols("t c u", positive=True)
b = sp.Symbol("b", positive=True)  # the power beta = 1/(1 + b) ranges over (0, 1)
# t = u^(1/beta) = u^(1 + b) has density q(t) = beta t^(beta - 1); its weight 1/q(t) = (1 + b) u^b
# the ELBO weight 1/t times the cross-entropy c, times 1/q: (c / u^(1+b)) (1 + b) u^b, written
# reduced (sympy's integrator takes minutes on the unreduced product)
estimate_u = c * (1 + b) / u
moment_u = sp.Integral(u ** (1 + b) * estimate_u, (u, 0, 1))  # masked with probability t

register(
    Derivation(
        id="D-masked-elbo-time-sampler",
        title="Masked ELBO: importance-sampled times keep the mean and make the variance finite",
        statement=(
            r"For $\bar\alpha_t = 1 - t$ the masked ELBO's integrand is $\frac1t\,\mathbb E"
            r"\sum_{\ell:\,x_t^\ell = m} c_\ell$ (D-masked-elbo). Draw $t = u^{1/\beta}$, $u \sim "
            r"U(0, 1]$, so that $t$ has density $q(t) = \beta t^{\beta - 1}$, and weight the "
            r"one-sample estimate by $1/q(t) = t^{1 - \beta}/\beta$: its mean is the ELBO for any "
            r"$\beta \in (0, 1]$. For one token with cross-entropy $c$ (masked with probability "
            r"$t$) its second moment is $c^2/(\beta(1 - \beta))$, finite for $\beta < 1$ and least "
            r"at $\beta = 1/2$ (the default: $t = u^2$ with weight $2\sqrt t$). The uniform sampler "
            r"($\beta = 1$, $b = 0$) has the second moment $\int_0^1 t\,(c/t)^2\,dt = \infty$: the "
            r"old clamp $t \ge \epsilon$ only cut it to $c^2\log(1/\epsilon)$. For $L$ tokens with "
            r"cross-entropies at most $c$, $\mathbb E[(\sum_{\text{masked}} c_\ell)^2 \mid t] \le "
            r"L^2c^2\,P(\text{a mask}) \le L^3c^2\,t$, so the same integral bounds the second "
            r"moment by $L^3c^2/(\beta(1 - \beta))$. The chain is written in $u$ and in $b$ with "
            r"$\beta = 1/(1 + b)$, $b > 0$."
        ),
        start=sp.Integral(t * (c / t) * (1 / (t ** (1 / (1 + b) - 1) / (1 + b))) * t ** (1 / (1 + b) - 1) / (1 + b), (t, 0, 1)),
        steps=[
            Step(
                rhs=moment_u,
                reason=(
                    r"The mean under $q$: $\int_0^1 q(t)\,t\,\frac{c/t}{q(t)}\,dt$; substitute "
                    r"$t = u^{1 + b}$, $q(t)\,dt = du$, $1/q(t) = (1 + b)u^b$."
                ),
            ),
            Step(rhs=c, reason=r"$\int_0^1 (1 + b)u^b\,du = 1$: the weights make the estimate unbiased."),
            Step(
                lhs=FromStep("D-masked-elbo-time-sampler", {c: c * estimate_u}, step=1),
                rhs=c**2 * (1 + b) ** 2 / b,
                reason=(
                    r"The second moment: the same integral with the cross-entropy $c$ replaced by $c$ "
                    r"times the estimate, $\int_0^1 c^2(1 + b)^2u^{b - 1}du = c^2(1 + b)^2/b = "
                    r"c^2/(\beta(1 - \beta))$."
                ),
            ),
            Step(
                rhs=c**2 * (4 + (b - 1) ** 2 / b),
                reason=r"Least at $b = 1$, $\beta = 1/2$, where it is $4c^2$ (the variance $3c^2$).",
            ),
        ],
        symbols=(t, c, u, b),
        references=("sahoo2024simple", "shi2024simplified", "kingma2021variational"),
        code=(
            "genmath.families.discrete_diffusion.masked_elbo_times",
            "genmath.families.discrete_diffusion.masked_diffusion_nelbo",
        ),
        tests=("tests/families/test_discrete_diffusion_sampling.py",),
    )
)


def _sampler_moments(points):
    """The one-token estimate's mean and second moment under the code's times and weights,
    by quadrature over u: the code's (t, w) at each u, masked with probability t, estimate
    (c/t) w."""
    from scipy.integrate import quad

    from ..families.discrete_diffusion._masked import _proposal_times

    out = []
    for j in range(len(points[c])):
        power, cost = float(1 / (1 + points[b][j])), float(points[c][j])

        def integrand(x, order, power=power, cost=cost):
            t_code, w_code = _proposal_times(torch.tensor(x, dtype=torch.float64), power)
            return float(t_code * (cost / t_code * w_code) ** order)

        out.append([quad(integrand, 0.0, 1.0, args=(k,), limit=200, epsabs=0, epsrel=1e-11)[0] for k in (1, 2)])
    return tuple(torch.tensor(out, dtype=torch.float64).T)


register(
    Binding(
        derivation="D-masked-elbo-time-sampler",
        code=("genmath.families.discrete_diffusion._masked._proposal_times",),
        expression=(c, c**2 * (1 + b) ** 2 / b),
        evaluate=in_float64(_sampler_moments),
        domain={b: LogUniform(0.05, 50.0, ends=True), c: LogUniform(0.01, 10.0)},
        samples=8,
        tolerance=1e-7,
        description=(
            "_proposal_times: the one-token estimate's mean and second moment under the code's "
            "times and weights, by quadrature over u"
        ),
    )
)

# ------------------------------------------------------------------------------- ReMDM
ab_s, ab_t = sp.symbols(r"\bar{alpha}_s \bar{alpha}_t", positive=True)
sig = sp.Symbol("sigma", nonnegative=True)
P = sp.Symbol("ptilde", positive=True)
unmask = (ab_s - (1 - sig) * ab_t) / (1 - ab_t)  # a masked token is decoded
stay = (1 - ab_s - sig * ab_t) / (1 - ab_t)  # a masked token stays masked
sigma_max = sp.Min(1, (1 - ab_s) / ab_t)
_eta = sp.Symbol("eta", nonnegative=True)
_remdm_total = unmask * P + unmask * (1 - P) + stay  # the masked token's kernel

register(
    Derivation(
        id="D-remdm-marginals",
        title="ReMDM: remasking with probability sigma keeps the masking path's marginals",
        statement=(
            r"The ReMDM step from $t$ to $s < t$ keeps a visible token with probability "
            r"$1 - \sigma_t$ and remasks it with $\sigma_t$; a masked token is decoded to $x_0$ with "
            r"$(\bar\alpha_s - (1 - \sigma_t)\bar\alpha_t)/(1 - \bar\alpha_t)$ and stays masked "
            r"with $(1 - \bar\alpha_s - \sigma_t\bar\alpha_t)/(1 - \bar\alpha_t)$ (Wang et al. "
            r"2025). Averaged over $q(x_t \mid x_0)$ (visible with $\bar\alpha_t$) it gives "
            r"$q(x_s \mid x_0)$: $x_0$ with $\bar\alpha_s$, the mask with $1 - \bar\alpha_s$, for "
            r"every $\sigma_t$; the probabilities are non-negative for $0 \le \sigma_t \le "
            r"\min\{1, (1 - \bar\alpha_s)/\bar\alpha_t\}$, and $\sigma_t = 0$ is the MDLM "
            r"posterior (D-masked-elbo). With the exact per-token posterior $p(x_0^\ell \mid x_t)$ "
            r"in place of $x_0$ and $x_t \sim p_t$, the tower rule gives each token's law at $s$ "
            r"as $\sum_{x_0} p(x_0)\,q(x_s^\ell \mid x_0^\ell)$, the path's marginal."
        ),
        start=sp.Matrix([
            ab_t * (1 - sig) + (1 - ab_t) * unmask,
            ab_t * sig + (1 - ab_t) * stay,
            unmask.subs(sig, 0),
            stay.subs(sig, (1 - ab_s) / ab_t),
        ]),
        steps=[
            Step(
                rhs=sp.Matrix([ab_s, 1 - ab_s, (ab_s - ab_t) / (1 - ab_t), 0]),
                reason=(
                    r"Row 1, $x_s = x_0$: kept from a visible $x_t$, or decoded from a mask; row 2, "
                    r"$x_s = m$: remasked from a visible $x_t$, or left masked — the path's "
                    r"marginals. Row 3: at $\sigma_t = 0$ the decoding probability is MDLM's "
                    r"$c$. Row 4: at $\sigma_t = (1 - \bar\alpha_s)/\bar\alpha_t$ a masked token "
                    r"is surely decoded, the upper end of the admissible range (also capped at 1)."
                ),
            ),
            Step(
                lhs=_remdm_total,
                rhs=sp.Integer(1),
                reason=(
                    r"The model's kernel at a masked token, the decoding probability times "
                    r"$\tilde p_\theta$ on the data symbols and the rest on the mask, is a "
                    r"distribution (shown with $\tilde p$ on $x_0$ and $1 - \tilde p$ on the others)."
                ),
            ),
            Step(
                lhs=_eta * sigma_max,
                rhs=sp.Min(_eta, _eta * (1 - ab_s) / ab_t),
                tag=NUMERIC,
                reason=(
                    r"The 'rescale' schedule $\sigma_t = \eta\,\sigma_t^{\max}$, $\eta \in [0, 1]$, "
                    r"stays admissible: it is $\min\{\eta, \eta(1 - \bar\alpha_s)/\bar\alpha_t\}"
                    r" \le \sigma_t^{\max}$."
                ),
            ),
            Step(
                lhs=sp.Min(_eta, sigma_max),
                rhs=sp.Min(1, _eta, (1 - ab_s) / ab_t),
                reason=r"The 'cap' schedule $\sigma_t = \min\{\eta, \sigma_t^{\max}\}$ is admissible for any $\eta \ge 0$.",
            ),
        ],
        symbols=(ab_s, ab_t, sig, P, _eta),
        references=("wang2025remasking", "sahoo2024simple"),
        code=(
            "genmath.families.discrete_diffusion.remdm_probs",
            "genmath.families.discrete_diffusion.remdm_sigma",
            "genmath.families.discrete_diffusion.remdm_sample",
        ),
        tests=("tests/families/test_discrete_diffusion_sampling.py",),
        domain={ab_s: (0.3, 0.9), ab_t: (0.05, 0.3), sig: (0.0, 1.0), _eta: (0.0, 1.5), P: (0.01, 0.99)},
    )
)

_frac = sp.Symbol("f", nonnegative=True)


def _remdm_step(name):
    """remdm_probs at a masked and a visible token (data token 0, model probability P on it)."""

    def evaluate(points):
        from ..families.discrete_diffusion import remdm_probs, remdm_sigma

        path = _mask_path(name)
        xt = torch.tensor([[path.mask_id, 0]])
        out = []
        for j in range(points[t].numel()):
            time, s_time = points[t][j], points[t][j] * points[_frac][j]
            sigma = remdm_sigma(path, s_time, time, schedule="rescale", eta=float(points[_eta][j]))
            x0_probs = _probs_with(points[P][j], torch.zeros(1, 2, dtype=torch.long), 4)
            probs = remdm_probs(path, x0_probs, xt, s_time, time, sigma)[0]
            keep = path.alpha_bar(time)  # the visible token's chance, as in the derivation's rows
            out.append(torch.stack([probs[0, 0], probs[0, 1:-1].sum(), probs[0, -1], keep * probs[1, 0],
                                    keep * probs[1, -1], probs[0].sum()]))
        return tuple(torch.stack(out).T)

    return evaluate


def _remdm_sigma(name, schedule):
    def evaluate(points):
        from ..families.discrete_diffusion import remdm_sigma

        path = _mask_path(name)
        return torch.stack([
            remdm_sigma(path, points[t][j] * points[_frac][j], points[t][j], schedule=schedule,
                        eta=float(points[_eta][j]))
            for j in range(points[t].numel())
        ])

    return evaluate


for _name in SCHEDULES:
    _ab_t, _ = _schedule_at(_name, t)
    _ab_s, _ = _schedule_at(_name, _frac * t)
    _times = {ab_t: _ab_t, ab_s: _ab_s}
    _domain = {t: Uniform(0.05, 0.98, ends=True), _frac: Uniform(0.0, 0.99, ends=True)}
    register(
        Binding(
            derivation="D-remdm-marginals",
            code=("genmath.families.discrete_diffusion.remdm_probs",),
            expression=(unmask * P, unmask * (1 - P), stay, ab_t * (1 - sig), ab_t * sig, _remdm_total),
            where={**_times, sig: _eta * sigma_max.subs(_times)},
            evaluate=in_float64(_remdm_step(_name)),
            domain={**_domain, _eta: Uniform(0.0, 1.0, ends=True), P: LogUniform(1e-3, 0.999)},
            samples=12,
            description=(
                f"remdm_probs, {_name} schedule: decode / stay masked at a masked token, keep / "
                "remask at a visible one"
            ),
        )
    )
    for _schedule, _expr, _range in (
        ("rescale", _eta * sigma_max, Uniform(0.0, 1.0, ends=True)),
        ("cap", sp.Min(_eta, sigma_max), Uniform(0.0, 1.5, ends=True)),  # sympy: Min(1, eta, ...)
    ):
        register(
            Binding(
                derivation="D-remdm-marginals",
                code=("genmath.families.discrete_diffusion.remdm_sigma",),
                expression=_expr,
                where=_times,
                evaluate=in_float64(_remdm_sigma(_name, _schedule)),
                domain={**_domain, _eta: _range},
                samples=12,
                description=f"remdm_sigma, {_schedule!r} schedule, {_name} path",
            )
        )
