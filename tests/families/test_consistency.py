"""Consistency models against the exact probability-flow map of Gaussian data."""

from __future__ import annotations

import math

import pytest
import torch

from genmath.analytic import Gaussian
from genmath.core.dynamics import sample_ode
from genmath.core.grids import karras_grid
from genmath.core.path import GaussianPath
from genmath.families import consistency as cm
from genmath.nn import VelocityMLP
from genmath.schedules import VP, CondOT
from genmath.testing import assert_close, assert_mean_matches, assert_variance_matches


def _data() -> Gaussian:
    return Gaussian(
        torch.tensor([1.0, -2.0], dtype=torch.float64),
        torch.tensor([[2.0, 0.6], [0.6, 0.5]], dtype=torch.float64),
    )


class _ExactNetwork(torch.nn.Module):
    """F such that c_skip x + c_out F is the exact consistency function
    x -> Phi_{t -> t_min}(x) of Gaussian data (D-gaussian-flow-map)."""

    def __init__(self, marginal, holder) -> None:
        super().__init__()
        self.marginal, self.holder = marginal, holder

    def forward(self, x, t):
        model = self.holder[0]
        c_skip, c_out = cm.boundary_coefficients(
            model.noise_level(t), model.s_min, model.sigma_data
        )
        at_boundary = c_out == 0
        c_out = torch.where(at_boundary, torch.ones_like(c_out), c_out)
        end = self.marginal.flow_map(x, t, model.t_min)
        return (end - c_skip[:, None] * x) / c_out[:, None]


def _exact_model(path):
    marginal = _data().marginal(path)
    holder = []
    model = cm.ConsistencyModel(_ExactNetwork(marginal, holder), path)
    holder.append(model)
    return model, marginal


@pytest.mark.parametrize("schedule", [CondOT(), VP()], ids=["condot", "vp"])
def test_boundary_condition_holds_for_any_network(schedule, generator):
    path = GaussianPath(schedule)
    model = cm.ConsistencyModel(VelocityMLP(2, 16), path)
    x = 3 * torch.randn(7, 2, generator=generator)
    assert_close(model(x, model.t_min), x, atol=0.0, name="f(x, t_min)")
    c_skip, c_out = cm.boundary_coefficients(torch.tensor([model.s_min]), model.s_min, 0.5)
    assert float(c_skip) == 1.0 and float(c_out) == 0.0
    # away from the boundary the network does matter
    assert float((model(x, 0.5) - x).abs().max()) > 1e-3


def test_boundary_coefficients_against_song_et_al_closed_form():
    s = torch.tensor([0.002, 0.1, 1.0, 80.0])
    s_min, sd = 0.002, 0.5
    c_skip, c_out = cm.boundary_coefficients(s, s_min, sd)
    expected_skip = torch.tensor([sd**2 / ((v - s_min) ** 2 + sd**2) for v in s.tolist()])
    expected_out = torch.tensor([sd * (v - s_min) / math.sqrt(sd**2 + v**2) for v in s.tolist()])
    assert_close(c_skip, expected_skip, atol=1e-15)
    assert_close(c_out, expected_out, atol=1e-15)


def test_exact_consistency_function_maps_a_trajectory_to_one_endpoint(generator):
    path = GaussianPath(CondOT())
    model, marginal = _exact_model(path)
    x_top = torch.randn(6, 2, generator=generator)
    grid = torch.linspace(model.t_max, model.t_min, 9)
    # the teacher trajectory: the exact velocity integrated by the core's adaptive solver
    trajectory = sample_ode(
        marginal.velocity,
        x_top,
        grid=grid,
        method="dopri5",
        rtol=1e-10,
        atol=1e-10,
        keep_trajectory=True,
    ).trajectory
    endpoint = trajectory[-1]
    for x_t, t in zip(trajectory, grid, strict=True):
        assert_close(model(x_t, t), endpoint, atol=1e-7, name=f"f(x_t, t={float(t):.3f})")


def test_distillation_loss_of_the_exact_consistency_function_is_zero(generator):
    path = GaussianPath(CondOT())
    model, marginal = _exact_model(path)
    x0 = _data().sample(256, generator)

    def exact_step(x, t_from, t_to):
        return marginal.flow_map(x, t_from, t_to)

    loss = cm.consistency_distillation_loss(
        model,
        model,
        x0,
        path,
        marginal.velocity,
        grid=18,
        solver=exact_step,
        reduction="none",
        generator=generator,
    )
    assert float(loss.max()) < 1e-24
    # with a one-step numerical teacher the loss is the squared local error of the step
    euler = cm.consistency_distillation_loss(
        model, model, x0, path, marginal.velocity, grid=18, solver="euler", generator=generator
    )
    assert float(euler) > 1e-8


@pytest.mark.parametrize(("solver", "order"), [("euler", 1), ("heun", 2)])
def test_distillation_teacher_step_has_its_order(solver, order):
    """One teacher step of size h has local error O(h^(order+1)): the squared distance between
    the exact consistency outputs shrinks by 2^(2 order + 2) when h halves."""
    path = GaussianPath(CondOT())
    model, marginal = _exact_model(path)
    x0 = _data().sample(64, torch.Generator().manual_seed(5))
    losses = []
    for h in (0.04, 0.02, 0.01):
        grid = torch.tensor([0.5, 0.5 - h])
        losses.append(
            float(
                cm.consistency_distillation_loss(
                    model,
                    model,
                    x0,
                    path,
                    marginal.velocity,
                    grid=grid,
                    solver=solver,
                    generator=torch.Generator().manual_seed(9),
                )
            )
        )
    ratio = losses[1] / losses[2]
    expected = 2 ** (2 * order + 2)
    assert expected / 1.5 < ratio < expected * 1.5, (losses, ratio)


def test_teacher_in_another_parameterization_gives_the_same_loss(generator):
    path = GaussianPath(CondOT())
    model, marginal = _exact_model(path)
    x0 = _data().sample(32, generator)
    state = generator.get_state()
    by_velocity = cm.consistency_distillation_loss(
        model, model, x0, path, marginal.velocity, solver="heun", generator=generator
    )
    generator.set_state(state)
    by_eps = cm.consistency_distillation_loss(
        model,
        model,
        x0,
        path,
        marginal.eps,
        solver="heun",
        teacher_parameterization="eps",
        generator=generator,
    )
    assert_close(by_eps, by_velocity, atol=1e-12)


def test_training_loss_of_the_exact_function_is_its_one_sample_variance_only(generator):
    """Consistency training replaces the teacher by the single-sample velocity; for the exact
    consistency function its loss vanishes as the grid refines (the estimate is unbiased)."""
    path = GaussianPath(CondOT())
    model, _ = _exact_model(path)
    x0 = _data().sample(512, generator)
    coarse = float(
        cm.consistency_training_loss(model, model, x0, path, steps=10, generator=generator)
    )
    fine = float(
        cm.consistency_training_loss(model, model, x0, path, steps=160, generator=generator)
    )
    assert fine < coarse / 8


def test_multistep_sampling_with_the_exact_function_reproduces_the_data(generator):
    path = GaussianPath(CondOT())
    model, _ = _exact_model(path)
    data = _data()
    noise = torch.randn(20000, 2, generator=generator)
    for times in (None, [0.6, 0.3]):
        result = cm.sample(model, noise, times=times, generator=generator)
        # the endpoint is x_{t_min} = (1 - t_min) x0 + t_min eps: its exact moments
        t_min = model.t_min
        assert_mean_matches(result.x, (1 - t_min) * data.mean)
        assert_variance_matches(result.x, (1 - t_min) ** 2 * data.cov.diagonal() + t_min**2)
    assert result.nfe == 3


def test_schedules_and_ema():
    assert cm.training_steps(0, 100) == 2
    assert cm.training_steps(100, 100) == 151
    assert cm.training_steps(50, 100) == math.ceil(math.sqrt(0.5 * (151**2 - 4) + 4) - 1) + 1
    assert math.isclose(cm.ema_decay(2), 0.95)
    online, target = torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)
    before = target.weight.detach().clone()
    cm.ema_update(target, online, 0.9)
    assert_close(target.weight.detach(), 0.9 * before + 0.1 * online.weight.detach(), atol=1e-7)
    grid = karras_grid(5, CondOT())
    assert float(grid[0]) > float(grid[-1])


def test_bad_input_is_rejected(generator):
    path = GaussianPath(CondOT())
    model = cm.ConsistencyModel(VelocityMLP(2, 8), path)
    x = torch.randn(3, 2)
    with pytest.raises(ValueError, match=r"t must lie in \[t_min, t_max\]"):
        model(x, 0.0)
    with pytest.raises(ValueError, match=r"must lie in \[0, 1\]"):
        model(x, 1.5)
    with pytest.raises(ValueError, match="t_min < t_max"):
        cm.ConsistencyModel(VelocityMLP(2, 8), path, t_min=0.5, t_max=0.4)
    with pytest.raises(ValueError, match="metric must be one of"):
        cm.consistency_training_loss(model, model, x, path, metric="lpips")
    with pytest.raises(ValueError, match="solver must be"):
        cm.consistency_distillation_loss(model, model, x, path, model, solver="rk45")
    with pytest.raises(ValueError, match="safe interval"):
        cm.consistency_distillation_loss(
            model, model, x, path, model, grid=torch.tensor([1.0, 0.5])
        )
    with pytest.raises(ValueError, match="strictly monotone"):
        cm.sample(model, x, times=[0.2, 0.5])
    with pytest.raises(ValueError, match="sigma_data must be a positive number"):
        cm.boundary_coefficients(torch.tensor([1.0]), 0.0, -1.0)


class _Scaled(torch.nn.Module):
    """F(x, t) = w x with one parameter w."""

    def __init__(self, w: float) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.tensor(w, dtype=torch.float64))

    def forward(self, x, t):
        return self.w * x


@pytest.mark.parametrize("metric", cm.METRICS)
def test_the_stop_gradient_fixes_the_training_gradient(metric):
    # theta^- = theta (the model is its own target): the stop-gradient decides the gradient.
    # By hand on CondOT (alpha = 1 - t, sigma = t, s = t / (1 - t)), f = (c_skip + c_out w) x.
    path = GaussianPath(CondOT())
    model = cm.ConsistencyModel(_Scaled(0.7), path, sigma_data=0.5)
    x0 = torch.tensor([[0.8, -1.1]], dtype=torch.float64)
    eps = torch.tensor([[0.3, 1.7]], dtype=torch.float64)
    t_hi, t_lo = 0.6, 0.2
    loss = cm.consistency_training_loss(
        model, model, x0, path, grid=torch.tensor([t_hi, t_lo]), noise=eps, metric=metric,
        huber_c=0.1,
    )
    (gradient,) = torch.autograd.grad(loss, model.network.w)

    def f(t, w):
        level = t / (1 - t)
        c_skip, c_out = cm.boundary_coefficients(torch.tensor(level), model.s_min, 0.5)
        return (c_skip + c_out * w) * ((1 - t) * x0 + t * eps), c_out * ((1 - t) * x0 + t * eps)

    w = 0.7
    (f_hi, df_hi), (f_lo, df_lo) = f(t_hi, w), f(t_lo, w)
    gap = f_hi - f_lo
    squared = gap.pow(2).sum()
    d_metric = 2.0 if metric == "l2" else 1.0 / math.sqrt(squared + 0.1**2)
    expected = (d_metric * gap * df_hi).sum()
    assert_close(loss, squared if metric == "l2" else math.sqrt(squared + 0.01) - 0.1, atol=1e-12)
    assert_close(gradient, expected, atol=1e-12, rtol=1e-12)
    # without the stop-gradient the gradient would also flow into the target's branch
    assert abs(float(gradient - (d_metric * gap * (df_hi - df_lo)).sum())) > 1e-2


def test_noise_and_ema_decay_are_validated():
    path = GaussianPath(CondOT())
    model = cm.ConsistencyModel(_Scaled(0.7), path)
    x0 = torch.zeros(3, 2, dtype=torch.float64)
    with pytest.raises(ValueError, match="noise must have the shape"):
        cm.consistency_training_loss(model, model, x0, path, noise=torch.zeros(3, 3))
    for bad in (dict(steps=0), dict(steps=2.5), dict(steps=4, mu0=0.0), dict(steps=4, s0=0)):
        with pytest.raises(ValueError):
            cm.ema_decay(**bad)
    # mu(N)^N = mu0^s0 (D-consistency-training-schedule), and N(0) = s0, N(K) = s1 + 1
    assert_close(cm.ema_decay(37, 2, 0.9) ** 37, 0.9**2, atol=1e-12)
    assert cm.training_steps(0, 1000, 2, 150) == 2
    assert cm.training_steps(1000, 1000, 2, 150) == 151
