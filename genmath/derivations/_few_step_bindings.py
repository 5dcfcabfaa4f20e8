"""Bindings of the few-step derivations (`families_few_step.py`): the consistency and MeanFlow
code evaluated in float64 at random points of the domain it accepts, values and autograd
gradients, compared with the derivations' expressions."""

from __future__ import annotations

import sympy as sp

from ._engine import Binding, Integers, LogUniform, Uniform
from ._few_step_common import _interval, frac, gap_s1, u1, u2, w_r
from ._path_cases import schedule_case, shared_path
from ._registry import register
from .families_few_step import (
    F_c,
    K_it,
    N_pts,
    a_p,
    b_p,
    c_in_edm,
    c_noise_edm,
    c_out_song,
    c_skip_song,
    c_w,
    chord,
    consistency_function,
    consistency_gradients,
    consistency_huber,
    consistency_l2,
    ema_decay_expr,
    ema_update_expr,
    eps_c,
    eps_m,
    flow_map_t_to_r,
    g_p,
    gaussian_velocity,
    huber_c,
    improved_loss_expr,
    k_it,
    kappa,
    m,
    meanflow_gradients,
    meanflow_loss_expr,
    meanflow_target_expr,
    mu0,
    mu_ema,
    p_w,
    q,
    r,
    s,
    s0,
    s1,
    s_min,
    sigma_d,
    t,
    t_hi,
    t_lo,
    theta_online,
    theta_target,
    training_steps_expr,
    v_t,
    w_p,
    x0_c,
    x_c,
    x_m,
    z,
)

_CM = "genmath.families.consistency"
_MF = "genmath.families.meanflow"
z_noise = sp.Symbol("z_noise", real=True)


def _linear_network(weight, *, time_term: bool = True):
    """F(x, t) = w x + t (or w x): a network whose output the bound expression predicts."""
    import torch
    from torch import nn

    class Linear(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = nn.Parameter(torch.as_tensor(weight, dtype=torch.float64).reshape(1, 1))

        def forward(self, x, time):
            return self.w * x + (time.reshape(-1, 1) if time_term else 0)

    return Linear()


def _level(label, time):
    alpha, sigma, _, _ = schedule_case(label).at(time)
    return sigma / alpha


# ------------------------------------------------------------------ consistency boundary


def _coefficients_by_code(points):
    import torch

    from ..families.consistency import boundary_coefficients

    rows = []
    for j in range(points[s].shape[0]):
        c_skip, c_out = boundary_coefficients(
            points[s][j : j + 1], float(points[s_min][j]), float(points[sigma_d][j])
        )
        rows.append(torch.cat([c_skip, c_out]))
    return tuple(torch.stack(rows).T)


register(
    Binding(
        derivation="D-consistency-boundary",
        code=(f"{_CM}.boundary_coefficients",),
        expression=(c_skip_song, c_out_song),
        evaluate=_coefficients_by_code,
        domain={s: LogUniform(1e-4, 1e4), s_min: LogUniform(1e-5, 1.0),
                sigma_d: LogUniform(1e-2, 10.0)},
        samples=24,
        description="boundary_coefficients(s, s_min, sigma_data): c_skip and c_out",
    )
)


def _model_by_code(label, **options):
    def evaluate(points):
        import torch

        from ..families.consistency import ConsistencyModel

        _, _, lo, hi = _interval(label)
        out = []
        for j in range(points[u1].shape[0]):
            t_min = lo + float(points[u1][j]) * (hi - lo) / 2
            time = t_min + points[u2][j] * (hi - t_min)
            model = ConsistencyModel(
                _linear_network(points[w_p][j]), shared_path(label), t_min=t_min,
                sigma_data=float(points[sigma_d][j]), **options,
            )
            with torch.no_grad():
                out.append(model(points[x_c][j].reshape(1, 1), time.reshape(1))[0, 0])
        return torch.stack(out)

    return evaluate


def _sample_by_code(label):
    def evaluate(points):
        import torch

        from ..families.consistency import ConsistencyModel, sample

        out = []
        for j in range(points[z_noise].shape[0]):
            model = ConsistencyModel(
                _linear_network(points[w_p][j]), shared_path(label),
                sigma_data=float(points[sigma_d][j]),
            )
            with torch.no_grad():
                out.append(sample(model, points[z_noise][j].reshape(1, 1)).x[0, 0])
        return torch.stack(out)

    return evaluate


def _register_boundary_bindings():
    for label in ("VP()", "CondOT()", "VE()", "CosineVP()"):
        lo_s, hi_s, _, _ = _interval(label)
        t_min = lo_s + u1 * (hi_s - lo_s) / 2
        time = t_min + u2 * (hi_s - t_min)
        register(
            Binding(
                derivation="D-consistency-boundary",
                code=(f"{_CM}.ConsistencyModel.forward", f"{_CM}.ConsistencyModel.noise_level"),
                expression=consistency_function,
                where={s: _level(label, time), s_min: _level(label, t_min), F_c: w_p * x_c + time},
                evaluate=_model_by_code(label),
                domain={u1: Uniform(0, 1, ends=True), u2: Uniform(0, 1, ends=True),
                        w_p: Uniform(-2, 2), x_c: Uniform(-5, 5), sigma_d: LogUniform(0.05, 5)},
                samples=12,
                description=(
                    f"ConsistencyModel(F = w x + t, GaussianPath({label}), t_min, sigma_data)(x, t)"
                    " at t_min in the lower half of the safe interval, t in [t_min, t_max]"
                ),
            )
        )
    # EDM's input scaling and noise label (both, or the label alone): F = w c_in x / alpha + c_noise
    for label, options in (("VE()", dict(input_scaling=True, noise_conditioning="edm")),
                           ("VP()", dict(input_scaling=True, noise_conditioning="edm")),
                           ("CondOT()", dict(noise_conditioning="edm"))):
        lo_s, hi_s, _, _ = _interval(label)
        t_min = lo_s + u1 * (hi_s - lo_s) / 2
        time = t_min + u2 * (hi_s - t_min)
        level = _level(label, time)
        alpha = schedule_case(label).at(time)[0]
        scaled = c_in_edm.subs(s, level) / alpha * x_c if options.get("input_scaling") else x_c
        register(
            Binding(
                derivation="D-consistency-boundary",
                code=(f"{_CM}.ConsistencyModel.forward",
                      "genmath.families.diffusion.edm_preconditioning"),
                expression=consistency_function,
                where={s: level, s_min: _level(label, t_min),
                       F_c: w_p * scaled + c_noise_edm.subs(s, level)},
                evaluate=_model_by_code(label, **options),
                domain={u1: Uniform(0, 1, ends=True), u2: Uniform(0, 1, ends=True),
                        w_p: Uniform(-2, 2), x_c: Uniform(-5, 5), sigma_d: LogUniform(0.05, 5)},
                samples=10,
                description=(
                    f"ConsistencyModel(F = w x + label, GaussianPath({label}), {options}): the "
                    "network sees c_in x / alpha (with input_scaling) and c_noise = ln(s)/4"
                ),
            )
        )
    for label in ("VP()", "CondOT()"):
        lo_s, hi_s, _, _ = _interval(label)
        level_hi = _level(label, hi_s)
        sigma_hi = schedule_case(label).at(hi_s)[1]
        register(
            Binding(
                derivation="D-consistency-boundary",
                code=(f"{_CM}.sample",),
                expression=consistency_function,
                where={x_c: sigma_hi * z_noise, s: level_hi, s_min: _level(label, lo_s),
                       F_c: w_p * sigma_hi * z_noise + hi_s},
                evaluate=_sample_by_code(label),
                domain={z_noise: Uniform(-4, 4), w_p: Uniform(-2, 2),
                        sigma_d: LogUniform(0.05, 5)},
                samples=8,
                description=f"one-step sample(model, z) = f(sigma_T z, T) on GaussianPath({label})",
            )
        )


_register_boundary_bindings()

# ------------------------------------------------------------------ training schedule


def _steps_by_code(points):
    import torch

    from ..families.consistency import training_steps

    out = []
    for j in range(points[K_it].shape[0]):
        total = int(points[K_it][j])
        k = int(torch.floor(points[frac][j] * total))
        first = int(points[s0][j])
        out.append(training_steps(k, total, first, first + int(points[gap_s1][j])))
    return torch.tensor(out, dtype=torch.float64)


def _decay_by_code(points):
    import torch

    from ..families.consistency import ema_decay

    return torch.tensor(
        [
            ema_decay(int(n), int(first), float(mu))
            for n, first, mu in zip(points[N_pts], points[s0], points[mu0], strict=True)
        ],
        dtype=torch.float64,
    )


def _ema_by_code(points):
    import torch

    from ..families.consistency import ema_update

    out = []
    for j in range(points[mu_ema].shape[0]):
        target, online = _linear_network(points[theta_target][j]), _linear_network(
            points[theta_online][j]
        )
        ema_update(target, online, float(points[mu_ema][j]))
        out.append(target.w.detach()[0, 0])
    return torch.stack(out)


register(
    Binding(
        derivation="D-consistency-training-schedule",
        code=(f"{_CM}.training_steps",),
        expression=training_steps_expr,
        where={k_it: sp.floor(frac * K_it), s1: s0 + gap_s1},
        evaluate=_steps_by_code,
        domain={frac: Uniform(0, 1, ends=True), K_it: Integers(1, 400_000),
                s0: Integers(1, 20), gap_s1: Integers(0, 1000)},
        samples=32,
        description="training_steps(k, K, s0, s1) for 0 <= k <= K, s0 <= s1",
    )
)
register(
    Binding(
        derivation="D-consistency-training-schedule",
        code=(f"{_CM}.ema_decay",),
        expression=ema_decay_expr,
        evaluate=_decay_by_code,
        domain={N_pts: Integers(1, 2000), s0: Integers(1, 20), mu0: Uniform(1e-3, 1, ends=True)},
        samples=32,
        description="ema_decay(N, s0, mu0)",
    )
)
register(
    Binding(
        derivation="D-consistency-training-schedule",
        code=(f"{_CM}.ema_update",),
        expression=ema_update_expr,
        evaluate=_ema_by_code,
        domain={mu_ema: Uniform(0, 1, ends=True), theta_target: Uniform(-3, 3),
                theta_online: Uniform(-3, 3)},
        samples=16,
        description="ema_update(target, online, mu) on a one-parameter network",
    )
)

# ------------------------------------------------------------------ consistency losses


def _losses_by_code(points):
    import torch

    from ..core.path import GaussianPath
    from ..core.schedules import CondOT
    from ..families.consistency import (
        ConsistencyModel,
        consistency_distillation_loss,
        consistency_training_loss,
    )

    path = GaussianPath(CondOT())
    rows = []
    for j in range(points[t_hi].shape[0]):
        grid = torch.stack([points[t_hi][j], points[t_lo][j]])
        level = float(points[s_min][j])
        model = ConsistencyModel(
            _linear_network(points[w_p][j], time_term=False), path,
            t_min=level / (1 + level),  # CondOT's noise level s = t / (1 - t), inverted
            sigma_data=float(points[sigma_d][j]),
        )
        x0 = points[x0_c][j].reshape(1, 1)
        noise = points[eps_c][j].reshape(1, 1)
        slope = points[kappa][j]

        def teacher(x, time, slope=slope):
            return slope * x + time.reshape(-1, 1)

        losses = [
            consistency_training_loss(model, model, x0, path, grid=grid, noise=noise),
            consistency_training_loss(
                model, model, x0, path, grid=grid, noise=noise, metric="pseudo_huber",
                huber_c=float(points[huber_c][j]),
            ),
            consistency_distillation_loss(
                model, model, x0, path, teacher, grid=grid, solver="euler", noise=noise
            ),
            consistency_distillation_loss(
                model, model, x0, path, teacher, grid=grid, solver="heun", noise=noise
            ),
        ]
        gradients = [torch.autograd.grad(loss, model.network.w)[0][0, 0] for loss in losses]
        rows.append(torch.stack([*[loss.detach() for loss in losses], *gradients]))
    return tuple(torch.stack(rows).T)


register(
    Binding(
        derivation="D-consistency-losses",
        code=(f"{_CM}.consistency_training_loss", f"{_CM}.consistency_distillation_loss"),
        expression=(
            consistency_l2["training"], consistency_huber, consistency_l2["euler"],
            consistency_l2["heun"], consistency_gradients["training"],
            consistency_gradients["huber"], consistency_gradients["euler"],
            consistency_gradients["heun"],
        ),
        evaluate=_losses_by_code,
        # t_lo < t_hi on independent draws: t_hi in the upper half of CondOT's safe interval
        # (0.001, 0.999), t_lo in the lower half above t_min = s_min / (1 + s_min) <= 0.048
        domain={t_hi: Uniform(0.5, 0.999, ends=True), t_lo: Uniform(0.05, 0.5, ends=True),
                s_min: LogUniform(1.01e-3, 0.05), w_p: Uniform(-2, 2), x0_c: Uniform(-3, 3),
                eps_c: Uniform(-3, 3), kappa: Uniform(-2, 2), sigma_d: LogUniform(0.05, 5),
                huber_c: LogUniform(1e-4, 1)},
        samples=12,
        tolerance=1e-8,
        description=(
            "training (l2, pseudo-Huber) and distillation (Euler, Heun teacher step) losses on "
            "CondOT with target = online model: values and autograd gradients in w"
        ),
    )
)

# ------------------------------------------------------------------ MeanFlow


def _gaussian_average_velocity(mean, std):
    import torch

    from ..analytic import Gaussian
    from ..core.path import GaussianPath
    from ..core.schedules import CondOT
    from ..families.meanflow import average_velocity_from_flow_map

    law = Gaussian(mean.reshape(1), (std**2).reshape(1, 1))
    marginal = law.marginal(GaussianPath(CondOT()))
    del torch
    return average_velocity_from_flow_map(marginal.flow_map, marginal.velocity)


def _average_by_code(points):
    import torch

    rows = []
    for j in range(points[z].shape[0]):
        u = _gaussian_average_velocity(points[m][j], points[q][j])
        point = points[z][j].reshape(1, 1)
        time = points[t][j].reshape(1)
        rows.append(torch.stack([u(point, points[w_r][j] * time, time)[0, 0],
                                 u(point, time, time)[0, 0]]))
    return tuple(torch.stack(rows).T)


register(
    Binding(
        derivation="D-meanflow-identity",
        code=(f"{_MF}.average_velocity_from_flow_map",),
        expression=(chord, gaussian_velocity),
        where={r: w_r * t},
        evaluate=_average_by_code,
        domain={t: Uniform(1e-3, 1, ends=True), w_r: Uniform(0, 0.98, ends=True),
                z: Uniform(-3, 3), m: Uniform(-2, 2), q: LogUniform(0.1, 5)},
        samples=12,
        description=(
            "average_velocity_from_flow_map of the exact CondOT flow map of N(m, q^2): the "
            "chord for r < t and the velocity at r = t"
        ),
    )
)


def _model_from(points, n=None):
    """u(z, r, t) = a z + b t z + g r t with per-sample a, b (leaves) and g."""
    a = points[a_p].reshape(-1, 1).clone().requires_grad_(True)
    b = points[b_p].reshape(-1, 1).clone().requires_grad_(True)
    g = points[g_p].reshape(-1, 1)
    if n is not None:
        a, b, g = (v[n : n + 1].detach().clone().requires_grad_(v.requires_grad) for v in (a, b, g))

    def model(point, r_, t_):
        return a * point + b * t_.reshape(-1, 1) * point + g * (r_ * t_).reshape(-1, 1)

    return model, a, b


def _target_by_code(points):
    from ..families.meanflow import meanflow_target

    model, _, _ = _model_from(points)
    time = points[t]
    _, target = meanflow_target(
        model, points[z].reshape(-1, 1), points[w_r] * time, time, points[v_t].reshape(-1, 1)
    )
    return target.detach()[:, 0]


register(
    Binding(
        derivation="D-meanflow-target",
        code=(f"{_MF}.meanflow_target",),
        expression=meanflow_target_expr,
        where={r: w_r * t},
        evaluate=_target_by_code,
        domain={z: Uniform(-3, 3), v_t: Uniform(-3, 3), t: Uniform(0, 1, ends=True),
                w_r: Uniform(0, 1, ends=True), a_p: Uniform(-2, 2), b_p: Uniform(-2, 2),
                g_p: Uniform(-2, 2)},
        samples=32,
        description="meanflow_target(u, z, r, t, v) for u = a z + b t z + g r t, 0 <= r <= t <= 1",
    )
)


def _losses_mf_by_code(points):
    """The losses on an event of two coordinates whose second is exactly zero (data and noise
    0, and the model's g r t term on the first only: u, v and the target vanish there), so the
    per-example squared error is a sum over the event that a mean would halve."""
    import torch

    from ..families.meanflow import improved_meanflow_loss, meanflow_loss

    first = torch.tensor([[1.0, 0.0]], dtype=torch.float64)
    rows = []
    for j in range(points[x_m].shape[0]):
        time = points[t][j].reshape(1)
        options = dict(
            r=points[w_r][j] * time, t=time, noise=points[eps_m][j].reshape(1, 1) * first,
            adaptive_power=float(points[p_w][j]), adaptive_c=float(points[c_w][j]),
        )
        row = []
        grads = []
        for loss_fn in (meanflow_loss, improved_meanflow_loss):
            model_1d, a, b = _model_from(points, j)

            def model(point, r_, t_, model_1d=model_1d):
                return torch.cat([model_1d(point[:, :1], r_, t_), model_1d(point[:, 1:], r_, t_)
                                  - model_1d(torch.zeros_like(point[:, 1:]), r_, t_)], 1)

            loss = loss_fn(model, points[x_m][j].reshape(1, 1) * first, **options)
            row.append(loss.detach())
            grads += [g[0, 0] for g in torch.autograd.grad(loss, (a, b))]
        rows.append(torch.stack(row + grads))
    return tuple(torch.stack(rows).T)


register(
    Binding(
        derivation="D-meanflow-losses",
        code=(f"{_MF}.meanflow_loss", f"{_MF}.improved_meanflow_loss", f"{_MF}._adaptive_weight",
              f"{_MF}.meanflow_target"),
        expression=(meanflow_loss_expr, improved_loss_expr, *meanflow_gradients),
        where={r: w_r * t},
        evaluate=_losses_mf_by_code,
        domain={x_m: Uniform(-3, 3), eps_m: Uniform(-3, 3), t: Uniform(0, 1, ends=True),
                w_r: Uniform(0, 1, ends=True), a_p: Uniform(-2, 2), b_p: Uniform(-2, 2),
                g_p: Uniform(-2, 2), p_w: Uniform(0, 1, ends=True), c_w: LogUniform(1e-4, 1)},
        samples=16,
        description=(
            "meanflow_loss and improved_meanflow_loss (CondOT, u = a z + b t z + g r t, and a "
            "second coordinate that is zero throughout): values and autograd gradients in (a, b)"
        ),
    )
)


def _sampler_by_code(points):
    import torch

    from ..families.meanflow import sample

    rows = []
    for j in range(points[z].shape[0]):
        u = _gaussian_average_velocity(points[m][j], points[q][j])
        noise = points[z][j].reshape(1, 1)
        rows.append(torch.stack([sample(u, noise, steps=k).x[0, 0] for k in (1, 2, 4)]))
    return tuple(torch.stack(rows).T)


register(
    Binding(
        derivation="D-meanflow-sampler",
        code=(f"{_MF}.sample",),
        expression=(flow_map_t_to_r,) * 3,
        where={t: 1, r: 0},
        evaluate=_sampler_by_code,
        domain={z: Uniform(-4, 4), m: Uniform(-2, 2), q: LogUniform(0.1, 5)},
        samples=8,
        description=(
            "sample(u, z, steps=1, 2, 4) with the exact average velocity of N(m, q^2) on "
            "CondOT: the flow map from t = 1 to 0"
        ),
    )
)


def meanflow_gaussian_check() -> float:
    """Max |target - u| of the JVP target of the exact average velocity of Gaussian data."""
    import torch

    from ..analytic import Gaussian
    from ..core.path import GaussianPath
    from ..core.schedules import CondOT
    from ..families.meanflow import average_velocity_from_flow_map, meanflow_target

    dtype = torch.float64
    gen = torch.Generator().manual_seed(0)
    data = Gaussian(
        torch.tensor([1.5, -0.5], dtype=dtype), torch.tensor([[2.0, 0.7], [0.7, 0.4]], dtype=dtype)
    )
    marginal = data.marginal(GaussianPath(CondOT()))
    u = average_velocity_from_flow_map(marginal.flow_map, marginal.velocity)
    point = torch.randn(16, 2, generator=gen, dtype=dtype)
    low = 0.8 * torch.rand(16, generator=gen, dtype=dtype)
    high = low + (1 - low) * torch.rand(16, generator=gen, dtype=dtype)
    value, target = meanflow_target(u, point, low, high, marginal.velocity(point, high))
    return float((value - target).abs().max())
