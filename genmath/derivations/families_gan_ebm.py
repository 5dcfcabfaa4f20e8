"""GAN losses as divergence bounds, and Langevin dynamics as the sampler of an EBM.

The optimal discriminator of the least-squares, hinge and non-saturating losses (the
minimax one is `D-optimal-discriminator`), the f-GAN variational bound with the convex
conjugate of each f-divergence, the Wasserstein-1 distance of two Gaussian translates,
the stationary density of the Langevin SDE and the stationary law of its Euler–Maruyama
chain (ULA) on a Gaussian.
"""

import sympy as sp

from ._engine import CITED, NUMERIC, SYMBOLIC, Check, Derivation, Step
from ._registry import register
from .elbo_gap import _Integral

p, q = sp.symbols("p q", positive=True)  # the data and generator densities at one point
D = sp.Symbol("D", real=True)  # the discriminator's raw output at that point
a, b, c = sp.symbols("a b c", real=True)

# --- least squares -------------------------------------------------------------------------

_ls_pointwise = p * (D - b) ** 2 / 2 + q * (D - a) ** 2 / 2
_ls_optimum = (b * p + a * q) / (p + q)
_ls_standard = {a: -1, b: 1, c: 0}
_ls_d_star = _ls_optimum.subs(_ls_standard)

register(
    Derivation(
        id="D-lsgan-optimal-discriminator",
        title="Least-squares GAN: the optimal discriminator and the divergence it leaves",
        statement=(
            r"The least-squares discriminator loss $\tfrac12\mathbb E_p[(D - b)^2] + "
            r"\tfrac12\mathbb E_q[(D - a)^2]$ is minimised pointwise by "
            r"$D^* = (bp + aq)/(p + q)$. With $a = -1$, $b = 1$, $c = 0$ the generator's "
            r"criterion $\tfrac12\mathbb E_p[(D^* - c)^2] + \tfrac12\mathbb E_q[(D^* - c)^2]$ "
            r"equals $\tfrac12\int (p - q)^2/(p + q)$, Mao et al.'s "
            r"$\tfrac12\chi^2_\mathrm{Pearson}(p + q\,\|\,2q)$, and the discriminator's minimum is "
            r"$1 - \tfrac12\int(p-q)^2/(p+q)$ (Mao et al. 2017, Thm. 1)."
        ),
        start=sp.Subs(sp.Derivative(_ls_pointwise, D), D, _ls_optimum),
        steps=[
            Step(
                rhs=sp.Integer(0),
                reason=(
                    r"The pointwise loss is a quadratic in $D$; its derivative "
                    r"$p(D - b) + q(D - a)$ vanishes at $D^* = (bp + aq)/(p + q)$."
                ),
            ),
            Step(
                lhs=sp.Derivative(_ls_pointwise, D, 2),
                rhs=sp.Integer(0),
                relation=">=",
                reason=r"Its second derivative $p + q$ is positive: $D^*$ is the minimum.",
            ),
            Step(
                lhs=(p * (_ls_d_star - c) ** 2 / 2 + q * (_ls_d_star - c) ** 2 / 2).subs(
                    _ls_standard
                ),
                rhs=(p - q) ** 2 / (2 * (p + q)),
                reason=(
                    r"With $a = -1$, $b = 1$: $D^* = (p - q)/(p + q)$; with $c = 0$ the "
                    r"generator's integrand is $\tfrac12(p + q)D^{*2}$."
                ),
            ),
            Step(
                rhs=(2 * q - (p + q)) ** 2 / (2 * (p + q)),
                reason=(
                    r"Written as $\tfrac12(2q - (p + q))^2/(p + q)$: the integrand of "
                    r"$\tfrac12\chi^2_\mathrm{Pearson}(p + q\,\|\,2q)$ in Mao et al.'s notation."
                ),
            ),
            Step(
                lhs=_ls_pointwise.subs(D, _ls_d_star).subs(_ls_standard),
                rhs=(p + q) / 2 - (p - q) ** 2 / (2 * (p + q)),
                reason=(
                    r"The discriminator's pointwise minimum, $2pq/(p + q)$; integrated with "
                    r"$\int p = \int q = 1$ it is $1 - \tfrac12\int (p-q)^2/(p+q)$."
                ),
            ),
        ],
        symbols=(p, q, D, a, b, c),
        references=("mao2017least",),
        code=(
            "genmath.families.gan.least_squares_discriminator_loss",
            "genmath.families.gan.least_squares_generator_loss",
            "genmath.families.gan.optimal_discriminator",
        ),
        tests=("tests/families/test_gan.py",),
    )
)

# --- hinge ---------------------------------------------------------------------------------

register(
    Derivation(
        id="D-hinge-optimal-discriminator",
        title="Hinge loss: the optimal discriminator sign(p - q) and total variation",
        statement=(
            r"The hinge loss $\mathbb E_p[\max(0, 1 - D)] + \mathbb E_q[\max(0, 1 + D)]$ is "
            r"minimised pointwise by $D^* = \operatorname{sign}(p - q)$, with minimum "
            r"$2\min(p, q)$; integrated, the minimum is $2 - \int|p - q| = 2 - 2\,\mathrm{TV}(p, q)$ "
            r"(Lim & Ye 2017)."
        ),
        start=p * (1 - D) + q * (1 + D),
        steps=[
            Step(
                rhs=p + q + D * (q - p),
                reason=(
                    r"On $-1 \le D \le 1$ both hinges are active and the loss is linear in $D$, "
                    r"with slope $q - p$: the minimum is at the end $D = \operatorname{sign}(p - q)$."
                ),
            ),
            Step(
                lhs=(p + q + D * (q - p)).subs(D, sp.sign(p - q)),
                rhs=p + q - sp.Abs(p - q),
                reason=r"At $D^* = \operatorname{sign}(p - q)$ the slope term is $-|p - q|$.",
                tag=NUMERIC,
            ),
            Step(
                rhs=2 * sp.Min(p, q),
                reason=r"$p + q - |p - q| = 2\min(p, q)$.",
                tag=NUMERIC,
            ),
            Step(
                lhs=p * sp.Max(0, 1 - D) + q * sp.Max(0, 1 + D),
                rhs=2 * sp.Min(p, q),
                relation=">=",
                reason=(
                    r"For every $D$, including $|D| > 1$ where one hinge is inactive, the "
                    r"pointwise loss is at least $2\min(p, q)$: $D^*$ is a global minimiser."
                ),
                tag=NUMERIC,
                samples=40,
            ),
        ],
        symbols=(p, q, D),
        references=("lim2017geometric",),
        code=(
            "genmath.families.gan.hinge_discriminator_loss",
            "genmath.families.gan.optimal_discriminator",
        ),
        tests=("tests/families/test_gan.py",),
        domain={D: (-3.0, 3.0)},
    )
)

# --- non-saturating ----------------------------------------------------------------------

_d_star = p / (p + q)

register(
    Derivation(
        id="D-non-saturating-generator",
        title="The non-saturating generator loss at the optimal discriminator",
        statement=(
            r"At $D^* = p/(p+q)$ the non-saturating generator loss $-\mathbb E_q[\log D^*]$ "
            r"equals $\mathrm{KL}(q\,\|\,p) - \mathrm{KL}(q\,\|\,m) + \log 2$, "
            r"$m = (p + q)/2$: its gradient pushes $q$ to decrease $\mathrm{KL}(q\,\|\,p)$ while "
            r"increasing $\mathrm{KL}(q\,\|\,m)$, unlike the minimax loss's "
            r"$2\,\mathrm{JSD}$ (Arjovsky & Bottou 2017)."
        ),
        start=-q * sp.log(_d_star),
        steps=[
            Step(
                rhs=q * sp.log((p + q) / p),
                reason=r"$-\log D^* = \log\big((p + q)/p\big)$.",
                method=lambda e: sp.expand(sp.expand_log(e, force=True)),
            ),
            Step(
                rhs=q * sp.log(q / p) - q * sp.log(2 * q / (p + q)) + q * sp.log(2),
                reason=(
                    r"Add and subtract $q\log(2q)$: the integrands of $\mathrm{KL}(q\,\|\,p)$ and "
                    r"$-\mathrm{KL}(q\,\|\,m)$, plus $q\log 2$, which integrates to $\log 2$."
                ),
                method=lambda e: sp.expand(sp.expand_log(e, force=True)),
            ),
        ],
        symbols=(p, q),
        references=("goodfellow2014generative", "arjovsky2017towards"),
        code=(
            "genmath.families.gan.non_saturating_generator_loss",
            "genmath.families.gan.optimal_discriminator",
        ),
        tests=("tests/families/test_gan.py",),
    )
)

# --- f-GAN ---------------------------------------------------------------------------------

u = sp.Symbol("u", positive=True)  # the density ratio p/q at one point


def _fgan_rows():
    """name -> (f(u), f*(t), u*(t) = (f')^{-1}(t), t symbol, activation text, f* domain)."""
    t_real = sp.Symbol("t", real=True)
    t_neg = sp.Symbol("t", negative=True)
    return {
        "kl": (
            "KL",
            u * sp.log(u),
            sp.exp(t_real - 1),
            sp.exp(t_real - 1),
            t_real,
            r"$g_f(v) = v$",
            r"$\mathbb R$",
        ),
        "reverse_kl": (
            "reverse KL",
            -sp.log(u),
            -1 - sp.log(-t_neg),
            -1 / t_neg,
            t_neg,
            r"$g_f(v) = -e^{-v}$",
            r"$t < 0$",
        ),
        "js": (
            "Jensen–Shannon",
            u * sp.log(u) - (u + 1) * sp.log((u + 1) / 2),
            -sp.log(2 - sp.exp(t_real)),
            sp.exp(t_real) / (2 - sp.exp(t_real)),
            t_real,
            r"$g_f(v) = \log 2 - \log(1 + e^{-v})$",
            r"$t < \log 2$",
        ),
        "pearson": (
            r"Pearson $\chi^2$",
            (u - 1) ** 2,
            t_real**2 / 4 + t_real,
            1 + t_real / 2,
            t_real,
            r"$g_f(v) = v$",
            r"$\mathbb R$",
        ),
        "squared_hellinger": (
            "squared Hellinger",
            (sp.sqrt(u) - 1) ** 2,
            t_real / (1 - t_real),
            1 / (1 - t_real) ** 2,
            t_real,
            r"$g_f(v) = 1 - e^{-v}$",
            r"$t < 1$",
        ),
    }


_FGAN_ROWS = _fgan_rows()
_CHI = r"$\chi^2$"
_FGAN_DOMAINS = {"js": (-3.0, 0.65), "squared_hellinger": (-3.0, 0.95)}
# Steps sympy cannot close without knowing t < log 2 (JS) or t < 1 (Hellinger), which a
# symbol's assumptions cannot state: checked at random points of that domain instead.
_FGAN_NUMERIC_STEPS = {("js", 3), ("squared_hellinger", 1), ("squared_hellinger", 3)}


def _tag(name: str, index: int) -> str:
    return NUMERIC if (name, index) in _FGAN_NUMERIC_STEPS else SYMBOLIC


def _force_log(e):
    return sp.simplify(sp.expand_log(sp.expand(e), force=True))


for _name, (_label, _f, _conj, _u_star, _t, _act, _dom) in _FGAN_ROWS.items():
    _f_prime = sp.diff(_f, u)
    _t_star = _f_prime.subs(u, p / q)
    _domain = {_t: _FGAN_DOMAINS[_name]} if _name in _FGAN_DOMAINS else {}
    register(
        Derivation(
            id=f"D-fgan-bound-{_name}",
            title=f"f-GAN variational bound for the {_label.replace(_CHI, 'chi^2')} divergence",
            statement=(
                rf"For $f(u) = {sp.latex(_f)}$, $D_f(p\,\|\,q) = \int q\, f(p/q)$ is the "
                rf"{_label} divergence, its convex conjugate is $f^*(t) = {sp.latex(_conj)}$ "
                rf"on {_dom}, and $D_f(p\,\|\,q) \ge \mathbb E_p[T] - \mathbb E_q[f^*(T)]$ for "
                rf"every critic $T$, with equality at $T^* = f'(p/q) = {sp.latex(_t_star)}$. The "
                rf"output activation {_act} maps a raw output onto the domain of $f^*$ "
                "(Nowozin et al. 2016, eq. 6 and Table 2)."
            ),
            start=sp.Subs(sp.Derivative(_t * u - _f, u), u, _u_star),
            steps=[
                Step(
                    rhs=sp.Integer(0),
                    reason=(
                        r"$f^*(t) = \sup_u\, tu - f(u)$: the derivative $t - f'(u)$ vanishes at "
                        rf"$u^*(t) = {sp.latex(_u_star)}$."
                    ),
                    method=_force_log,
                    tag=_tag(_name, 1),
                ),
                Step(
                    lhs=sp.Derivative(_t * u - _f, u, 2),
                    rhs=sp.Integer(0),
                    relation="<=",
                    reason=r"$-f''(u) \le 0$: $f$ is convex, so $u^*$ is the maximiser.",
                    method=sp.simplify,
                ),
                Step(
                    lhs=(_t * u - _f).subs(u, _u_star),
                    rhs=_conj,
                    reason=r"The supremum's value $t\,u^* - f(u^*)$ is the conjugate $f^*(t)$.",
                    method=_force_log,
                    tag=_tag(_name, 3),
                ),
                Step(
                    lhs=p * _t_star - q * _conj.subs(_t, _t_star),
                    rhs=q * _f.subs(u, p / q),
                    reason=(
                        r"At $T^* = f'(p/q)$ the pointwise bound $pT - q f^*(T)$ equals "
                        r"$q\, f(p/q)$, the integrand of $D_f(p\,\|\,q)$: the bound is tight."
                    ),
                ),
                Step(
                    lhs=p * _t - q * _conj,
                    rhs=q * _f.subs(u, p / q),
                    relation="<=",
                    reason=(
                        r"For any $T$, $pT - qf^*(T) \le q f(p/q)$ (Fenchel–Young with "
                        r"$u = p/q$); integrated, $\mathbb E_p[T] - \mathbb E_q[f^*(T)] \le "
                        r"D_f(p\,\|\,q)$."
                    ),
                    tag=NUMERIC,
                    samples=40,
                ),
            ],
            symbols=(u, _t, p, q),
            references=("nowozin2016fgan",),
            code=(
                "genmath.families.gan.F_DIVERGENCES",
                "genmath.families.gan.fgan_bound",
                "genmath.families.gan.optimal_discriminator",
            ),
            tests=("tests/families/test_gan.py",),
            domain=_domain,
        )
    )


def _fgan_conjugates_match_torch() -> float:
    """Largest gap between genmath's f, f*, f' and activation and the expressions verified
    above, at seeded points of each function's domain."""
    import torch

    from ..families.gan import F_DIVERGENCES

    generator = torch.Generator().manual_seed(0)
    worst = 0.0
    for name, (_, f_expr, conj_expr, _, t_sym, _, _) in _FGAN_ROWS.items():
        spec = F_DIVERGENCES[name]
        ratios = torch.exp(torch.randn(16, dtype=torch.float64, generator=generator))
        raw = 2.0 * torch.randn(16, dtype=torch.float64, generator=generator)
        critic = spec.activation(raw)  # must land in the domain of f*
        for fn, expr, sym, points in (
            (spec.f, f_expr, u, ratios),
            (spec.derivative, sp.diff(f_expr, u), u, ratios),
            (spec.conjugate, conj_expr, t_sym, critic),
        ):
            exact = sp.lambdify(sym, expr, "math")
            got = fn(points)
            for g, x_ in zip(got.tolist(), points.tolist(), strict=True):
                e = exact(x_)
                worst = max(worst, abs(g - e) / (1 + abs(e)))
        composed = spec.conjugate(spec.activation(raw))
        simplified = spec.conjugate_of_activation(raw)
        worst = max(worst, float(((composed - simplified).abs() / (1 + composed.abs())).max()))
    return worst


register(
    Check(
        id="C-fgan-conjugates",
        title=(
            "F_DIVERGENCES: f, f' and f* (on the activation's range) equal the verified forms; "
            "the simplified f*(g_f(v)) equals the composition"
        ),
        function=_fgan_conjugates_match_torch,
        tolerance=1e-12,
        code=("genmath.families.gan.F_DIVERGENCES",),
        tests=("tests/families/test_gan.py",),
        derivation="D-fgan-bound-kl",
    )
)

# --- Wasserstein ---------------------------------------------------------------------------

x = sp.Symbol("x", real=True)
m1, m2 = sp.symbols("m_1 m_2", real=True)
s = sp.Symbol("s", positive=True)


def _normal_pdf(value, mean, sd):
    return sp.exp(-((value - mean) ** 2) / (2 * sd**2)) / (sd * sp.sqrt(2 * sp.pi))


def _normal_cdf(value, mean, sd):
    return (1 + sp.erf((value - mean) / (sd * sp.sqrt(2)))) / 2


register(
    Derivation(
        id="D-wgan-gaussian-translates",
        title="WGAN: W1 between N(m1, s^2) and N(m2, s^2) is |m1 - m2|, attained by a linear critic",
        statement=(
            r"For $p = \mathcal N(m_1, s^2)$, $q = \mathcal N(m_2, s^2)$, "
            r"$W_1(p, q) = \sup_{\|f\|_L \le 1} \mathbb E_p f - \mathbb E_q f = |m_1 - m_2|$, "
            r"attained by the critic $f^*(x) = \operatorname{sign}(m_1 - m_2)\,x$; in $d$ "
            r"dimensions, equal covariances, $W_1 = \|m_1 - m_2\|$ with "
            r"$f^*(x) = \langle m_1 - m_2, x\rangle/\|m_1 - m_2\|$ (Arjovsky et al. 2017)."
        ),
        start=_Integral(sp.Abs(_normal_cdf(x, m1, s) - _normal_cdf(x, m2, s)), (x, -sp.oo, sp.oo)),
        steps=[
            Step(
                rhs=sp.Abs(m1 - m2),
                reason=(
                    r"In one dimension $W_1(p, q) = \int |F_p - F_q|\,dx$ (the CDFs' $L^1$ "
                    "distance); for translates the CDFs never cross and the area is the shift "
                    "(quadrature)."
                ),
                tag=NUMERIC,
                samples=3,
                tolerance=1e-8,
            ),
            Step(
                lhs=_Integral(
                    x * (_normal_pdf(x, m1, s) - _normal_pdf(x, m2, s)), (x, -sp.oo, sp.oo)
                ),
                rhs=m1 - m2,
                reason=(
                    r"The critic $f(x) = x$ (1-Lipschitz) gives $\mathbb E_p f - \mathbb E_q f = "
                    r"m_1 - m_2$; with the sign of $m_1 - m_2$ it reaches $|m_1 - m_2|$ "
                    "(quadrature)."
                ),
                tag=NUMERIC,
                samples=3,
                tolerance=1e-8,
            ),
            Step(
                rhs=sp.Abs(m1 - m2),
                relation="<=",
                reason=(
                    r"No 1-Lipschitz critic does better: the coupling $y = x + (m_2 - m_1)$ moves "
                    r"every point by $|m_1 - m_2|$, an upper bound on $W_1$ (Kantorovich–Rubinstein)."
                ),
                tag=CITED,
                theorem="Kantorovich–Rubinstein duality",
                reference="villani2009optimal",
            ),
        ],
        symbols=(x, m1, m2, s),
        references=("arjovsky2017wasserstein",),
        code=(
            "genmath.families.gan.optimal_wasserstein_critic",
            "genmath.families.gan.wasserstein_critic_loss",
        ),
        tests=("tests/families/test_gan.py",),
        domain={s: (0.5, 2.0)},
    )
)

# --- Langevin ------------------------------------------------------------------------------

U = sp.Function("U")
density = sp.Function("p", positive=True)
_p_energy = sp.exp(-U(x))

register(
    Derivation(
        id="D-langevin-stationary",
        title="The Langevin SDE dx = grad log p dt + sqrt(2) dW has stationary density p",
        statement=(
            r"The Fokker–Planck equation of $dx = b(x)\,dt + \sqrt 2\,dW$ is "
            r"$\partial_t\rho = -\partial_x(b\rho) + \partial_x^2\rho$. With "
            r"$b = \partial_x\log p$ its right-hand side vanishes at $\rho = p$, so $p$ is "
            r"stationary; in particular for an energy, $p \propto e^{-U}$ and $b = -U'$ "
            "(shown in one dimension; the $d$-dimensional case is the same computation "
            "coordinate by coordinate)."
        ),
        start=-sp.Derivative(density(x) * sp.Derivative(sp.log(density(x)), x), x)
        + sp.Derivative(density(x), x, 2),
        steps=[
            Step(
                rhs=-sp.Derivative(sp.Derivative(density(x), x), x)
                + sp.Derivative(density(x), x, 2),
                reason=r"$p\,\partial_x\log p = \partial_x p$: the drift flux is $\partial_x p$.",
            ),
            Step(
                rhs=sp.Integer(0),
                reason="The drift flux's divergence cancels the diffusion term exactly.",
            ),
            Step(
                lhs=-sp.Derivative(_p_energy * sp.Derivative(-U(x), x), x)
                + sp.Derivative(_p_energy, x, 2),
                rhs=sp.Integer(0),
                reason=r"The same with $p = e^{-U}$ and drift $-U'(x) = -\nabla E$: the EBM's score.",
            ),
        ],
        symbols=(x,),
        references=("risken1996fokker", "roberts1996exponential"),
        code=("genmath.families.ebm.langevin", "genmath.core.dynamics.sample_sde"),
        tests=("tests/families/test_ebm.py",),
    )
)

m = sp.Symbol("m", real=True)
eps = sp.Symbol("epsilon", positive=True)
_contraction = 1 - eps / s**2  # x_{k+1} - m = (1 - eps/s^2)(x_k - m) + sqrt(2 eps) z
_v_star = 2 * eps / (1 - _contraction**2)

register(
    Derivation(
        id="D-ula-stationary-variance",
        title="Unadjusted Langevin on N(m, s^2): stationary mean m, variance s^2/(1 - eps/(2 s^2))",
        statement=(
            r"On $p = \mathcal N(m, s^2)$, the ULA chain $x_{k+1} = x_k - \epsilon(x_k - m)/s^2 + "
            r"\sqrt{2\epsilon}\,z_k$ is a Gaussian AR(1) process; for $0 < \epsilon < 2s^2$ its "
            r"stationary law is $\mathcal N\big(m, s^2/(1 - \epsilon/(2s^2))\big)$: the mean is "
            r"exact, the variance biased upwards by a factor that tends to 1 as "
            r"$\epsilon \to 0$. A Metropolis–Hastings correction (MALA) makes $p$ exactly "
            r"invariant (Roberts & Tweedie 1996). In $d$ dimensions the same holds along each "
            r"eigenvector of the covariance."
        ),
        start=m - eps * (m - m) / s**2,
        steps=[
            Step(
                rhs=m,
                reason="The chain's mean map fixes $m$: the stationary mean is unbiased.",
            ),
            Step(
                lhs=_contraction**2 * _v_star + 2 * eps,
                rhs=_v_star,
                reason=(
                    r"The variance recursion $v \mapsto (1 - \epsilon/s^2)^2 v + 2\epsilon$ has the "
                    r"fixed point $v^* = 2\epsilon/(1 - (1 - \epsilon/s^2)^2)$, attracting when "
                    r"$|1 - \epsilon/s^2| < 1$."
                ),
            ),
            Step(
                rhs=s**2 / (1 - eps / (2 * s**2)),
                reason=r"Simplify: $1 - (1 - \epsilon/s^2)^2 = (\epsilon/s^2)(2 - \epsilon/s^2)$.",
            ),
            Step(
                rhs=s**2,
                relation=">=",
                reason=r"For $0 < \epsilon < 2s^2$ the factor exceeds 1: ULA over-disperses.",
                tag=NUMERIC,
                samples=40,
            ),
        ],
        symbols=(m, s, eps),
        references=("roberts1996exponential",),
        code=(
            "genmath.families.ebm.langevin",
            "genmath.families.ebm.ula_stationary_variance",
            "genmath.families.ebm.mala",
        ),
        tests=("tests/families/test_ebm.py",),
        domain={s: (1.0, 3.0), eps: (0.01, 1.9)},
    )
)
