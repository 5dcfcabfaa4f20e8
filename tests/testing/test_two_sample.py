"""`genmath.testing.energy_distance` against the closed form for two 1-D Gaussians.

For X ~ N(a, s²) and Y ~ N(b, r²), X - Y ~ N(a - b, s² + r²), and for Z ~ N(m, v)
E|Z| = sqrt(2v/π) exp(-m²/(2v)) + m (1 - 2Φ(-m/√v)) (the folded normal's mean), so
D_E² = 2 E|X - Y| - E|X - X'| - E|Y - Y'| is known exactly."""

import math

import pytest
import torch
from scipy.stats import norm

from genmath.testing import assert_mean_matches, energy_distance


def _folded_normal_mean(m: float, v: float) -> float:
    return math.sqrt(2 * v / math.pi) * math.exp(-(m**2) / (2 * v)) + m * (1 - 2 * norm.cdf(-m / math.sqrt(v)))


def _exact(a, s, b, r) -> float:
    return (
        2 * _folded_normal_mean(a - b, s**2 + r**2)
        - _folded_normal_mean(0.0, 2 * s**2)
        - _folded_normal_mean(0.0, 2 * r**2)
    )


@pytest.mark.parametrize("a, s, b, r", [(0.0, 1.0, 1.0, 1.0), (0.0, 1.0, 0.0, 2.0), (0.5, 0.7, 0.5, 0.7)])
def test_energy_distance_is_unbiased_for_gaussians(a, s, b, r):
    gen = torch.Generator().manual_seed(1)
    # few points per estimate, where the V-statistic's bias (E|X - X'|/n + E|Y - Y'|/m,
    # about 0.17 here) would show
    n, repeats = 12, 4000
    estimates = torch.stack([
        energy_distance(a + s * torch.randn(n, generator=gen), b + r * torch.randn(n + 3, generator=gen))
        for _ in range(repeats)
    ])
    assert_mean_matches(estimates, _exact(a, s, b, r), precision=0.04, name="energy distance")


def test_energy_distance_is_zero_only_for_equal_samples_in_the_limit():
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(3000, 2, generator=gen)
    assert float(energy_distance(x, x + 0.5)) > 0.05
    assert abs(float(energy_distance(x, torch.randn(3000, 2, generator=gen)))) < 0.01


@pytest.mark.parametrize(
    "x, y, error, match",
    [
        (torch.zeros(5, 2), torch.zeros(5, 3), ValueError, "same event shape"),
        (torch.zeros(1, 2), torch.zeros(5, 2), ValueError, "N >= 2"),
        (torch.zeros(5, 2, 2), torch.zeros(5, 4), ValueError, "same event shape"),
        (torch.zeros(5), torch.zeros(5, 2), ValueError, "same event shape"),
        (torch.tensor(0.0), torch.zeros(5, 2), ValueError, "point cloud"),
        (torch.zeros(5, 2, dtype=torch.float64), torch.zeros(5, 2, dtype=torch.float32), TypeError, "one dtype"),
        (torch.full((5, 2), float("nan")), torch.zeros(5, 2), ValueError, "must be finite"),
        (torch.zeros(5, 2, dtype=torch.long), torch.zeros(5, 2), ValueError, "floating point"),
        ([[0.0, 1.0]], torch.zeros(5, 2), TypeError, "torch.Tensor"),
    ],
)
def test_energy_distance_bad_input(x, y, error, match):
    with pytest.raises(error, match=match):
        energy_distance(x, y)


def test_energy_distance_takes_any_event_shape_as_its_flattened_points():
    gen = torch.Generator().manual_seed(3)
    x, y = torch.randn(50, 2, 3, generator=gen), torch.randn(60, 2, 3, generator=gen) + 0.3
    assert float(energy_distance(x, y)) == float(energy_distance(x.flatten(1), y.flatten(1)))
