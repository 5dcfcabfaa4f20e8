"""Few-step generators: the consistency models' boundary parameterization and the MeanFlow
identity for the average velocity (moved here from ``families_flow_matching.py`` unchanged; a
flow-map topic of their own)."""

import sympy as sp
import torch

from ._engine import Check, Derivation, Step
from ._registry import register

# symbols shared with the flow-matching topic when these lived there
t, r, tau = sp.symbols("t r tau", real=True)

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
