"""CNF / FFJORD: exact log-density with the exact velocity of Gaussian data, sampling against
the exact flow map, maximum-likelihood recovery of a 2-D Gaussian, the RNODE regularisers
against closed forms, and bad input."""

import pytest
import scipy.integrate
import scipy.linalg
import torch
from torch import nn

from genmath.analytic import Gaussian
from genmath.core.path import GaussianPath
from genmath.families.cnf import CNF, ffjord_loss
from genmath.schedules import CondOT
from genmath.testing import assert_mean_matches

MEAN = torch.tensor([1.0, -2.0], dtype=torch.float64)
COV = torch.tensor([[2.0, 0.6], [0.6, 0.5]], dtype=torch.float64)


def _exact_cnf():
    data = Gaussian(MEAN, COV)
    marginal = data.marginal(GaussianPath(CondOT()))  # p_1 = N(0, I): the CNF's prior
    return data, marginal, CNF(2, velocity=marginal.velocity)


def test_exact_velocity_reproduces_the_exact_log_density(generator):
    data, _, cnf = _exact_cnf()
    x = 2 * data.sample(6, generator=generator)
    log_prob = cnf.log_prob(x, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(log_prob, data.log_prob(x), atol=1e-7, rtol=0)


def test_hutchinson_log_density_is_unbiased(generator):
    data, _, cnf = _exact_cnf()
    x = data.sample(1, generator=generator).expand(4000, 2)
    estimates = cnf.log_prob(
        x, divergence="hutchinson", method="rk4", options={"step_size": 0.05}, generator=generator
    )
    exact_rk4 = cnf.log_prob(x[:1], method="rk4", options={"step_size": 0.05})
    assert_mean_matches(estimates, exact_rk4[0], name="FFJORD log-density")
    assert estimates.std() > 1e-3  # the estimator is random: a real test of its mean


def test_sampling_follows_the_exact_flow_map(generator):
    _, marginal, cnf = _exact_cnf()
    z = torch.randn(5, 2, generator=generator)
    torch.testing.assert_close(
        cnf.decode(z, rtol=1e-10, atol=1e-10), marginal.flow_map(z, 1.0, 0.0), atol=1e-7, rtol=0
    )
    x = cnf.decode(z, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(cnf.encode(x, rtol=1e-10, atol=1e-10), z, atol=1e-7, rtol=0)
    assert cnf.sample(3, generator=generator).shape == (3, 2)


class _LinearVelocity(nn.Module):
    """v(x, t) = A x + b: its flow is affine, so the model family is exactly the Gaussians."""

    def __init__(self):
        super().__init__()
        self.matrix = nn.Parameter(torch.zeros(2, 2))
        self.bias = nn.Parameter(torch.zeros(2))

    def forward(self, x, t):
        return x @ self.matrix.T + self.bias


def test_maximum_likelihood_recovers_mean_and_covariance(generator):
    data = Gaussian(MEAN, COV)
    x = data.sample(400, generator=generator)
    cnf = CNF(2, velocity=_LinearVelocity())
    optimizer = torch.optim.LBFGS(cnf.parameters(), max_iter=60, line_search_fn="strong_wolfe")
    solver = {"method": "rk4", "options": {"step_size": 0.1}}

    def closure():
        optimizer.zero_grad()
        loss = ffjord_loss(cnf, x, divergence="exact", **solver)
        loss.backward()
        return loss

    optimizer.step(closure)
    # the maximum-likelihood Gaussian is the sample mean and the (1/N) sample covariance
    target_mean = x.mean(0)
    target_cov = (x - target_mean).T @ (x - target_mean) / x.shape[0]
    with torch.no_grad():
        origin = cnf.decode(torch.zeros(1, 2), steps=200, method="rk4")
        columns = cnf.decode(torch.eye(2), steps=200, method="rk4") - origin
    model_cov = columns.T @ columns
    torch.testing.assert_close(origin[0], target_mean, atol=2e-2, rtol=0)
    torch.testing.assert_close(model_cov, target_cov, atol=5e-2, rtol=0)


def test_regularizers_match_closed_forms(generator):
    matrix = torch.tensor([[0.3, -0.8], [0.5, 0.1]])  # non-symmetric, non-zero trace
    velocity = _LinearVelocity()
    with torch.no_grad():
        velocity.matrix.copy_(matrix)
    cnf = CNF(2, velocity=velocity)
    x0 = torch.tensor([[1.0, -0.5]])
    kinetic, _ = cnf.regularizers(x0, steps=400)

    def speed(t):
        xt = scipy.linalg.expm(matrix.numpy() * t) @ x0[0].numpy()
        return float(((matrix.numpy() @ xt) ** 2).sum())

    expected, _ = scipy.integrate.quad(speed, 0.0, 1.0, epsabs=1e-12)
    assert abs(float(kinetic[0].detach()) - expected) < 1e-5
    # Frobenius: E||eps^T A||^2 = ||A||_F^2 at every t, so the integral is ||A||_F^2
    x = x0.expand(4000, 2)
    _, frobenius = cnf.regularizers(x, steps=2, generator=generator)
    assert_mean_matches(frobenius, (matrix**2).sum(), name="Jacobian Frobenius")


def test_ffjord_loss_passes_its_probes_to_the_frobenius_term():
    # v = A x with A = [[0, k], [0, 0]]: ||eps^T A||^2 = k^2 eps_1^2, exactly k^2 for every
    # Rademacher probe, so the Jacobian term adds exactly k^2 when noise="rademacher" reaches
    # it (Gaussian probes would add k^2 eps_1^2 instead)
    kappa = 1.7
    velocity = _LinearVelocity()
    with torch.no_grad():
        velocity.matrix.copy_(torch.tensor([[0.0, kappa], [0.0, 0.0]]))
    cnf = CNF(2, velocity=velocity).double()
    x = torch.tensor([[0.3, -0.4], [1.1, 0.2]], dtype=torch.float64)
    options = {"divergence": "exact", "method": "rk4", "options": {"step_size": 0.25}}
    with torch.no_grad():
        plain = ffjord_loss(cnf, x, **options)
        weighted = ffjord_loss(
            cnf, x, jacobian=0.5, noise="rademacher", generator=torch.Generator().manual_seed(3), **options
        )
    assert abs(float(weighted - plain) - 0.5 * kappa**2) < 1e-12


def test_bad_input_raises():
    cnf = CNF(2)
    with pytest.raises(ValueError, match=r"x must have shape \(B, 2\)"):
        cnf.log_prob(torch.randn(3, 3))
    with pytest.raises(ValueError, match="must be one of"):
        cnf.log_prob(torch.randn(3, 2), divergence="trace")
    with pytest.raises(ValueError, match="regulariser weights must be non-negative"):
        ffjord_loss(cnf, torch.randn(3, 2), kinetic=-1.0)
    with pytest.raises(ValueError, match="dim must be a positive integer"):
        CNF(0)


@pytest.mark.parametrize("structured", [True, False])
def test_log_prob_gradcheck(structured, generator):
    cnf = CNF(2, hidden=8, depth=2, activation="tanh")
    x = torch.randn(2, 2, generator=generator, requires_grad=True)
    solver = {"method": "rk4", "options": {"step_size": 0.25}}

    def log_prob(v):
        if structured:
            return cnf.log_prob(v, **solver)
        # the same field without its divergence hook: autograd's exact divergence
        return CNF(2, velocity=lambda y, t: cnf.velocity(y, t)).log_prob(v, **solver)

    assert torch.autograd.gradcheck(log_prob, (x,))
    torch.testing.assert_close(log_prob(x), cnf.log_prob(x, **solver), atol=1e-12, rtol=0)
