"""Tokenizers: straight-through identity, Lloyd–Max optimum, FSQ grid, VQ-VAE shapes."""

import math

import pytest
import torch
from torch import distributions as D
from torch import nn

from genmath.families.tokenizer import (
    FSQ,
    VQVAE,
    VectorQuantizer,
    lloyd_step,
    nearest_code,
    straight_through,
)
from genmath.testing import assert_close, assert_mean_matches


def test_straight_through_value_is_quantized_and_gradient_is_identity(generator):
    vq = VectorQuantizer(5, 3, generator=generator)
    z = torch.randn(2, 3, generator=generator)
    out = vq(z)
    assert torch.equal(out.quantized, vq.codebook[out.indices])
    jac = torch.autograd.functional.jacobian(lambda u: vq(u).quantized, z)
    assert torch.equal(jac.reshape(6, 6), torch.eye(6))


def test_straight_through_function_and_shape_check():
    z = torch.tensor([0.3, -1.2], requires_grad=True)
    q = torch.tensor([1.0, -1.0])
    out = straight_through(z, q)
    assert torch.equal(out, q)
    out.sum().backward()
    assert torch.equal(z.grad, torch.ones(2))
    with pytest.raises(ValueError, match="q must have the shape of z"):
        straight_through(z, torch.zeros(3))


def test_nearest_code_matches_brute_force(generator):
    codebook = torch.randn(7, 4, generator=generator)
    z = torch.randn(3, 5, 4, generator=generator)
    brute = ((z[..., None, :] - codebook) ** 2).sum(-1).argmin(-1)
    assert torch.equal(nearest_code(z, codebook), brute)


def test_vq_losses_and_codebook_gradient(generator):
    vq = VectorQuantizer(4, 2, beta=0.3, generator=generator)
    z = torch.randn(3, 6, 2, generator=generator)
    out = vq(z)
    codes = vq.codebook.detach()[out.indices]
    expected = ((z - codes) ** 2).sum((1, 2))
    assert_close(out.commitment_loss, expected, atol=1e-12)
    assert_close(out.codebook_loss, expected, atol=1e-12)
    assert_close(out.loss, 1.3 * expected, atol=1e-12)
    out.codebook_loss.sum().backward()
    # d/de_k sum ||z - e_k||^2 over the points assigned to k = 2 sum (e_k - z)
    grad = torch.zeros(4, 2)
    grad.index_add_(0, out.indices.flatten(), 2 * (codes - z).reshape(-1, 2))
    assert_close(vq.codebook.grad, grad, atol=1e-12)


def test_usage_and_perplexity_exact(generator):
    vq = VectorQuantizer(6, 2, generator=generator)
    every_code = vq.codebook.detach()[None]
    out = vq(every_code)
    assert_close(out.usage, torch.full((6,), 1 / 6), atol=1e-15)
    assert_close(out.perplexity, torch.tensor(6.0), atol=1e-12)
    one_code = vq.codebook.detach()[[2, 2, 2]][None]
    assert_close(vq(one_code).perplexity, torch.tensor(1.0), atol=1e-15)


def test_lloyd_on_standard_normal_converges_to_lloyd_max_optimum():
    # 20 independent data sets: each Lloyd fixed point is one sample of the estimator, so the
    # two-sided test sees all of its randomness (cells and boundary included)
    codes, distortions = [], []
    for seed in range(20):
        g = torch.Generator().manual_seed(seed)
        x = torch.randn(20000, 1, generator=g)
        codebook = torch.tensor([[-0.05], [0.4]])  # asymmetric start
        for _ in range(40):
            codebook = lloyd_step(codebook, x)
        assert_close(lloyd_step(codebook, x), codebook, atol=1e-12, name="fixed point")
        codes.append(codebook.flatten().sort().values)
        q = codebook[nearest_code(x, codebook)]
        distortions.append(((x - q) ** 2).mean())
    c = math.sqrt(2 / math.pi)
    assert_mean_matches(torch.stack(codes), torch.tensor([-c, c]), name="Lloyd-Max codes")
    assert_mean_matches(torch.stack(distortions), torch.tensor(1 - 2 / math.pi), name="distortion")


def test_lloyd_rejects_wrong_dimension():
    with pytest.raises(ValueError, match=r"\(B, \*positions, 2\)"):
        lloyd_step(torch.zeros(3, 2), torch.zeros(4, 3))


def test_ema_with_zero_decay_is_one_lloyd_step(generator):
    vq = VectorQuantizer(3, 2, ema=True, decay=0.0, generator=generator)
    z = torch.randn(50, 2, generator=generator)
    expected = lloyd_step(vq.codebook.clone(), z)
    vq.train()
    vq(z)
    assert_close(vq.codebook, expected, atol=1e-12)


def test_ema_converges_to_lloyd_fixed_point(generator):
    z = torch.randn(400, 1, generator=generator)
    vq = VectorQuantizer(2, 1, ema=True, decay=0.5, generator=generator)
    vq.train()
    for _ in range(200):
        vq(z)
    codebook = vq.codebook.clone()
    assert_close(lloyd_step(codebook, z), codebook, atol=1e-9)
    assert vq(z).codebook_loss.abs().max() == 0


def test_vq_rejects_mismatched_codebook_dimension(generator):
    vq = VectorQuantizer(8, 3, generator=generator)
    with pytest.raises(
        ValueError, match=r"z must have shape \(B, \*positions, 3\).*got shape \(4, 2\)"
    ):
        vq(torch.zeros(4, 2))
    with pytest.raises(ValueError, match="num_codes"):
        VectorQuantizer(0, 3)


@pytest.mark.parametrize("levels", [[8, 5, 5, 5], [2, 3], [4, 7, 6]])
def test_fsq_codebook_size_and_grid(levels):
    fsq = FSQ(levels)
    assert fsq.codebook_size == math.prod(levels)
    grid = fsq.implicit_codebook()
    assert grid.shape == (math.prod(levels), len(levels))
    assert torch.unique(grid, dim=0).shape[0] == math.prod(levels)
    assert torch.equal(fsq.codes_to_indices(grid), torch.arange(math.prod(levels)))
    for i, L in enumerate(levels):
        # L evenly spaced points of [-1, 1]: (j - h) / h, h = (L - 1) / 2
        half = (L - 1) / 2
        expected = (torch.arange(L, dtype=torch.float64) - half) / half
        assert torch.equal(torch.unique(grid[:, i]), expected)


def test_fsq_rounding_exact_and_every_code_reached():
    levels = [4, 5, 2]
    fsq = FSQ(levels)
    # a dense sweep over the range of tanh reaches every level of every coordinate
    sweep = torch.linspace(-6, 6, 301)
    z = torch.stack(torch.meshgrid(sweep, sweep[::7], sweep[::11], indexing="ij"), -1).reshape(
        -1, 3
    )
    out = fsq(z)
    half = torch.tensor([(L - 1) / 2 for L in levels], dtype=torch.float64)
    # nearest grid point of {-h, ..., h}, by brute force over the grid
    grid = [torch.arange(L, dtype=torch.float64) - (L - 1) / 2 for L in levels]
    bounded = fsq.bound(z)
    nearest = torch.stack(
        [g[(bounded[:, i, None] - g).abs().argmin(-1)] for i, g in enumerate(grid)], -1
    )
    assert torch.equal(out.codes * half, nearest)
    assert torch.equal(out.quantized, out.codes)
    assert torch.unique(out.indices).numel() == fsq.codebook_size
    assert torch.equal(fsq.indices_to_codes(out.indices), out.codes)


def test_fsq_straight_through_gradient_is_the_bound_derivative():
    fsq = FSQ([5, 2])
    z = torch.tensor([[0.3, -0.7]])
    jac = torch.autograd.functional.jacobian(lambda u: fsq(u).quantized, z).reshape(2, 2)
    # independent: d/dz [(1 - eps) h tanh z] / h = (1 - eps)(1 - tanh^2 z)
    expected = [(1 - fsq.eps) * (1 - math.tanh(zi) ** 2) for zi in z[0].tolist()]
    assert_close(jac, torch.diag(torch.tensor(expected)), atol=1e-12)


def test_fsq_bad_input():
    with pytest.raises(ValueError, match="levels"):
        FSQ([1, 3])
    with pytest.raises(ValueError, match=r"\(B, \*positions, 2\)"):
        FSQ([3, 3])(torch.zeros(2, 3))
    with pytest.raises(ValueError, match="indices"):
        FSQ([3, 3]).indices_to_codes(torch.tensor([9]))


class _Decoder(nn.Module):
    def __init__(self, shape):
        super().__init__()
        self.shape = shape
        self.linear = nn.Linear(2, math.prod(shape))

    def forward(self, z):
        loc = self.linear(z.reshape(z.shape[0], -1)[:, :2]).reshape(z.shape[0], *self.shape)
        return D.Normal(loc, torch.ones_like(loc))


def test_vqvae_gradients_reach_encoder_and_codebook(generator):
    encoder = nn.Linear(4, 2)
    model = VQVAE(encoder, VectorQuantizer(3, 2, generator=generator), _Decoder((4,)))
    x = torch.randn(5, 4, generator=generator)
    out = model(x)
    assert out.loss.shape == (5,)
    model.loss(x).backward()
    assert encoder.weight.grad.abs().sum() > 0
    assert model.quantizer.codebook.grad.abs().sum() > 0
    assert model.tokenize(x).shape == (5,)


def test_vqvae_rejects_decoder_with_wrong_event_shape(generator):
    model = VQVAE(nn.Linear(4, 2), FSQ([3, 3]), _Decoder((3,)))
    with pytest.raises(
        ValueError, match=r"distribution over shape \(5, 3\).*expected the shape of x, \(5, 4\)"
    ):
        model(torch.randn(5, 4, generator=generator))
