"""Gaussian and Gaussian-mixture data through a Gaussian path: marginal, posterior mean,
mixture denoiser, marginal velocity and the exact probability-flow map.

These back the exact oracles of `genmath.analytic`; the checks at the end tie the torch
oracles to the closed forms.
"""

import math

import sympy as sp

from ._engine import CITED, NUMERIC, SYMBOLIC, Check, Derivation, Step
from ._registry import register

x, x0, mu, mu1, mu2 = sp.symbols("x x_0 mu mu_1 mu_2", real=True)
s, s1, s2 = sp.symbols("s s_1 s_2", positive=True)  # data standard deviations
a, sg = sp.symbols("alpha sigma", positive=True)  # the path's alpha_t, sigma_t at one t
w = sp.Symbol("w", positive=True)  # weight of the first mixture component
t, t0 = sp.symbols("t t_0", real=True)
alpha_f, sigma_f = sp.Function("alpha"), sp.Function("sigma")


def _log_normal(v, m, var):
    return -sp.log(2 * sp.pi * var) / 2 - (v - m) ** 2 / (2 * var)


def _normal(v, m, var):
    return sp.exp(-((v - m) ** 2) / (2 * var)) / sp.sqrt(2 * sp.pi * var)


# ---------------------------------------------------------------- marginal and posterior (1-D)
_c = a**2 * s**2 + sg**2
_post_mean = mu + a * s**2 * (x - a * mu) / _c
_post_var = s**2 * sg**2 / _c

register(
    Derivation(
        id="D-gaussian-path-marginal",
        title="Gaussian data through a Gaussian path: marginal and posterior",
        statement=(
            r"If $x_0 \sim \mathcal N(\mu, \Sigma)$ and $x_t = \alpha_t x_0 + \sigma_t \varepsilon$ "
            r"with $\varepsilon \sim \mathcal N(0, I)$ independent, then "
            r"$p_t = \mathcal N(\alpha_t \mu,\ C_t)$ with $C_t = \alpha_t^2 \Sigma + \sigma_t^2 I$, and "
            r"$x_0 \mid x_t$ is Gaussian. Shown in one dimension by completing the square in $x_0$; "
            r"in $d$ dimensions the same holds coordinate-wise in the eigenbasis of $\Sigma$, which "
            r"also diagonalises $C_t$ for every $t$ (last step)."
        ),
        start=_log_normal(x0, mu, s**2) + _log_normal(x, a * x0, sg**2),
        steps=[
            Step(
                rhs=_log_normal(x, a * mu, _c) + _log_normal(x0, _post_mean, _post_var),
                reason=(
                    r"Complete the square in $x_0$: the joint log-density of $(x_0, x_t)$ splits into "
                    r"the log-density of $x_t$, $\mathcal N(\alpha\mu, \alpha^2 s^2 + \sigma^2)$, plus that "
                    r"of $x_0 \mid x_t$, $\mathcal N\big(\mu + \alpha s^2 (x - \alpha\mu)/c,\ s^2\sigma^2/c\big)$."
                ),
                tag=SYMBOLIC,
            ),
            Step(
                lhs=sp.Integral(
                    sp.exp(_log_normal(x0, mu, s**2) + _log_normal(x, a * x0, sg**2)),
                    (x0, -sp.oo, sp.oo),
                ),
                rhs=_normal(x, a * mu, _c),
                reason=(
                    r"Integrate $x_0$ out: the posterior factor integrates to one, leaving "
                    r"$p_t(x) = \mathcal N(x; \alpha\mu, \alpha^2 s^2 + \sigma^2)$ (quadrature at sampled values)."
                ),
                tag=NUMERIC,
                samples=4,
                tolerance=1e-10,
            ),
            Step(
                lhs=a**2
                * sp.Matrix([[sp.cos(t), -sp.sin(t)], [sp.sin(t), sp.cos(t)]])
                * sp.diag(s1**2, s2**2)
                * sp.Matrix([[sp.cos(t), sp.sin(t)], [-sp.sin(t), sp.cos(t)]])
                + sg**2 * sp.eye(2),
                rhs=sp.Matrix([[sp.cos(t), -sp.sin(t)], [sp.sin(t), sp.cos(t)]])
                * sp.diag(a**2 * s1**2 + sg**2, a**2 * s2**2 + sg**2)
                * sp.Matrix([[sp.cos(t), sp.sin(t)], [-sp.sin(t), sp.cos(t)]]),
                reason=(
                    r"With $\Sigma = U \operatorname{diag}(\lambda) U^\top$ ($U$ a rotation, here $2\times 2$ "
                    r"by an angle), $C_t = U \operatorname{diag}(\alpha_t^2 \lambda + \sigma_t^2) U^\top$: one "
                    "eigenbasis serves every $t$, so the $d$-dimensional problem is $d$ one-dimensional ones."
                ),
                tag=SYMBOLIC,
                method=lambda e: sp.trigsimp(sp.expand(e)),
            ),
        ],
        symbols=(x, x0, mu, s, a, sg, s1, s2, t),
        references=("song2021score", "kingma2021variational"),
        code=(
            "genmath.analytic.Gaussian.marginal",
            "genmath.analytic.GaussianMarginal.log_prob",
            "genmath.analytic.MixtureMarginal.log_prob",
        ),
        tests=("tests/analytic/test_gaussian.py", "tests/analytic/test_mixture.py"),
    )
)

# ------------------------------------------------------------------ posterior mean (2x2 matrices)
p11, p12, p22 = sp.symbols("S_11 S_12 S_22", real=True)
m_1, m_2, y_1, y_2 = sp.symbols("m_1 m_2 y_1 y_2", real=True)
_Sigma = sp.Matrix([[p11, p12], [p12, p22]])
_mu_vec = sp.Matrix([m_1, m_2])
_x_vec = sp.Matrix([y_1, y_2])
_C = a**2 * _Sigma + sg**2 * sp.eye(2)
_x0_hat = _mu_vec + a * _Sigma * _C.inv() * (_x_vec - a * _mu_vec)

register(
    Derivation(
        id="D-gaussian-posterior-mean",
        title="Posterior mean, noise prediction and score of Gaussian data on a Gaussian path",
        statement=(
            r"For $x_0 \sim \mathcal N(\mu, \Sigma)$, $x_t = \alpha_t x_0 + \sigma_t\varepsilon$ and "
            r"$C_t = \alpha_t^2\Sigma + \sigma_t^2 I$: "
            r"$\mathbb E[x_0 \mid x_t] = \mu + \alpha_t \Sigma C_t^{-1}(x_t - \alpha_t\mu)$, "
            r"$\mathbb E[\varepsilon \mid x_t] = \sigma_t C_t^{-1}(x_t - \alpha_t\mu)$ (finite where "
            r"$\sigma_t = 0$) and $\nabla \log p_t = -C_t^{-1}(x_t - \alpha_t \mu)$ "
            r"(Tweedie). Verified with a general symmetric $2\times 2$ $\Sigma$."
        ),
        start=(_Sigma.inv() + a**2 / sg**2 * sp.eye(2)).inv()
        * (_Sigma.inv() * _mu_vec + a / sg**2 * _x_vec),
        steps=[
            Step(
                rhs=_x0_hat,
                reason=(
                    r"Bayes in precision form (prior precision $\Sigma^{-1}$ plus likelihood precision "
                    r"$\alpha^2/\sigma^2\, I$) equals the gain form used by the code."
                ),
                tag=SYMBOLIC,
            ),
            Step(
                lhs=(_x_vec - a * _x0_hat) / sg,
                rhs=sg * _C.inv() * (_x_vec - a * _mu_vec),
                reason=(
                    r"$\hat\varepsilon = (x_t - \alpha\hat x_0)/\sigma$; since $C_t - \alpha^2\Sigma = \sigma^2 I$ "
                    r"the division by $\sigma$ cancels."
                ),
                tag=SYMBOLIC,
            ),
            Step(
                lhs=(a * _x0_hat - _x_vec) / sg**2,
                rhs=-_C.inv() * (_x_vec - a * _mu_vec),
                reason=r"Tweedie's formula $\nabla\log p_t(x) = (\alpha \hat x_0 - x)/\sigma^2$ gives the score of $\mathcal N(\alpha\mu, C_t)$.",
                tag=SYMBOLIC,
            ),
        ],
        symbols=(p11, p12, p22, m_1, m_2, y_1, y_2, a, sg),
        references=("efron2011tweedie",),
        code=(
            "genmath.analytic.MixtureMarginal.denoise",
            "genmath.analytic.MixtureMarginal.eps",
            "genmath.analytic.MixtureMarginal.score",
        ),
        tests=("tests/analytic/test_gaussian.py",),
    )
)

# ------------------------------------------------------------------------ mixture denoiser (1-D)
_c1, _c2 = a**2 * s1**2 + sg**2, a**2 * s2**2 + sg**2
_prior = w * _normal(x0, mu1, s1**2) + (1 - w) * _normal(x0, mu2, s2**2)
_lik = _normal(x, a * x0, sg**2)
_joint1, _joint2 = w * _normal(x, a * mu1, _c1), (1 - w) * _normal(x, a * mu2, _c2)
_mean1 = mu1 + a * s1**2 * (x - a * mu1) / _c1
_mean2 = mu2 + a * s2**2 * (x - a * mu2) / _c2

register(
    Derivation(
        id="D-mixture-denoiser",
        title="Denoiser of Gaussian-mixture data: responsibility-weighted posterior means",
        statement=(
            r"For $x_0 \sim \sum_k \pi_k \mathcal N(\mu_k, \Sigma_k)$ on a Gaussian path, "
            r"$p_t = \sum_k \pi_k \mathcal N(\alpha_t\mu_k, C_{k,t})$ and "
            r"$\mathbb E[x_0 \mid x_t] = \sum_k r_k(x_t)\, \mathbb E[x_0 \mid x_t, k]$ with "
            r"$r_k = \pi_k \mathcal N(x_t; \alpha_t\mu_k, C_{k,t}) / p_t(x_t)$ (law of total "
            "expectation). Score, noise prediction and velocity, being posterior expectations of "
            "quantities linear in $(x_0, \\varepsilon)$, mix with the same weights. Checked for two "
            "components in one dimension against quadrature."
        ),
        start=sp.log(w * _normal(x0, mu1, s1**2) * _lik),
        steps=[
            Step(
                rhs=sp.log(_joint1) + _log_normal(x0, _mean1, s1**2 * sg**2 / _c1),
                reason=(
                    r"For each component $k$ (here the first, weight $w$), its share of the joint "
                    r"density of $(x_0, x_t)$ factorises as in D-gaussian-path-marginal: the component "
                    r"evidence $\pi_k\mathcal N(x; \alpha\mu_k, c_k)$ times the Gaussian posterior "
                    r"$\mathcal N(x_0; m_k, v_k)$ with $m_k = \mu_k + \alpha s_k^2(x - \alpha\mu_k)/c_k$."
                ),
                tag=SYMBOLIC,
            ),
            Step(
                lhs=sp.Integral(x0 * _prior * _lik, (x0, -sp.oo, sp.oo))
                / sp.Integral(_prior * _lik, (x0, -sp.oo, sp.oo)),
                rhs=(_joint1 * _mean1 + _joint2 * _mean2) / (_joint1 + _joint2),
                reason=(
                    r"Sum the factorised components and integrate $x_0$ out: each posterior density "
                    r"integrates to one and has mean $m_k$, leaving the evidences as weights "
                    r"(checked against quadrature by C-mixture-denoiser-oracle)."
                ),
                tag=CITED,
                theorem="linearity of the integral (Fubini) and the law of total expectation",
                reference="billingsley1995probability",
            ),
        ],
        symbols=(x, mu1, mu2, s1, s2, a, sg, w),
        domain={w: (0.1, 0.9), x: (-2.0, 2.0), mu1: (-2.0, 2.0), mu2: (-2.0, 2.0)},
        references=("song2021score", "karras2022elucidating"),
        code=(
            "genmath.analytic.MixtureMarginal.denoise",
            "genmath.analytic.GaussianMixture.marginal",
        ),
        tests=("tests/analytic/test_mixture.py",),
    )
)

# --------------------------------------------------------------- velocity and flow map (1-D, any t)
_alpha, _sigma = alpha_f(t), sigma_f(t)
_ct = _alpha**2 * s**2 + _sigma**2
_x0_hat_t = mu + _alpha * s**2 * (x - _alpha * mu) / _ct
_eps_hat_t = _sigma * (x - _alpha * mu) / _ct


def _velocity(y):
    return sp.diff(_alpha, t) * mu + sp.diff(_ct, t) / (2 * _ct) * (y - _alpha * mu)


_log_p = _log_normal(x, _alpha * mu, _ct)

register(
    Derivation(
        id="D-gaussian-marginal-velocity",
        title="Marginal velocity of Gaussian data on a Gaussian path",
        statement=(
            r"The marginal velocity $u_t(x) = \dot\alpha_t \hat x_0 + \dot\sigma_t \hat\varepsilon$ of "
            r"$\mathcal N(\mu, \Sigma)$ data is $\dot\alpha_t \mu + \tfrac12 \dot C_t C_t^{-1}(x - \alpha_t\mu)$; "
            r"only $\dot\alpha$ and $\sigma\dot\sigma = \tfrac12 \tfrac{d}{dt}\sigma^2$ appear, never $1/\sigma$. "
            r"It satisfies the continuity equation $\partial_t \log p_t + \nabla\cdot u_t + u_t\cdot\nabla\log p_t = 0$. "
            r"Shown per eigendirection (D-gaussian-path-marginal) for arbitrary schedules $\alpha(t), \sigma(t)$."
        ),
        start=sp.diff(_alpha, t) * _x0_hat_t + sp.diff(_sigma, t) * _eps_hat_t,
        steps=[
            Step(
                rhs=_velocity(x),
                reason=r"Collect terms: $\dot c = 2\alpha\dot\alpha s^2 + 2\sigma\dot\sigma$ with $c = \alpha^2 s^2 + \sigma^2$.",
                tag=SYMBOLIC,
            ),
            Step(
                lhs=sp.diff(_log_p, t)
                + sp.diff(_velocity(x), x)
                + _velocity(x) * sp.diff(_log_p, x),
                rhs=sp.Integer(0),
                reason=r"Substitute $\log p_t = \log\mathcal N(x; \alpha_t\mu, c_t)$: the continuity equation holds identically in $t$.",
                tag=SYMBOLIC,
            ),
        ],
        symbols=(x, mu, s, t),
        references=("song2021score", "lipman2023flow"),
        code=("genmath.analytic.MixtureMarginal.velocity",),
        tests=("tests/analytic/test_gaussian.py", "tests/analytic/test_mixture.py"),
    )
)

_c_from = alpha_f(t0) ** 2 * s**2 + sigma_f(t0) ** 2
_flow = _alpha * mu + sp.sqrt(_ct / _c_from) * (x - alpha_f(t0) * mu)

register(
    Derivation(
        id="D-gaussian-flow-map",
        title="Exact probability-flow map of Gaussian data",
        statement=(
            r"For $\mathcal N(\mu, \Sigma)$ data the probability-flow ODE $\dot x = u_t(x)$ is solved by the "
            r"affine map $\phi_{s\to t}(x) = \alpha_t\mu + C_t^{1/2} C_s^{-1/2}(x - \alpha_s\mu)$ with the "
            r"symmetric square roots (all $C_t$ share $\Sigma$'s eigenbasis, D-gaussian-path-marginal, so "
            "the ODE decouples into one-dimensional ones, shown here for arbitrary schedules)."
        ),
        start=sp.diff(_flow, t),
        steps=[
            Step(
                rhs=_velocity(_flow),
                reason=r"Differentiate the candidate in $t$: it equals the velocity of D-gaussian-marginal-velocity evaluated at the candidate, so it solves the ODE.",
                tag=SYMBOLIC,
            ),
            Step(
                lhs=_flow.subs(t, t0),
                rhs=x,
                reason=r"At $t = s$ the map is the identity: the initial condition holds, and by uniqueness it is the flow.",
                tag=SYMBOLIC,
            ),
        ],
        symbols=(x, mu, s, t, t0),
        references=("song2021score",),
        code=("genmath.analytic.Gaussian.flow_map", "genmath.analytic.GaussianMarginal.flow_map"),
        tests=("tests/analytic/test_gaussian.py",),
    )
)


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


def _check_mixture_denoiser() -> float:
    import numpy as np
    import torch
    from scipy.integrate import quad
    from scipy.stats import norm

    from genmath.analytic import GaussianMixture

    weights, means, stds = np.array([0.3, 0.7]), np.array([-1.5, 1.0]), np.array([0.4, 0.9])
    mixture = GaussianMixture(
        torch.tensor(weights), torch.tensor(means[:, None]), torch.tensor(stds[:, None, None] ** 2)
    )
    marginal = mixture.marginal(_TrigPath())
    worst = 0.0
    for t in (0.2, 0.6):
        a_, s_ = math.cos(math.pi * t / 2), math.sin(math.pi * t / 2)
        for xt in (-1.0, 0.3, 1.7):

            def joint(v, xt=xt, a_=a_, s_=s_):
                return float(np.sum(weights * norm.pdf(v, means, stds))) * norm.pdf(xt, a_ * v, s_)

            evidence = quad(joint, -12, 12, epsabs=0, epsrel=1e-13, limit=200)[0]
            first = quad(lambda v, j=joint: v * j(v), -12, 12, epsabs=0, epsrel=1e-13, limit=200)[0]
            got = marginal.denoise(torch.tensor([[xt]], dtype=torch.float64), t).item()
            worst = max(worst, abs(got - first / evidence))
            got_log_p = marginal.log_prob(torch.tensor([[xt]], dtype=torch.float64), t).item()
            worst = max(worst, abs(got_log_p - math.log(evidence)))
    return worst


def _check_flow_map() -> float:
    import numpy as np
    import torch
    from scipy.integrate import solve_ivp

    from genmath.analytic import Gaussian

    mean, cov, points = _case()
    gaussian = Gaussian(torch.tensor(mean), torch.tensor(cov))
    marginal = gaussian.marginal(_TrigPath())

    def field(t, y):
        return marginal.velocity(torch.tensor(y.reshape(points.shape)), t).numpy().ravel()

    sol = solve_ivp(field, (0.1, 0.9), points.ravel(), method="DOP853", rtol=1e-11, atol=1e-11)
    got = gaussian.flow_map(_TrigPath(), torch.tensor(points), 0.1, 0.9).numpy()
    return float(np.max(np.abs(got - sol.y[:, -1].reshape(points.shape))))


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
register(
    Check(
        id="C-mixture-denoiser-oracle",
        title="Mixture oracle: denoiser and marginal density equal quadrature of Bayes' rule",
        function=_check_mixture_denoiser,
        tolerance=1e-11,
        code=(
            "genmath.analytic.MixtureMarginal.denoise",
            "genmath.analytic.MixtureMarginal.log_prob",
        ),
        tests=("tests/analytic/test_mixture.py",),
        derivation="D-mixture-denoiser",
    )
)
register(
    Check(
        id="C-gaussian-flow-map",
        title="Gaussian oracle: the affine flow map equals integrating the velocity with solve_ivp",
        function=_check_flow_map,
        tolerance=1e-8,
        code=("genmath.analytic.Gaussian.flow_map",),
        tests=("tests/analytic/test_gaussian.py",),
        derivation="D-gaussian-flow-map",
    )
)
