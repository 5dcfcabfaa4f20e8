"""The SDE samplers' step maps: Euler–Maruyama and the Langevin corrector of the
predictor–corrector sampler, bound to `sample_sde` on random, non-uniform grids (the ODE
samplers' step maps are in ``samplers.py``, whose cases this module shares).
"""


import sympy as sp

from ._engine import (
    Binding,
    Derivation,
    From,
    LogUniform,
    Step,
    Uniform,
)
from ._path_cases import (
    gaussian_moments,
    prescribed_noise,
)
from ._path_cases import standard_normal_density as _phi
from ._registry import register
from .elbo_gap import _Integral
from .runge_kutta import t0, t1
from .samplers import X0

# ====================================================================== SDE steps
h_em = sp.Symbol("h", real=True)  # t_next - t: negative when sampling from noise to data
b_em = sp.Symbol("b", real=True)  # the drift at (x, t)
nu_em = sp.Symbol("nu", nonnegative=True)  # the diffusion coefficient at t
z_em = sp.Symbol("z", real=True)
EM_STEP = X0 + h_em * b_em + nu_em * sp.sqrt(sp.Abs(h_em)) * z_em
_mean_em = X0 + h_em * b_em


def _against_normal(integrand):
    return _Integral(integrand * _phi(z_em), (z_em, -sp.oo, sp.oo))


register(
    Derivation(
        id="D-euler-maruyama",
        title="Euler–Maruyama: the one-step transition is N(x + h b, nu^2 |h|)",
        statement=(
            r"Freezing the drift $b$ and the diffusion $\nu$ of $dx = b(x, t)\,dt + \nu(t)\,dW$ over "
            r"$[t, t + h]$ gives $x_{t+h} = x + h\,b(x, t) + \nu(t)(W_{t+h} - W_t)$, and the Brownian "
            r"increment is $\sqrt{|h|}\,z$, $z \sim \mathcal N(0, 1)$, in either direction of time "
            r"(on a decreasing grid the increments are those of reverse time, $d\bar W$). So the "
            r"one-step transition is Gaussian with mean $x + h b$ and variance $\nu^2|h|$ per "
            r"coordinate (Kloeden & Platen 1992, §9.1): the step `sample_sde` takes."
        ),
        start=sp.ImmutableMatrix(
            [EM_STEP, _against_normal(EM_STEP), _against_normal((EM_STEP - _mean_em) ** 2)]
        ),
        steps=[
            Step(
                rhs=sp.ImmutableMatrix([EM_STEP, _mean_em, nu_em**2 * sp.Abs(h_em)]),
                reason=(
                    r"The step itself, then its mean and variance over $z$: $\mathbb E z = 0$, "
                    r"$\mathbb E z^2 = 1$."
                ),
                method=gaussian_moments,
            ),
        ],
        symbols=(X0, h_em, b_em, nu_em, z_em),
        references=("kloeden1992numerical", "song2021score"),
        code=("genmath.core.dynamics.sample_sde", "genmath.core._solvers.integrate_sde"),
        tests=("tests/core/test_samplers.py",),
    )
)

pp = sp.symbols("p_0:3", real=True)
nn = sp.symbols("n_0:2", nonnegative=True)


def _drift(state, time):
    return (pp[0] + pp[1] * time) * state + pp[2]


def _diffusion(time):
    return nn[0] + nn[1] * time


def _sde_coefficients(points, j):
    """Point j's drift ``b(x, t) = (p_0 + p_1 t) x + p_2`` and diffusion ``n_0 + n_1 t``."""
    p0_, p1_, p2_ = (points[p][j] for p in pp)
    n0_, n1_ = (points[n][j] for n in nn)
    return (lambda s, tt: (p0_ + p1_ * tt) * s + p2_), (lambda tt: n0_ + n1_ * tt)


def _em_by_code(points):
    import torch

    from ..core.dynamics import sample_sde

    values = []
    for j in range(points[X0].shape[0]):
        drift, diffusion = _sde_coefficients(points, j)
        grid = torch.stack([points[t0][j], points[t1][j]])
        with prescribed_noise([points[z_em][j].reshape(1, 1)]):
            result = sample_sde(drift, diffusion, points[X0][j].reshape(1, 1), grid=grid)
        values.append(result.x[0, 0])
    return torch.stack(values)


register(
    Binding(
        derivation="D-euler-maruyama",
        code=("genmath.core.dynamics.sample_sde", "genmath.core._solvers.integrate_sde"),
        expression=EM_STEP,
        where={h_em: t1 - t0, b_em: _drift(X0, t0), nu_em: _diffusion(t0)},
        evaluate=_em_by_code,
        domain={
            X0: Uniform(-3, 3), z_em: Uniform(-3, 3), t0: Uniform(0, 1, ends=True), t1: Uniform(0, 1),
            **{p: Uniform(-2, 2) for p in pp}, **{n: Uniform(0, 2) for n in nn},
        },
        samples=16,
        description=(
            "one Euler–Maruyama step of sample_sde at a prescribed Gaussian draw, grids in either "
            "direction"
        ),
    )
)

# --- the Langevin corrector of the predictor–corrector sampler ------------------------------
snr = sp.Symbol("r", positive=True)
eps_c = sp.Symbol("epsilon", positive=True)
Y = sp.symbols("y_0:4", real=True)  # the predictor's state: samples (y_0, y_1), (y_2, y_3)
SC = sp.symbols("S_0:4", real=True)  # the score there
ZETA = sp.symbols("zeta_0:4", real=True)  # the corrector's Gaussian draws


def _norm(first, second):
    return sp.sqrt(first**2 + second**2)


def _batch_mean_norm(v):
    return (_norm(v[0], v[1]) + _norm(v[2], v[3])) / 2


STEP_SIZE = 2 * (snr * _batch_mean_norm(ZETA) / _batch_mean_norm(SC)) ** 2
_snr_ratio = _batch_mean_norm([eps_c * s_ for s_ in SC]) / _batch_mean_norm(
    [sp.sqrt(2 * eps_c) * z_ for z_ in ZETA]
)


def _corrector_at(i):
    return From(
        "D-euler-maruyama",
        {X0: Y[i], h_em: STEP_SIZE, b_em: SC[i], nu_em: sp.sqrt(2), z_em: ZETA[i]},
        step=1,
    )


def _corrector_rhs(i):
    return sp.ImmutableMatrix(
        [Y[i] + STEP_SIZE * SC[i] + sp.sqrt(2 * STEP_SIZE) * ZETA[i], Y[i] + STEP_SIZE * SC[i], 2 * STEP_SIZE]
    )


register(
    Derivation(
        id="D-langevin-corrector",
        title="The Langevin corrector: an Euler–Maruyama step of the Langevin SDE with a signal-to-noise step size",
        statement=(
            r"The corrector of the predictor–corrector sampler (Song et al. 2021, Algorithm 4) is an "
            r"Euler–Maruyama step (D-euler-maruyama) of the Langevin SDE "
            r"$dx = \nabla\log p_t(x)\,dt + \sqrt 2\,dW$, whose stationary law is $p_t$, with step "
            r"$\epsilon = 2\big(r\,\overline{\lVert\zeta\rVert}/\overline{\lVert s\rVert}\big)^2$: "
            r"$x \mapsto x + \epsilon s(x) + \sqrt{2\epsilon}\,\zeta$, $\zeta \sim \mathcal N(0, I)$, "
            r"norms averaged over the batch. The rule makes the batch's mean drift displacement "
            r"$r$ times its mean noise displacement. Shown for a batch of two samples in two "
            "dimensions, the case the binding runs."
        ),
        start=_snr_ratio.subs(eps_c, STEP_SIZE),
        steps=[
            Step(
                rhs=snr,
                reason=(
                    r"The ratio of mean displacements $\overline{\lVert\epsilon s\rVert}/"
                    r"\overline{\lVert\sqrt{2\epsilon}\,\zeta\rVert} = \sqrt{\epsilon/2}\,"
                    r"\overline{\lVert s\rVert}/\overline{\lVert\zeta\rVert}$ is $r$ at the rule's $\epsilon$."
                ),
            ),
            Step(
                lhs=_corrector_at(0),
                rhs=_corrector_rhs(0),
                reason=(
                    r"Euler–Maruyama of the Langevin SDE with $h = \epsilon > 0$, $b = s$, $\nu = \sqrt 2$: "
                    r"the step and its conditional mean $x + \epsilon s$ and variance $2\epsilon$ "
                    "(first coordinate of the first sample)..."
                ),
            ),
            Step(
                lhs=_corrector_at(3),
                rhs=_corrector_rhs(3),
                reason="...and the second coordinate of the second sample, with the same step size.",
            ),
        ],
        symbols=(snr, *Y, *SC, *ZETA),
        references=("song2021score", "kloeden1992numerical"),
        code=("genmath.core.dynamics.sample_sde", "genmath.core._solvers.integrate_sde"),
        tests=("tests/core/test_samplers.py",),
    )
)

XB = sp.symbols("x_0:4", real=True)  # the state before the predictor
ZB = sp.symbols("z_0:4", real=True)  # the predictor's Gaussian draws
mean_s, var_s = sp.Symbol("m", real=True), sp.Symbol("v", positive=True)


def _score(state, time):
    """The bindings' score model $s(x, t) = -(x - m)/(v + t)$."""
    return -(state - mean_s) / (var_s + time)


_predicted = [
    EM_STEP.subs({X0: XB[i], h_em: t1 - t0, b_em: _drift(XB[i], t0), nu_em: _diffusion(t0), z_em: ZB[i]},
                 simultaneous=True)
    for i in range(4)
]
_pc_where = {
    **{Y[i]: _predicted[i] for i in range(4)},
    **{SC[i]: _score(_predicted[i], t1) for i in range(4)},
}


def _pc_by_code(points):
    import torch

    from ..core.dynamics import sample_sde

    def score_model(j):
        m_, v_ = points[mean_s][j], points[var_s][j]
        return lambda s, tt: -(s - m_) / (v_ + tt)

    first, last = [], []
    for j in range(points[t0].shape[0]):
        drift, diffusion = _sde_coefficients(points, j)
        state = torch.stack([points[s_][j] for s_ in XB]).reshape(2, 2)
        draws = [torch.stack([points[s_][j] for s_ in group]).reshape(2, 2) for group in (ZB, ZETA)]
        with prescribed_noise(draws):
            result = sample_sde(
                drift,
                diffusion,
                state,
                grid=torch.stack([points[t0][j], points[t1][j]]),
                method="pc",
                score=score_model(j),
                snr=float(points[snr][j]),
            )
        first.append(result.x[0, 0])
        last.append(result.x[1, 1])
    return torch.stack(first), torch.stack(last)


register(
    Binding(
        derivation="D-langevin-corrector",
        code=("genmath.core.dynamics.sample_sde", "genmath.core._solvers.integrate_sde"),
        expression=(_corrector_rhs(0)[0], _corrector_rhs(3)[0]),
        where=_pc_where,
        evaluate=_pc_by_code,
        domain={
            **{s_: Uniform(-2, 2) for s_ in (*XB, *ZB, *ZETA)},
            t0: Uniform(0, 1, ends=True), t1: Uniform(0, 1),
            **{p: Uniform(-2, 2) for p in pp}, **{n: Uniform(0, 2) for n in nn},
            mean_s: Uniform(-2, 2), var_s: LogUniform(0.05, 5.0), snr: LogUniform(0.01, 1.0),
        },
        samples=12,
        description=(
            "one predictor–corrector step of sample_sde(method='pc') on a batch of two 2-d samples "
            "at prescribed Gaussian draws: entries (0, 0) and (1, 1)"
        ),
    )
)
