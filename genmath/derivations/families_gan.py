"""GAN losses as divergence bounds, bound to `genmath.families.gan`: the optimal discriminator
of the least-squares, hinge and non-saturating losses (the minimax one is
`D-optimal-discriminator`; f-GANs are in `families_fgan`, critics and penalties in
`families_gan_critics`). How the bindings weigh the code's batch losses: `_gan_common`.
"""

import sympy as sp

from ._chain import Earlier
from ._engine import NUMERIC, Binding, Derivation, LogUniform, Step, Uniform
from ._gan_common import DENSITY, GAN, OUTPUT, TESTS, D, optimal_outputs, p, pair, q, rows
from ._registry import register

a, b, c = sp.symbols("a b c", real=True)


def _as_is(expr):
    """No rewrite: the difference is already in a form whose sign sympy decides."""
    return expr


# --------------------------------------------------------------------------- least squares

_ls_pointwise = p * (D - b) ** 2 / 2 + q * (D - a) ** 2 / 2
_ls_optimum = (b * p + a * q) / (p + q)
_ls_minimum = p * q * (b - a) ** 2 / (2 * (p + q))
_ls_generator = p * (D - c) ** 2 / 2 + q * (D - c) ** 2 / 2
_ls_standard = {a: -1, b: 1, c: 0}

register(
    Derivation(
        id="D-lsgan-optimal-discriminator",
        title="Least-squares GAN: the optimal discriminator and the divergence it leaves",
        statement=(
            r"The least-squares discriminator loss $\tfrac12\mathbb E_p[(D - b)^2] + "
            r"\tfrac12\mathbb E_q[(D - a)^2]$ is minimised pointwise by "
            r"$D^* = (bp + aq)/(p + q)$, with minimum $pq(b - a)^2/(2(p + q))$. With $a = -1$, "
            r"$b = 1$, $c = 0$ the generator's criterion $\tfrac12\mathbb E_p[(D^* - c)^2] + "
            r"\tfrac12\mathbb E_q[(D^* - c)^2]$ equals $\tfrac12\int (p - q)^2/(p + q)$, Mao et "
            r"al.'s $\tfrac12\chi^2_\mathrm{Pearson}(p + q\,\|\,2q)$, and the discriminator's "
            r"minimum is $1 - \tfrac12\int(p-q)^2/(p+q)$ (Mao et al. 2017, Thm. 1). The code's "
            r"generator loss is the $q$-part $\tfrac12\mathbb E_q[(D - c)^2]$ (the $p$-part "
            "does not depend on the generator)."
        ),
        start=_ls_pointwise,
        steps=[
            Step(
                rhs=(p + q) / 2 * (D - _ls_optimum) ** 2 + _ls_minimum,
                reason=r"Complete the square in $D$: a parabola with curvature $p + q > 0$.",
            ),
            Step(
                rhs=_ls_minimum,
                relation=">=",
                reason=r"The square is non-negative: $D^*$ is the unique minimiser.",
                method=_as_is,
            ),
            Step(
                lhs=_ls_generator.subs(D, _ls_optimum),
                rhs=(p + q) * (_ls_optimum - c) ** 2 / 2,
                reason=(
                    r"The generator's criterion at $D^*$: both terms are $\tfrac12(D^* - c)^2$, "
                    r"weighted by $p$ and by $q$."
                ),
            ),
            Step(
                lhs=Earlier("D-lsgan-optimal-discriminator", _ls_standard, step=3),
                rhs=(p - q) ** 2 / (2 * (p + q)),
                reason=(
                    r"With $a = -1$, $b = 1$, $c = 0$: $D^* = (p - q)/(p + q)$ and the integrand "
                    r"is $\tfrac12(p - q)^2/(p + q)$."
                ),
            ),
            Step(
                rhs=(2 * q - (p + q)) ** 2 / (2 * (p + q)),
                reason=(
                    r"Written as $\tfrac12(2q - (p + q))^2/(p + q)$: the integrand of "
                    r"$\tfrac12\chi^2_\mathrm{Pearson}(p + q\,\|\,2q)$ in Mao et al.'s notation."
                ),
            ),
            Step(
                lhs=Earlier("D-lsgan-optimal-discriminator", _ls_standard, step=2),
                rhs=(p + q) / 2 - (p - q) ** 2 / (2 * (p + q)),
                reason=(
                    r"The discriminator's pointwise minimum at $a = -1$, $b = 1$ is "
                    r"$2pq/(p + q)$; integrated with $\int p = \int q = 1$ it is "
                    r"$1 - \tfrac12\int (p-q)^2/(p+q)$."
                ),
            ),
        ],
        symbols=(p, q, D, a, b, c),
        references=("mao2017least",),
        code=(
            f"{GAN}.least_squares_discriminator_loss",
            f"{GAN}.least_squares_generator_loss",
            f"{GAN}.optimal_discriminator",
        ),
        tests=TESTS,
        domain={D: (-10.0, 10.0)},
    )
)


def _least_squares_loss(points):
    from ..families.gan import least_squares_discriminator_loss as loss

    def at(p_j, q_j, d_j, a_j, b_j):
        a_, b_ = float(a_j), float(b_j)
        # the fake part vanishes at output a, the real part at output b
        return p_j * loss(pair(d_j), pair(a_j), a=a_, b=b_) + q_j * loss(
            pair(b_j), pair(d_j), a=a_, b=b_
        )

    return rows(points, at, p, q, D, a, b)


def _least_squares_table(points):
    from ..families.gan import GAN_LOSSES

    spec = GAN_LOSSES["least_squares"]

    def at(p_j, q_j, d_j):
        one = d_j.new_ones(())
        return p_j * spec.discriminator_loss(pair(d_j), pair(-one)) + q_j * (
            spec.discriminator_loss(pair(one), pair(d_j))
        )

    return rows(points, at, p, q, D)


def _least_squares_generator(points):
    from ..families.gan import least_squares_generator_loss

    v_star = optimal_outputs("least_squares", points)
    points = {**points, "v": v_star}
    return rows(
        points,
        lambda p_j, q_j, v_j, c_j: (p_j + q_j) * least_squares_generator_loss(pair(v_j), float(c_j)),
        p,
        q,
        "v",
        c,
    )


register(
    Binding(
        derivation="D-lsgan-optimal-discriminator",
        code=(f"{GAN}.least_squares_discriminator_loss",),
        expression=_ls_pointwise,
        evaluate=_least_squares_loss,
        domain={p: DENSITY, q: DENSITY, D: OUTPUT, a: Uniform(-3, 3), b: Uniform(-3, 3)},
        description="least_squares_discriminator_loss for every target pair (a, b), weighted by p and q",
    )
)
register(
    Binding(
        derivation="D-lsgan-optimal-discriminator",
        code=(f"{GAN}.GANLoss.discriminator_loss",),
        expression=_ls_pointwise,
        where={a: -1, b: 1},
        evaluate=_least_squares_table,
        domain={p: DENSITY, q: DENSITY, D: OUTPUT},
        description="GAN_LOSSES['least_squares'] (a = -1, b = 1), weighted by p and q",
    )
)
register(
    Binding(
        derivation="D-lsgan-optimal-discriminator",
        code=(f"{GAN}.optimal_discriminator", f"{GAN}.least_squares_generator_loss"),
        expression=_ls_generator.subs(D, _ls_optimum),
        where={a: -1, b: 1},
        evaluate=_least_squares_generator,
        domain={p: DENSITY, q: DENSITY, c: Uniform(-3, 3)},
        description="least_squares_generator_loss at the optimal output of optimal_discriminator",
    )
)

# --------------------------------------------------------------------------- hinge

_hinge = p * sp.Max(0, 1 - D) + q * sp.Max(0, 1 + D)
_hinge_at_optimum = _hinge.subs(D, sp.sign(p - q))

register(
    Derivation(
        id="D-hinge-optimal-discriminator",
        title="Hinge loss: the optimal discriminator sign(p - q) and total variation",
        statement=(
            r"The hinge loss $\mathbb E_p[\max(0, 1 - D)] + \mathbb E_q[\max(0, 1 + D)]$ is "
            r"minimised pointwise by $D^* = \operatorname{sign}(p - q)$, with minimum "
            r"$2\min(p, q)$; integrated, the minimum is $2 - \int|p - q| = 2 - 2\,\mathrm{TV}(p, q)$ "
            r"(Lim & Ye 2017). The generator's loss $-\mathbb E_q[D]$ is the one of the "
            "Wasserstein GAN (D-wgan-gaussian-translates)."
        ),
        start=_hinge,
        steps=[
            Step(
                rhs=2 * sp.Min(p, q),
                relation=">=",
                reason=(
                    r"For every $D$ the pointwise loss is at least $2\min(p, q)$: on "
                    r"$-1 \le D \le 1$ it is $p + q + D(q - p)$, linear with its least value at an "
                    r"end; outside, one hinge is inactive and the other only grows."
                ),
                tag=NUMERIC,
                samples=40,
            ),
            Step(
                lhs=_hinge_at_optimum,
                rhs=p + q - sp.Abs(p - q),
                reason=(
                    r"At $D^* = \operatorname{sign}(p - q)$ one hinge is $0$ and the other $2$: "
                    r"the loss is $2q$ if $p > q$ and $2p$ otherwise."
                ),
                tag=NUMERIC,
            ),
            Step(
                rhs=2 * sp.Min(p, q),
                reason=r"$p + q - |p - q| = 2\min(p, q)$: the bound of step 1 is attained.",
                tag=NUMERIC,
            ),
        ],
        symbols=(p, q, D),
        references=("lim2017geometric",),
        code=(f"{GAN}.hinge_discriminator_loss", f"{GAN}.optimal_discriminator"),
        tests=TESTS,
        domain={D: (-4.0, 4.0)},
    )
)


def _hinge_loss(points, optimal=False):
    import torch

    from ..families.gan import GAN_LOSSES, hinge_discriminator_loss

    table = GAN_LOSSES["hinge"].discriminator_loss
    if optimal:
        points = {**points, D: optimal_outputs("hinge", points)}

    def at(p_j, q_j, d_j):
        one = d_j.new_ones(())
        # the fake hinge is 0 at output -1, the real hinge at output 1
        return torch.stack(
            [
                p_j * loss(pair(d_j), pair(-one)) + q_j * loss(pair(one), pair(d_j))
                for loss in (hinge_discriminator_loss, table)
            ]
        )

    values = rows(points, at, p, q, D)
    return values[:, 0], values[:, 1]


register(
    Binding(
        derivation="D-hinge-optimal-discriminator",
        code=(f"{GAN}.hinge_discriminator_loss", f"{GAN}.GANLoss.discriminator_loss"),
        expression=(_hinge, _hinge),
        evaluate=_hinge_loss,
        domain={p: DENSITY, q: DENSITY, D: OUTPUT},
        description="hinge_discriminator_loss and GAN_LOSSES['hinge'], weighted by p and q",
    )
)
register(
    Binding(
        derivation="D-hinge-optimal-discriminator",
        code=(f"{GAN}.optimal_discriminator", f"{GAN}.hinge_discriminator_loss"),
        expression=(_hinge_at_optimum, _hinge_at_optimum),
        evaluate=lambda points: _hinge_loss(points, optimal=True),
        domain={p: DENSITY, q: DENSITY},
        description="the hinge loss at the optimal output of optimal_discriminator",
    )
)

# --------------------------------------------------------------------------- non-saturating

_d_star = p / (p + q)
d_out = sp.Symbol("d", positive=True)  # D = sigmoid(v) in (0, 1), for the binding at any output

register(
    Derivation(
        id="D-non-saturating-generator",
        title="The non-saturating generator loss at the optimal discriminator",
        statement=(
            r"At $D^* = p/(p+q)$ the non-saturating generator loss $-\mathbb E_q[\log D^*]$ "
            r"equals $\mathrm{KL}(q\,\|\,p) - \mathrm{KL}(q\,\|\,m) + \log 2$, "
            r"$m = (p + q)/2$: its gradient pushes $q$ to decrease $\mathrm{KL}(q\,\|\,p)$ while "
            r"increasing $\mathrm{KL}(q\,\|\,m)$, unlike the minimax loss's "
            r"$2\,\mathrm{JSD}$ (Arjovsky & Bottou 2017). The code takes logits $v$, "
            r"$D = \operatorname{sigmoid}(v)$, and computes $-\log D = \operatorname{softplus}(-v)$."
        ),
        start=-q * sp.log(_d_star),
        steps=[
            Step(
                rhs=q * sp.log((p + q) / p),
                reason=r"$-\log D^* = \log\big((p + q)/p\big)$.",
                method=lambda e: sp.expand(sp.expand_log(e, force=True)),
            ),
            Step(
                rhs=q * sp.log(q / p) - q * sp.log(2 * q / (p + q)) + q * sp.log(2),
                reason=(
                    r"Add and subtract $q\log(2q)$: the integrands of $\mathrm{KL}(q\,\|\,p)$ and "
                    r"$-\mathrm{KL}(q\,\|\,m)$, plus $q\log 2$, which integrates to $\log 2$."
                ),
                method=lambda e: sp.expand(sp.expand_log(e, force=True)),
            ),
        ],
        symbols=(p, q),
        references=("goodfellow2014generative", "arjovsky2017towards"),
        code=(f"{GAN}.non_saturating_generator_loss", f"{GAN}.optimal_discriminator"),
        tests=TESTS,
    )
)


def _non_saturating_at_optimum(points):
    from ..families.gan import GAN_LOSSES, non_saturating_generator_loss

    v_star = optimal_outputs("non_saturating", points)
    table = GAN_LOSSES["non_saturating"].generator_loss
    points = {**points, "v": v_star}
    first = rows(points, lambda q_j, v_j: q_j * non_saturating_generator_loss(pair(v_j)), q, "v")
    second = rows(points, lambda q_j, v_j: q_j * table(pair(v_j)), q, "v")
    return first, second


def _non_saturating_at_any_output(points):
    from ..families.gan import non_saturating_generator_loss

    logits = points[d_out].logit()
    points = {**points, "v": logits}
    return rows(points, lambda q_j, v_j: q_j * non_saturating_generator_loss(pair(v_j)), q, "v")


register(
    Binding(
        derivation="D-non-saturating-generator",
        code=(f"{GAN}.optimal_discriminator", f"{GAN}.non_saturating_generator_loss"),
        expression=(-q * sp.log(_d_star), -q * sp.log(_d_star)),
        evaluate=_non_saturating_at_optimum,
        domain={p: LogUniform(1e-4, 1e4), q: LogUniform(1e-4, 1e4)},
        description="non_saturating_generator_loss (and GAN_LOSSES') at the optimal logit",
    )
)
register(
    Binding(
        derivation="D-non-saturating-generator",
        code=(f"{GAN}.non_saturating_generator_loss",),
        expression=-q * sp.log(_d_star),
        where={p: q * d_out / (1 - d_out)},  # the density ratio for which D* = d
        evaluate=_non_saturating_at_any_output,
        domain={q: DENSITY, d_out: Uniform(1e-6, 1 - 1e-6, ends=True)},
        description="non_saturating_generator_loss at any logit v = logit(d): q softplus(-v)",
    )
)
