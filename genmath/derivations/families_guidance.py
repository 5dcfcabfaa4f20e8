"""Classifier-free guidance: it commutes with the conversion between parameterizations, and the
guided score is not the score of a path marginal. Bound to `guide` and `flow_matching.guided`."""

import sympy as sp

from ._chain import FromStep
from ._engine import CITED, Binding, Derivation, LogUniform, Step, Uniform
from ._registry import register

PARAMETERIZATIONS = ("x0", "eps", "score", "velocity", "v")
_tau, _lam = sp.Symbol("tau", nonnegative=True), sp.Symbol("lambda", real=True)

# --- D-cfg-guided: guidance commutes with every parameterization ----------------------------
f_c, f_n, w, c_x, c_p, y = sp.symbols(r"f_c f_\varnothing w c_x c_p x", real=True)
_guided = f_n + w * (f_c - f_n)

register(
    Derivation(
        id="D-cfg-guided",
        title="Classifier-free guidance commutes with the conversion between parameterizations",
        statement=(
            r"Classifier-free guidance combines a conditional and an unconditional prediction as "
            r"$f_w = f_\varnothing + w\,(f_c - f_\varnothing)$ (Ho & Salimans 2021). Every "
            r"conversion between parameterizations is affine in the prediction, "
            r"$C(f) = c_x x + c_p f$ with coefficients that do not depend on the model "
            r"(D-parameterizations), and the weights $(1 - w) + w = 1$: so $C(f_w) = "
            r"C(f_\varnothing) + w\,(C(f_c) - C(f_\varnothing))$, guiding then converting equals "
            r"converting then guiding, in any parameterization; guided $\varepsilon$ is the "
            r"guided score $\nabla\log p_t + w(\nabla\log p_t(\cdot\mid c) - \nabla\log p_t)$."
        ),
        start=c_x * y + c_p * _guided,
        steps=[
            Step(
                rhs=(c_x * y + c_p * f_n) + w * ((c_x * y + c_p * f_c) - (c_x * y + c_p * f_n)),
                reason=r"Distribute $c_p$; $c_x x = (1 - w)c_x x + w\,c_x x$.",
            ),
        ],
        symbols=(f_c, f_n, w, c_x, c_p, y),
        references=("ho2022classifier", "salimans2022progressive"),
        code=("genmath.families.diffusion.guide", "genmath.families.flow_matching.guided"),
        tests=("tests/families/test_diffusion.py",),
    )
)


def _guide_values(points):
    import torch

    from ..families.diffusion import guide
    from ..families.flow_matching import guided

    conditional, unconditional = points[f_c][:, None], points[f_n][:, None]
    x = torch.zeros_like(conditional)
    labels = torch.zeros(conditional.shape[0], dtype=torch.long)
    out = []
    for j in range(conditional.shape[0]):
        scale = float(points[w][j])

        def model(x, t, condition, j=j):
            return (unconditional if condition is None else conditional)[j : j + 1].expand_as(x)

        model.has_null_condition = True  # its branch model(x, t, None) is unconditional
        out.append(guide(model, labels[j : j + 1], scale)(x[j : j + 1], 0.5)[0, 0])
    explicit = guided(lambda x, t: conditional, lambda x, t: unconditional, points[w][:, None])
    return torch.stack(out), explicit(x, 0.5)[:, 0]


register(
    Binding(
        derivation="D-cfg-guided",
        code=("genmath.families.diffusion.guide", "genmath.families.flow_matching.guided"),
        expression=(_guided, _guided),
        evaluate=_guide_values,
        domain={f_c: Uniform(-3, 3), f_n: Uniform(-3, 3), w: Uniform(1, 8, ends=True)},
        samples=16,
        description=(
            "guide (the model's own unconditional branch; w = 1 exactly, its shortcut, among "
            "the points) and flow_matching.guided: f_n + w (f_c - f_n)"
        ),
    )
)


def _conversion_coefficients(name):
    """(c_x, c_p) of the conversion x0 -> ``name`` from D-parameterizations' table."""
    from .parameterizations import _from_x0
    from .parameterizations import x_t as xt_symbol

    prediction = sp.Symbol("c", real=True)
    converted = sp.expand(_from_x0[name](prediction))
    return sp.diff(converted, xt_symbol), sp.diff(converted, prediction)


def _vp_scales(time):
    """(alpha, sigma, d alpha, d sigma) of VP() at ``time`` from its sympy definition, in
    D-parameterizations' symbols."""
    from ..core.schedules import VP
    from .parameterizations import a as alpha_symbol
    from .parameterizations import da, ds
    from .parameterizations import s as sigma_symbol

    alpha, sigma, _ = VP.definition(_tau, _lam, sp.Rational(1, 10), 20)
    return {
        alpha_symbol: alpha.subs(_tau, time),
        sigma_symbol: sigma.subs(_tau, time),
        da: sp.diff(alpha, _tau).subs(_tau, time),
        ds: sp.diff(sigma, _tau).subs(_tau, time),
    }


_time = sp.Symbol("t", positive=True)


def _guided_then_converted(name):
    def evaluate(points):
        import torch

        from ..core.path import GaussianPath
        from ..core.schedules import VP
        from ..families.diffusion import guide

        path = GaussianPath(VP())
        conditional, unconditional = points[f_c][:, None], points[f_n][:, None]
        labels = torch.zeros(conditional.shape[0], dtype=torch.long)

        def conditional_model(x, t, condition):
            return conditional

        out = []
        for j in range(conditional.shape[0]):
            scale = float(points[w][j])
            field = guide(conditional_model, labels, scale, unconditional=lambda x, t: unconditional)
            x, t = points[y][:, None], points[_time]
            out.append(path.convert(field(x, t), x, t, "x0", name)[j, 0])
        return torch.stack(out)

    return evaluate


def _register_conversion_bindings():
    for name in PARAMETERIZATIONS[1:]:
        cx, cp = _conversion_coefficients(name)
        scales = _vp_scales(_time)
        register(
            Binding(
                derivation="D-cfg-guided",
                code=("genmath.families.diffusion.guide",),
                expression=(c_x * y + c_p * f_n) + w * ((c_x * y + c_p * f_c) - (c_x * y + c_p * f_n)),
                where={c_x: cx.subs(scales), c_p: cp.subs(scales)},
                evaluate=_guided_then_converted(name),
                domain={
                    f_c: Uniform(-3, 3),
                    f_n: Uniform(-3, 3),
                    w: Uniform(-1, 8),
                    y: Uniform(-3, 3),
                    _time: Uniform(0.01, 0.99),
                },
                samples=8,
                description=(
                    f"guide on x0 predictions, then GaussianPath(VP()).convert to {name!r}: the "
                    "guided conversion of each prediction"
                ),
            )
        )


_register_conversion_bindings()


# --- D-cfg-not-a-marginal -------------------------------------------------------------------
u, w_g = sp.symbols("u w", positive=True)  # u = alpha_t^2 on a VP path
a_var, b_var = sp.symbols("a b", positive=True)  # conditional and unconditional data variances


def _marginal_variance(data_variance):
    """1-D Gaussian data of this variance on a VP path: Var x_t = alpha^2 v + sigma^2."""
    return 1 + (data_variance - 1) * u


# the guided score's slope is -1 / V_w
guided_inverse_slope = 1 / ((1 - w_g) / _marginal_variance(b_var) + w_g / _marginal_variance(a_var))

register(
    Derivation(
        id="D-cfg-not-a-marginal",
        title="Classifier-free guidance: the guided score is not the score of a path marginal",
        statement=(
            r"Take 1-D Gaussian data, conditional $\mathcal N(m_c, a)$ and unconditional "
            r"$\mathcal N(m_\varnothing, b)$, on a VP path ($u = \alpha_t^2$, $\sigma_t^2 = 1 - u$). "
            r"The guided score $(1-w)\nabla\log p_t + w\nabla\log p_t(\cdot\mid c)$ is affine in "
            r"$x$ with slope $-1/V_w(u)$, $1/V_w = (1-w)/(1 + (b-1)u) + w/(1 + (a-1)u)$. The "
            r"score of the path marginal of any data whose marginals have affine scores — "
            r"Gaussian data $\mathcal N(m, r)$, by Cramér's theorem the only ones — has "
            r"$V(u) = 1 + (r-1)u$, affine in $u$: $V_0$, the case $w = 0$. "
            r"$V_w''(0) = 2w(w-1)(a-b)^2 \neq 0$ for $w \notin \{0, 1\}$, $a \neq b$: no data "
            r"distribution has the guided scores as its path's scores, so guided sampling is not "
            r"sampling a path (Ho & Salimans 2021 sample $\propto p(x\mid c)^w p(x)^{1-w}$ only "
            "heuristically)."
        ),
        start=sp.Subs(sp.Derivative(guided_inverse_slope, (u, 2)), u, 0),
        steps=[
            Step(
                rhs=2 * w_g * (w_g - 1) * (a_var - b_var) ** 2,
                reason=(
                    r"The guided inverse slope curves: its second derivative at $u = 0$ vanishes "
                    r"only for $w \in \{0, 1\}$ or equal variances."
                ),
            ),
            Step(
                lhs=FromStep("D-cfg-not-a-marginal", {w_g: 0}, step=1),
                rhs=sp.Integer(0),
                tag=CITED,
                theorem=(
                    "Cramér's decomposition theorem: if x_t = alpha x_0 + sigma eps is Gaussian "
                    "with eps Gaussian and independent of x_0, then x_0 is Gaussian"
                ),
                reference="cramer1936eigenschaft",
                reason=(
                    r"A marginal with an affine score is Gaussian, so only Gaussian data could "
                    r"match the guided scores, and their inverse slopes are affine in $u$: the "
                    r"curvature $0$ of $V_0 = 1 + (b - 1)u$, which the guided one is not."
                ),
            ),
        ],
        symbols=(u, w_g, a_var, b_var),
        references=("ho2022classifier", "cramer1936eigenschaft"),
        code=("genmath.families.diffusion.guide",),
        tests=("tests/families/test_diffusion.py",),
    )
)


def _guided_slopes(points):
    """guide() on the exact scores of two 1-D Gaussians per point: -1 / slope of the result."""
    import torch

    from ..families.diffusion import guide

    uu = points[u][:, None]
    means = torch.tensor([0.7, -0.4], dtype=torch.float64)

    def score(x, variance, m):
        return -(x - uu.sqrt() * m) / (1 + (variance - 1) * uu)

    def model(x, t, condition):
        if condition is None:
            return score(x, points[b_var][:, None], means[1])
        return score(x, points[a_var][:, None], means[0])

    labels = torch.zeros(uu.shape[0], dtype=torch.long)
    x = torch.zeros_like(uu)
    out = []
    for j in range(uu.shape[0]):
        field = guide(model, labels, float(points[w_g][j]), unconditional=lambda x, t: model(x, t, None))
        slope = field(x + 1, 0.5) - field(x, 0.5)
        out.append(-1 / slope[j, 0])
    return torch.stack(out)


register(
    Binding(
        derivation="D-cfg-not-a-marginal",
        code=("genmath.families.diffusion.guide",),
        expression=guided_inverse_slope,
        evaluate=_guided_slopes,
        domain={
            u: Uniform(0.01, 0.99),
            w_g: Uniform(0.0, 8.0),
            a_var: LogUniform(0.05, 20.0),
            b_var: LogUniform(0.05, 20.0),
        },
        samples=8,
        description="-1 / the slope of guide() on exact Gaussian scores: V_w",
    )
)
