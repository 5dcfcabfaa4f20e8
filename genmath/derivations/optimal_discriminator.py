"""The optimal GAN discriminator $D^* = p/(p+q)$ and the value $C(G^*) = -\\log 4$, bound to
the minimax and non-saturating losses of `genmath.families.gan`."""

import sympy as sp

from ._chain import Earlier
from ._earlier import Integrated
from ._engine import CITED, NUMERIC, Binding, Derivation, LogUniform, Step, Uniform, sound_rewrite
from ._registry import register
from .elbo_gap import _Integral, _merge_integrals

D = sp.Symbol("D", positive=True)  # the discriminator's output at one point, in (0, 1)
p, q = sp.symbols("p q", positive=True)  # data and generator densities at that point
x = sp.Symbol("x", real=True)
mu_p, mu_q = sp.symbols("mu_p mu_q", real=True)
s_p, s_q = sp.symbols("s_p s_q", positive=True)

_GAN = "genmath.families.gan"
_pointwise = p * sp.log(D) + q * sp.log(1 - D)
_d_star = p / (p + q)
_at_optimum = _pointwise.subs(D, _d_star)


def _normal_pdf(value, mean, sd):
    return sp.exp(-((value - mean) ** 2) / (2 * sd**2)) / (sd * sp.sqrt(2 * sp.pi))


_p_x = _normal_pdf(x, mu_p, s_p)
_q_x = _normal_pdf(x, mu_q, s_q)


def _value_at_optimum(p_density, q_density):
    """$\\int p \\log D^* + q \\log(1 - D^*)$, the criterion at the optimal discriminator."""
    total = p_density + q_density
    return _Integral(
        p_density * sp.log(p_density / total) + q_density * sp.log(q_density / total),
        (x, -sp.oo, sp.oo),
    )


def _kl_to_mixture(a, b):
    return _Integral(a * sp.log(2 * a / (a + b)), (x, -sp.oo, sp.oo))


_criterion = _value_at_optimum(_p_x, _q_x)


def _split_logs(expr):
    """Each logarithm's argument put over one denominator, then split into a sum of logs (the
    arguments are ratios of the positive p, q, p + q)."""
    expr = expr.replace(lambda e: isinstance(e, sp.log), lambda e: sp.log(sp.cancel(e.args[0])))
    return sp.expand(sp.expand_log(expr, force=True))


@sound_rewrite(
    "linearity of the integral (integrals over the same line merged, logs of positive densities "
    "expanded), and a normal density integrates to one"
)
def _integrate_densities(expr):
    merged = _merge_integrals(expr)
    out = sp.Integer(0)
    for term in sp.Add.make_args(sp.expand(sp.expand_log(merged))):
        coeff, body = term.as_independent(sp.Integral, as_Add=False)
        if isinstance(body, sp.Integral) and body.limits == ((x, -sp.oo, sp.oo),):
            remainder = sp.Integer(0)
            for piece in sp.Add.make_args(sp.expand(body.function)):
                for density in (_p_x, _q_x):
                    ratio = sp.powsimp(sp.expand(piece / density))
                    if x not in ratio.free_symbols:
                        coeff_piece = ratio
                        break
                else:
                    remainder += piece
                    continue
                out += coeff * coeff_piece
            if remainder != 0:
                out += coeff * type(body)(remainder, *body.limits)
        else:
            out += term
    return sp.expand(out)

register(
    Derivation(
        id="D-optimal-discriminator",
        title="The optimal discriminator D* = p/(p+q) and C(G*) = -log 4",
        statement=(
            r"For a fixed generator with density $q$, the discriminator maximising "
            r"$\mathbb E_p[\log D] + \mathbb E_q[\log(1 - D)]$ is $D^* = p/(p+q)$ pointwise; the "
            r"criterion then equals $C(G) = -\log 4 + 2\,\mathrm{JSD}(p\,\|\,q)$, whose minimum "
            r"$-\log 4$ is reached at $q = p$ (Goodfellow et al. 2014, Prop. 1 and Thm. 1). The "
            r"code takes logits $v$, $D = \operatorname{sigmoid}(v)$, so $D^*$ is "
            r"$v^* = \log p - \log q$, and minimises minus the criterion."
        ),
        start=sp.ImmutableMatrix(
            [sp.Subs(sp.Derivative(_pointwise, D), D, _d_star), sp.Derivative(_pointwise, D, 2)]
        ),
        steps=[
            Step(
                rhs=sp.ImmutableMatrix([0, -p / D**2 - q / (1 - D) ** 2]),
                reason=(
                    r"The integrand $p\log D + q\log(1-D)$ is maximised pointwise: its derivative "
                    r"$p/D - q/(1-D)$ vanishes at $D^* = p/(p+q)$; its second derivative is "
                    r"$-p/D^2 - q/(1-D)^2$."
                ),
            ),
            Step(
                rhs=sp.ImmutableMatrix([0, 0]),
                relation="<=",
                reason=(
                    r"The second derivative is negative on $(0, 1)$: the stationary point is the "
                    "maximum."
                ),
                tag=NUMERIC,
            ),
            Step(
                lhs=_at_optimum,
                rhs=-sp.log(2) * (p + q)
                + p * sp.log(2 * p / (p + q))
                + q * sp.log(2 * q / (p + q)),
                reason=(
                    r"At $D^*$, add and subtract $\log 2$: the integrand becomes "
                    r"$-\log 2\,(p+q)$ plus the integrands of the two KLs to the mixture "
                    r"$(p+q)/2$ (the code's value at its optimal logit is bound to this side)."
                ),
                method=_split_logs,
            ),
            Step(
                lhs=Integrated(
                    "D-optimal-discriminator",
                    {p: _p_x, q: _q_x},
                    step=3,
                    limits=((x, -sp.oo, sp.oo),),
                    kind=_Integral,
                ),
                rhs=-sp.log(4) + _kl_to_mixture(_p_x, _q_x) + _kl_to_mixture(_q_x, _p_x),
                reason=(
                    r"Integrated with $\int p = \int q = 1$: $C(G) = -\log 4 + "
                    r"\mathrm{KL}(p\,\|\,\tfrac{p+q}{2}) + \mathrm{KL}(q\,\|\,\tfrac{p+q}{2}) = "
                    r"-\log 4 + 2\,\mathrm{JSD}(p\,\|\,q)$: step 3 integrated, shown for two "
                    "1-D Gaussians (the densities integrate to one)."
                ),
                method=_integrate_densities,
            ),
            Step(
                rhs=-sp.log(4),
                relation=">=",
                reason=r"$\mathrm{JSD} \ge 0$ (Gibbs' inequality), with equality iff $q = p$.",
                tag=CITED,
                theorem="Gibbs' inequality (non-negativity of the KL divergence)",
                reference="cover2006elements",
            ),
            Step(
                lhs=Earlier("D-optimal-discriminator", {mu_q: mu_p, s_q: s_p}, step=4),
                rhs=-sp.log(4),
                reason=r"At $q = p$ both KLs vanish ($D^* = 1/2$ everywhere): $C(G^*) = -\log 4$.",
                tag=NUMERIC,
                tolerance=1e-9,
                samples=2,
            ),
        ],
        symbols=(D, p, q, x, mu_p, mu_q, s_p, s_q),
        references=("goodfellow2014generative", "nowozin2016fgan"),
        code=(
            f"{_GAN}.minimax_discriminator_loss",
            f"{_GAN}.minimax_generator_loss",
            f"{_GAN}.optimal_discriminator",
        ),
        tests=("tests/families/test_gan.py",),
        domain={D: (0.001, 0.999), s_p: (0.5, 2.0), s_q: (0.5, 2.0)},
    )
)

# A logit of +-1000 makes the other part of the loss exactly 0 in float64 (softplus(-1000) = 0),
# so each part is weighted by its own density.
_SURE = 1000.0


def _minimax_parts(points, logits):
    import torch

    from ..families.gan import GAN_LOSSES, minimax_discriminator_loss, minimax_generator_loss

    def pair(value):
        return torch.stack([value, value])

    rows = []
    for p_j, q_j, v_j in zip(points[p], points[q], logits, strict=True):
        sure = torch.full((2,), _SURE, dtype=torch.float64)
        row = [
            -(p_j * loss(pair(v_j), -sure) + q_j * loss(sure, pair(v_j)))
            for loss in (
                minimax_discriminator_loss,
                GAN_LOSSES["minimax"].discriminator_loss,
                GAN_LOSSES["non_saturating"].discriminator_loss,
            )
        ]
        row.append(q_j * minimax_generator_loss(pair(v_j)))
        rows.append(torch.stack(row))
    return tuple(torch.stack(rows).T)


def _minimax_at_any_output(points):
    return _minimax_parts(points, points[D].logit())


def _minimax_at_optimum(points):
    import torch

    from ..families.gan import optimal_discriminator

    log_p, log_q = points[p].log(), points[q].log()
    rows = torch.zeros(len(log_p), 1, dtype=torch.float64)
    logits = optimal_discriminator("minimax", lambda z: log_p, lambda z: log_q)(rows)
    return _minimax_parts(points, logits)[:3]


register(
    Binding(
        derivation="D-optimal-discriminator",
        code=(f"{_GAN}.minimax_discriminator_loss", f"{_GAN}.minimax_generator_loss"),
        expression=(_pointwise,) * 3 + (q * sp.log(1 - D),),
        evaluate=_minimax_at_any_output,
        domain={
            p: LogUniform(1e-3, 1e3),
            q: LogUniform(1e-3, 1e3),
            D: Uniform(1e-6, 1 - 1e-6, ends=True),
        },
        description=(
            "minus the minimax loss (function, GAN_LOSSES' minimax and non-saturating) at "
            "logit(D), and the minimax generator loss, weighted by p and q"
        ),
    )
)
register(
    Binding(
        derivation="D-optimal-discriminator",
        code=(f"{_GAN}.optimal_discriminator", f"{_GAN}.minimax_discriminator_loss"),
        expression=(_at_optimum,) * 3,
        evaluate=_minimax_at_optimum,
        domain={p: LogUniform(1e-4, 1e4), q: LogUniform(1e-4, 1e4)},
        description="minus the minimax loss at the optimal logit of optimal_discriminator",
    )
)
