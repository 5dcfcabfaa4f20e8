"""Scores, Tweedie and the score-matching objectives against closed forms.

Case: Gaussian data N(m, S) in 3-D with a correlated S, and a linear score model
s(x) = -A (x - b) with a non-symmetric A. Closed forms (numpy, derived by hand):
explicit = 1/2 [tr((P - A) S (P - A)^T) + |A (m - b)|^2], P = S^-1;
implicit = 1/2 [tr(A S A^T) + |A (m - b)|^2] - tr A; their difference is 1/2 tr P.
"""

import numpy as np
import pytest
import torch

from genmath.core.score import (
    denoising,
    explicit,
    implicit,
    score_from_energy,
    score_from_log_prob,
    sliced,
    tweedie,
)
from genmath.testing import assert_close, assert_mean_matches

M = np.array([0.5, -1.0, 2.0])
_L = np.array([[1.2, 0.0, 0.0], [0.5, 0.7, 0.0], [-0.4, 0.3, 0.6]])
S = _L @ _L.T
P = np.linalg.inv(S)
A_NP = np.array([[1.1, 0.4, -0.2], [-0.3, 0.9, 0.5], [0.2, -0.6, 1.5]])  # trace 3.5, not symmetric
B_NP = np.array([0.3, -0.2, 1.0])


@pytest.fixture(autouse=True)
def _one_thread():
    """Small tensors: intra-op threads only contend on the shared CI cores (measured: 0.5 s vs
    0.5 ms per implicit-score-matching step with 2 threads vs 1 on a loaded 2-core machine)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def _sample(n, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.as_tensor(M) + torch.randn(n, 3, generator=g) @ torch.as_tensor(_L).T


class LinearScore(torch.nn.Module):
    """s(x) = -A (x - b)."""

    def __init__(self, A, b):
        super().__init__()
        self.A = torch.nn.Parameter(torch.as_tensor(A).clone())
        self.b = torch.nn.Parameter(torch.as_tensor(b).clone())

    def forward(self, x):
        return -(x - self.b) @ self.A.T


def _true_score(x):
    return -(x - torch.as_tensor(M)) @ torch.as_tensor(P).T


def _explicit_closed(A, b, mean, cov):
    prec = np.linalg.inv(cov)
    r = A @ (mean - b)
    return 0.5 * (np.trace((prec - A) @ cov @ (prec - A).T) + r @ r)


def _implicit_closed(A, b, mean, cov):
    r = A @ (mean - b)
    return 0.5 * (np.trace(A @ cov @ A.T) + r @ r) - np.trace(A)


# --------------------------------------------------------------------------- scores


def test_score_from_log_prob_and_energy_match_closed_form():
    x = _sample(7, 0)
    mvn = torch.distributions.MultivariateNormal(torch.as_tensor(M), torch.as_tensor(S))
    expected = -(x - torch.as_tensor(M)) @ torch.as_tensor(P).T
    assert_close(score_from_log_prob(mvn.log_prob)(x), expected, atol=1e-12)

    def energy(x):
        d = x - torch.as_tensor(M)
        return 0.5 * torch.einsum("bi,ij,bj->b", d, torch.as_tensor(P), d) + 3.0

    assert_close(score_from_energy(energy)(x), expected, atol=1e-12)


def test_score_from_log_prob_works_inside_an_outer_graph():
    """Gradient of a loss of the score w.r.t. the density's parameter, and the Hessian in x."""
    mu = torch.tensor([0.3, -0.7, 1.1], requires_grad=True)
    prec = torch.as_tensor(P)
    x = _sample(5, 1).requires_grad_(True)

    def log_prob(x):
        d = x - mu
        return -0.5 * torch.einsum("bi,ij,bj->b", d, prec, d)

    score = score_from_log_prob(log_prob)(x)
    (grad_mu,) = torch.autograd.grad(0.5 * score.pow(2).sum(), mu, retain_graph=True)
    # score = -P (x - mu): d/dmu of 1/2 sum |score|^2 = -sum_b P^T P (x_b - mu)
    expected = -(x.detach() - mu.detach()).sum(0) @ torch.as_tensor(P.T @ P).T
    assert_close(grad_mu, expected, atol=1e-10)
    (hess_row,) = torch.autograd.grad(score[:, 0].sum(), x)
    assert_close(hess_row, -torch.as_tensor(P)[0].expand(5, 3), atol=1e-12)


def test_tweedie_is_the_gaussian_posterior_mean():
    alpha = torch.tensor([0.9, 0.5, 0.2, 1.0])
    sigma = torch.tensor([0.3, 0.8, 1.5, 2.0])
    xt = _sample(4, 2) * 1.3
    expected, scores = [], []
    for i in range(4):
        a, s = float(alpha[i]), float(sigma[i])
        C = a**2 * S + s**2 * np.eye(3)
        xi = xt[i].numpy()
        expected.append(M + a * S @ np.linalg.solve(C, xi - a * M))
        scores.append(-np.linalg.solve(C, xi - a * M))
    value = tweedie(xt, torch.as_tensor(np.array(scores)), alpha, sigma)
    assert_close(value, torch.as_tensor(np.array(expected)), atol=1e-12)


# --------------------------------------------------------------------------- objectives


def test_explicit_and_implicit_per_sample_values_are_exact():
    x = _sample(6, 3)
    model = LinearScore(A_NP, B_NP)
    xs = x.numpy()
    resid = -(xs - B_NP) @ A_NP.T + (xs - M) @ P.T
    assert_close(
        explicit(model, x, _true_score, reduction="none"),
        torch.as_tensor(0.5 * (resid**2).sum(1)),
        atol=1e-12,
    )
    # a tensor of true scores is accepted as well as a function
    assert_close(
        explicit(model, x, _true_score(x)), torch.tensor(0.5 * (resid**2).sum(1).mean()), atol=1e-12
    )
    s = -(xs - B_NP) @ A_NP.T
    assert_close(
        implicit(model, x, reduction="none"),
        torch.as_tensor(0.5 * (s**2).sum(1) - np.trace(A_NP)),
        atol=1e-12,
    )


def test_objectives_match_their_closed_forms_in_expectation():
    x = _sample(40000, 4)  # the implicit objective is noisy: resolve it to 10 %
    model = LinearScore(A_NP, B_NP)
    exp_closed = _explicit_closed(A_NP, B_NP, M, S)
    imp_closed = _implicit_closed(A_NP, B_NP, M, S)
    assert abs(exp_closed - imp_closed - 0.5 * np.trace(P)) < 1e-12  # the theorem's constant
    with torch.no_grad():
        assert_mean_matches(
            explicit(model, x, _true_score, reduction="none"), exp_closed, rtol=0.1, name="explicit"
        )
        assert_mean_matches(
            implicit(model, x, reduction="none"), imp_closed, rtol=0.1, name="implicit"
        )


@pytest.mark.parametrize("variance_reduction", [False, True])
@pytest.mark.parametrize("projection", ["gaussian", "rademacher"])
def test_sliced_equals_implicit_in_expectation(variance_reduction, projection):
    x = _sample(5, 5)
    model = LinearScore(A_NP, B_NP)
    n = 12000  # one projection without variance reduction is noisy: resolve it to 10 % (of
    # the largest objective, the default precision)
    values = sliced(
        model,
        x.repeat(n, 1),
        n_projections=1,
        generator=torch.Generator().manual_seed(6),
        variance_reduction=variance_reduction,
        projection=projection,
        reduction="none",
    )
    xs = x.numpy()
    s = -(xs - B_NP) @ A_NP.T
    expected = torch.as_tensor(0.5 * (s**2).sum(1) - np.trace(A_NP))
    assert_mean_matches(
        values.detach().reshape(n, 5),
        expected,
        name=f"sliced vr={variance_reduction} {projection}",
    )


def test_sliced_averages_projections_and_variance_reduction_helps():
    x = _sample(2000, 7)
    model = LinearScore(A_NP, B_NP)
    kwargs = dict(generator=torch.Generator().manual_seed(8), reduction="none")
    plain = sliced(model, x, n_projections=4, **kwargs).detach()
    reduced = sliced(model, x, n_projections=4, variance_reduction=True, **kwargs).detach()
    exact = implicit(model, x, reduction="none").detach()
    assert (reduced - exact).var() < (plain - exact).var()


@pytest.fixture
def path():
    path_mod = pytest.importorskip("genmath.core.path")
    schedules = pytest.importorskip("genmath.core.schedules")
    return path_mod.GaussianPath(schedules.CondOT())


def test_denoising_minus_explicit_is_the_closed_form_constant(path):
    t = 0.3
    alpha, sigma = 1 - t, t  # CondOT
    C = alpha**2 * S + sigma**2 * np.eye(3)
    explicit_pt = _explicit_closed(A_NP, B_NP, alpha * M, C)
    constant = 3 / (2 * sigma**2) - 0.5 * np.trace(np.linalg.inv(C))
    dsm_score = explicit_pt + constant

    model = LinearScore(A_NP, B_NP)
    score_model = lambda xt, t: model(xt)  # noqa: E731
    # the same model expressed in each parameterization, through the path's conversions
    models = {
        p: (lambda xt, t, p=p: path.convert(model(xt), xt, t, "score", p))
        for p in ("x0", "eps", "v", "velocity")
    }
    models["score"] = score_model
    # squared error of each parameterization = factor * squared error of the score (hand-derived)
    factor = {
        "score": 1.0,
        "eps": sigma**2,
        "x0": sigma**4 / alpha**2,
        "v": ((alpha**2 + sigma**2) * sigma / alpha) ** 2,
        "velocity": (sigma / (1 - t)) ** 2,
    }
    x0 = _sample(4000, 9)
    for p, f in factor.items():
        with torch.no_grad():
            values = denoising(
                models[p],
                x0,
                path,
                t,
                parameterization=p,
                generator=torch.Generator().manual_seed(10),
                reduction="none",
            )
        assert_mean_matches(values, f * dsm_score, rtol=0.1, name=f"denoising {p}")
    # Song & Ermon's weighting sigma^2 on the score loss is the eps loss
    with torch.no_grad():
        weighted = denoising(
            score_model,
            x0,
            path,
            t,
            weighting=lambda t: path.sigma(t) ** 2,
            generator=torch.Generator().manual_seed(10),
            reduction="none",
        )
        eps_loss = denoising(
            models["eps"],
            x0,
            path,
            t,
            parameterization="eps",
            generator=torch.Generator().manual_seed(10),
            reduction="none",
        )
    assert_close(weighted, eps_loss, atol=1e-10)


def test_denoising_time_sampling(path):
    model = LinearScore(A_NP, B_NP)
    x0 = _sample(8, 11)
    default = denoising(
        lambda xt, t: model(xt), x0, path, generator=torch.Generator().manual_seed(1)
    )
    assert default.shape == () and torch.isfinite(default)

    seen = {}

    def sampler(n, generator):
        seen["t"] = torch.full((n,), 0.25)
        return seen["t"]

    a = denoising(
        lambda xt, t: model(xt), x0, path, sampler, generator=torch.Generator().manual_seed(2)
    )
    b = denoising(
        lambda xt, t: model(xt), x0, path, 0.25, generator=torch.Generator().manual_seed(2)
    )
    assert_close(a, b, atol=0.0)


def test_optimising_implicit_score_matching_reaches_the_closed_form_minimiser():
    x = _sample(1000, 12)
    model = LinearScore(np.eye(3), np.zeros(3))
    opt = torch.optim.LBFGS(
        model.parameters(),
        max_iter=40,
        tolerance_grad=1e-12,
        tolerance_change=1e-14,
        line_search_fn="strong_wolfe",
    )

    def closure():
        opt.zero_grad()
        loss = implicit(model, x)
        loss.backward()
        return loss

    opt.step(closure)
    xs = x.numpy()
    emp_mean = xs.mean(0)
    emp_cov = (xs - emp_mean).T @ (xs - emp_mean) / len(xs)
    # the sample minimiser: A = (empirical covariance)^-1, b = empirical mean
    assert_close(model.A.detach(), torch.as_tensor(np.linalg.inv(emp_cov)), atol=1e-6)
    assert_close(model.b.detach(), torch.as_tensor(emp_mean), atol=1e-6)
    # ... which estimates the population minimiser Sigma^-1 (sampling error ~ n^-1/2)
    assert_close(model.A.detach(), torch.as_tensor(P), atol=0.3 * np.abs(P).max())


# --------------------------------------------------------------------------- bad input


def test_bad_input(path):
    model = LinearScore(A_NP, B_NP)
    x = _sample(4, 13)
    with pytest.raises(ValueError, match="log_prob must return one value per sample"):
        score_from_log_prob(lambda x: x.sum())(x)
    with pytest.raises(ValueError, match="alpha must be positive"):
        tweedie(x, x, 0.0, 1.0)
    with pytest.raises(ValueError, match="sigma must be non-negative"):
        tweedie(x, x, 1.0, -1.0)
    with pytest.raises(ValueError, match="score must have the shape of xt"):
        tweedie(x, x[:, :2], 1.0, 1.0)
    with pytest.raises(ValueError, match="true_score must return a tensor of the shape"):
        explicit(model, x, lambda x: x[:, :2])
    with pytest.raises(ValueError, match="reduction must be one of"):
        implicit(model, x, reduction="sum")
    with pytest.raises(ValueError, match="n_projections must be a positive integer"):
        sliced(model, x, n_projections=0)
    with pytest.raises(ValueError, match="projection must be one of"):
        sliced(model, x, projection="sphere")
    with pytest.raises(ValueError, match="score_model must return a tensor of the shape"):
        implicit(lambda x: x[:, :2], x)
    with pytest.raises(ValueError, match="t must be a scalar or have shape"):
        denoising(lambda xt, t: model(xt), x, path, torch.full((3,), 0.5))
    with pytest.raises(ValueError, match="must lie in"):
        denoising(lambda xt, t: model(xt), x, path, 1.5)
    with pytest.raises(ValueError, match="model must return a tensor of the shape of x0"):
        denoising(lambda xt, t: xt[:, :2], x, path, 0.5)
    with pytest.raises(ValueError, match="parameterization"):
        denoising(lambda xt, t: model(xt), x, path, 0.5, parameterization="noise")


def test_score_matching_derivations_verify():
    from genmath.derivations import get

    for item_id in (
        "D-hyvarinen-score-matching",
        "D-sliced-score-matching",
        "D-denoising-score-matching",
    ):
        result = get(item_id).verify()
        assert result.ok, (item_id, result.failures())
