"""Flow matching, rectified flow, consistency models and MeanFlow: the identities their losses
and samplers rely on."""

import sympy as sp
import torch

from ._engine import Check, Derivation, Step, sound_rewrite
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

# ------------------------------------------------------------------ consistency boundary
s, s_min = sp.symbols("s s_min", positive=True)
sigma_d = sp.Symbol("sigma_d", positive=True)
c_skip_song = sigma_d**2 / ((s - s_min) ** 2 + sigma_d**2)
c_out_song = sigma_d * (s - s_min) / sp.sqrt(sigma_d**2 + s**2)
c_skip_edm = sigma_d**2 / (s**2 + sigma_d**2)
c_out_edm = s * sigma_d / sp.sqrt(s**2 + sigma_d**2)

register(
    Derivation(
        id="D-consistency-boundary",
        title="The consistency parameterization meets the boundary condition",
        statement=(
            r"With $f_\theta(x, s) = c_\mathrm{skip}(s)\,x + c_\mathrm{out}(s)\,F_\theta(x, s)$ "
            r"and Song et al.'s scalings $c_\mathrm{skip}(s) = \sigma_d^2/((s - s_\mathrm{min})^2 "
            r"+ \sigma_d^2)$, $c_\mathrm{out}(s) = \sigma_d (s - s_\mathrm{min})/\sqrt{\sigma_d^2 + "
            r"s^2}$, the boundary condition $f_\theta(x, s_\mathrm{min}) = x$ holds for every "
            r"network $F_\theta$: $c_\mathrm{skip}(s_\mathrm{min}) = 1$, "
            r"$c_\mathrm{out}(s_\mathrm{min}) = 0$. They are Karras et al.'s EDM scalings shifted "
            r"by $s_\mathrm{min}$; the EDM forms make the network's regression target "
            r"$(x_0 - c_\mathrm{skip} x)/c_\mathrm{out}$ of unit variance for data of variance "
            r"$\sigma_d^2$ and $x = x_0 + s\,n$."
        ),
        start=c_skip_song.subs(s, s_min),
        steps=[
            Step(rhs=sp.Integer(1), reason=r"At $s = s_\mathrm{min}$ the shift vanishes."),
            Step(
                lhs=c_out_song.subs(s, s_min),
                rhs=sp.Integer(0),
                reason=r"$c_\mathrm{out}$ carries the factor $s - s_\mathrm{min}$.",
            ),
            Step(
                lhs=c_skip_song.subs(s_min, 0),
                rhs=c_skip_edm,
                reason=r"With $s_\mathrm{min} = 0$ the scalings are EDM's (Karras et al. 2022, Table 1).",
            ),
            Step(
                lhs=((1 - c_skip_edm) ** 2 * sigma_d**2 + c_skip_edm**2 * s**2) / c_out_edm**2,
                rhs=sp.Integer(1),
                reason=(
                    r"$\operatorname{Var}[x_0 - c_\mathrm{skip}(x_0 + s n)] = (1 - c_\mathrm{skip})^2"
                    r"\sigma_d^2 + c_\mathrm{skip}^2 s^2 = c_\mathrm{out}^2$: the EDM forms give a "
                    "unit-variance target."
                ),
            ),
        ],
        symbols=(s, s_min, sigma_d),
        references=("song2023consistency", "karras2022elucidating"),
        code=(
            "genmath.families.consistency.boundary_coefficients",
            "genmath.families.consistency.ConsistencyModel",
        ),
        tests=("tests/families/test_consistency.py",),
    )
)

# ------------------------------------------------------------------ MeanFlow identity
v_path = sp.Function("v")  # v(z_tau, tau) along the trajectory, a function of tau alone
displacement = sp.Integral(v_path(tau), (tau, r, t))
average = displacement / (t - r)
z_traj = sp.Function("z")
u_fn = sp.Function("u")

# 1-D Gaussian data N(m, q^2) on CondOT: the affine flow map and the average velocity.
m, z = sp.symbols("m z", real=True)
q = sp.Symbol("q", positive=True)


def _condot_variance(time):
    return (1 - time) ** 2 * q**2 + time**2


flow_map_t_to_r = (1 - r) * m + sp.sqrt(_condot_variance(r) / _condot_variance(t)) * (
    z - (1 - t) * m
)
gaussian_velocity = -m + sp.diff(_condot_variance(t), t) / (2 * _condot_variance(t)) * (
    z - (1 - t) * m
)

register(
    Derivation(
        id="D-meanflow-identity",
        title="The MeanFlow identity for the average velocity",
        statement=(
            r"The average velocity $u(z_t, r, t) = \frac{1}{t - r}\int_r^t v(z_\tau, \tau)\,d\tau$ "
            r"along a trajectory of $\dot z = v$ satisfies "
            r"$u = v(z_t, t) - (t - r)\,\frac{d}{dt}u(z_t, r, t)$ with the total derivative "
            r"$\frac{d}{dt}u = v\,\partial_z u + \partial_t u$ — a Jacobian–vector product with "
            r"tangent $(v, 0, 1)$ over $(z, r, t)$ (Geng et al. 2025). For Gaussian data the flow "
            r"map is affine and $u = (z - \Phi_{t\to r}(z))/(t - r)$ tends to $v$ as $r \to t$."
        ),
        start=sp.Derivative((t - r) * average, t),
        steps=[
            Step(
                rhs=v_path(t),
                reason=(
                    r"$(t - r)\,u = \int_r^t v\,d\tau$; differentiate in $t$ (fundamental theorem "
                    "of calculus, $r$ fixed)."
                ),
            ),
            Step(
                lhs=average,
                rhs=v_path(t) - (t - r) * sp.Derivative(average, t),
                reason=(
                    r"Product rule on the left of the line above, "
                    r"$u + (t - r)\tfrac{d}{dt}u = v$, solved for $u$: the MeanFlow identity."
                ),
            ),
            Step(
                lhs=sp.Derivative(u_fn(z_traj(t), r, t), t),
                rhs=sp.Derivative(z_traj(t), t)
                * sp.Subs(sp.Derivative(u_fn(z, r, t), z), z, z_traj(t))
                + sp.Subs(sp.Derivative(u_fn(z_traj(t), r, tau), tau), tau, t),
                reason=(
                    r"Chain rule along the trajectory: with $\dot z_t = v(z_t, t)$ and $r$ fixed, "
                    r"$\frac{d}{dt}u = v\,\partial_z u + 0\cdot\partial_r u + \partial_t u$, the "
                    r"JVP with tangent $(v, 0, 1)$."
                ),
            ),
            Step(
                lhs=sp.Limit((z - flow_map_t_to_r) / (t - r), r, t),
                rhs=gaussian_velocity,
                reason=(
                    r"Gaussian data $\mathcal N(m, q^2)$ on CondOT: $\Phi_{t\to r}(z) = (1 - r)m + "
                    r"\sqrt{C_r/C_t}\,(z - (1 - t)m)$, $C_t = (1-t)^2 q^2 + t^2$ "
                    r"(D-gaussian-flow-map); as $r \to t$ the average velocity becomes the marginal "
                    r"velocity $-m + \tfrac{\dot C_t}{2 C_t}(z - (1-t)m)$ "
                    r"(D-gaussian-marginal-velocity), i.e. $u(z, t, t) = v(z, t)$."
                ),
            ),
        ],
        symbols=(t, r, tau, z, m, q),
        references=("geng2025meanflow",),
        code=(
            "genmath.families.meanflow.meanflow_target",
            "genmath.families.meanflow.average_velocity_from_flow_map",
        ),
        tests=("tests/families/test_meanflow.py",),
    )
)


def _meanflow_gaussian_check() -> float:
    """Max |target - u| of the JVP target of the exact average velocity of Gaussian data."""
    from ..analytic import Gaussian
    from ..core.path import GaussianPath
    from ..core.schedules import CondOT
    from ..families.meanflow import average_velocity_from_flow_map, meanflow_target

    dtype = torch.float64
    gen = torch.Generator().manual_seed(0)
    data = Gaussian(
        torch.tensor([1.5, -0.5], dtype=dtype), torch.tensor([[2.0, 0.7], [0.7, 0.4]], dtype=dtype)
    )
    marginal = data.marginal(GaussianPath(CondOT()))
    u = average_velocity_from_flow_map(marginal.flow_map, marginal.velocity)
    z = torch.randn(16, 2, generator=gen, dtype=dtype)
    r = 0.8 * torch.rand(16, generator=gen, dtype=dtype)
    t = r + (1 - r) * torch.rand(16, generator=gen, dtype=dtype)
    value, target = meanflow_target(u, z, r, t, marginal.velocity(z, t))
    return float((value - target).abs().max())


register(
    Check(
        id="C-meanflow-gaussian",
        title="MeanFlow's JVP target reproduces the exact average velocity of Gaussian data",
        function=_meanflow_gaussian_check,
        tolerance=1e-10,
        code=("genmath.families.meanflow.meanflow_target",),
        tests=("tests/families/test_meanflow.py",),
        derivation="D-meanflow-identity",
    )
)
