"""ODE samplers against the exact probability-flow map of Gaussian data (genmath.analytic),
time grids, and bad input."""

import math

import pytest
import torch

from genmath.analytic import Gaussian
from genmath.core.dynamics import sample_ode
from genmath.core.grids import check_grid, karras_grid, log_snr_grid, snr_focused_grid, uniform_grid

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


def _data() -> Gaussian:
    # Full covariance with a strong correlation and unequal scales: the flow map is a
    # non-trivial, non-diagonal affine map whose error cannot hide in a symmetric case.
    mean = torch.tensor([1.0, -2.0, 0.5])
    factor = torch.tensor([[1.2, 0.0, 0.0], [0.7, 0.4, 0.0], [-0.3, 0.5, 0.9]])
    return Gaussian(mean, factor @ factor.T)


def _slope(steps, errors) -> float:
    """Least-squares slope of log error against log step size (step size ∝ 1/steps)."""
    log_h = torch.tensor([-math.log(n) for n in steps])
    log_e = torch.tensor([math.log(e) for e in errors])
    centred = log_h - log_h.mean()
    return float((centred * (log_e - log_e.mean())).sum() / centred.square().sum())


def _errors(method, path, model, parameterization, grids):
    data = _data()
    x1 = torch.randn(16, 3, generator=torch.Generator().manual_seed(7))
    errors = []
    for grid in grids:
        result = sample_ode(
            model, x1, grid=grid, method=method, path=path, parameterization=parameterization
        )
        exact = data.flow_map(path, x1, result.grid[0], result.grid[-1])
        errors.append(float((result.x - exact).abs().max()))
    return errors


@pytest.mark.parametrize(
    ("method", "order"), [("euler", 1), ("midpoint", 2), ("heun", 2), ("rk4", 4)]
)
def test_fixed_step_order(method, order):
    path = GaussianPath(schedules.VP())
    marginal = _data().marginal(path)
    steps = [8, 16, 32, 64]
    # Uniform grids from the top of the safe interval to t = 0.05: the asymptotic regime is
    # reached at these step counts (near t = 0 the VP velocity is stiff and the error
    # ratios approach 2^p only at many more steps). (CondOT would hide midpoint's order:
    # for Gaussian data its leading error term vanishes and the measured slope is 3.)
    top = path.schedule.safe_interval[1]
    grids = [torch.linspace(top, 0.05, n + 1) for n in steps]
    errors = _errors(method, path, marginal.velocity, "velocity", grids)
    slope = _slope(steps, errors)
    # Band ±0.3 around the theoretical order: wide enough for pre-asymptotic curvature,
    # narrow enough to tell every order apart.
    assert abs(slope - order) < 0.3, f"{method}: slope {slope:.3f}, errors {errors}"
    assert errors[-1] > 1e-13, "the error must be discretisation error, not round-off"


@pytest.mark.parametrize(("method", "order"), [("ddim", 1), ("dpm++2m", 2)])
def test_exponential_integrator_order_on_gaussian_data(method, order):
    # DDIM is exact only when the denoiser is constant (point mass); Gaussian data make it
    # first order, and DPM-Solver++(2M) second order (D-dpm-solver-pp-2m).
    path = GaussianPath(schedules.VP())
    marginal = _data().marginal(path)
    # log-SNR spans about 23 nats on VP's safe interval: the asymptotic regime starts near
    # 20 steps (h ~ 1).
    steps = [20, 40, 80, 160]
    grids = [log_snr_grid(n, path.schedule) for n in steps]
    errors = _errors(method, path, marginal.eps, "eps", grids)
    slope = _slope(steps, errors)
    assert abs(slope - order) < 0.3, f"{method}: slope {slope:.3f}, errors {errors}"


def _lambda_only_denoiser_errors(method, steps):
    r"""Errors of `method` on a denoiser that depends on the time only, $\hat x_0 =
    (\sin(k\lambda), \cos(k\lambda))$ with $\lambda = \log(\alpha/\sigma)$: the probability-flow
    ODE is then $d(x/\sigma)/d\lambda = e^\lambda\hat x_0(\lambda)$, solved in closed form by
    $\int e^\lambda \sin k\lambda = e^\lambda(\sin k\lambda - k\cos k\lambda)/(1 + k^2)$ and
    $\int e^\lambda \cos k\lambda = e^\lambda(\cos k\lambda + k\sin k\lambda)/(1 + k^2)$, and
    the only error left is the multistep interpolation of $\hat x_0$ in $\lambda$."""
    path = GaussianPath(schedules.VP())
    k = 0.6

    def half_log_snr(t):
        return path.log_snr(t) / 2

    def model(x, t):
        lam = half_log_snr(t)
        return torch.stack([torch.sin(k * lam), torch.cos(k * lam)]).expand_as(x)

    def antiderivative(lam):
        e = torch.exp(lam)
        s, c = torch.sin(k * lam), torch.cos(k * lam)
        return torch.stack([e * (s - k * c), e * (c + k * s)]) / (1 + k**2)

    x1 = torch.randn(4, 2, generator=torch.Generator().manual_seed(5))
    errors = []
    for n in steps:
        result = sample_ode(
            model, x1, steps=n, grid="log_snr", method=method, path=path, parameterization="x0"
        )
        start, end = result.grid[0], result.grid[-1]
        integral = antiderivative(half_log_snr(end)) - antiderivative(half_log_snr(start))
        exact = path.sigma(end) * (x1 / path.sigma(start) + integral)
        errors.append(float((result.x - exact).abs().max()))
    return errors


@pytest.mark.parametrize(
    ("method", "order"), [("ddim", 1), ("dpm++2m", 2), ("dpm++3m", 3), ("unipc", 3)]
)
def test_exponential_integrator_order_on_a_time_only_denoiser(method, order):
    # the multistep weights alone decide the order here (D-exponential-adams-2/-3): a
    # quadratic term weighted by psi_2/h^2 instead of 2 psi_2/h^2 (as DPM-Solver++(3M) is
    # published) would measure 2 for dpm++3m
    steps = [24, 48, 96, 192]
    errors = _lambda_only_denoiser_errors(method, steps)
    slope = _slope(steps, errors)
    assert abs(slope - order) < 0.3, f"{method}: slope {slope:.3f}, errors {errors}"
    assert errors[-1] > 1e-13, "the error must be discretisation error, not round-off"


@pytest.mark.parametrize("method", ["dpm++3m", "unipc"])
def test_higher_order_exponential_integrators_on_gaussian_data(method):
    # third order or better against the exact flow map (Gaussian data make the denoiser
    # smoother in lambda than a generic one: dpm++3m measures nearer 4), one evaluation a step
    path = GaussianPath(schedules.VP())
    marginal = _data().marginal(path)
    steps = [20, 40, 80, 160]
    grids = [log_snr_grid(n, path.schedule) for n in steps]
    errors = _errors(method, path, marginal.eps, "eps", grids)
    assert _slope(steps, errors) > 2.7, f"{method}: errors {errors}"
    x1 = torch.randn(3, 3, generator=torch.Generator().manual_seed(1))
    result = sample_ode(marginal.eps, x1, steps=9, method=method, path=path, parameterization="eps")
    assert result.nfe == 9


@pytest.mark.parametrize("method", ["ddim", "dpm++2m", "dpm++3m", "unipc", "heun"])
@pytest.mark.parametrize("parameterization", ["x0", "score", "velocity", "v"])
def test_every_parameterization_gives_the_same_samples(method, parameterization):
    path = GaussianPath(schedules.VP())
    marginal = _data().marginal(path)
    exact_predictions = {
        "x0": marginal.denoise,
        "eps": marginal.eps,
        "score": marginal.score,
        "velocity": marginal.velocity,
    }

    def model(x, t):
        if parameterization == "v":  # v = alpha eps - sigma x0, from the oracle's own parts
            return path.alpha(t) * marginal.eps(x, t) - path.sigma(t) * marginal.denoise(x, t)
        return exact_predictions[parameterization](x, t)

    x1 = torch.randn(8, 3, generator=torch.Generator().manual_seed(3))
    options = dict(steps=12, method=method, grid="karras", path=path)
    reference = sample_ode(marginal.eps, x1, parameterization="eps", **options)
    result = sample_ode(model, x1, parameterization=parameterization, **options)
    torch.testing.assert_close(result.x, reference.x, rtol=0, atol=1e-9)


def test_exponential_integrators_are_exact_for_point_mass_data():
    path = GaussianPath(schedules.VP())
    centre = torch.tensor([1.5, -0.7, 0.3])
    x1 = torch.randn(5, 3, generator=torch.Generator().manual_seed(11))
    for method in ("ddim", "dpm++2m", "dpm++3m", "unipc"):
        result = sample_ode(
            lambda x, t: centre.expand_as(x),
            x1,
            steps=6,
            grid="karras",
            method=method,
            path=path,
            parameterization="x0",
        )
        t_from, t_to = result.grid[0], result.grid[-1]
        # p_t = N(alpha_t c, sigma_t^2 I): the flow keeps eps = (x - alpha c) / sigma fixed
        exact = path.alpha(t_to) * centre + path.sigma(t_to) / path.sigma(t_from) * (
            x1 - path.alpha(t_from) * centre
        )
        torch.testing.assert_close(result.x, exact, rtol=0, atol=1e-12)


def test_registered_point_mass_check_passes():
    import genmath.derivations.samplers  # noqa: F401  (registers the check)
    from genmath.derivations._registry import _CHECKS

    result = _CHECKS["C-exponential-integrators-point-mass"].verify()
    assert result.ok, result.steps


def test_adaptive_torchdiffeq_matches_flow_map():
    path = GaussianPath(schedules.VP())
    data = _data()
    x1 = torch.randn(6, 3, generator=torch.Generator().manual_seed(5))
    result = sample_ode(
        data.marginal(path).velocity, x1, method="dopri5", path=path, rtol=1e-8, atol=1e-8
    )
    exact = data.flow_map(path, x1, result.grid[0], result.grid[-1])
    torch.testing.assert_close(result.x, exact, rtol=0, atol=1e-5)
    assert result.nfe > 6


def test_nfe_and_trajectory():
    path = GaussianPath(schedules.CondOT())
    marginal = _data().marginal(path)
    x1 = torch.randn(4, 3)
    per_step = {"euler": 1, "midpoint": 2, "heun": 2, "rk4": 4}
    for method, evaluations in per_step.items():
        result = sample_ode(marginal.velocity, x1, steps=5, method=method, path=path)
        assert result.nfe == 5 * evaluations
    result = sample_ode(
        marginal.eps,
        x1,
        steps=5,
        method="dpm++2m",
        path=path,
        parameterization="eps",
        keep_trajectory=True,
    )
    assert result.nfe == 5
    assert result.trajectory.shape == (6, 4, 3)
    torch.testing.assert_close(result.trajectory[0], x1)
    torch.testing.assert_close(result.trajectory[-1], result.x)


def test_event_shape_is_not_assumed_flat():
    # A (B, 2, 3, 2) state with a linear velocity v = -x on [0, 1]: x(0) = e x(1).
    x1 = torch.randn(3, 2, 3, 2)
    result = sample_ode(lambda x, t: -x, x1, steps=64, method="rk4")
    torch.testing.assert_close(result.x, math.e * x1, rtol=1e-8, atol=0)


def test_karras_grid_spacing_in_noise_level():
    schedule = schedules.VP()
    grid = karras_grid(10, schedule, rho=7.0)
    lo, hi = schedule.safe_interval
    assert float(grid[0]) == pytest.approx(hi) and float(grid[-1]) == pytest.approx(lo)
    path = GaussianPath(schedule)
    noise_level = path.sigma(grid) / path.alpha(grid)
    root = noise_level ** (1 / 7.0)
    spacing = root[1:] - root[:-1]
    torch.testing.assert_close(spacing, spacing.mean().expand_as(spacing), rtol=1e-8, atol=0)
    assert (grid[1:] < grid[:-1]).all()


def test_log_snr_grid_spacing():
    schedule = schedules.VP()
    grid = log_snr_grid(9, schedule)
    log_snr = GaussianPath(schedule).log_snr(grid)
    spacing = log_snr[1:] - log_snr[:-1]
    torch.testing.assert_close(spacing, spacing.mean().expand_as(spacing), rtol=1e-8, atol=0)


def test_snr_focused_grid_is_densest_at_its_centre_and_spans_the_safe_interval():
    schedule = schedules.VP()
    lo, hi = schedule.safe_interval
    grid = snr_focused_grid(40, schedule, center=1.0, width=2.0)
    assert float(grid[0]) == hi and float(grid[-1]) == lo
    lam = schedule.log_snr(grid)
    gaps = lam[1:] - lam[:-1]
    assert bool((gaps > 0).all())  # decreasing times, increasing log-SNR
    # the smallest log-SNR step sits at the centre, the largest at an end
    middle = 0.5 * (lam[1:] + lam[:-1])
    assert abs(float(middle[gaps.argmin()]) - 1.0) < float(gaps.max())
    assert int(gaps.argmax()) in (0, len(gaps) - 1)
    # uniform in atan((lambda - c) / w)
    angles = torch.atan((lam - 1.0) / 2.0)
    torch.testing.assert_close(angles[1:] - angles[:-1], (angles[1] - angles[0]).expand(40))
    # a very wide focus is the log-SNR grid
    torch.testing.assert_close(
        snr_focused_grid(8, schedule, width=1e7), log_snr_grid(8, schedule), rtol=0, atol=1e-6
    )
    with pytest.raises(ValueError, match="width must be positive"):
        snr_focused_grid(8, schedule, width=0.0)


def test_uniform_grid_default_ends():
    grid = uniform_grid(4)
    torch.testing.assert_close(grid, torch.tensor([1.0, 0.75, 0.5, 0.25, 0.0]))
    lo, hi = schedules.VP().safe_interval
    grid = uniform_grid(3, schedules.VP())
    assert float(grid[0]) == pytest.approx(hi) and float(grid[-1]) == pytest.approx(lo)


# --- bad input ----------------------------------------------------------------------------


def test_wrong_velocity_shape_names_step_and_time():
    def velocity(x, t):
        return x[:, :1] if t < 0.5 else x

    with pytest.raises(ValueError, match=r"shape \(4, 2\).*got \(4, 1\) at step 3 \(t = 0\.4"):
        sample_ode(velocity, torch.randn(4, 2), steps=5, method="euler")


def test_non_finite_state_names_step_and_time():
    def velocity(x, t):
        return x / (t - 0.5)  # blows up at t = 0.5, a grid point

    with pytest.raises(ValueError, match=r"non-finite state after step 2 \(t = 0\.5 -> 0\.25\)"):
        sample_ode(velocity, torch.randn(4, 2), steps=4, method="midpoint")


def test_non_finite_state_in_adaptive_solver():
    with pytest.raises(ValueError, match=r"non-finite"):
        sample_ode(lambda x, t: x * float("nan"), torch.randn(2, 2), method="dopri5")


@pytest.mark.parametrize(
    ("grid", "message"),
    [
        ([1.2, 0.5, 0.0], r"\[0, 1\].*1\.2 at index 0"),
        ([1.0, 0.5, 0.6, 0.0], r"strictly monotone.*0\.5 then 0\.6 at indices 1, 2"),
        ([1.0, 0.5, 0.5], r"strictly monotone"),
        ([1.0], r"at least 2 times"),
        ([1.0, float("nan")], r"finite"),
    ],
)
def test_bad_grids(grid, message):
    with pytest.raises(ValueError, match=message):
        sample_ode(lambda x, t: x, torch.randn(2, 2), grid=torch.tensor(grid), method="euler")


def test_grid_outside_safe_interval():
    path = GaussianPath(schedules.VP())
    lo, _ = path.schedule.safe_interval
    with pytest.raises(ValueError, match=r"safe interval.*index 2"):
        sample_ode(
            lambda x, t: x,
            torch.randn(2, 2),
            grid=torch.tensor([0.9, 0.5, lo / 2]),
            method="ddim",
            path=path,
            parameterization="x0",
        )
    with pytest.raises(ValueError, match="safe interval"):
        check_grid(torch.tensor([0.9, lo / 2]), path.schedule)


def test_bad_options():
    x1 = torch.randn(2, 2)
    path = GaussianPath(schedules.VP())
    with pytest.raises(ValueError, match="method must be one of.*got 'leapfrog'"):
        sample_ode(lambda x, t: x, x1, steps=3, method="leapfrog")
    with pytest.raises(ValueError, match="'ddim'.*needs path"):
        sample_ode(lambda x, t: x, x1, steps=3, method="ddim")
    with pytest.raises(ValueError, match="predicting 'eps' needs the path"):
        sample_ode(lambda x, t: x, x1, steps=3, parameterization="eps")
    with pytest.raises(ValueError, match="needs `steps`"):
        sample_ode(lambda x, t: x, x1, method="heun")
    with pytest.raises(ValueError, match="steps must be a positive integer, got 0"):
        sample_ode(lambda x, t: x, x1, steps=0)
    with pytest.raises(ValueError, match="grid must be 'uniform'.*got 'linear'"):
        sample_ode(lambda x, t: x, x1, steps=3, grid="linear")
    with pytest.raises(ValueError, match="'karras' needs a path"):
        sample_ode(lambda x, t: x, x1, steps=3, grid="karras")
    with pytest.raises(ValueError, match="parameterization must be one of"):
        sample_ode(lambda x, t: x, x1, steps=3, path=path, parameterization="noise")


@pytest.mark.parametrize("method", ["ddim", "dpm++2m", "heun", "dopri5"])
def test_float32_stays_float32(method):
    # The grid's ends are cast to float32 too: the last time must still pass the path's
    # safe-interval check after rounding.
    path = GaussianPath(schedules.VP())
    data = Gaussian(
        torch.tensor([1.0, -2.0], dtype=torch.float32),
        torch.tensor([[2.0, 0.6], [0.6, 0.5]], dtype=torch.float32),
    )
    x1 = torch.randn(5, 2, dtype=torch.float32)
    grid = None if method == "dopri5" else "karras"
    result = sample_ode(
        data.marginal(path).eps,
        x1,
        steps=10,
        method=method,
        grid=grid,
        path=path,
        parameterization="eps",
    )
    assert result.x.dtype == torch.float32 and result.grid.dtype == torch.float32
    assert torch.isfinite(result.x).all()


@pytest.mark.parametrize("method", ["dpm++3m", "unipc"])
def test_lower_order_final_steps_take_the_first_steps_weights(method):
    # closed forms of the exponential integral of the interpolant, written out here:
    # one node (DDIM) 1 - e^{-h}; nodes (h, 0) (the corrector's linear interpolant)
    # w_h = psi_1 / h, w_0 = psi_0 - psi_1 / h with psi_0 = 1 - e^{-h}, psi_1 = h - psi_0
    from genmath.core._multistep import multistep_plan

    lam = [-4.0, -2.5, -1.6, -0.4, 0.9, 2.7, 5.0]
    plan = multistep_plan(method, lam, lower_order_final=2)
    full = multistep_plan(method, lam)
    for k in (4, 5):
        h = lam[k + 1] - lam[k]
        psi0 = -math.expm1(-h)
        assert plan[k]["predictor"] == pytest.approx([psi0], rel=1e-12)
        if method == "unipc" and k == 4:
            psi1 = h - psi0
            assert plan[k]["corrector"] == pytest.approx([psi1 / h, psi0 - psi1 / h], rel=1e-12)
    assert plan[:4] == full[:4]
    assert len(full[4]["predictor"]) > 1  # without the option the last steps extrapolate


def test_few_steps_lower_the_final_order_and_many_do_not():
    # sample_ode below 15 steps runs the last two steps at first order, from 15 on it does
    # not; the two variants must differ, so the comparison can tell which one ran
    from genmath.core import _solvers

    path = GaussianPath(schedules.VP())
    marginal = _data().marginal(path)
    x1 = torch.randn(64, 3, generator=torch.Generator().manual_seed(3))
    for steps, lowered in ((10, True), (15, False)):
        grid = log_snr_grid(steps, path.schedule)
        result = sample_ode(
            marginal.denoise, x1, grid=grid, method="unipc", path=path, parameterization="x0"
        )
        assert result.nfe == steps
        alpha, sigma = path.alpha(grid), path.sigma(grid)
        variants = {}
        for final in (0, 2):
            field = _solvers.CountedField(marginal.denoise, "denoiser")
            variants[final], _ = _solvers.integrate_exponential(
                "unipc", field, x1, grid, alpha, sigma, False, final
            )
        assert float((variants[2] - variants[0]).abs().max()) > 1e-6
        torch.testing.assert_close(result.x, variants[2 if lowered else 0], rtol=0, atol=1e-12)
