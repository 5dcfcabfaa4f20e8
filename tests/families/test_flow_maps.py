"""The flow-map losses (`genmath.families.flow_maps`, D-flow-map-losses) at the exact flow map
of Gaussian and mixture data (`genmath.analytic.ExactFlowMap`) and at perturbed maps, and the
few-step sampler against the exact data law."""

from __future__ import annotations

import math

import pytest
import torch

from genmath.analytic import ExactFlowMap, Gaussian
from genmath.core.path import GaussianPath
from genmath.derivations.flow_map_oracles import mixture_case
from genmath.families import flow_maps
from genmath.schedules import CondOT, CosineVP
from genmath.testing import assert_close

DTYPE = torch.float64
PATH = GaussianPath(CondOT())
GAUSSIAN = Gaussian(torch.tensor([1.0, -0.5], dtype=DTYPE),
                    torch.tensor([[1.5, 0.6], [0.6, 0.5]], dtype=DTYPE))
DISTILLATION = ("lagrangian_distillation_loss", "eulerian_distillation_loss", "shortcut_loss")


def _law(name):
    return GAUSSIAN if name == "gaussian" else mixture_case()


def _perturbed(exact, size=0.05):
    def model(y, s, t):  # a smooth error that vanishes at s = t, as a map's must
        return exact(y, s, t) + size * (t - s)[:, None] * torch.sin(y)

    return model


@pytest.mark.parametrize("law", ["gaussian", "mixture"])
@pytest.mark.parametrize("loss", DISTILLATION)
def test_distillation_losses_vanish_at_the_exact_map_and_not_at_a_perturbed_one(law, loss):
    data = _law(law)
    marginal = data.marginal(PATH)
    # 96 RK4 steps (not the default 192) keep the mixture map's error below 1e-6 (9e-8 at 128), its square
    # far below the 1e-10 bound, at half the cost
    exact = ExactFlowMap(marginal, steps=96)
    x0 = data.sample(12, generator=torch.Generator().manual_seed(0))
    fn = getattr(flow_maps, loss)
    kwargs = dict(teacher=marginal.velocity, generator=torch.Generator().manual_seed(1),
                  reduction="none")
    at_exact = fn(exact, x0, PATH, **kwargs)
    kwargs["generator"] = torch.Generator().manual_seed(1)
    at_perturbed = fn(_perturbed(exact), x0, PATH, **kwargs)
    assert at_exact.shape == (12,)
    zero = 1e-18 if law == "gaussian" else 1e-10  # squared residuals: ODE error squared
    assert float(at_exact.max()) < zero
    assert float(at_perturbed.mean()) > 1e-5


def test_shortcut_training_loss_has_zero_expected_gradient_at_the_exact_map():
    # without a teacher the target is the conditional velocity: the loss is not zero at the
    # exact map, its gradient along any direction of maps is zero in expectation
    marginal = GAUSSIAN.marginal(PATH)
    exact = ExactFlowMap(marginal)
    n = 4000
    x0 = GAUSSIAN.sample(n, generator=torch.Generator().manual_seed(2))

    def gradient(theta0):
        theta = torch.tensor(theta0, dtype=DTYPE, requires_grad=True)

        def model(y, s, t):
            return exact(y, s, t) + theta * (t - s)[:, None] * torch.tanh(y)

        loss = flow_maps.shortcut_loss(model, x0, PATH, reduction="none",
                                       generator=torch.Generator().manual_seed(3))
        grads = torch.stack([torch.autograd.grad(value, theta, retain_graph=True)[0]
                             for value in loss[:400]])
        return grads

    at_zero = gradient(0.0)
    se = at_zero.std() / math.sqrt(at_zero.numel())
    assert abs(float(at_zero.mean())) < 4 * float(se)
    away = gradient(0.5)
    se_away = away.std() / math.sqrt(away.numel())
    assert abs(float(away.mean())) > 4 * float(se_away)


def test_shortcut_loss_is_the_conditional_velocity_gap_at_zero_step():
    # s = t: the self-consistency term is zero and the loss is ||v_model - (z - x0)||^2
    marginal = GAUSSIAN.marginal(PATH)
    exact = ExactFlowMap(marginal)
    x0 = GAUSSIAN.sample(8, generator=torch.Generator().manual_seed(4))
    noise = torch.randn(8, 2, generator=torch.Generator().manual_seed(5), dtype=DTYPE)
    s = torch.full((8,), 0.4, dtype=DTYPE)
    got = flow_maps.shortcut_loss(exact, x0, PATH, s=s, t=s, noise=noise, reduction="none")
    x_s = 0.6 * x0 + 0.4 * noise
    expected = (marginal.velocity(x_s, s) - (noise - x0)).pow(2).sum(1)
    assert_close(got, expected, atol=1e-12, rtol=1e-12)


def _moments_agree(samples, mean, cov, k=4.0):
    """Two-sided: the sample mean and covariance within k standard errors estimated from the
    same samples."""
    n = samples.shape[0]
    centred = samples - samples.mean(0)
    ok = ((samples.mean(0) - mean).abs() <= k * samples.std(0) / math.sqrt(n)).all()
    products = centred[:, :, None] * centred[:, None, :]
    se = products.std(0) / math.sqrt(n)
    return bool(ok and ((products.mean(0) - cov).abs() <= k * se).all())


@pytest.mark.parametrize("law", ["gaussian", "mixture"])
def test_few_step_sampler_with_the_exact_map_reproduces_the_data_law(law):
    data = _law(law)
    exact = ExactFlowMap(data.marginal(PATH), steps=96 if law == "mixture" else 192)
    n = 3000
    noise = torch.randn(n, 2, generator=torch.Generator().manual_seed(6), dtype=DTYPE)
    reference = data.sample(n, generator=torch.Generator().manual_seed(7))
    ref_logp = data.log_prob(reference)
    one = flow_maps.sample(exact, noise, steps=1)
    assert one.nfe == 1
    for steps in (1, 2, 4):
        result = one if steps == 1 else flow_maps.sample(exact, noise, steps=steps)
        x = result.x
        if steps > 1:  # the semigroup: every grid ends at the same point (to RK4 error)
            assert_close(x, one.x, atol=1e-10 if law == "gaussian" else 1e-5)
        assert _moments_agree(x, data.mean, data.cov)
        # the exact log-density of the samples against independent data samples, two-sided
        logp = data.log_prob(x)
        se = math.sqrt(logp.var() / n + ref_logp.var() / n)
        assert abs(float(logp.mean() - ref_logp.mean())) < 4 * se
    # the negative control: a perturbed map's samples fail the same tests
    wrong = flow_maps.sample(_perturbed(exact, 0.3), noise, steps=2).x
    logp = data.log_prob(wrong)
    se = math.sqrt(logp.var() / n + ref_logp.var() / n)
    assert not _moments_agree(wrong, data.mean, data.cov) or (
        abs(float(logp.mean() - ref_logp.mean())) > 4 * se
    )


def test_bad_input_is_refused_by_name():
    marginal = GAUSSIAN.marginal(PATH)
    exact = ExactFlowMap(marginal)
    x0 = torch.zeros(4, 2, dtype=DTYPE)
    teacher = marginal.velocity
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        flow_maps.lagrangian_distillation_loss(exact, x0, teacher=teacher, s=1.2, t=0.1)
    with pytest.raises(ValueError, match="both s and t"):
        flow_maps.eulerian_distillation_loss(exact, x0, teacher=teacher, s=0.5)
    with pytest.raises(ValueError, match="flow-map model"):
        flow_maps.shortcut_loss(lambda y, s: y, x0, teacher=teacher)
    with pytest.raises(ValueError, match="shape of x"):
        flow_maps.lagrangian_distillation_loss(lambda y, s, t: y[:, :1], x0, teacher=teacher)
    with pytest.raises(TypeError, match="teacher"):
        flow_maps.eulerian_distillation_loss(exact, x0, teacher="v")
    with pytest.raises(ValueError, match="reduction"):
        flow_maps.shortcut_loss(exact, x0, reduction="sum")
    with pytest.raises(ValueError, match="decrease"):
        flow_maps.sample(exact, x0, grid=torch.linspace(0, 1, 3, dtype=DTYPE))
    with pytest.raises(ValueError, match="shape of x"):
        flow_maps.sample(lambda y, s, t: y.sum(1), x0)


TRIGFLOW = GaussianPath(CosineVP(0.0))


def test_scm_tangent_is_the_derivative_along_the_trigflow_interpolant():
    # TrigFlow in genmath's t: x_t = cos(pi t / 2) x0 + sin(pi t / 2) z
    t = torch.tensor([0.1, 0.35, 0.6, 0.9], dtype=DTYPE)
    assert_close(TRIGFLOW.alpha(t), torch.cos(math.pi * t / 2), atol=1e-15)
    assert_close(TRIGFLOW.sigma(t), torch.sin(math.pi * t / 2), atol=1e-15)
    exact = ExactFlowMap(GAUSSIAN.marginal(TRIGFLOW))
    model = _perturbed(exact, 0.2)
    gen = torch.Generator().manual_seed(8)
    x0 = GAUSSIAN.sample(4, generator=gen)
    z = torch.randn(4, 2, generator=gen, dtype=DTYPE)
    _, tangent = flow_maps.scm_tangent(model, x0, TRIGFLOW, t=t, noise=z)

    def f_along(time):
        tau = math.pi * time / 2
        x_t = torch.cos(tau)[:, None] * x0 + torch.sin(tau)[:, None] * z
        return model(x_t, time, torch.zeros_like(time))

    h = 1e-5
    finite = (f_along(t + h) - f_along(t - h)) / (2 * h)
    assert_close(tangent, finite, atol=1e-7, rtol=1e-7)
    assert float(tangent.abs().max()) > 1e-2  # a perturbed map moves along the trajectory


@pytest.mark.parametrize("law", ["gaussian", "mixture"])
def test_scm_distillation_vanishes_at_the_exact_map(law):
    data = _law(law)
    marginal = data.marginal(TRIGFLOW)
    exact = ExactFlowMap(marginal, steps=96)  # as above: half the cost, error still below 1e-6
    x0 = data.sample(12, generator=torch.Generator().manual_seed(9))
    t = 0.05 + 0.9 * torch.rand(12, generator=torch.Generator().manual_seed(10), dtype=DTYPE)
    kwargs = dict(teacher=marginal.velocity, t=t, reduction="none",
                  generator=torch.Generator().manual_seed(11))
    zero = 1e-18 if law == "gaussian" else 1e-10
    assert float(flow_maps.scm_loss(exact, x0, TRIGFLOW, **kwargs).max()) < zero
    kwargs["generator"] = torch.Generator().manual_seed(11)
    assert float(flow_maps.scm_loss(_perturbed(exact), x0, TRIGFLOW, **kwargs).mean()) > 1e-5
    with pytest.raises(ValueError, match="tangent_normalization"):
        flow_maps.scm_loss(exact, x0, TRIGFLOW, tangent_normalization=-1.0)


def test_scm_training_has_zero_expected_gradient_at_the_exact_map():
    exact = ExactFlowMap(GAUSSIAN.marginal(TRIGFLOW))
    n = 400
    x0 = GAUSSIAN.sample(n, generator=torch.Generator().manual_seed(12))
    t = 0.05 + 0.9 * torch.rand(n, generator=torch.Generator().manual_seed(13), dtype=DTYPE)
    noise = torch.randn(n, 2, generator=torch.Generator().manual_seed(14), dtype=DTYPE)

    def gradients(theta0):
        theta = torch.tensor(theta0, dtype=DTYPE, requires_grad=True)

        def model(y, s, end):
            return exact(y, s, end) + theta * (end - s)[:, None] * torch.tanh(y)

        loss = flow_maps.scm_loss(model, x0, TRIGFLOW, t=t, noise=noise, reduction="none")
        return torch.stack([torch.autograd.grad(v, theta, retain_graph=True)[0] for v in loss])

    for theta0, vanishes in ((0.0, True), (0.5, False)):
        g = gradients(theta0)
        mean, se = float(g.mean()), float(g.std() / math.sqrt(g.numel()))
        assert (abs(mean) < 4 * se) if vanishes else (abs(mean) > 4 * se)
