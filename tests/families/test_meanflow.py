"""MeanFlow against the exact average velocity of Gaussian data (affine flow map), the
probability-flow ODE integrated by the core solvers, and finite differences."""

from __future__ import annotations

import pytest
import torch

from genmath.analytic import Gaussian
from genmath.core.dynamics import sample_ode
from genmath.core.path import GaussianPath
from genmath.families import meanflow as mf
from genmath.schedules import CondOT
from genmath.testing import assert_close, assert_mean_matches, assert_variance_matches

PATH = GaussianPath(CondOT())
# float64 explicitly: module-level tensors are built before the float64 fixture runs
DATA = Gaussian(
    torch.tensor([1.5, -0.5], dtype=torch.float64),
    torch.tensor([[2.0, 0.7], [0.7, 0.4]], dtype=torch.float64),
)


def _exact():
    marginal = DATA.marginal(PATH)
    return marginal, mf.average_velocity_from_flow_map(marginal.flow_map, marginal.velocity)


def test_jvp_target_of_the_exact_average_velocity_is_itself(generator):
    marginal, u = _exact()
    z = 2 * torch.randn(32, 2, generator=generator)
    r = 0.9 * torch.rand(32, generator=generator)
    t = r + (1 - r) * torch.rand(32, generator=generator)
    value, target = mf.meanflow_target(u, z, r, t, marginal.velocity(z, t))
    assert_close(value, u(z, r, t), atol=1e-14)
    assert_close(target, value, atol=1e-11, name="MeanFlow identity target")
    # the identity is not a tautology: a wrong tangent (v, 0, -1) breaks it
    _, wrong = mf.meanflow_target(u, z, r, t, -marginal.velocity(z, t))
    assert float((wrong - value).abs().max()) > 1e-2


@pytest.mark.parametrize(("r", "t"), [(0.0, 1.0), (0.2, 0.7), (0.55, 0.6)])
def test_exact_average_velocity_is_the_integral_of_the_velocity(r, t, generator):
    marginal, u = _exact()
    z = 2 * torch.randn(8, 2, generator=generator)
    # integrate dz/dtau = v(z, tau) from t down to r with the core's adaptive solver
    grid = torch.tensor([t, r])
    z_r = sample_ode(marginal.velocity, z, grid=grid, method="dopri5", rtol=1e-10, atol=1e-10).x
    integrated = (z - z_r) / (t - r)
    assert_close(u(z, r, t), integrated, atol=1e-8, name="u vs (1/(t-r)) int v")
    value, target = mf.meanflow_target(u, z, r, t, marginal.velocity(z, torch.full((8,), t)))
    assert_close(target, integrated, atol=1e-8, name="JVP target vs integral")


def test_average_velocity_tends_to_the_velocity_on_the_diagonal(generator):
    marginal, u = _exact()
    z = torch.randn(8, 2, generator=generator)
    t = torch.full((8,), 0.4)
    assert_close(u(z, t, t), marginal.velocity(z, t), atol=1e-14)
    assert_close(u(z, t - 1e-6, t), marginal.velocity(z, t), atol=1e-5, name="r -> t limit")


@pytest.mark.parametrize("steps", [1, 3])
def test_one_and_few_step_sampling_with_exact_u_reproduces_the_data(steps, generator):
    _, u = _exact()
    result = mf.sample(u, torch.randn(20000, 2, generator=generator), steps=steps)
    assert result.nfe == steps
    x = result.x
    assert_mean_matches(x, DATA.mean)
    assert_variance_matches(x, DATA.cov.diagonal())
    assert_mean_matches((x[:, 0] - 1.5) * (x[:, 1] + 0.5), DATA.cov[0, 1], name="covariance")


def _stationarity(loss_fn, offset: float, generator):
    """Per-sample derivatives of the loss along directions h at u_exact + offset * h_0."""
    marginal, u = _exact()
    n = 20000
    x = DATA.sample(n, generator)
    noise = torch.randn(n, 2, generator=generator)
    r = 0.9 * torch.rand(n, generator=generator)
    t = r + (1 - r) * torch.rand(n, generator=generator)
    c = torch.zeros(n, 2, requires_grad=True)

    def model(z, r_, t_):
        h0 = torch.ones_like(z)
        h1 = z * t_[:, None]
        return u(z, r_, t_) + c[:, :1] * h0 + c[:, 1:] * h1 + offset * h1

    loss = loss_fn(model, x, r=r, t=t, noise=noise, adaptive_power=0.0, reduction="none")
    (grad,) = torch.autograd.grad(loss.sum(), c)
    return grad


@pytest.mark.parametrize("loss_fn", [mf.meanflow_loss, mf.improved_meanflow_loss])
def test_exact_average_velocity_is_a_stationary_point_of_the_loss(loss_fn, generator):
    """The target is linear in the conditional velocity, so its conditional mean is the target
    built from the marginal velocity, which the exact u meets (D-meanflow-identity)."""
    # to 0.3: the 0.2 offset below moves the gradient by about 1
    assert_mean_matches(_stationarity(loss_fn, 0.0, generator), torch.zeros(2), precision=0.3)
    with pytest.raises(AssertionError):
        assert_mean_matches(_stationarity(loss_fn, 0.2, generator), torch.zeros(2), precision=0.3)


def test_guidance_folded_into_the_target_matches_finite_differences(generator):
    torch.manual_seed(0)
    model, unconditional = mf.AverageVelocityMLP(2, 16, 2), mf.AverageVelocityMLP(2, 16, 2)
    x = torch.randn(5, 2, generator=generator)
    noise = torch.randn(5, 2, generator=generator)
    r, t = torch.tensor([0.1, 0.0, 0.2, 0.5, 0.2]), torch.tensor([0.6, 0.95, 0.3, 0.9, 0.25])
    omega = 2.5
    loss = mf.meanflow_loss(
        model,
        x,
        r=r,
        t=t,
        noise=noise,
        guidance_scale=omega,
        unconditional=unconditional,
        adaptive_power=0.0,
        reduction="none",
    )
    with torch.no_grad():
        z = (1 - t[:, None]) * x + t[:, None] * noise
        v_tilde = omega * (noise - x) + (1 - omega) * unconditional(z, t, t)
        h = 1e-5
        du_dt = (model(z + h * v_tilde, r, t + h) - model(z - h * v_tilde, r, t - h)) / (2 * h)
        target = v_tilde - (t - r)[:, None] * du_dt
        expected = (model(z, r, t) - target).pow(2).sum(1)
    assert_close(loss.detach(), expected, atol=1e-8, name="guided MeanFlow loss")
    plain = mf.meanflow_loss(model, x, r=r, t=t, noise=noise, adaptive_power=0.0, reduction="none")
    same = mf.meanflow_loss(
        model,
        x,
        r=r,
        t=t,
        noise=noise,
        guidance_scale=1.0,
        unconditional=unconditional,
        adaptive_power=0.0,
        reduction="none",
    )
    assert_close(same, plain, atol=0.0)


def test_adaptive_weight_and_gradient_flow():
    squared = torch.tensor([0.0, 1.0, 4.0], requires_grad=True)
    w = mf.adaptive_weight(squared, power=1.0, c=1e-3)
    assert_close(w, 1 / (squared.detach() + 1e-3), atol=1e-12)
    assert not w.requires_grad
    model = mf.MeanFlow(mf.AverageVelocityMLP(2, 8, 1))
    loss = model.loss(torch.randn(16, 2), generator=torch.Generator().manual_seed(0))
    loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


def test_time_pairs(generator):
    r, t = mf.sample_time_pairs(40000, equal_fraction=0.75, generator=generator)
    assert bool((r <= t).all()) and float(r.min()) >= 0 and float(t.max()) <= 1
    assert_mean_matches((r == t).to(torch.float64), torch.tensor(0.75), name="fraction r = t")


class _NoForwardMode(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x * 2

    @staticmethod
    def backward(ctx, grad):
        return grad * 2


def test_bad_input_is_rejected():
    _, u = _exact()
    z = torch.randn(3, 2)
    v = torch.randn(3, 2)
    with pytest.raises(ValueError, match="r <= t"):
        mf.meanflow_target(u, z, torch.tensor([0.5, 0.2, 0.1]), torch.tensor([0.4, 0.3, 0.2]), v)
    with pytest.raises(ValueError, match=r"must lie in \[0, 1\]"):
        mf.meanflow_target(u, z, 0.0, 1.2, v)
    with pytest.raises(ValueError, match=r"must lie in \[0, 1\]"):
        mf.meanflow_loss(u, z, r=-0.1, t=0.5)

    def opaque(z, r, t):
        return _NoForwardMode.apply(z) + t[:, None]

    with pytest.raises(ValueError, match="forward-mode derivative"):
        mf.meanflow_target(opaque, z, 0.1, 0.5, v)
    with pytest.raises(ValueError, match="v must have the shape of z"):
        mf.meanflow_target(u, z, 0.1, 0.5, v[:, :1])
    with pytest.raises(ValueError, match="needs the unconditional model"):
        mf.meanflow_loss(u, z, guidance_scale=2.0)
    with pytest.raises(ValueError, match="give both r and t"):
        mf.meanflow_loss(u, z, t=0.5)
    with pytest.raises(ValueError, match="must decrease"):
        mf.sample(u, z, grid=torch.tensor([0.0, 1.0]))


def test_the_stop_gradients_fix_the_meanflow_gradients():
    # u = a z + b t z with the target held constant: by hand, d/dt u = v (a + b t) + b z,
    # MeanFlow's gradient in (a, b) is 2 w (u - u_tgt) (z, t z); improved MeanFlow's is
    # 2 w (V - v) (z, t z) with V = u + (t - r) d/dt u at the tangent u(z, t, t).
    a = torch.tensor(0.4, dtype=torch.float64, requires_grad=True)
    b = torch.tensor(-0.9, dtype=torch.float64, requires_grad=True)

    def model(z, r, t):
        return a * z + b * t[:, None] * z

    x = torch.tensor([[1.3]], dtype=torch.float64)
    eps = torch.tensor([[-0.6]], dtype=torch.float64)
    r, t = torch.tensor([0.2], dtype=torch.float64), torch.tensor([0.7], dtype=torch.float64)
    z, v = (1 - t) * x + t * eps, eps - x
    av, bv = 0.4, -0.9
    u = av * z + bv * t * z
    weight = lambda squared: (squared + 1e-3) ** -0.5  # noqa: E731
    for improved in (False, True):
        tangent = (av + bv * t) * z if improved else v
        rate = tangent * (av + bv * t) + bv * z
        residual = u + (t - r) * rate - v if improved else u - (tangent - (t - r) * rate)
        fn = mf.improved_meanflow_loss if improved else mf.meanflow_loss
        loss = fn(model, x, r=r, t=t, noise=eps, adaptive_power=0.5)
        gradient = torch.stack(torch.autograd.grad(loss, (a, b)))
        squared = residual.pow(2).sum()
        expected = 2 * weight(squared) * residual.sum() * torch.cat([z, t * z]).reshape(2)
        assert_close(loss, weight(squared) * squared, atol=1e-12, rtol=1e-12)
        assert_close(gradient, expected, atol=1e-12, rtol=1e-12)
        # differentiating through the target as well gives another gradient
        through = 2 * weight(squared) * residual.sum() * (
            torch.cat([z, t * z]).reshape(2)
            + (t - r) * torch.cat([tangent, tangent * t + z]).reshape(2)
        )
        assert float((gradient - through).abs().max()) > 1e-2
