"""Flow matching, rectified flow, stochastic interpolants and the OT coupling, against exact
answers: Gaussian-mixture oracle velocities, the closed-form Gaussian-to-Gaussian velocity,
brute-force assignment."""

from __future__ import annotations

import itertools
import math

import pytest
import sympy as sp
import torch

from genmath.analytic import Gaussian, GaussianMixture
from genmath.core.dynamics import sample_ode
from genmath.core.path import GaussianPath
from genmath.core.schedules import Schedule
from genmath.families import flow_matching as fm
from genmath.nn import VelocityMLP
from genmath.schedules import VP, CondOT
from genmath.testing import assert_close, assert_mean_matches, assert_variance_matches


def _mixture() -> GaussianMixture:
    return GaussianMixture(
        torch.tensor([0.3, 0.5, 0.2]),
        torch.tensor([[-2.0, 0.5], [1.5, 1.0], [0.5, -2.0]]),
        torch.tensor(
            [[[0.5, 0.2], [0.2, 0.3]], [[0.3, -0.1], [-0.1, 0.6]], [[0.2, 0.05], [0.05, 0.4]]]
        ),
    )


class _Affine(torch.nn.Module):
    """v(x, t) = A x + t b: a model with a non-symmetric Jacobian."""

    def __init__(self, generator: torch.Generator) -> None:
        super().__init__()
        self.a = torch.randn(2, 2, generator=generator)
        self.b = torch.randn(2, generator=generator)

    def forward(self, x, t):
        return x @ self.a.T + t[:, None] * self.b


@pytest.mark.parametrize("schedule", [CondOT(), VP()], ids=["condot", "vp"])
def test_cfm_minus_fm_is_the_same_constant_for_two_models(schedule, generator):
    path = GaussianPath(schedule)
    data = _mixture()
    marginal = data.marginal(path)
    n = 20000
    x0 = data.sample(n, generator)
    eps = torch.randn(n, 2, generator=generator)
    lo, hi = schedule.safe_interval
    t = lo + (hi - lo) * torch.rand(n, generator=generator)
    models = [_Affine(generator), VelocityMLP(2, hidden=16, activation="tanh")]
    xt = path.alpha(t)[:, None] * x0 + path.sigma(t)[:, None] * eps  # the path, written out
    u = marginal.velocity(xt, t)
    gaps, losses = [], []
    with torch.no_grad():
        for model in models:
            cfm = fm.cfm_loss(model, x0, path, t=t, noise=eps, reduction="none")
            fm_loss = (model(xt, t) - u).pow(2).sum(1)
            gaps.append(cfm - fm_loss)
            losses.append(cfm)
    # CFM - FM = E||c||^2 - E||u||^2 for both models (D-cfm-equals-fm)
    # to 0.5: a wrong marginal velocity (below) moves the difference by several units
    assert_mean_matches(
        gaps[0] - gaps[1], 0.0, precision=0.5, name="CFM - FM difference between models"
    )
    with pytest.raises(AssertionError):  # not vacuous: the models' losses do differ
        assert_mean_matches(losses[0] - losses[1], 0.0, precision=0.5)
    # and using a wrong "marginal" velocity breaks the identity
    wrong = []
    with torch.no_grad():
        for model in models:
            cfm = fm.cfm_loss(model, x0, path, t=t, noise=eps, reduction="none")
            wrong.append(cfm - (model(xt, t) - u - 0.5 * xt).pow(2).sum(1))
    with pytest.raises(AssertionError):
        assert_mean_matches(wrong[0] - wrong[1], 0.0, precision=0.5)


def _oracle(marginal, parameterization):
    return {"velocity": marginal.velocity, "x0": marginal.denoise, "eps": marginal.eps}[
        parameterization
    ]


@pytest.mark.parametrize("parameterization", ["velocity", "x0", "eps"])
def test_cfm_loss_is_stationary_at_the_oracle_velocity(parameterization, generator):
    """The CFM minimiser over a flexible class is the marginal velocity: the derivative of the
    loss along any direction h vanishes at the oracle (in expectation), and does not vanish at
    a perturbed model."""
    path = GaussianPath(CondOT())
    data = _mixture()
    marginal = data.marginal(path)
    oracle = _oracle(marginal, parameterization)
    n = 20000
    x0 = data.sample(n, generator)
    eps = torch.randn(n, 2, generator=generator)
    # Stationarity holds at every fixed t, so test it at three fixed times: over random t the
    # x0/eps losses' per-sample gradients carry 1/t and 1/(1 - t) weights whose tails are too
    # heavy for a standard error (Pareto shape above 0.8 with t ~ U(t_lo, t_hi)).
    t = torch.tensor([0.2, 0.5, 0.8]).repeat_interleave(n // 3 + 1)[:n]

    def directions(x, t):
        return torch.stack([torch.ones_like(x), x, torch.sin(3 * x.flip(1)) * t[:, None]], 0)

    def stationarity(offset: float) -> torch.Tensor:
        c = torch.zeros(n, 3, requires_grad=True)

        def model(x, t):
            h = directions(x, t)  # (3, B, 2)
            return oracle(x, t) + (c.T[:, :, None] * h).sum(0) + offset * h[0]

        loss = fm.cfm_loss(
            model, x0, path, parameterization=parameterization, t=t, noise=eps, reduction="none"
        )
        (grad,) = torch.autograd.grad(loss.sum(), c)
        return grad  # per-sample derivatives, (B, 3)

    # resolved to about a quarter of what the 0.1 offset below produces (0.35 for the velocity
    # loss, about 4 for the x0 and eps losses, whose weights are larger)
    precision = 0.2 if parameterization == "velocity" else 1.0
    assert_mean_matches(
        stationarity(0.0), torch.zeros(3), precision=precision, name="dCFM/dc at the oracle"
    )
    with pytest.raises(AssertionError):
        assert_mean_matches(stationarity(0.1), torch.zeros(3), precision=precision)


def _closed_form_velocity(m0, s0, m1, s1):
    """DESIGN.md's Gaussian-to-Gaussian velocity, x0 ~ N(m0, s0^2) at t = 0, x1 ~ N(m1, s1^2)."""

    def u(x, t):
        t = t.reshape(-1, *([1] * (x.ndim - 1))) if torch.is_tensor(t) and t.ndim else t
        m_t = (1 - t) * m0 + t * m1
        v_t = (1 - t) ** 2 * s0**2 + t**2 * s1**2
        return (m1 - m0) + (t * s1**2 - (1 - t) * s0**2) / v_t * (x - m_t)

    return u


def test_gaussian_to_gaussian_velocity_is_the_regression_of_the_conditional_target(generator):
    m0, s0, m1, s1 = 2.0, 0.5, -1.0, 1.5
    u = _closed_form_velocity(m0, s0, m1, s1)
    path = GaussianPath(CondOT())
    n = 40000
    for t_value in (0.1, 0.5, 0.85):
        x0 = m0 + s0 * torch.randn(n, 1, generator=generator)
        x1 = m1 + s1 * torch.randn(n, 1, generator=generator)
        t = torch.full((n,), t_value)
        xt, target = fm.interpolate(x0, x1, t, path)
        residual = target - u(xt, t)
        # E[(c - u(x_t)) f(x_t)] = 0 for f = 1, x: u is the conditional mean of the target;
        # resolved to 0.1, below what a slope off by 0.5 (next) produces
        assert_mean_matches(torch.cat([residual, residual * xt], 1), torch.zeros(2), precision=0.1)
        with pytest.raises(AssertionError):  # a wrong slope is detected
            bad = target - u(xt, t) - 0.5 * (xt - xt.mean())
            assert_mean_matches(torch.cat([bad, bad * xt], 1), torch.zeros(2), precision=0.1)


def test_gaussian_to_gaussian_velocity_matches_the_oracle_for_a_standard_source():
    m0, s0 = 0.7, 0.4
    data = Gaussian(torch.tensor([m0]), torch.tensor([[s0**2]]))
    marginal = data.marginal(GaussianPath(CondOT()))
    x = torch.linspace(-3, 3, 13)[:, None]
    for t in (0.0, 0.2, 0.5, 0.9, 1.0):
        tt = torch.full((13,), t)
        assert_close(
            marginal.velocity(x, tt), _closed_form_velocity(m0, s0, 0.0, 1.0)(x, tt), atol=1e-12
        )


def test_gaussian_to_gaussian_velocity_transports_source_to_target(generator):
    m0, s0, m1, s1 = 2.0, 0.5, -1.0, 1.5
    u = _closed_form_velocity(m0, s0, m1, s1)
    # exact transport of a standardised point: x_t = m_t + sqrt(v_t) z
    z = torch.linspace(-2, 2, 9)[:, None]
    x1 = m1 + s1 * z
    result = sample_ode(u, x1, steps=200, method="rk4")
    assert_close(result.x, m0 + s0 * z, atol=1e-9, name="transported quantiles")
    samples = sample_ode(
        u, m1 + s1 * torch.randn(20000, 1, generator=generator), steps=50, method="rk4"
    ).x
    assert_mean_matches(samples, torch.tensor([m0]))
    assert_variance_matches(samples, torch.tensor([s0**2]))


def test_stochastic_interpolant_regresses_to_the_velocity_of_the_widened_path(generator):
    """x_t = (1-t) x0 + t eps + sqrt(a t (1-t)) z is the Gaussian path with
    sigma_t^2 = t^2 + a t (1 - t): the conditional target regresses to its exact velocity."""
    a = 0.8
    ts = sp.Symbol("t", nonnegative=True)
    widened = GaussianPath(Schedule.from_sympy(1 - ts, sp.sqrt(ts**2 + a * ts * (1 - ts)), ts))
    data = Gaussian(torch.tensor([1.0, -1.0]), torch.tensor([[0.6, 0.25], [0.25, 0.3]]))
    marginal = data.marginal(widened)
    n = 40000
    x0 = data.sample(n, generator)
    x1 = torch.randn(n, 2, generator=generator)
    t = 0.05 + 0.9 * torch.rand(n, generator=generator)
    xt, target = fm.interpolate(
        x0, x1, t, GaussianPath(CondOT()), noise_scale=a, generator=generator
    )
    residual = target - marginal.velocity(xt, t)
    features = torch.cat([residual, residual * xt[:, :1], residual * xt[:, 1:]], 1)
    # to 0.05: the plain path's velocity (next) leaves a residual of about 0.06
    assert_mean_matches(features, torch.zeros(6), precision=0.05)
    plain = GaussianPath(CondOT())
    with pytest.raises(AssertionError):  # the velocity of the path without the noise term fails
        residual = target - data.marginal(plain).velocity(xt, t)
        assert_mean_matches(
            torch.cat([residual, residual * xt[:, :1]], 1), torch.zeros(4), precision=0.05
        )


@pytest.mark.parametrize("seed", range(4))
def test_ot_coupling_is_the_brute_force_optimal_permutation(seed):
    gen = torch.Generator().manual_seed(seed)
    x0 = torch.randn(6, 2, 2, generator=gen)
    x1 = torch.randn(6, 2, 2, generator=gen) + 1.0
    pi = fm.ot_coupling(x0, x1)
    assert sorted(pi.tolist()) == list(range(6))

    def cost(perm):
        return sum(float((x0[i] - x1[j]).pow(2).sum()) for i, j in enumerate(perm))

    best = min(cost(p) for p in itertools.permutations(range(6)))
    assert math.isclose(cost(pi.tolist()), best, rel_tol=1e-12)


def test_cfm_loss_with_ot_coupling_pairs_noise_optimally(generator):
    # at t = 0 on CondOT, a zero model's loss is sum ||eps_pi(i) - x0_i||^2 = the optimal cost
    x0 = torch.randn(6, 3, generator=generator)
    eps = torch.randn(6, 3, generator=generator)
    loss = fm.cfm_loss(
        lambda x, t: torch.zeros_like(x),
        x0,
        GaussianPath(CondOT()),
        t=0.0,
        noise=eps,
        coupling="ot",
        reduction="none",
    )
    best = min(
        sum(float((x0[i] - eps[j]).pow(2).sum()) for i, j in enumerate(p))
        for p in itertools.permutations(range(6))
    )
    assert math.isclose(float(loss.sum()), best, rel_tol=1e-12)


def test_straightness_is_zero_for_the_reflowed_gaussian_flow_and_positive_before():
    """For N(mu, S) data the 1-rectified flow's coupling is x0 = mu + S^(1/2) x1; the flow of
    that deterministic coupling has straight paths (velocity x1 - x0 given x_t)."""
    mu = torch.tensor([1.0, -0.5])
    cov = torch.tensor([[1.5, 0.6], [0.6, 0.4]])
    data = Gaussian(mu, cov)
    path = GaussianPath(CondOT())
    evals, evecs = torch.linalg.eigh(cov)
    root = evecs @ torch.diag(evals.sqrt()) @ evecs.T

    def reflowed(x, t):
        t = t.reshape(-1, 1) if t.ndim else t
        # x_t = (1 - t) mu + ((1 - t) M + t I) x1  =>  x1, then v = x1 - x0
        x1 = torch.linalg.solve(((1 - t) * root + t * torch.eye(2)), (x - (1 - t) * mu).T).T
        return x1 - (mu + x1 @ root.T)

    noise = torch.randn(64, 2, generator=torch.Generator().manual_seed(3))
    straight = sample_ode(reflowed, noise, steps=8, method="euler", keep_trajectory=True)
    assert_close(fm.straightness(straight), torch.zeros(64), atol=1e-20)
    one_step = sample_ode(reflowed, noise, steps=1, method="euler").x
    assert_close(one_step, data.flow_map(path, noise, 1.0, 0.0), atol=1e-12, name="one Euler step")

    marginal = data.marginal(path)
    curved = sample_ode(marginal.velocity, noise, steps=100, method="rk4", keep_trajectory=True)
    s = fm.straightness(curved)
    # independent route: S = int ||v(Z_t)||^2 dt - ||Z_1 - Z_0||^2 (trapezoid on the trajectory)
    grid, states = curved.grid, curved.trajectory
    speed = torch.stack(
        [marginal.velocity(x, t).pow(2).sum(1) for x, t in zip(states, grid, strict=True)]
    )
    kinetic = torch.trapezoid(speed, -grid, dim=0)
    assert_close(s, kinetic - (states[-1] - states[0]).pow(2).sum(1), atol=1e-3)
    assert float(s.mean()) > 0.1  # the 1-rectified flow of a non-isotropic Gaussian is curved
    x0, paired = fm.reflow_pairs(marginal.velocity, noise, steps=100, method="rk4")
    assert paired is noise
    assert_close(x0, data.flow_map(path, noise, 1.0, 0.0), atol=1e-7, name="reflow pairs")


def test_flow_matching_log_prob_and_samples_with_the_oracle_velocity(generator):
    data = _mixture()
    path = GaussianPath(CondOT())
    marginal = data.marginal(path)

    class Oracle(torch.nn.Module):
        def forward(self, x, t):
            return marginal.velocity(x, t)

    model = fm.FlowMatching(Oracle(), path)
    x = data.sample(3, generator)
    log_prob = model.log_prob(x, rtol=1e-7, atol=1e-7)
    assert_close(log_prob, data.log_prob(x), atol=1e-4, name="ODE log-likelihood")
    samples = model.sample(torch.randn(4000, 2, generator=generator), steps=20, method="heun").x
    assert_mean_matches(samples, data.mean, precision=0.15)

    class OracleDenoiser(torch.nn.Module):
        def forward(self, x, t):
            return marginal.denoise(x, t)

    denoiser = fm.FlowMatching(OracleDenoiser(), path, parameterization="x0")
    assert_close(denoiser.velocity(x, torch.full((3,), 0.3)), marginal.velocity(x, 0.3), atol=1e-12)


def test_guidance_is_the_linear_extrapolation():
    gen = torch.Generator().manual_seed(0)
    a, b = _Affine(gen), _Affine(gen)
    x, t = torch.randn(5, 2, generator=gen), torch.rand(5, generator=gen)
    assert_close(fm.guided(a, b, 1.0)(x, t), a(x, t), atol=1e-14)
    assert_close(fm.guided(a, b, 0.0)(x, t), b(x, t), atol=1e-14)
    assert_close(fm.guided(a, b, 3.0)(x, t), b(x, t) + 3.0 * (a(x, t) - b(x, t)), atol=1e-13)


def test_time_sampling_distributions(generator):
    t = fm.sample_times(40000, "logit_normal", location=-0.4, scale=1.3, generator=generator)
    logit = torch.log(t / (1 - t))
    assert_mean_matches(logit, torch.tensor(-0.4))
    assert_variance_matches(logit, torch.tensor(1.3**2))
    u = fm.sample_times(40000, interval=(0.2, 0.6), generator=generator)
    assert float(u.min()) >= 0.2 and float(u.max()) <= 0.6
    assert_mean_matches(u, torch.tensor(0.4))
    assert_variance_matches(u, torch.tensor(0.4**2 / 12))


def test_x0_prediction_loss_is_the_velocity_loss_of_the_converted_prediction(generator):
    """JiT: an x-prediction trained with the velocity loss; on CondOT v = (x_t - x0_hat)/t."""
    path = GaussianPath(CondOT())
    x0 = torch.randn(7, 3, generator=generator)
    eps = torch.randn(7, 3, generator=generator)
    t = torch.linspace(0.1, 0.9, 7)

    def model(x, t):
        return 0.3 * x + t[:, None]

    loss = fm.cfm_loss(model, x0, path, parameterization="x0", t=t, noise=eps, reduction="none")
    xt = (1 - t[:, None]) * x0 + t[:, None] * eps
    expected = ((xt - model(xt, t)) / t[:, None] - (eps - x0)).pow(2).sum(1)
    assert_close(loss, expected, atol=1e-12)


def test_bad_input_is_rejected(generator):
    path = GaussianPath(CondOT())
    x0 = torch.randn(4, 2)

    def zero(x, t):
        return torch.zeros_like(x)

    with pytest.raises(ValueError, match="parameterization must be one of"):
        fm.cfm_loss(zero, x0, path, parameterization="score_fn")
    with pytest.raises(ValueError, match=r"must lie in \[0, 1\]"):
        fm.cfm_loss(zero, x0, path, t=1.5)
    with pytest.raises(ValueError, match="x1 must have the shape of x0"):
        fm.cfm_loss(zero, x0, path, noise=torch.randn(4, 3))
    with pytest.raises(ValueError, match="coupling must be"):
        fm.cfm_loss(zero, x0, path, coupling="sinkhorn")
    with pytest.raises(ValueError, match="only a 'velocity' model"):
        fm.cfm_loss(zero, x0, path, parameterization="x0", noise_scale=0.5)
    with pytest.raises(ValueError, match="strictly inside"):
        fm.interpolate(x0, torch.randn(4, 2), 0.0, path, noise_scale=0.5)
    with pytest.raises(ValueError, match="model must return a tensor of the shape"):
        fm.cfm_loss(lambda x, t: x[:, :1], x0, path)
    with pytest.raises(ValueError, match="singular"):
        fm.cfm_loss(zero, x0, path, parameterization="x0", t=0.0)
    with pytest.raises(ValueError, match="distribution must be one of"):
        fm.sample_times(4, "beta")
    with pytest.raises(ValueError, match="GaussianPath"):
        fm.cfm_loss(zero, x0, CondOT())
    with pytest.raises(ValueError, match="keep_trajectory=True"):
        fm.straightness(sample_ode(zero, x0, steps=2))
    with pytest.raises(ValueError, match="needs the path"):
        fm.sample(zero, x0, parameterization="x0")
