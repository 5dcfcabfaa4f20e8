"""The bindings of the diffusion, flow-matching and discrete-diffusion families catch the errors
that once survived everything: each test plants one in the code (a monkeypatched function, the
way the mutation runner edits a line) and asserts that the binding that holds the code fails,
naming what it compared; the gradient a stop-gradient defines is checked against its exact
value where the two placements differ."""

import pytest
import sympy as sp
import torch

import genmath.derivations as registry
from genmath.families import diffusion, discrete_diffusion, flow_matching
from genmath.families.diffusion import _ddpm


def _binding(derivation, code):
    (binding,) = [b for b in registry.bindings_of(derivation) if code in b.code][:1]
    return binding


def _fails(derivation, code):
    result = _binding(derivation, code).verify()
    return not result.ok and "!=" in (result.residual or "")


def test_the_bindings_pass_on_the_code_as_it_is():
    for derivation, code in (
        ("D-masked-elbo", "genmath.families.discrete_diffusion.masked_diffusion_nelbo"),
        ("D-stochastic-interpolant", "genmath.families.flow_matching.interpolate"),
        ("D-ddpm-bound-simple", "genmath.families.diffusion.DDPM.elbo"),
        ("D-ddpm-hybrid-loss", "genmath.families.diffusion.DDPM.loss"),
        ("D-ddim-marginals", "genmath.families.diffusion.ddim_sample"),
    ):
        assert _binding(derivation, code).verify().ok, (derivation, code)


def test_a_masked_elbo_weight_over_alpha_instead_of_one_minus_alpha_fails(monkeypatch):
    """-alpha'/alpha for -alpha'/(1 - alpha): the statistical test once passed it."""
    original = discrete_diffusion.masked_diffusion_nelbo

    def planted(denoiser, path, x0, t=None, generator=None):
        value = original(denoiser, path, x0, t, generator)
        keep = path.alpha_bar(torch.as_tensor(t, dtype=value.dtype))
        return value * (1 - keep) / keep

    monkeypatch.setattr(discrete_diffusion, "masked_diffusion_nelbo", planted)
    assert _fails("D-masked-elbo", "genmath.families.discrete_diffusion.masked_diffusion_nelbo")


def test_a_factor_two_in_the_interpolants_gamma_dot_fails(monkeypatch):
    """d/dt sqrt(a t (1 - t)) off by 2 once survived both verify and the tests."""

    def planted(t, noise_scale):
        gamma = (noise_scale * t * (1 - t)).sqrt()
        return gamma, noise_scale * (1 - 2 * t) / gamma

    monkeypatch.setattr(flow_matching, "_interpolant_noise_scale", planted)
    assert _fails("D-stochastic-interpolant", "genmath.families.flow_matching.interpolate")


def test_a_per_step_kl_with_the_variances_swapped_fails(monkeypatch):
    """KL(p || q) for KL(q || p): equal variances hid it; the bound runs every variance."""
    from genmath.core.elbo import diagonal_gaussian_kl

    def planted(self, x0, xi, i, mean, variance):
        c_x0, c_xi, true_variance, _, _ = self.schedule.posterior_coefficients()
        true_mean = self._coefficient(c_x0, i - 1, xi) * x0 + self._coefficient(c_xi, i - 1, xi) * xi
        true_std = self._coefficient(true_variance, i - 1, xi).sqrt().expand_as(xi)
        return diagonal_gaussian_kl(mean, variance.sqrt().expand_as(xi), true_mean, true_std)

    monkeypatch.setattr(_ddpm.DDPM, "_step_kl", planted)
    assert _fails("D-ddpm-bound-simple", "genmath.families.diffusion.DDPM.elbo")


def test_the_hybrid_loss_without_its_stop_gradient_fails(monkeypatch):
    """The value of L_vlb is the same either way; its gradient in the mean is not."""

    def planted(self, x0, condition, generator):
        batch = x0.shape[0]
        i = torch.randint(2, self.schedule.steps + 1, (batch,), generator=generator)
        xi, _ = self.path.sample(x0, self.schedule.times.to(x0)[i], generator=generator)
        eps = self.predict_eps(xi, i, condition)  # no torch.no_grad(): the mean trains too
        mean = self.reverse_mean(xi, i, eps)
        variance = self.reverse_variance(xi, i, condition).expand_as(xi)
        return (self.schedule.steps - 1) * self._step_kl(x0, xi, i, mean, variance)

    monkeypatch.setattr(_ddpm.DDPM, "_vlb_term", planted)
    assert _fails("D-ddpm-hybrid-loss", "genmath.families.diffusion.DDPM.loss")


def test_ddim_with_c_proportional_to_eta_squared_fails(monkeypatch):
    """c = eta^2 sigma_s sqrt(...) agrees with the right c at eta = 0 and eta = 1 only."""
    original = diffusion.ddim_sample

    def planted(model, x1, path, *, eta=0.0, **options):
        return original(model, x1, path, eta=eta**2, **options)

    monkeypatch.setattr(diffusion, "ddim_sample", planted)
    assert _fails("D-ddim-marginals", "genmath.families.diffusion.ddim_sample")


def test_the_hybrid_loss_gradient_is_exact_and_differs_from_the_unstopped_one():
    """Autograd through DDPM.loss(vlb_weight) against the closed form of D-ddpm-hybrid-loss,
    at a point where the stop-gradient changes the gradient in the mean."""
    dtype = torch.float64
    path = diffusion.DiscreteSchedule.from_betas(torch.tensor([0.3, 0.4], dtype=dtype)).path
    schedule = diffusion.DiscreteSchedule.from_betas(torch.tensor([0.3, 0.4], dtype=dtype), path)
    x0 = torch.tensor([[0.7]], dtype=dtype)
    prediction = torch.tensor([[-0.4]], dtype=dtype, requires_grad=True)
    u = torch.tensor([[0.3]], dtype=dtype, requires_grad=True)
    model = diffusion.DDPM(
        lambda x, t: prediction.expand_as(x), schedule, "x0", "learned", lambda x, t: u.expand_as(x)
    )
    lam = 0.5
    loss = model.loss(x0, vlb_weight=lam, generator=torch.Generator().manual_seed(0))
    g_x0, g_u = torch.autograd.grad(loss, (prediction, u))
    # closed form at T = 2: abar_1 = 0.7, alpha_2 = 0.6
    abar_s, alpha = sp.Rational(7, 10), sp.Rational(6, 10)
    beta, abar_t = 1 - alpha, abar_s * alpha
    tilde = (1 - abar_s) / (1 - abar_t) * beta
    drop = abar_s / (1 - abar_s) - abar_t / (1 - abar_t)
    sigma = beta ** sp.Rational(3, 10) * tilde ** sp.Rational(7, 10)
    gap = drop * tilde * (sp.Rational(7, 10) + sp.Rational(4, 10)) ** 2
    expected_u = lam * sp.log(beta / tilde) / 2 * (1 - (tilde + gap) / sigma)
    assert float(g_x0) == pytest.approx(2 * (-0.4 - 0.7), abs=1e-12)
    assert float(g_u) == pytest.approx(float(expected_u), abs=1e-12)
    unstopped = 2 * (-0.4 - 0.7) + lam * float(drop * tilde / sigma) * (-0.4 - 0.7)
    assert abs(unstopped - float(g_x0)) > 0.05  # the two placements differ here


def test_edm_churn_gated_off_by_s_tmax_is_the_deterministic_sampler():
    path = diffusion.EDM(lambda x, c: x).path
    x1 = 80 * torch.randn(4, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))

    def model(x, t):
        return 0.3 * x

    plain = diffusion.edm_sample(model, x1, path, steps=4)
    gated = diffusion.edm_sample(model, x1, path, steps=4, churn=2.0, s_tmax=1e-9,
                                 generator=torch.Generator().manual_seed(1))
    churned = diffusion.edm_sample(model, x1, path, steps=4, churn=2.0,
                                   generator=torch.Generator().manual_seed(1))
    assert torch.equal(plain.x, gated.x)
    assert not torch.allclose(plain.x, churned.x)


def test_edm_loss_sums_over_the_event():
    edm = diffusion.EDM(lambda u, c: torch.zeros_like(u))
    x0 = torch.tensor([[0.3, -1.2]], dtype=torch.float64)
    both = edm.loss(x0, noise_level=0.7, generator=torch.Generator().manual_seed(3), reduction="none")
    noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(3), dtype=x0.dtype)
    c_skip = 0.25 / (0.49 + 0.25)
    weight = (0.49 + 0.25) / (0.7 * 0.5) ** 2
    expected = weight * ((c_skip * (x0 + 0.7 * noise) - x0) ** 2).sum()
    assert float(both) == pytest.approx(float(expected), rel=1e-12)


def test_reflow_pairs_carry_no_gradient_into_the_trained_flow():
    """The pairs are data for the next flow: the old model's parameters must not be trained
    through them (reflow_pairs integrates under no_grad)."""
    weight = torch.tensor(0.5, dtype=torch.float64, requires_grad=True)
    noise = torch.randn(8, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    x0, pairs_noise = flow_matching.reflow_pairs(lambda x, t: weight * x, noise, steps=4)
    assert not x0.requires_grad and torch.equal(pairs_noise, noise)
