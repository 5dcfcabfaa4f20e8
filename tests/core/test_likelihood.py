"""ode_log_likelihood against exact densities; bits_per_dim against known answers."""

import math

import pytest
import torch

from genmath.core.likelihood import ODELikelihood, bits_per_dim, ode_log_likelihood
from genmath.testing import assert_close, assert_mean_matches


@pytest.fixture(autouse=True)
def _one_thread():
    # Small tensors in long ODE solves: on a loaded 2-core machine, intra-op thread hand-offs
    # cost more than the arithmetic (measured 25x on the analytic mixture velocity).
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def _standard_normal_log_prob(x: torch.Tensor) -> torch.Tensor:
    flat = x.reshape(x.shape[0], -1)
    return -0.5 * (flat**2).sum(-1) - 0.5 * flat.shape[1] * math.log(2 * math.pi)


def _linear_case(event=(3,), seed=0):
    gen = torch.Generator().manual_seed(seed)
    dim = int(torch.tensor(event).prod())
    m = 0.6 * torch.randn(dim, dim, generator=gen) + 0.4 * torch.eye(dim)
    x = torch.randn(5, *event, generator=gen)

    def velocity(y, t):
        return (y.reshape(y.shape[0], -1) @ m.T).reshape(y.shape)

    # x_1 = expm(M) x_0 and div v = tr M: log p_0(x) = log N(expm(M) x; 0, I) + tr M.
    x1 = x.reshape(5, -1) @ torch.linalg.matrix_exp(m).T
    exact = _standard_normal_log_prob(x1) + torch.trace(m)
    return velocity, x, exact, m


@pytest.mark.parametrize("event", [(3,), (2, 2, 2)])
def test_linear_flow_matches_closed_form(event):
    velocity, x, exact, m = _linear_case(event)
    assert abs(float(torch.trace(m))) > 0.5  # the divergence term is really tested
    out = ode_log_likelihood(
        velocity, x, _standard_normal_log_prob, rtol=1e-10, atol=1e-10, return_result=True
    )
    assert isinstance(out, ODELikelihood) and out.nfe > 0
    log_prob, integral = out.log_prob.detach(), out.integrated_divergence.detach()
    assert_close(log_prob, exact, atol=1e-8, rtol=1e-9, name="log p_0")
    assert_close(integral, torch.trace(m).expand(5), atol=1e-8, name="integrated divergence")
    assert_close(log_prob, out.prior_log_prob.detach() + integral, atol=1e-12)


def test_fixed_step_solver_and_reversed_interval():
    velocity, x, exact, _ = _linear_case()
    with torch.no_grad():
        rk4 = ode_log_likelihood(
            velocity, x, _standard_normal_log_prob, method="rk4", options={"step_size": 0.01}
        )
    assert_close(rk4, exact, atol=1e-7, name="rk4")
    # Integrating from t0 = 1 down to t1 = 0 runs the inverse flow expm(-M) with divergence
    # integral -tr M: the same closed form with M replaced by -M.
    with torch.no_grad():
        backward = ode_log_likelihood(
            velocity, x, _standard_normal_log_prob, t0=1.0, t1=0.0, rtol=1e-10, atol=1e-10
        )
    m = _linear_case()[3]
    inverse = _standard_normal_log_prob(x @ torch.linalg.matrix_exp(-m).T) - torch.trace(m)
    assert_close(backward, inverse, atol=1e-8, rtol=1e-9, name="reversed interval")


def test_hutchinson_likelihood_is_unbiased():
    # With a probe fixed along the trajectory, the estimate of the integral is z^T M z.
    velocity, _, _, m = _linear_case()
    n = 2000
    x = torch.randn(n, 3, generator=torch.Generator().manual_seed(2)) * 0.5
    x1 = x @ torch.linalg.matrix_exp(m).T
    exact = _standard_normal_log_prob(x1) + torch.trace(m)
    estimate = ode_log_likelihood(
        velocity,
        x,
        _standard_normal_log_prob,
        divergence="hutchinson",
        generator=torch.Generator().manual_seed(9),
        rtol=1e-7,
        atol=1e-7,
        create_graph=False,
    )
    assert (estimate - exact).std() > 0.1  # the estimator really is random
    # resolves a 0.15-nat bias, far below the per-draw spread (> 0.1 nats, asserted above)
    assert_mean_matches(
        estimate - exact, 0.0, precision=0.15, name="Hutchinson log-likelihood error"
    )


def _parametric_velocity(theta):
    gen = torch.Generator().manual_seed(4)
    mixing = torch.randn(3, 3, generator=gen)

    def velocity(y, t):
        return torch.tanh(theta * (y @ mixing.T)) * (1 + t) - 0.5 * y

    return velocity


@pytest.mark.parametrize(
    ("method", "options", "tol"),
    [("rk4", {"step_size": 0.05}, 1e-7), ("dopri5", None, 1e-5)],
)
def test_gradient_matches_finite_differences(method, options, tol):
    x = torch.randn(4, 3, generator=torch.Generator().manual_seed(6))

    def total(theta):
        return ode_log_likelihood(
            _parametric_velocity(theta),
            x,
            _standard_normal_log_prob,
            method=method,
            options=options,
            rtol=1e-10,
            atol=1e-10,
        ).sum()

    theta = torch.tensor(0.8, requires_grad=True)
    (grad,) = torch.autograd.grad(total(theta), theta)
    h = 1e-5
    with torch.no_grad():
        fd = (total(theta + h) - total(theta - h)) / (2 * h)
    assert abs(float(fd)) > 0.1
    assert_close(grad, fd, atol=tol, rtol=tol, name="d log p / d theta")


def test_no_grad_result_is_plain():
    velocity, x, exact, _ = _linear_case()
    with torch.no_grad():
        out = ode_log_likelihood(velocity, x, _standard_normal_log_prob, rtol=1e-9, atol=1e-9)
    assert out.grad_fn is None
    assert_close(out, exact, atol=1e-7)


def test_velocity_is_only_evaluated_inside_the_interval():
    velocity, x, _, _ = _linear_case()
    seen = []

    def recording(y, t):
        seen.append(float(t.detach()))
        return velocity(y, t)

    ode_log_likelihood(recording, x, _standard_normal_log_prob, t0=0.2, t1=0.9)
    assert min(seen) >= 0.2 and max(seen) <= 0.9 + 1e-12


def test_bad_input():
    velocity, x, _, _ = _linear_case()
    with pytest.raises(
        ValueError, match=r"velocity at t = 0 must return a tensor of shape \(5, 3\)"
    ):
        ode_log_likelihood(lambda y, t: y[:, :2], x, _standard_normal_log_prob)
    with pytest.raises(ValueError, match=r"non-finite at t = 0\.[3-9]\d* \(evaluation \d+\)"):
        ode_log_likelihood(
            lambda y, t: y * (torch.nan if float(t.detach()) > 0.3 else 1.0),
            x,
            _standard_normal_log_prob,
        )
    with pytest.raises(ValueError, match=r"non-finite state x_t at t = \S+ \(evaluation \d+\)"):
        # A finite but huge velocity whose rk4 combination overflows the state.
        ode_log_likelihood(
            lambda y, t: torch.full_like(y, 1e308),
            x,
            _standard_normal_log_prob,
            method="rk4",
            options={"step_size": 0.5},
        )
    with pytest.raises(ValueError, match=r"prior_log_prob must return shape \(5,\)"):
        ode_log_likelihood(velocity, x, lambda y: y)
    with pytest.raises(ValueError, match="t0 and t1 must differ"):
        ode_log_likelihood(velocity, x, _standard_normal_log_prob, t0=0.5, t1=0.5)
    with pytest.raises(ValueError, match=r"t1 must lie in \[0, 1\]"):
        ode_log_likelihood(velocity, x, _standard_normal_log_prob, t1=2.0)
    with pytest.raises(ValueError, match="method must be one of"):
        ode_log_likelihood(velocity, x, _standard_normal_log_prob, divergence="trace")


# --- against the exact oracles of genmath.analytic ----------------------------------------


def _schedules():
    schedules = pytest.importorskip("genmath.core.schedules")
    return {
        "condot": schedules.CondOT(),
        "vp": schedules.VP(),
        "ve": schedules.VE(sigma_min=0.05, sigma_max=5.0),
    }


def _data(kind: str, dim: int):
    analytic = pytest.importorskip("genmath.analytic")
    gen = torch.Generator().manual_seed(dim)
    if kind == "gaussian":
        root = torch.randn(dim, dim, generator=gen) / dim**0.5
        cov = root @ root.T + 0.3 * torch.eye(dim)
        return analytic.Gaussian(torch.randn(dim, generator=gen), cov)
    k = 3
    roots = torch.randn(k, dim, dim, generator=gen) / dim**0.5
    covs = roots @ roots.transpose(1, 2) + 0.2 * torch.eye(dim)
    return analytic.GaussianMixture(
        torch.tensor([0.5, 0.3, 0.2]), 2 * torch.randn(k, dim, generator=gen), covs
    )


@pytest.mark.parametrize("schedule", ["condot", "vp", "ve"])
@pytest.mark.parametrize("kind", ["gaussian", "mixture"])
@pytest.mark.parametrize("dim", [2, 16])
def test_exact_velocity_recovers_data_log_prob(schedule, kind, dim):
    path_module = pytest.importorskip("genmath.core.path")
    path = path_module.GaussianPath(_schedules()[schedule])
    data = _data(kind, dim)
    marginal = data.marginal(path)
    batch = 3
    x = data.sample(batch, generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        log_prob = ode_log_likelihood(
            marginal.velocity,
            x,
            lambda y: marginal.log_prob(y, 1.0),
            rtol=1e-9,
            atol=1e-9,
        )
    # VE keeps sigma_min > 0 at t = 0, so its p_0 is the data blurred by N(0, sigma_min^2 I).
    expected = marginal.log_prob(x, 0.0) if schedule == "ve" else data.log_prob(x)
    assert_close(log_prob, expected, atol=1e-6, name=f"{kind} d={dim} {schedule}")


# --- bits per dimension -------------------------------------------------------------------


@pytest.mark.parametrize(("data_range", "density"), [((0.0, 1.0), 1.0), ((-1.0, 1.0), 0.5)])
def test_uniform_model_on_256_levels_costs_8_bits(data_range, density):
    dims = (3, 4, 4)
    d = 48
    log_prob = torch.full((7,), d * math.log(density))
    bpd = bits_per_dim(log_prob, dims, levels=256, data_range=data_range)
    assert_close(bpd, torch.full((7,), 8.0), atol=1e-12, name="bits/dim")


def test_cellwise_constant_density_gives_the_discrete_bits_exactly():
    # A categorical on L = 5 levels per dimension, spread uniformly over each cell of [-1, 1].
    levels, dim = 5, 3
    pmf = torch.tensor([0.1, 0.2, 0.4, 0.25, 0.05])
    gen = torch.Generator().manual_seed(0)
    k = torch.multinomial(pmf, 8 * dim, replacement=True, generator=gen).reshape(8, dim)
    u = torch.rand(8, dim, generator=gen)
    x = -1 + 2 * (k + u) / levels
    cell = ((x + 1) / 2 * levels).floor().long()
    assert torch.equal(cell, k)
    log_density = (pmf[cell] * levels / 2).log().sum(-1)  # mass / cell width per dimension
    log_mass = pmf[k].log().sum(-1)
    expected = -log_mass / (dim * math.log(2))
    got = bits_per_dim(log_density, dim, levels=levels, data_range=(-1.0, 1.0))
    assert_close(got, expected, atol=1e-12, name="dequantized bits/dim")
    assert_close(bits_per_dim(log_mass, dim, dequantization="none"), expected, atol=1e-12)


def test_bits_per_dim_bad_input():
    lp = torch.zeros(2)
    with pytest.raises(ValueError, match="dims must be a positive integer"):
        bits_per_dim(lp, 0)
    with pytest.raises(ValueError, match="levels must be an integer >= 2, got 1"):
        bits_per_dim(lp, 3, levels=1)
    with pytest.raises(ValueError, match="high > low"):
        bits_per_dim(lp, 3, data_range=(1.0, 0.0))
    with pytest.raises(ValueError, match="dequantization must be one of"):
        bits_per_dim(lp, 3, dequantization="variational")
