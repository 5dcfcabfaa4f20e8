r"""Flow matching, rectified flow and stochastic interpolants: regression onto the velocity of a
probability path.

**Composition.** Flow matching = Gaussian path (`genmath.GaussianPath`, any schedule;
CondOT is rectified flow) + its conditional velocity (`GaussianPath.conditional_velocity`) +
the one conversion table (`GaussianPath.convert`) + the probability-flow ODE
(`genmath.sample_ode`, `genmath.ode_log_likelihood`). Nothing here re-derives a path.

With data $x_0 \sim p_0$, source noise $x_1 = \varepsilon$ and $x_t = \alpha_t x_0 + \sigma_t
\varepsilon$ (t = 0 data, t = 1 noise), the **conditional flow-matching** loss
(Lipman et al. 2023; Liu et al. 2023)

$$
\mathcal L_\mathrm{CFM}(\theta) = \mathbb E_{t, x_0, \varepsilon}
\big\|v_\theta(x_t, t) - (\dot\alpha_t x_0 + \dot\sigma_t \varepsilon)\big\|^2
$$

differs from the intractable marginal loss $\mathcal L_\mathrm{FM} = \mathbb E\|v_\theta(x_t, t)
- u_t(x_t)\|^2$, $u_t(x) = \mathbb E[\dot\alpha_t x_0 + \dot\sigma_t\varepsilon \mid x_t = x]$,
by a constant that does not depend on $\theta$ (derivation D-cfm-equals-fm), so both have the
marginal velocity $u_t$ as minimiser. A model may predict any parameterization (``"x0"`` as
in JiT, Li & He 2025; ``"eps"``; ``"v"``); its prediction is converted to a velocity by the
path and the loss is always taken on the velocity.

Also here: logit-normal and uniform time sampling, the minibatch optimal-transport coupling
(Tong et al. 2024; exact, by scipy's assignment solver or POT's network simplex), reflow
(Liu et al. 2023) with the straightness measure (D-rectified-flow-straightness), the
stochastic-interpolant noise term $\gamma_t z$ (Albergo et al. 2023), sampling and exact
likelihood through the core ODE functions, and classifier-free guidance.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from .._implements import implements
from ..core._shapes import (
    as_time,
    check_batch,
    check_like,
    check_reduction,
    expand_time,
    reduce_batch,
)
from ..core._validate import (
    check_finite,
    check_generator,
    check_option,
    check_real,
    non_negative,
    positive,
    positive_int,
)
from ..core.dynamics import SampleResult, reparameterize, sample_ode
from ..core.likelihood import ode_log_likelihood
from ..core.path import GaussianPath, _fast_time, check_gaussian_path, check_parameterization

__all__ = [
    "TIME_DISTRIBUTIONS",
    "sample_times",
    "interpolate",
    "cfm_loss",
    "ot_coupling",
    "OT_BACKENDS",
    "reflow_pairs",
    "straightness",
    "guided",
    "sample",
    "standard_normal_log_prob",
    "FlowMatching",
]

TIME_DISTRIBUTIONS = ("uniform", "logit_normal")

Model = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@implements("D-time-sampling")
def sample_times(
    n: int,
    distribution: str = "uniform",
    *,
    interval: tuple[float, float] = (0.0, 1.0),
    location: float = 0.0,
    scale: float = 1.0,
    generator: torch.Generator | None = None,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    r"""``n`` training times, shape ``(n,)``, in ``interval``.

    ``"uniform"``: $u \sim U(0, 1)$. ``"logit_normal"``: $u = \operatorname{sigmoid}(m + s z)$,
    $z \sim \mathcal N(0, 1)$ (Esser et al. 2024), which concentrates training on the middle of
    the path; ``location`` $m$ and ``scale`` $s$. Then $t = t_{lo} + (t_{hi} - t_{lo})u$.
    """
    positive_int(n, "n")
    check_option(distribution, TIME_DISTRIBUTIONS, "distribution")
    lo, hi = (check_real(v, "interval") for v in interval)
    if not 0.0 <= lo < hi <= 1.0:
        raise ValueError(f"interval must satisfy 0 <= lo < hi <= 1, got {interval!r}")
    location, scale = check_real(location, "location"), positive(scale, "scale")
    check_generator(generator)
    dtype = dtype or torch.get_default_dtype()
    if distribution == "uniform":
        u = torch.rand(n, generator=generator, dtype=dtype, device=device)
    else:
        z = torch.randn(n, generator=generator, dtype=dtype, device=device)
        u = torch.sigmoid(location + scale * z)
    return lo + (hi - lo) * u


def _interpolant_noise_scale(t: torch.Tensor, noise_scale: float):
    r"""$\gamma_t = \sqrt{a\,t(1-t)}$ and $\dot\gamma_t = a(1 - 2t)/(2\gamma_t)$."""
    gamma = (noise_scale * t * (1 - t)).sqrt()
    return gamma, noise_scale * (1 - 2 * t) / (2 * gamma)


@implements("D-stochastic-interpolant")
def interpolate(
    x0: torch.Tensor,
    x1: torch.Tensor,
    t,
    path: GaussianPath,
    *,
    noise_scale: float = 0.0,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""The interpolant and its conditional velocity, ``(x_t, target)``.

    $x_t = \alpha_t x_0 + \sigma_t x_1 + \gamma_t z$ and
    $\text{target} = \dot\alpha_t x_0 + \dot\sigma_t x_1 + \dot\gamma_t z$, with
    $\gamma_t = \sqrt{a\,t(1-t)}$, $a$ = ``noise_scale`` and $z \sim \mathcal N(0, I)$: the
    stochastic interpolant of Albergo et al. (2023). With $a = 0$ it is the Gaussian path's own
    conditional velocity, `GaussianPath.conditional_velocity`; $x_1$ may be any source sample
    paired with $x_0$ (independent noise, an OT coupling, reflow pairs). With $a > 0$ the time
    must lie strictly inside $(0, 1)$, where $\dot\gamma_t$ is finite.
    """
    check_gaussian_path(path)
    check_batch(x0, "x0")
    check_like(x1, x0, "x1", "x0")
    noise_scale = non_negative(noise_scale, "noise_scale")
    check_generator(generator)
    t = as_time(t, like=x0)
    _check_interior(t, noise_scale)
    return _interpolate(x0, x1, t, path, noise_scale, generator)


def _check_interior(t: torch.Tensor, noise_scale: float) -> None:
    if noise_scale > 0 and bool(((t <= 0) | (t >= 1)).any()):
        raise ValueError(
            "a stochastic interpolant (noise_scale > 0) needs t strictly inside (0, 1), where "
            f"d/dt sqrt(a t (1 - t)) is finite; got t in [{float(t.min())}, {float(t.max())}]"
        )


def _interpolate(x0, x1, t, path, noise_scale, generator):
    """`interpolate` on validated input: the training loss validates ``t`` once, and the path's
    two terms share one broadcast of it."""
    tt = expand_time(t, x0)
    xt, target = path._sample_and_velocity(x0, x1, tt)
    if noise_scale > 0:
        z = torch.randn(x0.shape, generator=generator, dtype=x0.dtype, device=x0.device)
        gamma, d_gamma = _interpolant_noise_scale(tt, noise_scale)
        xt = xt + gamma * z
        target = target + d_gamma * z
    return xt, target


def _default_interval(path: GaussianPath, parameterization: str, noise_scale: float):
    # A velocity model needs no conversion and CondOT's target is defined on all of [0, 1];
    # any other parameterization is converted by the path, which is only defined on the
    # schedule's safe interval (genmath's one boundary rule).
    if parameterization == "velocity" and noise_scale == 0:
        return (0.0, 1.0)
    return tuple(float(v) for v in path.schedule.safe_interval)


@implements("D-cfm-equals-fm", "D-stochastic-interpolant", "D-ot-coupling")
def cfm_loss(
    model: Model,
    x0: torch.Tensor,
    path: GaussianPath,
    *,
    parameterization: str = "velocity",
    t=None,
    noise: torch.Tensor | None = None,
    coupling: str = "independent",
    noise_scale: float = 0.0,
    time_distribution: str = "uniform",
    logit_location: float = 0.0,
    logit_scale: float = 1.0,
    weighting: Callable[[torch.Tensor], torch.Tensor] | None = None,
    generator: torch.Generator | None = None,
    reduction: str = "mean",
) -> torch.Tensor:
    r"""The conditional flow-matching loss $\|v_\theta(x_t, t) - (\dot\alpha_t x_0 +
    \dot\sigma_t x_1 + \dot\gamma_t z)\|^2$ (D-cfm-equals-fm), summed over event dimensions.

    Arguments:
        model: ``model(x_t, t)`` with ``t`` of shape ``(B,)``, predicting ``parameterization``.
        x0: data, shape ``(B, *event)``.
        path: the `GaussianPath` (``GaussianPath(CondOT())`` is rectified flow / OT-CFM).
        parameterization: what the model predicts: ``"velocity"``, ``"x0"`` (JiT: the
            velocity loss on an $x$-prediction), ``"eps"``, ``"v"`` or ``"score"``; the
            prediction is converted to a velocity by `GaussianPath.convert`.
        t: times (float, 0-d or ``(B,)``); ``None`` draws them from ``time_distribution``
            on $[0, 1]$ for a velocity model, otherwise on the schedule's safe interval.
        noise: the source samples $x_1$ paired with ``x0`` (default: fresh $\mathcal N(0, I)$).
        coupling: ``"independent"`` or ``"ot"`` (re-pair ``noise`` with ``x0`` by the minibatch
            optimal-transport plan, `ot_coupling`).
        noise_scale: $a$ of the stochastic-interpolant term $\gamma_t z$ (`interpolate`);
            needs a velocity model.
        time_distribution, logit_location, logit_scale: see `sample_times`.
        weighting: optional $w(t)$ multiplying each sample's loss.
        generator: seeds the times, the noise and $z$.
        reduction: ``"mean"`` or ``"none"`` (per-sample values, shape ``(B,)``).
    """
    check_gaussian_path(path)
    check_parameterization(parameterization)
    check_batch(x0, "x0", event=True)
    check_reduction(reduction)
    check_option(coupling, ("independent", "ot"), "coupling")
    noise_scale = non_negative(noise_scale, "noise_scale")
    check_option(time_distribution, TIME_DISTRIBUTIONS, "time_distribution")
    check_real(logit_location, "logit_location")
    positive(logit_scale, "logit_scale")
    check_generator(generator)
    if noise is not None:
        check_like(noise, x0, "noise", "x0")
    if noise_scale > 0 and parameterization != "velocity":
        raise ValueError(
            "a stochastic interpolant (noise_scale > 0) is not a Gaussian path of the schedule, so "
            f"only a 'velocity' model can be trained on it; got parameterization={parameterization!r}"
        )
    batch = x0.shape[0]
    if noise is None:
        noise = torch.randn(x0.shape, generator=generator, dtype=x0.dtype, device=x0.device)
    if coupling == "ot":
        check_finite(noise, "noise", "the OT coupling pairs finite points")
        noise = noise.index_select(0, ot_coupling(x0, noise))
    if t is None:
        interval = _default_interval(path, parameterization, noise_scale)
        if noise_scale > 0:
            # d/dt gamma_t blows up at both ends: keep t as far inside as the schedule's own
            # boundary rule keeps conversions (min_scale), rather than a second constant.
            margin = path.schedule.min_scale
            interval = (max(interval[0], margin), min(interval[1], 1 - margin))
        t = sample_times(
            batch,
            time_distribution,
            interval=interval,
            location=logit_location,
            scale=logit_scale,
            generator=generator,
            dtype=x0.dtype,
            device=x0.device,
        )
    t, _ = _fast_time(t, x0)  # validated once here (one reduction when t is a valid tensor)
    if t.ndim == 0:
        t = t.expand(batch)
    elif t.shape != (batch,):
        raise ValueError(f"t must be a scalar or have shape ({batch},), got {tuple(t.shape)}")
    if noise.shape != x0.shape:
        raise ValueError(
            f"x1 must have the shape of x0, {tuple(x0.shape)}; got {tuple(noise.shape)}"
        )
    _check_interior(t, noise_scale)
    xt, target = _interpolate(x0, noise, t, path, noise_scale, generator)
    prediction = model(xt, t)
    if not isinstance(prediction, torch.Tensor) or prediction.shape != x0.shape:
        got = tuple(prediction.shape) if isinstance(prediction, torch.Tensor) else type(prediction)
        raise ValueError(
            f"model must return a tensor of the shape of x0 {tuple(x0.shape)}, got {got}"
        )
    velocity = prediction
    if parameterization != "velocity":
        velocity = path.convert(prediction, xt, t, parameterization, "velocity")
    values = (velocity - target).pow(2).flatten(1).sum(1)
    if weighting is not None:
        values = values * weighting(t)
    return reduce_batch(values, reduction)


OT_BACKENDS = ("auto", "scipy", "pot")
# Batch size from which POT's network simplex beats scipy's assignment solver on the costs of
# minibatch OT (data against Gaussian noise; benchmarks/bench_flow_matching.py measures both:
# scipy faster up to 128, POT from 256 on, by about 2x at 512).
_POT_FROM = 192


@implements("D-ot-coupling")
def ot_coupling(x0: torch.Tensor, x1: torch.Tensor, *, backend: str = "auto") -> torch.Tensor:
    r"""The minibatch optimal-transport plan between two equal batches: the permutation
    $\pi$ minimising $\sum_i \|x_0^{(i)} - x_1^{(\pi_i)}\|^2$ (Tong et al. 2024; Pooladian
    et al. 2023). Returns ``pi`` (``LongTensor``, shape ``(B,)``): pair ``x0[i]`` with
    ``x1[pi[i]]``.

    Two exact solvers give the same plan (the optimum is unique for costs in general
    position): ``backend="scipy"``, the assignment solver `scipy.optimize.linear_sum_assignment`,
    and ``backend="pot"``, POT's network simplex `ot.emd` with uniform marginals (an optional
    dependency: ``pip install pot``), whose optimal plan between two uniform measures on $B$
    points is a permutation matrix (a vertex of the Birkhoff polytope). ``"auto"`` (default)
    uses scipy below a batch of 192, where it is faster, and POT from there on when it is
    installed. The solve is `genmath.ot.assignment` of the squared distances: the same plan as
    `genmath.ot.discrete_ot` with uniform weights $1/B$ (scaled by $B$)."""
    check_batch(x0, "x0")
    check_like(x1, x0, "x1", "x0")
    if backend not in OT_BACKENDS:
        raise ValueError(f"backend must be one of {OT_BACKENDS}, got {backend!r}")
    with torch.no_grad():
        cost = torch.cdist(x0.flatten(1), x1.flatten(1)).pow(2)
    if not bool(torch.isfinite(cost).all()):
        # an assignment cannot carry a NaN (scipy would say "cost matrix is infeasible")
        raise ValueError("ot_coupling needs finite x0 and x1: the squared distances are not finite")
    from ..ot import assignment
    from ..ot._discrete import _pot

    if backend == "auto":
        backend = "pot" if x0.shape[0] >= _POT_FROM and _pot() is not None else "scipy"
    # the float64 CPU cost: the permutation must not depend on the data's precision
    return assignment(cost.to(device="cpu", dtype=torch.float64), backend=backend).to(x0.device)


@implements("D-reflow-marginals")
def reflow_pairs(
    model: Model,
    noise: torch.Tensor,
    *,
    path: GaussianPath | None = None,
    parameterization: str = "velocity",
    steps: int = 100,
    method: str = "rk4",
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""The deterministic coupling of a trained flow, for reflow (Liu et al. 2023):
    ``(x0, noise)`` with $x_0 = \Phi_{1\to 0}(\text{noise})$ integrated by `genmath.sample_ode`.
    Training a new flow with `cfm_loss(..., noise=noise)` on these pairs gives the next
    rectified flow, whose paths are straighter (`straightness`)."""
    with torch.no_grad():
        result = sample(
            model, noise, path=path, parameterization=parameterization, steps=steps, method=method
        )
    return result.x, noise


@implements("D-rectified-flow-straightness")
def straightness(result: SampleResult) -> torch.Tensor:
    r"""Straightness of sampled trajectories, per sample (shape ``(B,)``): the discrete form of
    $S = \int_0^1 \|\dot Z_t - (Z_1 - Z_0)\|^2 dt = \int_0^1 \|\dot Z_t\|^2 dt - \|Z_1 - Z_0\|^2$
    (Liu et al. 2023; D-rectified-flow-straightness), with $\dot Z$ the chord slope of each
    step of ``result`` (from `sample_ode(..., keep_trajectory=True)`); 0 iff every trajectory
    is a straight line traversed at constant speed."""
    if result.trajectory is None:
        raise ValueError("straightness needs the trajectory: sample with keep_trajectory=True")
    states, grid = result.trajectory, result.grid.to(result.trajectory)
    steps = (grid[1:] - grid[:-1]).abs()
    slopes = (states[1:] - states[:-1]) / expand_time(steps, states[1:])
    chord = (states[-1] - states[0]) / steps.sum()
    deviation = (slopes - chord).pow(2).flatten(2).sum(-1)  # (steps, B)
    return (steps[:, None] * deviation).sum(0)


@implements("D-cfg-guided")
def guided(conditional: Model, unconditional: Model, scale: float) -> Model:
    r"""Classifier-free guidance (Ho & Salimans 2021) of any linear parameterization:
    $f_w = f_\varnothing + w\,(f_c - f_\varnothing)$; $w = 1$ is the conditional model,
    $w = 0$ the unconditional one."""

    def field(x: torch.Tensor, t) -> torch.Tensor:
        uncond = unconditional(x, t)
        return uncond + scale * (conditional(x, t) - uncond)

    return field


@implements("D-standard-normal-prior")
def standard_normal_log_prob(x: torch.Tensor) -> torch.Tensor:
    r"""$\log\mathcal N(x; 0, I)$ summed over the event, shape ``(B,)``: the prior of a path
    with $(\alpha_1, \sigma_1) = (0, 1)$."""
    check_batch(x, "x", event=True)
    flat = x.flatten(1)
    return -0.5 * (flat.pow(2).sum(1) + flat.shape[1] * torch.log(flat.new_tensor(2 * torch.pi)))


def sample(
    model: Model,
    noise: torch.Tensor,
    *,
    path: GaussianPath | None = None,
    parameterization: str = "velocity",
    steps: int | None = 100,
    method: str = "euler",
    **options,
) -> SampleResult:
    """Integrate the model's probability-flow ODE from noise (t = 1) to data (t = 0) with
    `genmath.sample_ode`. A velocity model without a path integrates all of [1, 0]; with a
    path, the grid spans its safe interval and other parameterizations are converted."""
    if parameterization != "velocity" and path is None:
        raise ValueError(f"a model predicting {parameterization!r} needs the path; got path=None")
    check_finite(check_batch(noise, "noise"), "noise", "the start of sampling")
    return sample_ode(
        model,
        noise,
        steps=steps,
        method=method,
        path=path,
        parameterization=parameterization,
        **options,
    )


class FlowMatching(nn.Module):
    r"""A flow-matching model: a network on a Gaussian path, predicting one parameterization.

    Arguments:
        network: ``network(x, t) -> tensor shaped like x`` (e.g. `genmath.nn.VelocityMLP`).
        path: a `GaussianPath` (default ``GaussianPath(CondOT())``: rectified flow).
        parameterization: what the network predicts (see `cfm_loss`).

    ``loss`` is `cfm_loss`, ``velocity`` the converted prediction, ``sample`` the core ODE
    sampler, ``log_prob`` the exact likelihood by `genmath.ode_log_likelihood`.
    """

    def __init__(
        self,
        network: nn.Module,
        path: GaussianPath | None = None,
        parameterization: str = "velocity",
    ) -> None:
        super().__init__()
        if path is None:
            from ..core.schedules import CondOT

            path = GaussianPath(CondOT())
        self.network = network
        self.path = check_gaussian_path(path)
        self.parameterization = check_parameterization(parameterization)

    def forward(self, x: torch.Tensor, t) -> torch.Tensor:
        return self.network(x, t)

    def velocity(self, x: torch.Tensor, t) -> torch.Tensor:
        """The velocity implied by the network's prediction (`GaussianPath.convert`)."""
        return reparameterize(self.network, self.path, self.parameterization, "velocity")(x, t)

    def loss(self, x0: torch.Tensor, **options) -> torch.Tensor:
        """`cfm_loss` of this model (keyword options as there)."""
        return cfm_loss(
            self.network, x0, self.path, parameterization=self.parameterization, **options
        )

    def sample(
        self, noise: torch.Tensor, *, steps: int | None = 100, method: str = "euler", **options
    ):
        """Samples from ``noise`` (t = 1) by the core ODE sampler; returns a `SampleResult`."""
        path = self.path if self.parameterization != "velocity" else options.pop("path", None)
        return sample(
            self.network,
            noise,
            path=path,
            parameterization=self.parameterization,
            steps=steps,
            method=method,
            **options,
        )

    def log_prob(
        self,
        x: torch.Tensor,
        prior_log_prob: Callable[[torch.Tensor], torch.Tensor] = standard_normal_log_prob,
        **options,
    ) -> torch.Tensor:
        r"""Exact $\log p_0(x)$ by the instantaneous change of variables
        (`genmath.ode_log_likelihood`, D-instantaneous-change-of-variables), integrating from
        data to the prior; other parameterizations integrate over the safe interval."""
        t0, t1 = (0.0, 1.0)
        if self.parameterization != "velocity":
            t0, t1 = self.path.schedule.safe_interval
        options.setdefault("t0", t0)
        options.setdefault("t1", t1)
        return ode_log_likelihood(self.velocity, x, prior_log_prob, **options)
