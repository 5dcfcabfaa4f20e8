"""The reverse-time SDE family keeps the marginals; DDIM and DPM-Solver++(2M) as exponential
integrators of the probability-flow ODE."""

import sympy as sp

from ._engine import SYMBOLIC, Check, Derivation, Step
from ._registry import register

t, x = sp.symbols("t x", real=True)
alpha = sp.Function("alpha", positive=True)(t)
sigma = sp.Function("sigma", positive=True)(t)
nu = sp.Function("nu", real=True)(t)
p = sp.Function("p", positive=True)(x, t)
v = sp.Function("v", real=True)(x, t)
m = sp.Symbol("m", real=True)
s0 = sp.Symbol("s_0", positive=True)
score_symbol = sp.Symbol("s", real=True)

# --- D-reverse-sde-marginals -------------------------------------------------------------
# A density p_t evolved backwards in time by dx = b dt + nu dW-bar satisfies (reverse-time
# Fokker–Planck) d_t p + d_x(b p) + (nu^2 / 2) d_x^2 p = 0.
_score = sp.Derivative(p, x) / p
_family_drift = v - nu**2 / 2 * _score
_reverse_fp = (
    sp.Derivative(p, t) + sp.Derivative(_family_drift * p, x) + nu**2 / 2 * sp.Derivative(p, x, 2)
)
_continuity = sp.Derivative(p, t) + sp.Derivative(v * p, x)

# Path coefficients: f = alpha'/alpha, g^2 = (sigma^2)' - 2 f sigma^2.
_f = sp.diff(alpha, t) / alpha
_g2 = sp.diff(sigma**2, t) - 2 * _f * sigma**2
_tweedie_x0 = (x + sigma**2 * score_symbol) / alpha
_tweedie_eps = -sigma * score_symbol

# Gaussian data N(m, s0^2) in 1-D: p_t = N(alpha m, alpha^2 s0^2 + sigma^2).
_variance = alpha**2 * s0**2 + sigma**2
_gauss_p = sp.exp(-((x - alpha * m) ** 2) / (2 * _variance)) / sp.sqrt(2 * sp.pi * _variance)
_gauss_score = -(x - alpha * m) / _variance
_gauss_velocity = _f * x - _g2 / 2 * _gauss_score

register(
    Derivation(
        id="D-reverse-sde-marginals",
        title="The reverse-time SDE family keeps the marginals of a Gaussian path",
        statement=(
            r"Let $p_t$ solve the continuity equation $\partial_t p + \partial_x(v p) = 0$ of a "
            r"velocity $v_t$. For every $\nu_t \ge 0$, the SDE "
            r"$dx = [v_t(x) - \tfrac{\nu_t^2}{2}\partial_x \log p_t(x)]\,dt + \nu_t\, d\bar W$, "
            r"run backwards in time, has the same marginals $p_t$: its reverse-time "
            r"Fokker–Planck residual equals the continuity residual, whatever $\nu_t$. "
            r"For a Gaussian path the marginal velocity is $v = f x - \tfrac{g^2}{2}\nabla\log p_t$ "
            r"(with $f = \dot\alpha/\alpha$, $g^2 = \tfrac{d}{dt}\sigma^2 - 2 f\sigma^2$), and for "
            r"Gaussian data $\mathcal N(m, s_0^2)$ it solves the continuity equation. "
            r"$\nu = 0$ is the probability-flow ODE, $\nu = g$ the classical reverse SDE."
        ),
        start=_reverse_fp,
        steps=[
            Step(
                rhs=_continuity,
                reason=(
                    r"$\partial_x\big(p\,\partial_x \log p\big) = \partial_x^2 p$: the "
                    r"$-\tfrac{\nu^2}{2}\nabla\log p$ drift exactly cancels the diffusion term, "
                    r"for any $\nu_t$ and any density $p$ (sympy, with $p$ and $v$ unknown functions)."
                ),
                tag=SYMBOLIC,
            ),
            Step(
                lhs=sp.diff(alpha, t) * _tweedie_x0 + sp.diff(sigma, t) * _tweedie_eps,
                rhs=_f * x - _g2 / 2 * score_symbol,
                reason=(
                    r"The marginal velocity $\dot\alpha\,\mathbb E[x_0|x] + \dot\sigma\,\mathbb E[\varepsilon|x]$ "
                    r"with Tweedie's $\mathbb E[x_0|x] = (x + \sigma^2 s)/\alpha$ and "
                    r"$\mathbb E[\varepsilon|x] = -\sigma s$ ($s = \nabla\log p_t$) is the "
                    r"probability-flow drift $f x - \tfrac{g^2}{2} s$."
                ),
                tag=SYMBOLIC,
            ),
            Step(
                lhs=(sp.diff(_gauss_p, t) + sp.diff(_gauss_velocity * _gauss_p, x)) / _gauss_p,
                rhs=sp.Integer(0),
                reason=(
                    r"For Gaussian data $\mathcal N(m, s_0^2)$, $p_t = \mathcal N(\alpha m, "
                    r"\alpha^2 s_0^2 + \sigma^2)$ and $v = f x - \tfrac{g^2}{2}\partial_x\log p_t$ "
                    r"satisfy the continuity equation (divided by $p_t$), for arbitrary "
                    r"schedules $\alpha_t, \sigma_t$."
                ),
                tag=SYMBOLIC,
                method=sp.simplify,
            ),
        ],
        symbols=(t, x, m, s0, score_symbol),
        references=(
            "song2021score",
            "anderson1982reverse",
            "risken1996fokker",
            "karras2022elucidating",
        ),
        code=(
            "genmath.core.dynamics.ReverseSDE",
            "genmath.core.dynamics.ProbabilityFlowODE",
            "genmath.core.dynamics.sample_sde",
        ),
        tests=("tests/core/test_dynamics.py",),
    )
)

# --- D-ddim-exponential-integrator ---------------------------------------------------------
x_t = sp.Function("x", real=True)(t)
x0_hat = sp.Symbol(r"\hat{x}_0", real=True)
a0, a1, sg0, sg1 = sp.symbols(r"alpha_k alpha_{k+1} sigma_k sigma_{k+1}", positive=True)
xk = sp.Symbol("x_k", real=True)
_eps_hat = (x_t - alpha * x0_hat) / sigma
_pf_velocity = sp.diff(alpha, t) * x0_hat + sp.diff(sigma, t) * _eps_hat

register(
    Derivation(
        id="D-ddim-exponential-integrator",
        title="DDIM is the exact exponential-integrator step of the probability-flow ODE",
        statement=(
            r"In the variables $y = x/\sigma_t$ and $\rho = \alpha_t/\sigma_t$ the probability-flow "
            r"ODE reads $dy/d\rho = \hat x_0(x_t, t)$. Holding the denoiser $\hat x_0$ fixed over a "
            r"step and integrating exactly gives DDIM ($\eta = 0$): "
            r"$x_{k+1} = \alpha_{k+1}\hat x_0 + \sigma_{k+1}\hat\varepsilon$, "
            r"$\hat\varepsilon = (x_k - \alpha_k \hat x_0)/\sigma_k$. The step is exact when the "
            r"denoiser is constant along the trajectory (point-mass data) and first order "
            r"otherwise (e.g. Gaussian data)."
        ),
        start=sp.diff(x_t / sigma, t).subs(sp.Derivative(x_t, t), _pf_velocity),
        steps=[
            Step(
                rhs=sp.diff(alpha / sigma, t) * x0_hat,
                reason=(
                    r"Substitute $\dot x = \dot\alpha\hat x_0 + \dot\sigma\hat\varepsilon$ with "
                    r"$\hat\varepsilon = (x - \alpha\hat x_0)/\sigma$: the terms in $x$ cancel, "
                    r"leaving $\frac{d}{dt}(x/\sigma) = \frac{d}{dt}(\alpha/\sigma)\,\hat x_0$."
                ),
                tag=SYMBOLIC,
            ),
            Step(
                lhs=sg1 * (xk / sg0 + (a1 / sg1 - a0 / sg0) * x0_hat),
                rhs=a1 * x0_hat + sg1 * (xk - a0 * x0_hat) / sg0,
                reason=(
                    r"Integrating $dy = \hat x_0\, d\rho$ exactly with $\hat x_0$ fixed from "
                    r"$\rho_k$ to $\rho_{k+1}$ and returning to $x = \sigma y$ is the DDIM update."
                ),
                tag=SYMBOLIC,
            ),
            Step(
                rhs=(sg1 / sg0) * xk + (a1 - a0 * sg1 / sg0) * x0_hat,
                reason=(
                    r"The same update as a linear combination of the state and the denoiser: "
                    r"the form `sample_ode(method='ddim')` evaluates (with "
                    r"$\alpha_{k+1} - \alpha_k\sigma_{k+1}/\sigma_k = -\alpha_{k+1}(e^{-h}-1)$, "
                    r"$h = \lambda_{k+1} - \lambda_k$)."
                ),
                tag=SYMBOLIC,
            ),
        ],
        symbols=(t, x0_hat, a0, a1, sg0, sg1, xk),
        references=("song2021denoising", "lu2022dpm"),
        code=("genmath.core.dynamics.sample_ode",),
        tests=("tests/core/test_samplers.py",),
    )
)

# --- D-dpm-solver-pp-2m --------------------------------------------------------------------
lam = sp.Symbol("lambda", real=True)
lam_k = sp.Symbol(r"lambda_k", real=True)
h = sp.Symbol("h", positive=True)
r = sp.Symbol("r", positive=True)
d1, d2 = sp.symbols(r"D_{k} D_{k-1}", real=True)
slope = sp.Symbol("D'", real=True)
_linear_data = d1 + (lam - lam_k) * slope

register(
    Derivation(
        id="D-dpm-solver-pp-2m",
        title="DPM-Solver++(2M): a second-order multistep exponential integrator in log-SNR",
        statement=(
            r"With $\lambda = \log(\alpha/\sigma)$ (half the log-SNR) and $h = \lambda_{k+1} - \lambda_k$, "
            r"the probability-flow ODE has the exact solution $x_{k+1} = \tfrac{\sigma_{k+1}}{\sigma_k}x_k "
            r"+ \sigma_{k+1}\int_{\lambda_k}^{\lambda_{k+1}} e^{\lambda}\hat x_0\,d\lambda$. "
            r"Extrapolating $\hat x_0$ linearly in $\lambda$ from the two latest denoiser outputs "
            r"($D_k$, $D_{k-1}$, with step ratio $r = h_{k-1}/h_k$) and replacing the weight "
            r"$\varphi_2$ by its leading term gives the 2M update "
            r"$x_{k+1} = \tfrac{\sigma_{k+1}}{\sigma_k}x_k - \alpha_{k+1}(e^{-h}-1)"
            r"\big[(1 + \tfrac{1}{2r})D_k - \tfrac{1}{2r}D_{k-1}\big]$, whose local error is "
            r"$O(h^3)$ — a second-order method. genmath takes a DDIM step first (no previous "
            r"output) and last (the long final $\lambda$-step of grids ending near the data); "
            r"single first-order steps leave the global order at 2."
        ),
        start=sp.Integral(sp.exp(lam) * _linear_data, (lam, lam_k, lam_k + h)),
        steps=[
            Step(
                rhs=sp.exp(lam_k + h) * ((1 - sp.exp(-h)) * d1 + (h - 1 + sp.exp(-h)) * slope),
                reason=(
                    r"Integrate $e^{\lambda}$ times the linear extrapolation "
                    r"$D_k + (\lambda - \lambda_k)D'$ exactly."
                ),
                tag=SYMBOLIC,
            ),
            Step(
                lhs=sp.Limit(((h - 1 + sp.exp(-h)) - h * (1 - sp.exp(-h)) / 2) / h**3, h, 0),
                rhs=sp.Rational(1, 12),
                reason=(
                    r"Replacing the slope weight $h - 1 + e^{-h}$ by $h(1 - e^{-h})/2$ changes it by "
                    r"$h^3/12 + O(h^4)$: times $D' = O(1)$, a local error $O(h^3)$, the order of the "
                    r"method's own truncation error, so the method stays second order."
                ),
                tag=SYMBOLIC,
            ),
            Step(
                lhs=(sg1 / sg0) * xk
                + a1 * (1 - sp.exp(-h)) * d1
                + a1 * h * (1 - sp.exp(-h)) / 2 * (d1 - d2) / (r * h),
                rhs=(sg1 / sg0) * xk
                - a1 * (sp.exp(-h) - 1) * ((1 + 1 / (2 * r)) * d1 - d2 / (2 * r)),
                reason=(
                    r"Multiply by $\sigma_{k+1}e^{\lambda_{k+1}} = \alpha_{k+1}$ and use the "
                    r"finite difference $D' \approx (D_k - D_{k-1})/(r h)$: this is the "
                    r"DPM-Solver++(2M) update of Lu et al. (2022, Algorithm 2). Its first step, "
                    r"with no previous output, is the DDIM step."
                ),
                tag=SYMBOLIC,
            ),
        ],
        symbols=(lam, lam_k, h, r, d1, d2, slope, a1, sg0, sg1, xk),
        references=("lu2022dpmpp", "lu2022dpm"),
        code=("genmath.core.dynamics.sample_ode",),
        tests=("tests/core/test_samplers.py",),
    )
)


def _point_mass_error() -> float:
    """DDIM and DPM-Solver++(2M) on point-mass data (a constant denoiser) against the exact
    probability-flow map $x_{t'} = \\alpha_{t'} c + \\sigma_{t'}(x_t - \\alpha_t c)/\\sigma_t$."""
    import torch

    from genmath.core.dynamics import sample_ode
    from genmath.core.path import GaussianPath
    from genmath.schedules import VP

    path = GaussianPath(VP())
    generator = torch.Generator().manual_seed(0)
    centre = torch.tensor([1.5, -0.7, 0.3], dtype=torch.float64)
    x1 = torch.randn(4, 3, generator=generator, dtype=torch.float64)
    worst = 0.0
    for method in ("ddim", "dpm++2m"):
        result = sample_ode(
            lambda x, t: centre.expand_as(x),
            x1,
            steps=7,
            grid="karras",
            method=method,
            path=path,
            parameterization="x0",
        )
        t_start, t_end = result.grid[0], result.grid[-1]
        exact = path.alpha(t_end) * centre + path.sigma(t_end) * (
            x1 - path.alpha(t_start) * centre
        ) / path.sigma(t_start)
        worst = max(worst, float((result.x - exact).abs().max()))
    return worst


register(
    Check(
        id="C-exponential-integrators-point-mass",
        title="DDIM and DPM-Solver++(2M) are exact for point-mass data",
        function=_point_mass_error,
        tolerance=1e-12,
        code=("genmath.core.dynamics.sample_ode",),
        tests=("tests/core/test_samplers.py",),
        derivation="D-ddim-exponential-integrator",
    )
)
