"""Gaussian-mixture data through a Gaussian path (denoiser, density, responsibilities,
score, noise prediction and velocity), the mixture's moments, and sampling a Gaussian by its
Cholesky factor: the derivations behind `genmath.analytic.GaussianMixture` and
`Gaussian.sample`, each bound to the oracle."""

import sympy as sp

from ._engine import NUMERIC, Binding, Derivation, LogUniform, Step, Uniform, sound_rewrite
from ._path_cases import T, gaussian_moments, point, schedule_case, shared_path
from ._path_cases import standard_normal_density as _phi
from ._registry import register
from .elbo_gap import _Integral
from .gaussian_marginals import _log_normal, _normal, a, da, ds, sg, x, x0

mu1, mu2 = sp.symbols("mu_1 mu_2", real=True)
s1, s2 = sp.symbols("s_1 s_2", positive=True)
w = sp.Symbol("w", positive=True)  # weight of the first component

# ------------------------------------------------------------------------ mixture denoiser (1-D)
_c1, _c2 = a**2 * s1**2 + sg**2, a**2 * s2**2 + sg**2
_prior = w * _normal(x0, mu1, s1**2) + (1 - w) * _normal(x0, mu2, s2**2)
_lik = _normal(x, a * x0, sg**2)
_joint1, _joint2 = w * _normal(x, a * mu1, _c1), (1 - w) * _normal(x, a * mu2, _c2)
_evidence = _joint1 + _joint2
_mean1 = mu1 + a * s1**2 * (x - a * mu1) / _c1
_mean2 = mu2 + a * s2**2 * (x - a * mu2) / _c2


def _mixed(first, second):
    """The responsibility-weighted average of two per-component quantities."""
    return (_joint1 * first + _joint2 * second) / _evidence


DENOISER = _mixed(_mean1, _mean2)
LOG_EVIDENCE = sp.log(_evidence)
RESPONSIBILITY = _joint1 / _evidence
SCORE = _mixed(-(x - a * mu1) / _c1, -(x - a * mu2) / _c2)
EPS = _mixed(sg * (x - a * mu1) / _c1, sg * (x - a * mu2) / _c2)
VELOCITY = _mixed(
    da * mu1 + (a * da * s1**2 + sg * ds) * (x - a * mu1) / _c1,
    da * mu2 + (a * da * s2**2 + sg * ds) * (x - a * mu2) / _c2,
)


def _integral(integrand):
    return _Integral(integrand, (x0, -sp.oo, sp.oo))


_quadratures = [
    _integral(x0 * _prior * _lik) / _integral(_prior * _lik),
    sp.log(_integral(_prior * _lik)),
    _integral(w * _normal(x0, mu1, s1**2) * _lik) / _integral(_prior * _lik),
]
_tweedie = [(a * DENOISER - x) / sg**2, (x - a * DENOISER) / sg, da * DENOISER + ds * EPS]
_J1, _J2 = sp.symbols("J_1 J_2", positive=True)


@sound_rewrite(
    "an entry rational in the component evidences J_k = pi_k N(x; alpha mu_k, c_k) is an "
    "identity for all positive J_k if it is one with the J_k as free positive symbols (and then "
    "in particular at the Gaussian values); an entry with logarithms is expanded instead "
    "(positive arguments)"
)
def _evidences_free(entry):
    entry = sp.sympify(entry)
    if entry.has(sp.log):
        return sp.cancel(sp.expand(sp.expand_log(entry)))
    return sp.cancel(sp.together(entry.subs({_joint1: _J1, _joint2: _J2}, simultaneous=True)))


_factorised = sp.log(_joint1) + _log_normal(x0, _mean1, s1**2 * sg**2 / _c1)

register(
    Derivation(
        id="D-mixture-denoiser",
        title="Gaussian-mixture data: responsibility-weighted denoiser, density, score and velocity",
        statement=(
            r"For $x_0 \sim \sum_k \pi_k \mathcal N(\mu_k, \Sigma_k)$ on a Gaussian path, "
            r"$p_t = \sum_k \pi_k \mathcal N(\alpha_t\mu_k, C_{k,t})$ and "
            r"$\mathbb E[x_0 \mid x_t] = \sum_k r_k(x_t)\, \mathbb E[x_0 \mid x_t, k]$ with "
            r"$r_k = \pi_k \mathcal N(x_t; \alpha_t\mu_k, C_{k,t}) / p_t(x_t)$ (law of total "
            "expectation). Score, noise prediction and velocity, being posterior expectations of "
            r"quantities linear in $(x_0, \varepsilon)$, mix with the same weights. Shown for two "
            "components in one dimension: each component's share of the joint density factorises "
            "(D-gaussian-path-marginal), the integrals over $x_0$ are checked by quadrature, and "
            "Tweedie's formula turns the denoiser into the score, noise and velocity."
        ),
        start=sp.ImmutableMatrix(
            [sp.log(w * _normal(x0, mu1, s1**2) * _lik), *_quadratures, *_tweedie]
        ),
        steps=[
            Step(
                rhs=sp.ImmutableMatrix([_factorised, *_quadratures, SCORE, EPS, VELOCITY]),
                reason=(
                    r"First entry: for each component $k$ (here the first, weight $w$) its share of "
                    r"the joint density of $(x_0, x_t)$ is the evidence $\pi_k\mathcal N(x; \alpha"
                    r"\mu_k, c_k)$ times the Gaussian posterior $\mathcal N(x_0; m_k, v_k)$. Last "
                    r"three: with the mixed denoiser, $(\alpha\hat x_0 - x)/\sigma^2$, "
                    r"$(x - \alpha\hat x_0)/\sigma$ and $\dot\alpha\hat x_0 + \dot\sigma\hat\varepsilon$ "
                    "are the responsibility-weighted per-component scores, noises and velocities "
                    r"(no $1/\sigma$ left)."
                ),
                method=_evidences_free,
            ),
            Step(
                rhs=sp.ImmutableMatrix([_factorised, DENOISER, LOG_EVIDENCE, RESPONSIBILITY, SCORE, EPS, VELOCITY]),
                reason=(
                    r"Sum the factorised components and integrate $x_0$ out: each posterior integrates "
                    r"to one with mean $m_k$, leaving the evidences as weights: the denoiser, "
                    r"$\log p_t$ and the responsibility $r_1$ (quadrature at sampled values)."
                ),
                tag=NUMERIC,
                samples=2,
                tolerance=1e-10,
            ),
        ],
        symbols=(x, mu1, mu2, s1, s2, a, sg, w),
        domain={w: (0.1, 0.9), x: (-2.0, 2.0), mu1: (-2.0, 2.0), mu2: (-2.0, 2.0)},
        references=("song2021score", "karras2022elucidating", "billingsley1995probability"),
        code=(
            "genmath.analytic.MixtureMarginal.denoise",
            "genmath.analytic.MixtureMarginal.log_prob",
            "genmath.analytic.MixtureMarginal.responsibilities",
            "genmath.analytic.GaussianMixture.marginal",
            "genmath.analytic.GaussianMixture.log_prob",
        ),
        tests=("tests/analytic/test_mixture.py",),
    )
)


def _mixture(points, j):
    import torch

    from ..analytic import GaussianMixture

    weight = points[w][j]
    return GaussianMixture(
        torch.stack([weight, 1 - weight]),
        torch.stack([points[mu1][j], points[mu2][j]]).reshape(2, 1),
        torch.stack([points[s1][j], points[s2][j]]).reshape(2, 1, 1) ** 2,
    )


def _mixture_by_code(label):
    def evaluate(points):
        import torch

        n = points[x].shape[0]
        out = torch.empty(6, n, dtype=torch.float64)
        for j in range(n):
            marginal = _mixture(points, j).marginal(shared_path(label))
            value, time = points[x][j].reshape(1, 1), points[T][j]
            out[0, j] = marginal.denoise(value, time)[0, 0]
            out[1, j] = marginal.log_prob(value, time)[0]
            out[2, j] = marginal.responsibilities(value, time)[0, 0]
            out[3, j] = marginal.score(value, time)[0, 0]
            out[4, j] = marginal.eps(value, time)[0, 0]
            out[5, j] = marginal.velocity(value, time)[0, 0]
        return tuple(out)

    return evaluate


def _data_log_prob_by_code(points):
    import torch

    n = points[x].shape[0]
    return torch.stack([_mixture(points, j).log_prob(points[x][j].reshape(1, 1))[0] for j in range(n)])


_data = {
    x: Uniform(-4, 4), mu1: Uniform(-2, 2), mu2: Uniform(-2, 2), s1: LogUniform(0.1, 3),
    s2: LogUniform(0.1, 3), w: Uniform(0.05, 0.95),
}


def _register_mixture_bindings():
    register(
        Binding(
            derivation="D-mixture-denoiser",
            code=("genmath.analytic.GaussianMixture.log_prob",),
            expression=LOG_EVIDENCE,
            where={a: 1, sg: 0},
            evaluate=_data_log_prob_by_code,
            domain=_data,
            samples=12,
            description="GaussianMixture.log_prob: the marginal density at alpha = 1, sigma = 0",
        )
    )
    for label, ends in (("VP()", False), ("CondOT()", True)):
        case = schedule_case(label)
        a_, s_, da_, ds_ = case.at(T)
        register(
            Binding(
                derivation="D-mixture-denoiser",
                code=(
                    "genmath.analytic.GaussianMixture.marginal",
                    "genmath.analytic.MixtureMarginal.denoise",
                    "genmath.analytic.MixtureMarginal.log_prob",
                    "genmath.analytic.MixtureMarginal.responsibilities",
                    "genmath.analytic.MixtureMarginal.score",
                    "genmath.analytic.MixtureMarginal.eps",
                    "genmath.analytic.MixtureMarginal.velocity",
                ),
                expression=(DENOISER, LOG_EVIDENCE, RESPONSIBILITY, SCORE, EPS, VELOCITY),
                where={a: a_, sg: s_, da: da_, ds: ds_},
                evaluate=_mixture_by_code(label),
                domain={T: Uniform(0, 1, ends=ends), **_data},
                samples=12,
                description=(
                    f"a two-component mixture's oracle on GaussianPath({label}): denoiser, log p_t, "
                    "responsibility, score, eps and velocity"
                ),
            )
        )


_register_mixture_bindings()


# ------------------------------------------------------------------------ mixture moments
_z = sp.Symbol("z", real=True)


def _over_components(power):
    r"""$\sum_k \pi_k\,\mathbb E_k[x^p]$ with $x = \mu_k + s_k z$, $z \sim \mathcal N(0, 1)$."""
    return sum(
        weight * _Integral((mean + std * _z) ** power * _phi(_z), (_z, -sp.oo, sp.oo))
        for weight, mean, std in ((w, mu1, s1), (1 - w, mu2, s2))
    )


MIXTURE_MEAN = w * mu1 + (1 - w) * mu2
MIXTURE_VARIANCE = w * (s1**2 + mu1**2) + (1 - w) * (s2**2 + mu2**2) - MIXTURE_MEAN**2


register(
    Derivation(
        id="D-mixture-moments",
        title="Mean and covariance of a Gaussian mixture (law of total covariance)",
        statement=(
            r"$\mathbb E x = \sum_k \pi_k\mu_k$ and $\operatorname{Cov} x = \sum_k \pi_k(\Sigma_k + "
            r"\mu_k\mu_k^\top) - \bar\mu\bar\mu^\top$. Shown for two components in one dimension by "
            r"quadrature; in $d$ dimensions every projection $u^\top x$ is such a mixture, with "
            r"means $u^\top\mu_k$ and variances $u^\top\Sigma_k u$, so the projections "
            r"$u = e_1, e_2, e_1 + e_2$ determine the $2\times 2$ covariance (the bindings)."
        ),
        start=sp.ImmutableMatrix([_over_components(1), _over_components(2) - _over_components(1) ** 2]),
        steps=[
            Step(
                rhs=sp.ImmutableMatrix([MIXTURE_MEAN, MIXTURE_VARIANCE]),
                reason=(
                    r"Each component contributes its first moment $\mu_k$ and second moment "
                    r"$s_k^2 + \mu_k^2$ ($\mathbb E z = 0$, $\mathbb E z^2 = 1$), weighted by $\pi_k$."
                ),
                method=gaussian_moments,
            ),
        ],
        symbols=(mu1, mu2, s1, s2, w),
        domain={w: (0.1, 0.9), mu1: (-2.0, 2.0), mu2: (-2.0, 2.0), s1: (0.3, 2.0), s2: (0.3, 2.0)},
        references=("billingsley1995probability",),
        code=("genmath.analytic.GaussianMixture.mean", "genmath.analytic.GaussianMixture.cov"),
        tests=("tests/analytic/test_mixture.py",),
    )
)

# two 2-d components: means (m_k1, m_k2), covariances [[A_k, r_k sqrt(A_k B_k)], [., B_k]]
M = sp.symbols("m_11 m_12 m_21 m_22", real=True)
VA = sp.symbols("A_1 A_2", positive=True)
VB = sp.symbols("B_1 B_2", positive=True)
CORR = sp.symbols("r_1 r_2", real=True)


def _projection_where(u):
    """The 1-d mixture of u^T x: component means u^T mu_k and standard deviations
    sqrt(u^T Sigma_k u)."""
    out = {}
    for k, (mean, std) in enumerate(((mu1, s1), (mu2, s2))):
        cross = CORR[k] * sp.sqrt(VA[k] * VB[k])
        variance = u[0] ** 2 * VA[k] + 2 * u[0] * u[1] * cross + u[1] ** 2 * VB[k]
        out[mean] = u[0] * M[2 * k] + u[1] * M[2 * k + 1]
        out[std] = sp.sqrt(variance)
    return out


def _moments_by_code(u):
    def evaluate(points):
        import torch

        from ..analytic import GaussianMixture

        n = points[w].shape[0]
        # a unit projection leaves the other coordinate's parameters out of the expression
        value = {q: point(points, q, n, 0.7) for q in (*M, *VA, *VB, *CORR)}
        direction = torch.tensor(u, dtype=torch.float64)
        out = torch.empty(2, n, dtype=torch.float64)
        for j in range(n):
            covs = []
            for k in range(2):
                va, vb = value[VA[k]][j], value[VB[k]][j]
                cross = value[CORR[k]][j] * (va * vb).sqrt()
                covs.append(torch.stack([torch.stack([va, cross]), torch.stack([cross, vb])]))
            weight = points[w][j]
            mixture = GaussianMixture(
                torch.stack([weight, 1 - weight]),
                torch.stack([value[m][j] for m in M]).reshape(2, 2),
                torch.stack(covs),
            )
            out[0, j] = mixture.mean @ direction
            out[1, j] = direction @ mixture.cov @ direction
        return tuple(out)

    return evaluate


for _u in ((1, 0), (0, 1), (1, 1)):
    register(
        Binding(
            derivation="D-mixture-moments",
            code=("genmath.analytic.GaussianMixture.mean", "genmath.analytic.GaussianMixture.cov"),
            expression=(MIXTURE_MEAN, MIXTURE_VARIANCE),
            where=_projection_where(_u),
            evaluate=_moments_by_code(_u),
            domain={
                w: Uniform(0.05, 0.95), **{m: Uniform(-2, 2) for m in M},
                **{v: LogUniform(0.05, 5) for v in (*VA, *VB)}, **{c: Uniform(-0.9, 0.9) for c in CORR},
            },
            samples=8,
            description=f"the projection u = {_u} of a two-component 2-d mixture's mean and covariance",
        )
    )

# ------------------------------------------------------------------------ sampling by Cholesky
S11, S22 = sp.symbols("S_11 S_22", positive=True)
S12 = sp.Symbol("S_12", real=True)
m1, m2, z1, z2 = sp.symbols("m_1 m_2 z_1 z_2", real=True)
_L = sp.Matrix([[sp.sqrt(S11), 0], [S12 / sp.sqrt(S11), sp.sqrt(S22 - S12**2 / S11)]])
SAMPLE = sp.Matrix([m1, m2]) + _L * sp.Matrix([z1, z2])
_FACTOR = (_L[0, 0], _L[1, 0], _L[1, 1])

register(
    Derivation(
        id="D-gaussian-sampling",
        title="Sampling a Gaussian by its Cholesky factor: mu + L z ~ N(mu, L L^T) = N(mu, Sigma)",
        statement=(
            r"With $z \sim \mathcal N(0, I)$ and $L$ the lower-triangular Cholesky factor of "
            r"$\Sigma$, $x = \mu + Lz$ is Gaussian with mean $\mu$ and covariance "
            r"$L\,\mathbb E[zz^\top]L^\top = LL^\top = \Sigma$: the map `Gaussian.sample` and "
            "`GaussianMixture.sample` apply to standard normal draws. Shown for a general "
            r"symmetric positive-definite $2\times 2$ $\Sigma$ ($S_{22} > S_{12}^2/S_{11}$)."
        ),
        start=sp.ImmutableMatrix([*SAMPLE, _L[1, 0] ** 2 + _L[1, 1] ** 2]),
        steps=[
            Step(
                rhs=sp.ImmutableMatrix([*SAMPLE, S22]),
                reason=(
                    r"The sample map itself (first two entries), and $LL^\top = \Sigma$: "
                    r"$L_{11}^2 = S_{11}$ and $L_{11}L_{21} = S_{12}$ hold as written, and "
                    r"$L_{21}^2 + L_{22}^2 = S_{22}$."
                ),
            ),
        ],
        symbols=(S11, S12, S22, m1, m2, z1, z2),
        references=("billingsley1995probability",),
        code=("genmath.analytic.Gaussian.sample", "genmath.analytic.GaussianMixture.sample_with_components"),
        tests=("tests/analytic/test_gaussian.py", "tests/analytic/test_mixture.py"),
    )
)

corr = sp.Symbol("rho", real=True)


def _affine_map(inputs, outputs):
    """``(c, A)`` with ``outputs = c + inputs A^T`` exactly (three or more samples)."""
    import torch

    design = torch.cat([torch.ones(inputs.shape[0], 1, dtype=inputs.dtype), inputs], dim=1)
    solution = torch.linalg.lstsq(design, outputs).solution
    return solution[0], solution[1:].T


def _sampling_by_code(points):
    """Draw with a seeded generator, replay the same standard normal draws, recover the affine
    map the sampler applied, and evaluate it at the points' z; also return A A^T. Even j:
    Gaussian.sample; odd j: component 0 of GaussianMixture.sample_with_components."""
    import torch

    from ..analytic import Gaussian, GaussianMixture

    n = points[z1].shape[0]
    out = torch.empty(5, n, dtype=torch.float64)
    for j in range(n):
        c12 = points[corr][j] * (points[S11][j] * points[S22][j]).sqrt()
        cov = torch.stack([torch.stack([points[S11][j], c12]), torch.stack([c12, points[S22][j]])])
        mean = torch.stack([points[m1][j], points[m2][j]])
        if j % 2 == 0:
            draws = Gaussian(mean, cov).sample(4, generator=torch.Generator().manual_seed(j))
            replay = torch.Generator().manual_seed(j)
            z = torch.randn(4, 2, generator=replay, dtype=torch.float64)
        else:
            mixture = GaussianMixture(
                torch.tensor([0.5, 0.5], dtype=torch.float64),
                torch.stack([mean, torch.zeros(2, dtype=torch.float64)]),
                torch.stack([cov, torch.eye(2, dtype=torch.float64)]),
            )
            draws, labels = mixture.sample_with_components(24, generator=torch.Generator().manual_seed(j))
            replay = torch.Generator().manual_seed(j)
            replayed_labels = torch.multinomial(mixture.weights, 24, replacement=True, generator=replay)
            z = torch.randn(24, 2, generator=replay, dtype=torch.float64)
            assert torch.equal(labels, replayed_labels)
            draws, z = draws[labels == 0], z[labels == 0]
        offset, matrix = _affine_map(z, draws)
        out[0:2, j] = offset + matrix @ torch.stack([points[z1][j], points[z2][j]])
        out[2:5, j] = torch.stack([matrix[0, 0], matrix[1, 0], matrix[1, 1]])
    return tuple(out)


register(
    Binding(
        derivation="D-gaussian-sampling",
        code=("genmath.analytic.Gaussian.sample", "genmath.analytic.GaussianMixture.sample_with_components"),
        expression=(*SAMPLE, *_FACTOR),
        where={S12: corr * sp.sqrt(S11 * S22)},
        evaluate=_sampling_by_code,
        domain={
            S11: LogUniform(0.05, 5), S22: LogUniform(0.05, 5), corr: Uniform(-0.9, 0.9),
            m1: Uniform(-2, 2), m2: Uniform(-2, 2), z1: Uniform(-3, 3), z2: Uniform(-3, 3),
        },
        samples=10,
        tolerance=1e-8,
        description=(
            "the affine map the samplers apply to their standard normal draws (recovered by "
            "replaying the seeded generator), at the points' z, and its matrix against L"
        ),
    )
)
