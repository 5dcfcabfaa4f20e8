"""Critics and penalties of GANs, bound to `genmath.families.gan`: the Wasserstein critic
between Gaussian translates, the relativistic pairing loss (R3GAN), and the values and
gradients of the gradient penalties (WGAN-GP, R1, R2), with the stop-gradient on the point
derived, not assumed.
"""

import sympy as sp

from ._chain import Earlier
from ._engine import NUMERIC, Binding, Derivation, LogUniform, Step, Uniform
from ._gan_common import GAN, TESTS, pair, rows
from ._registry import register
from ._stop_gradient import release_stop_gradient, stop_gradient

# --------------------------------------------------------------------------- Wasserstein

x = sp.Symbol("x", real=True)
m1, m2 = sp.symbols("m_1 m_2", real=True)
s = sp.Symbol("s", positive=True)
a1, a2, b1, b2 = sp.symbols("a_1 a_2 b_1 b_2", real=True)  # the means of p and q in 2-D
_shift_norm = sp.sqrt((a1 - b1) ** 2 + (a2 - b2) ** 2)


def _critic(y1, y2):
    """The linear critic <a - b, y>/||a - b||: 1-Lipschitz, with unit gradient everywhere."""
    return ((a1 - b1) * y1 + (a2 - b2) * y2) / _shift_norm


def _normal_cdf(value, mean, sd):
    return (1 + sp.erf((value - mean) / (sd * sp.sqrt(2)))) / 2


class _Quadrature(sp.Integral):
    """An integral left to mpmath quadrature (sympy's integrator is slow on these)."""

    def doit(self, **hints):
        return self


_critic_objective = _critic(a1, a2) - _critic(b1, b2)

register(
    Derivation(
        id="D-wgan-gaussian-translates",
        title="WGAN: W1 between Gaussian translates is the distance of the means, attained by a linear critic",
        statement=(
            r"For $p = \mathcal N(a, \Sigma)$ and $q = \mathcal N(b, \Sigma)$, "
            r"$W_1(p, q) = \sup_{\|f\|_L \le 1} \mathbb E_p f - \mathbb E_q f = \|a - b\|$, "
            r"attained by the critic $f^*(y) = \langle a - b, y\rangle/\|a - b\|$: since $f^*$ is "
            r"linear, $\mathbb E_p f^* - \mathbb E_q f^* = f^*(a) - f^*(b)$, and no 1-Lipschitz "
            r"critic does better because the coupling $y = x + b - a$ moves every point by "
            r"$\|a - b\|$ (Kantorovich–Rubinstein duality; Arjovsky et al. 2017, Villani 2009). "
            r"In one dimension $W_1 = \int|F_p - F_q|$, checked by quadrature. The critic loss "
            r"$\mathbb E_q f - \mathbb E_p f$ and the generator loss $-\mathbb E_q f$ (also the "
            "hinge GAN's) are the two parts of this objective."
        ),
        start=_Quadrature(sp.Abs(_normal_cdf(x, m1, s) - _normal_cdf(x, m2, s)), (x, -sp.oo, sp.oo)),
        steps=[
            Step(
                rhs=sp.Abs(m1 - m2),
                reason=(
                    r"In one dimension $W_1(p, q) = \int |F_p - F_q|\,dx$ (the CDFs' $L^1$ "
                    "distance); for translates the CDFs never cross and the area is the shift "
                    "(quadrature)."
                ),
                tag=NUMERIC,
                samples=2,
                tolerance=1e-8,
            ),
            Step(
                lhs=_critic_objective,
                rhs=_shift_norm,
                reason=(
                    r"The linear critic's objective in 2-D: $f^*(a) - f^*(b) = "
                    r"\langle a - b, a - b\rangle/\|a - b\| = \|a - b\|$."
                ),
            ),
            Step(
                lhs=Earlier("D-wgan-gaussian-translates", {a1: m1, b1: m2, a2: 0, b2: 0}, step=2),
                rhs=sp.Abs(m1 - m2),
                reason=r"On a line ($a_2 = b_2 = 0$) the critic's value is the $W_1$ of step 1.",
            ),
        ],
        symbols=(x, m1, m2, s, a1, a2, b1, b2),
        references=("arjovsky2017wasserstein", "villani2009optimal"),
        code=(
            f"{GAN}.optimal_wasserstein_critic",
            f"{GAN}.wasserstein_critic_loss",
            f"{GAN}.wasserstein_generator_loss",
            f"{GAN}.hinge_generator_loss",
        ),
        tests=TESTS,
        domain={s: (0.5, 2.0)},
    )
)


def _wasserstein_by_code(points):
    import torch

    from ..analytic import Gaussian
    from ..families.gan import (
        hinge_generator_loss,
        optimal_wasserstein_critic,
        wasserstein_critic_loss,
        wasserstein_generator_loss,
    )

    rows = []
    eye = torch.eye(2, dtype=torch.float64)
    for j in range(len(points[a1])):
        mean_p = torch.stack([points[a1][j], points[a2][j]])
        mean_q = torch.stack([points[b1][j], points[b2][j]])
        critic = optimal_wasserstein_critic(Gaussian(mean_p, eye), Gaussian(mean_q, eye))
        # the critic is linear: its expectation under each law is its value at the mean
        f_p, f_q = critic(mean_p[None])[0], critic(mean_q[None])[0]
        rows.append(
            torch.stack(
                [
                    f_p,
                    f_q,
                    -wasserstein_critic_loss(pair(f_p), pair(f_q)),
                    -wasserstein_generator_loss(pair(f_q)),
                    -hinge_generator_loss(pair(f_q)),
                ]
            )
        )
    return tuple(torch.stack(rows).T)


register(
    Binding(
        derivation="D-wgan-gaussian-translates",
        code=(
            f"{GAN}.optimal_wasserstein_critic",
            f"{GAN}.wasserstein_critic_loss",
            f"{GAN}.wasserstein_generator_loss",
            f"{GAN}.hinge_generator_loss",
        ),
        expression=(_critic(a1, a2), _critic(b1, b2), _critic_objective) + (_critic(b1, b2),) * 2,
        evaluate=_wasserstein_by_code,
        domain={a1: Uniform(-5, 5), a2: Uniform(-5, 5), b1: Uniform(-5, 5), b2: Uniform(-5, 5)},
        samples=24,
        description=(
            "optimal_wasserstein_critic at the two means, the critic loss and the generator "
            "losses (Wasserstein, hinge) of its outputs"
        ),
    )
)

# --------------------------------------------------------------------------- relativistic

v_r, v_f, k = sp.symbols("v_r v_f k", real=True)

register(
    Derivation(
        id="D-relativistic-pairing",
        title="Relativistic pairing loss: a logistic loss on the difference of the outputs",
        statement=(
            r"The relativistic discriminator loss of R3GAN (Huang et al. 2024) is "
            r"$-\log\operatorname{sigmoid}(v_r - v_f)$ for a pair of a real and a fake sample, "
            r"the logistic loss that the real sample's output beats the fake one's: "
            r"$\operatorname{softplus}(v_f - v_r)$. It depends on the outputs only through "
            "their difference (a constant offset of the critic changes nothing), and the "
            "generator's loss is the same pairing with the roles swapped."
        ),
        start=-sp.log(1 / (1 + sp.exp(-(v_r - v_f)))),
        steps=[
            Step(
                rhs=sp.log(1 + sp.exp(v_f - v_r)),
                reason=r"$-\log\operatorname{sigmoid}(d) = \log(1 + e^{-d})$, $d = v_r - v_f$.",
            ),
            Step(
                lhs=Earlier("D-relativistic-pairing", {v_r: v_r + k, v_f: v_f + k}, step=1),
                rhs=sp.log(1 + sp.exp(v_f - v_r)),
                reason="Adding the same constant to both outputs leaves the loss unchanged.",
            ),
            Step(
                lhs=Earlier("D-relativistic-pairing", {v_r: v_f, v_f: v_r}, step=1),
                rhs=sp.log(1 + sp.exp(v_r - v_f)),
                reason=(
                    "The generator's loss: the same pairing with the real and the fake output "
                    r"swapped, $\operatorname{softplus}(v_r - v_f)$."
                ),
            ),
        ],
        symbols=(v_r, v_f, k),
        references=("huang2024gan",),
        code=(f"{GAN}.relativistic_discriminator_loss", f"{GAN}.relativistic_generator_loss"),
        tests=TESTS,
    )
)


def _relativistic_by_code(points):
    import torch

    from ..families.gan import relativistic_discriminator_loss, relativistic_generator_loss

    def at(real, fake):
        r, f = pair(real), pair(fake)
        return torch.stack(
            [relativistic_discriminator_loss(r, f), relativistic_generator_loss(r, f)]
        )

    return tuple(rows(points, at, v_r, v_f).T)


register(
    Binding(
        derivation="D-relativistic-pairing",
        code=(f"{GAN}.relativistic_discriminator_loss", f"{GAN}.relativistic_generator_loss"),
        expression=(sp.log(1 + sp.exp(v_f - v_r)), sp.log(1 + sp.exp(v_r - v_f))),
        evaluate=_relativistic_by_code,
        domain={v_r: Uniform(-20, 20), v_f: Uniform(-20, 20)},
        description="the relativistic discriminator and generator losses on a batch of pairs",
    )
)

# --------------------------------------------------------------------------- gradient penalties

y1, y2 = sp.symbols("x_1 x_2", real=True)  # the point the penalty is taken at (detached)
alpha11, alpha12, alpha22, beta1, beta2, c0 = sp.symbols(
    "alpha_11 alpha_12 alpha_22 beta_1 beta_2 c_0", real=True
)
gamma, lam = sp.symbols("gamma lambda", positive=True)
_y = sp.Matrix([y1, y2])
_A = sp.Matrix([[alpha11, alpha12], [alpha12, alpha22]])
_beta = sp.Matrix([beta1, beta2])


def _quadratic_critic(point):
    return ((point.T * _A * point)[0] / 2 + (_beta.T * point)[0]) + c0


_critic_at = _quadratic_critic(_y)
_grad_at_stopped = sp.Matrix(
    [sp.diff(_critic_at, v).subs({y1: stop_gradient(y1), y2: stop_gradient(y2)}) for v in (y1, y2)]
)
_r1 = gamma / 2 * (_grad_at_stopped[0] ** 2 + _grad_at_stopped[1] ** 2)
_gp = lam * (sp.sqrt(_grad_at_stopped[0] ** 2 + _grad_at_stopped[1] ** 2) - 1) ** 2
_parameters = (beta1, beta2, alpha11, alpha12, alpha22)

_g1 = alpha11 * y1 + alpha12 * y2 + beta1
_g2 = alpha12 * y1 + alpha22 * y2 + beta2
_g_norm = sp.sqrt(_g1**2 + _g2**2)
_r1_value = gamma / 2 * (_g1**2 + _g2**2)
_gp_value = lam * (_g_norm - 1) ** 2
_r1_gradient = [gamma * _g1, gamma * _g2, gamma * _g1 * y1, gamma * (_g1 * y2 + _g2 * y1), gamma * _g2 * y2]
_gp_gradient = [2 * lam * (_g_norm - 1) * g / _g_norm for g in (_g1, _g2)]

register(
    Derivation(
        id="D-gradient-penalties",
        title="Gradient penalties (R1, R2, WGAN-GP): values and gradients for a quadratic critic",
        statement=(
            r"For the quadratic critic $D(x) = \tfrac12 x^\top A x + \beta^\top x + c_0$ "
            r"($A$ symmetric), $\nabla_x D = Ax + \beta =: g$. The R1 penalty on data and the R2 "
            r"penalty on samples are $\tfrac{\gamma}{2}\|g\|^2$ at each point (Mescheder et al. "
            r"2018), WGAN-GP's is $\lambda(\|g\| - 1)^2$ at each interpolate "
            r"$\hat x = u x_\mathrm{real} + (1 - u)x_\mathrm{fake}$ (Gulrajani et al. 2017; at "
            r"$x_\mathrm{real} = x_\mathrm{fake}$, $\hat x$ is that point whatever $u$). Their "
            r"gradients in the critic's parameters are closed form below. The point is a "
            r"**stopped** quantity ($\operatorname{sg}$, `.detach()` in the code): a penalty "
            r"trains the discriminator only, so the gradient of $D(x) + \text{penalty}$ in the "
            r"point is $g$ — without the stop-gradient it would be $g + \gamma A g$ (R1) — and "
            "the generator receives nothing from R2 or WGAN-GP."
        ),
        start=sp.ImmutableMatrix(
            [
                _r1,
                _gp,
                *[sp.Derivative(_r1, theta) for theta in _parameters],
                *[sp.Derivative(_gp, theta) for theta in (beta1, beta2)],
                *[sp.Derivative(_critic_at + _r1, v) for v in (y1, y2)],
                *[sp.Derivative(_critic_at + _gp, v) for v in (y1, y2)],
            ]
        ),
        steps=[
            Step(
                rhs=sp.ImmutableMatrix(
                    [_r1_value, _gp_value, *_r1_gradient, *_gp_gradient, _g1, _g2, _g1, _g2]
                ),
                reason=(
                    r"Differentiate with the point held constant ($\partial\operatorname{sg}(x)/"
                    r"\partial x = 0$), then put its value back: $\partial_\beta \tfrac\gamma2"
                    r"\|g\|^2 = \gamma g$, $\partial_{A_{ij}}$ gives $\gamma g_i x_j$ (both "
                    r"$(i, j)$ and $(j, i)$ for the shared $A_{12}$), "
                    r"$\partial_\beta\lambda(\|g\| - 1)^2 = 2\lambda(\|g\| - 1)g/\|g\|$, and in the "
                    r"point only $D$ itself contributes: $\nabla_x D = g$."
                ),
                method=release_stop_gradient,
            ),
        ],
        symbols=(y1, y2, alpha11, alpha12, alpha22, beta1, beta2, c0, gamma, lam),
        references=("mescheder2018which", "gulrajani2017improved", "huang2024gan"),
        code=(f"{GAN}.r1_penalty", f"{GAN}.r2_penalty", f"{GAN}.gradient_penalty"),
        tests=TESTS,
    )
)


def _penalties_by_code(kind):
    def evaluate(points):
        import torch

        from ..families import gan

        rows = []
        for j in range(len(points[y1])):
            leaves = [points[s_][j].clone().requires_grad_(True) for s_ in _parameters]
            b1_, b2_, a11, a12, a22 = leaves
            offset = 0.7  # c_0: it drops out of every gradient
            A = torch.stack([torch.stack([a11, a12]), torch.stack([a12, a22])])
            beta = torch.stack([b1_, b2_])

            def critic(z, A=A, beta=beta, offset=offset):
                return 0.5 * ((z @ A) * z).sum(1) + z @ beta + offset

            point = torch.stack([points[y1][j], points[y2][j]])
            sample = pair(point).clone().requires_grad_(True)
            other = pair(point).clone().requires_grad_(True)
            if kind == "gp":
                generator = torch.Generator().manual_seed(j)
                penalty = gan.gradient_penalty(
                    critic, other, sample, weight=float(points[lam][j]), generator=generator
                )
                parameters = (b1_, b2_)
            else:
                fn = gan.r1_penalty if kind == "r1" else gan.r2_penalty
                penalty = fn(critic, sample, gamma=float(points[gamma][j]))
                parameters = (b1_, b2_, a11, a12, a22)
            gradients = torch.autograd.grad(penalty, parameters, retain_graph=True)
            objective = critic(sample).mean() + penalty
            (in_point,) = torch.autograd.grad(objective, sample, retain_graph=True)
            in_points = [in_point.sum(0)]
            if kind == "gp":  # both interpolated points are held constant, the real one too
                (in_real,) = torch.autograd.grad(critic(other).mean() + penalty, other)
                in_points.append(in_real.sum(0))
            rows.append(torch.stack([penalty, *gradients, *torch.cat(in_points)]))
        return tuple(torch.stack(rows).detach().T)

    return evaluate


_PENALTY_DOMAIN = {
    y1: Uniform(-3, 3),
    y2: Uniform(-3, 3),
    alpha11: Uniform(-2, 2),
    alpha12: Uniform(-2, 2),
    alpha22: Uniform(-2, 2),
    beta1: Uniform(-2, 2),
    beta2: Uniform(-2, 2),
}

for _kind, _name in (("r1", "r1_penalty"), ("r2", "r2_penalty")):
    register(
        Binding(
            derivation="D-gradient-penalties",
            code=(f"{GAN}.{_name}",),
            expression=(_r1_value, *_r1_gradient, _g1, _g2),
            evaluate=_penalties_by_code(_kind),
            domain={**_PENALTY_DOMAIN, gamma: LogUniform(1e-2, 1e2)},
            samples=16,
            description=(
                f"{_name}: value, autograd gradient in the critic's parameters, and the "
                "gradient of D + penalty in the (detached) point"
            ),
        )
    )
register(
    Binding(
        derivation="D-gradient-penalties",
        code=(f"{GAN}.gradient_penalty",),
        expression=(_gp_value, *_gp_gradient, _g1, _g2, _g1, _g2),
        evaluate=_penalties_by_code("gp"),
        domain={**_PENALTY_DOMAIN, lam: LogUniform(1e-2, 1e2)},
        samples=16,
        description=(
            "gradient_penalty at real = fake: value, autograd gradient in beta, and the "
            "gradient of D + penalty in the (detached) fake point and in the (detached) real one"
        ),
    )
)
