"""The Gaussian Schrödinger bridge in two dimensions: its marginal constraints, the entropic-OT
(Gibbs) form of its coupling, its drift generating its marginals, the optimal-transport limit
against the Bures map computed here, IMF/DSBM iterates approaching it, and bridge matching's
minimiser."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import torch

from genmath.families import schrodinger_bridge as sb
from genmath.testing import assert_close, assert_mean_matches

F64 = torch.float64
M0 = torch.tensor([1.0, -0.5], dtype=F64)
M1 = torch.tensor([-1.0, 2.0], dtype=F64)
S0 = torch.tensor([[1.0, 0.4], [0.4, 0.6]], dtype=F64)
S1 = torch.tensor([[0.5, -0.2], [-0.2, 1.5]], dtype=F64)
EYE = torch.eye(2, dtype=F64)


def _bridge(sigma):
    return sb.GaussianSchrodingerBridge(M0, S0, M1, S1, sigma)


def _slope(process, t):
    """A_t read off the code's drift, column by column: drift(m_t + e_i) - drift(m_t)."""
    m = process.mean(t)
    points = torch.cat([m[None], m + EYE])
    values = process.drift(points, t)
    return (values[1:] - values[0]).T


@pytest.mark.parametrize("sigma", [0.3, 1.0, 2.5])
def test_marginal_constraints_at_both_ends(sigma):
    bridge = _bridge(sigma)
    assert_close(bridge.mean(0.0), M0, atol=1e-15)
    assert_close(bridge.mean(1.0), M1, atol=1e-15)
    assert_close(bridge.cov(0.0), S0, atol=1e-14)
    assert_close(bridge.cov(1.0), S1, atol=1e-14)
    coupling = bridge.coupling()
    assert_close(coupling.cov[:2, :2], S0, atol=1e-14)
    assert_close(coupling.cov[2:, 2:], S1, atol=1e-14)


@pytest.mark.parametrize("sigma", [0.3, 1.0, 2.5])
def test_the_coupling_has_the_entropic_ot_gibbs_form(sigma):
    # pi ∝ exp(-|x0 - x1|^2 / (2 sigma^2)) f(x0) g(x1): the joint precision's off-diagonal block
    # is exactly -I / sigma^2, the only cross term of the log-density
    precision = torch.linalg.inv(_bridge(sigma).coupling().cov)
    assert_close(precision[:2, 2:], -EYE / sigma**2, atol=1e-11)
    # a coupling that is not the bridge's fails the same check
    other = torch.linalg.inv(sb.GaussianBridgeMixture(M0, S0, M1, S1, 0.5 * _bridge(sigma).cross_cov, sigma).coupling().cov)
    assert float((other[:2, 2:] + EYE / sigma**2).abs().max()) > 0.05


@pytest.mark.parametrize("sigma", [0.0, 0.5, 1.5])
def test_the_drift_generates_the_marginals(sigma):
    bridge = _bridge(sigma)
    h = 1e-5
    for t in (0.1, 0.45, 0.8, 1.0 - 2 * h):
        slope = _slope(bridge, t)
        d_cov = (bridge.cov(t + h) - bridge.cov(t - h)) / (2 * h)
        lyapunov = slope @ bridge.cov(t) + bridge.cov(t) @ slope.T + sigma**2 * EYE
        assert_close(d_cov, lyapunov, atol=1e-8, name=f"dSigma/dt at t = {t}")
        assert_close(bridge.drift(bridge.mean(t)[None], t)[0], M1 - M0, atol=1e-13)
        # the SB's drift is a gradient (sigma^2 grad log phi_t): its slope is symmetric
        assert_close(slope, slope.T, atol=1e-12, name="the SB drift's slope")


def test_any_markovian_projection_keeps_the_marginals_but_only_the_bridge_is_a_gradient():
    # an independent coupling: integrate dSigma/dt = A Sigma + Sigma A^T + sigma^2 I with RK4
    # from Sigma_0 using the code's drift; it must land on Sigma_1 (Markovian projection)
    sigma = 0.8
    mixture = sb.GaussianBridgeMixture(M0, S0, M1, S1, torch.zeros(2, 2, dtype=F64), sigma)

    def rate(cov, t):
        slope = _slope(mixture, t)
        return slope @ cov + cov @ slope.T + sigma**2 * EYE

    cov, steps = S0.clone(), 200
    for k in range(steps):
        t, h = k / steps, 1 / steps
        k1 = rate(cov, t)
        k2 = rate(cov + h / 2 * k1, t + h / 2)
        k3 = rate(cov + h / 2 * k2, t + h / 2)
        k4 = rate(cov + h * k3, t + h)
        cov = cov + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
    assert_close(cov, S1, atol=1e-9, name="Sigma_1 reached by the projected drift")
    slope = _slope(mixture, 0.5)
    assert float((slope - slope.T).abs().max()) > 1e-2  # not a gradient: not the bridge


def _bures_map(cov0, cov1):
    """The optimal-transport map between centred Gaussians, from its formula (scipy)."""
    a, b = cov0.numpy(), cov1.numpy()
    root = scipy.linalg.sqrtm(a).real
    inv_root = np.linalg.inv(root)
    return torch.from_numpy(inv_root @ scipy.linalg.sqrtm(root @ b @ root).real @ inv_root)


def test_as_sigma_vanishes_the_bridge_tends_to_the_optimal_transport_map():
    T = _bures_map(S0, S1)
    assert_close(T @ S0 @ T, S1, atol=1e-12, name="the Bures map pushes S0 to S1")
    gaps = [float((_bridge(s).cross_cov - S0 @ T).abs().max()) for s in (1.0, 0.3, 0.1, 0.03)]
    assert all(x > y for x, y in zip(gaps, gaps[1:], strict=False)), gaps
    assert gaps[-1] < 1e-3 and gaps[0] > 0.1  # O(sigma^2)
    assert_close(_bridge(0.0).cross_cov, S0 @ T, atol=1e-12, name="the sigma = 0 coupling")
    root = scipy.linalg.sqrtm(S0.numpy()).real
    w2 = (torch.trace(S0) + torch.trace(S1) + (M1 - M0).square().sum()
          - 2 * float(np.trace(scipy.linalg.sqrtm(root @ S1.numpy() @ root).real)))
    assert_close(_bridge(0.0).transport_cost(), w2, atol=1e-12, name="W2^2")
    assert float(_bridge(1.0).transport_cost()) > float(w2) + 0.1  # the entropic plan costs more


@pytest.mark.parametrize("sigma", [1.0, 0.5])
def test_imf_iterates_approach_the_closed_form_bridge(sigma):
    target = _bridge(sigma)
    start = sb.GaussianBridgeMixture(M0, S0, M1, S1, torch.zeros(2, 2, dtype=F64), sigma)
    iterates = sb.iterative_markovian_fitting(start, 6, steps=128)
    gaps = [float((m.cross_cov - target.cross_cov).norm()) for m in iterates]
    assert all(x > y for x, y in zip(gaps, gaps[1:], strict=False)), gaps
    assert gaps[-1] < 0.15 * gaps[0], gaps
    # the two directions of the exact projection give one coupling (one Markov path measure)
    forward = sb.iterative_markovian_fitting(start, 2, alternate=False, steps=128)
    assert_close(forward[-1].cross_cov, iterates[2].cross_cov, atol=1e-10)
    # and the bridge is the fixed point
    assert_close(target.project(steps=128).cross_cov, target.cross_cov, atol=1e-10)
    assert_close(target.project("backward", steps=128).cross_cov, target.cross_cov, atol=1e-10)


def test_bridge_draws_have_the_mixtures_marginals(generator):
    sigma, t, n = 0.7, 0.3, 40_000
    mixture = sb.GaussianBridgeMixture(M0, S0, M1, S1, 0.3 * _bridge(sigma).cross_cov, sigma)
    pairs = mixture.coupling().sample(n, generator)
    xt, _ = sb.brownian_bridge(pairs[:, :2], pairs[:, 2:], t, sigma, generator)
    centred = xt - mixture.mean(t)
    assert_mean_matches(xt, mixture.mean(t), precision=0.05, name="E x_t")
    second = (centred[:, :, None] * centred[:, None, :]).flatten(1)
    assert_mean_matches(second, mixture.cov(t).flatten(), precision=0.05, name="Cov x_t")


def test_bridge_matching_is_minimised_by_the_markovian_projection(generator):
    # the loss's gradient in an affine correction f + u + U x, at u = U = 0, has mean zero for
    # the exact projected drift, and not for another coupling's drift
    sigma, t, n = 0.9, 0.4, 40_000
    mixture = sb.GaussianBridgeMixture(M0, S0, M1, S1, torch.zeros(2, 2, dtype=F64), sigma)
    pairs = mixture.coupling().sample(n, generator)
    x0, x1 = pairs[:, :2], pairs[:, 2:]

    def gradient(drift):
        correction = torch.zeros(n, 2, 3, dtype=F64, requires_grad=True)

        def model(xt, s):
            features = torch.cat([torch.ones(n, 1, dtype=F64), xt[:, :1], xt[:, 1:]], 1)
            return drift(xt, s) + (correction * features[:, None, :]).sum(-1)

        loss = sb.bridge_matching_loss(model, x0, x1, sigma, t=t, generator=generator, reduction="none")
        (g,) = torch.autograd.grad(loss.sum(), correction)
        return g.flatten(1)

    assert_mean_matches(gradient(mixture.drift), torch.zeros(6, dtype=F64), precision=0.1,
                        name="bridge matching at the projection")
    wrong = gradient(_bridge(sigma).drift).mean(0)
    assert float(wrong.abs().max()) > 0.15  # beyond the precision the zero was tested to


def test_bad_input_is_refused_by_name():
    with pytest.raises(ValueError, match="sigma"):
        sb.GaussianSchrodingerBridge(M0, S0, M1, S1, -1.0)
    with pytest.raises(ValueError, match="cross_cov"):
        sb.GaussianBridgeMixture(M0, S0, M1, S1, 3 * EYE, 1.0)
    with pytest.raises(ValueError, match="cov1"):
        sb.GaussianSchrodingerBridge(M0, S0, M1, -S1, 1.0)
    with pytest.raises(ValueError, match="mean1"):
        sb.GaussianSchrodingerBridge(M0, S0, M1[:1], S1, 1.0)
    bridge = _bridge(1.0)
    with pytest.raises(ValueError, match="direction"):
        bridge.project("sideways")
    with pytest.raises(ValueError, match=r"x must have shape \(B, 2\)"):
        bridge.drift(torch.zeros(3, 3, dtype=F64), 0.5)
    x = torch.zeros(4, 2, dtype=F64)
    with pytest.raises(ValueError, match="t must be < 1"):
        sb.brownian_bridge(x, x, 1.0, 1.0)
    with pytest.raises(ValueError, match="x1 must have the shape"):
        sb.brownian_bridge(x, x[:, :1], 0.5, 1.0)
    with pytest.raises(ValueError, match="drift must return"):
        sb.bridge_matching_loss(lambda xt, s: xt[:, :1], x, x, 1.0)
    with pytest.raises(TypeError, match="start"):
        sb.iterative_markovian_fitting("bridge", 3)
