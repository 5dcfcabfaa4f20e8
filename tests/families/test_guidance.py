"""Guidance on Gaussian data, against closed forms computed here by independent routes: the
exact noisy classifier from Bayes' rule on genmath.analytic's marginals, hand-written Gaussian
scores, DDIM at the ends of CFG++'s scale, a quadrature of the tilted density, and an ODE solve
of the guided probability flow on another path (CondOT) by scipy."""

import math

import numpy as np
import pytest
import torch
from scipy.integrate import quad, solve_ivp

from genmath import GaussianPath
from genmath.analytic import Gaussian
from genmath.families.diffusion import (
    autoguidance,
    cfgpp_sample,
    classifier_guidance,
    ddim_sample,
    gaussian_guidance_laws,
    guide,
)
from genmath.schedules import VP

F64 = torch.float64
MEAN = torch.tensor([0.5, -1.0], dtype=F64)
VAR = torch.tensor([2.0, 0.3], dtype=F64)
NOISE = torch.tensor([0.5, 1.2], dtype=F64)
COND = torch.tensor([1.5, 2.0], dtype=F64)


def _posterior():
    a = 1 / (1 / VAR + 1 / NOISE)
    return a * (MEAN / VAR + COND / NOISE), a


def _points(n=7, seed=0):
    return torch.randn(n, 2, generator=torch.Generator().manual_seed(seed), dtype=F64) * 2


@pytest.mark.parametrize("w", [0.0, 1.0, 2.5, 7.0])
@pytest.mark.parametrize("t", [0.1, 0.5, 0.9])
def test_classifier_guidance_with_the_exact_classifier_is_the_closed_form_and_cfg(w, t):
    path = GaussianPath(VP())
    m_c, a = _posterior()
    data = Gaussian(MEAN, torch.diag(VAR)).marginal(path)
    conditional = Gaussian(m_c, torch.diag(a)).marginal(path)

    def classifier(x, t):  # Bayes: log p_t(c | x) = log p_t(x | c) - log p_t(x) + log p(c)
        return conditional.log_prob(x, t) - data.log_prob(x, t)

    x = _points()
    guided = classifier_guidance(data.score, classifier, w)(x, t)
    laws = gaussian_guidance_laws(MEAN, VAR, NOISE, COND, w)
    assert torch.allclose(guided, laws.guided_score(x, t, path), atol=1e-11)
    cfg = guide(lambda x, t, c: conditional.score(x, t), torch.zeros(7, dtype=torch.long), w,
                unconditional=data.score)
    assert torch.allclose(guided, cfg(x, t), atol=1e-11)
    # and by hand, per coordinate
    alpha, sigma = path.alpha(torch.tensor(t, dtype=F64)), path.sigma(torch.tensor(t, dtype=F64))
    V_n, V_c = alpha**2 * VAR + sigma**2, alpha**2 * a + sigma**2
    by_hand = -(1 - w) * (x - alpha * MEAN) / V_n - w * (x - alpha * m_c) / V_c
    assert torch.allclose(guided, by_hand, atol=1e-11)


@pytest.mark.parametrize("w", [1.0, 2.0, 4.0])
def test_autoguidance_of_gaussian_denoisers_is_the_sharpened_score(w):
    path = GaussianPath(VP())
    good, weak = Gaussian(MEAN, torch.diag(VAR)), Gaussian(MEAN, torch.diag(3 * VAR))
    field = autoguidance(good.marginal(path).denoise, weak.marginal(path).denoise, w)
    x, t = _points(seed=1), torch.tensor(0.4, dtype=F64)
    score = path.convert(field(x, t), x, t, "x0", "score")
    alpha, sigma = path.alpha(t), path.sigma(t)
    V1, V0 = alpha**2 * VAR + sigma**2, alpha**2 * 3 * VAR + sigma**2
    expected = -(x - alpha * MEAN) * ((1 - w) / V0 + w / V1)
    assert torch.allclose(score, expected, atol=1e-11)
    if w > 1:  # steeper than the strong model's own score
        assert bool(((1 - w) / V0 + w / V1 > 1 / V1).all())


def _exact_models(path):
    m_c, a = _posterior()
    conditional = Gaussian(m_c, torch.diag(a)).marginal(path)
    unconditional = Gaussian(MEAN, torch.diag(VAR)).marginal(path)
    return conditional.eps, unconditional.eps


def test_cfgpp_at_scale_zero_is_ddim_and_at_one_is_not_conditional_ddim():
    path = GaussianPath(VP())
    conditional, unconditional = _exact_models(path)
    x1 = _points(seed=2)
    ours = cfgpp_sample(conditional, unconditional, x1, path, scale=0.0, steps=20).x
    assert torch.allclose(ours, ddim_sample(unconditional, x1, path, steps=20).x, atol=1e-11)
    # at lambda = 1 the renoising stays unconditional (D-cfgpp-step): not conditional DDIM
    ours = cfgpp_sample(conditional, unconditional, x1, path, scale=1.0, steps=20).x
    assert float((ours - ddim_sample(conditional, x1, path, steps=20).x).abs().max()) > 0.1


def test_cfgpp_step_renoises_with_the_unconditional_noise():
    path = GaussianPath(VP())
    conditional, unconditional = _exact_models(path)
    x, lam = _points(seed=3), 0.6
    t, s = torch.tensor(0.7, dtype=F64), torch.tensor(0.4, dtype=F64)
    got = cfgpp_sample(conditional, unconditional, x, path, scale=lam, grid=torch.stack([t, s])).x
    x0c = path.convert(conditional(x, t), x, t, "eps", "x0")
    x0n = path.convert(unconditional(x, t), x, t, "eps", "x0")
    expected = path.alpha(s) * (x0n + lam * (x0c - x0n)) + path.sigma(s) * unconditional(x, t)
    assert torch.allclose(got, expected, atol=1e-12)
    # CFG's DDIM step at the same scale renoises with the guided noise: a different state
    cfg = guide(lambda x, t, c: conditional(x, t), torch.zeros(7, dtype=torch.long), lam,
                unconditional=unconditional)
    ddim = ddim_sample(cfg, x, path, grid=torch.stack([t, s])).x
    assert float((ddim - got).abs().max()) > 1e-2


def test_the_laws_at_w_zero_and_one_are_the_data_and_the_conditional():
    m_c, a = _posterior()
    for w, (m, v) in ((0.0, (MEAN, VAR)), (1.0, (m_c, a))):
        laws = gaussian_guidance_laws(MEAN, VAR, NOISE, COND, w)
        for got in ((laws.sampled_mean, laws.sampled_variance), (laws.tilted_mean, laws.tilted_variance)):
            assert torch.allclose(got[0], m, atol=1e-12) and torch.allclose(got[1], v, rtol=1e-12)


@pytest.mark.parametrize("w", [0.5, 3.0])
def test_the_tilted_law_is_the_normalised_tilted_density(w):
    laws = gaussian_guidance_laws(MEAN, VAR, NOISE, COND, w)
    for k in range(2):
        mu, v, r, c = (float(z[k]) for z in (MEAN, VAR, NOISE, COND))

        def density(x, mu=mu, v=v, r=r, c=c):
            return math.exp(-((x - mu) ** 2) / (2 * v) - w * (c - x) ** 2 / (2 * r))

        Z = quad(density, -40, 40, epsabs=0, epsrel=1e-13, limit=200)[0]
        mean = quad(lambda x: x * density(x), -40, 40, epsabs=0, epsrel=1e-13, limit=200)[0] / Z
        var = quad(lambda x, mean=mean: (x - mean) ** 2 * density(x), -40, 40, epsabs=0, epsrel=1e-13, limit=200)[0] / Z
        assert laws.tilted_mean[k].item() == pytest.approx(mean, rel=1e-9)
        assert laws.tilted_variance[k].item() == pytest.approx(var, rel=1e-9)


def _guided_flow_on_condot(mu, v, m_c, a, w):
    """Mean and variance of the guided probability-flow ODE on CondOT (alpha = 1 - t,
    sigma = t, a path other than the derivation's), from N(0, 1) at t = 1 to t = 0, by scipy."""

    def rhs(t, y):
        m, P = y
        al, si = 1 - t, t
        f = -1 / al  # d(alpha)/dt / alpha
        half_g2 = si * 1 - f * si**2  # sigma sigma' - (alpha'/alpha) sigma^2
        Vn, Vc = al**2 * v + si**2, al**2 * a + si**2
        slope = (1 - w) / Vn + w / Vc
        offset = (1 - w) * al * mu / Vn + w * al * m_c / Vc
        J = f + half_g2 * slope  # dx/dt = f x - g^2/2 (offset - slope x)
        return [J * m - half_g2 * offset, 2 * J * P]

    start = 1 - 1e-9  # the start's O(1 - t) mismatch with N(0, 1) is far below the tolerance
    out = solve_ivp(rhs, [start, 0], [0.0, start**2], rtol=1e-12, atol=1e-14, method="DOP853")
    return out.y[0, -1], out.y[1, -1]


@pytest.mark.parametrize("w", [0.3, 2.0, 5.0])
def test_the_sampled_law_is_what_the_guided_flow_produces(w):
    laws = gaussian_guidance_laws(MEAN, VAR, NOISE, COND, w)
    m_c, a = _posterior()
    for k in range(2):
        mean, var = _guided_flow_on_condot(MEAN[k].item(), VAR[k].item(), m_c[k].item(), a[k].item(), w)
        assert laws.sampled_mean[k].item() == pytest.approx(mean, abs=1e-7)
        assert laws.sampled_variance[k].item() == pytest.approx(var, rel=1e-7)


@pytest.mark.parametrize("w", [0.5, 3.0, 6.0])
def test_the_tilted_gap_is_non_zero_and_matches_its_closed_form(w):
    laws = gaussian_guidance_laws(MEAN, VAR, NOISE, COND, w)
    a = _posterior()[1]
    gap = VAR ** (1 - w) * a**w - 1 / (1 / VAR + w / NOISE)
    assert torch.allclose(laws.sampled_variance - laws.tilted_variance, gap, rtol=1e-12)
    # wider than the tilted law for 0 < w < 1, narrower for w > 1 (D-guided-law-gap)
    ratio = laws.sampled_variance / laws.tilted_variance
    assert bool((ratio > 1).all()) if w < 1 else bool((ratio < 1).all())
    assert float(gap.abs().min()) > 1e-3


def test_the_sampled_mean_survives_a_tiny_conditional_variance():
    # a = 1e-4: the quadrature's integrand has a pole within a/2 of s = 1 (graded panels)
    small = torch.tensor([1e-4], dtype=F64)
    laws = gaussian_guidance_laws(MEAN[:1], VAR[:1], small, COND[:1], 2.0)
    m_c, a = 1 / (1 / VAR[0] + 1 / small[0]) * (MEAN[0] / VAR[0] + COND[0] / small[0]), 1 / (1 / VAR[0] + 1 / small[0])
    mean, var = _guided_flow_on_condot(MEAN[0].item(), VAR[0].item(), m_c.item(), a.item(), 2.0)
    assert laws.sampled_mean[0].item() == pytest.approx(mean, abs=1e-6)
    assert np.isfinite(laws.sampled_variance[0].item())
