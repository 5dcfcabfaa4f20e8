"""The five parameterizations of a Gaussian path and the conversions between them."""

import sympy as sp

from ._engine import Check, Derivation, Step
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


_round_trips = sp.Matrix(
    [[_from_x0[dst](_to_x0[src](_from_x0[src](x0))) for dst in NAMES] for src in NAMES]
)
_direct = sp.Matrix([[_from_x0[dst](x0) for dst in NAMES] for _ in NAMES])

register(
    Derivation(
        id="D-parameterizations",
        title="Conversions between x0, eps, score, velocity and v on a Gaussian path",
        statement=(
            r"On $x_t = \alpha_t x_0 + \sigma_t \varepsilon$, a network may predict $x_0$, "
            r"$\varepsilon$, the score $\nabla\log p_t = -\varepsilon/\sigma_t$, the velocity "
            r"$\dot\alpha_t x_0 + \dot\sigma_t\varepsilon$ or $v = \alpha_t\varepsilon - "
            r"\sigma_t x_0$ (Salimans & Ho 2022). Given $x_t$, each is an affine function of any "
            "other, and the conversion table is consistent: converting from any source to any "
            "target agrees with the direct formula, and every conversion composed with its "
            r"inverse is the identity. The velocity conversion needs "
            r"$\dot\alpha_t\sigma_t \ne \dot\sigma_t\alpha_t$ (true when the log-SNR is strictly "
            "monotone)."
        ),
        start=sp.Subs(sp.Derivative(_log_normal(pred, a * x0, s**2), pred), pred, a * x0 + s * eps),
        steps=[
            Step(
                rhs=-eps / s,
                reason=(
                    r"The conditional score $\nabla_{x_t}\log\mathcal N(x_t; \alpha_t x_0, "
                    r"\sigma_t^2)$ at $x_t = \alpha_t x_0 + \sigma_t\varepsilon$ is "
                    r"$-\varepsilon/\sigma_t$; averaging over $x_0 \mid x_t$ gives "
                    r"score $= -\mathbb E[\varepsilon\mid x_t]/\sigma_t$."
                ),
            ),
            Step(
                lhs=sp.Derivative(alpha_f(t) * x0 + sigma_f(t) * eps, t),
                rhs=sp.Derivative(alpha_f(t), t) * x0 + sp.Derivative(sigma_f(t), t) * eps,
                reason=(
                    r"The conditional velocity of the path is $\dot\alpha_t x_0 + \dot\sigma_t "
                    r"\varepsilon$; its conditional mean given $x_t$ is the marginal velocity."
                ),
            ),
            Step(
                lhs=sp.Subs(da * _to_x0["eps"](eps) + ds * eps, x_t, a * x0 + s * eps),
                rhs=sp.Subs(da * x0 + ds * _eps_of_x0, x_t, a * x0 + s * eps),
                reason=(
                    r"Velocity from an $\varepsilon$-prediction, "
                    r"$\dot\alpha_t (x_t - \sigma_t\varepsilon)/\alpha_t + \dot\sigma_t\varepsilon$, "
                    r"equals velocity from an $x_0$-prediction when both describe the same "
                    r"$x_t$ (here: $x_t$ expressed by $x_0$ and $\varepsilon$)."
                ),
            ),
            Step(
                lhs=_round_trips,
                rhs=_direct,
                reason=(
                    "The table: row = source, column = target. Take the source's prediction of "
                    "a clean sample $x_0$, convert it to $x_0$ and on to the target; every entry "
                    "equals the target computed directly from $x_0$ (so source→target→source is "
                    "the identity too)."
                ),
            ),
            Step(
                lhs=sp.Matrix([sp.diff(_to_x0[name](pred), pred, 2) for name in NAMES]).col_join(
                    sp.Matrix([sp.diff(_to_x0[name](pred), x_t, 2) for name in NAMES])
                ),
                rhs=sp.zeros(10, 1),
                reason=(
                    "Every conversion to $x_0$ is affine in the prediction and in $x_t$ (no "
                    "second derivatives), so a network's output layer can absorb any of them."
                ),
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
        ),
        tests=("tests/core/test_path.py",),
    )
)


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
