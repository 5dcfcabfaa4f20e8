"""Mutants that once survived `genmath verify` (tools/mutation.py), each planted here as a
monkeypatch: the binding written for it must fail, naming what it compared. Each case is one
where the bug is invisible at the size the earlier bindings used (one step term, a one-element
event, a point without a graph, T = 1)."""


import genmath.derivations as registry
from genmath.analytic import PPCA
from genmath.families import discrete_diffusion, gan, vae
from genmath.families.diffusion import _ddpm


def _binding(derivation, words):
    (binding,) = [b for b in registry.bindings_of(derivation) if words in b.description]
    return binding


def _fails(derivation, words):
    result = _binding(derivation, words).verify()
    return not result.ok and "!=" in (result.residual or "")


def test_the_new_bindings_pass_on_the_code_as_it_is():
    for derivation, words in (
        ("D-ddpm-bound-simple", "three-step"),
        ("D-gradient-penalties", "in the (detached) real one"),
        ("D-elbo-gap", "slope along"),
        ("D-d3pm-hybrid-loss", "on two steps"),
    ):
        assert _binding(derivation, words).verify().ok, (derivation, words)


def test_a_mean_over_the_ddpm_step_terms_fails(monkeypatch):
    original = _ddpm.DDPM.elbo

    def planted(self, x0, condition=None, *, terms=False, **options):
        _, parts = original(self, x0, condition, terms=True, **options)
        value = -(parts["prior"] + parts["steps"].mean(1) + parts["decoder"])
        return (value, parts) if terms else value

    monkeypatch.setattr(_ddpm.DDPM, "elbo", planted)
    assert _fails("D-ddpm-bound-simple", "three-step")


def test_a_gradient_penalty_without_the_real_points_stop_gradient_fails(monkeypatch):
    original = gan.gradient_penalty

    def planted(critic, real, fake, weight=10.0, generator=None):
        # the same value, with a gradient into the real point (as without its .detach())
        value = original(critic, real, fake, weight=weight, generator=generator)
        return value + (real - real.detach()).sum()

    monkeypatch.setattr(gan, "gradient_penalty", planted)
    assert _fails("D-gradient-penalties", "in the (detached) real one")


def test_as_ppca_keeping_the_noise_scales_graph_fails(monkeypatch):
    def planted(self):
        d = self.decoder
        return PPCA(d.weight.detach(), d.bias.detach(), d.log_noise_std.exp())

    monkeypatch.setattr(vae.LinearGaussianVAE, "as_ppca", planted)
    assert _fails("D-elbo-gap", "slope along")


def test_d3pm_negative_elbo_summing_cross_entropies_fails(monkeypatch):
    def planted(self, x0, generator=None):
        total = self.prior_kl(x0)
        for i in range(1, self.steps + 1):
            total = total + self.step_kl(x0, i, generator)[1]
        return total

    monkeypatch.setattr(discrete_diffusion.D3PM, "negative_elbo", planted)
    assert _fails("D-d3pm-hybrid-loss", "on two steps")
