r"""Conformance checks of samplers, likelihood estimators and models against an exact oracle.

Each check runs the code under test with the oracle's exact inputs, compares its output with the
exact answer, and returns a `Report`; ``strict=True`` raises `ConformanceError` instead of
returning a failed report. Statistical comparisons are the two-sided, powered tests of
`assert_mean_matches` (a check refuses to pass when it could not have failed).
"""

from __future__ import annotations

import math

import torch

from ..core._shapes import scalar_time
from ..core._validate import (
    InputTypeError,
    check_callable,
    check_flag,
    check_generator,
    check_int,
    in_unit_interval,
    non_negative,
    positive,
)
from ._assertions import DEFAULT_FAILURE_PROBABILITY, compare_mean, compare_means
from ._oracle import Oracle, mixture_2d
from ._report import Report
from ._samplers import SamplerUnderTest, _repeated_note, _watch_models

__all__ = ["check_sampler", "check_stochastic_sampler", "check_likelihood", "check_field"]


def _oracle_or_default(oracle) -> Oracle:
    if oracle is None:
        return mixture_2d()
    if not isinstance(oracle, Oracle):
        raise TypeError(
            f"oracle must be a genmath.testing.Oracle (e.g. Oracle(data, path)), got {type(oracle).__name__}"
        )
    return oracle


def _check_steps(steps, minimum: int = 1) -> tuple[int, ...]:
    if not isinstance(steps, list | tuple | range):
        raise InputTypeError(
            f"steps must be a sequence of {minimum} or more positive ints, e.g. (10, 20); "
            f"got {type(steps).__name__} {steps!r:.40}"
        )
    steps = tuple(steps)
    if len(steps) < minimum or any(
        isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in steps
    ):
        raise ValueError(f"steps must be {minimum} or more positive ints, got {steps!r}")
    return tuple(sorted(set(steps)))


def _positive_int(value, name: str, minimum: int = 1) -> int:
    return check_int(value, name, minimum)


def _check_common(failure_prob=None, generator=None, strict=False) -> None:
    check_flag(strict, "strict")
    if failure_prob is not None:
        in_unit_interval(failure_prob, "failure_prob", open_low=True, open_high=True)
    check_generator(generator)


def _check_sampler_object(sampler, stochastic: bool) -> SamplerUnderTest:
    if not isinstance(sampler, SamplerUnderTest):
        raise TypeError(
            "sampler must be a SamplerUnderTest: wrap a function with genmath.testing.as_sampler "
            "or use an adapter (diffusers_sampler, k_diffusion_sampler, ...); "
            f"got {type(sampler).__name__}"
        )
    if sampler.stochastic != stochastic:
        use = "check_stochastic_sampler" if sampler.stochastic else "check_sampler"
        raise ValueError(f"{sampler.name!r} is {'' if sampler.stochastic else 'not '}stochastic: use {use}")
    return sampler


class _CommonStart:
    """The same $(x_0, \\varepsilon)$ draws for every row of a check (common random numbers):
    start points $x_{t_0} = \\alpha_{t_0} x_0 + \\sigma_{t_0}\\varepsilon$ differ between rows only
    through the start level, so the rows' errors differ through the step count alone and the
    estimated orders are not blurred by the sampling noise of a fresh set of points."""

    def __init__(self, oracle, n: int, generator):
        self.oracle = oracle
        self.x0 = oracle.data.sample(n, generator=generator)
        self.eps = torch.randn(self.x0.shape, generator=generator, dtype=self.x0.dtype)

    def __call__(self, sampler, steps):
        oracle = self.oracle
        level_from, level_to = sampler.levels(oracle, steps)
        t0, c0 = oracle.time_of_level(*level_from)
        t1, c1 = oracle.time_of_level(*level_to)
        alpha, sigma = oracle.level(t0)
        return (t0, c0, t1, c1), alpha * self.x0 + sigma * self.eps


def _order(nfe: list[int], errors: list[float], floor: float) -> float | None:
    """Least-squares slope of $-\\log e$ against $\\log \\mathrm{NFE}$ over errors above the
    reference's accuracy."""
    pairs = [
        (math.log(k), math.log(e)) for k, e in zip(nfe, errors, strict=True) if e > floor and k > 0
    ]
    if len(pairs) < 2 or len({p[0] for p in pairs}) < 2:
        return None
    mx = sum(p[0] for p in pairs) / len(pairs)
    my = sum(p[1] for p in pairs) / len(pairs)
    sxx = sum((p[0] - mx) ** 2 for p in pairs)
    sxy = sum((p[0] - mx) * (p[1] - my) for p in pairs)
    return -sxy / sxx


def check_sampler(
    sampler: SamplerUnderTest,
    oracle: Oracle | None = None,
    *,
    steps=(5, 10, 20, 50),
    n: int = 512,
    expected_order: float | None = None,
    order_tolerance: float = 0.25,
    atol: float | None = None,
    generator: torch.Generator | None = None,
    strict: bool = False,
) -> Report:
    """Check a deterministic sampler against the exact probability-flow map.

    For each number of steps, exact start points $x \\sim p_{t_0}$ (at the sampler's own start
    level) are integrated by the sampler with the oracle's exact model; the per-sample error
    $\\lVert \\hat x - X(x, t_0, t_1)\\rVert$ against the exact flow map to the sampler's end level
    is reported (RMS and max, in the coordinates of the oracle's path), with the estimated order
    of convergence $p$ in $e \\propto \\mathrm{NFE}^{-p}$: the local order between consecutive
    rows, and a least-squares fit over all rows.

    Fails when the output is not finite, when the sampler is not deterministic, when both the
    fitted order and the order between the two largest NFEs (the most nearly asymptotic) are
    below ``expected_order - order_tolerance`` (a step of lower order than claimed), or when the
    error at the largest NFE exceeds ``atol``. Choose ``steps`` in the sampler's asymptotic
    regime.
    """
    oracle = _oracle_or_default(oracle)
    sampler = _check_sampler_object(sampler, stochastic=False)
    steps = _check_steps(steps, 2 if expected_order is not None else 1)
    n = _positive_int(n, "n")
    if expected_order is not None:
        expected_order = positive(expected_order, "expected_order")
    order_tolerance = non_negative(order_tolerance, "order_tolerance")
    if atol is not None:
        atol = positive(atol, "atol")
    _check_common(generator=generator, strict=strict)
    generator = generator if generator is not None else torch.Generator().manual_seed(0)
    rows, failures, notes = [], [], []
    floor = 100 * max(oracle.rtol, oracle.atol)
    start = _CommonStart(oracle, n, generator)
    for s in steps:
        (t0, c0, t1, c1), x_path = start(sampler, s)
        with _watch_models() as models:
            x_end, nfe = sampler.run(oracle, c0 * x_path, s, generator)
        if note := _repeated_note(models, s):
            notes.append(note)
        if not isinstance(x_end, torch.Tensor) or x_end.shape != x_path.shape:
            got = tuple(x_end.shape) if isinstance(x_end, torch.Tensor) else type(x_end).__name__
            raise ValueError(
                f"{sampler.name}: the sampler must return a tensor of the start's shape "
                f"{tuple(x_path.shape)}, got {got}"
            )
        x_end = x_end.to(x_path) / c1
        reference = oracle.flow_map(x_path, t0, t1)
        error = (x_end - reference).flatten(1).norm(dim=1)
        rms, worst = float(error.pow(2).mean().sqrt()), float(error.max())
        if not math.isfinite(rms):
            failures.append(f"non-finite output at {s} steps (NFE {nfe})")
        rows.append(
            {"steps": s, "nfe": nfe, "t_start": t0, "t_end": t1, "rms_error": rms, "max_error": worst}
        )
        if s == steps[0]:
            again, _ = sampler.run(oracle, c0 * x_path, s, generator)
            if not torch.equal(again.to(x_path) / c1, x_end):
                failures.append(
                    "the sampler is not deterministic: two runs from the same points differ by "
                    f"{float((again.to(x_path) / c1 - x_end).abs().max()):.3g}; use "
                    "check_stochastic_sampler"
                )
    for prev, row in zip(rows, rows[1:], strict=False):
        if (
            prev["rms_error"] > floor
            and row["rms_error"] > floor
            and min(row["nfe"], prev["nfe"]) > 0
            and row["nfe"] != prev["nfe"]
        ):
            row["local_order"] = -math.log(row["rms_error"] / prev["rms_error"]) / math.log(
                row["nfe"] / prev["nfe"]
            )
    order = _order([r["nfe"] for r in rows], [r["rms_error"] for r in rows], floor)
    # the order between the two largest NFEs is the most nearly asymptotic one, the fit the
    # least sensitive to an error cancellation between two rows: the verdict takes the larger
    finest = rows[-1].get("local_order") if len(rows) > 1 else None
    estimates = [v for v in (order, finest) if v is not None]
    asymptotic = max(estimates) if estimates else None
    summary = {
        "order": order,
        "finest_local_order": finest,
        "rms_error_at_max_nfe": rows[-1]["rms_error"],
        "max_nfe": rows[-1]["nfe"],
    }
    if expected_order is not None:
        summary["expected_order"] = expected_order
        if asymptotic is None:
            notes.append("errors at or below the reference's accuracy: no order estimated")
        elif asymptotic < expected_order - order_tolerance:
            errors = ", ".join(f"{r['rms_error']:.3g} at NFE {r['nfe']}" for r in rows)
            failures.append(
                f"estimated order of convergence {asymptotic:.2f} (the larger of the fit over all "
                "rows and the order between the two largest NFEs) is below the expected "
                f"{expected_order:g} "
                f"(tolerance {order_tolerance:g}): RMS errors {errors}; the step is of lower "
                "order than claimed"
            )
    if atol is not None and not rows[-1]["rms_error"] <= atol:
        failures.append(
            f"RMS error {rows[-1]['rms_error']:.3g} at NFE {rows[-1]['nfe']} exceeds atol = {atol:g}"
        )
    notes.append(f"oracle: {oracle!r}; errors in the coordinates of its path")
    report = Report(
        "deterministic sampler",
        sampler.name,
        ["steps", "nfe", "t_start", "t_end", "rms_error", "max_error", "local_order"],
        rows,
        failures,
        summary,
        notes,
    )
    return report.raise_if_failed() if strict else report


def _standardiser(oracle, t):
    mean = oracle.mean(t)
    chol = torch.linalg.cholesky(oracle.cov(t))

    def standardise(x):
        return torch.linalg.solve_triangular(chol, (x - mean).T, upper=False).T

    return standardise


def _moment_features(y: torch.Tensor) -> tuple[torch.Tensor, list[str]]:
    """First and second standardised moments, each with exact mean 0: $y_i$, $y_i y_j - \\delta_{ij}$."""
    d = y.shape[1]
    rows, cols = torch.triu_indices(d, d)
    second = y[:, rows] * y[:, cols] - (rows == cols).to(y)
    names = [f"E[y{i}]" for i in range(d)] + [
        f"E[y{i}y{j}]" for i, j in zip(rows.tolist(), cols.tolist(), strict=True)
    ]
    return torch.cat([y, second], dim=1), names


def _moment_kind(name: str) -> str:
    indices = name[2:-1].replace("y", " ").split()
    if len(indices) == 1:
        return "mean"
    return "variance" if indices[0] == indices[1] else "covariance"


def check_stochastic_sampler(
    sampler: SamplerUnderTest,
    oracle: Oracle | None = None,
    *,
    steps=(10, 20, 50, 100),
    n: int = 4000,
    precision: float = 0.15,
    log_density_precision: float = 0.2,
    failure_prob: float = DEFAULT_FAILURE_PROBABILITY,
    generator: torch.Generator | None = None,
    strict: bool = False,
) -> Report:
    """Check a stochastic sampler's law against the exact marginal at its end level.

    Starting from exact draws of $p_{t_0}$, the samples at the end level are standardised by the
    exact mean and covariance of $p_{t_1}$ ($y = L^{-1}(x - \\mu)$, $LL^\\top = \\Sigma$), and
    two-sided tests compare their first and second moments with 0 and $\\delta_{ij}$, and the
    mean exact log-density $\\mathbb E\\log p_{t_1}(\\hat x)$ with that of independent exact draws
    (a sampler whose law is too wide or too narrow moves it). ``precision`` is the standardised
    bias the moment tests must resolve, ``log_density_precision`` the bias in nats; a test that
    cannot resolve them is refused, like `assert_mean_matches`.

    Rows at fewer steps show the discretisation bias shrinking; the verdict is read at the
    largest number of steps: any significant bias there fails the check.
    """
    oracle = _oracle_or_default(oracle)
    sampler = _check_sampler_object(sampler, stochastic=True)
    steps = _check_steps(steps)
    n = _positive_int(n, "n", minimum=2)  # a sample variance needs two draws
    precision = positive(precision, "precision")
    log_density_precision = positive(log_density_precision, "log_density_precision")
    _check_common(failure_prob, generator, strict)
    generator = generator if generator is not None else torch.Generator().manual_seed(0)
    per_row = failure_prob / len(steps)
    rows, failures, notes = [], [], []
    for s in steps:
        (t0, c0, t1, c1), x_path = _CommonStart(oracle, n, generator)(sampler, s)
        with _watch_models() as models:
            x_end, nfe = sampler.run(oracle, c0 * x_path, s, generator)
        if note := _repeated_note(models, s):
            notes.append(note)
        x_end = x_end.to(x_path) / c1
        features, names = _moment_features(_standardiser(oracle, t1)(x_end))
        moments = compare_mean(
            features, 0.0, precision=precision, failure_prob=per_row / 2, name=f"moments at {s} steps"
        )
        reference = oracle.sample(n, t1, generator=generator)
        density = compare_means(
            oracle.log_prob(x_end, t1)[:, None],
            oracle.log_prob(reference, t1)[:, None],
            precision=log_density_precision,
            failure_prob=per_row / 2,
            name=f"E log p at {s} steps",
        )
        worst = moments.worst()
        row = {
            "steps": s,
            "nfe": nfe,
            "t_end": t1,
            "worst_moment": names[worst],
            "moment_bias": float(moments.mean.flatten()[worst]),
            "moment_z": float(moments.z.flatten()[worst]),
            "log_density_bias": float(density.mean - density.expected),
            "log_density_z": float(density.z),
            "conforms": moments.passed and density.passed,
        }
        rows.append(row)
        if s == steps[-1]:
            for comparison in (moments, density):
                if not comparison.passed:
                    failures.append(comparison.message())
            if moments.rejected:
                kind = _moment_kind(names[worst])
                failures.append(
                    f"the sample law is biased at the largest number of steps ({s}): standardised "
                    f"{names[worst]} = {row['moment_bias']:+.3f} (exact 0; a {kind} bias)"
                )
    report = Report(
        "stochastic sampler",
        sampler.name,
        ["steps", "nfe", "t_end", "worst_moment", "moment_bias", "moment_z", "log_density_bias", "log_density_z", "conforms"],
        rows,
        failures,
        {"n": n, "precision": precision, "log_density_precision": log_density_precision},
        [*notes, f"oracle: {oracle!r}; z = |bias| / standard error, two-sided"],
    )
    return report.raise_if_failed() if strict else report


def _diagnose(error: torch.Tensor, candidates: dict[str, torch.Tensor]) -> str | None:
    """Name the candidate defect that explains ``error`` (residual under a tenth of it)."""
    size = float(error.pow(2).mean().sqrt())
    best, best_size = None, math.inf
    for label, candidate in candidates.items():
        residual = float((error - candidate).pow(2).mean().sqrt())
        if residual < best_size:
            best, best_size = label, residual
    return best if best is not None and best_size < 0.1 * size else None


def check_likelihood(
    estimator,
    oracle: Oracle | None = None,
    *,
    n: int = 64,
    t_data: float = 0.0,
    t_prior: float = 1.0,
    atol: float = 1e-4,
    stochastic: bool = False,
    repeats: int = 200,
    precision: float = 0.05,
    failure_prob: float = DEFAULT_FAILURE_PROBABILITY,
    generator: torch.Generator | None = None,
    strict: bool = False,
) -> Report:
    """Check a log-likelihood estimator against the exact $\\log p_{t_\\text{data}}$.

    ``estimator(x, oracle) -> (B,)`` estimates $\\log p_{t_\\text{data}}(x)$ (take what it needs from
    the oracle: ``oracle.model("velocity")``, ``oracle.prior_log_prob(t_prior)``). Points are exact
    draws of $p_{t_\\text{data}}$. A deterministic estimator must be within ``atol``; a stochastic
    unbiased one (``stochastic=True``, e.g. with Hutchinson's trace estimator) is called once on
    the points repeated ``repeats`` times (``x.repeat(repeats, 1)``; it must draw independent
    noise per row) and its mean per point compared with the exact value by a two-sided test
    resolving ``precision`` nats.

    A failure names the likely defect when one explains the error: the prior term
    $\\log p_{t_\\text{prior}}(z)$ missing or of the wrong sign, the log-determinant (divergence
    integral) missing or of the wrong sign — from the exact decomposition
    $\\log p(x) = \\log p_{t_\\text{prior}}(X(x)) + \\Delta(x)$ through the exact flow map $X$.
    """
    oracle = _oracle_or_default(oracle)
    check_callable(estimator, "estimator", "a function (x, oracle) -> log-likelihood (B,)")
    n = _positive_int(n, "n")
    t_data, t_prior = scalar_time(t_data, "t_data"), scalar_time(t_prior, "t_prior")
    atol = positive(atol, "atol")
    repeats = _positive_int(repeats, "repeats", minimum=2)  # a standard error needs two
    precision = positive(precision, "precision")
    check_flag(stochastic, "stochastic")
    _check_common(failure_prob, generator, strict)
    generator = generator if generator is not None else torch.Generator().manual_seed(0)
    x = oracle.sample(n, t_data, generator=generator)
    exact = oracle.log_prob(x, t_data)

    def estimate():
        value = estimator(x, oracle)
        if not isinstance(value, torch.Tensor) or value.shape != (n,):
            got = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
            raise ValueError(f"the estimator must return a tensor of shape ({n},), got {got}")
        return value.detach().to(exact)

    failures, notes, summary = [], [], {}
    if stochastic:
        batch = estimator(x.repeat(repeats, 1), oracle)
        if not isinstance(batch, torch.Tensor) or batch.shape != (repeats * n,):
            got = tuple(batch.shape) if isinstance(batch, torch.Tensor) else type(batch).__name__
            raise ValueError(
                f"the estimator must return a tensor of shape ({repeats * n},) for the "
                f"{repeats} repeats of the {n} points, got {got}"
            )
        draws = batch.detach().to(exact).reshape(repeats, n)
        comparison = compare_mean(
            draws - exact, 0.0, precision=precision, failure_prob=failure_prob, name="bias"
        )
        value = draws.mean(0)
        bias = comparison.mean
        summary.update(max_bias_z=float(comparison.z.max()), half_width=float(comparison.half_width.max()))
        if not comparison.passed:
            failures.append(comparison.message())
    else:
        value = estimate()
        bias = value - exact
        summary["max_abs_error"] = float(bias.abs().max())
        if not float(bias.abs().max()) <= atol:
            failures.append(f"max |error| {float(bias.abs().max()):.3g} exceeds atol = {atol:g}")
    if failures:
        z_prior = oracle.flow_map(x, t_data, t_prior)
        prior = oracle.log_prob(z_prior, t_prior)
        logdet = exact - prior
        defect = _diagnose(
            bias,
            {
                "the prior term log p(z) is missing": -prior,
                "the prior term has the wrong sign": -2 * prior,
                "the log-determinant (divergence integral) is missing": -logdet,
                "the log-determinant (divergence integral) has the wrong sign": -2 * logdet,
            },
        )
        if defect:
            failures.append(f"likely defect: {defect}")
    rows = [
        {"point": i, "exact": float(exact[i]), "estimate": float(value[i]), "error": float(bias[i])}
        for i in range(min(n, 8))
    ]
    summary["mean_error"] = float(bias.mean())
    notes.append(f"oracle: {oracle!r}; t_data = {t_data:g}, t_prior = {t_prior:g}; first {len(rows)} of {n} points")
    report = Report(
        "likelihood estimator",
        getattr(estimator, "__name__", type(estimator).__name__),
        ["point", "exact", "estimate", "error"],
        rows,
        failures,
        summary,
        notes,
    )
    return report.raise_if_failed() if strict else report


_PARAMETERIZATIONS = ("x0", "eps", "score", "velocity", "v")


def _check_times(times) -> list[float]:
    if isinstance(times, torch.Tensor):
        times = times.reshape(-1).tolist()
    if not isinstance(times, list | tuple | range) or not times:
        raise InputTypeError(
            f"times must be a non-empty sequence of times in [0, 1], got {times!r:.40}"
        )
    return [scalar_time(t, "times") for t in times]


def check_field(
    model,
    oracle: Oracle | None = None,
    *,
    parameterization: str = "x0",
    times=None,
    n: int = 512,
    rtol: float = 1e-5,
    generator: torch.Generator | None = None,
    strict: bool = False,
) -> Report:
    """Check a score / denoiser / velocity / $\\varepsilon$ / v model against the exact field.

    ``model(x, t)`` (``t`` a 0-d tensor, genmath's time on the oracle's path) predicts
    ``parameterization``. At each time of ``times`` (default: five times across the path's safe
    interval), on exact draws of $p_t$, the relative RMS error
    $\\lVert \\hat f - f\\rVert / \\lVert f \\rVert$ and the largest absolute error are reported;
    the check fails where the relative error exceeds ``rtol`` or the output is not finite, and
    names the defect when the model matches another parameterization or the negated field. To
    test a model at the ends of time, where divisions by $\\alpha_t$ or $\\sigma_t$ give NaN,
    pass them: ``times=oracle.safe_interval``.
    """
    oracle = _oracle_or_default(oracle)
    if parameterization not in _PARAMETERIZATIONS:
        raise ValueError(f"parameterization must be one of {_PARAMETERIZATIONS}, got {parameterization!r}")
    check_callable(model, "model", "a function (x, t) -> prediction")
    n = _positive_int(n, "n")
    rtol = positive(rtol, "rtol")
    _check_common(generator=generator, strict=strict)
    generator = generator if generator is not None else torch.Generator().manual_seed(0)
    lo, hi = oracle.safe_interval
    if times is None:
        times = [lo + (hi - lo) * f for f in (0.02, 0.25, 0.5, 0.75, 0.98)]
    times = _check_times(times)
    rows, failures = [], []
    for t in times:
        t = float(t)
        x = oracle.sample(n, t, generator=generator)
        tt = torch.tensor(t, dtype=x.dtype)
        exact = oracle.predict(x, t, parameterization)
        got = model(x, tt)
        if not isinstance(got, torch.Tensor) or got.shape != x.shape:
            shape = tuple(got.shape) if isinstance(got, torch.Tensor) else type(got).__name__
            raise ValueError(f"the model must return a tensor of shape {tuple(x.shape)}, got {shape}")
        got = got.detach().to(exact)
        finite = torch.isfinite(got).flatten(1).all(dim=1)
        if not finite.all():
            bad = int((~finite).sum())
            rows.append({"t": t, "relative_rms_error": math.nan, "max_abs_error": math.nan})
            failures.append(f"non-finite output (NaN or inf) at t = {t:.4g} for {bad} of {n} points")
            continue
        scale = float(exact.pow(2).mean().sqrt())
        relative = float((got - exact).pow(2).mean().sqrt()) / max(scale, 1e-300)
        rows.append({"t": t, "relative_rms_error": relative, "max_abs_error": float((got - exact).abs().max())})
        if not relative <= rtol:
            message = f"relative error {relative:.3g} > rtol = {rtol:g} at t = {t:.4g}"
            others = {
                f"the model returns the {other!r} prediction instead of {parameterization!r}": oracle.predict(x, t, other) - exact
                for other in _PARAMETERIZATIONS
                if other != parameterization
            }
            others["the field has the wrong sign"] = -2 * exact
            defect = _diagnose((got - exact).flatten(), {k: v.flatten() for k, v in others.items()})
            failures.append(message + (f"; likely defect: {defect}" if defect else ""))
    errors = [r["relative_rms_error"] for r in rows]
    report = Report(
        "field model",
        f"{getattr(model, '__name__', type(model).__name__)} ({parameterization})",
        ["t", "relative_rms_error", "max_abs_error"],
        rows,
        failures,
        {"max_relative_error": max(errors) if not any(map(math.isnan, errors)) else math.nan},
        [f"oracle: {oracle!r}"],
    )
    return report.raise_if_failed() if strict else report
