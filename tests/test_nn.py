"""VelocityMLP: structured divergence against autograd, and its use by the likelihood."""

import pytest
import torch

from genmath.core.divergence import FieldWithDivergence, VelocityWithDivergence, divergence
from genmath.core.likelihood import ode_log_likelihood
from genmath.nn import ACTIVATIONS, VelocityMLP
from genmath.testing import assert_close


def _model(dim=5, hidden=12, depth=2, activation="softplus", seed=0):
    torch.manual_seed(seed)
    model = VelocityMLP(dim, hidden, depth, activation)
    with torch.no_grad():  # larger weights so the activations are far from linear
        for p in model.parameters():
            p.mul_(2.0)
    return model


@pytest.mark.parametrize("depth", [1, 2])
@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("t", [0.3, "per-sample"])
def test_structured_divergence_equals_autograd(depth, activation, t):
    model = _model(depth=depth, activation=activation)
    x = torch.randn(6, 5)
    t = torch.rand(6) if t == "per-sample" else t
    v, div = model.velocity_and_divergence(x, t)
    assert_close(v, model(x, t), atol=0.0, name="velocity")
    expected = divergence(lambda y: model(y, t), x, structured=False)
    assert expected.abs().max() > 1e-2  # a vanishing divergence would test nothing
    assert_close(div, expected, atol=1e-12, name=f"{activation} depth {depth}")


def test_hooks_are_recognised_and_used():
    model = _model()
    x = torch.randn(4, 5)
    assert isinstance(model, VelocityWithDivergence)
    field = model.at(0.6)
    assert isinstance(field, FieldWithDivergence)
    assert_close(divergence(field, x), model.velocity_and_divergence(x, 0.6)[1], atol=0.0)
    assert_close(divergence(field, x, structured=False), divergence(field, x), atol=1e-12)


def test_structured_divergence_gradient_matches_autograd_divergence_gradient():
    model = _model()
    x = torch.randn(4, 5)
    structured = model.velocity_and_divergence(x, 0.4)[1].sum()
    generic = divergence(lambda y: model(y, 0.4), x, structured=False).sum()
    params = list(model.parameters())
    # The output bias does not enter the divergence: its gradient is zero on both sides.
    grads_s = torch.autograd.grad(structured, params, materialize_grads=True)
    grads_a = torch.autograd.grad(generic, params, materialize_grads=True)
    for g_s, g_a in zip(grads_s, grads_a, strict=True):
        assert_close(g_s, g_a, atol=1e-11, name="parameter gradient")


def test_likelihood_with_structured_divergence_matches_generic():
    model = _model(dim=3, hidden=16)
    x = torch.randn(5, 3)

    def prior(y):
        return torch.distributions.Normal(0.0, 1.0).log_prob(y).sum(-1)

    with torch.no_grad():
        fast = ode_log_likelihood(model, x, prior, rtol=1e-9, atol=1e-9, return_result=True)
        slow = ode_log_likelihood(
            model, x, prior, rtol=1e-9, atol=1e-9, structured=False, return_result=True
        )
    assert_close(fast.log_prob, slow.log_prob, atol=1e-8, name="log-likelihood")
    assert fast.integrated_divergence.abs().max() > 0.1


def test_bad_input():
    with pytest.raises(ValueError, match="dim must be a positive integer, got 0"):
        VelocityMLP(0)
    with pytest.raises(ValueError, match="depth must be 1 or 2 hidden layers, got 3"):
        VelocityMLP(2, depth=3)
    with pytest.raises(ValueError, match="activation must be one of"):
        VelocityMLP(2, activation="relu")
    model = _model()
    with pytest.raises(ValueError, match=r"x must have shape \(B, 5\), got \(3, 4\)"):
        model(torch.randn(3, 4), 0.5)
    with pytest.raises(ValueError, match=r"t must be a scalar or have shape \(3,\)"):
        model(torch.randn(3, 5), torch.rand(2))
    with pytest.raises(ValueError, match="t must be finite"):
        model(torch.randn(3, 5), float("nan"))
