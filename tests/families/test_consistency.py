"""Consistency models against the exact probability-flow map of Gaussian data."""

from __future__ import annotations

import math

import pytest
import torch

from genmath import consistency_function_from_map
from genmath.analytic import Gaussian
from genmath.core.dynamics import sample_ode
from genmath.core.grids import karras_grid
from genmath.core.path import GaussianPath
from genmath.families import consistency as cm
from genmath.nn import VelocityMLP
from genmath.schedules import VE, VP, CondOT
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
        end = consistency_function_from_map(self.marginal.flow_map, model.t_min)(x, t)
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


# --------------------------------------------------------------- EDM inputs (c_in, c_noise)


class _Recorder(torch.nn.Module):
    """F(x, label) = 0, keeping what the consistency model passed in."""

    def __init__(self) -> None:
        super().__init__()
        self.seen = []

    def forward(self, x, label):
        self.seen.append((x, label))
        return torch.zeros_like(x)


@pytest.mark.parametrize("schedule", [VE(0.002, 80.0), VP()], ids=["ve", "vp"])
def test_edm_input_scaling_and_noise_label_reach_the_network(schedule, generator):
    path = GaussianPath(schedule)
    recorder = _Recorder()
    model = cm.ConsistencyModel(
        recorder, path, sigma_data=0.7, input_scaling=True, noise_conditioning="edm"
    )
    x = 3 * torch.randn(5, 2, generator=generator)
    t = torch.tensor([model.t_min, 0.2, 0.5, 0.8, model.t_max])
    assert_close(model(x, model.t_min), x, atol=0.0, name="f(x, t_min) with EDM inputs")
    recorder.seen.clear()
    model(x, t)
    seen_x, seen_label = recorder.seen[0]
    # Karras et al. (2022), Table 1, at the path's noise level s = sigma_t / alpha_t, typed here
    alpha, sigma = path.alpha(t), path.sigma(t)
    s = sigma / alpha
    expected_input = x / (alpha * torch.sqrt(s**2 + 0.7**2))[:, None]
    assert_close(seen_x, expected_input, atol=1e-13, name="c_in x / alpha")
    assert_close(seen_label, torch.log(s) / 4, atol=1e-13, name="c_noise")
    # the default passes x and t untouched
    plain = cm.ConsistencyModel(_Recorder(), path)
    plain(x, t)
    assert_close(plain.network.seen[0][0], x, atol=0.0)
    assert_close(plain.network.seen[0][1], t, atol=0.0)


def test_edm_input_is_of_unit_variance_at_sigma_80(generator):
    """At s = 80 (VE's top) the raw input has standard deviation ~80; c_in makes it 1 for data
    of standard deviation sigma_d, whatever the level."""
    path = GaussianPath(VE(0.002, 80.0))
    recorder = _Recorder()
    model = cm.ConsistencyModel(recorder, path, sigma_data=0.5, input_scaling=True)
    x0 = 0.5 * torch.randn(20000, 3, generator=generator)
    for t in (model.t_max, 0.5):
        recorder.seen.clear()
        xt, _ = path.sample(x0, t, generator=generator)
        model(xt, t)
        assert_variance_matches(recorder.seen[0][0], torch.ones(3), rtol=0.1, name=f"t={t}")


# --------------------------------------------------------------- re-noising, Algorithm 1


@pytest.mark.parametrize(
    ("schedule", "t_from", "t_to"),
    [(VE(0.002, 80.0), None, None), (VP(), 0.3, 0.4)],
    ids=["ve", "vp"],
)
def test_algorithm1_renoising_gives_the_exact_marginal(schedule, t_from, t_to, generator):
    """x ~ p_t re-noised by Algorithm 1 is distributed as p_tau: its variance is that of the
    exact marginal, alpha_tau^2 Sigma + sigma_tau^2 I (two-sided); the path rule's is not."""
    path = GaussianPath(schedule)
    if t_from is None:  # VE: noise levels 1 and 2, where the path rule's excess (1) is visible
        t_from = float(path.schedule.inverse_log_snr(torch.tensor(0.0)))
        t_to = float(path.schedule.inverse_log_snr(torch.tensor(-2 * math.log(2.0))))
    data = _data()
    x = path.sample(data.sample(40000, generator), t_from, generator=generator)[0]
    marginal = data.marginal(path)
    exact_var = marginal.cov(t_to).diagonal()
    x_tau = cm.renoise(x, t_from, t_to, path, rule="algorithm1", generator=generator)
    assert_mean_matches(x_tau, marginal.mean(t_to), precision=0.1, name="Algorithm 1 mean")
    assert_variance_matches(x_tau, exact_var, rtol=0.06, name="Algorithm 1 variance")
    on_path = cm.renoise(x, t_from, t_to, path, rule="path", generator=generator)
    with pytest.raises(AssertionError):
        assert_variance_matches(on_path, exact_var, rtol=0.06, name="path rule variance")


def test_algorithm1_on_ve_is_the_papers_step(generator):
    """On VE, Algorithm 1 reads x + sqrt(tau^2 - eps^2) z with eps, tau the levels (= sigma)."""
    path = GaussianPath(VE(0.002, 80.0))
    x, z = torch.randn(4, 3, generator=generator), torch.randn(4, 3, generator=generator)
    got = cm.renoise(x, 0.1, 0.6, path, noise=z)
    eps, tau = 0.002 * (40000.0**0.1), 0.002 * (40000.0**0.6)  # VE: sigma_min (max/min)^t
    assert_close(got, x + math.sqrt(tau**2 - eps**2) * z, atol=1e-12)
    with pytest.raises(ValueError, match="raises the noise level"):
        cm.renoise(x, 0.6, 0.1, path, noise=z)
    with pytest.raises(ValueError, match="rule must be one of"):
        cm.renoise(x, 0.1, 0.6, path, rule="song")


def test_multistep_sampling_with_algorithm1_keeps_the_exact_marginal(generator):
    """With the exact consistency function and a large t_min (noise level 0.5) the samples of
    a two-step Algorithm 1 sampler have p_{t_min}'s variance; re-noising along the path
    inflates it by the noise x_{t_min} already carries."""
    path = GaussianPath(VE(0.002, 80.0))
    data = _data()
    marginal = data.marginal(path)
    t_min = float(path.schedule.inverse_log_snr(torch.tensor(-2 * math.log(0.5))))
    holder = []
    model = cm.ConsistencyModel(_ExactNetwork(marginal, holder), path, t_min=t_min)
    holder.append(model)
    noise = torch.randn(30000, 2, generator=generator)
    exact_var = marginal.cov(t_min).diagonal()
    tau = float(path.schedule.inverse_log_snr(torch.tensor(-2 * math.log(1.0))))
    paper = cm.sample(model, noise, times=[tau], renoise="algorithm1", generator=generator)
    assert_variance_matches(paper.x, exact_var, rtol=0.06, name="Algorithm 1 samples")
    along = cm.sample(model, noise, times=[tau], renoise="path", generator=generator)
    with pytest.raises(AssertionError):
        assert_variance_matches(along.x, exact_var, rtol=0.06, name="path-rule samples")


# --------------------------------------------------------------- the paper's N


def _papers_n(k, total, s0, s1):
    """Song et al. (2023), App. C, as printed: N(k) = ceil(sqrt(k/K ((s1+1)^2 - s0^2) + s0^2) - 1) + 1."""
    return math.ceil(math.sqrt(k / total * ((s1 + 1) ** 2 - s0**2) + s0**2) - 1) + 1


def test_training_grid_has_the_papers_n_points_at_the_papers_levels():
    path = GaussianPath(VE(0.002, 80.0))
    total, rho = 600_000, 7.0
    assert cm.training_steps(0, total) == 2 and cm.training_steps(total, total) == 151
    for k in (0, 1, 12_345, 300_000, total):
        n = _papers_n(k, total, 2, 150)
        grid = cm.training_grid(k, total, path)
        assert grid.numel() == n == cm.training_steps(k, total)
        # t_i = (eps^(1/rho) + (i-1)/(N-1) (T^(1/rho) - eps^(1/rho)))^rho, i = 1..N, on VE
        i = torch.arange(1, n + 1, dtype=torch.float64)
        lo, hi = 0.002 ** (1 / rho), 80.0 ** (1 / rho)
        levels = (lo + (i - 1) / (n - 1) * (hi - lo)) ** rho
        assert_close(path.sigma(grid).flip(0), levels, atol=0.0, rtol=1e-10, name=f"k={k}")
        # steps = N - 1 intervals is the same grid
        assert_close(karras_grid(n - 1, path.schedule), grid, atol=0.0)
    with pytest.raises(ValueError, match="s0"):
        cm.training_grid(0, 10, path, s0=1, s1=4)


def test_training_loss_draws_only_adjacent_points_of_the_papers_grid(generator):
    path = GaussianPath(CondOT())
    recorder = _Recorder()
    model = cm.ConsistencyModel(recorder, path)
    grid = cm.training_grid(5_000, 10_000, path, s0=2, s1=6)
    n = _papers_n(5_000, 10_000, 2, 6)
    x0 = _data().sample(400, generator)
    cm.consistency_training_loss(model, model, x0, path, grid=grid, generator=generator)
    (_, t_lo), (_, t_hi) = recorder.seen  # the (stopped) target call, then the online one
    index = {round(float(v), 12): i for i, v in enumerate(grid)}
    hi = torch.tensor([index[round(float(v), 12)] for v in t_hi])
    lo = torch.tensor([index[round(float(v), 12)] for v in t_lo])
    assert bool((lo == hi + 1).all())
    assert set(hi.tolist()) == set(range(n - 1))  # all N - 1 intervals, no more


# --------------------------------------------------------------- on the flow map


def test_consistency_function_of_the_exact_flow_map_has_zero_distillation_loss(generator):
    """f(x, t) = X(x, t, t_min) (genmath.consistency_function_from_map) of the exact Gaussian
    flow map, with the exact map as the teacher step: zero loss; a perturbed map: not."""
    path = GaussianPath(CondOT())
    marginal = _data().marginal(path)
    t_min = path.schedule.safe_interval[0]
    x0 = _data().sample(256, generator)

    def loss(flow):
        f = consistency_function_from_map(flow, end=t_min)
        state = generator.get_state()
        value = cm.consistency_distillation_loss(
            f, f, x0, path, None, solver=marginal.flow_map, generator=generator,
            reduction="none",
        )
        generator.set_state(state)
        return value

    assert float(loss(marginal.flow_map).max()) < 1e-24

    def perturbed(x, s, t):
        # still a map with X(x, s, s) = x, but not the ODE's: off by 0.05 (s - t) x
        return marginal.flow_map(x, s, t) + 0.05 * (s - t)[:, None] * x

    assert float(loss(perturbed).mean()) > 1e-6  # 18 orders above the exact map's
    with pytest.raises(ValueError, match="solver"):
        cm.consistency_distillation_loss(
            marginal.denoise, marginal.denoise, x0, path, None,
            solver=lambda x, s, t: x[:, :1],
        )
