"""Flow matching and stochastic interpolants: the identities their losses and samplers rely
on, bound to `cfm_loss`, `interpolate`, `sample_times` and `standard_normal_log_prob`. The
couplings of rectified flow (minibatch OT, reflow) and its straightness are in
``families_rectified_flow.py``.

The consistency models' boundary and the MeanFlow identity are in ``families_few_step.py``.
"""


import sympy as sp

from ._draws import normal_draw, uniform_draw
from ._engine import (
    Binding,
    Derivation,
    Integers,
    LogUniform,
    Step,
    Uniform,
)
from ._gaussian import log_normal
from ._registry import register

PARAMETERIZATIONS = ("velocity", "x0", "eps", "v", "score")
_tau, _lam = sp.Symbol("tau", nonnegative=True), sp.Symbol("lambda", real=True)
_seed = sp.Symbol("seed", integer=True, nonnegative=True)

# --------------------------------------------------------------------------- CFM = FM + const
# Given x_t, the conditional target c = d(alpha) x0 + d(sigma) eps is random; a two-point law
# (values c1, c2 with probabilities p, 1 - p) is enough to show the algebra, and any finite
# law is a sum of such terms (linearity of the expectation).
v_model, c1, c2 = sp.symbols("v c_1 c_2", real=True)
p = sp.Symbol("p", positive=True)
u_marginal = p * c1 + (1 - p) * c2  # u_t(x) = E[c | x_t = x]
cfm_point = p * (v_model - c1) ** 2 + (1 - p) * (v_model - c2) ** 2
conditional_variance = p * (c1 - u_marginal) ** 2 + (1 - p) * (c2 - u_marginal) ** 2

register(
    Derivation(
        id="D-cfm-equals-fm",
        title="Conditional flow matching equals marginal flow matching plus a constant",
        statement=(
            r"At every $(x_t, t)$, $\mathbb E\big[\|v - c\|^2 \mid x_t\big] = \|v - u_t(x_t)\|^2 + "
            r"\operatorname{tr}\operatorname{Cov}[c \mid x_t]$ for the conditional target "
            r"$c = \dot\alpha_t x_0 + \dot\sigma_t\varepsilon$ and its conditional mean, the "
            r"marginal velocity $u_t(x) = \mathbb E[c \mid x_t = x]$. Averaged over $(t, x_t)$: "
            r"$\mathcal L_\mathrm{CFM}(\theta) = \mathcal L_\mathrm{FM}(\theta) + C$ with $C$ "
            r"independent of the model $v = v_\theta(x_t, t)$, so the two losses have the same "
            r"gradients and the same minimiser $u_t$ (Lipman et al. 2023, Thm. 2). Shown per "
            r"coordinate for a two-point conditional law $c \in \{c_1, c_2\}$ with probabilities "
            r"$p, 1 - p$; a general law is a mixture of such terms. `cfm_loss` computes the "
            r"sample $(v - c)^2$, summed over the event."
        ),
        start=sp.ImmutableMatrix([cfm_point, sp.Derivative(cfm_point, v_model)]),
        steps=[
            Step(
                rhs=sp.ImmutableMatrix(
                    [
                        (v_model - u_marginal) ** 2 + conditional_variance,
                        sp.Derivative((v_model - u_marginal) ** 2, v_model),
                    ]
                ),
                reason=(
                    r"Write $v - c = (v - u) + (u - c)$ and expand; the cross term "
                    r"$2(v - u)\,\mathbb E[u - c \mid x_t]$ vanishes because "
                    r"$u = p c_1 + (1-p) c_2$ is the conditional mean. The gap does not depend on "
                    r"the model output $v$, so the gradients in $v$ (hence in $\theta$) agree."
                ),
            ),
        ],
        symbols=(v_model, c1, c2, p),
        references=("lipman2023flow", "tong2024improving"),
        code=("genmath.families.flow_matching.cfm_loss",),
        tests=("tests/families/test_flow_matching.py",),
        domain={p: (0.05, 0.95)},
    )
)

# cfm_loss at given times and noise, on two schedules, every parameterization; the conditional
# target d(alpha) x0 + d(sigma) x1 from each schedule's own sympy definition.
_t = sp.Symbol("t", positive=True)
x_data, x_noise = sp.symbols("x_0 x_1", real=True)


def _scales(name):
    from ..core.schedules import VP, CondOT

    alpha, sigma = (
        CondOT.definition(_tau, _lam) if name == "CondOT" else VP.definition(_tau, _lam, sp.Rational(1, 10), 20)
    )[:2]
    return {
        "alpha": alpha.subs(_tau, _t),
        "sigma": sigma.subs(_tau, _t),
        "d_alpha": sp.diff(alpha, _tau).subs(_tau, _t),
        "d_sigma": sp.diff(sigma, _tau).subs(_tau, _t),
    }


def _converting_model(path, velocity, name):
    def model(xt, t):
        return path.convert(velocity.expand_as(xt), xt, t, "velocity", name)

    return model


def _cfm_values(schedule_name):
    def evaluate(points):
        import torch

        from ..core import schedules
        from ..core.path import GaussianPath
        from ..families.flow_matching import cfm_loss

        path = GaussianPath(getattr(schedules, schedule_name)())
        scale = torch.tensor([1.0, 2.0], dtype=torch.float64)  # event (2,): the loss is 5 (v - c)^2
        out = []
        n = points[v_model].numel()
        # CondOT's target does not depend on t: then t runs over the interval
        times = points.get(_t, torch.linspace(0.01, 0.99, n, dtype=torch.float64))
        for j in range(n):
            name = PARAMETERIZATIONS[j % len(PARAMETERIZATIONS)]
            velocity = points[v_model][j] * scale[None]
            value = cfm_loss(
                _converting_model(path, velocity, name),
                points[x_data][j] * scale[None],
                path,
                parameterization=name,
                t=times[j],
                noise=points[x_noise][j] * scale[None],
                reduction="none",
            )
            out.append(value[0] / 5)
        return torch.stack(out)

    return evaluate


for _name in ("CondOT", "VP"):
    _sc = _scales(_name)
    register(
        Binding(
            derivation="D-cfm-equals-fm",
            code=("genmath.families.flow_matching.cfm_loss",),
            expression=(v_model - c1) ** 2,
            where={c1: _sc["d_alpha"] * x_data + _sc["d_sigma"] * x_noise},
            evaluate=_cfm_values(_name),
            domain={
                _t: Uniform(0.01, 0.99),
                v_model: Uniform(-3, 3),
                x_data: Uniform(-3, 3),
                x_noise: Uniform(-3, 3),
            },
            samples=10,
            description=(
                f"cfm_loss on {_name}() at given t and noise, every parameterization: (v - c)^2 "
                "with c = d(alpha) x0 + d(sigma) x1, summed over the event"
            ),
        )
    )


# --------------------------------------------------------------- the stochastic interpolant
amplitude = sp.Symbol("a", positive=True)
z = sp.Symbol("z", real=True)
time = sp.Symbol("t", real=True)
alpha_f, sigma_f = sp.Function("alpha"), sp.Function("sigma")
gamma = sp.sqrt(amplitude * time * (1 - time))
interpolant = alpha_f(time) * x_data + sigma_f(time) * x_noise + gamma * z
d_gamma = amplitude * (1 - 2 * time) / (2 * sp.sqrt(amplitude * time * (1 - time)))
interpolant_velocity = (
    sp.Derivative(alpha_f(time), time) * x_data + sp.Derivative(sigma_f(time), time) * x_noise + d_gamma * z
)

register(
    Derivation(
        id="D-stochastic-interpolant",
        title="The stochastic interpolant's noise gamma_t = sqrt(a t (1 - t)) and its velocity",
        statement=(
            r"Albergo et al. (2023)'s stochastic interpolant adds $\gamma_t z$, $z \sim \mathcal "
            r"N(0, I)$, to a Gaussian path: $x_t = \alpha_t x_0 + \sigma_t x_1 + \gamma_t z$ with "
            r"$\gamma_t = \sqrt{a\,t(1-t)}$, which vanishes at both ends (the interpolant still "
            r"joins data to noise). Its conditional velocity, the regression target, is "
            r"$\dot\alpha_t x_0 + \dot\sigma_t x_1 + \dot\gamma_t z$ with $\dot\gamma_t = "
            r"a(1 - 2t)/(2\gamma_t)$, finite inside $(0, 1)$."
        ),
        start=sp.ImmutableMatrix([sp.Derivative(interpolant, time), gamma.subs(time, 0), gamma.subs(time, 1)]),
        steps=[
            Step(
                rhs=sp.ImmutableMatrix([interpolant_velocity, 0, 0]),
                reason=(
                    r"Differentiate in $t$: $\frac{d}{dt}\sqrt{a t(1-t)} = \frac{a(1 - 2t)}"
                    r"{2\sqrt{a t (1 - t)}}$; $\gamma_0 = \gamma_1 = 0$."
                ),
            ),
        ],
        symbols=(amplitude, time, x_data, x_noise, z),
        references=("albergo2023stochastic",),
        code=("genmath.families.flow_matching.interpolate", "genmath.families.flow_matching.cfm_loss"),
        tests=("tests/families/test_flow_matching.py",),
        domain={time: (0.01, 0.99)},
    )
)


def _path_case(name):
    """where-entries putting a schedule's alpha, sigma and their derivatives into the
    interpolant (the code's path), and z the seeded generator's first draw."""
    sc = _scales(name)
    return {
        alpha_f(time): sc["alpha"].subs(_t, time),
        sigma_f(time): sc["sigma"].subs(_t, time),
        sp.Derivative(alpha_f(time), time): sc["d_alpha"].subs(_t, time),
        sp.Derivative(sigma_f(time), time): sc["d_sigma"].subs(_t, time),
        z: normal_draw(_seed),
    }


def _interpolated(schedule_name):
    def evaluate(points):
        import torch

        from ..core import schedules
        from ..core.path import GaussianPath
        from ..families.flow_matching import cfm_loss, interpolate

        path = GaussianPath(getattr(schedules, schedule_name)())
        states, targets, losses = [], [], []
        for j in range(points[time].numel()):
            x0, x1 = points[x_data][j].reshape(1, 1), points[x_noise][j].reshape(1, 1)
            seed, a = int(points[_seed][j]), float(points[amplitude][j])
            xt, target = interpolate(
                x0, x1, points[time][j], path, noise_scale=a,
                generator=torch.Generator().manual_seed(seed),
            )
            states.append(xt[0, 0])
            targets.append(target[0, 0])
            # cfm_loss with a zero velocity model draws the same z: its loss is target^2
            loss = cfm_loss(
                lambda x, t: torch.zeros_like(x), x0, path, t=points[time][j], noise=x1,
                noise_scale=a, generator=torch.Generator().manual_seed(seed), reduction="none",
            )
            losses.append(loss[0].sqrt() * target[0, 0].sign())
        return torch.stack(states), torch.stack(targets), torch.stack(losses)

    return evaluate


for _name in ("CondOT", "VP"):
    register(
        Binding(
            derivation="D-stochastic-interpolant",
            code=("genmath.families.flow_matching.interpolate", "genmath.families.flow_matching.cfm_loss"),
            expression=(interpolant, interpolant_velocity, interpolant_velocity),
            where=_path_case(_name),
            evaluate=_interpolated(_name),
            domain={
                time: Uniform(1e-3, 0.999),
                amplitude: LogUniform(1e-3, 10.0),
                x_data: Uniform(-3, 3),
                x_noise: Uniform(-3, 3),
                _seed: Integers(0, 10**6),
            },
            samples=12,
            description=(
                f"interpolate on {_name}() with noise_scale a and a seeded z: x_t and its target; "
                "and cfm_loss's target through the same draw"
            ),
        )
    )


# ------------------------------------------------------------------------------ time sampling
lo, width, location, z_t = sp.symbols("t_{lo} w m z", real=True)
scale_t, u_t = sp.symbols("s u", positive=True)
hi = lo + width
_time_value = sp.Symbol("t", real=True)


def _sigmoid(v):
    return 1 / (1 + sp.exp(-v))


logit_normal_time = lo + (hi - lo) * _sigmoid(location + scale_t * z_t)
uniform_time = lo + (hi - lo) * u_t

register(
    Derivation(
        id="D-time-sampling",
        title="Training times: uniform, or logit-normal on [t_lo, t_hi]",
        statement=(
            r"`sample_times` draws $t = t_{lo} + (t_{hi} - t_{lo})\,u$ with $u \sim U(0, 1)$, or "
            r"with $u = \operatorname{sigmoid}(m + s z)$, $z \sim \mathcal N(0, 1)$: the "
            r"logit-normal law of Esser et al. (2024), under which $\operatorname{logit}$ of the "
            r"rescaled time is $\mathcal N(m, s^2)$, concentrating training on the middle of the "
            "path."
        ),
        start=sp.ImmutableMatrix(
            [
                sp.Subs(sp.log((_time_value - lo) / (hi - _time_value)), _time_value, logit_normal_time),
                sp.Subs((_time_value - lo) / (hi - lo), _time_value, uniform_time),
            ]
        ),
        steps=[
            Step(
                rhs=sp.ImmutableMatrix([location + scale_t * z_t, u_t]),
                reason=(
                    r"$\operatorname{logit}\operatorname{sigmoid}(v) = v$: the rescaled logit of a "
                    "logit-normal time is the normal draw; a uniform time rescales back to $u$."
                ),
                method=lambda e: sp.expand(sp.expand_log(sp.cancel(e), force=True)),
            ),
        ],
        symbols=(lo, width, location, scale_t, z_t, u_t),
        references=("esser2024scaling", "lipman2023flow"),
        code=("genmath.families.flow_matching.sample_times",),
        tests=("tests/families/test_flow_matching.py",),
        domain={lo: (0.0, 0.5), width: (0.1, 0.5)},
    )
)


def _times(distribution):
    def evaluate(points):
        import torch

        from ..families.flow_matching import sample_times

        out = []
        for j in range(points[lo].numel()):
            low = float(points[lo][j])
            options = {}
            if distribution == "logit_normal":
                options = {"location": float(points[location][j]), "scale": float(points[scale_t][j])}
            drawn = sample_times(
                1,
                distribution,
                interval=(low, low + float(points[width][j])),
                generator=torch.Generator().manual_seed(int(points[_seed][j])),
                dtype=torch.float64,
                **options,
            )
            out.append(drawn[0])
        return torch.stack(out)

    return evaluate


_time_domain = {lo: Uniform(0, 0.5), width: Uniform(0.01, 0.5), _seed: Integers(0, 10**6)}
register(
    Binding(
        derivation="D-time-sampling",
        code=("genmath.families.flow_matching.sample_times",),
        expression=logit_normal_time,
        where={z_t: normal_draw(_seed)},
        evaluate=_times("logit_normal"),
        domain={**_time_domain, location: Uniform(-2, 2), scale_t: LogUniform(0.1, 3.0)},
        samples=16,
        description="sample_times(logit_normal) with a seeded generator",
    )
)
register(
    Binding(
        derivation="D-time-sampling",
        code=("genmath.families.flow_matching.sample_times",),
        expression=uniform_time,
        where={u_t: uniform_draw(_seed)},
        evaluate=_times("uniform"),
        domain=_time_domain,
        samples=16,
        description="sample_times(uniform) with a seeded generator",
    )
)

_margin = sp.Symbol("m", positive=True)  # the schedule's min_scale


def _interpolant_times(points):
    """The time cfm_loss draws for a stochastic interpolant (t=None, noise_scale > 0) on
    VP(min_scale=m), recorded from the model's call: the interval is the safe interval
    clipped to [m, 1 - m], which for VP and m <= 5e-3 is [m, 1 - m] itself (sigma_t reaches
    m at 10 m^2 < m, and alpha_1 = e^{-5.025} > m)."""
    import torch

    from ..core.path import GaussianPath
    from ..core.schedules import VP
    from ..families.flow_matching import cfm_loss

    out = []
    for j in range(points[_seed].numel()):
        seen = []

        def model(x, t, seen=seen):
            seen.append(t.detach().clone())
            return torch.zeros_like(x)

        path = GaussianPath(VP(min_scale=float(points[_margin][j])))
        x0 = torch.zeros(1, 1, dtype=torch.float64)
        cfm_loss(model, x0, path, noise=x0 + 1, noise_scale=0.5,
                 generator=torch.Generator().manual_seed(int(points[_seed][j])))
        out.append(seen[0].reshape(-1)[0])
    return torch.stack(out)


register(
    Binding(
        derivation="D-time-sampling",
        code=("genmath.families.flow_matching.cfm_loss", "genmath.families.flow_matching.sample_times"),
        expression=uniform_time,
        where={u_t: uniform_draw(_seed), lo: _margin, width: 1 - 2 * _margin},
        evaluate=_interpolant_times,
        domain={_margin: LogUniform(1e-4, 5e-3), _seed: Integers(0, 10**6)},
        samples=12,
        description=(
            "cfm_loss's own time for a stochastic interpolant (t=None, noise_scale > 0): "
            "uniform on [m, 1 - m], m the schedule's min_scale"
        ),
    )
)


# ------------------------------------------------------------------- the standard normal prior
y1, y2 = sp.symbols("y_1 y_2", real=True)

register(
    Derivation(
        id="D-standard-normal-prior",
        title="The prior of a path ending at (alpha_1, sigma_1) = (0, 1): log N(x; 0, I)",
        statement=(
            r"A path with $\alpha_1 = 0$, $\sigma_1 = 1$ (CondOT, the flow-matching paths) ends at "
            r"$\mathcal N(0, I)$, whose log-density in $d$ dimensions is $-\tfrac12(\|x\|^2 + "
            r"d\log 2\pi)$: the sum of $d$ standard normal log-densities (shown for $d = 2$)."
        ),
        start=log_normal(y1, 0, 1) + log_normal(y2, 0, 1),
        steps=[Step(rhs=-(y1**2 + y2**2 + 2 * sp.log(2 * sp.pi)) / 2, reason="Collect the terms.")],
        symbols=(y1, y2),
        references=("lipman2023flow",),
        code=("genmath.families.flow_matching.standard_normal_log_prob",),
        tests=("tests/families/test_flow_matching.py",),
    )
)


def _standard_normal(points):
    import torch

    from ..families.flow_matching import standard_normal_log_prob

    return standard_normal_log_prob(torch.stack([points[y1], points[y2]], 1))


register(
    Binding(
        derivation="D-standard-normal-prior",
        code=("genmath.families.flow_matching.standard_normal_log_prob",),
        expression=-(y1**2 + y2**2 + 2 * sp.log(2 * sp.pi)) / 2,
        evaluate=_standard_normal,
        domain={y1: Uniform(-5, 5), y2: Uniform(-5, 5)},
        samples=16,
        description="standard_normal_log_prob on a 2-D event",
    )
)

