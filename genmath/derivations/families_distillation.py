"""Distillation into a one-step generator: the expected SDS, VSD and DMD gradients of an affine
generator on Gaussian data, in closed form, and DMD's normalized weighting. Bound to
`genmath.families.distillation`'s losses at single draws (z, eps), whose Gaussian expectation
each derivation takes."""

import sympy as sp

from ._chain import FromStep
from ._engine import Binding, Derivation, LogUniform, Step, Uniform
from ._registry import register
from .denoising_score_matching import _moments, _std_normal
from .elbo_gap import _Integral

z, e = sp.symbols("z epsilon", real=True)  # the generator's latent and the path's noise
a, b, mu = sp.symbols("a b mu", real=True)  # generator x = a z + b; data mean
tau, alpha, sigma = sp.symbols("tau alpha sigma", positive=True)  # data std; path scales at t
w = sp.Symbol("w", positive=True)  # the weighting w(t) at t
da, db = sp.symbols(r"\delta_a \delta_b", real=True)  # a direction in parameter space (a, b)

_x = a * z + b
_xt = alpha * _x + sigma * e
_real_var = alpha**2 * tau**2 + sigma**2  # p_t of the data N(mu, tau^2)
_fake_var = alpha**2 * a**2 + sigma**2  # p_t of the generator's law N(b, a^2)
_score_real = -(_xt - alpha * mu) / _real_var
_score_fake = -(_xt - alpha * b) / _fake_var
_eps_real, _eps_fake = -sigma * _score_real, -sigma * _score_fake
_dx = z * da + db  # d x / d(a, b) along the direction (da, db)

SDS_INTEGRAND = w * (_eps_real - e) * _dx
VSD_INTEGRAND = w * (_eps_real - _eps_fake) * _dx
DMD_INTEGRAND = w * alpha * (_score_fake - _score_real) * _dx


def _expectation(integrand):
    return _Integral(
        sp.Mul(_std_normal(z) * _std_normal(e), integrand, evaluate=False),
        (z, -sp.oo, sp.oo),
        (e, -sp.oo, sp.oo),
    )


_shift = (b - mu) * db / _real_var  # the mean's part, the same for all three
_matching = a * da * (1 / _real_var - 1 / _fake_var)  # the spread's part of VSD and DMD
_SYMBOLS = (a, b, mu, tau, alpha, sigma, w, da, db)
_TESTS = ("tests/families/test_distillation.py",)

register(
    Derivation(
        id="D-sds-gradient",
        title="Score distillation (SDS): the expected gradient of an affine generator, and its mode",
        statement=(
            r"A generator $x = az + b$, $z \sim \mathcal N(0, 1)$, noised on a Gaussian path to "
            r"$x_t = \alpha x + \sigma\varepsilon$, and data $\mathcal N(\mu, \tau^2)$, whose "
            r"$\hat\varepsilon_\mathrm{real}(x_t) = \sigma(x_t - \alpha\mu)/(\alpha^2\tau^2 + "
            r"\sigma^2)$. The SDS gradient (Poole et al. 2022) along a direction "
            r"$(\delta_a, \delta_b)$ of the parameters, $\mathbb E[w(\hat\varepsilon_\mathrm{real} "
            r"- \varepsilon)\,\partial x/\partial(a, b)\cdot\delta]$, is "
            r"$w\sigma\alpha\,(a\delta_a + (b - \mu)\delta_b)/(\alpha^2\tau^2 + \sigma^2)$: the "
            r"$-\varepsilon$ term has mean zero. At the data law ($a = \tau$, $b = \mu$) it does "
            r"not vanish; it vanishes at $a = 0$, $b = \mu$, the point mass at the data's mode. In "
            r"$d$ dimensions the same moments give $\nabla_b = w\sigma\alpha M(b - \mu)$, "
            r"$\nabla_A = w\sigma\alpha MA$, $M = (\alpha^2\Sigma + \sigma^2 I)^{-1}$."
        ),
        start=_expectation(SDS_INTEGRAND),
        steps=[
            Step(
                rhs=w * sigma * alpha * (a * da / _real_var + _shift),
                reason=(
                    r"Expand and take standard-normal moments: $\mathbb E[z] = \mathbb "
                    r"E[\varepsilon] = \mathbb E[z\varepsilon] = 0$, $\mathbb E[z^2] = 1$."
                ),
                method=_moments,
            ),
            Step(
                lhs=FromStep("D-sds-gradient", {a: tau, b: mu}, step=1),
                rhs=w * sigma * alpha * tau * da / _real_var,
                reason=r"At the data law the scale's gradient is left: SDS is not zero there.",
            ),
            Step(
                lhs=FromStep("D-sds-gradient", {a: 0, b: mu}, step=1),
                rhs=sp.Integer(0),
                reason=r"It is zero at the collapsed generator $x \equiv \mu$ (the mode).",
            ),
        ],
        symbols=_SYMBOLS,
        references=("poole2023dreamfusion",),
        code=("genmath.families.distillation.sds_loss",),
        tests=_TESTS,
    )
)

register(
    Derivation(
        id="D-vsd-gradient",
        title="Variational score distillation (VSD): the expected gradient vanishes at the data law",
        statement=(
            r"With the generator's own noised law $\mathcal N(\alpha b, \alpha^2a^2 + \sigma^2)$ "
            r"as the fake model, $\hat\varepsilon_\mathrm{fake} = \sigma(x_t - \alpha b)/"
            r"(\alpha^2a^2 + \sigma^2)$, the VSD gradient (Wang et al. 2023) "
            r"$\mathbb E[w(\hat\varepsilon_\mathrm{real} - \hat\varepsilon_\mathrm{fake})\,"
            r"\partial x/\partial(a,b)\cdot\delta]$ is $w\sigma\alpha\,[a\delta_a(1/V - 1/F) + "
            r"(b - \mu)\delta_b/V]$, $V = \alpha^2\tau^2 + \sigma^2$, $F = \alpha^2a^2 + \sigma^2$; "
            r"it vanishes exactly when the generator's law is the data's. In $d$ dimensions "
            r"$\nabla_A = w\sigma\alpha(M - N)A$, $N = (\alpha^2AA^\top + \sigma^2I)^{-1}$."
        ),
        start=_expectation(VSD_INTEGRAND),
        steps=[
            Step(
                rhs=w * sigma * alpha * (_matching + _shift),
                reason=r"Standard-normal moments, as for SDS; $\mathbb E[(x_t - \alpha b)z] = \alpha a$.",
                method=_moments,
            ),
            Step(
                lhs=FromStep("D-vsd-gradient", {a: tau, b: mu}, step=1),
                rhs=sp.Integer(0),
                reason=r"At $a = \tau$, $b = \mu$ the two marginals coincide, $F = V$.",
            ),
        ],
        symbols=_SYMBOLS,
        references=("wang2023prolificdreamer",),
        code=("genmath.families.distillation.vsd_loss",),
        tests=_TESTS,
    )
)

register(
    Derivation(
        id="D-dmd-gradient",
        title="Distribution matching distillation (DMD): the expected gradient, score form",
        statement=(
            r"DMD (Yin et al. 2024) follows the gradient of $w\,\mathrm{KL}(p^\mathrm{fake}_t\,\|\,"
            r"p^\mathrm{real}_t)$, $\mathbb E[w\,(s_\mathrm{fake} - s_\mathrm{real})(x_t)\,"
            r"\partial x_t/\partial\theta]$ with $\partial x_t/\partial\theta = \alpha\,\partial "
            r"x/\partial\theta$. For the affine generator it is $w\alpha^2[a\delta_a(1/V - 1/F) + "
            r"(b - \mu)\delta_b/V]$ — VSD's with $w\sigma$ replaced by $w\alpha$ (scores are "
            r"$-\hat\varepsilon/\sigma$) — and vanishes at the data law."
        ),
        start=_expectation(DMD_INTEGRAND),
        steps=[
            Step(
                rhs=w * alpha**2 * (_matching + _shift),
                reason="Standard-normal moments.",
                method=_moments,
            ),
            Step(
                lhs=FromStep("D-dmd-gradient", {a: tau, b: mu}, step=1),
                rhs=sp.Integer(0),
                reason=r"Equal laws, equal scores.",
            ),
        ],
        symbols=_SYMBOLS,
        references=("yin2024one", "yin2024improved"),
        code=("genmath.families.distillation.dmd_loss",),
        tests=_TESTS,
    )
)

# --- D-dmd-weighting: the normalized weight makes the direction a difference of denoisers -----
y, x_gen, d_real, d_fake = sp.symbols(r"x_t x \hat{x}_\mathrm{real} \hat{x}_\mathrm{fake}", real=True)
_error = sp.Symbol("r", positive=True)  # |x - x_real|, the real denoiser's absolute error


def _tweedie_score(denoiser):
    """The score of the denoiser's prediction (Tweedie): (alpha x0 - x_t) / sigma^2."""
    return (alpha * denoiser - y) / sigma**2


DMD_WEIGHTED = (sigma**2 / alpha**2) / _error * alpha * (_tweedie_score(d_fake) - _tweedie_score(d_real))

register(
    Derivation(
        id="D-dmd-weighting",
        title="DMD's normalized weighting: the update is a difference of denoisers",
        statement=(
            r"DMD's weight $w_t = \frac{\sigma_t^2}{\alpha_t^2}\frac{D}{\|x - \hat "
            r"x_\mathrm{real}\|_1}$ ($D$ the event size; one coordinate here, $r = |x - \hat "
            r"x_\mathrm{real}|$) with scores read from denoisers by Tweedie's formula, $s = (\alpha "
            r"\hat x - x_t)/\sigma^2$, turns the direction $w_t\alpha_t(s_\mathrm{fake} - "
            r"s_\mathrm{real})$ into $(\hat x_\mathrm{fake} - \hat x_\mathrm{real})/r$: the "
            r"denoisers' difference over the real denoiser's mean absolute error, free of the "
            r"path's scales (the normalization of Yin et al. 2024; genmath's reading of it)."
        ),
        start=DMD_WEIGHTED,
        steps=[
            Step(
                rhs=(d_fake - d_real) / _error,
                reason=r"$x_t$ cancels in the difference of scores; $\sigma^2$ and $\alpha^2$ cancel.",
            )
        ],
        symbols=(alpha, sigma, y, x_gen, d_real, d_fake, _error),
        references=("yin2024one", "yin2024improved"),
        code=("genmath.families.distillation.dmd_loss",),
        tests=_TESTS,
    )
)

# --------------------------------------------------------------------------- bindings

_t = sp.Symbol("t", positive=True)
_CONDOT = {alpha: 1 - _t, sigma: _t}  # genmath's CondOT(): alpha_t = 1 - t, sigma_t = t
_MARGINAL_METHOD = {"eps": "eps", "score": "score", "x0": "denoise", "velocity": "velocity", "v": None}


def _gradient_by_code(loss_name, parameterization, weighting):
    """The loss's autograd gradient in (a, b) along (da, db), at the draw (z, eps) and time t,
    with the exact marginal models of the data and of the generator's law."""

    def evaluate(points):
        import torch

        from ..analytic import Gaussian
        from ..core.path import GaussianPath
        from ..core.schedules import CondOT
        from ..families import distillation

        path = GaussianPath(CondOT())
        loss = getattr(distillation, f"{loss_name}_loss")
        out = []
        for j in range(points[z].shape[0]):
            p = {s: points[s][j] for s in (a, b, mu, tau, w, z, e, da, db, _t)}
            scale = p[a].clone().requires_grad_(True)
            shift = p[b].clone().requires_grad_(True)
            x = (scale * p[z] + shift).reshape(1, 1)
            models = [Gaussian(p[mu].reshape(1), (p[tau] ** 2).reshape(1, 1)).marginal(path)]
            if loss_name != "sds":
                models.append(Gaussian(p[b].reshape(1), (p[a] ** 2).reshape(1, 1)).marginal(path))
            method = _MARGINAL_METHOD[parameterization]
            fields = [getattr(m, method) for m in models]
            if weighting == "graph":
                # a weighting whose value is w but which carries the generator's graph (a
                # learned w(t) sharing its parameters, say): the direction is still a constant
                # of the gradient, which only its stop-gradient guarantees
                def weight(t, value=float(p[w]), scale=scale):
                    return torch.full_like(t, value) * (scale / scale.detach())
            elif weighting == "callable":
                def weight(t, value=float(p[w])):
                    return torch.full_like(t, value)
            else:
                weight = float(p[w])
            value = loss(
                x, *fields, path, parameterization=parameterization, t=p[_t].reshape(1),
                weighting=weight, eps=p[e].reshape(1, 1),
            )
            ga, gb = torch.autograd.grad(value, (scale, shift))
            out.append(ga * p[da] + gb * p[db])
        return torch.stack(out)

    return evaluate


_GRADIENT_DOMAIN = {
    a: Uniform(0.2, 2.5),
    b: Uniform(-2, 2),
    mu: Uniform(-2, 2),
    tau: LogUniform(0.1, 3),
    w: LogUniform(0.1, 10),
    z: Uniform(-3, 3),
    e: Uniform(-3, 3),
    da: Uniform(-1, 1),
    db: Uniform(-1, 1),
    _t: Uniform(0.05, 0.95),
}


def _register_gradients():
    for loss_name, integrand, cases in (
        ("sds", SDS_INTEGRAND, (("eps", "number"), ("x0", "callable"), ("velocity", "number"),
                                ("eps", "graph"))),
        ("vsd", VSD_INTEGRAND, (("eps", "callable"), ("score", "number"))),
        ("dmd", DMD_INTEGRAND, (("score", "number"), ("x0", "callable"), ("eps", "number"))),
    ):
        for parameterization, weighting in cases:
            register(
                Binding(
                    derivation=f"D-{loss_name}-gradient",
                    code=(f"genmath.families.distillation.{loss_name}_loss",),
                    expression=integrand,
                    where=_CONDOT,
                    evaluate=_gradient_by_code(loss_name, parameterization, weighting),
                    domain=_GRADIENT_DOMAIN,
                    samples=8,
                    description=(
                        f"{loss_name}_loss on CondOT, exact Gaussian models in the "
                        f"{parameterization!r} parameterization, w(t) as a {weighting}: the "
                        "autograd gradient in (a, b) at the draw (z, eps), along (da, db)"
                    ),
                )
            )


_register_gradients()


def _dmd_weighted_by_code(points):
    """dmd_loss with weighting="dmd" and constant denoisers: its gradient in x."""
    import torch

    from ..core.path import GaussianPath
    from ..core.schedules import CondOT
    from ..families.distillation import dmd_loss

    path = GaussianPath(CondOT())
    t = points[_t]
    eps = ((points[y] - (1 - t) * points[x_gen]) / t)[:, None]  # so that x_t is the point's
    x = points[x_gen][:, None].clone().requires_grad_(True)
    real, fake = points[d_real][:, None], points[d_fake][:, None]
    value = dmd_loss(x, lambda xt, s: real, lambda xt, s: fake, path, t=t, eps=eps, reduction="none")
    (grad,) = torch.autograd.grad(value.sum(), x)
    return grad[:, 0]


register(
    Binding(
        derivation="D-dmd-weighting",
        code=("genmath.families.distillation.dmd_loss",),
        expression=DMD_WEIGHTED,
        where={**_CONDOT, _error: sp.Abs(x_gen - d_real)},
        evaluate=_dmd_weighted_by_code,
        domain={
            _t: Uniform(0.05, 0.95),
            y: Uniform(-3, 3),
            x_gen: Uniform(-3, 3),
            d_real: Uniform(-3, 3),
            d_fake: Uniform(-3, 3),
        },
        samples=16,
        description="dmd_loss's gradient in x with weighting='dmd' and constant denoisers",
    )
)
