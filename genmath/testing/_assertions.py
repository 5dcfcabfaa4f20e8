r"""Statistical and exact assertions for testing estimators against exact answers.

A statistical assertion compares a Monte-Carlo mean with its exact value within $k$ standard
errors estimated from the same samples, with $k$ chosen from a failure probability (default one
in a million, Bonferroni-corrected over the compared quantities) — both sides, so an estimator
biased low fails as surely as one biased high. Passing such a test means something only if it
*could have failed*, so each assertion also checks two things before it passes:

* **power** — the half-width $k\,\mathrm{SE}$ of the comparison must not exceed the precision
  the comparison needs, given as ``precision=`` (absolute) and/or ``rtol=`` (relative to
  $|\text{expected}|$, per component); without either, the default is
  `DEFAULT_RTOL` times the largest $|\text{expected}|$, and a comparison with an exact zero must
  state its precision. An underpowered test raises `InsufficientPowerError`, saying how many
  samples would resolve the requested precision.
* **tails** — with at least `MIN_TAIL_SAMPLES` draws, the generalised-Pareto shape $\hat\xi$ of
  each tail of each component is estimated (`genmath.testing.tail_shape`). A component is
  *heavy-tailed* when $\hat\xi > 0.7$ (an infinite or near-infinite variance) **and** its
  standard error rests on a few draws: the largest single draw carries more than
  `MAX_VARIANCE_SHARE` (10 %) of the sample variance. The second condition keeps the refusal
  for tails that matter at the sample size used (a product of three Gaussians can read
  $\hat\xi \approx 0.8$ at $n = 3000$ while its mean is perfectly normal). A heavy-tailed
  comparison raises `HeavyTailError`: compare something with a finite variance instead (for
  example the fixed-time expectation at quadrature nodes instead of a $1/t$-weighted average
  over random times).

Neither refusal is an `AssertionError`: a test that expects a wrong estimator to *fail* with
``pytest.raises(AssertionError)`` cannot pass because the comparison was hopeless.
"""

from __future__ import annotations

import dataclasses
import math

import torch

from ..core._validate import InputTypeError, check_int, check_real, in_unit_interval, non_negative
from ._tails import DEFAULT_MAX_TAIL_SHAPE, MIN_TAIL_SAMPLES, tail_shape

__all__ = [
    "DEFAULT_FAILURE_PROBABILITY",
    "DEFAULT_RTOL",
    "MAX_VARIANCE_SHARE",
    "StatisticalTestError",
    "InsufficientPowerError",
    "HeavyTailError",
    "MeanComparison",
    "z_threshold",
    "compare_mean",
    "compare_means",
    "assert_mean_matches",
    "assert_means_match",
    "assert_variance_matches",
    "assert_close",
]

DEFAULT_FAILURE_PROBABILITY = 1e-6
DEFAULT_RTOL = 0.1
"""Default required precision: the half-width $k\\,\\mathrm{SE}$ may be at most this fraction of
the largest $|\\text{expected}|$ (a test that cannot tell 7 from 8 is refused)."""
MAX_VARIANCE_SHARE = 0.1
"""Largest share of the sample variance one draw may carry before a heavy tail (by its Pareto
shape) is taken to decide the comparison."""


class StatisticalTestError(Exception):
    """A statistical comparison that cannot decide: underpowered, or on heavy-tailed samples."""


class InsufficientPowerError(StatisticalTestError):
    """The comparison's half-width $k\\,\\mathrm{SE}$ exceeds the precision it needs."""


class HeavyTailError(StatisticalTestError):
    """The samples' tails are too heavy for a normal approximation of their mean."""


def z_threshold(failure_prob: float = DEFAULT_FAILURE_PROBABILITY, comparisons: int = 1) -> float:
    """``k`` such that a two-sided normal test over ``comparisons`` quantities fails with
    probability at most ``failure_prob`` when every null hypothesis holds (Bonferroni)."""
    from scipy.stats import norm

    failure_prob = in_unit_interval(failure_prob, "failure_prob", open_low=True, open_high=True)
    check_int(comparisons, "comparisons", minimum=1)
    return float(norm.isf(failure_prob / (2 * comparisons)))


@dataclasses.dataclass(frozen=True)
class MeanComparison:
    """The outcome of a two-sided comparison of a Monte-Carlo mean with an exact value.

    Attributes:
        name: what was compared.
        n: number of samples.
        mean, expected, standard_error: per component (the shape of one sample).
        k: the z threshold (Bonferroni over the components).
        half_width: $k\\,\\mathrm{SE}$, the smallest error the test detects.
        tolerance: the precision the comparison needs (``inf`` where none was required).
        tail_shape: the generalised-Pareto tail shape per component, or ``None`` if not
            estimated (fewer than `MIN_TAIL_SAMPLES` samples, or disabled).
        max_tail_shape: the threshold above which the tails are called heavy.
        variance_share: per component, the largest share of the sample variance carried by
            one draw, $\\max_i (x_i - \\bar x)^2 / \\sum_j (x_j - \\bar x)^2$ (``None`` when the
            tail shape is not estimated).
    """

    name: str
    n: int
    mean: torch.Tensor
    expected: torch.Tensor
    standard_error: torch.Tensor
    k: float
    half_width: torch.Tensor
    tolerance: torch.Tensor
    tail_shape: torch.Tensor | None
    max_tail_shape: float | None
    variance_share: torch.Tensor | None = None

    @property
    def z(self) -> torch.Tensor:
        """$|\\bar x - \\mu| / \\mathrm{SE}$ per component (``inf`` for a wrong exact component,
        0 for a right one)."""
        diff = (self.mean - self.expected).abs()
        exact = self.standard_error == 0
        z = diff / torch.where(exact, torch.ones_like(diff), self.standard_error)
        return torch.where(exact, torch.where(diff == 0, 0.0, math.inf), z)

    @property
    def finite(self) -> bool:
        return bool(torch.isfinite(self.mean).all() and torch.isfinite(self.standard_error).all())

    @property
    def heavy_tailed(self) -> bool:
        return bool(self._heavy().any())

    def _heavy(self) -> torch.Tensor:
        if self.tail_shape is None or self.max_tail_shape is None:
            return torch.zeros(self.mean.shape, dtype=torch.bool)
        heavy = self.tail_shape > self.max_tail_shape
        if self.variance_share is not None:
            heavy = heavy & (self.variance_share > MAX_VARIANCE_SHARE)
        return heavy

    @property
    def rejected(self) -> bool:
        """The exact value lies outside the $k$-standard-error interval."""
        return bool((self.z > self.k).any())

    @property
    def powered(self) -> bool:
        """Every component resolves its required precision: $k\\,\\mathrm{SE} \\le$ tolerance."""
        return bool((self.half_width <= self.tolerance).all())

    @property
    def passed(self) -> bool:
        return self.finite and not self.heavy_tailed and not self.rejected and self.powered

    def required_samples(self) -> int:
        """Samples that would bring every half-width within its tolerance (at this SE)."""
        ratio = (self.half_width / self.tolerance).max().item()
        return max(self.n, math.ceil(self.n * ratio**2)) if math.isfinite(ratio) else -1

    def worst(self) -> int:
        """Index (flattened) of the component with the largest z."""
        return int(self.z.flatten().argmax()) if self.z.numel() else 0

    def as_dict(self) -> dict:
        def listed(t):
            return None if t is None else t.tolist()

        return {
            "name": self.name,
            "n": self.n,
            "mean": listed(self.mean),
            "expected": listed(self.expected),
            "standard_error": listed(self.standard_error),
            "z": listed(self.z),
            "k": self.k,
            "half_width": listed(self.half_width),
            "tolerance": listed(self.tolerance),
            "tail_shape": listed(self.tail_shape),
            "passed": self.passed,
        }

    def message(self) -> str:
        """Why the comparison failed or was refused ('' if it passed)."""
        i = self.worst()
        flat = {
            key: getattr(self, key).flatten()
            for key in ("mean", "expected", "standard_error", "half_width", "tolerance")
        }
        at = lambda key, j=i: float(flat[key][j])  # noqa: E731
        if not self.finite:
            return f"{self.name}: non-finite Monte-Carlo mean or standard error (mean {self.mean})"
        if self.heavy_tailed:
            j = int(torch.where(self._heavy(), self.tail_shape, -math.inf).flatten().argmax())
            share = float(self.variance_share.flatten()[j]) if self.variance_share is not None else math.nan
            return (
                f"{self.name}: the samples are too heavy-tailed for a normal approximation: "
                f"generalised-Pareto tail shape {float(self.tail_shape.flatten()[j]):.2f} > "
                f"{self.max_tail_shape:g} at component {j} (shape 1/2 is an infinite variance), "
                f"and one draw carries {100 * share:.0f} % of its sample variance; "
                f"mean {at('mean', j):.6g}, exact {at('expected', j):.6g}, se {at('standard_error', j):.3g}, "
                f"n = {self.n}. The standard error cannot be trusted: compare a quantity with a "
                "finite variance (e.g. a fixed-time expectation at quadrature nodes)"
            )
        if self.rejected:
            return (
                f"{self.name}: Monte-Carlo mean differs from the exact value by "
                f"{float(self.z.flatten()[i]):.2f} standard errors (> k = {self.k:.2f}); "
                f"component {i}: mean {at('mean'):.6g}, exact {at('expected'):.6g}, "
                f"se {at('standard_error'):.3g}, n = {self.n}"
            )
        if not self.powered:
            j = int((self.half_width / self.tolerance).flatten().argmax())
            return (
                f"{self.name}: the test has no power at the precision it needs: k*se = "
                f"{at('half_width', j):.3g} exceeds the tolerance {at('tolerance', j):.3g} at "
                f"component {j} (k = {self.k:.2f}, se {at('standard_error', j):.3g}, "
                f"n = {self.n}); about {self.required_samples()} samples would resolve it. Use "
                "more samples or a lower-variance estimator, or state a coarser precision= / rtol="
            )
        return ""

    def raise_if_failed(self) -> MeanComparison:
        """Raise `AssertionError` (mismatch, non-finite), `HeavyTailError` or
        `InsufficientPowerError`; return ``self`` if the comparison passed."""
        if not self.finite or (self.rejected and not self.heavy_tailed):
            raise AssertionError(self.message())
        if self.heavy_tailed:
            raise HeavyTailError(self.message())
        if not self.powered:
            raise InsufficientPowerError(self.message())
        return self

    def __str__(self) -> str:
        i = self.worst()
        status = "passed" if self.passed else "FAILED"
        return (
            f"{self.name}: {status}; n = {self.n}, max z = {float(self.z.flatten()[i]):.2f} "
            f"(k = {self.k:.2f}), worst component {i}: mean {float(self.mean.flatten()[i]):.6g} "
            f"vs exact {float(self.expected.flatten()[i]):.6g} "
            f"+- {float(self.half_width.flatten()[i]):.3g}"
        )


def _as_tensor(x, like: torch.Tensor | None = None, name: str = "value") -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x
    if isinstance(x, str) or not isinstance(x, int | float | list | tuple):
        raise InputTypeError(f"{name} must be a tensor or numbers, got {type(x).__name__}")
    dtype = like.dtype if like is not None else torch.float64
    return torch.as_tensor(x, dtype=dtype)


def _check_samples(samples, name: str, argument: str = "samples") -> torch.Tensor:
    samples = _as_tensor(samples, name=argument)
    if not samples.is_floating_point():
        samples = samples.to(torch.float64)
    if samples.ndim == 0 or samples.shape[0] < 2:
        raise ValueError(
            f"{name}: need at least 2 samples along dim 0, got shape {tuple(samples.shape)}"
        )
    return samples


def _positive_or_none(value, name: str, like: torch.Tensor) -> torch.Tensor | None:
    if value is None:
        return None
    tensor = _as_tensor(value, like, name=name).to(like.dtype)
    if not torch.isfinite(tensor).all() or (tensor < 0).any():
        raise ValueError(f"{name} must be finite and >= 0, got {value!r}")
    return tensor


def _tolerance(expected, precision, rtol, name: str) -> torch.Tensor:
    precision = _positive_or_none(precision, "precision", expected)
    rtol = _positive_or_none(rtol, "rtol", expected)
    if precision is None and rtol is None:
        scale = float(expected.abs().max()) if expected.numel() else 0.0
        if scale == 0:
            raise ValueError(
                f"{name}: comparing with an exact 0 needs the precision the test must resolve: "
                "pass precision= (the largest error that must not go unnoticed)"
            )
        return torch.full_like(expected, DEFAULT_RTOL * scale)
    tol = torch.zeros_like(expected)
    if precision is not None:
        tol = tol + precision
    if rtol is not None:
        tol = tol + rtol * expected.abs()
    try:
        return tol.expand_as(expected).clone()
    except RuntimeError:
        raise ValueError(
            f"{name}: precision/rtol of shape {tuple(tol.shape)} do not broadcast to the compared "
            f"shape {tuple(expected.shape)}"
        ) from None


def _check_tail_limit(max_tail_shape) -> None:
    # None switches the diagnostic off; a NaN or an infinite limit would do so silently
    if max_tail_shape is not None:
        check_real(max_tail_shape, "max_tail_shape")


def _variance_share(samples: torch.Tensor) -> torch.Tensor:
    squares = (samples - samples.mean(0)) ** 2
    total = squares.sum(0)
    return torch.where(total > 0, squares.amax(0) / torch.where(total > 0, total, 1.0), 0.0)


def _finish(
    name, n, mean, expected, se, precision, rtol, failure_prob, tails, max_tail_shape, share=None
):
    try:
        expected = _as_tensor(expected, mean).to(mean.dtype).expand_as(mean)
    except RuntimeError:
        raise ValueError(
            f"{name}: expected has shape {tuple(_as_tensor(expected).shape)}, which does not "
            f"broadcast to the shape of one sample {tuple(mean.shape)}"
        ) from None
    tolerance = _tolerance(expected, precision, rtol, name)
    k = z_threshold(failure_prob, max(mean.numel(), 1))
    return MeanComparison(
        name=name,
        n=n,
        mean=mean,
        expected=expected,
        standard_error=se,
        k=k,
        half_width=k * se,
        tolerance=tolerance,
        tail_shape=tails,
        max_tail_shape=max_tail_shape,
        variance_share=share,
    )


def compare_mean(
    samples: torch.Tensor,
    expected,
    *,
    precision=None,
    rtol=None,
    failure_prob: float = DEFAULT_FAILURE_PROBABILITY,
    max_tail_shape: float | None = DEFAULT_MAX_TAIL_SHAPE,
    name: str = "mean",
) -> MeanComparison:
    """Compare the mean over dim 0 of ``samples`` with ``expected`` without raising on the
    outcome: returns a `MeanComparison` (``.passed``, ``.message()``, ``.raise_if_failed()``).
    Arguments as in `assert_mean_matches`."""
    samples = _check_samples(samples, name)
    _check_tail_limit(max_tail_shape)
    n = samples.shape[0]
    mean = samples.mean(0)
    se = samples.std(0, unbiased=True) / math.sqrt(n)
    tails = tail_shape(samples) if max_tail_shape is not None else None
    share = _variance_share(samples) if tails is not None else None
    return _finish(
        name, n, mean, expected, se, precision, rtol, failure_prob, tails, max_tail_shape, share
    )


def compare_means(
    samples: torch.Tensor,
    reference: torch.Tensor,
    *,
    precision=None,
    rtol=None,
    failure_prob: float = DEFAULT_FAILURE_PROBABILITY,
    max_tail_shape: float | None = DEFAULT_MAX_TAIL_SHAPE,
    name: str = "mean",
) -> MeanComparison:
    """Two-sample version of `compare_mean`: the mean of ``samples`` against the mean of
    independent ``reference`` samples (for instance drawn from an exact sampler), with
    $\\mathrm{SE}^2 = s_1^2/n_1 + s_2^2/n_2$. ``expected`` of the result is the reference mean;
    ``rtol`` is relative to it."""
    samples = _check_samples(samples, name)
    _check_tail_limit(max_tail_shape)
    reference = _check_samples(reference, f"{name} (reference)", "reference").to(samples)
    if samples.shape[1:] != reference.shape[1:]:
        raise ValueError(
            f"{name}: samples have event shape {tuple(samples.shape[1:])} but the reference has "
            f"{tuple(reference.shape[1:])}"
        )
    n, m = samples.shape[0], reference.shape[0]
    se = (samples.var(0, unbiased=True) / n + reference.var(0, unbiased=True) / m).sqrt()
    tails = share = None
    if max_tail_shape is not None:
        pairs = [(tail_shape(s), s) for s in (samples, reference)]
        pairs = [(t, _variance_share(s)) for t, s in pairs if t is not None]
        if pairs:
            # heavy when either sample is: its larger shape, with that sample's variance share
            tails = torch.stack([t for t, _ in pairs]).amax(0)
            share = torch.stack([torch.where(t >= tails, v, 0.0) for t, v in pairs]).amax(0)
    return _finish(
        name, n, samples.mean(0), reference.mean(0), se, precision, rtol, failure_prob, tails,
        max_tail_shape, share,
    )


def assert_mean_matches(
    samples: torch.Tensor,
    expected,
    *,
    precision=None,
    rtol=None,
    failure_prob: float = DEFAULT_FAILURE_PROBABILITY,
    max_tail_shape: float | None = DEFAULT_MAX_TAIL_SHAPE,
    name: str = "mean",
) -> MeanComparison:
    """Assert that the mean over the first dimension of ``samples`` equals ``expected``, and that
    the test could have told otherwise.

    The standard error of each component is estimated from the same samples; the test is
    two-sided and Bonferroni-corrected over the components (``k = z_threshold(failure_prob,
    components)``).

    Arguments:
        samples: ``(n, *shape)``, one Monte-Carlo draw per row.
        expected: the exact mean, broadcastable to ``shape``.
        precision: the largest absolute error that must not go unnoticed (scalar or
            broadcastable to ``shape``); the test is refused unless $k\\,\\mathrm{SE} \\le$
            ``precision + rtol * |expected|`` for every component.
        rtol: the same, relative to $|\\text{expected}|$ per component.
            Without ``precision`` and ``rtol``: `DEFAULT_RTOL` times the largest
            $|\\text{expected}|$ (an all-zero ``expected`` then needs ``precision``).
        failure_prob: probability that a correct estimator fails (one in a million).
        max_tail_shape: the generalised-Pareto tail shape above which the samples are called
            heavy-tailed (``None`` skips the diagnostic; see `tail_shape`).
        name: named in messages.

    Raises:
        AssertionError: the mean differs (by more than ``k`` standard errors), or is not finite.
        HeavyTailError: the tails are too heavy for the standard error to be trusted.
        InsufficientPowerError: the test could not have detected an error of the required size.

    Returns the `MeanComparison`.
    """
    return compare_mean(
        samples,
        expected,
        precision=precision,
        rtol=rtol,
        failure_prob=failure_prob,
        max_tail_shape=max_tail_shape,
        name=name,
    ).raise_if_failed()


def assert_means_match(
    samples: torch.Tensor,
    reference: torch.Tensor,
    *,
    precision=None,
    rtol=None,
    failure_prob: float = DEFAULT_FAILURE_PROBABILITY,
    max_tail_shape: float | None = DEFAULT_MAX_TAIL_SHAPE,
    name: str = "mean",
) -> MeanComparison:
    """Two-sample `assert_mean_matches`: ``samples`` and independent ``reference`` samples have
    the same mean (see `compare_means`); the same power and tail requirements."""
    return compare_means(
        samples,
        reference,
        precision=precision,
        rtol=rtol,
        failure_prob=failure_prob,
        max_tail_shape=max_tail_shape,
        name=name,
    ).raise_if_failed()


def assert_variance_matches(
    samples: torch.Tensor,
    expected_variance,
    *,
    precision=None,
    rtol=None,
    failure_prob: float = DEFAULT_FAILURE_PROBABILITY,
    max_tail_shape: float | None = DEFAULT_MAX_TAIL_SHAPE,
    name: str = "variance",
) -> MeanComparison:
    """Assert that the variance over dim 0 of ``samples`` equals ``expected_variance``.

    Tests the mean of the unbiased centred squares $\\tfrac{n}{n-1}(x - \\bar x)^2$ with its own
    standard error (from the fourth central moment), so it is two-sided like
    `assert_mean_matches`, with the same ``precision`` / ``rtol`` power requirement (the default
    is relative to the largest expected variance)."""
    samples = _check_samples(samples, name)
    n = samples.shape[0]
    centred_sq = (samples - samples.mean(0)) ** 2 * (n / (n - 1))
    return assert_mean_matches(
        centred_sq,
        expected_variance,
        precision=precision,
        rtol=rtol,
        failure_prob=failure_prob,
        max_tail_shape=max_tail_shape,
        name=name,
    )


def assert_close(actual, expected, *, atol: float, rtol: float = 0.0, name: str = "value") -> None:
    """Exact-numeric comparison with an explicit tolerance and a message naming the worst entry."""
    actual = _as_tensor(actual, name="actual")
    expected = _as_tensor(expected, actual, name="expected").to(actual.dtype)
    # a NaN or infinite tolerance would let every comparison pass
    non_negative(atol, "atol")
    non_negative(rtol, "rtol")
    if actual.shape != expected.shape:
        raise AssertionError(f"{name}: shape {tuple(actual.shape)} != expected {tuple(expected.shape)}")
    err = (actual - expected).abs()
    bound = atol + rtol * expected.abs()
    if not torch.isfinite(actual).all() or (err > bound).any():
        i = int((err - bound).flatten().argmax())
        raise AssertionError(
            f"{name}: max abs error {float(err.max()):.3e} exceeds atol={atol:g}, rtol={rtol:g} "
            f"(entry {i}: got {float(actual.flatten()[i]):.10g}, expected {float(expected.flatten()[i]):.10g})"
        )


__all__ += ["MIN_TAIL_SAMPLES", "tail_shape"]
