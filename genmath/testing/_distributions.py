r"""Conformance check of a flow or any `torch.distributions.Distribution`.

Three independent checks of ``log_prob``, none of which trusts the object's own arithmetic:

* **change of variables** (flows): with $z = f(x)$ the map to the base, $\log q(x)$ must equal
  $\log p_Z(f(x)) + \log|\det J_f(x)|$ with $J_f$ computed by autograd, not by the flow's
  log-determinant (D-change-of-variables);
* **normalisation** (events of 1 or 2 numbers): $\int q = 1$ by composite Gauss–Legendre
  quadrature over a box that the samples' spread sets;
* **sample / log_prob consistency**: the moments of ``sample()`` against the moments of
  $\exp(\log q)$ by quadrature (1–2 dimensions), or, in more dimensions, the importance identity
  $\mathbb E_{x \sim q}[r(x)/q(x)] = 1$ for a Gaussian $r$ narrower than the samples — two-sided
  tests that refuse to pass without power, like `assert_mean_matches`.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ..core._validate import (
    InputTypeError,
    check_flag,
    check_generator,
    check_int,
    in_unit_interval,
    positive,
)
from ._assertions import DEFAULT_FAILURE_PROBABILITY, compare_mean
from ._report import Report

__all__ = ["check_distribution", "flow_parts"]


def flow_parts(distribution):
    """``(to_base, base)`` of a flow: ``to_base(x) -> z`` (differentiable) and the base
    distribution, for genmath `Flow`s, zuko flows (``flow()``), and
    `torch.distributions.TransformedDistribution`; ``None`` for anything else."""
    from torch.distributions import ComposeTransform, TransformedDistribution

    transform, base = getattr(distribution, "transform", None), getattr(distribution, "base", None)
    if transform is not None and base is not None:
        if hasattr(transform, "inverse") and hasattr(transform, "event_dim") and not isinstance(
            transform, torch.distributions.Transform
        ):  # a genmath Bijection: forward(x, context) -> (z, logdet)
            context = getattr(distribution, "context", None)
            return (lambda x: transform.forward(x, context)[0]), base
        if isinstance(transform, torch.distributions.Transform):  # zuko: transform maps x -> z
            return transform, base
    if isinstance(distribution, TransformedDistribution):
        return ComposeTransform(list(distribution.transforms)).inv, distribution.base_dist
    return None


def _sample(distribution, n: int, generator: torch.Generator | None) -> torch.Tensor:
    seed = int(torch.randint(0, 2**62, (), generator=generator)) if generator is not None else None
    with torch.random.fork_rng(devices=[]):
        if seed is not None:
            torch.manual_seed(seed)
        with torch.no_grad():
            return distribution.sample((n,))


def _log_prob(distribution, x: torch.Tensor) -> torch.Tensor:
    """``log_prob`` with points outside the support read as $-\\infty$ (not an error)."""
    try:
        support = distribution.support
    except NotImplementedError:  # e.g. zuko's flows: their support is the real space
        support = None
    inside = torch.ones(x.shape[0], dtype=torch.bool)
    if support is not None:
        try:
            inside = support.check(x)
            while inside.ndim > 1:
                inside = inside.all(-1)
        except (NotImplementedError, RuntimeError):
            pass
    out = torch.full((x.shape[0],), -math.inf, dtype=x.dtype)
    if inside.any():
        with torch.no_grad():
            out[inside] = distribution.log_prob(x[inside]).to(x.dtype)
    return out


def _jacobian_log_det(to_base, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(z, log|det J|)`` of ``to_base`` at each point, the Jacobian by autograd per point."""
    zs, logdets = [], []
    for point in x:
        point = point.detach().clone().requires_grad_(True)
        z = to_base(point[None])[0]
        jac = torch.stack(
            [torch.autograd.grad(z.flatten()[i], point, retain_graph=True)[0].flatten() for i in range(z.numel())]
        )
        zs.append(z.detach())
        logdets.append(torch.linalg.slogdet(jac).logabsdet)
    return torch.stack(zs), torch.stack(logdets)


def _quadrature_grid(samples: torch.Tensor, panels: int, order: int):
    """Composite Gauss–Legendre nodes and weights over a box twice the samples' range."""
    nodes, weights = np.polynomial.legendre.leggauss(order)
    axes, axis_weights = [], []
    for j in range(samples.shape[1]):
        lo, hi = float(samples[:, j].min()), float(samples[:, j].max())
        span = hi - lo
        lo, hi = lo - span / 2, hi + span / 2
        edges = np.linspace(lo, hi, panels + 1)
        mid, half = (edges[1:] + edges[:-1]) / 2, (edges[1:] - edges[:-1]) / 2
        axes.append((mid[:, None] + half[:, None] * nodes[None]).ravel())
        axis_weights.append((half[:, None] * weights[None]).ravel())
    mesh = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, samples.shape[1])
    w = np.prod(np.stack(np.meshgrid(*axis_weights, indexing="ij"), -1).reshape(-1, samples.shape[1]), 1)
    return torch.as_tensor(mesh, dtype=samples.dtype), torch.as_tensor(w, dtype=samples.dtype)


def check_distribution(
    distribution,
    *,
    n: int = 4000,
    jacobian_points: int = 64,
    atol: float = 1e-5,
    normalisation_atol: float = 1e-3,
    precision: float = 0.15,
    failure_prob: float = DEFAULT_FAILURE_PROBABILITY,
    generator: torch.Generator | None = None,
    strict: bool = False,
) -> Report:
    """Check a flow or any `torch.distributions.Distribution` (see the module).

    Arguments:
        distribution: a `Distribution` (a zuko flow's ``flow()``, a genmath `Flow`, a
            `TransformedDistribution`, ...) with ``sample`` and ``log_prob`` on vector events.
        n: samples for the consistency test.
        jacobian_points: points at which the change of variables is checked (flows only).
        atol: tolerance of ``log_prob`` against the change of variables.
        normalisation_atol: tolerance of $|\\int q - 1|$ (1–2 dimensions).
        precision: standardised moment bias (or relative importance-weight bias) that the
            consistency test must resolve.
    """
    if not isinstance(distribution, torch.distributions.Distribution):
        raise InputTypeError(
            "distribution must be a torch.distributions.Distribution (a zuko flow's flow(), a "
            f"genmath Flow, ...), got {type(distribution).__name__}"
        )
    n = check_int(n, "n", minimum=2)  # sample moments need two draws
    jacobian_points = check_int(jacobian_points, "jacobian_points", minimum=1)
    atol = positive(atol, "atol")
    normalisation_atol = positive(normalisation_atol, "normalisation_atol")
    precision = positive(precision, "precision")
    in_unit_interval(failure_prob, "failure_prob", open_low=True, open_high=True)
    check_generator(generator)
    check_flag(strict, "strict")
    generator = generator if generator is not None else torch.Generator().manual_seed(0)
    name = type(distribution).__name__
    if len(distribution.event_shape) != 1:
        raise ValueError(
            f"check_distribution handles vector events, got event shape {tuple(distribution.event_shape)}"
        )
    samples = _sample(distribution, n, generator).to(torch.float64)
    d = samples.shape[1]
    rows, failures, notes = [], [], []

    parts = flow_parts(distribution)
    if parts is None:
        notes.append("not a flow (no transform to the base): change of variables not checked")
    else:
        to_base, base = parts
        x = samples[:jacobian_points].to(distribution.sample((1,)).dtype)
        z, logdet = _jacobian_log_det(to_base, x)
        base_lp = base.log_prob(z).detach()
        with torch.no_grad():
            got = distribution.log_prob(x).detach()
        expected = base_lp + logdet
        error = (got - expected).to(torch.float64)
        worst = float(error.abs().max())
        rows.append({"check": "log_prob vs change of variables (autograd)", "value": worst, "tolerance": atol, "passed": worst <= atol})
        if not worst <= atol:
            from ._checks import _diagnose

            defect = _diagnose(
                error,
                {
                    "log|det J| enters with the wrong sign": (-2 * logdet).to(torch.float64),
                    "the log-determinant is missing": (-logdet).to(torch.float64),
                    "the base log-density is missing": (-base_lp).to(torch.float64),
                },
            )
            failures.append(
                f"log_prob differs from log p_Z(f(x)) + log|det J_f(x)| by up to {worst:.3g} "
                f"(> atol = {atol:g})" + (f"; likely defect: {defect}" if defect else "")
            )

    if d <= 2:
        panels, order = (64, 8) if d == 1 else (40, 5)
        nodes, weights = _quadrature_grid(samples, panels, order)
        density = _log_prob(distribution, nodes.to(distribution.sample((1,)).dtype)).to(torch.float64).exp()
        mass = float((weights * density).sum())
        rows.append({"check": "normalisation (quadrature)", "value": mass, "tolerance": normalisation_atol, "passed": abs(mass - 1) <= normalisation_atol})
        if not abs(mass - 1) <= normalisation_atol:
            failures.append(f"exp(log_prob) integrates to {mass:.6g}, not 1 (quadrature, |error| > {normalisation_atol:g})")
        # moments of exp(log_prob), normalised by its own mass, against the samples'
        p = weights * density / max(mass, 1e-300)
        mean = (p[:, None] * nodes).sum(0)
        cov = (p[:, None, None] * (nodes - mean)[:, :, None] * (nodes - mean)[:, None, :]).sum(0)
        try:
            chol = torch.linalg.cholesky(cov)
        except RuntimeError:
            chol = None
        if chol is None:
            failures.append("the density's covariance (quadrature) is not positive definite")
        else:
            from ._checks import _moment_features

            y = torch.linalg.solve_triangular(chol, (samples - mean).T, upper=False).T
            features, labels = _moment_features(y)
            comparison = compare_mean(features, 0.0, precision=precision, failure_prob=failure_prob, name="sample moments vs exp(log_prob)")
            rows.append({"check": "sample vs log_prob moments (max z)", "value": float(comparison.z.max()), "tolerance": comparison.k, "passed": comparison.passed})
            if not comparison.passed:
                failures.append(comparison.message() + f" ({labels[comparison.worst()]}: samples and log_prob disagree)")
    else:
        mean, cov = samples.mean(0), torch.cov(samples.T)
        reference = torch.distributions.MultivariateNormal(mean, covariance_matrix=cov / 2)
        log_q = _log_prob(distribution, samples.to(distribution.sample((1,)).dtype)).to(torch.float64)
        ratio = (reference.log_prob(samples) - log_q).exp()
        comparison = compare_mean(ratio[:, None], 1.0, rtol=precision, failure_prob=failure_prob, name="E_q[r/q] = 1")
        rows.append({"check": "importance identity E_q[r/q] (z)", "value": float(comparison.z.max()), "tolerance": comparison.k, "passed": comparison.passed})
        if not comparison.passed:
            failures.append(comparison.message() + " (samples and log_prob disagree)")
        notes.append("more than 2 dimensions: no quadrature; the importance identity tests sample/log_prob consistency")

    report = Report("distribution", name, ["check", "value", "tolerance", "passed"], rows, failures, {"n": n, "dim": d}, notes)
    return report.raise_if_failed() if strict else report
