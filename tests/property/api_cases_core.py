"""Valid calls of the core API (schedules, Gaussian and discrete paths, dynamics and grids),
each argument tagged with its kind (see `contract.py`); the estimators (divergence, likelihood,
score, ELBO) are in `api_cases_core_estimators.py`."""

from __future__ import annotations

import torch
from contract import (
    Call,
    Count,
    Data,
    Gen,
    Lam,
    Option,
    Partner,
    PathKind,
    Plain,
    Real,
    Scale,
    Spec,
    Time,
    Tokens,
    Unit,
    case,
)

import genmath
from genmath.core import grids
from genmath.schedules import VE, VP, CondOT, CosineVP

# Schedules are built once (their sympy work is cached, but construction is not free).
SCHEDULES = {"CondOT": CondOT(), "VP": VP(), "CosineVP": CosineVP(), "VE": VE()}
PATHS = {name: genmath.GaussianPath(s) for name, s in SCHEDULES.items()}
OT = PATHS["CondOT"]
VP_PATH = PATHS["VP"]


def field(spec: Spec):
    """A non-linear field x -> tanh(x A^T) (its divergence depends on x, so NaN propagates)."""
    a = spec.randn(spec.dim, spec.dim, salt=91) + torch.eye(spec.dim, dtype=spec.dtype)

    def fn(x):
        return torch.tanh(x.flatten(1) @ a.mT).reshape(x.shape)

    return fn


def velocity(spec: Spec):
    f = field(spec)
    return lambda x, t: f(x) * (1 + torch.as_tensor(t).reshape(-1, *[1] * (x.ndim - 1)))


def x_of(spec: Spec, salt: int = 1, *, dim: int | None = None):
    return spec.randn(spec.batch, dim or spec.dim, salt=salt)


def t_of(spec: Spec, low=0.2, high=0.8, salt: int = 2):
    return low + (high - low) * spec.rand(spec.batch, salt=salt)


def normal_log_prob(x):
    return -0.5 * x.pow(2).flatten(1).sum(1)


# --------------------------------------------------------------------------- schedules

_SCHEDULE_METHODS = (
    "alpha",
    "sigma",
    "d_alpha",
    "d_sigma",
    "log_snr",
    "d_log_snr",
    "drift_coefficient",
    "diffusion_squared",
)

for _name, _schedule in SCHEDULES.items():
    for _method in _SCHEDULE_METHODS:

        def _build(spec, schedule=_schedule, method=_method):
            return Call(getattr(schedule, method), dict(t=Time(t_of(spec), poles=True)))

        case(f"genmath.schedules.{_name}.{_method}")(_build)

    def _inverse(spec, schedule=_schedule):
        lam = schedule.log_snr(t_of(spec, 0.3, 0.7))
        return Call(schedule.inverse_log_snr, dict(lam=Lam(lam)))

    case(f"genmath.schedules.{_name}.inverse_log_snr")(_inverse)


@case("genmath.schedules.VP")
def _(spec):
    return Call(
        VP, dict(beta_min=Scale(0.1), beta_max=Scale(20.0), min_scale=Unit(1e-3, open=True))
    )


@case("genmath.schedules.VE")
def _(spec):
    return Call(
        VE, dict(sigma_min=Scale(0.01), sigma_max=Scale(50.0), min_scale=Unit(1e-3, open=True))
    )


@case("genmath.schedules.CosineVP")
def _(spec):
    return Call(CosineVP, dict(s=Unit(0.008), min_scale=Unit(1e-3, open=True)))


@case("genmath.schedules.CondOT")
def _(spec):
    return Call(CondOT, dict(min_scale=Unit(1e-3, open=True)))


# --------------------------------------------------------------------------- Gaussian path


@case("genmath.GaussianPath")
def _(spec):
    return Call(genmath.GaussianPath, dict(schedule=PathKind(CondOT(), schedule=True)))


for _name, _path in PATHS.items():
    for _method in (
        "alpha",
        "sigma",
        "d_alpha",
        "d_sigma",
        "log_snr",
        "drift_coefficient",
        "diffusion",
    ):

        def _build(spec, path=_path, method=_method):
            return Call(getattr(path, method), dict(t=Time(t_of(spec), poles=True)))

        case(f"genmath.GaussianPath[{_name}].{_method}")(_build)

    def _sample(spec, path=_path):
        x0 = x_of(spec)
        return Call(
            path.sample,
            dict(
                x0=Data(x0, event=False),
                t=Time(t_of(spec), batch=spec.batch),
                generator=Gen(spec.generator(3)),
                eps=Partner(x_of(spec, 4)),
            ),
        )

    case(f"genmath.GaussianPath[{_name}].sample")(_sample)

    def _velocity(spec, path=_path):
        return Call(
            path.conditional_velocity,
            dict(
                x0=Data(x_of(spec), event=False),
                eps=Partner(x_of(spec, 4)),
                t=Time(t_of(spec), batch=spec.batch, poles=True),
            ),
        )

    case(f"genmath.GaussianPath[{_name}].conditional_velocity")(_velocity)

    def _drift(spec, path=_path):
        return Call(
            path.drift,
            dict(x=Data(x_of(spec), event=False), t=Time(t_of(spec), batch=spec.batch, poles=True)),
        )

    case(f"genmath.GaussianPath[{_name}].drift")(_drift)

    def _convert(spec, path=_path):
        return Call(
            path.convert,
            dict(
                pred=Partner(x_of(spec, 5)),
                xt=Data(x_of(spec), event=False),
                t=Time(t_of(spec), batch=spec.batch),
                src=Option("eps"),
                dst=Option("x0"),
            ),
        )

    case(f"genmath.GaussianPath[{_name}].convert")(_convert)

    def _posterior_coefficients(spec, path=_path):
        return Call(
            path.posterior_coefficients,
            dict(s=Time(0.3), t=Time(0.7), like=Plain(x_of(spec))),
        )

    case(f"genmath.GaussianPath[{_name}].posterior_coefficients")(_posterior_coefficients)

    def _posterior(spec, path=_path):
        return Call(
            path.posterior,
            dict(
                x0=Data(x_of(spec), event=False),
                xt=Partner(x_of(spec, 5)),
                s=Time(0.3),
                t=Time(0.7),
            ),
        )

    case(f"genmath.GaussianPath[{_name}].posterior")(_posterior)


# --------------------------------------------------------------------------- discrete paths

K = 3


def _tokens(spec, length=4, categories=K, salt=6):
    g = spec.generator(salt)
    return torch.randint(0, categories, (spec.batch, length), generator=g)


@case("genmath.MaskPath")
def _(spec):
    return Call(genmath.MaskPath, dict(num_categories=Count(K, minimum=2), mask_id=Plain(None)))


@case("genmath.UniformPath")
def _(spec):
    return Call(genmath.UniformPath, dict(num_categories=Count(K, minimum=2)))


_DISCRETE = {"MaskPath": genmath.MaskPath(K), "UniformPath": genmath.UniformPath(K)}
for _name, _dpath in _DISCRETE.items():
    for _method in ("alpha_bar", "d_alpha_bar", "cumulative_kernel"):

        def _build(spec, path=_dpath, method=_method):
            return Call(getattr(path, method), dict(t=Time(t_of(spec), poles=True)))

        case(f"genmath.{_name}.{_method}")(_build)

    def _step(spec, path=_dpath):
        return Call(path.step_kernel, dict(s=Time(0.2, edges=False), t=Time(0.6, edges=False)))

    case(f"genmath.{_name}.step_kernel")(_step)

    def _forward(spec, path=_dpath):
        return Call(
            path.forward_probs,
            dict(x0=Tokens(_tokens(spec), K), t=Time(t_of(spec), batch=spec.batch)),
        )

    case(f"genmath.{_name}.forward_probs")(_forward)

    def _dsample(spec, path=_dpath):
        return Call(
            path.sample,
            dict(
                x0=Tokens(_tokens(spec), K),
                t=Time(t_of(spec), batch=spec.batch),
                generator=Gen(spec.generator(3)),
            ),
        )

    case(f"genmath.{_name}.sample")(_dsample)

    def _posterior(spec, path=_dpath):
        x0 = _tokens(spec)
        xt = path.sample(x0, 0.6, generator=spec.generator(8))
        return Call(
            path.posterior_probs,
            dict(xt=Plain(xt), x0=Plain(x0), s=Time(0.2, edges=False), t=Time(0.6, edges=False)),
        )

    case(f"genmath.{_name}.posterior_probs")(_posterior)


# --------------------------------------------------------------------------- dynamics


@case("genmath.sample_ode")
def _(spec):
    return Call(
        genmath.sample_ode,
        dict(
            velocity=velocity(spec),
            x1=Data(x_of(spec), event=False),
            steps=Count(4),
            method=Option("euler"),
            grid=Plain(None),
            path=Plain(None),
            parameterization=Option("velocity"),
        ),
    )


@case("genmath.sample_ode[dopri5]")
def _(spec):
    return Call(
        genmath.sample_ode,
        dict(
            velocity=velocity(spec),
            x1=Data(x_of(spec), event=False),
            method=Option("dopri5"),
            rtol=Scale(1e-3),
            atol=Scale(1e-3),
        ),
    )


@case("genmath.sample_ode[path]")
def _(spec):
    return Call(
        genmath.sample_ode,
        dict(
            velocity=lambda x, t: -x,
            x1=Data(x_of(spec), event=False),
            steps=Count(4),
            method=Option("ddim"),
            grid=Option("uniform"),
            path=PathKind(VP_PATH),
            parameterization=Option("eps"),
        ),
    )


@case("genmath.sample_sde")
def _(spec):
    return Call(
        genmath.sample_sde,
        dict(
            drift=lambda x, t: -x,
            diffusion=lambda t: 0.5,
            x1=Data(x_of(spec), event=False),
            steps=Count(4),
            generator=Gen(spec.generator(3)),
            method=Option("pc"),
            score=lambda x, t: -x,
            snr=Scale(0.16),
            corrector_steps=Count(1),
        ),
    )


@case("genmath.ReverseSDE")
def _(spec):
    return Call(
        genmath.ReverseSDE,
        dict(
            path=PathKind(VP_PATH),
            model=lambda x, t: -x,
            parameterization=Option("eps"),
            noise=Scale(1.0, zero_ok=True),
        ),
    )


def _reverse(spec):
    return genmath.ReverseSDE(VP_PATH, lambda x, t: 0.5 * x, "eps")


@case("genmath.ReverseSDE.velocity")
def _(spec):
    return Call(
        _reverse(spec).velocity,
        dict(x=Data(x_of(spec), event=False), t=Time(t_of(spec), batch=spec.batch)),
    )


@case("genmath.ReverseSDE.score")
def _(spec):
    return Call(
        _reverse(spec).score,
        dict(x=Data(x_of(spec), event=False), t=Time(t_of(spec), batch=spec.batch)),
    )


@case("genmath.ReverseSDE.sample")
def _(spec):
    return Call(
        _reverse(spec).sample,
        dict(x1=Data(x_of(spec), event=False), steps=Count(4), generator=Gen(spec.generator(3))),
    )


@case("genmath.ProbabilityFlowODE")
def _(spec):
    return Call(
        genmath.ProbabilityFlowODE,
        dict(path=PathKind(VP_PATH), model=lambda x, t: -x, parameterization=Option("eps")),
    )


@case("genmath.ProbabilityFlowODE.sample")
def _(spec):
    ode = genmath.probability_flow_ode(VP_PATH, lambda x, t: 0.5 * x, "eps")
    return Call(
        ode.sample, dict(x1=Data(x_of(spec), event=False), steps=Count(4), method=Option("heun"))
    )


@case("genmath.probability_flow_ode")
def _(spec):
    return Call(
        genmath.probability_flow_ode,
        dict(path=PathKind(VP_PATH), model=lambda x, t: -x, parameterization=Option("eps")),
    )


@case("genmath.forward_sde")
def _(spec):
    return Call(genmath.forward_sde, dict(path=PathKind(VP_PATH)))


@case("genmath.reparameterize")
def _(spec):
    return Call(
        genmath.reparameterize,
        dict(
            model=lambda x, t: -x,
            path=PathKind(VP_PATH),
            source=Option("eps"),
            target=Option("velocity"),
        ),
    )


@case("genmath.ODE.sample")
def _(spec):
    return Call(
        genmath.ODE(velocity(spec)).sample, dict(x1=Data(x_of(spec), event=False), steps=Count(3))
    )


@case("genmath.SDE.sample")
def _(spec):
    sde = genmath.SDE(lambda x, t: -x, lambda t: 0.3)
    return Call(
        sde.sample,
        dict(x=Data(x_of(spec), event=False), steps=Count(3), generator=Gen(spec.generator(3))),
    )


@case("genmath.uniform_grid")
def _(spec):
    return Call(
        genmath.uniform_grid,
        dict(steps=Count(4), schedule=PathKind(SCHEDULES["VP"], schedule=True)),
    )


@case("genmath.uniform_grid[start, end]")
def _(spec):
    return Call(
        genmath.uniform_grid,
        dict(steps=Count(4), start=Time(0.9, edges=False), end=Time(0.1, edges=False)),
    )


@case("genmath.karras_grid")
def _(spec):
    return Call(
        genmath.karras_grid,
        dict(steps=Count(4), schedule=PathKind(SCHEDULES["VE"], schedule=True), rho=Scale(7.0)),
    )


@case("genmath.log_snr_grid")
def _(spec):
    return Call(
        genmath.log_snr_grid,
        dict(steps=Count(4), schedule=PathKind(SCHEDULES["VP"], schedule=True)),
    )


@case("genmath.flow_map")
def _(spec):
    return Call(
        genmath.flow_map,
        dict(
            velocity=velocity(spec),
            x=Data(x_of(spec), event=False),
            s=Time(0.8, edges=False),
            t=Time(0.2, edges=False),
            steps=Count(4),
            method=Option("rk4"),
        ),
    )


@case("genmath.snr_focused_grid")
def _(spec):
    return Call(
        genmath.snr_focused_grid,
        dict(
            steps=Count(4),
            schedule=PathKind(SCHEDULES["VP"], schedule=True),
            center=Real(0.0),
            width=Scale(4.0),
        ),
    )


@case("genmath.core.grids.check_grid")
def _(spec):
    return Call(
        grids.check_grid,
        dict(grid=Plain(torch.linspace(1.0, 0.0, 5, dtype=spec.dtype)), schedule=Plain(None)),
    )
