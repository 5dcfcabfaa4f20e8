"""GAN losses against the divergences they bound, on two 1-D Gaussians (float64).

Expected values are independent of genmath: densities from scipy.stats, divergences by
scipy quadrature or closed form, pointwise optimal discriminators by brute-force scalar
minimisation.
"""

import math

import numpy as np
import pytest
import torch
from scipy import integrate, optimize, stats

from genmath.analytic import Gaussian
from genmath.families import gan
from genmath.testing import assert_close, assert_mean_matches

# p (data) and q (generator): different means *and* variances, so no symmetry hides a sign.
# q has the heavier tails, so every divergence here (Pearson chi^2 included) is finite.
P_MEAN, P_STD = 0.4, 0.75
Q_MEAN, Q_STD = -0.9, 1.1
p_law = stats.norm(P_MEAN, P_STD)
q_law = stats.norm(Q_MEAN, Q_STD)
LIMITS = (-14.0, 14.0)


def _gaussian(mean, std):
    # built at import, before the float64 fixture runs: the dtype is explicit
    return Gaussian(
        torch.tensor([mean], dtype=torch.float64), torch.tensor([[std**2]], dtype=torch.float64)
    )


P, Q = _gaussian(P_MEAN, P_STD), _gaussian(Q_MEAN, Q_STD)


def _quad(fn):
    value, error = integrate.quad(fn, *LIMITS, limit=400, epsabs=1e-12, epsrel=1e-12)
    assert error < 1e-8
    return value


def _torch_at(fn, x: float) -> float:
    return float(fn(torch.tensor([[x]])))


def _kl_to_mixture(a, b):
    return _quad(lambda x: a.pdf(x) * math.log(2 * a.pdf(x) / (a.pdf(x) + b.pdf(x))))


JSD = 0.5 * (_kl_to_mixture(p_law, q_law) + _kl_to_mixture(q_law, p_law))
KL_QP = math.log(P_STD / Q_STD) + (Q_STD**2 + (Q_MEAN - P_MEAN) ** 2) / (2 * P_STD**2) - 0.5


def _loss_at_optimum_by_quadrature(name: str, shift: float = 0.0) -> float:
    """E_p[phi(v)] + E_q[psi(v)] at v = v* + shift, by quadrature of genmath's terms."""
    spec = gan.GAN_LOSSES[name]
    v_star = gan.optimal_discriminator(name, P.log_prob, Q.log_prob)

    def integrand(x):
        v = v_star(torch.tensor([[x]])) + shift
        return p_law.pdf(x) * float(spec.real_term(v)) + q_law.pdf(x) * float(spec.fake_term(v))

    return _quad(integrand)


# --- minimax --------------------------------------------------------------------------------


def test_minimax_value_at_optimal_discriminator_is_jsd_bound():
    value = -_loss_at_optimum_by_quadrature("minimax")
    assert abs(value - (-math.log(4) + 2 * JSD)) < 1e-9
    assert JSD > 0.1  # the case is far from the trivial q = p


def test_minimax_monte_carlo_value_two_sided(generator):
    n = 40_000
    xp, xq = P.sample(n, generator), Q.sample(n, generator)
    v_star = gan.optimal_discriminator("minimax", P.log_prob, Q.log_prob)
    spec = gan.GAN_LOSSES["minimax"]
    per_pair = spec.real_term(v_star(xp)) + spec.fake_term(v_star(xq))
    assert_mean_matches(-per_pair[:, None], torch.tensor([-math.log(4) + 2 * JSD]))
    # the batch loss is the mean of the same terms
    assert_close(
        gan.minimax_discriminator_loss(v_star(xp), v_star(xq)), per_pair.mean(), atol=1e-12
    )


@pytest.mark.parametrize("name", ["minimax", "least_squares", "hinge", "fgan_kl", "fgan_js"])
def test_perturbed_discriminator_is_worse(name):
    best = _loss_at_optimum_by_quadrature(name)
    for shift in (-0.3, 0.3):
        assert _loss_at_optimum_by_quadrature(name, shift) > best + 1e-4


def test_non_saturating_generator_loss_at_optimum():
    """-E_q[log D*] = KL(q||p) - KL(q||m) + log 2 (Arjovsky & Bottou 2017)."""
    v_star = gan.optimal_discriminator("non_saturating", P.log_prob, Q.log_prob)
    value = _quad(
        lambda x: (
            q_law.pdf(x) * _torch_at(lambda z: gan.non_saturating_generator_loss(v_star(z)), x)
        )
    )
    expected = KL_QP - _kl_to_mixture(q_law, p_law) + math.log(2)
    assert abs(value - expected) < 1e-9
    minimax = _quad(
        lambda x: q_law.pdf(x) * _torch_at(lambda z: gan.minimax_generator_loss(v_star(z)), x)
    )
    # E_q[log(1 - D*)] = KL(q||m) - log 2: the minimax generator's part of the JSD
    assert abs(minimax - (_kl_to_mixture(q_law, p_law) - math.log(2))) < 1e-9


# --- least squares, hinge ---------------------------------------------------------------------


def test_least_squares_optimum_values():
    chi = _quad(lambda x: (p_law.pdf(x) - q_law.pdf(x)) ** 2 / (p_law.pdf(x) + q_law.pdf(x)))
    assert abs(_loss_at_optimum_by_quadrature("least_squares") - (1 - chi / 2)) < 1e-9
    v_star = gan.optimal_discriminator("least_squares", P.log_prob, Q.log_prob)
    generator_value = _quad(
        lambda x: (
            (p_law.pdf(x) + q_law.pdf(x))
            * _torch_at(lambda z: gan.least_squares_generator_loss(v_star(z)), x)
        )
    )
    assert abs(generator_value - chi / 2) < 1e-9


def test_hinge_optimum_is_total_variation():
    tv = 0.5 * _quad(lambda x: abs(p_law.pdf(x) - q_law.pdf(x)))
    # hinge's optimum is a step function: integrate on both sides of the crossing points
    spec = gan.GAN_LOSSES["hinge"]
    v_star = gan.optimal_discriminator("hinge", P.log_prob, Q.log_prob)
    xs = np.linspace(*LIMITS, 400_001)
    v = v_star(torch.from_numpy(xs)[:, None])
    integrand = (
        p_law.pdf(xs) * spec.real_term(v).numpy() + q_law.pdf(xs) * spec.fake_term(v).numpy()
    )
    value = integrate.trapezoid(integrand, xs)
    assert abs(value - (2 - 2 * tv)) < 1e-6


@pytest.mark.parametrize("name", sorted(gan.GAN_LOSSES))
@pytest.mark.parametrize("p_value,q_value", [(0.3, 0.05), (0.02, 0.4), (1.3, 0.9)])
def test_optimal_output_is_the_pointwise_minimiser(name, p_value, q_value):
    spec = gan.GAN_LOSSES[name]

    def pointwise(v):
        v = torch.tensor([v])
        with np.errstate(all="ignore"):
            value = p_value * float(spec.real_term(v)) + q_value * float(spec.fake_term(v))
        return value if math.isfinite(value) else 1e300

    brute = optimize.minimize_scalar(
        pointwise, bounds=(-12, 12), method="bounded", options={"xatol": 1e-10}
    ).x
    got = float(
        spec.optimal_output(torch.tensor(math.log(p_value)), torch.tensor(math.log(q_value)))
    )
    assert abs(got - brute) < 1e-5
    assert pointwise(got) <= pointwise(brute) + 1e-12


# --- f-GAN ----------------------------------------------------------------------------------

F_OF_RATIO = {  # written out from Nowozin et al. (2016), Table 1
    "kl": lambda r: r * math.log(r),
    "reverse_kl": lambda r: -math.log(r),
    "js": lambda r: r * math.log(r) - (r + 1) * math.log((r + 1) / 2),
    "pearson": lambda r: (r - 1) ** 2,
    "squared_hellinger": lambda r: (math.sqrt(r) - 1) ** 2,
}


def _f_divergence(name):
    return _quad(lambda x: q_law.pdf(x) * F_OF_RATIO[name](p_law.pdf(x) / q_law.pdf(x)))


@pytest.mark.parametrize("name", sorted(gan.F_DIVERGENCES))
def test_fgan_bound_at_optimum_equals_divergence(name):
    exact = _f_divergence(name)
    assert exact > 0.05
    assert abs(-_loss_at_optimum_by_quadrature(f"fgan_{name}") - exact) < 1e-8 * (1 + exact)
    for shift in (-0.2, 0.2):
        assert -_loss_at_optimum_by_quadrature(f"fgan_{name}", shift) < exact - 1e-5


def test_fgan_kl_matches_closed_form():
    kl_pq = math.log(Q_STD / P_STD) + (P_STD**2 + (P_MEAN - Q_MEAN) ** 2) / (2 * Q_STD**2) - 0.5
    assert abs(_f_divergence("kl") - kl_pq) < 1e-9


@pytest.mark.parametrize("name", ["kl", "reverse_kl", "js", "squared_hellinger"])
def test_fgan_bound_monte_carlo_two_sided(name, generator):
    exact = _f_divergence(name)
    n = 40_000
    xp, xq = P.sample(n, generator), Q.sample(n, generator)
    v_star = gan.optimal_discriminator(f"fgan_{name}", P.log_prob, Q.log_prob)
    spec = gan.F_DIVERGENCES[name]
    real, fake = spec.activation(v_star(xp)), spec.conjugate(spec.activation(v_star(xq)))
    per_pair = real - fake
    if name == "reverse_kl":
        # the real term is -q/p under p, and q is wider than sqrt(2) times p here: its variance
        # E_p[(q/p)^2] - 1 is infinite, so no standard error exists (the heavy-tail check refuses
        # it). Its expectation is taken by quadrature; the fake term, under q, by Monte Carlo.
        real_mean = _quad(
            lambda x: p_law.pdf(x) * _torch_at(lambda y: spec.activation(v_star(y)), x)
        )
        assert_mean_matches(-fake[:, None], torch.tensor([exact - real_mean]), rtol=0.1)
    else:
        assert_mean_matches(per_pair[:, None], torch.tensor([exact]), rtol=0.1)
    assert_close(
        gan.fgan_bound(name, v_star(xp), v_star(xq)), per_pair.mean(), atol=1e-12, rtol=1e-12
    )
    assert_close(
        gan.fgan_discriminator_loss(name, v_star(xp), v_star(xq)), -per_pair.mean(), atol=1e-12
    )


@pytest.mark.parametrize("name", sorted(gan.F_DIVERGENCES))
def test_fgan_activation_lands_in_conjugate_domain(name):
    spec = gan.F_DIVERGENCES[name]
    raw = torch.linspace(-30, 30, 601)
    assert torch.isfinite(spec.conjugate(spec.activation(raw))).all()
    assert torch.isfinite(gan.fgan_generator_loss(name, raw))


def test_fgan_rejects_critic_outside_conjugate_domain():
    with pytest.raises(ValueError, match="domain of its conjugate"):
        gan.fgan_bound("reverse_kl", torch.tensor([-1.0]), torch.tensor([0.5]), activated=True)
    with pytest.raises(ValueError, match="divergence must be one of"):
        gan.fgan_bound("tv", torch.zeros(2), torch.zeros(2))


# --- Wasserstein ----------------------------------------------------------------------------


def test_wasserstein_optimum_between_gaussian_translates(generator):
    m1, m2, s = 1.7, -0.4, 0.8
    p, q = _gaussian(m1, s), _gaussian(m2, s)
    # W1 in 1-D is the L1 distance of the CDFs (independent of genmath)
    w1 = _quad(lambda x: abs(stats.norm(m1, s).cdf(x) - stats.norm(m2, s).cdf(x)))
    assert abs(w1 - abs(m1 - m2)) < 1e-9
    critic = gan.optimal_wasserstein_critic(p, q)
    n = 20_000
    xp, xq = p.sample(n, generator), q.sample(n, generator)
    per_pair = critic(xp) - critic(xq)
    assert_mean_matches(per_pair[:, None], torch.tensor([w1]))
    assert_close(-gan.wasserstein_critic_loss(critic(xp), critic(xq)), per_pair.mean(), atol=1e-12)
    # another 1-Lipschitz critic does worse: tanh has slope < 1 away from 0
    worse = _quad(lambda x: math.tanh(x) * (stats.norm(m1, s).pdf(x) - stats.norm(m2, s).pdf(x)))
    assert worse < w1 - 0.1


def test_wasserstein_critic_in_two_dimensions(generator):
    cov = torch.tensor([[1.0, 0.7], [0.7, 2.0]])
    mean_p, mean_q = torch.tensor([1.0, -2.0]), torch.tensor([-0.5, 0.5])
    p, q = Gaussian(mean_p, cov), Gaussian(mean_q, cov)
    critic = gan.optimal_wasserstein_critic(p, q)
    x = torch.randn(50, 2, generator=generator)
    # unit gradient everywhere: 1-Lipschitz and tight
    assert_close(gan.gradient_penalty(critic, x, x.flip(0), generator=generator), 0.0, atol=1e-12)
    n = 20_000
    per_pair = critic(p.sample(n, generator)) - critic(q.sample(n, generator))
    assert_mean_matches(per_pair[:, None], torch.linalg.vector_norm(mean_p - mean_q)[None])
    with pytest.raises(ValueError, match="same covariance"):
        gan.optimal_wasserstein_critic(p, Gaussian(mean_q, 2 * cov))
    with pytest.raises(ValueError, match="must be a genmath.analytic.Gaussian"):
        gan.optimal_wasserstein_critic(p, object())


# --- penalties ------------------------------------------------------------------------------


def test_gradient_penalty_values(generator):
    real = torch.randn(64, 3, generator=generator)
    fake = torch.randn(64, 3, generator=generator) + 2.0
    unit = torch.tensor([0.6, 0.0, -0.8])
    assert_close(
        gan.gradient_penalty(lambda x: x @ unit, real, fake, generator=generator), 0.0, atol=1e-12
    )
    # slope 2.5: (2.5 - 1)^2 * weight at every interpolate
    penalty = gan.gradient_penalty(lambda x: x @ (2.5 * unit), real, fake, weight=4.0)
    assert_close(penalty, 4.0 * 1.5**2, atol=1e-12)
    # a non-linear critic, with real == fake so the interpolates are known: grad = x
    quadratic = gan.gradient_penalty(lambda x: 0.5 * x.pow(2).sum(1), real, real, weight=3.0)
    expected = 3.0 * (real.norm(dim=1) - 1).pow(2).mean()
    assert_close(quadratic, expected, atol=1e-12)
    assert quadratic > 0


def test_r1_r2_penalties_values(generator):
    a = torch.tensor([0.5, -1.0])
    B = torch.tensor([[1.0, 2.0], [-0.5, 0.3]])  # not symmetric: grad is a + (B + B^T) x / 2

    def discriminator(x):
        return x @ a + 0.5 * ((x @ B) * x).sum(1)

    real = torch.randn(32, 2, generator=generator)
    fake = torch.randn(16, 2, generator=generator)
    for penalty, x in ((gan.r1_penalty, real), (gan.r2_penalty, fake)):
        grad = a + x @ ((B + B.T) / 2)
        expected = 0.5 * 2.0 * grad.pow(2).sum(1).mean()
        assert_close(penalty(discriminator, x, gamma=2.0), expected, atol=1e-12)


def test_penalties_keep_the_graph_for_the_discriminator_update():
    critic = gan.MLP(2, None, hidden=8, depth=2)
    x = torch.randn(10, 2)
    gan.r1_penalty(critic, x).backward()
    # the last bias does not change the gradient in x; every weight matrix does
    assert all(
        p.grad is not None and p.grad.abs().sum() > 0 for p in critic.parameters() if p.ndim == 2
    )


def test_clip_weights():
    net = gan.MLP(2, None, hidden=8, depth=2)
    with torch.no_grad():
        for p in net.parameters():
            p.mul_(10)
    gan.clip_weights(net, 0.05)
    assert max(p.detach().abs().max().item() for p in net.parameters()) <= 0.05


def test_relativistic_losses_are_symmetric_pairings():
    real, fake = torch.tensor([1.0, -0.5]), torch.tensor([0.2, 0.4])
    expected_d = np.mean(np.log1p(np.exp(fake.numpy() - real.numpy())))
    assert_close(gan.relativistic_discriminator_loss(real, fake), expected_d, atol=1e-12)
    assert_close(
        gan.relativistic_generator_loss(real, fake),
        gan.relativistic_discriminator_loss(fake, real),
        atol=0,
    )


# --- bad input ------------------------------------------------------------------------------


def test_bad_input_messages():
    with pytest.raises(ValueError, match="same event shape"):
        gan.gradient_penalty(lambda x: x.sum(1), torch.zeros(4, 2), torch.zeros(4, 3))
    with pytest.raises(ValueError, match="same shape"):
        gan.gradient_penalty(lambda x: x.sum(1), torch.zeros(4, 2), torch.zeros(5, 2))
    with pytest.raises(ValueError, match="finite"):
        gan.minimax_discriminator_loss(torch.tensor([float("nan")]), torch.zeros(1))
    with pytest.raises(ValueError, match=r"shape \(B,\) or \(B, 1\)"):
        gan.hinge_discriminator_loss(torch.zeros(3, 2), torch.zeros(3))
    with pytest.raises(ValueError, match="weight must be a positive number"):
        gan.gradient_penalty(lambda x: x.sum(1), torch.zeros(4, 2), torch.zeros(4, 2), weight=-1.0)
    with pytest.raises(ValueError, match="pairs real and fake"):
        gan.relativistic_discriminator_loss(torch.zeros(3), torch.zeros(4))
    with pytest.raises(ValueError, match="loss must be one of"):
        gan.optimal_discriminator("wgan", P.log_prob, Q.log_prob)
    with pytest.raises(ValueError, match="critic_steps must be a positive integer"):
        gan.train_gan(
            gan.MLP(1, 1),
            gan.MLP(1, None),
            lambda n, g: torch.zeros(n, 1),
            latent_dim=1,
            critic_steps=0,
        )


# --- training -------------------------------------------------------------------------------


def test_train_gan_fits_a_gaussian():
    """An affine generator learns N(2, 0.5^2): the training loop wires losses and steps."""
    generator = torch.Generator().manual_seed(3)
    torch.manual_seed(3)
    g_net = torch.nn.Linear(1, 1)
    d_net = gan.MLP(1, None, hidden=32, depth=2)

    def sample_data(n, gen):
        return 2.0 + 0.5 * torch.randn(n, 1, generator=gen)

    gan.train_gan(
        g_net,
        d_net,
        sample_data,
        latent_dim=1,
        loss="non_saturating",
        steps=600,
        batch_size=256,
        lr=1e-2,
        generator=generator,
    )
    assert abs(g_net.bias.item() - 2.0) < 0.15
    assert abs(abs(g_net.weight.item()) - 0.5) < 0.15
