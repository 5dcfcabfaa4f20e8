"""Categorical oracle over short sequences: normalisation, indexing against the table,
enumeration, sampling frequencies, bad input."""

import itertools

import pytest
import torch

from genmath.analytic import Categorical
from genmath.testing import assert_close, assert_mean_matches

K, L = 3, 3


@pytest.fixture
def table():
    probs = torch.rand(K, K, K, generator=torch.Generator().manual_seed(0)) ** 2 + 0.01
    return probs / probs.sum()


def test_log_prob_reads_the_table_and_normalises(table):
    cat = Categorical(table)
    seqs = torch.tensor(list(itertools.product(range(K), repeat=L)))  # brute-force enumeration
    expected = torch.stack([table[tuple(s)] for s in seqs.tolist()]).log()
    assert_close(cat.log_prob(seqs), expected, atol=1e-14)
    assert_close(cat.log_prob(cat.enumerate()).exp().sum(), torch.tensor(1.0), atol=1e-14)
    assert torch.equal(cat.enumerate(), seqs)
    assert torch.equal(cat.index(seqs), torch.arange(K**L))


def test_token_marginals(table):
    cat = Categorical(table)
    seqs = cat.enumerate()
    p = cat.log_prob(seqs).exp()
    for i in range(L):
        expected = torch.stack([p[seqs[:, i] == j].sum() for j in range(K)])
        assert_close(cat.token_marginals()[i], expected, atol=1e-14)


def test_sample_frequencies(table, generator):
    cat = Categorical(table)
    x = cat.sample(40000, generator=generator)
    assert x.shape == (40000, L) and x.dtype == torch.long
    one_hot = torch.nn.functional.one_hot(cat.index(x), K**L).to(torch.float64)
    assert_mean_matches(one_hot, table.flatten(), name="sequence frequencies")


def test_single_token_and_from_logits():
    logits = torch.tensor([0.3, -1.0, 2.0, 0.0])
    cat = Categorical.from_logits(logits)
    assert cat.length == 1 and cat.vocab_size == 4
    assert_close(cat.log_prob(torch.arange(4)[:, None]), torch.log_softmax(logits, 0), atol=1e-14)


def test_bad_input(table):
    cat = Categorical(table)
    with pytest.raises(ValueError, match=r"token ids must lie in \[0, 2\].*got values in \[0, 3\]"):
        cat.log_prob(torch.tensor([[0, 1, 3]]))
    with pytest.raises(ValueError, match=r"token ids must lie in \[0, 2\]"):
        cat.log_prob(torch.tensor([[-1, 1, 0]]))
    with pytest.raises(ValueError, match="integer token ids"):
        cat.log_prob(torch.tensor([[0.0, 1.0, 2.0]]))
    with pytest.raises(ValueError, match=r"x must have shape \(B, L\) = \(B, 3\)"):
        cat.log_prob(torch.tensor([[0, 1]]))
    with pytest.raises(ValueError, match="probs must sum to 1"):
        Categorical(torch.full((2, 2), 0.3))
    with pytest.raises(ValueError, match="non-negative"):
        Categorical(torch.tensor([1.5, -0.5]))
    with pytest.raises(ValueError, match=r"same K along every axis"):
        Categorical(torch.full((2, 3), 1 / 6))
