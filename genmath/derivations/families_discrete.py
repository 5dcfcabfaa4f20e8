"""Discrete diffusion: the masked ELBO's weight and its exact-denoiser value, D3PM's hybrid loss,
the CTMC rates of discrete flow matching and their Euler step.

The posteriors of the masking and uniform kernels are `D-discrete-posterior` (in
``discrete_paths.py``); these derivations build on them. SEDD's concrete score and score
entropy are in ``families_sedd.py``. The bindings run the public code with denoisers whose
predicted probabilities are given, record the noisy tokens the code drew, and compare the
per-token values with the expressions, at fixed times: exactly, no Monte Carlo.
"""

import sympy as sp
import torch

from ._chain import FromStep
from ._draws import in_float64, integer_draw
from ._engine import CITED, Binding, Derivation, Integers, LogUniform, Step, Uniform
from ._registry import register

# ------------------------------------------------------------------ masked ELBO, one step
# c = (abar_s - abar_t)/(1 - abar_t): probability that a masked x_t was unmasked at s;
# 1 - c = (1 - abar_s)/(1 - abar_t): that it stays masked (D-discrete-posterior).
ab_s, ab_t = sp.symbols(r"\bar{alpha}_s \bar{alpha}_t", positive=True)
dab = sp.Symbol(r"\bar{alpha}'_t", real=True)  # the schedule's derivative at t (negative)
P = sp.Symbol("ptilde", positive=True)  # the model's probability of the data token
t, h = sp.symbols("t h", positive=True)
c = (ab_s - ab_t) / (1 - ab_t)
cosine = sp.cos(sp.pi * t / 2)
weight = -dab / (1 - ab_t)
masked_integrand = weight * (-sp.log(P))  # per masked token and unit time
_reverse_total = c * P + c * (1 - P) + (1 - c)

register(
    Derivation(
        id="D-masked-elbo",
        title="Masked diffusion: the continuous-time ELBO is a weighted cross-entropy on masked tokens",
        statement=(
            r"For the masking path with carry-over unmasking (the model keeps visible tokens), the "
            r"step KL of a masked token $x_t^\ell = m$ is $\mathrm{KL}(q(x_s \mid x_t, x_0)\,\|\,"
            r"p_\theta(x_s \mid x_t)) = -c\log\tilde p_\theta(x_0^\ell \mid x_t)$ with "
            r"$c = (\bar\alpha_s - \bar\alpha_t)/(1 - \bar\alpha_t)$ (visible tokens contribute 0). "
            r"Summing over a grid with $s = t - h$ and letting $h \to 0$, $c/h \to -\bar\alpha_t'/"
            r"(1 - \bar\alpha_t)$, so $-\mathrm{ELBO} = \int_0^1 \frac{-\bar\alpha_t'}{1 - "
            r"\bar\alpha_t}\mathbb E_{q(x_t \mid x_0)}\sum_{\ell: x_t^\ell = m} -\log\tilde "
            r"p_\theta(x_0^\ell \mid x_t)\,dt$ (Sahoo et al. 2024; Shi et al. 2024): the weight is "
            r"$-\bar\alpha'/(1 - \bar\alpha)$, not $-\bar\alpha'/\bar\alpha$. "
            r"Substituting $u = \bar\alpha_t$ removes the schedule (D-masked-elbo-exact)."
        ),
        start=c * sp.log(c / (c * P)) + (1 - c) * sp.log((1 - c) / (1 - c)),
        steps=[
            Step(
                rhs=-c * sp.log(P),
                reason=(
                    r"The target puts $c$ on $x_0^\ell$ and $1 - c$ on the mask; the model puts "
                    r"$c\,\tilde p_\theta(j)$ on each data symbol $j$ and $1 - c$ on the mask: only "
                    "the $x_0^\\ell$ term survives."
                ),
            ),
            Step(
                lhs=FromStep("D-masked-elbo", {ab_s: ab_t - h * dab}, step=1),
                rhs=h * masked_integrand,
                reason=(
                    r"A step of length $h$: $\bar\alpha_{t-h} = \bar\alpha_t - h\bar\alpha_t' + "
                    r"O(h^2)$, so $c = h\,(-\bar\alpha_t')/(1 - \bar\alpha_t) + O(h^2)$ and the step "
                    "KL is $h$ times the integrand."
                ),
            ),
            Step(
                rhs=h * masked_integrand,
                tag=CITED,
                theorem="Riemann sums of a continuous integrand converge to the integral",
                reference="rudin1976principles",
                reason=(
                    r"For any $C^1$ schedule the sum over steps $\sum_i h\,(\cdot)$ is a Riemann sum "
                    "of the integral; the $O(h^2)$ terms vanish in the limit."
                ),
            ),
            Step(
                lhs=_reverse_total,
                rhs=sp.Integer(1),
                reason=(
                    r"The model's reverse kernel at a masked token, $c\,\tilde p_\theta$ on the data "
                    r"symbols and $1 - c$ on the mask, is a distribution (shown with "
                    r"$\tilde p_\theta(x_0^\ell) = \tilde p$ and $1 - \tilde p$ on the others)."
                ),
            ),
            Step(
                lhs=FromStep(
                    "D-masked-elbo",
                    {ab_t: cosine, dab: sp.diff(cosine, t), h: 1, P: sp.exp(-1)},
                    step=2,
                ),
                rhs=sp.Limit(((cosine.subs(t, t - h) - cosine) / h) / (1 - cosine), h, 0),
                reason=(
                    r"Checked as a limit for the cosine schedule $\bar\alpha_t = \cos(\pi t/2)$: "
                    r"the weight is $\lim_{h\to 0} c/h$."
                ),
            ),
        ],
        symbols=(ab_s, ab_t, dab, P, t, h),
        references=("sahoo2024simple", "shi2024simplified", "austin2021structured"),
        code=(
            "genmath.families.discrete_diffusion.masked_diffusion_nelbo",
            "genmath.families.discrete_diffusion.reverse_probs",
            "genmath.families.discrete_diffusion.D3PM.step_kl",
        ),
        tests=("tests/families/test_discrete_diffusion.py",),
        domain={ab_s: (0.3, 0.9), ab_t: (0.05, 0.3), h: (0.01, 0.2)},
    )
)

_tau = sp.Symbol("tau", real=True)
# the schedules the bindings run: MaskPath's default 1 - t and the cosine one
SCHEDULES = {"linear": 1 - _tau, "cosine": sp.cos(sp.pi * _tau / 2)}


def _mask_path(name, categories=4):
    from ..core.discrete import MaskPath

    return MaskPath(categories, SCHEDULES[name], _tau)


def _schedule_at(name, time):
    expr = SCHEDULES[name]
    return expr.subs(_tau, time), sp.diff(expr, _tau).subs(_tau, time)


def _probs_with(P_value, x0, categories):
    """Per-token probabilities with P_value on the data token and the rest spread evenly."""
    rest = (1 - P_value) / (categories - 1)
    probs = torch.full((*x0.shape, categories), 1.0, dtype=torch.float64) * rest
    return probs.scatter(-1, x0[..., None], P_value.expand(*x0.shape, 1).to(torch.float64))


class _Recording:
    """A denoiser returning log-probabilities with P on each data token, recording its inputs."""

    def __init__(self, x0, P_value, categories):
        self.logits = _probs_with(P_value, x0, categories).log()
        self.inputs = []

    def __call__(self, xt, t):
        self.inputs.append((xt.clone(), t.clone()))
        return self.logits.expand(xt.shape[0], *self.logits.shape[1:])


def _masked_count(path, xt):
    return int((xt == path.mask_id).sum())


def _masked_nelbo(name):
    """masked_diffusion_nelbo at a fixed t with P on every data token: the value per masked
    token (the code's draw of x_t, recorded, gives the count; a seed with no mask is skipped)."""

    def evaluate(points):
        from ..families.discrete_diffusion import masked_diffusion_nelbo

        path = _mask_path(name)
        x0 = torch.arange(16)[None] % 4
        out = []
        for j in range(points[t].numel()):
            denoiser = _Recording(x0, points[P][j], 4)
            for seed in range(j, j + 50):
                value = masked_diffusion_nelbo(denoiser, path, x0, t=points[t][j],
                                               generator=torch.Generator().manual_seed(seed))
                count = _masked_count(path, denoiser.inputs[-1][0])
                if count:
                    break
            out.append(value[0] / count)
        return torch.stack(out)

    return evaluate


for _name in SCHEDULES:
    _ab, _dab = _schedule_at(_name, t)
    register(
        Binding(
            derivation="D-masked-elbo",
            code=("genmath.families.discrete_diffusion.masked_diffusion_nelbo",),
            expression=masked_integrand,
            where={ab_t: _ab, dab: _dab},
            evaluate=in_float64(_masked_nelbo(_name)),
            domain={t: Uniform(0.05, 0.999), P: LogUniform(1e-3, 0.999)},
            samples=12,
            description=(
                f"masked_diffusion_nelbo at a given t, {_name} schedule: the integrand "
                "-abar'/(1 - abar) (-log p) per masked token"
            ),
        )
    )


def _reverse_masked(name):
    """reverse_probs at a masked token: c on the data symbols (times the model's p), 1 - c on
    the mask."""

    def evaluate(points):
        from ..families.discrete_diffusion import reverse_probs

        path = _mask_path(name)
        xt = torch.full((1, 1), path.mask_id)
        out = []
        for j in range(points[t].numel()):
            s_time = points[t][j] * points[_frac][j]
            x0_probs = _probs_with(points[P][j], torch.zeros(1, 1, dtype=torch.long), 4)
            probs = reverse_probs(path, x0_probs, xt, s_time, points[t][j])[0, 0]
            out.append(torch.stack([probs[0], probs[1:-1].sum(), probs[-1], probs.sum()]))
        return tuple(torch.stack(out).T)

    return evaluate


_frac = sp.Symbol("f", positive=True)  # s = f t
for _name in SCHEDULES:
    _ab_t, _ = _schedule_at(_name, t)
    _ab_s, _ = _schedule_at(_name, _frac * t)
    register(
        Binding(
            derivation="D-masked-elbo",
            code=("genmath.families.discrete_diffusion.reverse_probs",),
            expression=(c * P, c * (1 - P), 1 - c, _reverse_total),
            where={ab_t: _ab_t, ab_s: _ab_s},
            evaluate=in_float64(_reverse_masked(_name)),
            domain={t: Uniform(0.05, 1.0, ends=True), _frac: Uniform(0.0, 0.99, ends=True), P: LogUniform(1e-3, 0.999)},
            samples=12,
            description=(
                f"reverse_probs of a masked token, {_name} schedule, s < t: c p on the data "
                "token, 1 - c on the mask"
            ),
        )
    )


# --------------------------------------------------- the exact denoiser: two tokens
u = sp.Symbol("u", positive=True)
lp1, lp2, lp12 = sp.symbols("ell_1 ell_2 ell_12", real=True)  # log p(x1), log p(x2), log p(x1, x2)
both_masked = -lp1 - lp2  # each masked token predicted from nothing
one_masked = -(lp12 - lp2) - (lp12 - lp1)  # -log p(x1 | x2) - log p(x2 | x1)
exact_integrand = ((1 - u) ** 2 * both_masked + u * (1 - u) * one_masked) / (1 - u)

register(
    Derivation(
        id="D-masked-elbo-exact",
        title="Masked diffusion with the exact denoiser: the bound is -log p(x0), for any schedule",
        statement=(
            r"With the exact denoiser, $\tilde p = p(x_0^\ell \mid \text{visible tokens})$, the "
            r"masked ELBO (D-masked-elbo) equals $-\log p(x_0)$, and it does not depend on the "
            r"schedule: in the variable $u = \bar\alpha_t$, $-\bar\alpha_t'\,dt = -du$ and the "
            r"weight $1/(1 - u)$ meets the probabilities of the masks. For two tokens both are "
            r"masked with probability $(1 - u)^2$ (each predicted by its marginal) and one with "
            r"probability $u(1 - u)$ each (predicted by its conditional given the other): the "
            r"integral averages the two orders of the chain rule ($\ell_{12} = \log p(x_1, x_2)$)."
        ),
        start=sp.Integral(exact_integrand, (u, 0, 1)),
        steps=[
            Step(
                rhs=-lp12,
                reason=(
                    r"$\int_0^1 (1-u)\,du = \int_0^1 u\,du = \tfrac12$ and $\log p(x_1) + \log "
                    r"p(x_2 \mid x_1) = \log p(x_2) + \log p(x_1 \mid x_2) = \ell_{12}$."
                ),
            ),
        ],
        symbols=(u, lp1, lp2, lp12),
        references=("sahoo2024simple", "shi2024simplified"),
        code=("genmath.families.discrete_diffusion.masked_diffusion_nelbo",),
        tests=("tests/families/test_discrete_diffusion.py",),
    )
)

_p00, _p01, _p10 = sp.symbols("p_00 p_01 p_10", positive=True)  # the joint of two binary tokens


def _exact_fixed_time(name):
    """The fixed-t expectation of masked_diffusion_nelbo over the masks, exactly: the code's
    value on each mask pattern (found among a large batch of one data point) times the pattern's
    probability; divided by -abar'(t) it is the u-integrand at u = abar(t)."""

    def evaluate(points):
        from ..families.discrete_diffusion import masked_diffusion_nelbo

        path = _mask_path(name, categories=2)
        x0 = torch.zeros(4096, 2, dtype=torch.long)
        ab_expr, dab_expr = (sp.lambdify(_tau, e, "math") for e in (SCHEDULES[name], sp.diff(SCHEDULES[name], _tau)))
        out = []
        for j in range(points[t].numel()):
            joint = torch.stack([points[_p00][j], points[_p01][j], points[_p10][j]])
            joint = torch.cat([joint, (1 - joint.sum()).reshape(1)]).reshape(2, 2)

            def denoiser(xt, time, joint=joint):
                # exact p(x_l | the visible tokens) of the 2 x 2 joint
                a, b = xt[:, 0], xt[:, 1]
                first = torch.where((b == path.mask_id)[:, None], joint.sum(1), joint[:, b.clamp(max=1)].T)
                second = torch.where((a == path.mask_id)[:, None], joint.sum(0), joint[a.clamp(max=1), :])
                return torch.stack([first, second], 1).log()

            recorder = []

            def recorded(xt, time, denoiser=denoiser, recorder=recorder):
                recorder.append(xt.clone())
                return denoiser(xt, time)

            values = masked_diffusion_nelbo(recorded, path, x0, t=points[t][j],
                                            generator=torch.Generator().manual_seed(j))
            xt = recorder[-1]
            keep = float(ab_expr(float(points[t][j])))
            total = 0.0
            for pattern in ((True, True), (True, False), (False, True), (False, False)):
                masked = torch.tensor(pattern)
                rows = ((xt == path.mask_id) == masked).all(1).nonzero()
                if rows.numel() == 0:
                    raise ValueError(f"mask pattern {pattern} not drawn: use a larger batch")
                chance = 1.0
                for m in pattern:
                    chance *= (1 - keep) if m else keep
                total = total + chance * values[rows[0, 0]]
            out.append(total / -dab_expr(float(points[t][j])))
        return torch.stack(out)

    return evaluate


for _name in SCHEDULES:
    register(
        Binding(
            derivation="D-masked-elbo-exact",
            code=("genmath.families.discrete_diffusion.masked_diffusion_nelbo",),
            expression=exact_integrand,
            where={
                u: SCHEDULES[_name].subs(_tau, t),
                lp12: sp.log(_p00),
                lp1: sp.log(_p00 + _p01),
                lp2: sp.log(_p00 + _p10),
            },
            evaluate=in_float64(_exact_fixed_time(_name)),
            domain={t: Uniform(0.2, 0.8), _p00: Uniform(0.05, 0.3), _p01: Uniform(0.05, 0.3), _p10: Uniform(0.05, 0.3)},
            samples=6,
            description=(
                f"masked_diffusion_nelbo with the exact denoiser of two binary tokens, {_name} "
                "schedule: its expectation over the masks at fixed t, exactly"
            ),
        )
    )


# ------------------------------------------------------------------------ D3PM's hybrid loss
T, i_step = sp.symbols("T i", integer=True, positive=True)
lam = sp.Symbol("lambda", nonnegative=True)
_hybrid = T * (-c * sp.log(P)) + lam * (-sp.log(P))
_two_step_nelbo = sp.Add(
    -c.subs({ab_s: 1, ab_t: sp.Rational(1, 2)}) * sp.log(P),
    -c.subs({ab_s: sp.Rational(1, 2), ab_t: 0}) * sp.log(P),
    evaluate=False,
)

register(
    Derivation(
        id="D-d3pm-hybrid-loss",
        title="D3PM's hybrid loss per masked token: T times the step KL plus lambda times the cross-entropy",
        statement=(
            r"D3PM (Austin et al. 2021) trains on $T\,\mathrm{KL}_i + \mathrm{KL}_\mathrm{prior} + "
            r"\lambda\,\mathrm{CE}_i$ at one uniformly drawn step $i$ — an unbiased estimate of "
            r"$-\mathrm{ELBO} + \lambda\,\mathbb E_i\mathrm{CE}_i$, since $\mathbb E_i[T\,"
            r"\mathrm{KL}_i] = \sum_i\mathrm{KL}_i$. On the masking path the prior KL is 0 "
            r"($\bar\alpha_1 = 0$: every token masked, as the prior), a visible token contributes "
            r"nothing, and a masked one $T(-c_i\log\tilde p) + \lambda(-\log\tilde p)$ with "
            r"$c_i$ the unmasking probability of D-masked-elbo at $s = t_{i-1}$, $t = t_i$; at "
            r"$i = 1$, $c_1 = 1$: the reconstruction term $-\log\tilde p_\theta(x_0 \mid x_{t_1})$. "
            r"For $\bar\alpha_t = 1 - t$ on $t_i = i/T$, $c_i = 1/i$."
        ),
        start=_hybrid,
        steps=[
            Step(
                rhs=-(T * c + lam) * sp.log(P),
                reason="Both terms are multiples of the masked token's log-probability.",
            ),
            Step(
                lhs=FromStep(
                    "D-d3pm-hybrid-loss", {ab_s: 1 - (i_step - 1) / T, ab_t: 1 - i_step / T}, step=1
                ),
                rhs=-(T / i_step + lam) * sp.log(P),
                reason=r"The linear schedule on $t_i = i/T$: $c_i = (1/T)/(i/T) = 1/i$.",
            ),
            Step(
                lhs=_two_step_nelbo,
                rhs=-sp.Rational(3, 2) * sp.log(P),
                reason=(
                    r"The negative ELBO (prior 0) on $T = 2$ steps of the linear schedule, for a "
                    r"token masked at $t_1 = \tfrac12$ (and so at $t_2 = 1$): the sum of the two "
                    r"step KLs $-c_i\log\tilde p$, $c_1 = 1$ (the reconstruction) and $c_2 = "
                    r"\tfrac12$ (D-masked-elbo) — the KLs, not the cross-entropies $-\log\tilde p$."
                ),
            ),
        ],
        symbols=(T, i_step, lam, P, ab_s, ab_t),
        references=("austin2021structured", "sahoo2024simple"),
        code=(
            "genmath.families.discrete_diffusion.D3PM.loss",
            "genmath.families.discrete_diffusion.D3PM.step_kl",
            "genmath.families.discrete_diffusion.D3PM.negative_elbo",
            "genmath.families.discrete_diffusion.D3PM.prior_kl",
        ),
        tests=("tests/families/test_discrete_diffusion.py",),
        domain={T: Integers(1, 8), i_step: Integers(1, 8)},
    )
)

_seed = sp.Symbol("seed", integer=True, nonnegative=True)


def _d3pm_values(kind):
    """D3PM on MaskPath(4) (1 - t) with P on every data token: per masked token (counted in the
    tokens the code drew and passed to the denoiser) the loss, the step KL and CE, or the
    negative ELBO of T = 1."""

    def evaluate(points):
        from ..families.discrete_diffusion import D3PM

        path = _mask_path("linear")
        x0 = torch.arange(96)[None] % 4
        out = []
        for j in range(points[P].numel()):
            steps = int(points[T][j]) if T in points else 1
            weight = float(points[lam][j]) if lam in points else 0.0
            seed = int(points[_seed][j]) if _seed in points else j
            for attempt in range(50):
                denoiser = _Recording(x0, points[P][j], 4)
                model = D3PM(denoiser, path, steps, aux_weight=weight)
                generator = torch.Generator().manual_seed(seed + 10**7 * attempt)
                if kind == "loss":
                    value = model.loss(x0, generator)
                elif kind == "negative_elbo":
                    value = model.negative_elbo(x0, generator)[0]  # the prior KL included
                else:
                    kl, ce = model.step_kl(x0, int(points[i_step][j]), generator)
                    value = torch.stack([kl[0], ce[0]])
                count = _masked_count(path, denoiser.inputs[-1][0])
                if count:
                    break
            if kind == "loss" and attempt:
                raise ValueError("the seeded draw masked no token; widen the sequence")
            out.append(value / count)
        return tuple(torch.stack(out).T) if kind == "step" else torch.stack(out)

    return evaluate


register(
    Binding(
        derivation="D-d3pm-hybrid-loss",
        code=("genmath.families.discrete_diffusion.D3PM.loss",),
        expression=-(T / i_step + lam) * sp.log(P),
        where={i_step: integer_draw(_seed, 1, T + 1)},
        evaluate=in_float64(_d3pm_values("loss")),
        domain={T: Integers(1, 6), lam: LogUniform(1e-3, 1.0), P: LogUniform(1e-3, 0.999), _seed: Integers(0, 10**6)},
        samples=12,
        description=(
            "D3PM.loss (T steps, aux weight lambda) per masked token at the step i its seeded "
            "generator draws first: -(T / i + lambda) log p"
        ),
    )
)
register(
    Binding(
        derivation="D-masked-elbo",
        code=("genmath.families.discrete_diffusion.D3PM.step_kl",),
        expression=(-c * sp.log(P), -sp.log(P)),
        where={ab_s: 1 - (i_step - 1) / T, ab_t: 1 - i_step / T},
        evaluate=in_float64(_d3pm_values("step")),
        domain={T: Integers(8, 8), i_step: Integers(1, 8), P: LogUniform(1e-3, 0.999)},
        samples=12,
        description=(
            "D3PM.step_kl (T = 8, MaskPath, 1 - t) per masked token: the step KL -c_i log p "
            "and the cross-entropy -log p (visible tokens carry over: 0)"
        ),
    )
)
def _d3pm_two_step_nelbo(points):
    """D3PM.negative_elbo on MaskPath(4) (1 - t), T = 2, one token, at seeds whose first step
    masks it (the second, at t = 1, always does)."""
    from ..families.discrete_diffusion import D3PM

    path = _mask_path("linear")
    x0 = torch.tensor([[2]])
    out = []
    for j in range(points[P].numel()):
        for attempt in range(64):
            denoiser = _Recording(x0, points[P][j], 4)
            value = D3PM(denoiser, path, 2).negative_elbo(
                x0, torch.Generator().manual_seed(j + 1000 * attempt)
            )
            if _masked_count(path, denoiser.inputs[0][0]) == 1:
                break
        else:
            raise ValueError("no seed masked the token at t_1")
        out.append(value[0])
    return torch.stack(out)


register(
    Binding(
        derivation="D-d3pm-hybrid-loss",
        code=("genmath.families.discrete_diffusion.D3PM.negative_elbo",),
        expression=_two_step_nelbo,
        evaluate=in_float64(_d3pm_two_step_nelbo),
        domain={P: LogUniform(1e-3, 0.999)},
        samples=8,
        description=(
            "D3PM.negative_elbo on two steps (T = 2, MaskPath, 1 - t), one token masked at both: "
            "the step KLs -log p and -(1/2) log p, summed"
        ),
    )
)
register(
    Binding(
        derivation="D-d3pm-hybrid-loss",
        code=(
            "genmath.families.discrete_diffusion.D3PM.negative_elbo",
            "genmath.families.discrete_diffusion.D3PM.prior_kl",
        ),
        expression=-(T / i_step + lam) * sp.log(P),
        where={T: 1, i_step: 1, lam: 0},
        evaluate=in_float64(_d3pm_values("negative_elbo")),
        domain={P: LogUniform(1e-3, 0.999)},
        samples=12,
        description=(
            "D3PM.negative_elbo and prior_kl (T = 1, so one step: the reconstruction) per masked "
            "token: -log p, and the prior KL 0"
        ),
    )
)
