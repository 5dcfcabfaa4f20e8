"""Valid calls of the families built on probability paths: diffusion (DDPM, DDIM, score SDEs,
EDM, guidance), flow matching, consistency models, MeanFlow, discrete diffusion, denoisers."""

from __future__ import annotations

import torch
from api_cases_core import OT, PATHS, VP_PATH, t_of, velocity, x_of
from contract import (
    Call,
    Count,
    Data,
    Gen,
    NetTime,
    Option,
    Param,
    Partner,
    PathKind,
    Plain,
    Real,
    Scale,
    Time,
    Tokens,
    Unit,
    Values,
    case,
)

import genmath
from genmath.families import consistency, denoisers, diffusion, meanflow
from genmath.families import discrete_diffusion as dd
from genmath.families import flow_matching as fm
from genmath.schedules import VP

# --------------------------------------------------------------------------- diffusion schedules


@case("genmath.families.diffusion.linear_betas")
def _(spec):
    return Call(
        diffusion.linear_betas,
        dict(steps=Count(10), beta_start=Unit(1e-4, open=True), beta_end=Unit(0.02, open=True)),
    )


@case("genmath.families.diffusion.cosine_betas")
def _(spec):
    return Call(
        diffusion.cosine_betas,
        dict(steps=Count(10), s=Unit(0.008), max_beta=Unit(0.999, open=True)),
    )


@case("genmath.families.diffusion.DiscreteSchedule.from_path")
def _(spec):
    return Call(diffusion.DiscreteSchedule.from_path, dict(path=PathKind(VP_PATH), steps=Count(10)))


@case("genmath.families.diffusion.DiscreteSchedule.from_betas")
def _(spec):
    return Call(
        diffusion.DiscreteSchedule.from_betas,
        dict(betas=Param(diffusion.linear_betas(10).to(spec.dtype)), path=Plain(None)),
    )


@case("genmath.families.diffusion.DiscreteSchedule.from_times")
def _(spec):
    return Call(
        diffusion.DiscreteSchedule.from_times,
        dict(path=PathKind(VP_PATH), times=Plain(torch.linspace(0, 1, 6, dtype=spec.dtype))),
    )


@case("genmath.families.diffusion.DiscreteSchedule.posterior_coefficients")
def _(spec):
    return Call(diffusion.DiscreteSchedule.from_path(VP_PATH, 10).posterior_coefficients, {})


@case("genmath.families.diffusion.DiscreteSchedule.respace")
def _(spec):
    return Call(diffusion.DiscreteSchedule.from_path(VP_PATH, 10).respace, dict(steps=Count(5)))


def _ddpm(spec, **kw):
    torch.manual_seed(spec.seed)
    schedule = diffusion.DiscreteSchedule.from_path(VP_PATH, 10)
    return diffusion.DDPM(lambda x, t: 0.3 * x * t.reshape(-1, 1), schedule, **kw)


@case("genmath.families.diffusion.DDPM")
def _(spec):
    return Call(
        diffusion.DDPM,
        dict(
            model=lambda x, t: x,
            schedule=diffusion.DiscreteSchedule.from_path(VP_PATH, 5),
            parameterization=Option("eps"),
            variance=Option("beta"),
        ),
    )


@case("genmath.families.diffusion.DDPM.loss")
def _(spec):
    return Call(
        _ddpm(spec).loss,
        dict(
            x0=Data(x_of(spec)),
            generator=Gen(spec.generator(3)),
            reduction=Option("mean"),
            condition_dropout=Unit(0.0),
        ),
    )


@case("genmath.families.diffusion.DDPM.elbo")
def _(spec):
    return Call(
        _ddpm(spec).elbo,
        dict(
            x0=Data(x_of(spec)),
            decoder=Option("gaussian"),
            generator=Gen(spec.generator(3)),
            chunk=Count(4),
        ),
    )


@case("genmath.families.diffusion.DDPM.sample")
def _(spec):
    return Call(
        _ddpm(spec).sample, dict(xT=Data(x_of(spec), event=False), generator=Gen(spec.generator(3)))
    )


@case("genmath.families.diffusion.DDPM.reverse_kernel")
def _(spec):
    return Call(_ddpm(spec).reverse_kernel, dict(x=Data(x_of(spec), event=False), i=Plain(3)))


@case("genmath.families.diffusion.DDPM.respaced")
def _(spec):
    return Call(_ddpm(spec).respaced, dict(steps=Count(5)))


@case("genmath.families.diffusion.discretized_gaussian_log_likelihood")
def _(spec):
    x = (2 * spec.rand(spec.batch, spec.dim, salt=1) - 1).clamp(-1, 1)
    return Call(
        diffusion.discretized_gaussian_log_likelihood,
        dict(
            x=Data(x),
            mean=Partner(0.1 * x),
            std=Scale(torch.full_like(x, 0.3), tensor=True),
            levels=Count(256, minimum=2),
        ),
    )


@case("genmath.families.diffusion.ddim_sample")
def _(spec):
    return Call(
        diffusion.ddim_sample,
        dict(
            model=lambda x, t: 0.5 * x,
            x1=Data(x_of(spec), event=False),
            path=PathKind(VP_PATH),
            steps=Count(4),
            eta=Unit(0.5),
            parameterization=Option("eps"),
            generator=Gen(spec.generator(3)),
        ),
    )


@case("genmath.families.diffusion.sub_vp")
def _(spec):
    return Call(diffusion.sub_vp, dict(beta_min=Scale(0.1), beta_max=Scale(20.0)))


def _score_sde(spec):
    return diffusion.ScoreSDE(lambda x, t: -x, VP_PATH, "eps")


@case("genmath.families.diffusion.ScoreSDE")
def _(spec):
    return Call(
        diffusion.ScoreSDE,
        dict(model=lambda x, t: -x, path=PathKind(VP_PATH), parameterization=Option("eps")),
    )


@case("genmath.families.diffusion.ScoreSDE.loss")
def _(spec):
    return Call(
        _score_sde(spec).loss,
        dict(x0=Data(x_of(spec)), generator=Gen(spec.generator(3)), reduction=Option("none")),
    )


@case("genmath.families.diffusion.ScoreSDE.sample")
def _(spec):
    return Call(
        _score_sde(spec).sample,
        dict(
            x1=Data(x_of(spec), event=False),
            steps=Count(4),
            method=Option("euler_maruyama"),
            generator=Gen(spec.generator(3)),
        ),
    )


@case("genmath.families.diffusion.ScoreSDE.log_likelihood")
def _(spec):
    return Call(
        _score_sde(spec).log_likelihood,
        dict(x=Data(x_of(spec)), method=Option("rk4"), options=Plain({"step_size": 0.25})),
    )


@case("genmath.families.diffusion.ScoreSDE.prior_log_prob")
def _(spec):
    return Call(_score_sde(spec).prior_log_prob, dict(x=Data(x_of(spec))))


@case("genmath.families.diffusion.ScoreSDE.bits_per_dim")
def _(spec):
    return Call(
        _score_sde(spec).bits_per_dim,
        dict(
            x=Data(spec.rand(spec.batch, spec.dim, salt=1)),
            levels=Count(256, minimum=2),
            method=Option("rk4"),
            options=Plain({"step_size": 0.25}),
        ),
    )


def _levels(spec):
    return 0.1 + spec.rand(spec.batch, salt=4) * 2


@case("genmath.families.diffusion.edm_preconditioning")
def _(spec):
    return Call(
        diffusion.edm_preconditioning,
        dict(noise_level=Scale(_levels(spec), tensor=True), sigma_data=Scale(0.5)),
    )


@case("genmath.families.diffusion.edm_loss_weight")
def _(spec):
    return Call(
        diffusion.edm_loss_weight,
        dict(noise_level=Scale(_levels(spec), tensor=True), sigma_data=Scale(0.5)),
    )


@case("genmath.families.diffusion.lognormal_noise_levels")
def _(spec):
    return Call(
        diffusion.lognormal_noise_levels,
        dict(
            n=Count(4),
            p_mean=Real(-1.2),
            p_std=Scale(1.2),
            generator=Gen(spec.generator(3)),
            dtype=Plain(spec.dtype),
        ),
    )


def _edm(spec, path=None):
    return diffusion.EDM(lambda x, c: 0.1 * x * c[:, None], path)


@case("genmath.families.diffusion.EDM")
def _(spec):
    return Call(
        diffusion.EDM,
        dict(network=lambda x, c: x, path=PathKind(PATHS["VE"]), sigma_data=Scale(0.5)),
    )


@case("genmath.families.diffusion.EDM.loss")
def _(spec):
    return Call(
        _edm(spec).loss,
        dict(
            x0=Data(x_of(spec)),
            noise_level=Plain(None),
            p_mean=Real(-1.2),
            p_std=Scale(1.2),
            generator=Gen(spec.generator(3)),
            reduction=Option("mean"),
        ),
    )


@case("genmath.families.diffusion.EDM.loss[noise_level]")
def _(spec):
    return Call(
        _edm(spec).loss,
        dict(
            x0=Data(x_of(spec)),
            noise_level=Scale(_levels(spec), tensor=True),
            reduction=Option("none"),
        ),
    )


@case("genmath.families.diffusion.EDM.forward")
def _(spec):
    return Call(
        _edm(spec, PATHS["VE"]).forward,
        dict(x=Data(x_of(spec), event=False), t=Time(t_of(spec), batch=spec.batch)),
    )


@case("genmath.families.diffusion.EDM.denoise")
def _(spec):
    return Call(
        _edm(spec).denoise,
        dict(x_scaled=Data(x_of(spec), event=False), noise_level=Scale(_levels(spec), tensor=True)),
    )


@case("genmath.families.diffusion.EDM.noise_level")
def _(spec):
    return Call(_edm(spec, VP_PATH).noise_level, dict(t=Time(t_of(spec))))


@case("genmath.families.diffusion.EDM.time_of")
def _(spec):
    return Call(
        _edm(spec, VP_PATH).time_of, dict(noise_level=Scale(_levels(spec), tensor=True, zero_ok=True))
    )


@case("genmath.families.diffusion.EDM.sample")
def _(spec):
    return Call(
        _edm(spec).sample,
        dict(x1=Data(x_of(spec), event=False), steps=Count(3), generator=Gen(spec.generator(3))),
    )


@case("genmath.families.diffusion.edm_sample")
def _(spec):
    return Call(
        diffusion.edm_sample,
        dict(
            model=lambda x, t: 0.5 * x,
            x1=Data(x_of(spec), event=False),
            path=PathKind(PATHS["VE"]),
            steps=Count(3),
            parameterization=Option("x0"),
            rho=Scale(7.0),
            churn=Scale(1.0, zero_ok=True),
            s_noise=Scale(1.0, zero_ok=True),
            generator=Gen(spec.generator(3)),
        ),
    )


@case("genmath.families.diffusion.drop_condition")
def _(spec):
    return Call(
        diffusion.drop_condition,
        dict(
            condition=Tokens(torch.arange(spec.batch) % 3, None, null=True),
            p=Unit(0.5),
            generator=Gen(spec.generator(3)),
        ),
    )


@case("genmath.families.diffusion.guide")
def _(spec):
    model = lambda x, t, c: x * (1 + (0 if c is None else c[:, None]))  # noqa: E731
    guided = diffusion.guide(model, torch.arange(spec.batch) % 3, 2.0, unconditional=lambda x, t: x)
    # the guided field is a model (the samplers validate their states once)
    return Call(guided, dict(x=Plain(x_of(spec)), t=Plain(0.5)))


# --------------------------------------------------------------------------- flow matching


@case("genmath.families.flow_matching.sample_times")
def _(spec):
    return Call(
        fm.sample_times,
        dict(
            n=Count(4),
            distribution=Option("logit_normal"),
            location=Real(0.0),
            scale=Scale(1.0),
            generator=Gen(spec.generator(3)),
            dtype=Plain(spec.dtype),
        ),
    )


@case("genmath.families.flow_matching.interpolate")
def _(spec):
    return Call(
        fm.interpolate,
        dict(
            x0=Data(x_of(spec), event=False),
            x1=Partner(x_of(spec, 2)),
            t=Time(t_of(spec), batch=spec.batch, edges=False),
            path=PathKind(OT),
            noise_scale=Scale(0.1, zero_ok=True),
            generator=Gen(spec.generator(3)),
        ),
    )


@case("genmath.families.flow_matching.cfm_loss")
def _(spec):
    return Call(
        fm.cfm_loss,
        dict(
            model=velocity(spec),
            x0=Data(x_of(spec)),
            path=PathKind(OT),
            parameterization=Option("velocity"),
            t=Plain(None),
            noise=Partner(x_of(spec, 2)),
            coupling=Option("ot"),
            noise_scale=Scale(0.0, zero_ok=True),
            time_distribution=Option("logit_normal"),
            logit_location=Real(0.0),
            logit_scale=Scale(1.0),
            generator=Gen(spec.generator(3)),
            reduction=Option("mean"),
        ),
    )


@case("genmath.families.flow_matching.cfm_loss[t]")
def _(spec):
    return Call(
        fm.cfm_loss,
        dict(
            model=velocity(spec),
            x0=Data(x_of(spec)),
            path=PathKind(VP_PATH),
            parameterization=Option("eps"),
            t=Time(t_of(spec), batch=spec.batch),
            reduction=Option("none"),
        ),
    )


@case("genmath.families.flow_matching.ot_coupling")
def _(spec):
    return Call(
        fm.ot_coupling,
        dict(x0=Data(x_of(spec), finite=True), x1=Partner(x_of(spec, 2), finite=True)),
    )


@case("genmath.families.flow_matching.reflow_pairs")
def _(spec):
    return Call(
        fm.reflow_pairs,
        dict(
            model=velocity(spec),
            noise=Data(x_of(spec), event=False),
            steps=Count(3),
            method=Option("rk4"),
        ),
    )


@case("genmath.families.flow_matching.straightness")
def _(spec):
    result = genmath.sample_ode(velocity(spec), x_of(spec), steps=3, keep_trajectory=True)
    return Call(fm.straightness, dict(result=Plain(result)))


@case("genmath.families.flow_matching.sample")
def _(spec):
    return Call(
        fm.sample,
        dict(
            model=velocity(spec),
            noise=Data(x_of(spec), event=False),
            steps=Count(3),
            method=Option("midpoint"),
        ),
    )


@case("genmath.families.flow_matching.standard_normal_log_prob")
def _(spec):
    return Call(fm.standard_normal_log_prob, dict(x=Data(x_of(spec))))


@case("genmath.families.flow_matching.guided")
def _(spec):
    return Call(
        fm.guided(velocity(spec), lambda x, t: x, 2.0),
        dict(x=Plain(x_of(spec)), t=Plain(0.5)),  # a model: the samplers validate states
    )


def _flow_matching(spec, parameterization="velocity", path=None):
    torch.manual_seed(spec.seed)
    net = genmath.nn.VelocityMLP(spec.dim, 8).to(spec.dtype)
    return fm.FlowMatching(net, path, parameterization)


@case("genmath.families.flow_matching.FlowMatching")
def _(spec):
    return Call(
        fm.FlowMatching,
        dict(network=lambda x, t: x, path=PathKind(OT), parameterization=Option("velocity")),
    )


@case("genmath.families.flow_matching.FlowMatching.loss")
def _(spec):
    return Call(
        _flow_matching(spec).loss,
        dict(
            x0=Data(x_of(spec), fixed=True, mix=True),
            generator=Gen(spec.generator(3)),
            reduction=Option("none"),
        ),
        aliases={"x0": ("x",)},  # the network names its own input x
    )


@case("genmath.families.flow_matching.FlowMatching.velocity")
def _(spec):
    return Call(
        _flow_matching(spec, "x0", VP_PATH).velocity,
        dict(x=Data(x_of(spec), fixed=True, mix=True), t=Time(t_of(spec), batch=spec.batch)),
    )


@case("genmath.families.flow_matching.FlowMatching.sample")
def _(spec):
    return Call(
        _flow_matching(spec).sample,
        dict(noise=Data(x_of(spec), fixed=True, mix=True), steps=Count(3), method=Option("euler")),
        aliases={"noise": ("x",)},  # the network names its own input x
    )


@case("genmath.families.flow_matching.FlowMatching.log_prob")
def _(spec):
    return Call(
        _flow_matching(spec).log_prob,
        dict(
            x=Data(x_of(spec), fixed=True, mix=True),
            method=Option("rk4"),
            options=Plain({"step_size": 0.25}),
        ),
    )


# --------------------------------------------------------------------------- consistency


def _consistency(spec):
    torch.manual_seed(spec.seed)
    net = genmath.nn.VelocityMLP(spec.dim, 8).to(spec.dtype)
    return consistency.ConsistencyModel(net, PATHS["VE"])


@case("genmath.families.consistency.boundary_coefficients")
def _(spec):
    return Call(
        consistency.boundary_coefficients,
        dict(
            s=Scale(_levels(spec) + 0.01, tensor=True, zero_ok=True),
            s_min=Scale(0.01, zero_ok=True),
            sigma_data=Scale(0.5),
        ),
    )


@case("genmath.families.consistency.ConsistencyModel")
def _(spec):
    return Call(
        consistency.ConsistencyModel,
        dict(network=lambda x, t: x, path=PathKind(PATHS["VE"]), sigma_data=Scale(0.5)),
    )


@case("genmath.families.consistency.ConsistencyModel.forward")
def _(spec):
    model = _consistency(spec)
    return Call(
        model.forward,
        dict(x=Data(x_of(spec), fixed=True, mix=True), t=Time(t_of(spec), batch=spec.batch)),
    )


@case("genmath.families.consistency.ConsistencyModel.noise_level")
def _(spec):
    return Call(_consistency(spec).noise_level, dict(t=Time(t_of(spec))))


@case("genmath.families.consistency.ema_update")
def _(spec):
    model = _consistency(spec)
    return Call(
        consistency.ema_update, dict(target=model.target_copy(), online=model, decay=Unit(0.9))
    )


@case("genmath.families.consistency.training_steps")
def _(spec):
    return Call(
        consistency.training_steps,
        dict(k=Count(3, minimum=0), total=Count(10), s0=Count(2), s1=Count(150)),
    )


@case("genmath.families.consistency.ema_decay")
def _(spec):
    return Call(
        consistency.ema_decay, dict(steps=Count(10), s0=Count(2), mu0=Unit(0.95))
    )


@case("genmath.families.consistency.consistency_training_loss")
def _(spec):
    model = _consistency(spec)
    return Call(
        consistency.consistency_training_loss,
        dict(
            model=model,
            target_model=model.target_copy(),
            x0=Data(x_of(spec), fixed=True, mix=True),
            path=PathKind(PATHS["VE"]),
            steps=Count(6),
            metric=Option("pseudo_huber"),
            huber_c=Scale(0.01),
            generator=Gen(spec.generator(3)),
            reduction=Option("mean"),
        ),
        aliases={"x0": ("x",)},  # the network names its own input x
    )


@case("genmath.families.consistency.consistency_distillation_loss")
def _(spec):
    model = _consistency(spec)
    return Call(
        consistency.consistency_distillation_loss,
        dict(
            model=model,
            target_model=model.target_copy(),
            x0=Data(x_of(spec), fixed=True, mix=True),
            path=PathKind(PATHS["VE"]),
            teacher=lambda x, t: 0.5 * x,
            grid=Count(6),
            solver=Option("euler"),
            teacher_parameterization=Option("x0"),
            metric=Option("l2"),
            generator=Gen(spec.generator(3)),
            reduction=Option("none"),
        ),
        aliases={"x0": ("x",)},  # the network names its own input x
    )


@case("genmath.families.consistency.sample")
def _(spec):
    model = _consistency(spec)
    return Call(
        consistency.sample,
        dict(
            model=model,
            noise=Data(x_of(spec), fixed=True, mix=True),
            times=Plain([0.5]),
            generator=Gen(spec.generator(3)),
        ),
        aliases={"noise": ("x",)},  # the network names its own input x
    )


# --------------------------------------------------------------------------- MeanFlow


def _average(spec):
    torch.manual_seed(spec.seed)
    return meanflow.AverageVelocityMLP(spec.dim, 8, 2).to(spec.dtype)


@case("genmath.families.meanflow.AverageVelocityMLP")
def _(spec):
    return Call(meanflow.AverageVelocityMLP, dict(dim=Count(2), hidden=Count(8), depth=Count(2)))


@case("genmath.families.meanflow.AverageVelocityMLP.forward")
def _(spec):
    return Call(
        _average(spec).forward,
        dict(
            z=Data(x_of(spec), fixed=True, mix=True),
            r=Time(0.2 * t_of(spec), batch=spec.batch, edges=False),
            t=Time(0.9, edges=False),
        ),
    )


@case("genmath.families.meanflow.sample_time_pairs")
def _(spec):
    return Call(
        meanflow.sample_time_pairs,
        dict(
            n=Count(4),
            distribution=Option("uniform"),
            equal_fraction=Unit(0.5),
            location=Real(-0.4),
            scale=Scale(1.0),
            generator=Gen(spec.generator(3)),
            dtype=Plain(spec.dtype),
        ),
    )


@case("genmath.families.meanflow.meanflow_target")
def _(spec):
    return Call(
        meanflow.meanflow_target,
        dict(
            model=_average(spec),
            z=Data(x_of(spec), fixed=True, mix=True),
            r=Time(0.2, edges=False),
            t=Time(0.7, edges=False),
            v=Partner(x_of(spec, 2)),
        ),
    )


@case("genmath.families.meanflow.adaptive_weight")
def _(spec):
    return Call(
        meanflow.adaptive_weight,
        dict(
            squared_error=Values(spec.rand(spec.batch, salt=1)),
            power=Scale(1.0, zero_ok=True),
            c=Scale(1e-3),
        ),
    )


for _name in ("meanflow_loss", "improved_meanflow_loss"):

    def _loss(spec, name=_name):
        return Call(
            getattr(meanflow, name),
            dict(
                model=_average(spec),
                x=Data(x_of(spec), fixed=True, mix=True),
                path=PathKind(OT),
                noise=Partner(x_of(spec, 2)),
                adaptive_power=Scale(1.0, zero_ok=True),
                adaptive_c=Scale(1e-3),
                generator=Gen(spec.generator(3)),
                reduction=Option("mean"),
            ),
        )

    case(f"genmath.families.meanflow.{_name}")(_loss)


@case("genmath.families.meanflow.sample")
def _(spec):
    return Call(
        meanflow.sample,
        dict(model=_average(spec), noise=Data(x_of(spec), fixed=True, mix=True), steps=Count(2)),
        aliases={"noise": ("z",)},  # the network names its own input z
    )


@case("genmath.families.meanflow.average_velocity_from_flow_map")
def _(spec):
    from genmath.analytic import Gaussian

    marginal = Gaussian(
        torch.zeros(spec.dim, dtype=spec.dtype), torch.eye(spec.dim, dtype=spec.dtype)
    ).marginal(OT)
    u = meanflow.average_velocity_from_flow_map(marginal.flow_map, marginal.velocity)
    return Call(
        u,
        dict(z=Data(x_of(spec), fixed=True), r=Time(0.2, edges=False), t=Time(0.8, edges=False)),
        aliases={"z": ("x",)},  # the flow map names its own input x
    )


@case("genmath.families.meanflow.MeanFlow.loss")
def _(spec):
    model = meanflow.MeanFlow(_average(spec))
    return Call(
        model.loss,
        dict(x=Data(x_of(spec), fixed=True, mix=True), generator=Gen(spec.generator(3))),
        aliases={"x": ("z",)},  # the network names its own input z
    )


# --------------------------------------------------------------------------- discrete diffusion

K = 3
_MASK = genmath.MaskPath(K)
_UNIFORM = genmath.UniformPath(K)


def _token_mlp(spec, path, length=3):
    torch.manual_seed(spec.seed)
    return dd.TokenMLP(length, path.num_states, K, hidden=8, mask_id=path.mask_id).to(spec.dtype)


def _x0(spec, length=3):
    return torch.randint(0, K, (spec.batch, length), generator=spec.generator(6))


for _pname, _dpath in (("MaskPath", _MASK), ("UniformPath", _UNIFORM)):

    def _d3pm(spec, path=_dpath):
        return dd.D3PM(_token_mlp(spec, path), path, 4)

    def _loss(spec, path=_dpath):
        return Call(
            _d3pm(spec, path).loss, dict(x0=Tokens(_x0(spec), K), generator=Gen(spec.generator(3)))
        )

    def _nelbo(spec, path=_dpath):
        return Call(
            _d3pm(spec, path).negative_elbo,
            dict(x0=Tokens(_x0(spec), K), generator=Gen(spec.generator(3))),
        )

    def _dsample(spec, path=_dpath):
        return Call(
            _d3pm(spec, path).sample,
            dict(n=Count(2), event_shape=Plain((3,)), generator=Gen(spec.generator(3))),
        )

    def _dfm(spec, path=_dpath):
        return Call(
            dd.dfm_loss,
            dict(
                denoiser=_token_mlp(spec, path),
                path=PathKind(path),
                x0=Tokens(_x0(spec), K),
                generator=Gen(spec.generator(3)),
            ),
        )

    def _dfm_sample(spec, path=_dpath):
        return Call(
            dd.dfm_euler_sample,
            dict(
                denoiser=_token_mlp(spec, path),
                path=PathKind(path),
                n=Count(2),
                event_shape=Plain((3,)),
                steps=Count(3),
                generator=Gen(spec.generator(3)),
                dtype=Plain(spec.dtype),
            ),
        )

    def _entropy(spec, path=_dpath):
        def log_score(xt, t):
            return torch.zeros(*xt.shape, path.num_states, dtype=spec.dtype)

        return Call(
            dd.score_entropy_loss,
            dict(
                score_model=log_score,
                path=PathKind(path),
                x0=Tokens(_x0(spec), K),
                t=Time(t_of(spec), batch=spec.batch, edges=False),
                generator=Gen(spec.generator(3)),
            ),
        )

    def _ancestral(spec, path=_dpath):
        return Call(
            dd.ancestral_sample,
            dict(
                denoiser=_token_mlp(spec, path),
                path=PathKind(path),
                n=Count(2),
                event_shape=Plain((3,)),
                steps=Count(3),
                generator=Gen(spec.generator(3)),
                dtype=Plain(spec.dtype),
            ),
        )

    for _label, _build in (
        ("D3PM.loss", _loss),
        ("D3PM.negative_elbo", _nelbo),
        ("D3PM.sample", _dsample),
        ("dfm_loss", _dfm),
        ("dfm_euler_sample", _dfm_sample),
        ("score_entropy_loss", _entropy),
        ("ancestral_sample", _ancestral),
    ):
        case(f"genmath.families.discrete_diffusion.{_label}[{_pname}]")(_build)


@case("genmath.families.discrete_diffusion.masked_diffusion_nelbo")
def _(spec):
    return Call(
        dd.masked_diffusion_nelbo,
        dict(
            denoiser=_token_mlp(spec, _MASK),
            path=PathKind(_MASK),
            x0=Tokens(_x0(spec), K),
            t=Time(t_of(spec), batch=spec.batch, edges=False),
            generator=Gen(spec.generator(3)),
        ),
    )


def _probs(spec, length=3):
    p = spec.rand(spec.batch, length, K, salt=7) + 0.1
    return p / p.sum(-1, keepdim=True)


@case("genmath.families.discrete_diffusion.denoiser_probs")
def _(spec):
    xt = _UNIFORM.sample(_x0(spec), 0.5, generator=spec.generator(8))
    return Call(
        dd.denoiser_probs,
        dict(
            path=PathKind(_UNIFORM),
            logits=Data(spec.randn(spec.batch, 3, K, salt=1), fixed=True, mix=True),
            xt=Plain(xt),
        ),
    )


@case("genmath.families.discrete_diffusion.reverse_probs")
def _(spec):
    xt = _UNIFORM.sample(_x0(spec), 0.5, generator=spec.generator(8))
    return Call(
        dd.reverse_probs,
        dict(
            path=PathKind(_UNIFORM),
            x0_probs=Data(_probs(spec), fixed=True),
            xt=Plain(xt),
            s=Time(0.3, edges=False),
            t=Time(0.6, edges=False),
        ),
    )


@case("genmath.families.discrete_diffusion.dfm_rates")
def _(spec):
    xt = _UNIFORM.sample(_x0(spec), 0.5, generator=spec.generator(8))
    return Call(
        dd.dfm_rates,
        dict(
            path=PathKind(_UNIFORM),
            x0_probs=Data(_probs(spec), fixed=True),
            xt=Plain(xt),
            t=Time(0.6, edges=False),
        ),
    )


@case("genmath.families.discrete_diffusion.concrete_score")
def _(spec):
    xt = _UNIFORM.sample(_x0(spec), 0.5, generator=spec.generator(8))
    return Call(
        dd.concrete_score,
        dict(
            path=PathKind(_UNIFORM),
            x0_probs=Data(_probs(spec), fixed=True),
            xt=Plain(xt),
            t=Time(0.6, edges=False),
        ),
    )


@case("genmath.families.discrete_diffusion.TokenMLP")
def _(spec):
    return Call(
        dd.TokenMLP,
        dict(length=Count(3), num_states=Count(4), num_categories=Count(3), hidden=Count(8)),
    )


@case("genmath.families.discrete_diffusion.D3PM")
def _(spec):
    return Call(
        dd.D3PM,
        dict(
            denoiser=lambda x, t: x,
            path=PathKind(_MASK),
            steps=Count(4),
            aux_weight=Scale(0.1, zero_ok=True),
        ),
    )


# --------------------------------------------------------------------------- denoisers


@case("genmath.families.denoisers.TimeEmbedding")
def _(spec):
    return Call(
        denoisers.TimeEmbedding, dict(features=Count(8), width=Count(8), max_frequency=Scale(100.0))
    )


@case("genmath.families.denoisers.TimeEmbedding.forward")
def _(spec):
    torch.manual_seed(spec.seed)
    embed = denoisers.TimeEmbedding(8, 8).to(spec.dtype)
    return Call(embed.forward, dict(t=Data(t_of(spec), event=False, mix=True, ints_ok=True)))


@case("genmath.families.denoisers.MLPDenoiser")
def _(spec):
    return Call(
        denoisers.MLPDenoiser,
        dict(
            dim=Count(2),
            hidden=Count(8),
            depth=Count(1),
            classes=Count(3),
            max_frequency=Scale(100.0),
        ),
    )


@case("genmath.families.denoisers.MLPDenoiser.forward")
def _(spec):
    torch.manual_seed(spec.seed)
    net = denoisers.MLPDenoiser(spec.dim, 8, 1, classes=3).to(spec.dtype)
    return Call(
        net.forward,
        dict(
            x=Data(x_of(spec), fixed=True, mix=True),
            t=NetTime(t_of(spec), batch=spec.batch),
            condition=Tokens(torch.arange(spec.batch) % 3, 3, null=True),
        ),
    )


@case("genmath.families.denoisers.UNet8.forward")
def _(spec):
    torch.manual_seed(spec.seed)
    net = denoisers.UNet8(1, 8).to(spec.dtype)
    return Call(
        net.forward,
        dict(
            x=Data(spec.randn(spec.batch, 1, 8, 8, salt=1), mix=True),
            t=NetTime(t_of(spec), batch=spec.batch),
        ),
    )


@case("genmath.families.diffusion.DiscreteSchedule.from_betas[VP]")
def _(spec):
    return Call(
        diffusion.DiscreteSchedule.from_betas,
        dict(
            betas=Plain(diffusion.linear_betas(1000).to(spec.dtype)),
            path=PathKind(genmath.GaussianPath(VP(0.1, 20.1355))),
        ),
    )


@case("genmath.families.consistency.ConsistencyModel.target_copy")
def _(spec):
    return Call(_consistency(spec).target_copy, {})


@case("genmath.families.discrete_diffusion.TokenMLP.forward")
def _(spec):
    net = _token_mlp(spec, _MASK)
    xt = _MASK.sample(_x0(spec), 0.5, generator=spec.generator(8))
    return Call(net.forward, dict(xt=Plain(xt), t=NetTime(t_of(spec), batch=spec.batch)))


@case("genmath.families.flow_matching.FlowMatching.forward")
def _(spec):
    return Call(
        _flow_matching(spec).forward,
        dict(x=Data(x_of(spec), fixed=True, mix=True), t=NetTime(t_of(spec), batch=spec.batch)),
    )


def _meanflow_model(spec):
    return meanflow.MeanFlow(_average(spec))


@case("genmath.families.meanflow.MeanFlow.forward")
def _(spec):
    return Call(
        _meanflow_model(spec).forward,
        dict(
            z=Data(x_of(spec), fixed=True, mix=True),
            r=Time(0.2, edges=False),
            t=Time(0.8, edges=False),
        ),
    )


@case("genmath.families.meanflow.MeanFlow.velocity")
def _(spec):
    return Call(
        _meanflow_model(spec).velocity, dict(z=Data(x_of(spec), fixed=True, mix=True), t=Time(0.8))
    )


@case("genmath.families.meanflow.MeanFlow.sample")
def _(spec):
    return Call(
        _meanflow_model(spec).sample,
        dict(noise=Data(x_of(spec), fixed=True, mix=True), steps=Count(2)),
        aliases={"noise": ("z",)},  # the network names its own input z
    )
