"""Forward and reverse-time SDEs of Gaussian paths against exact marginals (genmath.analytic):
drifts to round-off, samples by two-sided statistical tests, and bad input."""

import pytest
import torch

from genmath.analytic import Gaussian, GaussianMixture
from genmath.core.dynamics import (
    ProbabilityFlowODE,
    ReverseSDE,
    forward_sde,
    probability_flow_ode,
    sample_sde,
)
from genmath.core.grids import uniform_grid
from genmath.testing import assert_mean_matches

path_module = pytest.importorskip("genmath.core.path")
schedules = pytest.importorskip("genmath.schedules")
GaussianPath = path_module.GaussianPath


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    # These tensors are small: intra-op threads only add synchronisation, which on a loaded
    # machine dominates (both files: 29 s with one thread, 319 s with two, load ~12).
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


N_SAMPLES = 2000
# Euler–Maruyama on EDM's grid. Measured with 5 * 10^4 samples when the test was written:
# at 200 steps the bias of E[log p_0] was up to 1.7 standard errors of the tested mean (at
# N_SAMPLES), at 800 steps every tested statistic's bias is below 0.5 of them.
N_STEPS = 800


def _mixture() -> GaussianMixture:
    # Three well separated, anisotropic, correlated components with unequal weights: the
    # score is strongly non-linear and its errors show in every moment and in log p.
    weights = torch.tensor([0.3, 0.5, 0.2])
    means = torch.tensor([[-2.0, 0.0], [1.5, 1.0], [0.5, -2.0]])
    covs = torch.tensor(
        [[[0.5, 0.2], [0.2, 0.3]], [[0.3, -0.1], [-0.1, 0.6]], [[0.2, 0.0], [0.0, 0.2]]]
    )
    return GaussianMixture(weights, means, covs)


def _statistics(x: torch.Tensor, data) -> torch.Tensor:
    """Per-sample statistics whose means are tested: x, the distinct entries of x xᵀ and
    the data log-density log p_0(x)."""
    second = torch.stack([x[:, 0] ** 2, x[:, 0] * x[:, 1], x[:, 1] ** 2], dim=1)
    return torch.cat([x, second, data.log_prob(x)[:, None]], dim=1)


def _exact_statistics(data, path, t: float) -> torch.Tensor:
    """Means of `_statistics` under p_t: moments in closed form (p_t has mean alpha mu and
    covariance alpha^2 Sigma + sigma^2 I), E[log p_0] from 2 * 10^5 exact samples of p_t
    (its standard error is a third of the tested one)."""
    t = torch.tensor(t)
    alpha, sigma = path.alpha(t), path.sigma(t)
    mean = alpha * data.mean
    cov = alpha**2 * data.cov + sigma**2 * torch.eye(2)
    second = cov + torch.outer(mean, mean)
    generator = torch.Generator().manual_seed(99)
    reference, _ = path.sample(data.sample(200_000, generator=generator), t, generator=generator)
    log_p = data.log_prob(reference).mean()
    return torch.cat([mean, second[0, 0:1], second[0, 1:2], second[1, 1:2], log_p[None]])


def _start(data, path, generator) -> torch.Tensor:
    """Exact samples of p_{t_hi}: the sampler then has nothing to correct but its own error."""
    t_hi = torch.tensor(path.schedule.safe_interval[1])
    x1, _ = path.sample(data.sample(N_SAMPLES, generator=generator), t_hi, generator=generator)
    return x1


# The Langevin corrector's own (unadjusted) bias is O(step) and does not shrink with more
# predictor steps: at Song et al.'s snr = 0.16 it was measured at -1.65 standard errors on
# E[log p_0] (800 steps); the test uses snr = 0.05, a 10x smaller step.
PC_SNR = 0.05


@pytest.mark.parametrize(
    ("noise", "method"),
    [(1.0, "euler_maruyama"), (0.0, "euler_maruyama"), (0.5, "euler_maruyama"), (1.0, "pc")],
    ids=["nu=g", "nu=0", "nu=g/2", "pc"],
)
def test_reverse_sde_samples_match_the_data(noise, method):
    data, path = _mixture(), GaussianPath(schedules.VP())
    marginal = data.marginal(path)
    generator = torch.Generator().manual_seed(2024)
    sde = ReverseSDE(path, marginal.eps, "eps", noise=noise)
    result = sde.sample(
        _start(data, path, generator),
        steps=N_STEPS,
        grid="karras",
        method=method,
        generator=generator,
        **({"snr": PC_SNR} if method == "pc" else {}),
    )
    t_end = float(result.grid[-1])
    assert t_end == pytest.approx(path.schedule.safe_interval[0])
    # moments and E log p_0 to 0.3 (nats): the broken samplers below miss by far more
    assert_mean_matches(
        _statistics(result.x, data),
        _exact_statistics(data, path, t_end),
        precision=0.3,
        name=f"{method}",
    )
    assert result.nfe == N_STEPS * (2 if method == "pc" else 1)


@pytest.mark.parametrize("bug", ["no score correction", "corrector climbs down"])
def test_the_statistical_test_detects_a_broken_sampler(bug):
    # The test above must be able to fail. Dropping the -(nu^2/2) score term keeps the
    # noise but not its correction and over-disperses the samples; a corrector following
    # minus the score pushes them away from the modes.
    data, path = _mixture(), GaussianPath(schedules.VP())
    marginal = data.marginal(path)
    sde = ReverseSDE(path, marginal.eps, "eps")
    generator = torch.Generator().manual_seed(2024)
    options = dict(steps=N_STEPS // 4, grid="karras", path=path, generator=generator)
    x1 = _start(data, path, generator)
    if bug == "no score correction":
        result = sample_sde(marginal.velocity, path.diffusion, x1, **options)
    else:
        result = sample_sde(
            sde.drift,
            sde.diffusion,
            x1,
            method="pc",
            snr=PC_SNR,
            score=lambda x, t: -marginal.score(x, t),
            **options,
        )
    with pytest.raises(AssertionError, match="standard errors"):
        assert_mean_matches(
            _statistics(result.x, data),
            _exact_statistics(data, path, float(result.grid[-1])),
            precision=0.3,
        )


def test_forward_sde_reaches_the_path_marginal():
    # Gaussian data (3-D, correlated, off-centre) pushed forward from t = 0 to t = 0.6 by
    # the forward SDE of a VP path must have the path's marginal N(alpha mu, alpha^2 Sigma
    # + sigma^2 I).
    factor = torch.tensor([[1.0, 0.0, 0.0], [0.8, 0.5, 0.0], [-0.4, 0.3, 0.7]])
    data = Gaussian(torch.tensor([2.0, -1.0, 0.5]), factor @ factor.T)
    path = GaussianPath(schedules.VP())
    generator = torch.Generator().manual_seed(5)
    x0 = data.sample(N_SAMPLES, generator=generator)
    result = forward_sde(path).sample(
        x0, grid=uniform_grid(400, start=0.0, end=0.6), generator=generator
    )
    marginal = data.marginal(path)
    t = torch.tensor(0.6)
    mean, cov = marginal.mean(t), marginal.cov(t)
    centred = result.x - mean
    rows, cols = torch.triu_indices(3, 3)
    statistics = torch.cat(
        [result.x, (centred[:, :, None] * centred[:, None, :])[:, rows, cols]], 1
    )
    # to 0.2: a diffusion coefficient off by sqrt(2) moves the covariance by about 0.8
    assert_mean_matches(
        statistics, torch.cat([mean, cov[rows, cols]]), precision=0.2, name="forward SDE"
    )


@pytest.mark.parametrize("parameterization", ["x0", "eps", "score", "velocity", "v"])
def test_reverse_drift_in_every_parameterization(parameterization):
    data, path = _mixture(), GaussianPath(schedules.CosineVP())
    marginal = data.marginal(path)

    def model(x, t):
        if parameterization == "v":
            return path.alpha(t) * marginal.eps(x, t) - path.sigma(t) * marginal.denoise(x, t)
        return {
            "x0": marginal.denoise,
            "eps": marginal.eps,
            "score": marginal.score,
            "velocity": marginal.velocity,
        }[parameterization](x, t)

    x = torch.randn(64, 2, generator=torch.Generator().manual_seed(1)) * 2
    for t in (0.05, 0.4, 0.9):
        t = torch.tensor(t)
        g = path.diffusion(t)
        # nu = g: the classical reverse SDE, drift f x - g^2 grad log p (Anderson 1982)
        classical = ReverseSDE(path, model, parameterization, noise=1.0)
        expected = path.drift(x, t) - g**2 * marginal.score(x, t)
        torch.testing.assert_close(classical.drift(x, t), expected, rtol=1e-9, atol=1e-9)
        torch.testing.assert_close(classical.diffusion(t), g)

        # any nu: v - nu^2/2 grad log p, here with a nu that is not a multiple of g
        def nu(s):
            return 0.3 + s

        family = ReverseSDE(path, model, parameterization, noise=nu)
        expected = marginal.velocity(x, t) - 0.5 * nu(t) ** 2 * marginal.score(x, t)
        torch.testing.assert_close(family.drift(x, t), expected, rtol=1e-9, atol=1e-9)

        flow = probability_flow_ode(path, model, parameterization)
        torch.testing.assert_close(
            flow.velocity(x, t), marginal.velocity(x, t), rtol=1e-9, atol=1e-9
        )
        torch.testing.assert_close(family.score(x, t), marginal.score(x, t), rtol=1e-9, atol=1e-9)


def test_probability_flow_ode_object_samples_with_every_method():
    data = Gaussian(torch.tensor([1.0, -1.0]), torch.tensor([[1.0, 0.6], [0.6, 0.8]]))
    path = GaussianPath(schedules.VP())
    marginal = data.marginal(path)
    flow = ReverseSDE(path, marginal.eps, "eps").probability_flow()
    assert isinstance(flow, ProbabilityFlowODE)
    x1 = torch.randn(8, 2, generator=torch.Generator().manual_seed(0))
    for method, steps, tolerance in (
        ("dpm++2m", 60, 2e-2),
        ("rk4", 60, 1e-2),
        ("dopri5", None, 1e-4),
    ):
        result = flow.sample(
            x1, steps=steps, method=method, grid=None if steps is None else "log_snr"
        )
        exact = data.flow_map(path, x1, result.grid[0], result.grid[-1])
        torch.testing.assert_close(result.x, exact, rtol=0, atol=tolerance)


def test_pc_corrector_is_seeded_by_the_generator():
    data, path = _mixture(), GaussianPath(schedules.VP())
    sde = ReverseSDE(path, data.marginal(path).eps, "eps")
    x1 = torch.randn(16, 2)
    runs = [
        sde.sample(x1, steps=5, method="pc", generator=torch.Generator().manual_seed(3)).x
        for _ in range(2)
    ]
    torch.testing.assert_close(runs[0], runs[1], rtol=0, atol=0)


# --- bad input ----------------------------------------------------------------------------


def test_bad_sde_input():
    x = torch.randn(4, 2)
    with pytest.raises(ValueError, match="method must be one of.*got 'milstein'"):
        sample_sde(lambda x, t: x, lambda t: 1.0, x, steps=3, method="milstein")
    with pytest.raises(ValueError, match="'pc' needs score"):
        sample_sde(lambda x, t: x, lambda t: 1.0, x, steps=3, method="pc")
    with pytest.raises(ValueError, match="snr must be a positive number, got -0.1"):
        sample_sde(
            lambda x, t: x, lambda t: 1.0, x, steps=3, method="pc", score=lambda x, t: x, snr=-0.1
        )
    with pytest.raises(ValueError, match="corrector_steps must be a positive integer"):
        sample_sde(
            lambda x, t: x,
            lambda t: 1.0,
            x,
            steps=3,
            method="pc",
            score=lambda x, t: x,
            corrector_steps=0,
        )
    with pytest.raises(
        ValueError, match=r"drift must return .* \(4, 2\), got \(4,\) at step 0 \(t = 1\)"
    ):
        sample_sde(lambda x, t: x.sum(1), lambda t: 1.0, x, steps=3)
    with pytest.raises(ValueError, match=r"diffusion must return a scalar.*got shape \(3,\)"):
        sample_sde(lambda x, t: x, lambda t: torch.ones(3), x, steps=3)
    with pytest.raises(ValueError, match=r"non-finite state after step 1 \(t = 0\.5 -> 0\)"):
        sample_sde(lambda x, t: x / (t - 0.5), lambda t: 0.0, x, steps=2)
    with pytest.raises(ValueError, match="needs `steps`"):
        sample_sde(lambda x, t: x, lambda t: 1.0, x)


def test_bad_reverse_sde_input():
    path = GaussianPath(schedules.VP())
    model = lambda x, t: x  # noqa: E731
    with pytest.raises(ValueError, match="noise must be a number >= 0.*got -1"):
        ReverseSDE(path, model, "eps", noise=-1.0)
    with pytest.raises(ValueError, match="parameterization must be one of.*got 'score_fn'"):
        ReverseSDE(path, model, "score_fn")
    with pytest.raises(ValueError, match="parameterization must be one of"):
        probability_flow_ode(path, model, "epsilon")
