"""f-GAN (Nowozin et al. 2016): the variational bound of each f-divergence, its convex
conjugate, optimal critic and output activation, bound to `genmath.families.gan`'s
`F_DIVERGENCES`, `fgan_bound` and the f-GAN losses over the whole domain of each conjugate.
"""

import math

import sympy as sp

from ._engine import NUMERIC, SYMBOLIC, Binding, Check, Derivation, LogUniform, Step, Uniform
from ._gan_common import DENSITY, GAN, TESTS, optimal_outputs, p, pair, q, rows
from ._registry import register

u = sp.Symbol("u", positive=True)  # the density ratio p/q at one point
v_p, v_q = sp.symbols("v_p v_q", real=True)  # raw outputs on a real and on a fake sample
tau = sp.Symbol("tau", positive=True)  # the distance of T to the edge of the domain of f*


def _fganrows():
    """name -> (label, f(u), f*(t), u*(t) = (f')^{-1}(t), t, g_f(v), f*(g_f(v)) simplified,
    t from tau (the domain of f*), text of the activation, text of the domain)."""
    t_real = sp.Symbol("t", real=True)
    t_neg = sp.Symbol("t", negative=True)
    log2 = sp.log(2)
    return {
        "kl": (
            "KL", u * sp.log(u), sp.exp(t_real - 1), sp.exp(t_real - 1), t_real,
            lambda v: v, lambda v: sp.exp(v - 1), None, r"$g_f(v) = v$", r"$\mathbb R$",
        ),
        "reverse_kl": (
            "reverse KL", -sp.log(u), -1 - sp.log(-t_neg), -1 / t_neg, t_neg,
            lambda v: -sp.exp(-v), lambda v: v - 1, -tau, r"$g_f(v) = -e^{-v}$", r"$t < 0$",
        ),
        "js": (
            "Jensen–Shannon",
            u * sp.log(u) - (u + 1) * sp.log((u + 1) / 2),
            -sp.log(2 - sp.exp(t_real)),
            sp.exp(t_real) / (2 - sp.exp(t_real)),
            t_real,
            lambda v: log2 - sp.log(1 + sp.exp(-v)),
            lambda v: sp.log(1 + sp.exp(v)) - log2,
            log2 - tau,
            r"$g_f(v) = \log 2 - \log(1 + e^{-v})$",
            r"$t < \log 2$",
        ),
        "pearson": (
            r"Pearson $\chi^2$", (u - 1) ** 2, t_real**2 / 4 + t_real, 1 + t_real / 2, t_real,
            lambda v: v, lambda v: v**2 / 4 + v, None, r"$g_f(v) = v$", r"$\mathbb R$",
        ),
        "squared_hellinger": (
            "squared Hellinger", (sp.sqrt(u) - 1) ** 2, t_real / (1 - t_real),
            1 / (1 - t_real) ** 2, t_real,
            lambda v: 1 - sp.exp(-v), lambda v: sp.exp(v) - 1, 1 - tau,
            r"$g_f(v) = 1 - e^{-v}$", r"$t < 1$",
        ),
    }


_FGAN_ROWS = _fganrows()
_CHI = r"$\chi^2$"
# where numeric steps sample t: the domain of f* (up to its edge, where f* blows up)
_FGAN_T_DOMAINS = {
    "kl": (-8.0, 8.0),
    "reverse_kl": (-50.0, -1e-3),
    "js": (-8.0, math.log(2) - 1e-3),
    "pearson": (-8.0, 8.0),
    "squared_hellinger": (-8.0, 1 - 1e-3),
}
# steps whose closing needs t < log 2 or t < 1 (not a symbol assumption): checked numerically
_FGAN_NUMERIC = {("js", 1), ("js", 3), ("js", 4), ("reverse_kl", 1), ("squared_hellinger", 1)}


def _fgan_tag(name: str, index: int) -> str:
    return NUMERIC if (name, index) in _FGAN_NUMERIC else SYMBOLIC


def _fgan_pieces(name):
    label, f, conj, u_star, t, act, conj_act, _, _, _ = _FGAN_ROWS[name]
    f_prime = sp.diff(f, u)
    bound_gap = q * f.subs(u, p / q) - p * t + q * conj
    bregman = q * (f.subs(u, p / q) - f.subs(u, u_star) - t * (p / q - u_star))
    raw = act(v_p) - conj.subs(t, act(v_q))
    return f_prime, bound_gap, bregman, raw, act(v_p) - conj_act(v_q)


def _register_fgan(name):
    label, f, conj, u_star, t, act, conj_act, _, act_text, dom_text = _FGAN_ROWS[name]
    f_prime, bound_gap, bregman, raw, raw_simplified = _fgan_pieces(name)
    identifier = f"D-fgan-bound-{name}"
    register(
        Derivation(
            id=identifier,
            title=f"f-GAN variational bound for the {label.replace(_CHI, 'chi^2')} divergence",
            statement=(
                rf"For $f(u) = {sp.latex(f)}$, $D_f(p\,\|\,q) = \int q\, f(p/q)$ is the "
                rf"{label} divergence. Its convex conjugate is $f^*(t) = {sp.latex(conj)}$ on "
                rf"{dom_text}, attained at $u^*(t) = (f')^{{-1}}(t) = {sp.latex(u_star)}$, and "
                r"$D_f(p\,\|\,q) \ge \mathbb E_p[T] - \mathbb E_q[f^*(T)]$ for every critic $T$: "
                r"the gap is $\int q$ times the Bregman divergence of $f$ between $p/q$ and "
                r"$u^*(T)$, zero exactly at $T^* = f'(p/q) = " + sp.latex(f_prime.subs(u, p / q))
                + r"$. The output activation "
                rf"{act_text} maps a raw output $v$ onto the domain of $f^*$, and "
                rf"$f^*(g_f(v)) = {sp.latex(conj_act(v_q)).replace('v_{q}', 'v')}$ is the form the "
                "code evaluates (finite where $g_f(v)$ rounds onto the edge of the domain) "
                "(Nowozin et al. 2016, eq. 6 and Table 2)."
            ),
            start=bound_gap,
            steps=[
                Step(
                    rhs=bregman,
                    reason=(
                        r"Put in $f^*(t) = t\,u^*(t) - f(u^*(t))$ (the supremum of $tu - f(u)$ is "
                        r"attained where $f'(u^*) = t$): the gap $q f(p/q) - pt + q f^*(t)$ is "
                        r"$q\,[f(p/q) - f(u^*) - f'(u^*)(p/q - u^*)]$."
                    ),
                    tag=_fgan_tag(name, 1),
                ),
                Step(
                    rhs=sp.Integer(0),
                    relation=">=",
                    reason=(
                        r"A convex $f$ lies above its tangent at $u^*$: the Bregman divergence is "
                        r"non-negative, so $p\,T - q\,f^*(T) \le q\,f(p/q)$ pointwise and, "
                        r"integrated, $\mathbb E_p[T] - \mathbb E_q[f^*(T)] \le D_f(p\,\|\,q)$."
                    ),
                    tag=NUMERIC,
                    samples=40,
                ),
                Step(
                    lhs=bound_gap.subs(t, sp.UnevaluatedExpr(f_prime.subs(u, p / q))),
                    rhs=sp.Integer(0),
                    reason=(
                        r"At $T^* = f'(p/q)$, $u^*(T^*) = p/q$ and the gap vanishes: the bound is "
                        "tight at the optimal critic (the code's optimal output is bound to this "
                        "side)."
                    ),
                    tag=_fgan_tag(name, 3),
                ),
                Step(
                    lhs=raw,
                    rhs=raw_simplified,
                    reason=(
                        r"In raw outputs: the critic $T = g_f(v)$ on a real sample with output "
                        r"$v_p$ and a fake one with output $v_q$ gives $g_f(v_p) - f^*(g_f(v_q))$, "
                        "and the composition simplifies to the stable form the code uses."
                    ),
                    tag=_fgan_tag(name, 4),
                ),
            ],
            symbols=(u, t, p, q, v_p, v_q),
            references=("nowozin2016fgan",),
            code=(
                f"{GAN}.F_DIVERGENCES",
                f"{GAN}.fgan_bound",
                f"{GAN}.fgan_discriminator_loss",
                f"{GAN}.fgan_generator_loss",
                f"{GAN}.optimal_discriminator",
            ),
            tests=TESTS,
            domain={t: _FGAN_T_DOMAINS[name], v_p: (-12.0, 12.0), v_q: (-12.0, 12.0)},
        )
    )


for _name in _FGAN_ROWS:
    _register_fgan(_name)


def _fgan_gap_by_code(name):
    """q f(p/q) - p T + q f*(T) from the code's f and the bound with activated critics."""

    def evaluate(points):
        from ..families.gan import F_DIVERGENCES, fgan_bound

        spec = F_DIVERGENCES[name]
        t_symbol, t_of_tau = _FGAN_ROWS[name][4], _FGAN_ROWS[name][7]
        critic = points[t_symbol] if t_of_tau is None else _t_from_tau(name, points[tau])
        bound = rows(
            {**points, "T": critic},
            lambda t_j: fgan_bound(name, pair(t_j), pair(t_j), activated=True),
            "T",
        )  # T - f*(T)
        pq = points[p] / points[q]
        return points[q] * spec.f(pq) - points[p] * critic + points[q] * (critic - bound)

    return evaluate


def _t_from_tau(name, values):
    """T on the domain of f*, at distance tau from its edge (the where of the binding)."""
    if name == "reverse_kl":
        return -values
    if name == "js":
        return math.log(2) - values
    return 1 - values  # squared Hellinger


def _fgan_critic_by_code(name):
    def evaluate(points):
        from ..families.gan import F_DIVERGENCES

        return F_DIVERGENCES[name].activation(optimal_outputs(f"fgan_{name}", points))

    return evaluate


def _fgan_optimal_by_code(name):
    """The gap q f(p/q) - p T + q f*(T) at the code's optimal critic T = g_f(v*)."""

    def evaluate(points):
        from ..families.gan import F_DIVERGENCES, fgan_bound

        spec = F_DIVERGENCES[name]
        critic = spec.activation(optimal_outputs(f"fgan_{name}", points))
        bound = rows(
            {**points, "T": critic},
            lambda t_j: fgan_bound(name, pair(t_j), pair(t_j), activated=True),
            "T",
        )
        return points[q] * spec.f(points[p] / points[q]) - points[p] * critic + points[q] * (
            critic - bound
        )

    return evaluate


def _fgan_outputs_by_code(name):
    def evaluate(points):
        import torch

        from ..families.gan import (
            F_DIVERGENCES,
            GAN_LOSSES,
            fgan_bound,
            fgan_discriminator_loss,
            fgan_generator_loss,
        )

        spec, table = F_DIVERGENCES[name], GAN_LOSSES[f"fgan_{name}"]

        def at(real, fake):
            r, f = pair(real), pair(fake)
            return torch.stack(
                [
                    fgan_bound(name, spec.activation(r), spec.activation(f), activated=True),
                    fgan_bound(name, r, f),
                    -fgan_discriminator_loss(name, r, f),
                    -table.discriminator_loss(r, f),
                    # the generator's part -f*(g_f(v_q)), completed by the code's g_f(v_p)
                    fgan_generator_loss(name, f) + spec.activation(real),
                    table.generator_loss(f) + spec.activation(real),
                ]
            )

        return tuple(rows(points, at, v_p, v_q).T)

    return evaluate


def _register_fgan_bindings(name):
    identifier = f"D-fgan-bound-{name}"
    t, t_of_tau = _FGAN_ROWS[name][4], _FGAN_ROWS[name][7]
    f_prime, bound_gap, _, raw, raw_simplified = _fgan_pieces(name)
    critic_domain = {t: Uniform(-8, 8)} if t_of_tau is None else {tau: LogUniform(1e-4, 30)}
    register(
        Binding(
            derivation=identifier,
            code=(f"{GAN}.fgan_bound",),
            expression=bound_gap,
            where={} if t_of_tau is None else {t: t_of_tau},
            evaluate=_fgan_gap_by_code(name),
            domain={p: DENSITY, q: DENSITY, **critic_domain},
            description=(
                f"F_DIVERGENCES['{name}'].f and fgan_bound(activated=True) (T - f*(T)) over the "
                "domain of f*, up to its edge"
            ),
        )
    )
    register(
        Binding(
            derivation=identifier,
            code=(f"{GAN}.optimal_discriminator", f"{GAN}.fgan_bound"),
            expression=(bound_gap.subs(t, sp.UnevaluatedExpr(f_prime.subs(u, p / q))),),
            evaluate=lambda points, name=name: (_fgan_optimal_by_code(name)(points),),
            # the gap is a difference of terms of size p^2/q: a moderate range keeps its
            # round-off below the tolerance (the critic itself is bound on the whole range)
            domain={p: LogUniform(0.05, 20), q: LogUniform(0.05, 20)},
            description=(
                f"the bound's gap at g_f of optimal_discriminator('fgan_{name}'): zero where the "
                "critic is f'(p/q)"
            ),
        )
    )
    register(
        Binding(
            derivation=identifier,
            code=(f"{GAN}.optimal_discriminator",),
            expression=f_prime.subs(u, p / q),
            evaluate=_fgan_critic_by_code(name),
            domain={p: DENSITY, q: DENSITY},
            description=f"g_f of optimal_discriminator('fgan_{name}'): the optimal critic f'(p/q)",
        )
    )
    register(
        Binding(
            derivation=identifier,
            code=(
                f"{GAN}.fgan_bound",
                f"{GAN}.fgan_discriminator_loss",
                f"{GAN}.fgan_generator_loss",
                f"{GAN}.GANLoss.discriminator_loss",
            ),
            expression=(raw,) + (raw_simplified,) * 5,
            evaluate=_fgan_outputs_by_code(name),
            domain={v_p: Uniform(-12, 12), v_q: Uniform(-12, 12)},
            samples=24,
            description=(
                "fgan_bound on activated and on raw outputs, the discriminator and generator "
                f"losses of 'fgan_{name}' (functions and GAN_LOSSES)"
            ),
        )
    )


for _name in _FGAN_ROWS:
    _register_fgan_bindings(_name)


def _fgan_conjugates_match_torch() -> float:
    """Largest gap between genmath's f, f*, f' and activation and the expressions verified
    above, at seeded points of each function's domain."""
    import torch

    from ..families.gan import F_DIVERGENCES

    generator = torch.Generator().manual_seed(0)
    worst = 0.0
    for name, row in _FGAN_ROWS.items():
        f_expr, conj_expr, t_sym = row[1], row[2], row[4]
        spec = F_DIVERGENCES[name]
        ratios = torch.exp(torch.randn(16, dtype=torch.float64, generator=generator))
        raw = 2.0 * torch.randn(16, dtype=torch.float64, generator=generator)
        critic = spec.activation(raw)  # must land in the domain of f*
        for fn, expr, sym, points in (
            (spec.f, f_expr, u, ratios),
            (spec.derivative, sp.diff(f_expr, u), u, ratios),
            (spec.conjugate, conj_expr, t_sym, critic),
        ):
            exact = sp.lambdify(sym, expr, "math")
            got = fn(points)
            for g, x_ in zip(got.tolist(), points.tolist(), strict=True):
                e = exact(x_)
                worst = max(worst, abs(g - e) / (1 + abs(e)))
        composed = spec.conjugate(spec.activation(raw))
        simplified = spec.conjugate_of_activation(raw)
        worst = max(worst, float(((composed - simplified).abs() / (1 + composed.abs())).max()))
    return worst


register(
    Check(
        id="C-fgan-conjugates",
        title=(
            "F_DIVERGENCES: f, f' and f* (on the activation's range) equal the verified forms; "
            "the simplified f*(g_f(v)) equals the composition"
        ),
        function=_fgan_conjugates_match_torch,
        tolerance=1e-12,
        code=(f"{GAN}.F_DIVERGENCES",),
        tests=TESTS,
        derivation="D-fgan-bound-kl",
    )
)
