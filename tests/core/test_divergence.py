"""Exact and Hutchinson divergence against explicit Jacobians and closed-form variances."""

import pytest
import torch

from genmath.core.divergence import (
    _TUNED_CHOICES,
    _TUNING_SAMPLES,
    FieldWithDivergence,
    _exact_batched,
    _exact_loop,
    _field_key,
    _TunedExact,
    divergence,
    draw_probes,
)
from genmath.testing import assert_close, assert_mean_matches, assert_variance_matches


def _nonlinear_field(dim: int, seed: int = 0):
    """A field on (B, *event) with a non-symmetric Jacobian and a non-zero divergence."""
    gen = torch.Generator().manual_seed(seed)
    mixing = torch.randn(dim, dim, generator=gen) / dim**0.5
    shift = torch.randn(dim, generator=gen)
    weights = torch.randn(dim, generator=gen)

    def field(x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(x.shape[0], -1)
        out = torch.tanh(flat @ mixing.T + shift) + flat * torch.sin(flat @ weights)[:, None]
        return out.reshape(x.shape)

    return field


def _jacobian_traces(field, x: torch.Tensor) -> torch.Tensor:
    traces = []
    for row in x:
        jac = torch.autograd.functional.jacobian(lambda y: field(y[None])[0], row)
        traces.append(jac.reshape(row.numel(), row.numel()).trace())
    return torch.stack(traces)


@pytest.mark.parametrize("event", [(5,), (2, 3, 2)])
def test_exact_divergence_equals_trace_of_explicit_jacobian(event):
    dim = int(torch.tensor(event).prod())
    field = _nonlinear_field(dim)
    x = torch.randn(4, *event)
    expected = _jacobian_traces(field, x)
    assert expected.abs().min() > 1e-2  # a zero divergence would not test anything
    assert_close(divergence(field, x), expected, atol=1e-12, name="exact divergence")


def test_loop_and_batched_strategies_agree_including_chunking():
    field = _nonlinear_field(7)
    x = torch.randn(3, 7).requires_grad_(True)
    expected = _jacobian_traces(field, x.detach())
    y = field(x)
    assert_close(_exact_loop(y, x, False), expected, atol=1e-12, name="loop")
    for chunk in (1, 3, 7, 64):
        assert_close(_exact_batched(y, x, False, chunk), expected, atol=1e-12, name="batched")


def test_tuned_exact_divergence_settles_on_a_strategy_and_stays_exact():
    field = _nonlinear_field(6)
    x = torch.randn(4, 6).requires_grad_(True)
    expected = _jacobian_traces(field, x.detach())
    tuned = _TunedExact()
    for _ in range(2 * _TUNING_SAMPLES + 1):  # the timed evaluations, then the chosen one
        assert_close(tuned(field(x), x, False), expected, atol=1e-12, name="tuned")
    assert tuned.choice in ("loop", "batched")


def test_tuned_choice_is_remembered_for_the_same_kind_of_input():
    field = _nonlinear_field(6)
    x = torch.randn(4, 6).requires_grad_(True)
    key = ("test-field", tuple(x.shape), x.dtype, x.device, False)
    _TUNED_CHOICES.pop(key, None)
    first = _TunedExact(key)
    for _ in range(2 * _TUNING_SAMPLES):
        first(field(x), x, False)
    assert first.choice in ("loop", "batched")
    assert _TunedExact(key).choice == first.choice  # a later solve starts with the choice
    assert _TunedExact(("other", *key[1:])).choice is None



def test_field_key_tells_closures_over_different_fields_apart():
    # one wrapper written once, closing over a small analytic field or a network: the tuned
    # strategy may differ between them, so they must not share a remembered choice
    def wrap(model):
        return lambda y, t: model(y, t)

    small, wide = (lambda y, t: -y), torch.nn.Linear(3, 3)
    assert _field_key(wrap(small)) != _field_key(wrap(wide))
    same = wrap(small)
    assert _field_key(same) == _field_key(same)

    class Field:
        def velocity(self, y, t):
            return -y

    one, other = Field(), Field()
    assert _field_key(one.velocity) != _field_key(other.velocity)
    assert _field_key(one.velocity) == _field_key(one.velocity)
    assert _field_key(wide) == _field_key(torch.nn.Linear(3, 3))  # a module: its type

def test_exact_divergence_is_differentiable_wrt_parameters():
    # div of x -> tanh(theta * x @ A^T) is sum_i theta A_ii (1 - tanh^2); compare d/dtheta with FD.
    gen = torch.Generator().manual_seed(3)
    mixing = torch.randn(4, 4, generator=gen)
    x = torch.randn(6, 4, generator=gen)

    def total_divergence(theta):
        return divergence(lambda y: torch.tanh(theta * y @ mixing.T), x).sum()

    theta = torch.tensor(0.7, requires_grad=True)
    (grad,) = torch.autograd.grad(total_divergence(theta), theta)
    h = 1e-6
    with torch.no_grad():
        fd = (total_divergence(theta + h) - total_divergence(theta - h)) / (2 * h)
    assert_close(grad, fd, atol=1e-7, rtol=1e-7, name="d div / d theta")


def test_no_grad_gives_plain_tensor():
    field = _nonlinear_field(3)
    with torch.no_grad():
        div = divergence(field, torch.randn(2, 3))
    assert div.grad_fn is None and not div.requires_grad


def test_constant_field_has_zero_divergence():
    x = torch.randn(3, 4)
    assert_close(divergence(lambda y: torch.ones_like(y), x), torch.zeros(3), atol=0.0)


def _affine_case():
    jac = torch.tensor([[1.5, 2.0, -0.3], [-0.7, 0.4, 1.1], [0.2, -1.3, -0.6]])
    sym = (jac + jac.T) / 2
    return jac, sym


@pytest.mark.parametrize(
    ("noise", "variance"),
    [
        ("gaussian", lambda a: 2 * (a**2).sum()),
        ("rademacher", lambda a: 2 * ((a**2).sum() - (a.diagonal() ** 2).sum())),
    ],
)
@pytest.mark.parametrize("probes", [1, 3])
def test_hutchinson_unbiased_with_closed_form_variance(noise, variance, probes):
    jac, sym = _affine_case()
    shift = torch.tensor([0.3, -1.0, 2.0])
    n = 20_000  # one independent estimate per row: the field is affine, so x does not matter
    x = torch.randn(n, 3, generator=torch.Generator().manual_seed(5))
    gen = torch.Generator().manual_seed(11 + probes)
    estimates = divergence(
        lambda y: y @ jac.T + shift, x, "hutchinson", probes=probes, generator=gen, noise=noise
    )
    assert_mean_matches(estimates, torch.trace(jac), rtol=0.1, name=f"{noise} Hutchinson mean")
    # to 15 %: Gaussian and Rademacher probes' variances differ by a factor of 4 here
    assert_variance_matches(
        estimates, variance(sym) / probes, rtol=0.15, name=f"{noise} variance"
    )


def test_hutchinson_is_reproducible_with_a_generator():
    field = _nonlinear_field(4)
    x = torch.randn(5, 4)
    a = divergence(field, x, "hutchinson", generator=torch.Generator().manual_seed(0))
    b = divergence(field, x, "hutchinson", generator=torch.Generator().manual_seed(0))
    assert torch.equal(a, b)


def test_draw_probes_moments():
    z = draw_probes(torch.zeros(4, 2, 3), probes=2, generator=torch.Generator().manual_seed(0))
    assert z.shape == (2, 4, 2, 3) and set(z.unique().tolist()) == {-1.0, 1.0}
    g = draw_probes(torch.zeros(1, 1), 5, "gaussian", torch.Generator().manual_seed(0))
    assert g.dtype == torch.float64 and g.shape == (5, 1, 1)


class _HookedField:
    """x -> 2x, whose hook reports a deliberately different value so we can see it is used."""

    def __call__(self, x):
        return 2 * x

    def value_and_divergence(self, x):
        return 2 * x, torch.full((x.shape[0],), 123.0)


def test_structured_hook_is_used_for_exact_and_can_be_bypassed():
    field, x = _HookedField(), torch.randn(3, 4)
    assert isinstance(field, FieldWithDivergence)
    assert_close(divergence(field, x), torch.full((3,), 123.0), atol=0.0)
    assert_close(divergence(field, x, structured=False), torch.full((3,), 8.0), atol=1e-12)
    hutch = divergence(field, x, "hutchinson", generator=torch.Generator().manual_seed(0))
    assert_close(hutch, torch.full((3,), 8.0), atol=1e-12)  # 2 z^T z = 8 for Rademacher z


def test_bad_input():
    x = torch.randn(2, 3)
    with pytest.raises(ValueError, match="method must be one of"):
        divergence(lambda y: y, x, method="trace")
    with pytest.raises(ValueError, match="noise must be one of"):
        divergence(lambda y: y, x, "hutchinson", noise="uniform")
    with pytest.raises(ValueError, match="probes must be a positive integer, got 0"):
        divergence(lambda y: y, x, "hutchinson", probes=0)
    with pytest.raises(ValueError, match=r"shape \(2, 3\) \(that of x\), got \(2, 2\)"):
        divergence(lambda y: y[:, :2], x)
    with pytest.raises(ValueError, match="0-d tensor"):
        divergence(lambda y: y, torch.tensor(1.0))
    with pytest.raises(ValueError, match=r"divergence of shape \(2,\)"):

        class _Bad(_HookedField):
            def value_and_divergence(self, x):
                return 2 * x, torch.zeros(5)

        divergence(_Bad(), x)
