"""Gaussian data through a Gaussian path: marginal, posterior mean, noise prediction, score,
marginal velocity and the exact probability-flow map.

These back the exact oracles of `genmath.analytic`, and each is bound to the oracle on
Gaussians with full, non-diagonal covariances, on several schedules: in two dimensions
against the general symmetric 2x2 result where one is derived, else per eigendirection (the
d-dimensional problem decouples in the covariance's eigenbasis, D-gaussian-path-marginal, so
the binding rotates the oracle's output into that basis with the rotation it built the
covariance from, and compares each coordinate with the one-dimensional result).
"""

import math

import sympy as sp

from ._engine import NUMERIC, Binding, Check, Derivation, LogUniform, Step, Uniform
from ._path_cases import T, expand_or_together, schedule_case, shared_path
from ._registry import register
from .elbo_gap import _Integral

x, x0, mu = sp.symbols("x x_0 mu", real=True)
s, s1, s2 = sp.symbols("s s_1 s_2", positive=True)  # data standard deviations
a, sg = sp.symbols("alpha sigma", positive=True)  # the path's alpha_t, sigma_t at one t
da, ds = sp.symbols(r"\dot{alpha} \dot{sigma}", real=True)  # their rates at that t
t, t0 = sp.symbols("t t_0", real=True)
theta = sp.Symbol("theta", real=True)  # angle of the covariance's eigenbasis
alpha_f, sigma_f = sp.Function("alpha", positive=True), sp.Function("sigma", positive=True)


def _log_normal(v, m, var):
    return -sp.log(2 * sp.pi * var) / 2 - (v - m) ** 2 / (2 * var)


def _normal(v, m, var):
    return sp.exp(-((v - m) ** 2) / (2 * var)) / sp.sqrt(2 * sp.pi * var)


def _rotation(angle):
    return sp.Matrix([[sp.cos(angle), -sp.sin(angle)], [sp.sin(angle), sp.cos(angle)]])


def _at(case, time):
    """The schedule's (alpha, sigma, alpha', sigma') at the sympy time ``time``."""
    return case.at(time)


def _pythagoras(e):
    """Expand (logarithms too), put cos^2 + sin^2 = 1 in, cancel."""
    expanded = sp.expand(sp.expand_log(e))
    return sp.cancel(sp.expand(expanded.subs(sp.sin(theta) ** 2, 1 - sp.cos(theta) ** 2)))


# ---------------------------------------------------------------- marginal and posterior (1-D)
_c = a**2 * s**2 + sg**2
_post_mean = mu + a * s**2 * (x - a * mu) / _c
_post_var = s**2 * sg**2 / _c
_joint = _log_normal(x0, mu, s**2) + _log_normal(x, a * x0, sg**2)
_R = _rotation(theta)
_cov_t = a**2 * _R * sp.diag(s1**2, s2**2) * _R.T + sg**2 * sp.eye(2)
_cov_t_eigen = _R * sp.diag(a**2 * s1**2 + sg**2, a**2 * s2**2 + sg**2) * _R.T
MARGINAL_LOG_DENSITY = _log_normal(x, a * mu, _c)
_entries = ((0, 0), (0, 1), (1, 1))

register(
    Derivation(
        id="D-gaussian-path-marginal",
        title="Gaussian data through a Gaussian path: marginal and posterior",
        statement=(
            r"If $x_0 \sim \mathcal N(\mu, \Sigma)$ and $x_t = \alpha_t x_0 + \sigma_t \varepsilon$ "
            r"with $\varepsilon \sim \mathcal N(0, I)$ independent, then "
            r"$p_t = \mathcal N(\alpha_t \mu,\ C_t)$ with $C_t = \alpha_t^2 \Sigma + \sigma_t^2 I$, and "
            r"$x_0 \mid x_t$ is Gaussian. Shown in one dimension by completing the square in $x_0$ "
            r"(first entry) and integrating $x_0$ out (second); in $d$ dimensions the same holds "
            r"coordinate-wise in the eigenbasis of $\Sigma$, which also diagonalises $C_t$ for every "
            r"$t$ (the last three entries, $\Sigma = U\operatorname{diag}(s_1^2, s_2^2)U^\top$ with $U$ "
            "the rotation by $\\theta$)."
        ),
        start=sp.ImmutableMatrix(
            [
                _joint,
                _Integral(sp.exp(_joint), (x0, -sp.oo, sp.oo)),
                *(_cov_t[i, j] for i, j in _entries),
            ]
        ),
        steps=[
            Step(
                rhs=sp.ImmutableMatrix(
                    [
                        MARGINAL_LOG_DENSITY + _log_normal(x0, _post_mean, _post_var),
                        _Integral(sp.exp(_joint), (x0, -sp.oo, sp.oo)),
                        *(_cov_t_eigen[i, j] for i, j in _entries),
                    ]
                ),
                reason=(
                    r"Complete the square in $x_0$: the joint log-density of $(x_0, x_t)$ splits into "
                    r"the log-density of $x_t$, $\mathcal N(\alpha\mu, \alpha^2 s^2 + \sigma^2)$, plus "
                    r"that of $x_0 \mid x_t$, $\mathcal N\big(\mu + \alpha s^2 (x - \alpha\mu)/c,\ "
                    r"s^2\sigma^2/c\big)$. With $\Sigma = U\operatorname{diag}(\lambda)U^\top$, "
                    r"$C_t = U\operatorname{diag}(\alpha_t^2\lambda + \sigma_t^2)U^\top$: one eigenbasis "
                    "serves every $t$, so the $d$-dimensional problem is $d$ one-dimensional ones."
                ),
                method=_pythagoras,
            ),
            Step(
                rhs=sp.ImmutableMatrix(
                    [
                        MARGINAL_LOG_DENSITY + _log_normal(x0, _post_mean, _post_var),
                        _normal(x, a * mu, _c),
                        *(_cov_t_eigen[i, j] for i, j in _entries),
                    ]
                ),
                reason=(
                    r"Integrate $x_0$ out: the posterior factor integrates to one, leaving "
                    r"$p_t(x) = \mathcal N(x; \alpha\mu, \alpha^2 s^2 + \sigma^2)$ (quadrature at "
                    "sampled values)."
                ),
                tag=NUMERIC,
                samples=4,
                tolerance=1e-10,
            ),
        ],
        symbols=(x, x0, mu, s, a, sg, s1, s2, theta),
        references=("song2021score", "kingma2021variational"),
        code=(
            "genmath.analytic.Gaussian.marginal",
            "genmath.analytic.GaussianMarginal.log_prob",
            "genmath.analytic.GaussianMarginal.mean",
            "genmath.analytic.GaussianMarginal.cov",
        ),
        tests=("tests/analytic/test_gaussian.py", "tests/analytic/test_mixture.py"),
    )
)

_LABELS = ("VP()", "CondOT()", "VE()", "CosineVP()")


def _scales_where(label, time=T):
    a_, s_, da_, ds_ = _at(schedule_case(label), time)
    return {a: a_, sg: s_, da: da_, ds: ds_}


def _gaussian_1d(points, j, mean=mu, std=s):
    import torch

    from ..analytic import Gaussian

    return Gaussian(points[mean][j].reshape(1), points[std][j].reshape(1, 1) ** 2 * torch.ones(1, 1))


def _log_prob_by_code(label):
    def evaluate(points):
        import torch

        n = points[x].shape[0]
        out = torch.empty(n, dtype=torch.float64)
        for j in range(n):
            gaussian = _gaussian_1d(points, j)
            value = points[x][j].reshape(1, 1)
            if label is None:  # the data law itself: alpha = 1, sigma = 0
                out[j] = gaussian.log_prob(value)[0]
            else:
                out[j] = gaussian.marginal(shared_path(label)).log_prob(value, points[T][j])[0]
        return out

    return evaluate


def _rotated_covariance(points, j):
    import torch

    from ._path_cases import point

    n = points[theta].shape[0]
    c, k = torch.cos(points[theta][j]), torch.sin(points[theta][j])
    rotation = torch.stack([torch.stack([c, -k]), torch.stack([k, c])])
    second = point(points, s2, n, 1.3)[j]  # absent where only the first direction is bound
    spectrum = torch.diag(torch.stack([points[s1][j] ** 2, second**2]))
    return rotation, rotation @ spectrum @ rotation.T


def _moments_by_code(label):
    def evaluate(points):
        import torch

        from ..analytic import Gaussian

        n = points[T].shape[0]
        out = torch.empty(4, n, dtype=torch.float64)
        for j in range(n):
            _, cov = _rotated_covariance(points, j)
            marginal = Gaussian(torch.stack([points[mu][j], -0.7 * points[mu][j]]), cov).marginal(
                shared_path(label)
            )
            moments = marginal.cov(points[T][j])
            out[:3, j] = torch.stack([moments[i, k] for i, k in _entries])
            out[3, j] = marginal.mean(points[T][j])[0]
        return tuple(out)

    return evaluate


def _register_marginal_bindings():
    data = {x: Uniform(-4, 4), mu: Uniform(-2, 2), s: LogUniform(0.1, 5)}
    register(
        Binding(
            derivation="D-gaussian-path-marginal",
            code=("genmath.analytic.Gaussian.log_prob",),
            expression=MARGINAL_LOG_DENSITY,
            where={a: 1, sg: 0},
            evaluate=_log_prob_by_code(None),
            domain=data,
            samples=12,
            description="Gaussian(mu, s^2).log_prob: the marginal at alpha = 1, sigma = 0",
        )
    )
    for label in _LABELS:
        register(
            Binding(
                derivation="D-gaussian-path-marginal",
                code=("genmath.analytic.Gaussian.marginal", "genmath.analytic.GaussianMarginal.log_prob"),
                expression=MARGINAL_LOG_DENSITY,
                where=_scales_where(label),
                evaluate=_log_prob_by_code(label),
                domain={T: Uniform(0, 1, ends=True), **data},
                samples=12,
                description=f"Gaussian(mu, s^2).marginal(GaussianPath({label})).log_prob, t in [0, 1]",
            )
        )
    for label in ("VP()", "CondOT()"):
        register(
            Binding(
                derivation="D-gaussian-path-marginal",
                code=("genmath.analytic.GaussianMarginal.cov", "genmath.analytic.GaussianMarginal.mean"),
                expression=(*(_cov_t_eigen[i, j] for i, j in _entries), a * mu),
                where=_scales_where(label),
                evaluate=_moments_by_code(label),
                domain={
                    T: Uniform(0, 1, ends=True), theta: Uniform(-3, 3), s1: LogUniform(0.1, 5),
                    s2: LogUniform(0.1, 5), mu: Uniform(-2, 2),
                },
                samples=12,
                description=(
                    f"GaussianMarginal.cov and .mean on GaussianPath({label}) for a rotated, "
                    "non-diagonal covariance"
                ),
            )
        )


_register_marginal_bindings()

# ------------------------------------------------------ posterior mean (general 2x2 covariance)
p11, p12, p22 = sp.symbols("S_11 S_12 S_22", real=True)
m_1, m_2, y_1, y_2 = sp.symbols("m_1 m_2 y_1 y_2", real=True)
_Sigma = sp.Matrix([[p11, p12], [p12, p22]])
_mu_vec = sp.Matrix([m_1, m_2])
_x_vec = sp.Matrix([y_1, y_2])
_C = a**2 * _Sigma + sg**2 * sp.eye(2)
_C_inv = _C.inv()
_resid = _x_vec - a * _mu_vec
X0_HAT = _mu_vec + a * _Sigma * _C_inv * _resid
EPS_HAT = sg * _C_inv * _resid
SCORE = -_C_inv * _resid
LOG_DENSITY_2D = -sp.log(2 * sp.pi) - sp.log(_C.det()) / 2 - (_resid.T * _C_inv * _resid)[0] / 2
VELOCITY_2D = da * _mu_vec + (a * da * _Sigma + sg * ds * sp.eye(2)) * _C_inv * _resid
_precision_form = (_Sigma.inv() + a**2 / sg**2 * sp.eye(2)).inv() * (
    _Sigma.inv() * _mu_vec + a / sg**2 * _x_vec
)

register(
    Derivation(
        id="D-gaussian-posterior-mean",
        title="Posterior mean, noise prediction, score and velocity of Gaussian data on a Gaussian path",
        statement=(
            r"For $x_0 \sim \mathcal N(\mu, \Sigma)$, $x_t = \alpha_t x_0 + \sigma_t\varepsilon$ and "
            r"$C_t = \alpha_t^2\Sigma + \sigma_t^2 I$: "
            r"$\mathbb E[x_0 \mid x_t] = \mu + \alpha_t \Sigma C_t^{-1}(x_t - \alpha_t\mu)$, "
            r"$\mathbb E[\varepsilon \mid x_t] = \sigma_t C_t^{-1}(x_t - \alpha_t\mu)$ (finite where "
            r"$\sigma_t = 0$), $\nabla \log p_t = -C_t^{-1}(x_t - \alpha_t \mu)$ (Tweedie, and the "
            r"gradient of $\log\mathcal N(\alpha_t\mu, C_t)$), and the marginal velocity "
            r"$\dot\alpha_t\hat x_0 + \dot\sigma_t\hat\varepsilon = \dot\alpha_t\mu + (\alpha_t\dot\alpha_t"
            r"\Sigma + \sigma_t\dot\sigma_t I)C_t^{-1}(x_t - \alpha_t\mu)$. Verified with a general "
            r"symmetric $2\times 2$ $\Sigma$."
        ),
        start=sp.ImmutableMatrix(
            [
                *_precision_form,
                *((_x_vec - a * X0_HAT) / sg),
                *((a * X0_HAT - _x_vec) / sg**2),
                *(sp.Derivative(LOG_DENSITY_2D, v) for v in (y_1, y_2)),
                *(da * X0_HAT + ds * EPS_HAT),
            ]
        ),
        steps=[
            Step(
                rhs=sp.ImmutableMatrix([*X0_HAT, *EPS_HAT, *SCORE, *SCORE, *VELOCITY_2D]),
                reason=(
                    r"Bayes in precision form (prior precision $\Sigma^{-1}$ plus likelihood "
                    r"precision $\alpha^2/\sigma^2\, I$) equals the gain form used by the code; "
                    r"$\hat\varepsilon = (x_t - \alpha\hat x_0)/\sigma$, where since $C_t - "
                    r"\alpha^2\Sigma = \sigma^2 I$ the division by $\sigma$ cancels; Tweedie's "
                    r"$(\alpha\hat x_0 - x)/\sigma^2$ is the gradient of $\log\mathcal N(x; "
                    r"\alpha\mu, C_t)$; and the velocity collects into $\dot\alpha\mu + \frac12\dot C_t "
                    r"C_t^{-1}(x - \alpha\mu)$, with $\frac12\dot C_t = \alpha\dot\alpha\Sigma + "
                    r"\sigma\dot\sigma I$: no $1/\sigma$."
                ),
                method=expand_or_together,
            ),
        ],
        symbols=(p11, p12, p22, m_1, m_2, y_1, y_2, a, sg, da, ds),
        references=("efron2011tweedie",),
        code=(
            "genmath.analytic.MixtureMarginal.denoise",
            "genmath.analytic.MixtureMarginal.eps",
            "genmath.analytic.MixtureMarginal.score",
            "genmath.analytic.MixtureMarginal.log_prob",
            "genmath.analytic.MixtureMarginal.velocity",
        ),
        tests=("tests/analytic/test_gaussian.py",),
    )
)

rho = sp.Symbol("rho", real=True)  # correlation of the data covariance


def _oracle_2d_by_code(label):
    """Point j: Gaussian(mean, cov) (even j) or the same law as a one-component
    GaussianMixture (odd j), at (y, t)."""

    def evaluate(points):
        import torch

        from ..analytic import Gaussian, GaussianMixture

        n = points[T].shape[0]
        out = torch.empty(9, n, dtype=torch.float64)
        for j in range(n):
            c12 = points[rho][j] * (points[p11][j] * points[p22][j]).sqrt()
            cov = torch.stack([torch.stack([points[p11][j], c12]), torch.stack([c12, points[p22][j]])])
            mean = torch.stack([points[m_1][j], points[m_2][j]])
            law = Gaussian(mean, cov) if j % 2 == 0 else GaussianMixture(
                torch.ones(1, dtype=torch.float64), mean[None], cov[None]
            )
            marginal = law.marginal(shared_path(label))
            point, time = torch.stack([points[y_1][j], points[y_2][j]])[None], points[T][j]
            out[0:2, j] = marginal.denoise(point, time)[0]
            out[2:4, j] = marginal.eps(point, time)[0]
            out[4:6, j] = marginal.score(point, time)[0]
            out[6, j] = marginal.log_prob(point, time)[0]
            out[7:9, j] = marginal.velocity(point, time)[0]
        return tuple(out)

    return evaluate


def _register_posterior_bindings():
    # VP's sigma-dot is infinite at t = 0: its velocity is bound per eigendirection below,
    # where sigma sigma-dot enters as one finite rate
    for label, ends in (("VP()", False), ("CondOT()", True), ("VE()", True)):
        register(
            Binding(
                derivation="D-gaussian-posterior-mean",
                code=(
                    "genmath.analytic.MixtureMarginal.denoise",
                    "genmath.analytic.MixtureMarginal.eps",
                    "genmath.analytic.MixtureMarginal.score",
                    "genmath.analytic.MixtureMarginal.log_prob",
                    "genmath.analytic.MixtureMarginal.velocity",
                ),
                expression=(*X0_HAT, *EPS_HAT, *SCORE, LOG_DENSITY_2D, *VELOCITY_2D),
                where={**_scales_where(label), p12: rho * sp.sqrt(p11 * p22)},
                evaluate=_oracle_2d_by_code(label),
                domain={
                    T: Uniform(0, 1, ends=ends), p11: LogUniform(0.05, 5), p22: LogUniform(0.05, 5),
                    rho: Uniform(-0.9, 0.9), m_1: Uniform(-2, 2), m_2: Uniform(-2, 2),
                    y_1: Uniform(-4, 4), y_2: Uniform(-4, 4),
                },
                samples=10,
                description=(
                    f"denoise, eps, score, log_prob and velocity of a correlated 2-d Gaussian on "
                    f"GaussianPath({label}) (as Gaussian and as a one-component GaussianMixture)"
                ),
            )
        )


_register_posterior_bindings()

# --------------------------------------------------------------- velocity and flow map (1-D, any t)
_alpha, _sigma = alpha_f(t), sigma_f(t)
_ct = _alpha**2 * s**2 + _sigma**2
# the rate of c_t with d(sigma^2)/dt kept whole: finite where sigma = 0 even when sigma-dot is not
_ct_rate = 2 * _alpha * sp.Derivative(_alpha, t) * s**2 + sp.Derivative(_sigma**2, t)
_x0_hat_t = mu + _alpha * s**2 * (x - _alpha * mu) / _ct
_eps_hat_t = _sigma * (x - _alpha * mu) / _ct


def _velocity(y):
    return sp.Derivative(_alpha, t) * mu + _ct_rate / (2 * _ct) * (y - _alpha * mu)


_log_p = _log_normal(x, _alpha * mu, _ct)
VELOCITY_1D = _velocity(x)

register(
    Derivation(
        id="D-gaussian-marginal-velocity",
        title="Marginal velocity of Gaussian data on a Gaussian path",
        statement=(
            r"The marginal velocity $u_t(x) = \dot\alpha_t \hat x_0 + \dot\sigma_t \hat\varepsilon$ of "
            r"$\mathcal N(\mu, \Sigma)$ data is $\dot\alpha_t \mu + \tfrac12 \dot C_t C_t^{-1}(x - \alpha_t\mu)$; "
            r"only $\dot\alpha$ and $\sigma\dot\sigma = \tfrac12 \tfrac{d}{dt}\sigma^2$ appear, never $1/\sigma$, "
            r"so it is finite where $\sigma_t = 0$ even when $\dot\sigma_t$ is not (VP at $t = 0$). It "
            r"satisfies the continuity equation $\partial_t \log p_t + \nabla\cdot u_t + u_t\cdot\nabla\log "
            r"p_t = 0$. Shown per eigendirection (D-gaussian-path-marginal) for arbitrary schedules "
            r"$\alpha(t), \sigma(t)$."
        ),
        start=sp.ImmutableMatrix(
            [
                sp.diff(_alpha, t) * _x0_hat_t + sp.diff(_sigma, t) * _eps_hat_t,
                sp.diff(_log_p, t) + sp.Derivative(VELOCITY_1D, x) + VELOCITY_1D * sp.diff(_log_p, x),
            ]
        ),
        steps=[
            Step(
                rhs=sp.ImmutableMatrix([VELOCITY_1D, 0]),
                reason=(
                    r"Collect terms: $\dot c = 2\alpha\dot\alpha s^2 + \frac{d}{dt}\sigma^2$ with "
                    r"$c = \alpha^2 s^2 + \sigma^2$. Substitute $\log p_t = \log\mathcal N(x; \alpha_t\mu, "
                    r"c_t)$: the continuity equation holds identically in $t$."
                ),
                method=expand_or_together,
            ),
        ],
        symbols=(x, mu, s, t),
        references=("song2021score", "lipman2023flow"),
        code=("genmath.analytic.MixtureMarginal.velocity",),
        tests=("tests/analytic/test_gaussian.py", "tests/analytic/test_mixture.py"),
    )
)


def _function_where(label, time, value):
    """``alpha(time)``, ``sigma(time)``, the rate of alpha and that of sigma^2 (kept whole)
    from schedule ``label``, at the sympy symbol ``value``."""
    a_, s_, da_, _ = _at(schedule_case(label), value)
    return {
        sp.Derivative(sigma_f(time) ** 2, time): sp.diff(s_**2, value),
        sp.Derivative(alpha_f(time), time): da_,
        alpha_f(time): a_,
        sigma_f(time): s_,
    }


def _velocity_by_code(label):
    def evaluate(points):
        import torch

        n = points[x].shape[0]
        out = torch.empty(n, dtype=torch.float64)
        for j in range(n):
            marginal = _gaussian_1d(points, j).marginal(shared_path(label))
            out[j] = marginal.velocity(points[x][j].reshape(1, 1), points[T][j])[0, 0]
        return out

    return evaluate


def _register_velocity_bindings():
    for label in _LABELS:
        register(
            Binding(
                derivation="D-gaussian-marginal-velocity",
                code=("genmath.analytic.MixtureMarginal.velocity",),
                expression=VELOCITY_1D,
                where=_function_where(label, t, T),
                evaluate=_velocity_by_code(label),
                domain={T: Uniform(0, 1, ends=True), x: Uniform(-4, 4), mu: Uniform(-2, 2),
                        s: LogUniform(0.1, 5)},
                samples=12,
                description=(
                    f"Gaussian(mu, s^2).marginal(GaussianPath({label})).velocity on [0, 1], ends "
                    "included (VP's t = 0: sigma sigma-dot taken from the forward SDE)"
                ),
            )
        )


_register_velocity_bindings()

# -------------------------------------------------------------- exact-numeric checks of the oracles
class _TrigPath:
    """alpha = cos(pi t / 2), sigma = sin(pi t / 2): any path with these four methods will do."""

    def alpha(self, t):
        import torch

        return torch.cos(math.pi * torch.as_tensor(t) / 2)

    def sigma(self, t):
        import torch

        return torch.sin(math.pi * torch.as_tensor(t) / 2)

    def d_alpha(self, t):
        return -math.pi / 2 * self.sigma(t)

    def d_sigma(self, t):
        return math.pi / 2 * self.alpha(t)


def _case():
    import numpy as np

    rng = np.random.default_rng(0)
    mean = np.array([1.0, -2.0, 0.5])
    factor = rng.normal(size=(3, 3))
    cov = factor @ factor.T + 0.2 * np.eye(3)
    points = rng.normal(size=(5, 3)) * 2
    return mean, cov, points


def _check_gaussian_oracle() -> float:
    import numpy as np
    import torch
    from scipy.stats import multivariate_normal

    from genmath.analytic import Gaussian

    mean, cov, points = _case()
    marginal = Gaussian(torch.tensor(mean), torch.tensor(cov)).marginal(_TrigPath())
    x = torch.tensor(points)
    worst = 0.0
    for t in (0.15, 0.5, 0.85):
        a_, s_ = math.cos(math.pi * t / 2), math.sin(math.pi * t / 2)
        da, ds = -math.pi / 2 * s_, math.pi / 2 * a_
        c = a_**2 * cov + s_**2 * np.eye(3)
        log_p = multivariate_normal(a_ * mean, c).logpdf(points)
        prec = np.linalg.inv(cov)
        x0_hat = np.linalg.solve(
            prec + a_**2 / s_**2 * np.eye(3), (prec @ mean)[:, None] + a_ / s_**2 * points.T
        ).T
        eps_hat = (points - a_ * x0_hat) / s_
        expected = {
            "log_prob": log_p,
            "denoise": x0_hat,
            "eps": eps_hat,
            "score": -eps_hat / s_,
            "velocity": da * x0_hat + ds * eps_hat,
        }
        for name, value in expected.items():
            got = getattr(marginal, name)(x, t).numpy()
            worst = max(worst, float(np.max(np.abs(got - value) / (1 + np.abs(value)))))
    return worst


register(
    Check(
        id="C-gaussian-marginal-oracle",
        title="Gaussian oracle: marginal density, denoiser, eps, score, velocity equal the closed forms",
        function=_check_gaussian_oracle,
        tolerance=1e-10,
        code=("genmath.analytic.GaussianMarginal",),
        tests=("tests/analytic/test_gaussian.py",),
        derivation="D-gaussian-posterior-mean",
    )
)
