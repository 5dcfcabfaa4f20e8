"""The five parameterizations of a Gaussian path and the conversions between them."""

import sympy as sp

from ._engine import Binding, Check, Derivation, Step, Uniform, sound_rewrite
from ._registry import register

t = sp.Symbol("t", real=True)
x_t, x0, eps, pred = sp.symbols("x_t x_0 epsilon y", real=True)
a, s = sp.symbols("alpha sigma", positive=True)  # alpha_t, sigma_t inside the safe interval
da, ds = sp.symbols(r"\dot{alpha} \dot{sigma}", real=True)  # their time derivatives
alpha_f, sigma_f = sp.Function("alpha", positive=True), sp.Function("sigma", positive=True)

NAMES = ("x0", "eps", "score", "velocity", "v")

# Each prediction as a function of the clean sample, given x_t = alpha x0 + sigma eps.
_eps_of_x0 = (x_t - a * x0) / s
_from_x0 = {
    "x0": lambda c: c,
    "eps": lambda c: (x_t - a * c) / s,
    "score": lambda c: -(x_t - a * c) / s**2,
    "velocity": lambda c: da * c + ds * (x_t - a * c) / s,
    "v": lambda c: a * (x_t - a * c) / s - s * c,
}
# ... and back: each is affine in (x_t, prediction), solved for x0.
_to_x0 = {
    "x0": lambda y: y,
    "eps": lambda y: (x_t - s * y) / a,
    "score": lambda y: (x_t + s**2 * y) / a,
    "velocity": lambda y: (s * y - ds * x_t) / (da * s - ds * a),
    "v": lambda y: (a * x_t - s * y) / (a**2 + s**2),
}


def _log_normal(value, mean, var):
    return -sp.log(2 * sp.pi * var) / 2 - (value - mean) ** 2 / (2 * var)


@sound_rewrite("sympy's doit, expand and cancel, which keep the value")
def _cancel_entries(entry):
    """``doit``, then ``expand``, else ``cancel`` (the rational-function normal form)."""
    entry = sp.sympify(entry).doit()
    expanded = sp.expand(entry)
    return expanded if expanded == 0 else sp.cancel(entry)


_round_trips = [[_from_x0[dst](_to_x0[src](_from_x0[src](x0))) for dst in NAMES] for src in NAMES]
_direct = [[_from_x0[dst](x0) for dst in NAMES] for _ in NAMES]
# each conversion to x0 is affine in the prediction and in x_t: no second derivatives
_curvature = [
    [sp.Derivative(_to_x0[name](pred), pred, 2), sp.Derivative(_to_x0[name](pred), x_t, 2)]
    for name in NAMES
]
# the conditional score and velocity of the path at x_t = alpha x0 + sigma eps, which the
# rows "score" and "velocity" of the table are the posterior means of
_x_t_of_pair = a * x0 + s * eps
_conditional = [
    sp.Subs(sp.Derivative(_log_normal(pred, a * x0, s**2), pred), pred, _x_t_of_pair),
    sp.Derivative(alpha_f(t) * x0 + sigma_f(t) * eps, t),
    *[sp.Integer(0)] * 5,
]
CONDITIONAL_VELOCITY = sp.diff(alpha_f(t), t) * x0 + sp.diff(sigma_f(t), t) * eps

register(
    Derivation(
        id="D-parameterizations",
        title="Conversions between x0, eps, score, velocity and v on a Gaussian path",
        statement=(
            r"On $x_t = \alpha_t x_0 + \sigma_t \varepsilon$, a network may predict $x_0$, "
            r"$\varepsilon$, the score $\nabla\log p_t = -\mathbb E[\varepsilon\mid x_t]/\sigma_t$, the "
            r"velocity $\mathbb E[\dot\alpha_t x_0 + \dot\sigma_t\varepsilon \mid x_t]$ or "
            r"$v = \alpha_t\varepsilon - \sigma_t x_0$ (Salimans & Ho 2022). Given $x_t$, each is an "
            "affine function of any other, and the conversion table is consistent: converting from "
            "any source to any target agrees with the direct formula, and every conversion "
            r"composed with its inverse is the identity. The velocity conversion needs "
            r"$\dot\alpha_t\sigma_t \ne \dot\sigma_t\alpha_t$ (true when the log-SNR is strictly "
            "monotone). The last row derives the score's and the velocity's rows: the conditional "
            r"score of $\mathcal N(x_t; \alpha_t x_0, \sigma_t^2)$ at $x_t = \alpha_t x_0 + "
            r"\sigma_t\varepsilon$ is $-\varepsilon/\sigma_t$, and the conditional velocity of the "
            r"path is $\dot\alpha_t x_0 + \dot\sigma_t\varepsilon$; averaging over $x_0 \mid x_t$ "
            "gives the rows."
        ),
        start=sp.ImmutableMatrix(
            [[*_round_trips[k], *_curvature[k]] for k in range(len(NAMES))] + [_conditional]
        ),
        steps=[
            Step(
                rhs=sp.ImmutableMatrix(
                    [[*_direct[k], 0, 0] for k in range(len(NAMES))] + [_conditional]
                ),
                reason=(
                    "Rows 1–5, source = row, target = column: take the source's prediction of a "
                    "clean sample $x_0$, convert it to $x_0$ and on to the target; every entry equals "
                    "the target computed directly from $x_0$ (so source→target→source is the "
                    "identity too). Columns 6–7: the second derivatives of each conversion to $x_0$ in "
                    "the prediction and in $x_t$ vanish, so it is affine and a network's output layer "
                    "can absorb it."
                ),
                method=_cancel_entries,
            ),
            Step(
                rhs=sp.ImmutableMatrix(
                    [[*_direct[k], 0, 0] for k in range(len(NAMES))]
                    + [[-eps / s, CONDITIONAL_VELOCITY, *[0] * 5]]
                ),
                reason=(
                    r"Last row: the conditional score $-(x_t - \alpha_t x_0)/\sigma_t^2$ of "
                    r"$\mathcal N(x_t; \alpha_t x_0, \sigma_t^2)$ at $x_t = \alpha_t x_0 + "
                    r"\sigma_t\varepsilon$ is $-\varepsilon/\sigma_t$, and the time derivative of "
                    r"the path at fixed $(x_0, \varepsilon)$ is $\dot\alpha_t x_0 + "
                    r"\dot\sigma_t\varepsilon$ (the rows 'score' and 'velocity' are their posterior "
                    "means)."
                ),
                method=_cancel_entries,
            ),
        ],
        symbols=(x_t, x0, eps, a, s, da, ds),
        references=(
            "salimans2022progressive",
            "kingma2021variational",
            "ho2020denoising",
            "lipman2023flow",
        ),
        code=(
            "genmath.core.path.GaussianPath.convert",
            "genmath.core.path.GaussianPath.conditional_velocity",
            "genmath.core.path.GaussianPath.sample",
        ),
        tests=("tests/core/test_path.py",),
    )
)
# ------------------------------------------------------------------------ bindings
def _time_where(case):
    """The schedule's scales put into the table's symbols (alpha, sigma and their rates)."""
    from ._path_cases import T

    a_, s_, da_, ds_ = case.at(T)
    return {a: a_, s: s_, da: da_, ds: ds_}


def _convert_expressions(pairs):
    """Into x0: the table's inverse row of each source, at a free prediction y; into any
    other target: its row at x0, the sources taking turns over the points."""
    into_x0 = tuple(_to_x0[src](pred) for src in pairs.get("x0", ()))
    others = tuple(_from_x0[dst](x0) for dst in NAMES if dst != "x0" and pairs.get(dst))
    return into_x0 + others


def _convert_by_code(label, pairs):
    """``pairs[dst]``: the sources converted to ``dst`` (see `_convert_expressions`)."""

    def evaluate(points):
        import torch

        from ._path_cases import T, scale_case_values, shared_path
        from .samplers import _table

        _, from_x0 = _table()
        schedule, scale_fn = scale_case_values(label)
        path = shared_path(label)
        tt, xt, clean = points[T], points[x_t][:, None], points[x0][:, None]
        out = [path.convert(points[pred][:, None], xt, tt, src, "x0")[:, 0] for src in pairs.get("x0", ())]
        scales_t = [v[:, None] for v in scale_fn(tt)]
        for dst in NAMES:
            sources = pairs.get(dst)
            if dst == "x0" or not sources:
                continue
            value = torch.empty_like(tt)
            for k, src in enumerate(sources):
                rows = torch.arange(k, tt.shape[0], len(sources))
                y = from_x0[src](xt[rows], clean[rows], *(v[rows] for v in scales_t))
                value[rows] = path.convert(y, xt[rows], tt[rows], src, dst)[:, 0]
            out.append(value)
        return tuple(out)

    return evaluate


def _register_convert_bindings():
    from ._path_cases import SCHEDULES, T, shared_path

    # the conversions are generated per schedule from the same 2x2 solve: the four built-in
    # families cover its branches (a constant alpha, derivatives that vanish, trigonometry)
    for case in (c for c in SCHEDULES if c.label in ("CondOT()", "VP()", "CosineVP()", "VE()")):
        # the bindings' own shared path: the conversions it derives here to find the finite
        # directions are the ones its bindings then run (derived once, not twice)
        path = shared_path(case.label)
        lo, hi = path.schedule.safe_interval
        inside = {dst: [src for src in NAMES if src != dst] for dst in NAMES}
        segments = [("the safe interval", Uniform(lo, hi, ends=True), inside)]
        # beyond the safe interval only the directions that stay finite at that end
        for end, low, high in ((0, 0.0, lo), (1, hi, 1.0)):
            if high - low <= 0 or case.label not in ("CondOT()", "VP()"):
                continue
            pairs = {
                dst: [
                    src for src in NAMES
                    if src != dst and (path._direction(src, dst).t_min if end == 0
                                       else 1 - path._direction(src, dst).t_max) == 0.0
                ]
                for dst in NAMES
            }
            # inside the segment, not at its outer end: the table's rows in terms of x0 divide
            # by the scale that vanishes there, though the composed conversion does not
            segments.append((f"({low:g}, {high:g}) beyond it", Uniform(low, high), pairs))
        for where_label, spec, pairs in segments:
            expressions = _convert_expressions(pairs)
            register(
                Binding(
                    derivation="D-parameterizations",
                    code=("genmath.core.path.GaussianPath.convert",),
                    expression=expressions,
                    where=_time_where(case),
                    evaluate=_convert_by_code(case.label, pairs),
                    domain={T: spec, x_t: Uniform(-4, 4), x0: Uniform(-4, 4), pred: Uniform(-4, 4)},
                    samples=12,
                    description=(
                        f"GaussianPath({case.label}).convert into each target on {where_label}, "
                        "point j from source j mod (number of sources)"
                    ),
                )
            )


def _path_by_code(label):
    def evaluate(points):
        from ._path_cases import T, shared_path

        path = shared_path(label)
        tt, clean, noise = points[T], points[x0][:, None], points[eps][:, None]
        xt, _ = path.sample(clean, tt, eps=noise)
        return xt[:, 0], path.conditional_velocity(clean, noise, tt)[:, 0]

    return evaluate


def _register_path_bindings():
    from ._path_cases import SCHEDULES, T

    for case in SCHEDULES:
        low, high = case.finite
        register(
            Binding(
                derivation="D-parameterizations",
                code=(
                    "genmath.core.path.GaussianPath.sample",
                    "genmath.core.path.GaussianPath.conditional_velocity",
                ),
                expression=(_x_t_of_pair, CONDITIONAL_VELOCITY),
                where={
                    **_time_where(case),
                    sp.Derivative(alpha_f(t), t): case.at(T)[2],
                    sp.Derivative(sigma_f(t), t): case.at(T)[3],
                },
                evaluate=_path_by_code(case.label),
                domain={T: Uniform(max(low, 1e-9), high), x0: Uniform(-4, 4), eps: Uniform(-4, 4)},
                samples=12,
                description=(
                    f"GaussianPath({case.label}).sample with given noise and .conditional_velocity"
                ),
            )
        )


_register_convert_bindings()
_register_path_bindings()


def _convert_matches_table() -> float:
    """Largest gap between `GaussianPath.convert` and this table, over all 20 directions, four
    schedules and times inside each schedule's safe interval."""
    import torch

    from ..core.path import GaussianPath
    from ..core.schedules import VE, VP, CondOT, CosineVP

    generator = torch.Generator().manual_seed(0)
    x0_value = torch.randn(6, 3, dtype=torch.float64, generator=generator)
    eps_value = torch.randn(6, 3, dtype=torch.float64, generator=generator)
    table = {
        name: sp.lambdify((x_t, x0, a, s, da, ds), _from_x0[name](x0), "math") for name in NAMES
    }
    worst = 0.0
    for schedule in (CondOT(), VP(), CosineVP(), VE(0.01, 50.0)):
        path = GaussianPath(schedule)
        lo, hi = schedule.safe_interval
        t = lo + (hi - lo) * torch.linspace(0.05, 0.95, 6, dtype=torch.float64)
        coeffs = [
            c.reshape(-1, 1)
            for c in (path.alpha(t), path.sigma(t), path.d_alpha(t), path.d_sigma(t))
        ]
        xt_value = coeffs[0] * x0_value + coeffs[1] * eps_value
        values = {name: table[name](xt_value, x0_value, *coeffs) for name in NAMES}
        for src in NAMES:
            for dst in NAMES:
                converted = path.convert(values[src], xt_value, t, src, dst)
                scale = 1.0 + values[dst].abs()
                worst = max(worst, float(((converted - values[dst]).abs() / scale).max()))
    return worst


register(
    Check(
        id="C-parameterizations-table",
        title="GaussianPath.convert agrees with the conversion table of D-parameterizations",
        function=_convert_matches_table,
        tolerance=1e-9,
        code=("genmath.core.path.GaussianPath.convert",),
        tests=("tests/derivations/test_seed_derivations.py", "tests/core/test_path.py"),
        derivation="D-parameterizations",
    )
)
