"""Energy-based models, bound to `genmath.families.ebm`: the stationary density of the Langevin
SDE, the unadjusted Langevin algorithm (ULA) on a Gaussian from its recursion, the
Metropolis–Hastings ratio of MALA and annealed Langevin's step sizes. The Gaussian energy
and contrastive divergence (what the model trains) are in ``families_ebm_training.py``.

The samplers draw their noise from the generator they are given; a binding that needs the
noise replays the same seed (`torch.randn` of the state's shape, the first draw of a step),
or cancels it by running the sampler from two states with the same seed.
"""

import sympy as sp

from ._chain import Earlier
from ._engine import NUMERIC, Binding, Derivation, Integers, LogUniform, Step, Uniform
from ._gaussian import log_normal
from ._registry import register
from .denoising_score_matching import _moments, _std_normal
from .elbo_gap import _Integral

_EBM = "genmath.families.ebm"
_TESTS = ("tests/families/test_ebm.py",)

x = sp.Symbol("x", real=True)


def _seeded(j):
    import torch

    return torch.Generator().manual_seed(1000 + int(j))


def _replayed_noise(shape, j):
    """The first Gaussian draw a sampler makes from `_seeded(j)`."""
    import torch

    return torch.randn(shape, generator=_seeded(j), dtype=torch.float64)


# --------------------------------------------------------------------------- Langevin SDE

b_fn = sp.Function("b", real=True)
rho = sp.Function("rho", positive=True)
density = sp.Function("p", positive=True)
c_time = sp.Symbol("c", positive=True)
theta2 = sp.Symbol("theta_2", real=True)
theta4 = sp.Symbol("theta_4", positive=True)
_energy = theta2 * x**2 / 2 + theta4 * x**4 / 4  # a double well for theta_2 < 0
_drift = -sp.diff(_energy, x)

register(
    Derivation(
        id="D-langevin-stationary",
        title="The Langevin SDE dx = grad log p dt + sqrt(2) dW has stationary density p",
        statement=(
            r"The Fokker–Planck equation of $dx = c\,b(x)\,dt + \sqrt{2c}\,dW$ is "
            r"$\partial_t\rho = -\partial_x(c\,b\rho) + c\,\partial_x^2\rho$. With "
            r"$b = \partial_x\log p$ its right-hand side vanishes at $\rho = p$, whatever the "
            r"time scale $c > 0$, so $p$ is stationary. For an energy, $p \propto e^{-U}$ and "
            r"$b = -U'$ (the EBM's score), shown for $U = \theta_2 x^2/2 + \theta_4 x^4/4$. "
            r"`langevin` runs this SDE with $c = n\epsilon$ on $[0, 1]$, so that its "
            r"Euler–Maruyama step $1/n$ is the ULA step $x + \epsilon\,b(x) + \sqrt{2\epsilon}\,z$ "
            "(D-ula-stationary-variance). Shown in one dimension; the $d$-dimensional case is "
            "the same computation coordinate by coordinate."
        ),
        start=-sp.Derivative(c_time * b_fn(x) * rho(x), x) + c_time * sp.Derivative(rho(x), x, 2),
        steps=[
            Step(
                rhs=c_time * (-sp.Derivative(b_fn(x) * rho(x), x) + sp.Derivative(rho(x), x, 2)),
                reason=r"The time scale $c$ multiplies both the drift and the diffusion term.",
            ),
            Step(
                lhs=Earlier(
                    "D-langevin-stationary",
                    {b_fn(x): sp.Derivative(sp.log(density(x)), x), rho(x): density(x)},
                    step=1,
                ),
                rhs=c_time
                * (-sp.Derivative(sp.Derivative(density(x), x), x) + sp.Derivative(density(x), x, 2)),
                reason=r"With $b = \partial_x\log p$ and $\rho = p$: $p\,\partial_x\log p = \partial_x p$.",
            ),
            Step(
                rhs=sp.Integer(0),
                reason="The drift flux's divergence cancels the diffusion term exactly.",
            ),
            Step(
                lhs=Earlier(
                    "D-langevin-stationary", {b_fn(x): _drift, rho(x): sp.exp(-_energy)}, step=1
                ),
                rhs=sp.Integer(0),
                reason=(
                    r"The same for an energy: $\rho = e^{-U}$ and drift $-U'(x)$; the EBM's "
                    r"`unnormalized_log_prob` $-U$, its `score` $-U'$ and `langevin`'s drift are "
                    "bound to this side."
                ),
            ),
        ],
        symbols=(x, c_time, theta2, theta4),
        references=("risken1996fokker", "roberts1996exponential"),
        code=(
            f"{_EBM}.langevin",
            f"{_EBM}.EnergyModel.score",
            f"{_EBM}.EnergyModel.unnormalized_log_prob",
        ),
        tests=_TESTS,
    )
)


class _Quartic:
    """The energy theta_2 x^2/2 + theta_4 x^4/4, one pair of parameters per row."""

    def __init__(self, t2, t4):
        self.t2, self.t4 = t2, t4

    def __call__(self, state):
        y = state[:, 0]
        return self.t2 * y**2 / 2 + self.t4 * y**4 / 4


def _energy_model_by_code(points):
    from ..families.ebm import EnergyModel

    model = EnergyModel(_Quartic(points[theta2], points[theta4]))
    state = points[x][:, None]
    return model.score(state)[:, 0], model.unnormalized_log_prob(state)


def _langevin_drift_by_code(points):
    """One ULA step from x and from the mode 0 with the same noise: their difference minus
    the start is epsilon times the drift at x."""
    import torch

    from ..families.ebm import EnergyModel, langevin

    values = []
    for j in range(len(points[x])):
        model = EnergyModel(_Quartic(points[theta2][j : j + 1], points[theta4][j : j + 1]))
        step = 1e-3
        start = points[x][j].reshape(1, 1)
        moved = langevin(model.score, start, step_size=step, steps=1, generator=_seeded(j)).x
        still = langevin(
            model.score, torch.zeros_like(start), step_size=step, steps=1, generator=_seeded(j)
        ).x
        values.append(((moved - still - start) / step)[0, 0])
    return torch.stack(values)


_quartic_domain = {x: Uniform(-2, 2), theta2: Uniform(-2, 2), theta4: LogUniform(1e-2, 2)}
register(
    Binding(
        derivation="D-langevin-stationary",
        code=(f"{_EBM}.EnergyModel.score", f"{_EBM}.EnergyModel.unnormalized_log_prob"),
        expression=(_drift, -_energy),
        evaluate=_energy_model_by_code,
        domain=_quartic_domain,
        description="EnergyModel's score and unnormalized_log_prob for a quartic energy",
    )
)
register(
    Binding(
        derivation="D-langevin-stationary",
        code=(f"{_EBM}.langevin",),
        expression=_drift,
        evaluate=_langevin_drift_by_code,
        domain=_quartic_domain,
        samples=16,
        description="langevin's drift: one step from x and from the mode with the same noise",
    )
)

# --------------------------------------------------------------------------- ULA

m = sp.Symbol("m", real=True)
s = sp.Symbol("s", positive=True)
eps = sp.Symbol("epsilon", positive=True)
d_off, d0 = sp.symbols("d d_0", real=True)  # the state's mean offset from m (now, at step 0)
v, v0 = sp.symbols("v v_0", positive=True)  # the state's variance (now, at step 0)
xi, z = sp.symbols("xi z", real=True)  # standard normals: the state's and the step's noise
n = sp.Symbol("n", integer=True, nonnegative=True)
ratio = sp.Symbol("r", positive=True)  # epsilon / (2 s^2) in the bindings
s_code = sp.Symbol("sigma", positive=True)  # the bindings' s: any scale, with eps = 2 sigma^2 r
eps_code = sp.Symbol("e", positive=True)  # the bindings' step: any positive value
_a = 1 - eps / s**2
_v_star = 2 * eps / (1 - _a**2)


def _variance_after(steps, start):
    return _a ** (2 * steps) * start + 2 * eps * (1 - _a ** (2 * steps)) / (1 - _a**2)


_state = m + d_off + sp.sqrt(v) * xi
_next = _state + eps * (-(_state - m) / s**2) + sp.sqrt(2 * eps) * z - m  # centred at m


def _expect(expr):
    return _Integral(_std_normal(xi) * _std_normal(z) * expr, (xi, -sp.oo, sp.oo), (z, -sp.oo, sp.oo))


register(
    Derivation(
        id="D-ula-stationary-variance",
        title="Unadjusted Langevin on N(m, s^2): stationary mean m, variance s^2/(1 - eps/(2 s^2))",
        statement=(
            r"On $p = \mathcal N(m, s^2)$ the ULA step $x' = x + \epsilon\,\nabla\log p(x) + "
            r"\sqrt{2\epsilon}\,z$ is $x' - m = a(x - m) + \sqrt{2\epsilon}\,z$ with "
            r"$a = 1 - \epsilon/s^2$. From a state with mean $m + d$ and variance $v$ the next "
            r"has mean $m + a d$ and variance $a^2 v + 2\epsilon$; after $n$ steps the variance "
            r"is $a^{2n}v_0 + 2\epsilon(1 - a^{2n})/(1 - a^2)$, which for "
            r"$0 < \epsilon < 2s^2$ ($|a| < 1$) tends to the fixed point "
            r"$v^* = 2\epsilon/(1 - a^2) = s^2/(1 - \epsilon/(2s^2)) > s^2$: the mean is exact, "
            r"the variance biased upwards by a factor that tends to 1 as $\epsilon \to 0$. A "
            r"Metropolis–Hastings correction (MALA, D-mala-acceptance) makes $p$ exactly "
            r"invariant (Roberts & Tweedie 1996). In $d$ dimensions the same holds along each "
            "eigenvector of the covariance."
        ),
        start=sp.ImmutableMatrix([_expect(_next), _expect(_next**2) - _expect(_next) ** 2]),
        steps=[
            Step(
                rhs=sp.ImmutableMatrix([_a * d_off, _a**2 * v + 2 * eps]),
                reason=(
                    r"The state is $m + d + \sqrt v\,\xi$ and the step's noise $z$, independent "
                    r"standard normals: the step is linear, $x' - m = a(d + \sqrt v\,\xi) + "
                    r"\sqrt{2\epsilon}\,z$, so its mean is $a d$ and its variance $a^2 v + 2\epsilon$."
                ),
                method=_moments,
            ),
            Step(
                lhs=Earlier(
                    "D-ula-stationary-variance",
                    {d_off: _a**n * d0, v: _variance_after(n, v0)},
                    step=1,
                ),
                rhs=sp.ImmutableMatrix([_a ** (n + 1) * d0, _variance_after(n + 1, v0)]),
                reason=(
                    r"By induction, after $n$ steps the offset is $a^n d_0$ and the variance "
                    r"$a^{2n}v_0 + 2\epsilon(1 - a^{2n})/(1 - a^2)$: one more step maps them to "
                    r"the same forms at $n + 1$. For $|a| < 1$ they tend to $0$ and to $v^*$."
                ),
            ),
            Step(
                lhs=Earlier("D-ula-stationary-variance", {v: _v_star}, step=1),
                rhs=sp.ImmutableMatrix([_a * d_off, _v_star]),
                reason=r"$v^* = 2\epsilon/(1 - a^2)$ is the fixed point of $v \mapsto a^2 v + 2\epsilon$.",
            ),
            Step(
                rhs=sp.ImmutableMatrix([_a * d_off, s**2 / (1 - eps / (2 * s**2))]),
                reason=r"Simplify: $1 - a^2 = (\epsilon/s^2)(2 - \epsilon/s^2)$.",
            ),
            Step(
                rhs=sp.ImmutableMatrix([_a * d_off, s**2]),
                relation=">=",
                reason=r"For $0 < \epsilon < 2s^2$ the factor exceeds 1: ULA over-disperses.",
                tag=NUMERIC,
                samples=40,
            ),
        ],
        symbols=(m, s, eps, d_off, v, d0, v0, n),
        references=("roberts1996exponential",),
        code=(f"{_EBM}.langevin", f"{_EBM}.ula_stationary_variance"),
        tests=_TESTS,
        domain={s: (1.0, 3.0), eps: (0.01, 1.9)},
    )
)


def _stationary_variance_by_code(points):
    import torch

    from ..families.ebm import ula_stationary_variance

    variances = points[s_code] ** 2
    steps = 2 * variances * points[ratio]
    return torch.stack(
        [ula_stationary_variance(var, float(step)) for var, step in zip(variances, steps, strict=True)]
    )


def _contraction_by_code(points):
    """n ULA steps on N(m, s^2) from two states with the same noise: the squared ratio of the
    gaps is a^(2n)."""
    import torch

    from ..families.ebm import langevin

    mode = 0.7
    values = []
    for j in range(len(points[s_code])):
        var = float(points[s_code][j]) ** 2
        step = 2 * var * float(points[ratio][j])

        def score(state, var=var):
            return -(state - mode) / var

        runs = [
            langevin(
                score,
                torch.full((1, 1), start, dtype=torch.float64),
                step_size=step,
                steps=int(points[n][j]),
                generator=_seeded(j),
            ).x[0, 0]
            for start in (mode + 1.3, mode - 0.4)
        ]
        values.append(((runs[0] - runs[1]) / 1.7) ** 2)
    return torch.stack(values)


def _noise_by_code(points):
    """One ULA step with a zero score from 0: the state is the noise times sqrt(2 eps)."""
    import torch

    from ..families.ebm import langevin

    values = []
    for j in range(len(points[eps_code])):
        start = torch.zeros(1, 1, dtype=torch.float64)
        moved = langevin(
            torch.zeros_like,
            start,
            step_size=float(points[eps_code][j]),
            steps=1,
            generator=_seeded(j),
        ).x
        values.append((moved / _replayed_noise((1, 1), j))[0, 0])
    return torch.stack(values)


register(
    Binding(
        derivation="D-ula-stationary-variance",
        code=(f"{_EBM}.ula_stationary_variance",),
        expression=s**2 / (1 - eps / (2 * s**2)),
        where={s: s_code, eps: 2 * s_code**2 * ratio},
        evaluate=_stationary_variance_by_code,
        domain={s_code: LogUniform(0.03, 30), ratio: Uniform(1e-3, 0.999)},
        description="ula_stationary_variance over variances and every stable step 0 < eps < 2 s^2",
    )
)
register(
    Binding(
        derivation="D-ula-stationary-variance",
        code=(f"{_EBM}.langevin",),
        expression=_a ** (2 * n),
        # the step kept whole, so that sigma stays a sampled symbol (the contraction is 1 - 2r)
        where={s: s_code, eps: sp.UnevaluatedExpr(2 * s_code**2 * ratio)},
        evaluate=_contraction_by_code,
        domain={s_code: LogUniform(0.1, 10), ratio: Uniform(1e-3, 1.5), n: Integers(1, 6)},
        samples=16,
        description="langevin's n-step contraction a^(2n), stable and unstable steps",
    )
)
register(
    Binding(
        derivation="D-ula-stationary-variance",
        code=(f"{_EBM}.langevin",),
        expression=sp.sqrt(2 * eps),
        where={eps: eps_code},
        evaluate=_noise_by_code,
        domain={eps_code: LogUniform(1e-6, 10)},
        samples=16,
        description="langevin's noise scale sqrt(2 eps) (the step's noise replayed from its seed)",
    )
)

# --------------------------------------------------------------------------- annealed Langevin

sigma3 = sp.Symbol("sigma_3", positive=True)
r1, r2 = sp.symbols("r_1 r_2", positive=True)
K = sp.Symbol("K", integer=True, positive=True)
_sigmas = (sigma3 * (1 + r2) * (1 + r1), sigma3 * (1 + r2), sigma3)
rho_step = sp.Symbol("rho", positive=True)  # epsilon / sigma_3^2 in the binding

register(
    Derivation(
        id="D-annealed-langevin",
        title="Annealed Langevin: the step eps sigma_i^2 / sigma_L^2 gives every level the same contraction",
        statement=(
            r"Annealed Langevin dynamics (Song & Ermon 2019, Algorithm 1) runs $K$ ULA steps at "
            r"each noise level $\sigma_1 > \dots > \sigma_L$ with step "
            r"$\alpha_i = \epsilon\,\sigma_i^2/\sigma_L^2$. On the noised law "
            r"$p_{\sigma} = \mathcal N(0, \sigma^2)$ (score $-x/\sigma^2$) the ULA step at level "
            r"$i$ contracts by $1 - \alpha_i/\sigma_i^2 = 1 - \epsilon/\sigma_L^2$, the same at "
            r"every level (D-ula-stationary-variance with $s = \sigma_i$): the step grows with "
            r"the noise exactly as the score shrinks. Over $L$ levels of $K$ steps the "
            r"contraction is $(1 - \epsilon/\sigma_L^2)^{LK}$. Shown for $L = 3$."
        ),
        # each level's step alpha_i kept whole, so the page (and the binding) see the sigma_i
        start=sp.Mul(
            *[(1 - sp.UnevaluatedExpr(eps * sig**2 / sigma3**2) / sig**2) ** K for sig in _sigmas]
        ),
        steps=[
            Step(
                rhs=(1 - eps / sigma3**2) ** (3 * K),
                reason=r"$\alpha_i/\sigma_i^2 = \epsilon/\sigma_L^2$ at every level.",
            ),
        ],
        symbols=(eps, sigma3, r1, r2, K),
        references=("song2019generative",),
        code=(f"{_EBM}.annealed_langevin",),
        tests=_TESTS,
    )
)


def _annealed_by_code(points):
    import torch

    from ..families.ebm import annealed_langevin

    values = []
    sigmas_of = [sp.lambdify((sigma3, r1, r2), sig) for sig in _sigmas]
    for j in range(len(points[sigma3])):
        args = (float(points[sigma3][j]), float(points[r1][j]), float(points[r2][j]))
        sigmas = [f(*args) for f in sigmas_of]
        step = float(points[rho_step][j]) * args[0] ** 2
        runs = [
            annealed_langevin(
                lambda state, sigma: -state / sigma**2,
                torch.full((1, 1), start, dtype=torch.float64),
                sigmas,
                steps_per_level=int(points[K][j]),
                step_size=step,
                generator=_seeded(j),
            )[0, 0]
            for start in (1.1, -0.6)
        ]
        values.append((runs[0] - runs[1]) / 1.7)
    return torch.stack(values)


register(
    Binding(
        derivation="D-annealed-langevin",
        code=(f"{_EBM}.annealed_langevin",),
        expression=sp.Mul(
            *[(1 - sp.UnevaluatedExpr(eps * sig**2 / sigma3**2) / sig**2) ** K for sig in _sigmas]
        ),
        where={eps: rho_step * sigma3**2},
        evaluate=_annealed_by_code,
        domain={
            sigma3: LogUniform(0.05, 5),
            r1: LogUniform(0.1, 3),
            r2: LogUniform(0.1, 3),
            rho_step: Uniform(1e-3, 1.9),
            K: Integers(1, 3),
        },
        samples=12,
        description="annealed_langevin's contraction over three levels, two starts, same noise",
    )
)

# --------------------------------------------------------------------------- MALA

lx, ly, gx, gy = sp.symbols("ell_x ell_y g_x g_y", real=True)  # log p and its score at x, y
_proposal = x + eps * gx + sp.sqrt(2 * eps) * z
_log_ratio = ly - lx - (x - _proposal - eps * gy) ** 2 / (4 * eps) + z**2 / 2

register(
    Derivation(
        id="D-mala-acceptance",
        title="MALA: the Metropolis–Hastings log-ratio of the Langevin proposal",
        statement=(
            r"MALA (Roberts & Tweedie 1996) proposes the ULA step "
            r"$y = x + \epsilon\,g(x) + \sqrt{2\epsilon}\,z$, $g = \nabla\log p$, i.e. "
            r"$k(y \mid x) = \mathcal N(y;\ x + \epsilon g(x),\ 2\epsilon I)$, and accepts it "
            r"with probability $\min(1, e^{\log\alpha})$, $\log\alpha = \log p(y) + "
            r"\log k(x\mid y) - \log p(x) - \log k(y\mid x)$. The normalising constants of the "
            r"two kernels cancel and $y - x - \epsilon g(x) = \sqrt{2\epsilon}\,z$, so "
            r"$\log\alpha = \log p(y) - \log p(x) - \|x - y - \epsilon g(y)\|^2/(4\epsilon) + "
            r"\|z\|^2/2$, computed from the log-density and the score at the two points only "
            r"(an unnormalised $\log p$ will do). Metropolis–Hastings with this ratio satisfies "
            r"detailed balance, so $p$ is invariant for every $\epsilon$ (tested on a Gaussian). "
            "Shown per coordinate; in $d$ dimensions the squares are summed."
        ),
        start=(ly + log_normal(x, _proposal + eps * gy, 2 * eps))
        - (lx + log_normal(_proposal, x + eps * gx, 2 * eps)),
        steps=[
            Step(
                rhs=_log_ratio,
                reason=(
                    r"Both kernels have variance $2\epsilon$: their $-\tfrac12\log(4\pi\epsilon)$ "
                    r"cancel, and the forward kernel's square is $z^2/2$."
                ),
            ),
        ],
        symbols=(x, z, lx, ly, gx, gy, eps),
        references=("roberts1996exponential",),
        code=(f"{_EBM}.mala",),
        tests=_TESTS,
    )
)


def _log_ratio_by_code(points):
    """The code's proposal and log-ratio on a 2-D event whose second coordinate is 0 (so a
    mean over the event in place of its sum would halve the value)."""
    import torch

    from ..families.ebm import _langevin_proposal, _log_acceptance

    def event(symbol, j):
        return torch.stack([points[symbol][j], torch.zeros((), dtype=torch.float64)])[None]

    # x cancels from the ratio (the code's must not depend on it): put it anywhere
    points = {**points, x: 1.7 * points[gx] - 0.4}
    values = []
    for j in range(len(points[x])):
        step = float(points[eps][j])
        state, noise = event(x, j), event(z, j)
        proposal = _langevin_proposal(state, event(gx, j), noise, step)
        values.append(
            _log_acceptance(
                state, proposal, noise, points[lx][j : j + 1], points[ly][j : j + 1],
                event(gy, j), step,
            )[0]
        )
    return torch.stack(values)


def _flat_mala_by_code(points):
    """MALA on a flat log-density accepts every proposal: one step from 0 is sqrt(2 eps) z."""
    import torch

    from ..families.ebm import mala

    def flat(state):
        return state.sum(1) * 0

    values = []
    for j in range(len(points[eps])):
        start = torch.zeros(1, 1, dtype=torch.float64)
        moved = mala(flat, start, step_size=float(points[eps][j]), steps=1, generator=_seeded(j)).x
        values.append((moved / _replayed_noise((1, 1), j))[0, 0])
    return torch.stack(values)


register(
    Binding(
        derivation="D-mala-acceptance",
        code=(f"{_EBM}._langevin_proposal", f"{_EBM}._log_acceptance"),
        expression=_log_ratio,
        evaluate=_log_ratio_by_code,
        domain={
            z: Uniform(-3, 3),
            gx: Uniform(-3, 3),
            gy: Uniform(-3, 3),
            lx: Uniform(-10, 10),
            ly: Uniform(-10, 10),
            eps: LogUniform(1e-4, 10),
        },
        description="MALA's proposal and log acceptance ratio at arbitrary values and scores",
    )
)
register(
    Binding(
        derivation="D-mala-acceptance",
        code=(f"{_EBM}.mala",),
        expression=sp.sqrt(2 * eps),
        evaluate=_flat_mala_by_code,
        domain={eps: LogUniform(1e-6, 10)},
        samples=16,
        description="one mala step on a flat density: always accepted, noise scale sqrt(2 eps)",
    )
)
