"""Autoregressive families: masks (exact zeros of the Jacobian), chain rule, Gaussian case."""

import itertools

import pytest
import torch
from scipy.stats import multivariate_normal
from torch import distributions as D
from torch import nn
from torch.nn import functional as F

from genmath.analytic import Categorical
from genmath.families.autoregressive import (
    MADE,
    GaussianAutoregression,
    MaskedConv2d,
    PixelCNN,
    chain_rule_log_prob,
)
from genmath.testing import assert_close, assert_mean_matches

ORDERINGS = [[0, 1, 2, 3, 4, 5], [5, 4, 3, 2, 1, 0], [2, 5, 0, 3, 1, 4]]


@pytest.mark.parametrize("ordering", ORDERINGS)
def test_made_jacobian_is_zero_exactly_where_the_ordering_forbids(ordering):
    torch.manual_seed(3)
    made = MADE(6, (10, 10), ordering=ordering, conditional="gaussian", activation=nn.Tanh)
    x = torch.randn(1, 6)
    jac = torch.autograd.functional.jacobian(made, x)[0, :, :, 0]  # (2, output i, input j)
    rank = torch.argsort(torch.tensor(ordering))
    allowed = rank[None, :] < rank[:, None]  # input j precedes output i
    assert torch.equal(jac[:, ~allowed], torch.zeros_like(jac[:, ~allowed]))
    assert (jac[:, allowed] != 0).all(), "every allowed dependency should be used"


def test_categorical_made_outputs_do_not_move_with_forbidden_inputs():
    torch.manual_seed(4)
    ordering = [3, 0, 2, 1]
    made = MADE(4, (8,), ordering=ordering, conditional="categorical", categories=5)
    x = torch.tensor([[1, 4, 0, 2]])
    rank = torch.argsort(torch.tensor(ordering))
    base = made(x)
    for j in range(4):
        moved = x.clone()
        moved[0, j] = (moved[0, j] + 2) % 5
        changed = (made(moved) != base).any(1)[0]  # which outputs i changed
        for i in range(4):
            if rank[j] >= rank[i]:
                assert not changed[i], f"output {i} depends on input {j}"


def test_categorical_made_is_normalised_and_nll_is_cross_entropy():
    torch.manual_seed(5)
    made = MADE(3, (6, 6), ordering=[1, 2, 0], conditional="categorical", categories=3)
    every = torch.tensor(list(itertools.product(range(3), repeat=3)))
    log_p = made.log_prob(every)
    assert_close(log_p.exp().sum(), torch.tensor(1.0), atol=1e-12, name="sum over all sequences")
    logits = made(every)  # (B, K, d): cross_entropy's class axis is 1
    ce = F.cross_entropy(logits, every, reduction="none").sum(-1)
    assert_close(-log_p, ce, atol=1e-12)


def _table_conditionals(table: Categorical, x: torch.Tensor) -> D.Categorical:
    """p(x_i = v | x_<i) for every i and v, by summing the table: an independent route."""
    probs = table.probs
    L, K = table.length, table.vocab_size
    logits = torch.empty(x.shape[0], L, K)
    for b in range(x.shape[0]):
        for i in range(L):
            prefix = probs[tuple(x[b, :i].tolist())]  # shape (K,) * (L - i)
            marginal = prefix.reshape(K, -1).sum(-1) if i < L - 1 else prefix
            logits[b, i] = (marginal / marginal.sum()).log()
    return D.Categorical(logits=logits)


def test_chain_rule_of_a_categorical_table_is_its_joint(generator):
    table = Categorical.from_logits(torch.randn(3, 3, 3, generator=generator))
    x = table.enumerate()
    conditionals = _table_conditionals(table, x)
    assert_close(chain_rule_log_prob(conditionals, x), table.log_prob(x), atol=1e-12)
    # expected NLL under the data = cross-entropy H(p, p) = entropy, by enumeration
    nll = -(table.probs.flatten() * chain_rule_log_prob(conditionals, x)).sum()
    entropy = -(table.probs * table.probs.log()).sum()
    assert_close(nll, entropy, atol=1e-12)


def test_chain_rule_rejects_mismatched_conditionals():
    with pytest.raises(ValueError, match="one univariate conditional per entry"):
        chain_rule_log_prob(D.Normal(torch.zeros(2, 3), 1.0), torch.zeros(2, 4))


@pytest.mark.parametrize("ordering", [None, [3, 2, 1, 0], [1, 3, 0, 2]])
def test_gaussian_autoregression_is_the_joint_gaussian(ordering, generator):
    a = torch.randn(4, 4, generator=generator)
    cov = a @ a.T + 0.5 * torch.eye(4)
    mean = torch.randn(4, generator=generator)
    model = GaussianAutoregression(mean, cov, ordering=ordering)
    x = 2 * torch.randn(6, 4, generator=generator)
    expected = multivariate_normal(mean.numpy(), cov.numpy()).logpdf(x.numpy())
    assert_close(model.log_prob(x), torch.as_tensor(expected), atol=1e-10)
    # strictly lower triangular in the ordering: conditional k sees only earlier entries
    assert torch.equal(model.regression.triu(), torch.zeros(4, 4))


def test_gaussian_autoregression_ancestral_samples_have_the_right_moments():
    g = torch.Generator().manual_seed(7)
    cov = torch.tensor([[2.0, 0.8, -0.3], [0.8, 1.0, 0.2], [-0.3, 0.2, 0.5]])
    mean = torch.tensor([1.0, -2.0, 0.5])
    x = GaussianAutoregression(mean, cov, ordering=[2, 0, 1]).sample(20000, g)
    assert_mean_matches(x, mean, name="mean")
    centred = x - mean
    products = (centred[:, :, None] * centred[:, None, :]).reshape(-1, 9)
    assert_mean_matches(products, cov.flatten(), name="covariance")


def test_made_ancestral_samples_follow_the_model(generator):
    torch.manual_seed(6)
    made = MADE(3, (6, 6), ordering=[2, 0, 1], conditional="categorical", categories=3)
    every = torch.tensor(list(itertools.product(range(3), repeat=3)))
    with torch.no_grad():
        p = made.log_prob(every).exp()
    x = made.sample(20000, generator)
    index = (x * torch.tensor([9, 3, 1])).sum(-1)
    # each probability to 0.01 (the largest is 0.065)
    assert_mean_matches(
        F.one_hot(index, 27).double(), p, precision=0.01, name="sequence frequencies"
    )


def test_made_bad_input():
    with pytest.raises(ValueError, match=r"permutation of 0\.\.2, got \[0, 0, 1\]"):
        MADE(3, ordering=[0, 0, 1])
    with pytest.raises(ValueError, match="permutation"):
        MADE(3, ordering=[0, 1])
    with pytest.raises(ValueError, match="conditional must be one of"):
        MADE(3, conditional="poisson")
    made = MADE(3, conditional="categorical", categories=4)
    with pytest.raises(ValueError, match=r"values in \[0, 3\]"):
        made.log_prob(torch.tensor([[0, 1, 4]]))
    with pytest.raises(ValueError, match="permutation"):
        GaussianAutoregression(torch.zeros(2), torch.eye(2), ordering=[1, 1])


def _raster_before(a, b, c_in, i, j, c_out, mask_type):
    if (a, b) != (i, j):
        return (a, b) < (i, j)
    return c_in < c_out if mask_type == "A" else c_in <= c_out


@pytest.mark.parametrize("mask_type", ["A", "B"])
def test_masked_conv_jacobian_zero_pattern(mask_type):
    torch.manual_seed(8)
    conv = MaskedConv2d(3, 6, 3, mask_type, data_channels=3)
    x = torch.randn(1, 3, 4, 4)
    jac = torch.autograd.functional.jacobian(conv, x)[0, :, :, :, 0]  # (6, 4, 4, 3, 4, 4)
    for o, i, j, c, a, b in itertools.product(
        range(6), range(4), range(4), range(3), range(4), range(4)
    ):
        value = jac[o, i, j, c, a, b]
        near = abs(a - i) <= 1 and abs(b - j) <= 1
        if not _raster_before(a, b, c, i, j, o // 2, mask_type):
            assert value == 0, (o, i, j, c, a, b)
        elif near:
            assert value != 0, (o, i, j, c, a, b)


@pytest.mark.parametrize("channels", [1, 3])
def test_pixelcnn_logits_ignore_current_and_later_subpixels(channels):
    torch.manual_seed(9)
    net = PixelCNN(channels=channels, categories=4, hidden=6, layers=2, kernel_size=3)
    x = torch.randint(0, 4, (1, channels, 4, 4))
    base = net(x)
    for c, a, b in itertools.product(range(channels), range(4), range(4)):
        moved = x.clone()
        moved[0, c, a, b] = (moved[0, c, a, b] + 1) % 4
        changed = (net(moved) != base).any(-1)[0]  # (C, H, W)
        for c_out, i, j in itertools.product(range(channels), range(4), range(4)):
            if not _raster_before(a, b, c, i, j, c_out, "A"):
                assert not changed[c_out, i, j], f"logits at {(c_out, i, j)} see {(c, a, b)}"
        if b < 3:  # (the stack's blind spot hides some upper-right pixels, never the left one)
            assert changed[:, a, b + 1].any(), "the pixel to the right should see this one"


def test_class_conditional_pixelcnn_is_normalised_for_each_class(generator):
    torch.manual_seed(10)
    net = PixelCNN(channels=1, categories=2, hidden=4, layers=1, kernel_size=3, num_classes=3)
    every = torch.tensor(list(itertools.product(range(2), repeat=4))).reshape(16, 1, 2, 2)
    totals = []
    for label in range(3):
        y = torch.full((16,), label)
        totals.append(net.log_prob(every, y).exp().sum())
    assert_close(torch.stack(totals), torch.ones(3), atol=1e-12)
    y0, y1 = torch.zeros(16, dtype=torch.long), torch.ones(16, dtype=torch.long)
    assert not torch.allclose(net.log_prob(every, y0), net.log_prob(every, y1))
    sample = net.sample(3, (2, 2), y=torch.tensor([0, 1, 2]), generator=generator)
    assert sample.shape == (3, 1, 2, 2) and sample.max() < 2


def test_pixelcnn_bad_input():
    with pytest.raises(ValueError, match="mask_type must be 'A' or 'B'"):
        MaskedConv2d(1, 4, 3, "C")
    with pytest.raises(ValueError, match="odd"):
        MaskedConv2d(1, 4, 4, "A")
    net = PixelCNN(channels=1, categories=4, hidden=4, layers=1, num_classes=2)
    with pytest.raises(ValueError, match="give y"):
        net.log_prob(torch.zeros(2, 1, 3, 3, dtype=torch.long))
    with pytest.raises(ValueError, match=r"\(B, 1, H, W\)"):
        net.log_prob(torch.zeros(2, 3, 3, dtype=torch.long), torch.zeros(2, dtype=torch.long))
