"""The ELBO / score / likelihood / bijection / latent-family bindings: each derivation of the
area is bound and verifies, and a planted bug of each kind the issue names makes a binding of
the right derivation fail (variances swapped in the Gaussian KL, a mean-field variance from
the wrong matrix entry, a stop-gradient removed, a mask that lets a forbidden input through,
a mean for a sum, a sign). Plus exact gradients of the straight-through losses."""

import math

import pytest
import torch
from torch import distributions as D

from genmath import derivations as registry

AREA = [
    "D-kl-gaussian", "D-kl-vae", "D-elbo-linear-gaussian", "D-elbo-recon-kl", "D-elbo-gap",
    "D-beta-vae", "D-ppca-posterior", "D-mean-field-gaussian", "D-ppca-maximum-likelihood",
    "D-iwae-bound", "D-reinforce", "D-vdm-elbo", "D-elbo-weighting",
    "D-hyvarinen-score-matching", "D-sliced-score-matching", "D-denoising-score-matching",
    "D-instantaneous-change-of-variables", "D-hutchinson-unbiased", "D-hutchinson-variance",
    "D-mlp-structured-divergence", "D-bits-per-dim", "D-change-of-variables-1d",
    "D-flow-coupling-logdet", "D-flow-maf-logdet", "D-flow-planar", "D-flow-lu-logdet",
    "D-flow-composition", "D-actnorm-init", "D-flow-sigmoid-logdet", "D-chain-rule-nll",
    "D-straight-through", "D-lloyd-step", "D-lloyd-max-gaussian", "D-gaussian-autoregression",
]


def _failing(derivation_id):
    """The bindings of a derivation that fail (only the bindings run: fast)."""
    return [b.description for b in registry.bindings_of(derivation_id) if not b.verify().ok]


def test_the_duplicates_are_merged():
    ids = {d.id for d in registry.derivations()}
    assert "D-dsm-equals-esm" not in ids and "D-instantaneous-cov" not in ids
    assert {"D-denoising-score-matching", "D-instantaneous-change-of-variables"} <= ids


@pytest.mark.parametrize("derivation_id", ["D-kl-gaussian", "D-straight-through", "D-ppca-posterior"])
def test_derivations_of_the_area_verify_and_are_bound(derivation_id):
    result = registry.get(derivation_id).verify()
    assert result.ok and result.bound, [(s.index, s.residual) for s in result.failures()]


def test_every_derivation_of_the_area_has_a_binding():
    unbound = [i for i in AREA if not registry.bindings_of(i)]
    assert not unbound


def test_the_kl_starts_are_derived_not_typed():
    """D-kl-gaussian is symbolic from the moments (no quadrature step), and the chains that
    need a Gaussian KL take it from D-kl-gaussian."""
    kl = registry.get("D-kl-gaussian")
    assert all(s.tag == "symbolic" for s in kl.steps)
    for derivation_id in ("D-vdm-elbo", "D-elbo-gap", "D-elbo-recon-kl"):
        chain = registry.get(derivation_id).chain()
        assert any(
            getattr(step.lhs, "derivation", None) in ("D-kl-gaussian", "D-elbo-linear-gaussian")
            for _, step in chain
        ), derivation_id


# --------------------------------------------------------------------------- planted bugs


def test_variances_swapped_in_the_gaussian_kl_fail(monkeypatch):
    from genmath.core import elbo

    def swapped(mean, std, prior_mean=0.0, prior_std=1.0):
        prior_mean = torch.as_tensor(prior_mean, dtype=mean.dtype)
        prior_std = torch.as_tensor(prior_std, dtype=mean.dtype)
        kl = D.kl_divergence(D.Normal(mean, prior_std), D.Normal(prior_mean, std))
        return kl.reshape(mean.shape[0], -1).sum(-1)

    monkeypatch.setattr(elbo, "diagonal_gaussian_kl", swapped)
    assert _failing("D-kl-gaussian") and _failing("D-kl-vae")


def test_a_mean_field_variance_from_the_wrong_matrix_entry_fails(monkeypatch):
    """from_ppca's encoder variances 1/(Sigma_post^{-1})_jj, taken instead from the
    covariance's diagonal (the exact variances): only right when W^T W is diagonal."""
    from genmath.families import vae

    original = vae.LinearGaussianVAE.from_ppca.__func__

    def wrong_entry(cls, ppca):
        model = original(cls, ppca)
        _, cov = ppca.posterior(ppca.W.new_zeros(1, ppca.W.shape[0]))
        with torch.no_grad():
            model.encoder.log_std.copy_(0.5 * cov.diagonal().log())
        return model

    monkeypatch.setattr(vae.LinearGaussianVAE, "from_ppca", classmethod(wrong_entry))
    assert _failing("D-mean-field-gaussian")


def test_a_removed_stop_gradient_in_straight_through_fails(monkeypatch):
    from genmath.families import tokenizer

    monkeypatch.setattr(tokenizer, "straight_through", lambda z, q: q + (z - z.detach()))
    failing = _failing("D-straight-through")
    assert any("VectorQuantizer" in f for f in failing)
    assert any("straight_through" in f for f in failing)


def test_commitment_and_codebook_stop_gradients_swapped_fail(monkeypatch):
    from genmath.families import tokenizer

    original = tokenizer._squared_error
    calls = []

    def swapped(a, b):
        calls.append(1)
        if len(calls) % 2 == 1:  # the commitment term, computed first: sg on the wrong side
            return original(a.detach(), b.detach() * 0 + b)
        return original(a, b)

    monkeypatch.setattr(tokenizer, "_squared_error", swapped)
    assert any("VectorQuantizer" in f for f in _failing("D-straight-through"))


def test_a_removed_stop_gradient_in_the_reinforce_surrogate_fails(monkeypatch):
    from genmath.core import elbo

    def no_stop(f, log_q, baseline="leave_one_out"):
        return f + f.detach() * (log_q - log_q)

    monkeypatch.setattr(elbo, "score_function_surrogate", no_stop)
    assert len(_failing("D-reinforce")) == 3


def test_a_mask_that_lets_the_current_input_through_fails(monkeypatch):
    from genmath.core import _autoregressive

    class Leaky(_autoregressive._MaskedLinear):
        def forward(self, x):
            return torch.nn.functional.linear(x, self.weight, self.bias)  # no mask

    monkeypatch.setattr(_autoregressive, "_MaskedLinear", Leaky)
    assert len(_failing("D-chain-rule-nll")) >= 4
    assert _failing("D-flow-maf-logdet")


def test_a_mean_for_a_sum_over_coordinates_fails(monkeypatch):
    from genmath.core import score

    monkeypatch.setattr(score, "_squared_norm", lambda v: v.pow(2).flatten(1).mean(1))
    assert _failing("D-hyvarinen-score-matching") and _failing("D-denoising-score-matching")


def test_a_wrong_posterior_covariance_fails(monkeypatch):
    """s^2 M instead of s^2 M^{-1}."""
    from genmath.analytic import _ppca

    original = _ppca.PPCA.posterior

    def wrong(self, x):
        mean, cov = original(self, x)
        return mean, self.noise_std**4 * torch.linalg.inv(cov)

    monkeypatch.setattr(_ppca.PPCA, "posterior", wrong)
    assert _failing("D-ppca-posterior")


def test_rademacher_probes_in_zero_one_fail(monkeypatch):
    from genmath.core import divergence

    def zero_one(x, probes=1, noise="rademacher", generator=None):
        bits = torch.randint(0, 2, (probes, *x.shape), generator=generator)
        return bits.to(x.dtype)

    monkeypatch.setattr(divergence, "draw_probes", zero_one)
    assert _failing("D-instantaneous-change-of-variables")


def test_a_sign_in_the_planar_log_det_fails(monkeypatch):
    from genmath.core import _matrix_bijections

    original = _matrix_bijections.Planar._forward

    def flipped(self, x, context):
        y, logdet = original(self, x, context)
        return y, -logdet

    monkeypatch.setattr(_matrix_bijections.Planar, "_forward", flipped)
    assert _failing("D-flow-planar")


# --------------------------------------------------------------------------- exact gradients


def test_vq_gradients_are_the_derived_ones_where_the_placements_differ():
    """One code e, encoder output z, decoder target x: the loss (x - st)^2 + (sg z - e)^2 +
    beta (z - sg e)^2 has d/dz = -2(x - e) + 2 beta (z - e) and d/de = 2(e - z); with the
    stop-gradients moved (both on the code) d/de would also get -2(x - e) + 2 beta (e - z)."""
    from genmath.families.tokenizer import VectorQuantizer

    beta, x, z0, e0 = 0.4, 1.3, 0.45, -0.2
    vq = VectorQuantizer(1, 1, beta=beta).double()
    with torch.no_grad():
        vq.codebook.fill_(e0)
    z = torch.tensor([[z0]], dtype=torch.float64, requires_grad=True)
    out = vq(z)
    loss = ((x - out.quantized) ** 2).sum() + out.loss.sum()
    dz, de = torch.autograd.grad(loss, [z, vq.codebook])
    assert float(dz) == pytest.approx(-2 * (x - e0) + 2 * beta * (z0 - e0), abs=1e-14)
    assert float(de) == pytest.approx(2 * (e0 - z0), abs=1e-14)


def test_fsq_gradient_is_the_bound_derivative_and_reinforce_gradient_is_exact():
    from genmath.core.elbo import score_function_surrogate
    from genmath.families.tokenizer import FSQ

    fsq = FSQ([5], eps=0.1).double()
    z = torch.tensor([[0.3]], dtype=torch.float64, requires_grad=True)
    out = fsq(z)
    (grad,) = torch.autograd.grad(((1.0 - out.quantized) ** 2).sum(), z)
    r = float(out.codes.detach())  # the rounded code r/h
    assert float(grad) == pytest.approx(-2 * (1 - r) * 0.9 * (1 - math.tanh(0.3) ** 2), abs=1e-14)

    # f(z) = z^2 + mu z at the draw z, q = N(mu, s^2), baseline b: d/dmu = z + (f - b)(z - mu)/s^2
    mu, s, z0, b = 0.7, 1.5, -0.4, 0.9
    mean = torch.tensor(mu, dtype=torch.float64, requires_grad=True)
    draw = torch.tensor(z0, dtype=torch.float64)
    log_q = D.Normal(mean, s).log_prob(draw)
    surrogate = score_function_surrogate((draw**2 + mean * draw)[None], log_q[None], torch.tensor([b]))
    (g,) = torch.autograd.grad(surrogate.sum(), mean)
    assert float(surrogate) == pytest.approx(z0**2 + mu * z0, abs=1e-15)
    assert float(g) == pytest.approx(z0 + (z0**2 + mu * z0 - b) * (z0 - mu) / s**2, abs=1e-14)
