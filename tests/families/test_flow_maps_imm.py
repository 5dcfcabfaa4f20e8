"""Inductive moment matching (`genmath.families.flow_maps_imm`, D-gaussian-rbf-mmd): the
closed-form MMD between Gaussians against its U-statistic, and the IMM loss at the exact map
(zero expectation) and at a perturbed one."""

from __future__ import annotations

import math

import pytest
import torch

from genmath.analytic import ExactFlowMap, Gaussian
from genmath.core.path import GaussianPath
from genmath.derivations.flow_map_oracles import mixture_case
from genmath.families import flow_maps_imm as imm
from genmath.schedules import CondOT

DTYPE = torch.float64
PATH = GaussianPath(CondOT())


def _mean_and_se(values):
    return float(values.mean()), float(values.std() / math.sqrt(values.numel()))


def test_closed_form_mmd_between_gaussians_equals_the_u_statistic():
    gen = torch.Generator().manual_seed(0)
    mean1, mean2 = torch.tensor([0.0, 0.5], dtype=DTYPE), torch.tensor([0.8, -0.3], dtype=DTYPE)
    cov1 = torch.tensor([[1.0, 0.3], [0.3, 0.6]], dtype=DTYPE)
    cov2 = torch.tensor([[0.5, -0.1], [-0.1, 0.9]], dtype=DTYPE)
    first, second = Gaussian(mean1, cov1), Gaussian(mean2, cov2)
    groups, size = 4000, 8
    a = first.sample(groups * size, generator=gen).reshape(groups, size, 2)
    b = second.sample(groups * size, generator=gen).reshape(groups, size, 2)
    for bandwidth in (0.5, 1.0, 2.0):
        closed = float(imm.gaussian_rbf_mmd(mean1, cov1, mean2, cov2, bandwidth))
        mean, se = _mean_and_se(imm.mmd_unbiased(a, b, bandwidth))
        assert abs(mean - closed) < 4 * se, (bandwidth, mean, closed, se)
        assert closed > 10 * se  # the case can tell the laws apart
    # equal laws: zero exactly
    assert abs(float(imm.gaussian_rbf_mmd(mean1, cov1, mean1, cov1, 1.0))) < 1e-15


@pytest.mark.parametrize("law", ["gaussian", "mixture"])
def test_imm_loss_has_zero_expectation_at_the_exact_map_and_not_at_a_perturbed_one(law):
    data = (Gaussian(torch.tensor([1.0, -0.5], dtype=DTYPE),
                     torch.tensor([[1.5, 0.6], [0.6, 0.5]], dtype=DTYPE))
            if law == "gaussian" else mixture_case())
    exact = ExactFlowMap(data.marginal(PATH), steps=64)
    n = 4096 if law == "gaussian" else 2048
    x0 = data.sample(n, generator=torch.Generator().manual_seed(1))

    def perturbed(y, s, t):  # a drift proportional to the jump: the two pushforwards differ
        return exact(y, s, t) + 2.0 * (t - s)[:, None]

    kwargs = dict(group_size=8, bandwidth=1.0, gap=0.5, reduction="none")
    values = imm.imm_loss(exact, x0, PATH, generator=torch.Generator().manual_seed(2), **kwargs)
    assert values.shape == (n // 8,)
    mean, se = _mean_and_se(values)
    assert abs(mean) < 4 * se
    wrong = imm.imm_loss(perturbed, x0, PATH, generator=torch.Generator().manual_seed(2), **kwargs)
    mean, se = _mean_and_se(wrong)
    assert mean > 4 * se


def test_bad_input_is_refused_by_name():
    exact = ExactFlowMap(Gaussian(torch.zeros(2, dtype=DTYPE), torch.eye(2, dtype=DTYPE))
                         .marginal(PATH))
    x0 = torch.zeros(8, 2, dtype=DTYPE)
    with pytest.raises(ValueError, match="multiple of group_size"):
        imm.imm_loss(exact, x0[:7])
    with pytest.raises(ValueError, match="s <= t"):
        imm.imm_loss(exact, x0, s=0.8, t=0.2)
    with pytest.raises(ValueError, match="gap"):
        imm.imm_loss(exact, x0, gap=0.0)
    with pytest.raises(ValueError, match="bandwidth"):
        imm.gaussian_rbf_mmd(torch.zeros(2), torch.eye(2), torch.zeros(2), torch.eye(2), -1.0)
    with pytest.raises(ValueError, match="cov"):
        imm.gaussian_rbf_kernel_mean(torch.zeros(2), torch.eye(3), torch.zeros(2), torch.eye(2), 1.0)
    with pytest.raises(ValueError, match="M >= 2"):
        imm.mmd_unbiased(torch.zeros(3, 1, 2), torch.zeros(3, 1, 2), 1.0)
    with pytest.raises(ValueError, match="flow-map model"):
        imm.imm_loss(lambda y, s: y, x0)
