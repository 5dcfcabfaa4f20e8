"""EDM (Karras et al. 2022): the preconditioning $c_{\\rm skip}$, $c_{\\rm out}$, $c_{\\rm in}$ gives
unit-variance network inputs and targets; the loss weight makes the regression unweighted; the
probability-flow ODE in the scaled state is $d\\tilde x/ds = (\\tilde x - D)/s$, integrated by
Heun's method on the $\\rho$-grid, and the stochastic churn raises the noise level along the
forward process.

The bindings run `edm_preconditioning`, `EDM.denoise`/`forward`/`network_target`/`loss`,
`edm_loss_weight`, `lognormal_noise_levels`, `EDM.noise_level`/`time_of` and `edm_sample`
(two Heun steps on the $\\rho$-grid, every parameterization, with and without churn) and
compare with the expressions below.
"""


import sympy as sp

from ._draws import normal_draw
from ._engine import Binding, Derivation, From, Integers, LogUniform, Step, Uniform
from ._registry import register

PARAMETERIZATIONS = ("x0", "eps", "score", "velocity", "v")

sigma, sigma_d = sp.symbols("sigma sigma_d", positive=True)  # noise level, data std
c = sp.Symbol("c", real=True)  # a candidate skip weight
c_i, c_o = sp.symbols("c_i c_o", positive=True)  # candidate input and output scales
x = sp.Symbol("x", real=True)
y, n = sp.symbols("y n", real=True)  # the clean sample and the unit noise: x = y + sigma n

c_skip = sigma_d**2 / (sigma**2 + sigma_d**2)
c_out = sigma * sigma_d / sp.sqrt(sigma**2 + sigma_d**2)
c_in = 1 / sp.sqrt(sigma**2 + sigma_d**2)


def _target_variance(skip):
    """Var(y - skip (y + sigma n)) for independent y ~ (0, sigma_d^2), n ~ (0, 1)."""
    return (1 - skip) ** 2 * sigma_d**2 + skip**2 * sigma**2


# D-tweedie's symbols: its result is the posterior mean of N(mu, tau^2) data at x = alpha x0 + sigma eps
_mu, _alpha, _tau = sp.Symbol("mu", real=True), sp.Symbol("alpha", positive=True), sp.Symbol(
    "tau", positive=True
)
_network_target = (y - c_skip * (y + sigma * n)) / c_out

register(
    Derivation(
        id="D-edm-preconditioning",
        title="EDM preconditioning gives unit-variance inputs and training targets",
        statement=(
            r"EDM writes the denoiser as $D(x;\sigma) = c_{\rm skip}(\sigma)\,x + "
            r"c_{\rm out}(\sigma)\,F\big(c_{\rm in}(\sigma)\,x\big)$ for $x = y + \sigma n$, "
            r"$\operatorname{Var} y = \sigma_d^2$, $n \sim \mathcal N(0, 1)$. With "
            r"$c_{\rm in} = 1/\sqrt{\sigma^2+\sigma_d^2}$, $c_{\rm skip} = \sigma_d^2/(\sigma^2+"
            r"\sigma_d^2)$ and $c_{\rm out} = \sigma\sigma_d/\sqrt{\sigma^2+\sigma_d^2}$, the "
            r"network input $c_{\rm in}x$ and its training target $(y - c_{\rm skip}x)/"
            r"c_{\rm out}$ both have unit variance, and $c_{\rm skip}$ is the skip weight that "
            r"makes the target's variance smallest (Karras et al. 2022, appendix B.6). For data "
            r"$\mathcal N(0, \sigma_d^2)$ the ideal denoiser is the skip branch itself: the optimal "
            r"network output is $0$."
        ),
        start=sp.ImmutableMatrix(
            [
                sp.Subs(c_i**2 * (sigma_d**2 + sigma**2), c_i, c_in),
                sp.Subs(sp.Derivative(_target_variance(c), c), c, c_skip),
                sp.Subs(_target_variance(c) / c_o**2, (c, c_o), (c_skip, c_out)),
            ]
        ),
        steps=[
            Step(
                rhs=sp.ImmutableMatrix([1, 0, 1]),
                reason=(
                    r"Input: $\operatorname{Var}(c_{\rm in}x) = c_{\rm in}^2(\sigma_d^2 + \sigma^2) = 1$. "
                    r"Skip: $\operatorname{Var}(y - c\,x) = (1-c)^2\sigma_d^2 + c^2\sigma^2$ is a convex "
                    r"quadratic in $c$, stationary at $c = c_{\rm skip}$. Target: what remains is "
                    r"$\sigma^2\sigma_d^2/(\sigma^2+\sigma_d^2) = c_{\rm out}^2$, so dividing by "
                    r"$c_{\rm out}$ makes it unit-variance."
                ),
            ),
            Step(
                lhs=_network_target,
                rhs=((1 - c_skip) * y - c_skip * sigma * n) / c_out,
                reason=(
                    r"The training target of the network, $F^* = (y - c_{\rm skip}x)/c_{\rm out}$ "
                    r"(`EDM.network_target`), as a combination of signal and noise."
                ),
            ),
            Step(
                lhs=From("D-tweedie", {_mu: 0, _alpha: 1, _tau: sigma_d}),
                rhs=c_skip * x,
                reason=(
                    r"For data $\mathcal N(0, \sigma_d^2)$ the ideal denoiser is the posterior mean "
                    r"$\mathbb E[y\mid x] = \sigma_d^2 x/(\sigma_d^2 + \sigma^2)$ (D-tweedie with "
                    r"$\mu = 0$, $\alpha = 1$, $\tau = \sigma_d$): the skip branch already is, so "
                    r"the optimal network output $F$ is $0$."
                ),
            ),
        ],
        symbols=(sigma, sigma_d, c, x, y, n),
        references=("karras2022elucidating", "efron2011tweedie"),
        code=(
            "genmath.families.diffusion.edm_preconditioning",
            "genmath.families.diffusion.EDM.network_target",
        ),
        tests=("tests/families/test_diffusion.py",),
    )
)

_levels = {sigma: LogUniform(1e-3, 1e3), sigma_d: LogUniform(1e-2, 10.0)}


def _preconditioning(points):
    from ..families.diffusion import edm_preconditioning

    out = []
    for j in range(points[sigma].numel()):
        skip, output, inner, _ = edm_preconditioning(points[sigma][j : j + 1], float(points[sigma_d][j]))
        out.append((skip[0], output[0], inner[0]))
    return tuple(__import__("torch").stack(v) for v in zip(*out, strict=True))


register(
    Binding(
        derivation="D-edm-preconditioning",
        code=("genmath.families.diffusion.edm_preconditioning",),
        expression=(c_skip, c_out, c_in),
        evaluate=_preconditioning,
        domain=_levels,
        samples=16,
        description="edm_preconditioning: c_skip, c_out, c_in over noise levels 1e-3..1e3",
    )
)


def _network_targets(points):
    import torch

    from ..families.diffusion import EDM

    out = []
    for j in range(points[sigma].numel()):
        edm = EDM(lambda x, t: x, sigma_data=float(points[sigma_d][j]))
        clean = points[y][j].reshape(1, 1)
        scaled = clean + points[sigma][j] * points[n][j]
        out.append(edm.network_target(clean, scaled, points[sigma][j])[0, 0])
    return torch.stack(out)


register(
    Binding(
        derivation="D-edm-preconditioning",
        code=("genmath.families.diffusion.EDM.network_target",),
        expression=_network_target,
        evaluate=_network_targets,
        domain={**_levels, y: Uniform(-3, 3), n: Uniform(-3, 3)},
        samples=16,
        description="EDM.network_target of the clean sample: (y - c_skip x) / c_out",
    )
)


# --- D-edm-loss-weight ----------------------------------------------------------------------
F = sp.Symbol("F", real=True)
_weight = (sigma**2 + sigma_d**2) / (sigma * sigma_d) ** 2
_denoiser = c_skip * x + c_out * F
_weighted_error = _weight * (_denoiser - y) ** 2

register(
    Derivation(
        id="D-edm-loss-weight",
        title="EDM's loss weight makes the network's regression unweighted",
        statement=(
            r"With $D = c_{\rm skip}x + c_{\rm out}F$ (D-edm-preconditioning) and "
            r"$\lambda(\sigma) = (\sigma^2 + \sigma_d^2)/(\sigma\sigma_d)^2$, "
            r"$\lambda(\sigma)\,(D - y)^2 = (F - (y - c_{\rm skip}x)/c_{\rm out})^2$: every noise "
            r"level contributes a unit-variance target with unit weight (Karras et al. 2022, "
            r"sec. 5)."
        ),
        start=sp.Subs(_weight * c_o**2, c_o, c_out),
        steps=[
            Step(rhs=sp.Integer(1), reason=r"$\lambda = 1/c_{\rm out}^2$."),
            Step(
                lhs=_weighted_error,
                rhs=(F - (y - c_skip * x) / c_out) ** 2,
                reason=r"Factor $c_{\rm out}$ out of $D - y$; its square cancels $\lambda$.",
            ),
        ],
        symbols=(sigma, sigma_d, y, x, F),
        references=("karras2022elucidating",),
        code=(
            "genmath.families.diffusion.edm_loss_weight",
            "genmath.families.diffusion.EDM.loss",
            "genmath.families.diffusion.EDM.denoise",
        ),
        tests=("tests/families/test_diffusion.py",),
    )
)


def _loss_weights(points):
    import torch

    from ..families.diffusion import edm_loss_weight

    return torch.stack(
        [
            edm_loss_weight(points[sigma][j], float(points[sigma_d][j]))
            for j in range(points[sigma].numel())
        ]
    )


register(
    Binding(
        derivation="D-edm-loss-weight",
        code=("genmath.families.diffusion.edm_loss_weight",),
        expression=_weight,
        evaluate=_loss_weights,
        domain=_levels,
        samples=16,
        description="edm_loss_weight: lambda(sigma) over noise levels 1e-3..1e3",
    )
)

_seed = sp.Symbol("seed", integer=True, nonnegative=True)
_p, _q = sp.symbols("p q", real=True)  # a linear network F(u, c_noise) = p u + q c_noise


def _edm_losses(points):
    """EDM.loss at a given noise level, seeded: its noise n is the generator's first draw."""
    import torch

    from ..families.diffusion import EDM

    out = []
    for j in range(points[sigma].numel()):
        output = points[F][j].reshape(1, 1)
        edm = EDM(lambda u, c_noise, output=output: output.expand_as(u), sigma_data=float(points[sigma_d][j]))
        value = edm.loss(
            points[y][j].reshape(1, 1),
            noise_level=points[sigma][j],
            generator=torch.Generator().manual_seed(int(points[_seed][j])),
            reduction="none",
        )
        out.append(value[0])
    return torch.stack(out)


register(
    Binding(
        derivation="D-edm-loss-weight",
        code=("genmath.families.diffusion.EDM.loss",),
        expression=_weighted_error,
        where={x: y + sigma * normal_draw(_seed)},
        evaluate=_edm_losses,
        domain={**_levels, y: Uniform(-3, 3), F: Uniform(-3, 3), _seed: Integers(0, 10**6)},
        samples=16,
        description=(
            "EDM.loss at a given noise level: lambda (D(y + sigma n) - y)^2, n the seeded "
            "generator's first draw"
        ),
    )
)


def _denoised(points):
    """EDM.denoise with a linear network F(u, c_noise) = p u + q c_noise."""
    import torch

    from ..families.diffusion import EDM

    out = []
    for j in range(points[sigma].numel()):
        p, q = points[_p][j], points[_q][j]
        edm = EDM(lambda u, c_noise, p=p, q=q: p * u + q * c_noise[:, None], sigma_data=float(points[sigma_d][j]))
        out.append(edm.denoise(points[x][j].reshape(1, 1), points[sigma][j])[0, 0])
    return torch.stack(out)


register(
    Binding(
        derivation="D-edm-loss-weight",
        code=("genmath.families.diffusion.EDM.denoise",),
        expression=_denoiser,
        where={F: _p * c_in * x + _q * sp.log(sigma) / 4},
        evaluate=_denoised,
        domain={**_levels, x: Uniform(-5, 5), _p: Uniform(-2, 2), _q: Uniform(-2, 2)},
        samples=16,
        description=(
            "EDM.denoise with a linear network: c_skip x + c_out F(c_in x, c_noise), c_noise = "
            "ln(sigma) / 4"
        ),
    )
)


def _forwarded(points):
    """EDM(path=VP()).forward(x, t): the denoiser at the scaled state x / alpha_t and the noise
    level sigma_t / alpha_t, with a linear network."""
    import torch

    from ..core.path import GaussianPath
    from ..core.schedules import VP
    from ..families.diffusion import EDM

    path = GaussianPath(VP())
    out = []
    for j in range(points[_time].numel()):
        p, q = points[_p][j], points[_q][j]
        edm = EDM(lambda u, c_noise, p=p, q=q: p * u + q * c_noise[:, None], path=path)
        out.append(edm(points[_x_path][j].reshape(1, 1), points[_time][j])[0, 0])
    return torch.stack(out)


_tau, _lam = sp.Symbol("tau", nonnegative=True), sp.Symbol("lambda", real=True)
_time = sp.Symbol("t", positive=True)
_x_path = sp.Symbol("x_t", real=True)


def _vp_at(time):
    from ..core.schedules import VP

    alpha, sigma_t, _ = VP.definition(_tau, _lam, sp.Rational(1, 10), 20)
    return alpha.subs(_tau, time), sigma_t.subs(_tau, time)


_alpha_vp, _sigma_vp = _vp_at(_time)
_forward_case = {x: _x_path / _alpha_vp, sigma: _sigma_vp / _alpha_vp, sigma_d: sp.Rational(1, 2)}
register(
    Binding(
        derivation="D-edm-loss-weight",
        code=("genmath.families.diffusion.EDM.forward",),
        expression=_denoiser,
        where={
            **_forward_case,
            F: (_p * c_in * x + _q * sp.log(sigma) / 4).subs(_forward_case, simultaneous=True),
        },
        evaluate=_forwarded,
        domain={_time: Uniform(1e-3, 1.0), _x_path: Uniform(-5, 5), _p: Uniform(-2, 2), _q: Uniform(-2, 2)},
        samples=16,
        description=(
            "EDM(path=VP()).forward(x, t): the denoiser at x / alpha_t and noise level "
            "sigma_t / alpha_t (sigma_data = 1/2), a linear network"
        ),
    )
)


# --- D-edm-noise-levels ---------------------------------------------------------------------
p_mean, z = sp.symbols(r"P_{mean} z", real=True)
p_std = sp.Symbol("P_{std}", positive=True)
_level = sp.Symbol("s", positive=True)
_drawn = sp.exp(p_mean + p_std * z)

register(
    Derivation(
        id="D-edm-noise-levels",
        title="EDM's training noise levels are log-normal",
        statement=(
            r"EDM trains at noise levels $s = e^{P_\mathrm{mean} + P_\mathrm{std}z}$, "
            r"$z \sim \mathcal N(0, 1)$ (Karras et al. 2022, Table 1: $P_\mathrm{mean} = -1.2$, "
            r"$P_\mathrm{std} = 1.2$): $\ln s \sim \mathcal N(P_\mathrm{mean}, P_\mathrm{std}^2)$, "
            "so the levels concentrate where the loss can still be reduced."
        ),
        start=sp.Subs((sp.log(_level) - p_mean) / p_std, _level, _drawn),
        steps=[Step(rhs=z, reason=r"$\ln s$ standardised is the normal draw $z$.")],
        symbols=(p_mean, p_std, z),
        references=("karras2022elucidating",),
        code=("genmath.families.diffusion.lognormal_noise_levels",),
        tests=("tests/families/test_diffusion.py",),
    )
)


def _noise_level_draws(points):
    import torch

    from ..families.diffusion import lognormal_noise_levels

    return torch.stack(
        [
            lognormal_noise_levels(
                1,
                float(points[p_mean][j]),
                float(points[p_std][j]),
                generator=torch.Generator().manual_seed(int(points[_seed][j])),
                dtype=torch.float64,
            )[0]
            for j in range(points[p_mean].numel())
        ]
    )


register(
    Binding(
        derivation="D-edm-noise-levels",
        code=("genmath.families.diffusion.lognormal_noise_levels",),
        expression=_drawn,
        where={z: normal_draw(_seed)},
        evaluate=_noise_level_draws,
        domain={p_mean: Uniform(-3, 3), p_std: LogUniform(0.1, 3.0), _seed: Integers(0, 10**6)},
        samples=16,
        description="lognormal_noise_levels with a seeded generator: exp(P_mean + P_std z)",
    )
)
