"""Valid calls of `genmath.testing`'s conformance checks, the samplers under test and the
adapters of diffusers, k-diffusion, flow_matching, torchdiffeq and zuko objects, and of the
flow-map adapters, each argument tagged with its kind (see `contract.py`).

The checks are driven small (a handful of points, two or three step counts) on the 2-D
Gaussian oracle, whose flow map is closed form; the adapters are driven with the real
third-party objects through the check that consumes them, so a bad value given to an adapter
is tried where it would bite, at the check. Closures (the flow-map adapters) are driven as
returned, under a ``[returned]`` case name."""

from __future__ import annotations

import math

import torch
from api_cases_core import OT
from api_cases_testing import KWARGS_BAD, NOT_CALLABLE, STEPS_BAD, Bad, _euler, _oracle, _points
from contract import (
    Call,
    Count,
    Data,
    Flag,
    Gen,
    Option,
    Plain,
    Scale,
    Spec,
    Time,
    Unit,
    case,
    seed_cpu,
)

import genmath
from genmath import testing

# --------------------------------------------------------------------------- samplers


@case("genmath.testing.CountingModel")
def _(spec):
    return Call(testing.CountingModel, dict(fn=Bad(_oracle(spec).model(), NOT_CALLABLE)))


@case("genmath.testing.as_sampler")
def _(spec):
    return Call(
        testing.as_sampler,
        dict(
            fn=Bad(lambda model, x, steps: x, NOT_CALLABLE),
            parameterization=Option("velocity"),
            t_start=Time(0.9),
            t_end=Time(0.1),
            stochastic=Flag(False),
            name=Bad("mine", ("a number", 3)),
        ),
    )


def _euler_steps(model, x, steps):
    """A user's sampler in genmath's conventions: Euler from t = 1 to t = 0."""
    grid = torch.linspace(1.0, 0.0, steps + 1, dtype=x.dtype)
    for t, t_next in zip(grid[:-1], grid[1:], strict=True):
        x = x + (t_next - t) * model(x, t)
    return x


@case("genmath.testing.as_sampler[returned]")
def _(spec):
    return Call(
        testing.check_sampler,
        dict(
            sampler=testing.as_sampler(_euler_steps, t_start=1.0, t_end=0.0),
            oracle=_oracle(spec),
            steps=(2, 4),
            n=Count(spec.batch),
        ),
    )


@case("genmath.testing.genmath_sampler")
def _(spec):
    return Call(
        testing.genmath_sampler,
        dict(
            method=Option("heun"),
            parameterization=Option("x0"),
            grid=Bad(None, ("a string", "bogus"), ("times outside [0, 1]", torch.tensor([1.5, 0.0]))),
            noise=Scale(0.5, zero_ok=True),
            name=Bad("mine", ("a number", 3)),
        ),
    )


@case("genmath.testing.check_sampler")
def _(spec):
    return Call(
        testing.check_sampler,
        dict(
            sampler=Bad(_euler(spec), NOT_CALLABLE, ("a function", _euler_steps)),
            oracle=Bad(_oracle(spec), ("a string", "bogus")),
            steps=Bad((2, 4), *STEPS_BAD),
            n=Count(spec.batch),
            expected_order=Scale(1.0),
            order_tolerance=Scale(0.25, zero_ok=True),
            atol=Scale(10.0),
            generator=Gen(spec.generator(3)),
            strict=Flag(False),
        ),
    )


@case("genmath.testing.check_stochastic_sampler")
def _(spec):
    return Call(
        testing.check_stochastic_sampler,
        dict(
            sampler=Bad(testing.genmath_sampler("euler", noise=1.0), NOT_CALLABLE),
            oracle=Bad(_oracle(spec), ("a string", "bogus")),
            steps=Bad((2,), *STEPS_BAD),
            n=Count(32, minimum=2),
            precision=Scale(3.0),
            log_density_precision=Scale(3.0),
            failure_prob=Unit(1e-6, open=True),
            generator=Gen(spec.generator(3)),
            strict=Flag(False),
        ),
    )


def _exact_log_prob(x, oracle):
    return oracle.log_prob(x, 0.0)


@case("genmath.testing.check_likelihood")
def _(spec):
    return Call(
        testing.check_likelihood,
        dict(
            estimator=Bad(_exact_log_prob, NOT_CALLABLE),
            oracle=Bad(_oracle(spec), ("a string", "bogus")),
            n=Count(spec.batch),
            t_data=Time(0.0),
            t_prior=Time(1.0),
            atol=Scale(1e-4),
            repeats=Count(4, minimum=2),
            precision=Scale(0.05),
            failure_prob=Unit(1e-6, open=True),
            generator=Gen(spec.generator(3)),
            stochastic=Flag(False),
            strict=Flag(False),
        ),
    )


def _noisy_log_prob(x, oracle):
    """An unbiased stochastic estimator (the exact value plus centred noise)."""
    noise = torch.randn(x.shape[0], generator=torch.Generator().manual_seed(7), dtype=x.dtype)
    return oracle.log_prob(x, 0.0) + 0.01 * noise


@case("genmath.testing.check_likelihood[stochastic]")
def _(spec):
    return Call(
        testing.check_likelihood,
        dict(
            estimator=_noisy_log_prob,
            oracle=_oracle(spec),
            n=Count(spec.batch),
            stochastic=Plain(True),
            repeats=Count(8, minimum=2),
            precision=Scale(1.0),
        ),
    )


@case("genmath.testing.check_field")
def _(spec):
    oracle = _oracle(spec)
    return Call(
        testing.check_field,
        dict(
            model=Bad(oracle.model("x0"), NOT_CALLABLE),
            oracle=Bad(oracle, ("a string", "bogus")),
            parameterization=Option("x0"),
            times=Bad(
                (0.3, 0.6),
                ("a string", "half"),
                ("a time above 1", (0.5, 1.5)),
                ("a nan time", (math.nan,)),
                ("no times", ()),
            ),
            n=Count(spec.batch),
            rtol=Scale(1e-5),
            generator=Gen(spec.generator(3)),
            strict=Flag(False),
        ),
    )


# --------------------------------------------------------------------------- distributions


def _flow_2d(spec: Spec):
    """A 2-D affine flow as a `TransformedDistribution` (non-zero log-determinant)."""
    D = torch.distributions
    base = D.Independent(
        D.Normal(torch.zeros(2, dtype=spec.dtype), torch.ones(2, dtype=spec.dtype)), 1
    )
    scale = torch.tensor([0.5, 2.0], dtype=spec.dtype)
    transform = D.AffineTransform(torch.tensor([1.0, -1.0], dtype=spec.dtype), scale, event_dim=1)
    return D.TransformedDistribution(base, [transform])


@case("genmath.testing.check_distribution")
def _(spec):
    return Call(
        testing.check_distribution,
        dict(
            distribution=Bad(_flow_2d(spec), ("a string", "bogus"), ("a tensor", torch.zeros(2))),
            n=Count(64, minimum=2),
            jacobian_points=Count(8),
            atol=Scale(1e-5),
            normalisation_atol=Scale(1e-3),
            precision=Scale(3.0),
            failure_prob=Unit(1e-6, open=True),
            generator=Gen(spec.generator(3)),
            strict=Flag(False),
        ),
    )


@case("genmath.testing.check_distribution[zuko]")
def _(spec):
    import zuko

    seed_cpu(spec.seed)
    flow = zuko.flows.MAF(features=2, transforms=1, hidden_features=(8,)).to(spec.dtype)
    return Call(
        testing.check_distribution, dict(distribution=flow(), n=Count(64, minimum=2))
    )


@case("genmath.testing.flow_parts")
def _(spec):
    # anything that is not a flow gives None (documented): no value of it is bad
    return Call(testing.flow_parts, dict(distribution=Plain(_flow_2d(spec))))


# --------------------------------------------------------------------------- adapters


@case("genmath.testing.diffusers_sampler")
def _(spec):
    from diffusers import DDIMScheduler

    scheduler = DDIMScheduler(num_train_timesteps=100, clip_sample=False)
    return Call(
        testing.check_sampler,
        dict(
            sampler=testing.diffusers_sampler(scheduler),
            oracle=_oracle(spec),
            steps=(2, 4),
            n=Count(spec.batch),
        ),
    )


@case("genmath.testing.diffusers_sampler[construct]")
def _(spec):
    from diffusers import EulerDiscreteScheduler

    return Call(
        testing.diffusers_sampler,
        dict(
            scheduler=Bad(
                EulerDiscreteScheduler(num_train_timesteps=100),
                ("a string", "bogus"),
                ("a number", 3.0),
            ),
            stochastic=Flag(None, optional=True),
            step_kwargs=Bad({}, *KWARGS_BAD),
            name=Bad("mine", ("a number", 3)),
        ),
    )


@case("genmath.testing.load_k_diffusion_sampling")
def _(spec):
    return Call(testing.load_k_diffusion_sampling, {})


@case("genmath.testing.k_diffusion_sampler")
def _(spec):
    return Call(
        testing.k_diffusion_sampler,
        dict(
            sampler=Option("euler", strings_only=False),
            sigmas=Bad(
                None,
                ("a string", "bogus"),
                ("negative levels", torch.tensor([1.0, -0.5])),
                ("a nan level", torch.tensor([math.nan, 0.0])),
                ("a 2-d tensor", torch.ones(2, 2)),
            ),
            sigma_min=Scale(0.002),
            sigma_max=Scale(80.0),
            rho=Scale(7.0),
            stochastic=Flag(None, optional=True),
            sampler_kwargs=Bad({}, *KWARGS_BAD),
            name=Bad("mine", ("a number", 3)),
        ),
    )


@case("genmath.testing.k_diffusion_sampler[returned]")
def _(spec):
    return Call(
        testing.check_sampler,
        dict(
            sampler=testing.k_diffusion_sampler("heun", sigma_max=20.0),
            oracle=_oracle(spec),
            steps=(2, 4),
            n=Count(spec.batch),
        ),
    )


@case("genmath.testing.flow_matching_sampler")
def _(spec):
    from flow_matching.path.scheduler import CondOTScheduler

    return Call(
        testing.flow_matching_sampler,
        dict(
            method=Option("midpoint"),
            path=Bad(CondOTScheduler(), ("a string", "bogus"), ("a number", 3.0)),
            solver=Bad(None, ("a string", "bogus")),
            solver_kwargs=Bad({}, *KWARGS_BAD),
            name=Bad("mine", ("a number", 3)),
        ),
    )


@case("genmath.testing.flow_matching_sampler[returned]")
def _(spec):
    return Call(
        testing.check_sampler,
        dict(
            sampler=testing.flow_matching_sampler("euler"),
            oracle=_oracle(spec),
            steps=(2, 4),
            n=Count(spec.batch),
        ),
    )


@case("genmath.testing.flow_matching_likelihood")
def _(spec):
    return Call(
        testing.flow_matching_likelihood,
        dict(
            steps=Count(4),
            method=Option("midpoint"),
            exact_divergence=Flag(True),
            path=Bad(None, ("a string", "bogus")),
            solver=Bad(None, ("a string", "bogus")),
        ),
    )


@case("genmath.testing.flow_matching_likelihood[returned]")
def _(spec):
    return Call(
        testing.check_likelihood,
        dict(
            estimator=testing.flow_matching_likelihood(4, method="midpoint"),
            oracle=_oracle(spec),
            n=Count(spec.batch),
            atol=Scale(10.0),  # 4 midpoint steps: the value of the check, not its verdict
        ),
    )


@case("genmath.testing.torchdiffeq_sampler")
def _(spec):
    return Call(
        testing.torchdiffeq_sampler,
        dict(
            method=Option("rk4"),
            odeint=Bad(None, ("a string", "bogus")),
            odeint_kwargs=Bad({}, *KWARGS_BAD),
            name=Bad("mine", ("a number", 3)),
        ),
    )


@case("genmath.testing.torchdiffeq_sampler[returned]")
def _(spec):
    return Call(
        testing.check_sampler,
        dict(
            sampler=testing.torchdiffeq_sampler("rk4"),
            oracle=_oracle(spec),
            steps=(2, 4),
            n=Count(spec.batch),
        ),
    )


# --------------------------------------------------------------------------- flow-map adapters


def _gaussian_marginal(spec: Spec):
    from genmath.analytic import Gaussian

    cov = torch.tensor([[0.6, 0.25], [0.25, 0.3]], dtype=spec.dtype)
    return Gaussian(torch.tensor([0.5, -1.0], dtype=spec.dtype), cov).marginal(OT)


@case("genmath.average_velocity_from_map")
def _(spec):
    marginal = _gaussian_marginal(spec)
    return Call(
        genmath.average_velocity_from_map,
        dict(
            flow=Bad(marginal.flow_map, NOT_CALLABLE),
            velocity=Bad(marginal.velocity, NOT_CALLABLE),
        ),
    )


@case("genmath.average_velocity_from_map[returned]")
def _(spec):
    marginal = _gaussian_marginal(spec)
    u = genmath.average_velocity_from_map(marginal.flow_map, marginal.velocity)
    return Call(
        u,
        dict(
            x=Data(_points(spec), fixed=True, mix=True),
            s=Time(0.8, edges=False),
            t=Time(0.3, edges=False),
        ),
    )


@case("genmath.map_from_average_velocity")
def _(spec):
    marginal = _gaussian_marginal(spec)
    u = genmath.average_velocity_from_map(marginal.flow_map, marginal.velocity)
    return Call(genmath.map_from_average_velocity, dict(average_velocity=Bad(u, NOT_CALLABLE)))


@case("genmath.map_from_average_velocity[returned]")
def _(spec):
    marginal = _gaussian_marginal(spec)
    u = genmath.average_velocity_from_map(marginal.flow_map, marginal.velocity)
    flow = genmath.map_from_average_velocity(u)
    return Call(
        flow,
        dict(
            x=Data(_points(spec), fixed=True, mix=True),
            s=Time(0.8, edges=False),
            t=Time(0.3, edges=False),
        ),
    )


@case("genmath.consistency_function_from_map")
def _(spec):
    marginal = _gaussian_marginal(spec)
    return Call(
        genmath.consistency_function_from_map,
        dict(flow=Bad(marginal.flow_map, NOT_CALLABLE), end=Time(0.0)),
    )


@case("genmath.consistency_function_from_map[returned]")
def _(spec):
    f = genmath.consistency_function_from_map(_gaussian_marginal(spec).flow_map, 0.1)
    return Call(
        f, dict(x=Data(_points(spec), fixed=True, mix=True), t=Time(0.8, edges=False))
    )
