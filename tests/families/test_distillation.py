"""SDS, VSD and DMD at an affine generator G(z) = A z + b on two-dimensional Gaussian data: each
Monte-Carlo gradient against its closed form (two-sided), exact zeros at the data law, SDS's
pull to the mode, and bad input."""

from __future__ import annotations

import pytest
import torch

from genmath.analytic import Gaussian
from genmath.core.path import GaussianPath
from genmath.families import distillation as ds
from genmath.schedules import VP, CondOT
from genmath.testing import assert_close, assert_mean_matches

F64 = torch.float64
MU = torch.tensor([0.8, -0.6], dtype=F64)
SIGMA = torch.tensor([[1.2, 0.5], [0.5, 0.7]], dtype=F64)
DATA = Gaussian(MU, SIGMA)
# a non-symmetric scale and a shift away from the data's mean: no symmetry hides a term
A0 = torch.tensor([[0.6, 0.3], [-0.2, 1.1]], dtype=F64)
B0 = torch.tensor([-0.4, 0.5], dtype=F64)
N = 50_000
T = 0.35
W = 1.7


def _per_sample_gradients(loss_name, A, b, path, parameterization, generator, **kwargs):
    """``(N, 6)`` per-sample gradients in (A, b) of the loss, with the exact real and fake
    models (the generator's law N(b, A A^T) noised along ``path``)."""
    z = torch.randn(N, 2, generator=generator, dtype=F64)
    As = A.expand(N, 2, 2).clone().requires_grad_(True)
    bs = b.expand(N, 2).clone().requires_grad_(True)
    x = torch.einsum("nij,nj->ni", As, z) + bs
    method = {"eps": "eps", "score": "score", "x0": "denoise", "velocity": "velocity"}[parameterization]
    models = [getattr(DATA.marginal(path), method)]
    if loss_name != "sds":
        models.append(getattr(Gaussian(b, A @ A.T).marginal(path), method))
    loss = getattr(ds, f"{loss_name}_loss")
    value = loss(x, *models, path, parameterization=parameterization, t=T, generator=generator,
                 reduction="none", **kwargs)
    gA, gb = torch.autograd.grad(value.sum(), (As, bs))
    return torch.cat([gA.flatten(1), gb], dim=1)


def _closed_form(loss_name, A, b, path):
    """The expected gradient (D-sds-gradient, D-vsd-gradient, D-dmd-gradient in d dimensions),
    computed here from the precisions of the two noised laws."""
    t = torch.tensor(T, dtype=F64)
    alpha, sigma = path.alpha(t), path.sigma(t)
    eye = torch.eye(2, dtype=F64)
    M = torch.linalg.inv(alpha**2 * SIGMA + sigma**2 * eye)
    Nf = torch.linalg.inv(alpha**2 * A @ A.T + sigma**2 * eye)
    scale = {"sds": W * sigma * alpha, "vsd": W * sigma * alpha, "dmd": W * alpha**2}[loss_name]
    grad_A = scale * (M @ A if loss_name == "sds" else (M - Nf) @ A)
    grad_b = scale * M @ (b - MU)
    return torch.cat([grad_A.flatten(), grad_b])


CASES = [
    ("sds", CondOT(), "eps"),
    ("sds", VP(), "x0"),
    ("vsd", CondOT(), "eps"),
    ("vsd", VP(), "velocity"),
    ("dmd", CondOT(), "score"),
    ("dmd", VP(), "x0"),
]


@pytest.mark.parametrize("loss_name, schedule, parameterization", CASES)
def test_gradient_at_an_affine_generator_matches_its_closed_form(
    loss_name, schedule, parameterization, generator
):
    path = GaussianPath(schedule)
    grads = _per_sample_gradients(loss_name, A0, B0, path, parameterization, generator, weighting=W)
    expected = _closed_form(loss_name, A0, B0, path)
    # 0.1 is a quarter of the smallest gap (0.4) between the three closed forms here, so
    # swapping one loss's formula for another's (or dropping a term) fails
    assert_mean_matches(grads, expected, precision=0.1, name=f"{loss_name} gradient")


def test_the_comparison_has_the_power_to_tell_the_losses_apart(generator):
    # negative control: VSD's Monte-Carlo gradient is refused against SDS's closed form
    path = GaussianPath(CondOT())
    grads = _per_sample_gradients("vsd", A0, B0, path, "eps", generator, weighting=W)
    with pytest.raises(AssertionError):
        assert_mean_matches(grads, _closed_form("sds", A0, B0, path), precision=0.1)
    gap = (_closed_form("sds", A0, B0, path) - _closed_form("vsd", A0, B0, path)).abs().max()
    assert float(gap) > 0.2


@pytest.mark.parametrize("loss_name, weighting", [("vsd", W), ("dmd", W), ("dmd", "dmd")])
def test_vsd_and_dmd_vanish_exactly_when_the_generator_law_is_the_data_law(loss_name, weighting, generator):
    # A A^T = Sigma with a non-triangular, non-symmetric A: a rotation of the Cholesky factor
    c, s = 0.8, 0.6
    A = torch.linalg.cholesky(SIGMA) @ torch.tensor([[c, -s], [s, c]], dtype=F64)
    assert_close(A @ A.T, SIGMA, atol=1e-14)
    path = GaussianPath(VP())
    grads = _per_sample_gradients(loss_name, A, MU, path, "eps", generator, weighting=weighting)
    assert_close(grads, torch.zeros_like(grads), atol=1e-12, name=f"{loss_name} at the data law")
    # and not at another law: the zero is not the loss ignoring its input
    other = _per_sample_gradients(loss_name, A0, B0, path, "eps", generator, weighting=weighting)
    assert float(other.mean(0).abs().max()) > 0.05


def test_sds_does_not_vanish_at_the_data_law_but_at_the_mode(generator):
    path = GaussianPath(CondOT())
    A = torch.linalg.cholesky(SIGMA)
    at_data = _per_sample_gradients("sds", A, MU, path, "eps", generator, weighting=W)
    expected = _closed_form("sds", A, MU, path)
    assert float(expected.abs().max()) > 0.3
    assert_mean_matches(at_data, expected, precision=0.1, name="SDS at the data law")
    at_mode = _per_sample_gradients("sds", torch.zeros(2, 2, dtype=F64), MU, path, "eps", generator, weighting=W)
    assert_mean_matches(at_mode, torch.zeros(6, dtype=F64), precision=0.1, name="SDS at the mode")


def test_drawn_times_and_noise_follow_the_generator():
    x = torch.randn(8, 3, dtype=F64)
    real = Gaussian(torch.zeros(3, dtype=F64), torch.eye(3, dtype=F64)).marginal(GaussianPath(CondOT()))
    path = GaussianPath(CondOT())
    one = ds.sds_loss(x, real.eps, path, generator=torch.Generator().manual_seed(3), reduction="none")
    two = ds.sds_loss(x, real.eps, path, generator=torch.Generator().manual_seed(3), reduction="none")
    assert torch.equal(one, two) and one.shape == (8,)


def test_bad_input_is_refused_by_name():
    path = GaussianPath(CondOT())
    x = torch.randn(4, 2, dtype=F64)
    real = DATA.marginal(path).eps
    with pytest.raises(ValueError, match="weighting"):
        ds.sds_loss(x, real, path, weighting="dmd")
    with pytest.raises(ValueError, match="weighting"):
        ds.dmd_loss(x, real, real, path, weighting=-1.0)
    with pytest.raises(ValueError, match="parameterization"):
        ds.vsd_loss(x, real, real, path, parameterization="noise")
    with pytest.raises(ValueError, match="real must return"):
        ds.sds_loss(x, lambda xt, t: xt[:, :1], path)
    with pytest.raises(TypeError, match="fake must be a callable"):
        ds.vsd_loss(x, real, "model", path)
    with pytest.raises(ValueError, match="eps must have the shape"):
        ds.sds_loss(x, real, path, eps=torch.zeros(4, 3, dtype=F64))
    with pytest.raises(ValueError, match=r"x\[:, None\]"):
        ds.sds_loss(x[:, 0], real, path)
    with pytest.raises(ValueError, match="path"):
        ds.sds_loss(x, real, "CondOT")
