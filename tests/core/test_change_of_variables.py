"""Bijections and flows against independent answers: autograd Jacobians (slogdet), scipy
densities, quadrature, closed-form Gaussian KL, and finite differences (gradcheck)."""

import math

import numpy as np
import pytest
import scipy.integrate
import scipy.stats
import torch
from torch.distributions import (
    AffineTransform,
    Independent,
    Laplace,
    MultivariateNormal,
    Normal,
    SigmoidTransform,
    TransformedDistribution,
)
from torch.func import functional_call

from genmath.core.change_of_variables import (
    ActNorm,
    Affine,
    AffineCoupling,
    Bijection,
    Compose,
    ElementwiseAffine,
    Flow,
    Inverse,
    Logit,
    MaskedAutoregressive,
    Planar,
    Sigmoid,
    as_transform,
    from_transform,
)
from genmath.testing import assert_close, assert_mean_matches

# ---------------------------------------------------------------------------- factories
# Each factory returns (bijection, x, context) with parameters drawn so that log|det J| is
# far from 0 and, for the non-linear maps, varies with x (so evaluating it at the wrong
# point, or with the wrong sign in the inverse, is caught).


def _gen(seed):
    return torch.Generator().manual_seed(seed)


def _randomize(module, generator, scale=0.6):
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=generator) * scale)
    return module


def _affine_positive():
    g = _gen(1)
    b = _randomize(Affine(4, permutation=[2, 0, 3, 1]), g, 0.5)
    with torch.no_grad():
        b.diag.copy_(torch.tensor([0.6, 0.3, 0.5, 0.4]))
    return b, torch.randn(5, 4, generator=g), None


def _affine_signed():
    g = _gen(2)
    b = _randomize(Affine(4, permutation=[3, 1, 0, 2], diagonal="signed"), g, 0.5)
    with torch.no_grad():
        b.diag.copy_(torch.tensor([1.8, -0.7, 2.5, -1.6]))
    return b, torch.randn(5, 4, generator=g), None


def _elementwise():
    b = ElementwiseAffine(4, log_scale=[0.5, -0.2, 0.9, 0.4], shift=[1.0, -2.0, 0.3, 0.0])
    return b, torch.randn(5, 4, generator=_gen(3)), None


def _elementwise_image():
    b = ElementwiseAffine(
        (2, 1, 1), event_dim=3, log_scale=[[[0.7]], [[-0.1]]], shift=[[[1.0]], [[-1.0]]]
    )
    return b, torch.randn(3, 2, 3, 2, generator=_gen(4)), None


def _actnorm():
    g = _gen(5)
    b = ActNorm(3)
    b.forward(torch.randn(64, 3, generator=g) * torch.tensor([3.0, 0.5, 2.0]) + 1.0)
    return b, torch.randn(5, 3, generator=g), None


def _sigmoid():
    return Sigmoid(), torch.randn(5, 3, generator=_gen(6)) * 2, None


def _logit():
    return Logit(), torch.rand(5, 3, generator=_gen(7)) * 0.9 + 0.05, None


def _coupling_split():
    g = _gen(8)
    b = _randomize(AffineCoupling(4, split=2, hidden=(16,), activation=torch.nn.Tanh), g)
    return b, torch.randn(5, 4, generator=g), None


def _coupling_mask_context():
    g = _gen(9)
    mask = torch.tensor([False, True, False, True, True])
    b = _randomize(
        AffineCoupling(5, mask=mask, context_features=2, hidden=(16,), activation=torch.nn.Tanh), g
    )
    return b, torch.randn(5, 5, generator=g), torch.randn(5, 2, generator=g)


def _maf():
    g = _gen(10)
    b = _randomize(
        MaskedAutoregressive(4, (16, 16), ordering=[2, 0, 3, 1], activation=torch.nn.Tanh), g, 0.4
    )
    return b, torch.randn(5, 4, generator=g), None


def _maf_context():
    g = _gen(11)
    b = MaskedAutoregressive(3, (12,), context_features=2, activation=torch.nn.Tanh)
    b = _randomize(b, g, 0.5)
    return b, torch.randn(5, 3, generator=g), torch.randn(5, 2, generator=g)


def _iaf():
    b, x, c = _maf()
    return Inverse(b), x, c


def _planar():
    b = Planar(3)
    with torch.no_grad():
        # w.u = -2.5 < -1: only the reparameterization makes this map invertible
        b.w.copy_(torch.tensor([1.2, -0.8, 0.5]))
        b.u.copy_(torch.tensor([-1.5, 0.9, 0.2]))
        b.b.fill_(0.3)
    return b, torch.randn(5, 3, generator=_gen(12)), None


def _planar_expanding():
    b = Planar(3)
    with torch.no_grad():
        b.w.copy_(torch.tensor([0.9, 1.1, -0.4]))
        b.u.copy_(torch.tensor([1.7, 1.3, -0.6]))
        b.b.fill_(-0.2)
    return b, torch.randn(5, 3, generator=_gen(13)) * 0.5, None


def _compose():
    g = _gen(14)
    layers = [
        _affine_signed()[0],
        _planar()[0].__class__(4),
        _randomize(
            AffineCoupling(
                4,
                mask=torch.tensor([True, False, True, False]),
                hidden=(8,),
                activation=torch.nn.Tanh,
            ),
            g,
        ),
        ElementwiseAffine(4, log_scale=[0.3, 0.2, -0.4, 0.8]),
    ]
    with torch.no_grad():
        layers[1].w.copy_(torch.tensor([0.7, -0.3, 0.4, 1.0]))
        layers[1].u.copy_(torch.tensor([0.5, 0.8, -0.2, 0.3]))
    return Compose(*layers), torch.randn(5, 4, generator=g), None


def _from_torch_transform():
    layers = [
        from_transform(AffineTransform(torch.tensor([0.5, -1.0]), torch.tensor([2.5, 0.4]))),
        from_transform(SigmoidTransform()),
    ]
    return Compose(*layers), torch.randn(5, 2, generator=_gen(15)), None


FACTORIES = {
    "affine_positive": _affine_positive,
    "affine_signed": _affine_signed,
    "elementwise": _elementwise,
    "elementwise_image": _elementwise_image,
    "actnorm": _actnorm,
    "sigmoid": _sigmoid,
    "logit": _logit,
    "coupling_split": _coupling_split,
    "coupling_mask_context": _coupling_mask_context,
    "maf": _maf,
    "maf_context": _maf_context,
    "iaf": _iaf,
    "planar": _planar,
    "planar_expanding": _planar_expanding,
    "compose": _compose,
    "from_torch_transform": _from_torch_transform,
}
ALL = pytest.mark.parametrize("name", list(FACTORIES))


def _event_ndim(bij):
    return bij.event_dim


def _jacobian_logdets(fn, x, context, event_dim):
    """log|det| of the autograd Jacobian of fn for each sample, the event flattened."""
    out = []
    for i in range(x.shape[0]):
        event = x.shape[x.ndim - event_dim :]
        ctx = None if context is None else context[i : i + 1]

        def single(v, ctx=ctx, event=event):
            return fn(v.reshape(1, *event), ctx)[0].reshape(-1)

        jac = torch.autograd.functional.jacobian(single, x[i].reshape(-1))
        sign, logabsdet = torch.linalg.slogdet(jac)
        assert sign != 0
        out.append(logabsdet)
    return torch.stack(out)


# ---------------------------------------------------------------------------- every bijection


@ALL
def test_round_trip(name):
    bij, x, ctx = FACTORIES[name]()
    y, ld = bij.forward(x, ctx)
    x_back, ld_back = bij.inverse(y, ctx)
    assert ld.shape == x.shape[: x.ndim - bij.event_dim]
    assert_close(x_back, x, atol=1e-10, name="inverse(forward(x))")
    assert_close(ld + ld_back, torch.zeros_like(ld), atol=1e-10, name="sum of log-dets")
    y_other = bij.forward(x.flip(0), ctx)[0]  # a point of the codomain
    y2, _ = bij.forward(bij.inverse(y_other, ctx)[0], ctx)
    assert_close(y2, y_other, atol=1e-10, name="forward(inverse(y))")


@ALL
def test_logdet_equals_slogdet_of_autograd_jacobian(name):
    bij, x, ctx = FACTORIES[name]()
    y, ld = bij.forward(x, ctx)
    # the test is only meaningful if log|det J| is far from 0
    assert ld.abs().mean() > 0.3, f"test case too weak: log|det J| = {ld}"
    expected = _jacobian_logdets(bij.forward, x, ctx, bij.event_dim)
    assert_close(ld, expected, atol=1e-10, name="forward log|det J|")
    # inverse direction, at the images of other samples (y_test[i] is not y[i])
    y_test = bij.forward(x.flip(0), ctx)[0].detach()
    _, ld_inv = bij.inverse(y_test, ctx)
    expected_inv = _jacobian_logdets(bij.inverse, y_test, ctx, bij.event_dim)
    assert_close(ld_inv, expected_inv, atol=1e-10, name="inverse log|det J^-1|")


@ALL
def test_gradients_reach_every_parameter(name):
    bij, x, ctx = FACTORIES[name]()
    params = dict(bij.named_parameters())
    if not params:
        pytest.skip("no parameters")
    y, ld = bij.forward(x, ctx)
    x_back, ld_inv = bij.inverse(bij.forward(x.flip(0), ctx)[0].detach(), ctx)
    loss = (y**2).sum() + ld.sum() + (x_back**2).sum() + ld_inv.sum()
    loss.backward()
    for pname, p in params.items():
        assert p.grad is not None and p.grad.abs().max() > 0, f"no gradient reaches {pname}"


@ALL
def test_gradcheck_inputs_and_parameters(name):
    bij, x, ctx = FACTORIES[name]()
    x = x[:2].clone().requires_grad_(True)
    ctx = None if ctx is None else ctx[:2].clone().requires_grad_(True)
    names = [n for n, _ in bij.named_parameters()]
    values = tuple(p.detach().clone().requires_grad_(True) for _, p in bij.named_parameters())

    def forward_fn(inp, c, *ps):
        return functional_call(bij, dict(zip(names, ps, strict=True)), (inp,), {"context": c})

    class _Inv(torch.nn.Module):
        def __init__(self, b):
            super().__init__()
            self.b = b

        def forward(self, inp, context=None):
            return self.b.inverse(inp, context)

    inv = _Inv(bij)
    inv_names = [f"b.{n}" for n in names]

    def inverse_fn(inp, c, *ps):
        return functional_call(inv, dict(zip(inv_names, ps, strict=True)), (inp,), {"context": c})

    assert torch.autograd.gradcheck(forward_fn, (x, ctx, *values))
    y = bij.forward(x.detach(), None if ctx is None else ctx.detach())[0]
    y = y.clone().requires_grad_(True)
    assert torch.autograd.gradcheck(inverse_fn, (y, ctx, *values))


# ---------------------------------------------------------------------------- specific maps


def test_maf_jacobian_is_triangular_in_its_ordering():
    bij, x, _ = _maf()
    order = bij.ordering
    jac = torch.autograd.functional.jacobian(lambda v: bij(v[None])[0][0], x[0])
    permuted = jac[order][:, order]
    assert_close(torch.triu(permuted, 1), torch.zeros(4, 4), atol=0, name="upper part")
    assert torch.tril(permuted, -1).abs().max() > 1e-2  # dependencies are really there
    # in natural order the Jacobian is not triangular: the ordering matters
    assert torch.triu(jac, 1).abs().max() > 1e-2


def test_maf_density_direction_is_one_pass_and_sampling_is_sequential():
    bij, x, _ = _maf()
    calls = []
    bij.network.register_forward_hook(lambda *_: calls.append(1))
    y, _ = bij.forward(x)
    assert len(calls) == 1
    calls.clear()
    bij.inverse(y)
    assert len(calls) == 4
    calls.clear()
    Inverse(bij).forward(x)  # IAF: its density direction is the sequential one
    assert len(calls) == 4


def test_planar_reparameterization_keeps_the_map_invertible():
    bij, _, _ = _planar()
    w_u = float((bij.w @ bij.u).detach())
    assert w_u < -1
    w_u_hat = float((bij.w @ bij.u_hat()).detach())
    expected = -1 + math.log1p(math.exp(w_u))
    assert abs(w_u_hat - expected) < 1e-12
    # monotone along w for any input: the Jacobian determinant never changes sign
    z = torch.linspace(-6, 6, 201)[:, None] * bij.w / bij.w.norm()
    _, ld = bij.forward(z)
    assert torch.isfinite(ld).all()


def test_actnorm_initialises_from_the_first_batch():
    x = torch.randn(200, 2, 3, generator=_gen(20)) * torch.tensor([[2.0], [0.3]]) + 5.0
    bij = ActNorm((2, 1), event_dim=2)
    y, _ = bij.forward(x)
    assert bool(bij.initialized)
    # per channel over batch and the broadcast dimension: mean 0, biased variance 1
    assert_close(y.mean(dim=(0, 2)), torch.zeros(2), atol=1e-12, name="mean")
    assert_close(y.var(dim=(0, 2), unbiased=False), torch.ones(2), atol=1e-12, name="var")
    # later batches do not re-initialise
    before = bij.shift.detach().clone()
    bij.forward(x * 2)
    assert torch.equal(before, bij.shift)


def test_affine_from_matrix_reproduces_the_matrix():
    W = torch.tensor([[0.0, 2.0, 1.0], [3.0, -1.0, 0.5], [1.0, 1.0, -4.0]])  # needs pivoting
    bias = torch.tensor([1.0, -2.0, 0.5])
    bij = Affine.from_matrix(W, bias)
    x = torch.randn(6, 3, generator=_gen(21))
    y, ld = bij.forward(x)
    assert_close(y, x @ W.T + bias, atol=1e-12, name="W x + b")
    assert_close(ld, torch.full((6,), math.log(abs(np.linalg.det(W.numpy())))), atol=1e-12)


# ---------------------------------------------------------------------------- flows as densities


def _standard_normal(d):
    return Independent(Normal(torch.zeros(d), torch.ones(d)), 1)


def test_affine_flow_matches_scipy_multivariate_normal():
    W = torch.tensor([[2.0, 0.7, -0.3], [0.1, 0.5, 0.9], [-1.2, 0.4, 1.5]])
    bias = torch.tensor([0.5, -1.0, 2.0])
    flow = Flow(Affine.from_matrix(W, bias), MultivariateNormal(torch.zeros(3), torch.eye(3)))
    x = torch.randn(10, 3, generator=_gen(22)) * 2
    Wn, bn = W.numpy(), bias.numpy()
    # z = W x + b ~ N(0, I)  <=>  x ~ N(-W^{-1} b, (W^T W)^{-1})
    expected = scipy.stats.multivariate_normal(
        mean=-np.linalg.solve(Wn, bn), cov=np.linalg.inv(Wn.T @ Wn)
    ).logpdf(x.numpy())
    assert_close(flow.log_prob(x), torch.from_numpy(expected), atol=1e-10, name="log_prob")


def test_elementwise_flow_with_laplace_base_matches_scipy():
    log_scale = torch.tensor([0.8, -0.5, 0.3])
    shift = torch.tensor([1.0, 0.2, -2.0])
    base = Independent(Laplace(torch.zeros(3), torch.ones(3)), 1)
    flow = Flow(ElementwiseAffine(3, log_scale=log_scale, shift=shift), base)
    x = torch.randn(10, 3, generator=_gen(23)) * 3
    # z = e^s x + t ~ Laplace(0, 1)  <=>  x ~ Laplace(-t e^{-s}, e^{-s})
    scale = np.exp(-log_scale.numpy())
    expected = (
        scipy.stats.laplace(loc=-shift.numpy() * scale, scale=scale).logpdf(x.numpy()).sum(-1)
    )
    assert_close(flow.log_prob(x), torch.from_numpy(expected), atol=1e-12, name="log_prob")


def test_logit_flow_matches_closed_form_logit_normal_and_integrates_to_one():
    a, c = 1.7, -0.4
    flow = Flow(
        Compose(Logit(), ElementwiseAffine(1, log_scale=[math.log(a)], shift=[c])),
        _standard_normal(1),
    )
    x = torch.tensor([[0.03], [0.2], [0.5], [0.77], [0.99]])
    u = np.log(x.numpy() / (1 - x.numpy()))
    # z = a logit(x) + c ~ N(0, 1): p(x) = N(a logit x + c) a / (x (1 - x))
    expected = scipy.stats.norm.logpdf(a * u + c) + np.log(a / (x.numpy() * (1 - x.numpy())))
    assert_close(flow.log_prob(x), torch.from_numpy(expected[:, 0]), atol=1e-12)
    total, _ = scipy.integrate.quad(
        lambda v: math.exp(flow.log_prob(torch.tensor([[v]])).item()), 0, 1, epsabs=1e-11, limit=200
    )
    assert abs(total - 1) < 1e-8


def test_one_dimensional_flow_integrates_to_one():
    planar = Planar(1)
    with torch.no_grad():
        planar.w.fill_(1.3)
        planar.u.fill_(2.0)
        planar.b.fill_(0.4)
    maf = _randomize(MaskedAutoregressive(1, (4,)), _gen(24))
    flow = Flow(
        Compose(ElementwiseAffine(1, log_scale=[0.7], shift=[-0.4]), planar, maf),
        _standard_normal(1),
    )

    def density(v):
        return math.exp(flow.log_prob(torch.tensor([[v]])).item())

    total, _ = scipy.integrate.quad(density, -np.inf, np.inf, epsabs=1e-11, limit=200)
    assert abs(total - 1) < 1e-8


def test_two_dimensional_flow_integrates_to_one():
    g = _gen(25)
    # moderate parameters keep the tails inside the grid
    coupling = _randomize(AffineCoupling(2, split=1, hidden=(8,), activation=torch.nn.Tanh), g, 0.3)
    maf = _randomize(
        MaskedAutoregressive(2, (8,), ordering=[1, 0], activation=torch.nn.Tanh), g, 0.3
    )
    planar = Planar(2)
    with torch.no_grad():
        planar.w.copy_(torch.tensor([1.0, -0.5]))
        planar.u.copy_(torch.tensor([0.8, 0.6]))
    affine = Affine.from_matrix(torch.tensor([[2.0, 0.4], [-0.2, 1.6]]), torch.tensor([0.3, -0.1]))
    flow = Flow(Compose(coupling, maf, planar, affine), _standard_normal(2))
    n, half = 801, 12.0
    grid = torch.linspace(-half, half, n)
    xx, yy = torch.meshgrid(grid, grid, indexing="ij")
    with torch.no_grad():
        density = flow.log_prob(torch.stack([xx, yy], -1).reshape(-1, 2)).exp().reshape(n, n)
    total = torch.trapezoid(torch.trapezoid(density, grid, dim=1), grid).item()
    assert abs(total - 1) < 1e-6


def test_flow_samples_have_the_exact_mean():
    W = torch.tensor([[1.5, -0.6], [0.4, 0.7]])
    bias = torch.tensor([2.0, -1.0])
    flow = Flow(Affine.from_matrix(W, bias), _standard_normal(2))
    x = flow.sample((4000,), generator=_gen(26))
    assert x.shape == (4000, 2)
    assert_mean_matches(x, -torch.linalg.solve(W, bias), name="flow sample mean")


def test_monte_carlo_kl_of_a_flow_matches_the_gaussian_closed_form():
    # a Flow is used as a plain torch Distribution: KL(q || N(0, I)) = E_q[log q - log p]
    W = torch.tensor([[1.5, -0.6], [0.4, 0.7]])
    bias = torch.tensor([0.5, -1.0])
    q = Flow(Affine.from_matrix(W, bias), _standard_normal(2))
    p = MultivariateNormal(torch.zeros(2), torch.eye(2))
    x = q.sample((5000,), generator=_gen(27))
    samples = q.log_prob(x) - p.log_prob(x)
    Wn, bn = W.numpy(), bias.numpy()
    mean, cov = -np.linalg.solve(Wn, bn), np.linalg.inv(Wn.T @ Wn)
    exact = 0.5 * (np.trace(cov) + mean @ mean - 2 - np.log(np.linalg.det(cov)))
    assert exact > 0.5
    # to 15 %: a log-det of the wrong sign moves the KL by 2 log|det W| = 0.51
    assert_mean_matches(samples, torch.tensor(exact), rtol=0.15, name="Monte-Carlo KL")


def test_sample_and_log_prob_agree_and_rsample_is_differentiable():
    bij, _, _ = _compose()
    flow = Flow(bij, _standard_normal(4))
    x, log_prob = flow.rsample_and_log_prob((7,), generator=_gen(28))
    assert_close(log_prob, flow.log_prob(x), atol=1e-10)
    x.sum().backward()
    assert all(p.grad is not None for p in bij.parameters())


def test_generator_makes_sampling_reproducible_without_touching_the_global_rng():
    flow = Flow(_maf()[0], _standard_normal(4))
    state = torch.get_rng_state()
    a = flow.sample((3,), generator=_gen(29))
    b = flow.sample((3,), generator=_gen(29))
    assert torch.equal(a, b)
    assert torch.equal(state, torch.get_rng_state())


def test_conditional_flow_passes_its_context():
    bij, x, ctx = _maf_context()
    flow = Flow(bij, _standard_normal(3), context=ctx)
    z, ld = bij.forward(x, ctx)
    assert_close(flow.log_prob(x), _standard_normal(3).log_prob(z) + ld, atol=1e-12)
    assert flow.sample(generator=_gen(30)).shape == (5, 3)


# ---------------------------------------------------------------------------- torch adapters


def test_transform_adapter_gives_the_same_log_prob_as_flow():
    bij, x, _ = _compose()
    base = _standard_normal(4)
    flow = Flow(bij, base)
    torch_dist = TransformedDistribution(base, [as_transform(Inverse(bij))])
    assert_close(torch_dist.log_prob(x), flow.log_prob(x), atol=1e-10)
    assert torch_dist.sample((3,)).shape == (3, 4)


def test_torch_transform_as_bijection_matches_scipy():
    loc, scale = torch.tensor([0.5, -1.0]), torch.tensor([2.5, 0.4])
    transform = AffineTransform(loc, scale)
    flow = Flow(from_transform(transform), _standard_normal(2))
    x = torch.randn(6, 2, generator=_gen(31))
    # z = loc + scale x ~ N(0, 1)  <=>  x ~ N(-loc / scale, 1 / scale)
    expected = (
        scipy.stats.norm(-loc.numpy() / scale.numpy(), 1 / scale.numpy()).logpdf(x.numpy()).sum(-1)
    )
    assert_close(flow.log_prob(x), torch.from_numpy(expected), atol=1e-12)
    torch_dist = TransformedDistribution(_standard_normal(2), [transform.inv])
    assert_close(torch_dist.log_prob(x), flow.log_prob(x), atol=1e-12)


# ---------------------------------------------------------------------------- bad input


def test_singular_affine_matrix_is_refused():
    with pytest.raises(ValueError, match="singular"):
        Affine.from_matrix(torch.tensor([[1.0, 2.0], [2.0, 4.0]]))


def test_signed_affine_with_zero_diagonal_is_refused():
    bij = Affine(3, diagonal="signed")
    with torch.no_grad():
        bij.diag[1] = 0.0
    with pytest.raises(ValueError, match="non-singular"):
        bij.forward(torch.randn(2, 3))


def test_shape_mismatches_are_refused():
    with pytest.raises(ValueError, match=r"expected x of shape \(\*batch, 3\), got shape \(5, 4\)"):
        Affine(3).forward(torch.randn(5, 4))
    with pytest.raises(ValueError, match="mask expected shape"):
        AffineCoupling(4, mask=torch.tensor([True, False]))
    with pytest.raises(ValueError, match="both a conditioning part"):
        AffineCoupling(2, mask=torch.tensor([True, True]))
    with pytest.raises(ValueError, match="ordering must be a permutation"):
        MaskedAutoregressive(3, ordering=[0, 0, 1])
    with pytest.raises(ValueError, match="expected a context"):
        MaskedAutoregressive(3, context_features=2).forward(torch.randn(4, 3))
    with pytest.raises(ValueError, match="broadcast"):
        ElementwiseAffine((2, 1, 1), event_dim=3).forward(torch.randn(4, 3, 5, 5))
    flow = Flow(Affine(3), _standard_normal(3))
    with pytest.raises(ValueError, match="expected values of shape"):
        flow.log_prob(torch.randn(4, 2))
    with pytest.raises(ValueError, match="at least one Bijection"):
        Compose()


def test_non_finite_log_determinants_are_refused():
    overflowing = Affine(2)
    with torch.no_grad():
        overflowing.diag.fill_(1e308)  # log|det W| = 2e308 overflows
    with pytest.raises(ValueError, match="finite log"):
        overflowing.forward(torch.randn(3, 2))
    with pytest.raises(ValueError, match=r"open interval \(0, 1\)"):
        Logit().forward(torch.tensor([[0.0, 0.5]]))
    with pytest.raises(ValueError, match=r"open interval \(0, 1\)"):
        Logit().forward(torch.tensor([[1.5, 0.5]]))
    with pytest.raises(ValueError, match="finite log"):
        ElementwiseAffine(2, log_scale=[math.inf, 0.0]).forward(torch.randn(3, 2))


def test_actnorm_refuses_a_constant_batch():
    with pytest.raises(ValueError, match="non-zero spread"):
        ActNorm(2).forward(torch.ones(5, 2))


def test_public_classes_are_bijections():
    for name in FACTORIES:
        assert isinstance(FACTORIES[name]()[0], Bijection)


# ---------------------------------------------------------------------------- derivations

FLOW_IDS = [
    "D-flow-coupling-logdet",
    "D-flow-maf-logdet",
    "D-flow-planar",
    "D-flow-lu-logdet",
    "D-flow-sigmoid-logdet",
    "C-flow-coupling-logdet",
    "C-flow-maf-logdet",
    "C-flow-planar",
    "C-flow-lu-logdet",
    "C-flow-sigmoid-logdet",
]


@pytest.mark.parametrize("item_id", FLOW_IDS)
def test_flow_derivations_and_checks_verify(item_id):
    from genmath.derivations import get

    result = get(item_id).verify()
    assert result.ok, [s for s in result.steps if not s.ok]


def test_affine_from_a_float64_matrix_keeps_float64_precision_under_a_float32_default():
    matrix = torch.tensor([[2.0, 0.3, -0.7], [0.1, -1.5, 0.2], [0.4, 0.9, 3.1]], dtype=torch.float64)
    matrix = matrix + 1e-9 * torch.arange(9, dtype=torch.float64).reshape(3, 3)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float32)
    try:
        affine = Affine.from_matrix(matrix)
    finally:
        torch.set_default_dtype(previous)
    x = torch.eye(3, dtype=torch.float64)
    y, logdet = affine(x)
    assert y.dtype == torch.float64
    torch.testing.assert_close(y, x @ matrix.T, atol=1e-14, rtol=0)
    torch.testing.assert_close(logdet, torch.linalg.slogdet(matrix)[1].expand(3), atol=1e-14, rtol=0)
