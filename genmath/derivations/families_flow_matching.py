"""Flow matching, rectified flow, consistency models and MeanFlow: the identities their losses
and samplers rely on."""

import sympy as sp

from ._engine import Derivation, Step, sound_rewrite
from ._registry import register

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
            r"$p, 1 - p$; a general law is a mixture of such terms."
        ),
        start=cfm_point,
        steps=[
            Step(
                rhs=(v_model - u_marginal) ** 2 + conditional_variance,
                reason=(
                    r"Write $v - c = (v - u) + (u - c)$ and expand; the cross term "
                    r"$2(v - u)\,\mathbb E[u - c \mid x_t]$ vanishes because "
                    r"$u = p c_1 + (1-p) c_2$ is the conditional mean."
                ),
            ),
            Step(
                lhs=sp.Derivative(cfm_point - (v_model - u_marginal) ** 2, v_model),
                rhs=sp.Integer(0),
                reason=(
                    r"The gap $\mathcal L_\mathrm{CFM} - \mathcal L_\mathrm{FM}$ at a point does "
                    r"not depend on the model output $v$: its derivative in $v$ is zero, so the "
                    "gradients in $\\theta$ agree."
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

# ------------------------------------------------------------------ rectified-flow straightness
t, r, tau = sp.symbols("t r tau", real=True)
trajectory = sp.Function("Z")
chord = trajectory(1) - trajectory(0)


@sound_rewrite(
    'linearity of the integral, and the fundamental theorem of calculus on terms that are exact derivatives'
)
def _integrate_termwise(expr):
    """Linearity of the integral: split each integrand into its additive terms and carry out
    what can be done (constants, the fundamental theorem on a derivative); what cannot
    ($\\int \\dot Z^2$) stays the same object on both sides and cancels."""

    def split(integral):
        return sp.Add(
            *(
                sp.Integral(term, *integral.limits).doit()
                for term in sp.Add.make_args(sp.expand(integral.function))
            )
        )

    return sp.expand(expr.replace(lambda e: isinstance(e, sp.Integral), split))


register(
    Derivation(
        id="D-rectified-flow-straightness",
        title="Straightness of a flow: excess kinetic energy over the chord",
        statement=(
            r"For a trajectory $Z_t$ on $[0, 1]$, the straightness "
            r"$S = \int_0^1 \|\dot Z_t - (Z_1 - Z_0)\|^2\,dt$ (Liu et al. 2023) equals "
            r"$\int_0^1 \|\dot Z_t\|^2 dt - \|Z_1 - Z_0\|^2$: the kinetic energy in excess of "
            r"that of the straight line between the ends, hence $S \ge 0$ with equality iff the "
            r"path is straight at constant speed, and one Euler step is exact. Reflow lowers the "
            r"transport cost, hence $S$. Per coordinate:"
        ),
        start=sp.Integral((sp.Derivative(trajectory(t), t) - chord) ** 2, (t, 0, 1)),
        steps=[
            Step(
                rhs=sp.Integral(sp.Derivative(trajectory(t), t) ** 2, (t, 0, 1))
                - 2 * chord * sp.Integral(sp.Derivative(trajectory(t), t), (t, 0, 1))
                + chord**2,
                reason="Expand the square; the chord is constant in $t$ (linearity of the integral).",
                method=_integrate_termwise,
            ),
            Step(
                rhs=sp.Integral(sp.Derivative(trajectory(t), t) ** 2, (t, 0, 1)) - chord**2,
                reason=r"Fundamental theorem of calculus: $\int_0^1 \dot Z_t\,dt = Z_1 - Z_0$.",
                method=_integrate_termwise,
            ),
        ],
        symbols=(t,),
        references=("liu2023flow",),
        code=(
            "genmath.families.flow_matching.straightness",
            "genmath.families.flow_matching.reflow_pairs",
        ),
        tests=("tests/families/test_flow_matching.py",),
    )
)
