"""Training energy-based models, bound to `genmath.families.ebm`: the Gaussian energy (its
Cholesky-factored precision and score) and the contrastive-divergence gradient, with its
stop-gradient on the negatives and none through the sampler that draws them. The samplers'
own derivations are in ``families_ebm.py``.
"""

import sympy as sp

from ._engine import Binding, Derivation, Step, Uniform
from ._registry import register
from ._stop_gradient import release_stop_gradient, stop_gradient
from .denoising_score_matching import _moments, _std_normal
from .elbo_gap import _Integral
from .families_ebm import _EBM, _TESTS, _seeded, xi

# --------------------------------------------------------------------------- Gaussian energy

x1, x2, mu1, mu2, ell1, ell2, off = sp.symbols("x_1 x_2 mu_1 mu_2 ell_1 ell_2 o", real=True)
_L = sp.Matrix([[sp.exp(ell1), 0], [off, sp.exp(ell2)]])
_P = _L * _L.T
_delta = sp.Matrix([x1 - mu1, x2 - mu2])
_whitened = _delta.T * _L
_gaussian_energy = (_whitened * _whitened.T)[0] / 2
_quadratic_form = (_delta.T * _P * _delta)[0] / 2
_pull = _P * _delta

register(
    Derivation(
        id="D-gaussian-energy",
        title="Gaussian energy: E = |L^T (x - mu)|^2 / 2 is the quadratic form of the precision L L^T",
        statement=(
            r"With $L$ lower triangular with positive diagonal $e^{\ell_i}$, "
            r"$E(x) = \tfrac12\|L^\top(x - \mu)\|^2 = \tfrac12(x - \mu)^\top P(x - \mu)$, "
            r"$P = LL^\top$ (a Cholesky factor: every positive-definite $P$ is reached once), so "
            r"$e^{-E}$ is proportional to $\mathcal N(\mu, P^{-1})$ and the score is "
            r"$-\nabla E = -P(x - \mu)$. Shown in two dimensions."
        ),
        start=sp.ImmutableMatrix(
            [_gaussian_energy, sp.Derivative(_gaussian_energy, x1), sp.Derivative(_gaussian_energy, x2)]
        ),
        steps=[
            Step(
                rhs=sp.ImmutableMatrix([_quadratic_form, _pull[0], _pull[1]]),
                reason=(
                    r"$\|L^\top\delta\|^2 = \delta^\top LL^\top\delta$, and the gradient of "
                    r"$\tfrac12\delta^\top P\delta$ is $P\delta$ ($P$ symmetric)."
                ),
            ),
        ],
        symbols=(x1, x2, mu1, mu2, ell1, ell2, off),
        references=("hinton2002training",),
        code=(f"{_EBM}.GaussianEnergy",),
        tests=_TESTS,
    )
)


def _gaussian_energy_by_code(points):
    import torch

    from ..families.ebm import EnergyModel, GaussianEnergy

    rows = []
    for j in range(len(points[x1])):
        energy = GaussianEnergy(2, dtype=torch.float64)
        with torch.no_grad():
            energy.mean.copy_(torch.stack([points[mu1][j], points[mu2][j]]))
            energy.log_diagonal.copy_(torch.stack([points[ell1][j], points[ell2][j]]))
            energy.off_diagonal.copy_(points[off][j : j + 1])
        state = torch.stack([points[x1][j], points[x2][j]])[None]
        score = EnergyModel(energy).score(state)[0]
        precision, tril = energy.precision(), energy.scale_tril()
        rows.append(
            torch.stack(
                [
                    energy(state)[0],
                    -score[0],
                    -score[1],
                    precision[0, 0],
                    precision[0, 1],
                    precision[1, 0],
                    precision[1, 1],
                    tril[0, 0],
                    tril[1, 1],
                ]
            )
        )
    return tuple(torch.stack(rows).detach().T)


register(
    Binding(
        derivation="D-gaussian-energy",
        code=(f"{_EBM}.GaussianEnergy", f"{_EBM}.EnergyModel.score"),
        expression=(
            _gaussian_energy,
            _pull[0],
            _pull[1],
            _P[0, 0],
            _P[0, 1],
            _P[1, 0],
            _P[1, 1],
            _L[0, 0],
            _L[1, 1],
        ),
        evaluate=_gaussian_energy_by_code,
        domain={
            x1: Uniform(-3, 3),
            x2: Uniform(-3, 3),
            mu1: Uniform(-2, 2),
            mu2: Uniform(-2, 2),
            ell1: Uniform(-2, 2),
            ell2: Uniform(-2, 2),
            off: Uniform(-2, 2),
        },
        samples=16,
        description="GaussianEnergy's energy, precision and Cholesky factor, and its score",
    )
)

# --------------------------------------------------------------------------- contrastive divergence

xd, xn, mu, ell = sp.symbols("x_d x_n mu ell", real=True)


def _energy_1d(point):
    return sp.exp(2 * ell) * (point - mu) ** 2 / 2


_log_partition = sp.log(sp.sqrt(2 * sp.pi)) - ell  # log of the integral of exp(-E)
_model_sample = mu + sp.exp(-ell) * xi  # a draw of p = N(mu, exp(-2 ell))
_cd_loss = _energy_1d(xd) - _energy_1d(stop_gradient(xn))


def _model_expectation(expr):
    return _Integral(_std_normal(xi) * expr.subs(xn, _model_sample), (xi, -sp.oo, sp.oo))


_grad_energy = [sp.diff(_energy_1d(xn), theta) for theta in (mu, ell)]

register(
    Derivation(
        id="D-contrastive-divergence",
        title="Contrastive divergence: the gradient of E(data) - E(sg(negatives)) estimates the NLL gradient",
        statement=(
            r"For $p_\theta \propto e^{-E_\theta}$, $\nabla_\theta(-\log p_\theta(x_d)) = "
            r"\nabla_\theta E_\theta(x_d) - \mathbb E_{p_\theta}[\nabla_\theta E_\theta]$ "
            r"(because $\nabla_\theta\log Z_\theta = -\mathbb E_{p_\theta}[\nabla_\theta E_\theta]$). "
            r"The loss $E_\theta(x_d) - E_\theta(\operatorname{sg}(x_n))$ with a negative $x_n$ "
            r"held constant has the gradient $\nabla_\theta E(x_d) - \nabla_\theta E(x_n)$, "
            r"unbiased for it when $x_n \sim p_\theta$ (exactly so only for draws of $p_\theta$; "
            r"CD-$k$ uses $k$ MCMC steps, Hinton 2002), and sends no gradient into the sampler "
            r"that produced $x_n$. Shown for the Gaussian energy "
            r"$E = e^{2\ell}(x - \mu)^2/2$, $\theta = (\mu, \ell)$."
        ),
        start=sp.ImmutableMatrix(
            [
                sp.Derivative(_energy_1d(xd) + _log_partition, mu),
                sp.Derivative(_energy_1d(xd) + _log_partition, ell),
                sp.Derivative(_cd_loss, mu),
                sp.Derivative(_cd_loss, ell),
                sp.Derivative(_cd_loss + _energy_1d(xn), xn),
            ]
        ),
        steps=[
            Step(
                rhs=sp.ImmutableMatrix(
                    [
                        -sp.exp(2 * ell) * (xd - mu),
                        sp.exp(2 * ell) * (xd - mu) ** 2 - 1,
                        sp.exp(2 * ell) * ((xn - mu) - (xd - mu)),
                        sp.exp(2 * ell) * ((xd - mu) ** 2 - (xn - mu) ** 2),
                        sp.exp(2 * ell) * (xn - mu),
                    ]
                ),
                reason=(
                    r"Differentiate, with the negative held constant in the loss "
                    r"($\partial\operatorname{sg}(x_n) = 0$): in $x_n$ only the added "
                    r"$E(x_n)$ contributes, $e^{2\ell}(x_n - \mu)$."
                ),
                method=release_stop_gradient,
            ),
            Step(
                rhs=sp.ImmutableMatrix(
                    [
                        -sp.exp(2 * ell) * (xd - mu) - _model_expectation(_grad_energy[0]),
                        sp.exp(2 * ell) * (xd - mu) ** 2 - _model_expectation(_grad_energy[1]),
                        sp.exp(2 * ell) * ((xn - mu) - (xd - mu)),
                        sp.exp(2 * ell) * ((xd - mu) ** 2 - (xn - mu) ** 2),
                        sp.exp(2 * ell) * (xn - mu),
                    ]
                ),
                reason=(
                    r"Under $p_\theta = \mathcal N(\mu, e^{-2\ell})$, "
                    r"$\mathbb E[\partial_\mu E] = 0$ and $\mathbb E[\partial_\ell E] = 1$: the "
                    r"gradient of $-\log p_\theta(x_d)$ is $\nabla E(x_d) - \mathbb E_{p_\theta}"
                    r"[\nabla E]$, and the loss's gradient (rows 3-4) is its estimate from one draw."
                ),
                method=_moments,
            ),
        ],
        symbols=(xd, xn, mu, ell),
        references=("hinton2002training",),
        code=(f"{_EBM}.contrastive_divergence_loss",),
        tests=_TESTS,
    )
)


def _contrastive_by_code(points):
    import torch

    from ..families.ebm import GaussianEnergy, contrastive_divergence_loss

    rows = []
    for j in range(len(points[xd])):
        energy = GaussianEnergy(1, dtype=torch.float64)
        with torch.no_grad():
            energy.mean.copy_(points[mu][j : j + 1])
            energy.log_diagonal.copy_(points[ell][j : j + 1])
        data = torch.stack([points[xd][j]] * 2)[:, None]
        negatives = torch.stack([points[xn][j]] * 2)[:, None].requires_grad_(True)
        loss = contrastive_divergence_loss(energy, data, negatives)
        gradients = torch.autograd.grad(loss, (energy.mean, energy.log_diagonal), retain_graph=True)
        (in_negatives,) = torch.autograd.grad(loss + energy(negatives).mean(), negatives)
        rows.append(torch.stack([loss, gradients[0][0], gradients[1][0], in_negatives.sum()]))
    return tuple(torch.stack(rows).detach().T)


register(
    Binding(
        derivation="D-contrastive-divergence",
        code=(f"{_EBM}.contrastive_divergence_loss",),
        expression=(
            _cd_loss,
            sp.exp(2 * ell) * ((xn - mu) - (xd - mu)),
            sp.exp(2 * ell) * ((xd - mu) ** 2 - (xn - mu) ** 2),
            sp.exp(2 * ell) * (xn - mu),
        ),
        evaluate=_contrastive_by_code,
        domain={xd: Uniform(-3, 3), xn: Uniform(-3, 3), mu: Uniform(-2, 2), ell: Uniform(-1.5, 1.5)},
        samples=16,
        description=(
            "contrastive_divergence_loss: value, autograd gradient in (mu, ell), and the "
            "gradient in the (detached) negatives of loss + E(negatives)"
        ),
    )
)


def _negatives_from_langevin(points):
    """The same gradients as `_contrastive_by_code`, with the negative produced by one ULA
    step of `langevin` on the model's own score and the loss written out as
    E(data) - E(negative) (no detach of its own): only the sampler's stop-gradient keeps
    the gradient from flowing back through the step. The start is chosen so that the step
    lands on the drawn x_n (a ULA step is affine in its start: two runs at the same seed
    read it off)."""
    import torch

    from ..families.ebm import GaussianEnergy, langevin

    rows = []
    for j in range(len(points[xd])):
        energy = GaussianEnergy(1, dtype=torch.float64)
        with torch.no_grad():
            energy.mean.copy_(points[mu][j : j + 1])
            energy.log_diagonal.copy_(points[ell][j : j + 1])

        def step(start, j=j, energy=energy):
            begin = torch.full((1, 1), float(start), dtype=torch.float64)
            return langevin(
                _score_of(energy), begin, step_size=0.05, steps=1,
                generator=_seeded(j),
            ).x

        with torch.no_grad():
            at0, at1 = float(step(0.0)), float(step(1.0))
        start = (float(points[xn][j]) - at0) / (at1 - at0)
        negative = step(start)
        data = points[xd][j].reshape(1, 1)
        loss = energy(data).mean() - energy(negative).mean()
        gradients = torch.autograd.grad(loss, (energy.mean, energy.log_diagonal))
        rows.append(torch.stack([gradients[0][0], gradients[1][0]]))
    return tuple(torch.stack(rows).detach().T)


def _score_of(energy):
    """The model's score -dE/dx by autograd, in the graph of its parameters (as
    `EnergyModel.score` gives it)."""
    import torch

    def score(state):
        with torch.enable_grad():
            point = state if state.requires_grad else state.detach().requires_grad_(True)
            (gradient,) = torch.autograd.grad(energy(point).sum(), point, create_graph=True)
        return -gradient

    return score


register(
    Binding(
        derivation="D-contrastive-divergence",
        code=(f"{_EBM}.langevin",),
        expression=(
            sp.exp(2 * ell) * ((xn - mu) - (xd - mu)),
            sp.exp(2 * ell) * ((xd - mu) ** 2 - (xn - mu) ** 2),
        ),
        evaluate=_negatives_from_langevin,
        domain={xd: Uniform(-3, 3), xn: Uniform(-3, 3), mu: Uniform(-2, 2), ell: Uniform(-1.5, 1.5)},
        samples=12,
        description=(
            "negatives from one langevin step on the model's own score (in the graph of its "
            "parameters): the gradient of E(data) - E(negative) is the CD gradient with the "
            "negative held constant, so no gradient flows back through the sampler"
        ),
    )
)
