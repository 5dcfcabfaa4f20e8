"""Discrete paths: kernels against their closed forms, composition, posteriors against
brute-force Bayes over matrices built here, sampling frequencies, and bad input."""

import itertools
import math

import pytest
import sympy as sp
import torch

from genmath.core.discrete import MaskPath, UniformPath
from genmath.testing import assert_close, assert_mean_matches

K = 4


def _uniform_matrix(keep: float, k: int = K) -> torch.Tensor:
    return keep * torch.eye(k) + (1 - keep) * torch.ones(k, k) / k


def _mask_matrix(keep: float, k: int = K) -> torch.Tensor:
    m = torch.zeros(k + 1, k + 1)
    for i in range(k):
        m[i, i], m[i, k] = keep, 1 - keep
    m[k, k] = 1.0
    return m


def _cosine_keep(t: float) -> float:
    return math.cos(math.pi * t / 2)


def _paths():
    t = sp.Symbol("t")
    return [
        (MaskPath(K), lambda v: 1 - v, _mask_matrix),
        (MaskPath(K, sp.cos(sp.pi * t / 2), t, mask_id=9), _cosine_keep, _mask_matrix),
        (UniformPath(K), lambda v: 1 - v, _uniform_matrix),
        (UniformPath(K, sp.cos(sp.pi * t / 2), t), _cosine_keep, _uniform_matrix),
    ]


PATHS = _paths()
IDS = [repr(p[0]) for p in PATHS]


@pytest.mark.parametrize(("path", "keep", "matrix"), PATHS, ids=IDS)
def test_cumulative_kernel_closed_form(path, keep, matrix):
    for t in (0.0, 0.15, 0.5, 0.9, 1.0):
        kernel = path.cumulative_kernel(t)
        assert_close(kernel, matrix(keep(t)), atol=1e-15, name=f"Q_bar at t={t}")
        assert_close(kernel.sum(-1), torch.ones(path.num_states), atol=1e-15)
    batch = path.cumulative_kernel(torch.tensor([0.2, 0.7]))
    assert batch.shape == (2, path.num_states, path.num_states)
    assert_close(batch[1], matrix(keep(0.7)), atol=1e-15)


@pytest.mark.parametrize(("path", "keep", "matrix"), PATHS, ids=IDS)
def test_cumulative_kernels_are_products_of_step_kernels(path, keep, matrix):
    s, t, u = 0.1, 0.45, 0.8
    q_s, q_t, q_u = (path.cumulative_kernel(v) for v in (s, t, u))
    assert_close(q_s @ path.step_kernel(s, t), q_t, atol=1e-14)
    assert_close(
        path.step_kernel(s, t) @ path.step_kernel(t, u), path.step_kernel(s, u), atol=1e-14
    )
    assert_close(q_s @ path.step_kernel(s, t) @ path.step_kernel(t, u), q_u, atol=1e-14)
    assert_close(path.step_kernel(s, t), matrix(keep(t) / keep(s)), atol=1e-14)


@pytest.mark.parametrize(("path", "keep", "matrix"), PATHS, ids=IDS)
def test_forward_probs_are_rows_of_the_kernel(path, keep, matrix):
    x0 = torch.tensor([[0, 3, 1], [2, 2, 0]])
    t = torch.tensor([0.3, 0.8])
    probs = path.forward_probs(x0, t)
    assert probs.shape == (2, 3, path.num_states)
    for b, j in itertools.product(range(2), range(3)):
        expected = matrix(keep(float(t[b])))[x0[b, j]]
        assert_close(probs[b, j], expected, atol=1e-15)


@pytest.mark.parametrize(("path", "keep", "matrix"), PATHS, ids=IDS)
def test_posterior_matches_brute_force_bayes(path, keep, matrix):
    """q(x_s | x_t, x_0) = p(x_s, x_t | x_0) / p(x_t | x_0), enumerating x_s, with matrices
    built in this test from the closed forms."""
    is_mask = isinstance(path, MaskPath)
    noisy = list(range(K)) + ([path.mask_id] if is_mask else [])
    for s, t in [(0.05, 0.3), (0.4, 0.9), (0.0, 0.5), (0.6, 1.0)]:
        prior, step = matrix(keep(s)), matrix(keep(t) / keep(s))
        for x0, xt in itertools.product(range(K), noisy):
            state = K if (is_mask and xt == path.mask_id) else xt
            joint = torch.tensor([prior[x0, j] * step[j, state] for j in range(path.num_states)])
            if joint.sum() == 0:
                with pytest.raises(ValueError, match="impossible"):
                    path.posterior_probs(torch.tensor([xt]), torch.tensor([x0]), s, t)
                continue
            got = path.posterior_probs(torch.tensor([xt]), torch.tensor([x0]), s, t)[0]
            assert_close(got, joint / joint.sum(), atol=1e-14, name=f"s={s} t={t} x0={x0} xt={xt}")
            assert_close(got.sum(), torch.tensor(1.0), atol=1e-15)


def test_mask_posterior_closed_form():
    path = MaskPath(K)
    s, t = 0.25, 0.6  # alpha_bar = 1 - t
    xt = torch.tensor([K, K, 2])
    x0 = torch.tensor([1, 3, 2])
    post = path.posterior_probs(xt, x0, s, t)
    keep_s, keep_t = 1 - s, 1 - t
    assert_close(post[0, 1], torch.tensor((keep_s - keep_t) / (1 - keep_t)), atol=1e-15)
    assert_close(post[0, K], torch.tensor((1 - keep_s) / (1 - keep_t)), atol=1e-15)
    assert_close(post[2], torch.nn.functional.one_hot(torch.tensor(2), K + 1).double(), atol=0)


def test_posterior_with_per_sample_times():
    path = UniformPath(3)
    x0 = torch.tensor([[0, 1], [2, 2]])
    xt = torch.tensor([[1, 1], [0, 2]])
    s, t = torch.tensor([0.1, 0.5]), torch.tensor([0.3, 0.9])
    post = path.posterior_probs(xt, x0, s, t)
    for b in range(2):
        single = path.posterior_probs(xt[b : b + 1], x0[b : b + 1], float(s[b]), float(t[b]))
        assert_close(post[b], single[0], atol=1e-15)


@pytest.mark.parametrize("path", [MaskPath(3, mask_id=5), UniformPath(3)], ids=repr)
def test_sample_frequencies_match_forward_probs(path, generator):
    n, t = 20_000, 0.4
    x0 = torch.tensor([0, 2]).repeat(n)
    xt = path.sample(x0, t, generator=generator)
    ids = list(range(3)) + ([path.mask_id] if isinstance(path, MaskPath) else [])
    for start in (0, 1):
        counts = torch.stack([(xt[start::2] == i).double() for i in ids], dim=1)
        expected = path.forward_probs(x0[start : start + 1], t)[0]
        assert_mean_matches(counts, expected, name=f"q(x_t | x_0 = {int(x0[start])})")


def test_alpha_bar_derivative_matches_autograd():
    t_sym = sp.Symbol("t")
    path = UniformPath(3, 1 - t_sym**2, t_sym)
    t = torch.tensor([0.1, 0.5, 0.9], requires_grad=True)
    (grad,) = torch.autograd.grad(path.alpha_bar(t).sum(), t)
    assert_close(path.d_alpha_bar(t.detach()), grad, atol=1e-14)
    assert_close(grad, -2 * t.detach(), atol=1e-14)


def test_bad_input_raises():
    t = sp.Symbol("t")
    with pytest.raises(ValueError, match=r"mask_id must be an int >= num_categories = 4.*got 2"):
        MaskPath(4, mask_id=2)
    with pytest.raises(ValueError, match="num_categories must be at least 2"):
        UniformPath(1)
    with pytest.raises(ValueError, match="non-increasing"):
        MaskPath(4, 1 - t + sp.Rational(1, 5) * sp.sin(2 * sp.pi * t), t)
    with pytest.raises(ValueError, match=r"1 at t = 0 \(data\) and 0 at t = 1"):
        UniformPath(4, sp.Rational(9, 10) * (1 - t), t)
    with pytest.raises(ValueError, match=r"1 at t = 0 \(data\) and 0 at t = 1"):
        UniformPath(4, t, t)  # data at t = 1
    mask = MaskPath(4)
    with pytest.raises(ValueError, match=r"x0 ids must be in \[0, 4\), got \[4\]"):
        mask.forward_probs(torch.tensor([1, 4]), 0.5)  # the mask is not a data symbol
    with pytest.raises(ValueError, match=r"x0 ids must be in \[0, 4\), got \[-1\]"):
        mask.forward_probs(torch.tensor([-1]), 0.5)
    with pytest.raises(ValueError, match=r"xt ids must be in \[0, 4\) or the mask id 4, got \[7\]"):
        mask.posterior_probs(torch.tensor([7]), torch.tensor([0]), 0.2, 0.5)
    with pytest.raises(ValueError, match="integer tensor of token ids"):
        mask.forward_probs(torch.tensor([0.0, 1.0]), 0.5)
    with pytest.raises(ValueError, match="need s < t"):
        mask.step_kernel(0.5, 0.5)
    with pytest.raises(ValueError, match="need s < t"):
        mask.posterior_probs(torch.tensor([4]), torch.tensor([0]), 0.7, 0.2)
    with pytest.raises(ValueError, match=r"t must lie in \[0, 1\]"):
        mask.cumulative_kernel(1.5)
    with pytest.raises(ValueError, match=r"per-sample t needs shape \(B,\)"):
        mask.forward_probs(torch.tensor([[0, 1]]), torch.tensor([0.1, 0.2]))
    with pytest.raises(ValueError, match="xt must have the shape of x0"):
        mask.posterior_probs(torch.tensor([4, 4]), torch.tensor([0]), 0.2, 0.5)
    with pytest.raises(ValueError, match=r"impossible given x0"):
        mask.posterior_probs(torch.tensor([1]), torch.tensor([0]), 0.2, 0.5)
