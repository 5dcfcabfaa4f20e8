"""Flow families: round trips, log-dets against slogdet of the autograd Jacobian, gradcheck,
2-D densities that integrate to 1, an exact affine flow, and Glow's 1x1 convolution."""

import math

import pytest
import torch
from scipy.stats import multivariate_normal

from genmath.core.change_of_variables import Affine
from genmath.families.flows import (
    IAF,
    MAF,
    NSF,
    ChannelCoupling,
    FlowModel,
    Glow,
    GlowStep,
    InvertibleConv1x1,
    PlanarFlow,
    RealNVP,
)


def _randomize(module, generator, scale=0.25):
    """Non-trivial parameters: every weight away from its (often identity) initialisation."""
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(scale * torch.randn(p.shape, generator=generator, dtype=p.dtype))
    for m in module.modules():  # ActNorm: keep the random parameters, skip data init
        if hasattr(m, "initialized"):
            m.initialized.fill_(True)
    return module


def _jacobian_logdet(fn, x):
    """log|det| of the autograd Jacobian of fn at each sample (flattened event)."""
    out = []
    for xi in x:
        jac = torch.autograd.functional.jacobian(lambda v: fn(v[None])[0], xi)
        d = xi.numel()
        out.append(torch.linalg.slogdet(jac.reshape(d, d)).logabsdet)
    return torch.stack(out)


def _vector_models(generator):
    return {
        "realnvp": RealNVP(3, 4, (16,), scale_clamp=2.0),
        "realnvp_actnorm": RealNVP(3, 2, (16,), actnorm=True, scale_clamp=2.0),
        "maf": MAF(3, 3, (16, 16)),
        "iaf": IAF(3, 3, (16, 16)),
        "planar_sample": PlanarFlow(3, 3, generator=generator),
        "planar_density": PlanarFlow(3, 3, explicit="density", generator=generator),
        "nsf": NSF(3, 3, (16,), bins=6, bound=3.0),
    }


@pytest.mark.parametrize(
    "name", ["realnvp", "realnvp_actnorm", "maf", "iaf", "planar_sample", "planar_density", "nsf"]
)
def test_vector_flow_round_trip_and_logdet(name, generator):
    model = _randomize(_vector_models(generator)[name], generator)
    if name.startswith("planar"):  # keep w^T u away from -1 so the inverse is well conditioned
        with torch.no_grad():
            for m in model.modules():
                if hasattr(m, "u_hat"):
                    m.w.mul_(2.0)
    f = model.transform
    x = 1.5 * torch.randn(5, 3, generator=generator)
    z, logdet = f.forward(x)
    x_back, logdet_inv = f.inverse(z)
    torch.testing.assert_close(x_back, x, atol=1e-9, rtol=0)
    torch.testing.assert_close(logdet_inv, -logdet, atol=1e-9, rtol=0)
    assert logdet.abs().min() > 1e-2  # a test of the log-det, not of zero
    torch.testing.assert_close(
        logdet, _jacobian_logdet(lambda v: f.forward(v)[0], x), atol=1e-9, rtol=0
    )
    torch.testing.assert_close(
        logdet_inv, _jacobian_logdet(lambda v: f.inverse(v)[0], z), atol=1e-8, rtol=0
    )


@pytest.mark.parametrize("name", ["realnvp", "maf", "iaf", "planar_density", "nsf"])
def test_vector_flow_gradcheck(name, generator):
    model = _randomize(_vector_models(generator)[name], generator)
    x = torch.randn(2, 3, generator=generator, requires_grad=True)
    assert torch.autograd.gradcheck(lambda v: model.log_prob(v), (x,))


@pytest.mark.parametrize(
    "model_factory",
    [
        lambda g: RealNVP(2, 4, (16,)),
        lambda g: MAF(2, 3, (16,), scale_clamp=1.0),
        lambda g: IAF(2, 2, (16,), scale_clamp=1.0),
        lambda g: PlanarFlow(2, 3, explicit="density", generator=g),
        lambda g: NSF(2, 3, (16,), bins=6, bound=3.0),
    ],
)
def test_density_integrates_to_one_in_2d(model_factory, generator):
    model = _randomize(model_factory(generator), generator, scale=0.3)
    n, half = 500, 12.0
    axis = torch.linspace(-half, half, n)
    grid = torch.stack(torch.meshgrid(axis, axis, indexing="xy"), -1).reshape(-1, 2)
    with torch.no_grad():
        density = model.log_prob(grid).exp().reshape(n, n)
    mass = torch.trapezoid(torch.trapezoid(density, axis, dim=1), axis)
    assert abs(float(mass) - 1) < 2e-3


def test_affine_flow_is_exactly_the_gaussian():
    # x = A z + b, z ~ N(0, I): FlowModel of the data-to-noise map z = A^{-1}(x - b)
    a_matrix = torch.tensor([[2.0, 0.0, 0.0], [1.5, 0.5, 0.0], [-1.0, 3.0, 0.7]])
    b = torch.tensor([1.0, -2.0, 0.5])
    inv = torch.linalg.inv(a_matrix)
    model = FlowModel(Affine.from_matrix(inv, -inv @ b), (3,))
    x = torch.randn(7, 3) * 3
    expected = multivariate_normal(b.numpy(), (a_matrix @ a_matrix.T).numpy()).logpdf(x.numpy())
    torch.testing.assert_close(model.log_prob(x), torch.as_tensor(expected), atol=1e-10, rtol=1e-12)


def test_conv1x1_logdet_is_hw_log_det_w(generator):
    kernel = torch.randn(3, 3, generator=generator) * 2.0
    conv = InvertibleConv1x1.from_matrix(kernel)
    x = torch.randn(2, 3, 4, 5, generator=generator)
    y, logdet = conv(x)
    expected = 4 * 5 * math.log(abs(float(torch.det(kernel))))
    torch.testing.assert_close(logdet, torch.full((2,), expected), atol=1e-12, rtol=0)
    # the map itself is the per-pixel matrix product
    torch.testing.assert_close(y, torch.einsum("ij,bjhw->bihw", kernel, x), atol=1e-12, rtol=0)


def test_singular_conv1x1_raises():
    singular = torch.tensor([[1.0, 2.0, 3.0], [2.0, 4.0, 6.0], [0.0, 1.0, 1.0]])
    with pytest.raises(ValueError, match="singular"):
        InvertibleConv1x1.from_matrix(singular)
    with pytest.raises(ValueError, match=r"shape \(C, C\)"):
        InvertibleConv1x1(3, matrix=torch.eye(2))


@pytest.mark.parametrize(
    "factory",
    [
        lambda g: InvertibleConv1x1(3, generator=g),
        lambda g: ChannelCoupling(3, 8),
        lambda g: GlowStep(3, 8, generator=g),
    ],
)
def test_glow_layers_round_trip_logdet_gradcheck(factory, generator):
    layer = _randomize(factory(generator), generator, scale=0.4)
    x = torch.randn(2, 3, 2, 2, generator=generator)
    y, logdet = layer(x)
    x_back, logdet_inv = layer.inverse(y)
    torch.testing.assert_close(x_back, x, atol=1e-10, rtol=0)
    torch.testing.assert_close(logdet_inv, -logdet, atol=1e-10, rtol=0)
    assert logdet.abs().min() > 1e-2
    torch.testing.assert_close(
        logdet, _jacobian_logdet(lambda v: layer(v)[0], x), atol=1e-9, rtol=0
    )
    torch.testing.assert_close(
        logdet_inv, _jacobian_logdet(lambda v: layer.inverse(v)[0], y), atol=1e-9, rtol=0
    )
    xg = x[:1].clone().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda v: layer(v)[1], (xg,))


def test_glow_model_shapes_and_actnorm_initialisation(generator):
    model = Glow((2, 3, 3), steps=2, hidden=8, generator=generator)
    x = torch.randn(64, 2, 3, 3, generator=generator) * 3 + 1
    lp = model.log_prob(x)
    assert lp.shape == (64,) and torch.isfinite(lp).all()
    z, _ = model.transform.bijections[0].bijections[0](x)  # the first ActNorm, now initialised
    torch.testing.assert_close(z.mean(dim=(0, 2, 3)), torch.zeros(2), atol=1e-12, rtol=0)
    assert model.sample(3, generator=generator).shape == (3, 2, 3, 3)
    with pytest.raises(ValueError, match=r"\(C, H, W\)"):
        Glow((2, 3))


def test_maf_and_iaf_directions_match_their_stack(generator):
    # IAF is the inverse of the same MAF stack: its density is the MAF stack's, read backwards
    maf = _randomize(MAF(3, 2, (8,)), generator)
    iaf = IAF(3, 2, (8,))
    iaf.transform.bijection.load_state_dict(maf.transform.state_dict())
    x = torch.randn(4, 3, generator=generator)
    z, logdet = maf.transform(x)
    torch.testing.assert_close(iaf.transform.inverse(x)[0], z, atol=1e-12, rtol=0)
    torch.testing.assert_close(iaf.transform.inverse(x)[1], logdet, atol=1e-12, rtol=0)
    samples, log_q = iaf.sample_and_log_prob(6, generator=generator)
    torch.testing.assert_close(log_q, iaf.log_prob(samples), atol=1e-9, rtol=0)


def test_conditional_flows_use_and_check_context(generator):
    for model in (RealNVP(3, 2, (8,), context_features=2), MAF(3, 2, (8,), context_features=2)):
        _randomize(model, generator)
        x = torch.randn(4, 3, generator=generator)
        c1, c2 = torch.randn(4, 2, generator=generator), torch.randn(4, 2, generator=generator)
        assert not torch.allclose(model.log_prob(x, c1), model.log_prob(x, c2))
        assert model.sample(4, c1, generator=generator).shape == (4, 3)
        with pytest.raises(ValueError, match="context"):
            model.log_prob(x, torch.randn(4, 5))
        with pytest.raises(ValueError, match="context"):
            model.log_prob(x)
        with pytest.raises(ValueError, match=r"context for sampling n = 4"):
            model.sample(4, torch.randn(3, 2))


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="features must be an integer >= 2"):
        RealNVP(1)
    with pytest.raises(ValueError, match="explicit must be"):
        PlanarFlow(2, explicit="both")
    with pytest.raises(ValueError, match=r"x must have shape \(\*batch, 3\)"):
        RealNVP(3).log_prob(torch.randn(2, 4))


def test_float32_stays_float32():
    model = MAF(2, 2, (8,)).float()
    x = torch.randn(3, 2, dtype=torch.float32)
    assert model.log_prob(x).dtype == torch.float32
    assert model.sample(2).dtype == torch.float32


def test_spline_is_identity_outside_its_bound_and_checks_arguments(generator):
    model = _randomize(NSF(2, 2, (8,), bins=4, bound=2.0), generator)
    x = torch.tensor([[3.0, -2.5], [-7.0, 2.5]])  # both coordinates outside [-2, 2]
    z, logdet = model.transform(x)
    torch.testing.assert_close(z, x, atol=0, rtol=0)
    torch.testing.assert_close(logdet, torch.zeros(2), atol=0, rtol=0)
    with pytest.raises(ValueError, match="bins must be an integer >= 2"):
        NSF(2, bins=1)
    with pytest.raises(ValueError, match="bound must be a positive number"):
        NSF(2, bound=0.0)
