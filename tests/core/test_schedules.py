"""Schedules: derivatives against autograd and textbook closed forms, log-SNR and its inverse,
the safe interval, and bad input."""

import math

import pytest
import sympy as sp
import torch

from genmath.schedules import VE, VP, CondOT, CosineVP, Schedule
from genmath.testing import assert_close

INTERIOR = torch.tensor([0.004, 0.05, 0.2, 0.45, 0.7, 0.93, 0.996], dtype=torch.float64)


def _builtins():
    return [CondOT(), VP(), VP(0.3, 7.0), CosineVP(), CosineVP(0.0), VE(0.01, 50.0), VE(0.5, 3.0)]


BUILTINS = _builtins()
IDS = [repr(s) for s in BUILTINS]


def _textbook(schedule, t):
    """alpha, sigma, their derivatives and the log-SNR written out by hand (independent of
    the sympy pipeline under test)."""
    if isinstance(schedule, CondOT):
        one = torch.ones_like(t)
        return 1 - t, t, -one, one, 2 * torch.log((1 - t) / t)
    if isinstance(schedule, VP):
        b0, b1 = schedule.beta_min, schedule.beta_max
        big_b = b0 * t + 0.5 * (b1 - b0) * t**2
        beta = b0 + t * (b1 - b0)
        alpha = torch.exp(-0.5 * big_b)
        sigma = torch.sqrt(1 - torch.exp(-big_b))
        return (
            alpha,
            sigma,
            -0.5 * beta * alpha,
            beta * alpha**2 / (2 * sigma),
            -torch.log(torch.expm1(big_b)),
        )
    if isinstance(schedule, CosineVP):
        s = schedule.s
        c = math.pi / 2 / (1 + s)
        phi, phi0 = c * (t + s), c * s
        alpha = torch.cos(phi) / math.cos(phi0)
        sigma = torch.sqrt(1 - alpha**2)
        d_alpha = -c * torch.sin(phi) / math.cos(phi0)
        return alpha, sigma, d_alpha, -alpha * d_alpha / sigma, torch.log(alpha**2 / sigma**2)
    lo, hi = schedule.sigma_min, schedule.sigma_max
    sigma = lo * (hi / lo) ** t
    return (
        torch.ones_like(t),
        sigma,
        torch.zeros_like(t),
        sigma * math.log(hi / lo),
        -2 * torch.log(sigma),
    )


@pytest.mark.parametrize("schedule", BUILTINS, ids=IDS)
def test_values_and_derivatives_match_textbook_forms(schedule):
    t = INTERIOR.clone()
    alpha, sigma, d_alpha, d_sigma, log_snr = _textbook(schedule, t)
    for name, expected in [
        ("alpha", alpha),
        ("sigma", sigma),
        ("d_alpha", d_alpha),
        ("d_sigma", d_sigma),
        ("log_snr", log_snr),
    ]:
        got = getattr(schedule, name)(t)
        assert_close(got, expected, atol=1e-12, rtol=1e-10, name=f"{schedule!r}.{name}")


@pytest.mark.parametrize("schedule", BUILTINS, ids=IDS)
def test_derivatives_match_autograd(schedule):
    t = INTERIOR.clone().requires_grad_(True)
    for value, derivative in [
        ("alpha", "d_alpha"),
        ("sigma", "d_sigma"),
        ("log_snr", "d_log_snr"),
    ]:
        (grad,) = torch.autograd.grad(getattr(schedule, value)(t).sum(), t)
        assert_close(
            getattr(schedule, derivative)(t.detach()),
            grad,
            atol=1e-12,
            rtol=1e-10,
            name=f"{schedule!r}.{derivative}",
        )


def test_user_schedule_matches_its_sympy_definition():
    t = sp.Symbol("t")
    alpha_expr = sp.cos(sp.pi * t / 2) ** 2
    sigma_expr = sp.sin(sp.pi * t / 2) * (1 + t) / 2
    schedule = Schedule.from_sympy(alpha_expr, sigma_expr, t)
    times = [0.01, 0.3, 0.6, 0.9]
    for name, expr in [
        ("alpha", alpha_expr),
        ("sigma", sigma_expr),
        ("d_alpha", sp.diff(alpha_expr, t)),
        ("d_sigma", sp.diff(sigma_expr, t)),
        ("log_snr", sp.log(alpha_expr**2 / sigma_expr**2)),
    ]:
        expected = torch.tensor([float(sp.N(expr.subs(t, sp.Rational(str(v))), 30)) for v in times])
        assert_close(getattr(schedule, name)(torch.tensor(times)), expected, atol=1e-13, rtol=1e-12)


@pytest.mark.parametrize("schedule", BUILTINS, ids=IDS)
def test_log_snr_inverse_round_trips(schedule):
    t = torch.linspace(0.001, 0.999, 101)
    assert_close(schedule.inverse_log_snr(schedule.log_snr(t)), t, atol=1e-11, name="t(lambda(t))")
    low, high = schedule.log_snr(torch.tensor([0.999, 0.001]))
    lam = torch.linspace(float(low), float(high), 57)
    assert_close(schedule.log_snr(schedule.inverse_log_snr(lam)), lam, atol=1e-9, rtol=1e-11)


def test_numeric_inverse_by_bisection_round_trips():
    t = sp.Symbol("t")
    schedule = Schedule.from_sympy((1 - t) ** 2, sp.sqrt(t) * (2 - t), t)
    assert schedule.inverse_log_snr_expr is None
    times = torch.linspace(0.0005, 0.9995, 77)
    assert_close(schedule.inverse_log_snr(schedule.log_snr(times)), times, atol=1e-13)
    # the log-SNR of this schedule, written out: 4 log(1 - t) - log t - 2 log(2 - t)
    lam = torch.tensor([-12.0, -1.0, 0.0, 3.5, 9.0])
    back = schedule.inverse_log_snr(lam)
    assert_close(
        4 * torch.log1p(-back) - torch.log(back) - 2 * torch.log(2 - back), lam, atol=1e-10
    )


def test_inverse_at_infinite_log_snr_ends():
    ot = CondOT()
    assert_close(
        ot.inverse_log_snr(torch.tensor([math.inf, -math.inf])), torch.tensor([0.0, 1.0]), atol=0
    )


def test_safe_interval_is_the_documented_rule():
    lo, hi = CondOT().safe_interval
    assert lo == pytest.approx(1e-3, abs=1e-15) and hi == pytest.approx(1 - 1e-3, abs=1e-15)
    vp = VP()
    lo, hi = vp.safe_interval
    assert hi == 1.0  # alpha_1 = exp(-5.025) > 1e-3
    # sigma_t^2 = 1 - exp(-B(t)) = 1e-6 solved by hand: B(t) = -log(1 - 1e-6)
    level = -math.log1p(-1e-6)
    expected = 2 * level / (0.1 + math.sqrt(0.01 + 2 * 19.9 * level))
    assert lo == pytest.approx(expected, rel=1e-12)
    assert VE(0.01, 50.0).safe_interval == (0.0, 1.0)
    cosine = CosineVP()
    lo, hi = cosine.safe_interval
    assert float(cosine.sigma(lo)) == pytest.approx(1e-3, rel=1e-10)
    assert float(cosine.alpha(hi)) == pytest.approx(1e-3, rel=1e-10)
    lo, hi = CondOT(min_scale=0.05).safe_interval
    assert (lo, hi) == (pytest.approx(0.05), pytest.approx(0.95))


def test_shapes_and_dtypes():
    schedule = VP()
    assert schedule.alpha(0.3).shape == ()
    assert schedule.alpha(torch.tensor(0.3)).shape == ()
    assert schedule.sigma(torch.rand(5)).shape == (5,)
    assert VE().alpha(torch.rand(4)).shape == (4,)  # a constant expression still has t's shape
    t32 = torch.tensor([0.2, 0.5], dtype=torch.float32)
    for name in ("alpha", "sigma", "d_alpha", "d_sigma", "log_snr"):
        assert getattr(schedule, name)(t32).dtype == torch.float32


@pytest.mark.parametrize("bad", [-0.1, 1.5, math.nan, [0.2, 1.01]])
def test_time_outside_unit_interval_raises(bad):
    with pytest.raises(ValueError, match=r"t must (lie in \[0, 1\]|be finite)"):
        CondOT().alpha(torch.tensor(bad))


def test_time_with_two_dimensions_raises():
    with pytest.raises(ValueError, match=r"shape \(B,\)"):
        VP().sigma(torch.rand(2, 3))


@pytest.mark.parametrize(
    ("factory", "match"),
    [
        (lambda: VP(beta_min=0.0), "beta_min must be a positive"),
        (lambda: VP(beta_max=-1.0), "beta_max must be a positive"),
        (lambda: VE(sigma_min=0.0, sigma_max=1.0), "sigma_min must be a positive"),
        (lambda: VE(sigma_min=2.0, sigma_max=1.0), "sigma_min < sigma_max"),
        (lambda: CosineVP(s=-0.1), r"s must lie in \[0, 1\)"),
        (lambda: CondOT(min_scale=0.0), r"min_scale must lie in \(0, 1\)"),
    ],
)
def test_bad_parameters_raise(factory, match):
    with pytest.raises(ValueError, match=match):
        factory()


def test_bad_user_schedules_raise():
    t, c = sp.symbols("t c")
    with pytest.raises(ValueError, match=r"decrease strictly.*t -> 1 - t"):
        Schedule.from_sympy(t, 1 - t, t)  # data at t = 1
    with pytest.raises(ValueError, match="decrease strictly"):
        Schedule.from_sympy(1 - t, sp.Rational(1, 2) + 0.3 * sp.sin(6 * t), t)
    with pytest.raises(ValueError, match=r"may depend only on t, got free symbols \['c'\]"):
        Schedule.from_sympy(1 - c * t, t, t)
    with pytest.raises(ValueError, match="must be finite and >= 0"):
        Schedule.from_sympy(1 - 2 * t, t, t)
    with pytest.raises(ValueError, match="does not invert the log-SNR"):
        Schedule.from_sympy(1 - t, t, t, inverse_log_snr=1 / (1 + sp.exp(c)), lam=c)
    with pytest.raises(ValueError, match="sympy Symbol"):
        Schedule.from_sympy(1 - t, t, "t")


def test_inverse_outside_log_snr_range_raises():
    vp = VP()  # lambda_1 = log(alpha_1^2 / sigma_1^2) is about -10.05
    with pytest.raises(ValueError, match="lam must lie in the log-SNR range"):
        vp.inverse_log_snr(torch.tensor([-11.0, 0.0]))
    with pytest.raises(ValueError, match="NaN"):
        vp.inverse_log_snr(math.nan)
