"""Discrete diffusion: the continuous-time masked ELBO as a weighted cross-entropy, and the CTMC
rates of discrete flow matching's mixture path.

The posteriors of the masking and uniform kernels are `D-discrete-posterior` (in
``discrete_paths.py``); these derivations build on them.
"""

import sympy as sp
import torch

from ._engine import CITED, Check, Derivation, Step
from ._registry import register

# ------------------------------------------------------------------ masked ELBO, one step
# c = (abar_s - abar_t)/(1 - abar_t): probability that a masked x_t was unmasked at s;
# d = (1 - abar_s)/(1 - abar_t) = 1 - c: that it stays masked (D-discrete-posterior).
c, P = sp.symbols("c ptilde", positive=True)
d = 1 - c
t, h = sp.symbols("t h", positive=True)
cosine = sp.cos(sp.pi * t / 2)

# any-order chain rule for two tokens, in the variable u = abar_t
u = sp.Symbol("u", positive=True)
lp1, lp2, lp12 = sp.symbols("ell_1 ell_2 ell_12", real=True)  # log p(x1), log p(x2), log p(x1, x2)
both_masked = -lp1 - lp2  # each masked token predicted from nothing
one_masked = -(lp12 - lp2) - (lp12 - lp1)  # -log p(x1 | x2) - log p(x2 | x1)

register(
    Derivation(
        id="D-masked-elbo",
        title="Masked diffusion: the continuous-time ELBO is a weighted cross-entropy on masked tokens",
        statement=(
            r"For the masking path with carry-over unmasking (the model keeps visible tokens), the "
            r"step KL of a masked token $x_t^\ell = m$ is $\mathrm{KL}(q(x_s \mid x_t, x_0)\,\|\,"
            r"p_\theta(x_s \mid x_t)) = -c\log\tilde p_\theta(x_0^\ell \mid x_t)$ with "
            r"$c = (\bar\alpha_s - \bar\alpha_t)/(1 - \bar\alpha_t)$ (visible tokens contribute 0). "
            r"Summing over a grid with $s = t - h$ and letting $h \to 0$, $c/h \to -\bar\alpha_t'/"
            r"(1 - \bar\alpha_t)$, so $-\mathrm{ELBO} = \int_0^1 \frac{-\bar\alpha_t'}{1 - "
            r"\bar\alpha_t}\mathbb E_{q(x_t \mid x_0)}\sum_{\ell: x_t^\ell = m} -\log\tilde "
            r"p_\theta(x_0^\ell \mid x_t)\,dt$ (Sahoo et al. 2024; Shi et al. 2024). Substituting "
            r"$u = \bar\alpha_t$ removes the schedule: the bound is the same for every decreasing "
            r"schedule. With the exact denoiser, $\tilde p = p(x_0^\ell \mid \text{visible tokens})$, "
            r"the bound equals $-\log p(x_0)$: for two tokens, both masked with probability "
            r"$(1-u)^2$ and one masked with probability $u(1-u)$ each, the integral averages the two "
            r"orders of the chain rule (the last chain below; $\ell_{12} = \log p(x_1, x_2)$)."
        ),
        start=c * sp.log(c / (c * P)) + d * sp.log(d / d),
        steps=[
            Step(
                rhs=-c * sp.log(P),
                reason=(
                    r"The target puts $c$ on $x_0^\ell$ and $1 - c$ on the mask; the model puts "
                    r"$c\,\tilde p_\theta(j)$ on each data symbol $j$ and $1 - c$ on the mask: only "
                    "the $x_0^\\ell$ term survives."
                ),
            ),
            Step(
                lhs=sp.Limit(((cosine.subs(t, t - h) - cosine) / h) / (1 - cosine), h, 0),
                rhs=-sp.diff(cosine, t) / (1 - cosine),
                reason=(
                    r"The weight $c/h$ of a step of length $h$ tends to $-\bar\alpha_t'/(1 - "
                    r"\bar\alpha_t)$; checked for the cosine schedule $\bar\alpha_t = \cos(\pi t/2)$."
                ),
            ),
            Step(
                rhs=-sp.diff(cosine, t) / (1 - cosine),
                tag=CITED,
                theorem="Riemann sums of a continuous integrand converge to the integral",
                reference="rudin1976principles",
                reason=(
                    r"For any $C^1$ schedule the sum over steps $\sum_i (c_i/h)\,h\,(\cdot)$ is a "
                    "Riemann sum of the integral."
                ),
            ),
            Step(
                lhs=sp.Integral(
                    ((1 - u) ** 2 * both_masked + 2 * u * (1 - u) * one_masked / 2) / (1 - u),
                    (u, 0, 1),
                ),
                rhs=-lp12,
                reason=(
                    r"Two tokens, exact denoiser, $u = \bar\alpha_t$ ($-\bar\alpha_t' dt = -du$ "
                    r"flips the limits): both masked, each is predicted by its marginal; one "
                    r"masked, by its conditional given the other. $\int_0^1 (1-u)\,du = "
                    r"\int_0^1 u\,du = \tfrac12$ and $\log p(x_1) + \log p(x_2 \mid x_1) = "
                    r"\log p(x_2) + \log p(x_1 \mid x_2) = \ell_{12}$."
                ),
            ),
        ],
        symbols=(c, P, t, h, u, lp1, lp2, lp12),
        references=("sahoo2024simple", "shi2024simplified", "austin2021structured"),
        code=(
            "genmath.families.discrete_diffusion.masked_diffusion_nelbo",
            "genmath.families.discrete_diffusion.denoiser_probs",
        ),
        tests=("tests/families/test_discrete_diffusion.py",),
    )
)

# --------------------------------------------------------------- DFM rates: Kolmogorov forward
# three states; the data point x0 is state 0; p_noise = (n0, n1, 1 - n0 - n1) is any law
# (uniform: 1/3 each; masking: (0, 0, 1) with the mask as state 2)
a = sp.Function("kappa")(t)
n0, n1 = sp.symbols("n_0 n_1", positive=True)
noise = sp.Matrix([n0, n1, 1 - n0 - n1])
delta0 = sp.Matrix([1, 0, 0])
delta1 = sp.Matrix([0, 1, 0])


def _conditional(target):
    return a * target + (1 - a) * noise


def _rates_matrix(target):
    """Row x: rates u(. | x, x0) = (-kappa'/(1 - kappa)) (delta_x0 - delta_x), t decreasing."""
    weight = -sp.diff(a, t) / (1 - a)
    return sp.Matrix.vstack(*[(weight * (target - sp.eye(3)[:, x])).T for x in range(3)])  # (3 x 3)


conditional_flux = (_conditional(delta0).T * _rates_matrix(delta0)).T  # sum_x p_t(x) u(y | x)

# two data points with weights w, 1 - w: the marginal rate is the posterior mixture
w = sp.Symbol("w", positive=True)
p_marginal = w * _conditional(delta0) + (1 - w) * _conditional(delta1)
marginal_rates = sp.Matrix.vstack(
    *[
        (
            (
                w * _conditional(delta0)[x] * _rates_matrix(delta0)[x, :]
                + (1 - w) * _conditional(delta1)[x] * _rates_matrix(delta1)[x, :]
            )
            / p_marginal[x]
        )
        for x in range(3)
    ]
)
marginal_flux = (p_marginal.T * marginal_rates).T

register(
    Derivation(
        id="D-dfm-kolmogorov",
        title="Discrete flow matching: the mixture path's CTMC rates satisfy the Kolmogorov forward equation",
        statement=(
            r"On the mixture path $p_t(\cdot \mid x_0) = \kappa_t\delta_{x_0} + (1 - \kappa_t)"
            r"p_\mathrm{noise}$ ($\kappa_t = \bar\alpha_t$, t = 0 data), the rates for decreasing t "
            r"$u_t(y \mid x, x_0) = \frac{-\kappa_t'}{1 - \kappa_t}[\delta_{x_0}(y) - \delta_x(y)]$ "
            r"satisfy $-\partial_t p_t(y \mid x_0) = \sum_x p_t(x \mid x_0)\,u_t(y \mid x, x_0)$ "
            r"(Gat et al. 2024, in genmath's time). The marginal rate $u_t(y \mid x) = \sum_{x_0} "
            r"p(x_0 \mid x_t = x)\,u_t(y \mid x, x_0)$ then satisfies it for the marginal $p_t$ "
            r"(linearity). Shown on three states for any noise law (uniform, or the mask as a point "
            r"mass) and, for the marginal, two data points with weights $w, 1 - w$. Per token of a "
            r"sequence the same holds with the per-token posterior, since rates change one token."
        ),
        start=conditional_flux,
        steps=[
            Step(
                rhs=-sp.diff(_conditional(delta0), t),
                reason=(
                    r"$\sum_x p_t(x)[\delta_{x_0} - \delta_x] = \delta_{x_0} - p_t = (1 - \kappa_t)"
                    r"(\delta_{x_0} - p_\mathrm{noise})$; times $-\kappa_t'/(1 - \kappa_t)$ it is "
                    r"$-\kappa_t'(\delta_{x_0} - p_\mathrm{noise}) = -\partial_t p_t$."
                ),
            ),
            Step(
                lhs=marginal_flux,
                rhs=-sp.diff(p_marginal, t),
                reason=(
                    r"The posterior weight $p(x_0 \mid x) = p(x_0)p_t(x \mid x_0)/p_t(x)$ cancels "
                    r"$p_t(x)$, leaving the mixture of the conditional equations."
                ),
            ),
        ],
        symbols=(t, n0, n1, w),
        references=("gat2024discrete",),
        code=(
            "genmath.families.discrete_diffusion.dfm_rates",
            "genmath.families.discrete_diffusion.dfm_euler_sample",
        ),
        tests=("tests/families/test_discrete_diffusion.py",),
    )
)


def _dfm_kolmogorov_error() -> float:
    """Largest residual of the Kolmogorov forward equation for `dfm_rates` with the exact
    posterior (Bayes over the closed-form kernels), one token, K = 4, both paths; the time
    derivative by a central difference."""
    from ..core.discrete import MaskPath, UniformPath
    from ..families.discrete_diffusion import dfm_rates

    dtype = torch.float64
    data = torch.tensor([0.1, 0.2, 0.3, 0.4], dtype=dtype)
    worst = 0.0

    def marginal(path, at):
        return data @ path.cumulative_kernel(torch.tensor(at, dtype=dtype))[:4]

    for path in (MaskPath(4), UniformPath(4, sp.cos(sp.pi * t / 2), t)):
        states = torch.arange(path.num_states)
        tokens = path._token(states)
        for time in (0.25, 0.6):
            kernel = path.cumulative_kernel(torch.tensor(time, dtype=dtype))[:4]  # (x0, x)
            joint = data[:, None] * kernel
            posterior = (joint / joint.sum(0).clamp_min(1e-300)).T  # (x, x0)
            rates = dfm_rates(path, posterior[:, None, :], tokens[:, None], time)[:, 0, :]
            step = 1e-5
            derivative = (marginal(path, time + step) - marginal(path, time - step)) / (2 * step)
            worst = max(worst, float((marginal(path, time) @ rates + derivative).abs().max()))
    return worst


register(
    Check(
        id="C-dfm-kolmogorov",
        title="dfm_rates with the exact posterior solve the Kolmogorov forward equation",
        function=_dfm_kolmogorov_error,
        tolerance=1e-8,
        code=("genmath.families.discrete_diffusion.dfm_rates",),
        tests=("tests/families/test_discrete_diffusion.py",),
        derivation="D-dfm-kolmogorov",
    )
)
