"""The ELBO: its gap to the log-evidence, its reconstruction-minus-KL form, and Jensen's bound.

The general identities are checked on the integrands (densities are positive sympy functions,
integrals over the same variable are combined by linearity); the linear-Gaussian model, where
every term has a closed form, checks the same identities end to end.
"""

import mpmath
import sympy as sp
from sympy.core.function import AppliedUndef

from ._engine import (
    CITED,
    NUMERIC,
    Binding,
    Derivation,
    From,
    LogUniform,
    Step,
    Uniform,
    sound_rewrite,
)
from ._gaussian import gaussian_identity, log_normal
from ._registry import register
from .gaussian_kl import KL_GAUSSIAN
from .gaussian_kl import mu1 as _kl_mu1
from .gaussian_kl import mu2 as _kl_mu2
from .gaussian_kl import s1 as _kl_s1
from .gaussian_kl import s2 as _kl_s2
from .score_matching import GaussianExpectation as E

_kl_symbols = (_kl_mu1, _kl_mu2, _kl_s1, _kl_s2)

x = sp.Symbol("x", real=True)
z = sp.Symbol("z", real=True)
_p = sp.Function("p", positive=True)
q = sp.Function("q", positive=True)  # q(z | x); x is fixed throughout and left implicit
p_joint = sp.Lambda(z, _p(x, z))  # p(x, z)
p_cond = sp.Lambda(z, sp.Function(r"p_{x\mid z}", positive=True)(x, z))  # p(x | z)
p_prior = sp.Lambda(z, sp.Function("p_z", positive=True)(z))  # p(z)
evidence = _p(x)  # p(x)


class _Integral(sp.Integral):
    """An integral shown as such but never handed to sympy's symbolic integrator, which is slow
    on these integrands and cannot close integrals of unknown densities at all.

    Symbolic steps combine such integrals by linearity (`_merge_integrals`) and compare
    integrands; numeric steps evaluate one, once every parameter has a value, by mpmath
    quadrature of the lambdified integrand (about ten times faster than ``Integral.evalf``).
    """

    def doit(self, **hints):
        return self

    def _eval_evalf(self, prec):
        variables = [limit[0] for limit in self.limits]
        if self.function.free_symbols - set(variables) or self.function.atoms(AppliedUndef):
            return None  # parameters or unknown densities left: not a number
        integrand = sp.lambdify(variables, self.function, "mpmath")
        ranges = [
            [
                mpmath.mpf(sp.sympify(lo).evalf(prec)) if lo != -sp.oo else -mpmath.inf,
                mpmath.mpf(sp.sympify(hi).evalf(prec)) if hi != sp.oo else mpmath.inf,
            ]
            for _, lo, hi in self.limits
        ]
        with mpmath.workprec(prec):
            value = mpmath.quad(integrand, *reversed(ranges))
        return sp.Float(value, sp.Integer(prec).__int__() // 3 + 1)


def _expectation(integrand):
    """$\\int q(z)\\,f(z)\\,dz$ as an unevaluated integral (what the page shows)."""
    return _Integral(q(z) * integrand, (z, -sp.oo, sp.oo))


@sound_rewrite(
    'linearity of the integral over a common variable and limits; log of a product of positive densities is the sum of logs'
)
def _merge_integrals(expr):
    """Linearity of the integral: combine integrals over the same variable and limits into one,
    pulling factors that do not depend on the integration variable inside, then expand the
    integrand's logarithms (the densities are positive functions). An integrand that vanishes
    identically makes the integral zero."""
    integrands: dict = {}
    rest = sp.Integer(0)
    for term in sp.Add.make_args(sp.expand(expr)):
        coeff, body = term.as_independent(sp.Integral, as_Add=False)
        if isinstance(body, sp.Integral):
            key = (type(body), body.limits)
            integrands[key] = integrands.get(key, 0) + coeff * body.function
        else:
            rest += term
    for (kind, limits), integrand in integrands.items():
        integrand = sp.expand(sp.expand_log(sp.expand(integrand), force=False))
        if integrand != 0:
            rest += kind(integrand, *limits)
    return sp.expand(rest)


_elbo_general = _expectation(sp.log(p_joint(z)) - sp.log(q(z)))

# --- The linear-Gaussian model, where every term is closed form. ------------------------------
w, b, m = sp.symbols("w b m", real=True)
noise, v = sp.symbols("s v", positive=True)
u = sp.Symbol("u", real=True)  # standard normal: z = m + sqrt(v) u under q = N(m, v)
beta = sp.Symbol("beta", nonnegative=True)


def _kl(m1, s1, m2, s2):
    """D-kl-gaussian's result at these parameters (the one Gaussian KL of genmath)."""
    return KL_GAUSSIAN.subs(
        {_kl_symbols[0]: m1, _kl_symbols[1]: m2, _kl_symbols[2]: s1, _kl_symbols[3]: s2},
        simultaneous=True,
    )


_z_u = m + sp.sqrt(v) * u
_log_evidence = log_normal(x, b, w**2 + noise**2)
_post_mean = w * (x - b) / (w**2 + noise**2)
_post_var = noise**2 / (w**2 + noise**2)
# E_q[log N(x; w z + b, s^2)] with E_q[(x - wz - b)^2] = (x - wm - b)^2 + w^2 v
_reconstruction = -sp.log(2 * sp.pi * noise**2) / 2 - ((x - w * m - b) ** 2 + w**2 * v) / (
    2 * noise**2
)
_kl_prior = _kl(m, sp.sqrt(v), 0, 1)
_kl_posterior = _kl(m, sp.sqrt(v), _post_mean, sp.sqrt(_post_var))
_elbo_closed = _reconstruction + (1 + sp.log(v) - m**2 - v) / 2  # the KL in the VAE form
_linear_symbols = (x, w, b, noise, m, v)

register(
    Derivation(
        id="D-elbo-linear-gaussian",
        title="The ELBO of the linear-Gaussian model in closed form",
        statement=(
            r"For $z \sim \mathcal N(0, 1)$, $x \mid z \sim \mathcal N(wz + b, s^2)$ and an "
            r"encoder $q = \mathcal N(m, v)$, "
            r"$\mathrm{ELBO} = \mathbb E_q[\log p(x \mid z) + \log p(z) - \log q(z)] = "
            r"-\tfrac12\log(2\pi s^2) - \frac{(x - wm - b)^2 + w^2 v}{2s^2} - "
            r"\mathrm{KL}(\mathcal N(m, v)\,\|\,\mathcal N(0, 1))$, derived from the first two "
            r"moments of $q$ ($z = m + \sqrt v\,u$, $u \sim \mathcal N(0, 1)$), the KL being "
            "D-kl-gaussian's. It is the reference value of `genmath.elbo` on this model: the "
            "bindings evaluate the Monte-Carlo ELBO over the sigma points of $q$, where it is "
            "exact."
        ),
        start=E(
            log_normal(x, w * _z_u + b, noise**2) + log_normal(_z_u, 0, 1) - log_normal(_z_u, m, v),
            u,
        ),
        steps=[
            Step(
                rhs=E(log_normal(x, w * _z_u + b, noise**2), u)
                - E(log_normal(_z_u, m, v) - log_normal(_z_u, 0, 1), u),
                reason=(
                    "Linearity of the expectation: the reconstruction term, minus the expected "
                    r"log-ratio of $q$ to the prior, which is $\mathrm{KL}(q\,\|\,p(z))$."
                ),
            ),
            Step(
                rhs=_reconstruction - _kl_prior,
                reason=(
                    r"Gaussian moments: $\mathbb E(x - wm - b - w\sqrt v\,u)^2 = (x - wm - b)^2 + "
                    r"w^2 v$; the KL term is D-kl-gaussian with $\mu_1 = m$, $\sigma_1 = \sqrt v$, "
                    r"$\mu_2 = 0$, $\sigma_2 = 1$."
                ),
            ),
            Step(
                rhs=_elbo_closed,
                reason=r"The KL in the VAE's form, $-\tfrac12(1 + \log v - m^2 - v)$ (D-kl-vae).",
            ),
        ],
        symbols=_linear_symbols,
        references=("kingma2014auto", "tipping1999probabilistic"),
        code=("genmath.core.elbo.elbo",),
        tests=("tests/core/test_elbo.py",),
    )
)

register(
    Derivation(
        id="D-elbo-recon-kl",
        title="The ELBO as reconstruction minus KL to the prior",
        statement=(
            r"With $p(x, z) = p(x\mid z)\,p(z)$, "
            r"$\mathrm{ELBO}(q) = \mathbb E_q[\log p(x\mid z)] - \mathrm{KL}(q(z\mid x)\,\|\,p(z))$: "
            "a reconstruction term and a regulariser, the KL being closed form for Gaussians "
            "(D-kl-gaussian, D-kl-vae); this is the form `genmath.elbo` computes with "
            r"`kl=\"analytic\"`. Step 3 gives both terms for the linear-Gaussian model "
            r"$z \sim \mathcal N(0,1)$, $x\mid z \sim \mathcal N(wz + b, s^2)$, "
            r"$q = \mathcal N(m, v)$ (D-elbo-linear-gaussian)."
        ),
        start=_expectation(sp.log(p_cond(z) * p_prior(z)) - sp.log(q(z))),
        steps=[
            Step(
                rhs=_expectation(sp.log(p_cond(z)) + sp.log(p_prior(z)) - sp.log(q(z))),
                reason=r"Factor the joint and split its logarithm (densities are positive).",
                method=_merge_integrals,
            ),
            Step(
                rhs=_expectation(sp.log(p_cond(z)))
                - _expectation(sp.log(q(z)) - sp.log(p_prior(z))),
                reason=(
                    r"Split the integral by linearity: the second integral is "
                    r"$\mathrm{KL}(q\,\|\,p(z))$."
                ),
                method=_merge_integrals,
            ),
            Step(
                lhs=From("D-elbo-linear-gaussian", step=2),
                rhs=_elbo_closed,
                reason=(
                    "Linear-Gaussian model: the reconstruction term is closed form "
                    r"(D-elbo-linear-gaussian), and $\mathrm{KL}(\mathcal N(m, v)\,\|\,"
                    r"\mathcal N(0, 1)) = -\tfrac12(1 + \log v - m^2 - v)$ (D-kl-vae)."
                ),
            ),
        ],
        symbols=(x, z, *_linear_symbols[1:]),
        references=("kingma2014auto", "blei2017variational"),
        code=("genmath.core.elbo.elbo", "genmath.families.vae.VAE.elbo"),
        tests=("tests/core/test_elbo.py", "tests/families/test_vae.py"),
    )
)

@sound_rewrite("sympy's expand, expand_log (positive arguments only) and cancel")
def _expand_logs(expr):
    return sp.cancel(sp.expand(sp.expand_log(sp.expand(expr))))


_gap_rhs = sp.Add(_log_evidence, sp.Mul(-1, _kl_posterior, evaluate=False), evaluate=False)

register(
    Derivation(
        id="D-elbo-gap",
        title="The ELBO gap: log p(x) = ELBO(q) + KL(q(z|x) || p(z|x))",
        statement=(
            r"For any density $q(z)$ (the encoder's $q(z\mid x)$), "
            r"$\log p(x) = \mathbb E_q[\log p(x,z) - \log q(z)] "
            r"+ \mathrm{KL}(q\,\|\,p(z\mid x))$. "
            "The KL is non-negative, so the ELBO is a lower bound, tight exactly at the "
            "true posterior. Steps 1–3 show the identity for general densities, starting "
            r"from the KL with Bayes' rule $p(z\mid x) = p(x,z)/p(x)$ written in; steps 4–5 "
            "check it, and the bound, in closed form for the linear-Gaussian model "
            r"$z \sim \mathcal N(0,1)$, $x\mid z \sim \mathcal N(wz + b, s^2)$ with "
            r"$q = \mathcal N(m, v)$, whose posterior is $\mathcal N\big(w(x-b)/(w^2+s^2),\ "
            r"s^2/(w^2+s^2)\big)$ (D-ppca-posterior)."
        ),
        start=_expectation(sp.log(q(z)) - sp.log(p_joint(z) / evidence)),
        steps=[
            Step(
                rhs=_expectation(sp.log(q(z)) - sp.log(p_joint(z)) + sp.log(evidence)),
                reason=r"Split the logarithm of $p(x,z)/p(x)$ (all densities are positive).",
                method=_merge_integrals,
            ),
            Step(
                rhs=-_elbo_general + sp.log(evidence) * _Integral(q(z), (z, -sp.oo, sp.oo)),
                reason=(
                    r"Split the integral by linearity; $\log p(x)$ does not depend on $z$. "
                    "The first term is minus the ELBO."
                ),
                method=_merge_integrals,
            ),
            Step(
                rhs=-_elbo_general + sp.log(evidence),
                reason=r"$q$ is a probability density: $\int q(z)\,dz = 1$.",
                tag=CITED,
                theorem="normalisation of a probability density",
                reference="billingsley1995probability",
            ),
            Step(
                lhs=From("D-elbo-linear-gaussian"),
                rhs=_gap_rhs,
                reason=(
                    "The linear-Gaussian ELBO (D-elbo-linear-gaussian) is the log-evidence "
                    r"$\log \mathcal N(x; b, w^2 + s^2)$ minus the KL (D-kl-gaussian) from $q$ to "
                    "the exact posterior, for every $m$ and $v$: the gap identity, end to end."
                ),
                method=_expand_logs,
            ),
            Step(
                lhs=_log_evidence,
                rhs=_reconstruction - _kl_prior,
                relation=">=",
                reason=(
                    r"The bound, $\log p(x) \ge \mathrm{ELBO}$ (Jensen's inequality for the "
                    r"concave logarithm, or the KL above being $\ge 0$), checked at random model "
                    r"and variational parameters; $\log p(x)$ is what `PPCA.log_prob` computes."
                ),
                tag=NUMERIC,
                samples=16,
            ),
        ],
        symbols=(x, z, *_linear_symbols[1:]),
        references=("kingma2014auto", "blei2017variational", "tipping1999probabilistic"),
        code=(
            "genmath.core.elbo.elbo",
            "genmath.analytic.PPCA.log_prob",
            "genmath.families.vae.LinearGaussianVAE.elbo_gap",
        ),
        tests=("tests/core/test_elbo.py", "tests/analytic/test_ppca.py"),
    )
)

register(
    Derivation(
        id="D-beta-vae",
        title="The β-VAE objective: the ELBO minus (β − 1) times the KL",
        statement=(
            r"The β-VAE (Higgins et al. 2017) maximises $\mathbb E_q[\log p(x\mid z)] - \beta\,"
            r"\mathrm{KL}(q\,\|\,p(z)) = \mathrm{ELBO} - (\beta - 1)\,\mathrm{KL}(q\,\|\,p(z))$; "
            r"$\beta = 1$ is the ELBO. `VAE.loss` is minus its batch mean. Shown on the "
            "linear-Gaussian model of D-elbo-linear-gaussian, where both terms are closed form."
        ),
        start=_reconstruction - beta * _kl_prior,
        steps=[
            Step(
                rhs=(_reconstruction - _kl_prior) - (beta - 1) * _kl_prior,
                reason=r"Add and subtract the KL once: the ELBO, minus $(\beta - 1)$ KLs.",
            ),
            Step(
                rhs=_elbo_closed + (beta - 1) * (1 + sp.log(v) - m**2 - v) / 2,
                reason="The ELBO of D-elbo-linear-gaussian and the KL in the VAE form (D-kl-vae).",
            ),
        ],
        symbols=(*_linear_symbols, beta),
        references=("higgins2017beta", "kingma2014auto"),
        code=("genmath.families.vae.VAE.loss", "genmath.families.vae.BetaVAE"),
        tests=("tests/families/test_vae.py",),
    )
)

# --- PPCA: the exact posterior -----------------------------------------------------------------


def _mvn(value, mean, precision, log_det_cov):
    """$\\log\\mathcal N(\\mathrm{value}; \\mathrm{mean}, \\Sigma)$ given $\\Sigma^{-1}$ and
    $\\log\\det\\Sigma$ (no inverse is formed here)."""
    r = value - mean
    n = value.shape[0]
    return -n * sp.log(2 * sp.pi) / 2 - log_det_cov / 2 - (r.T * precision * r)[0, 0] / 2


def _ppca_sides(d, k, names):
    W = sp.Matrix(d, k, lambda i, j: sp.Symbol(f"{names}_{i + 1}{j + 1}", real=True))
    bs = sp.Matrix(sp.symbols(f"b_1:{d + 1}", real=True)) if d > 1 else sp.Matrix([b])
    xs = sp.Matrix(sp.symbols(f"x_1:{d + 1}", real=True)) if d > 1 else sp.Matrix([x])
    zs = sp.Matrix(sp.symbols(f"z_1:{k + 1}", real=True))
    M = W.T * W + noise**2 * sp.eye(k)
    M_inv = M.adjugate() / M.det()
    joint = sum(
        log_normal(xs[i], (W * zs + bs)[i], noise**2) for i in range(d)
    ) + sum(log_normal(zs[j], 0, 1) for j in range(k))
    mean = M_inv * W.T * (xs - bs)
    posterior = _mvn(zs, mean, M / noise**2, sp.log(noise ** (2 * k) / M.det()))
    # the marginal N(b, W W^T + s^2 I) by Woodbury: C^{-1} = (I - W M^{-1} W^T)/s^2 and
    # det C = s^{2(d-k)} det M, so no d x d inverse is written
    marginal = _mvn(
        xs, bs, (sp.eye(d) - W * M_inv * W.T) / noise**2, sp.log(noise ** (2 * (d - k)) * M.det())
    )
    return W, bs, xs, zs, M, mean, joint, posterior + marginal


_W1, _b1, _x1, _z1, _M1, _mean1, _joint1, _bayes1 = _ppca_sides(1, 2, "w")
_W3, _b3, _x3, _z3, _M3, _mean3, _joint3, _bayes3 = _ppca_sides(3, 1, "W")

register(
    Derivation(
        id="D-ppca-posterior",
        title="Probabilistic PCA: the exact posterior N(M⁻¹Wᵀ(x − b), s²M⁻¹) and the marginal",
        statement=(
            r"For $z \sim \mathcal N(0, I_k)$ and $x \mid z \sim \mathcal N(Wz + b, s^2 I_d)$, "
            r"Bayes' rule $p(x \mid z)\,p(z) = p(z \mid x)\,p(x)$ holds with "
            r"$p(z \mid x) = \mathcal N\big(M^{-1}W^\top(x - b),\ s^2 M^{-1}\big)$, "
            r"$M = W^\top W + s^2 I_k$, and $p(x) = \mathcal N(b, WW^\top + s^2 I_d)$, whose "
            r"precision is $(I - WM^{-1}W^\top)/s^2$ (Woodbury) and determinant "
            r"$s^{2(d-k)}\det M$ (Sylvester) (Tipping & Bishop 1999). Step 1 proves the identity "
            r"of log-densities symbolically for $d = 1$, $k = 2$ (a non-diagonal $M$); step 2 "
            r"checks it for $d = 3$, $k = 1$ (a rectangular $W$) at random points, from the log-joint that "
            "`PPCA.log_joint` computes."
        ),
        start=_joint1,
        steps=[
            Step(
                rhs=_bayes1,
                reason=(
                    r"Complete the square in $z$: the log-joint is quadratic in $z$ with Hessian "
                    r"$-M/s^2$ and maximiser $M^{-1}W^\top(x - b)$, and what is left is the "
                    "log-marginal; the identity holds for every $z$, $x$, so these are the "
                    "posterior and the marginal."
                ),
                method=gaussian_identity((*_z1, x, b)),
            ),
            Step(
                lhs=_joint3,
                rhs=_bayes3,
                reason=(
                    r"The same identity with $d = 3$ observed coordinates and one latent (a "
                    r"rectangular $W$), at random $W$, $b$, $s$, $x$, $z$."
                ),
                tag=NUMERIC,
                samples=10,
                tolerance=1e-10,
            ),
        ],
        symbols=(*_W1, x, b, *_z1, noise),
        references=("tipping1999probabilistic", "bishop2006pattern"),
        code=(
            "genmath.analytic.PPCA.posterior",
            "genmath.analytic.PPCA.posterior_distribution",
            "genmath.analytic.PPCA.log_prob",
            "genmath.analytic.PPCA.log_joint",
        ),
        tests=("tests/analytic/test_ppca.py",),
    )
)

# --- mean-field Gaussian approximation of a Gaussian --------------------------------------------

mf_m1, mf_m2, nu1, nu2 = sp.symbols("m_1 m_2 nu_1 nu_2", real=True)
tau1, tau2 = sp.symbols("tau_1 tau_2", positive=True)
l11, l22 = sp.symbols("Lambda_11 Lambda_22", positive=True)
l12 = sp.Symbol("Lambda_12", real=True)
u1, u2 = sp.symbols("u_1 u_2", real=True)
_Lambda = sp.Matrix([[l11, l12], [l12, l22]])
_mf_z = sp.Matrix([mf_m1 + tau1 * u1, mf_m2 + tau2 * u2])
_mf_offset = sp.Matrix([mf_m1 - nu1, mf_m2 - nu2])
_mf_log_q = log_normal(_mf_z[0], mf_m1, tau1**2) + log_normal(_mf_z[1], mf_m2, tau2**2)
_mf_log_p = _mvn(_mf_z, sp.Matrix([nu1, nu2]), _Lambda, -sp.log(_Lambda.det()))
_mf_quadratic = (_mf_offset.T * _Lambda * _mf_offset)[0, 0] / 2
_mf_floor = (sp.log(l11) + sp.log(l22) - sp.log(_Lambda.det())) / 2
_mf_gap = (
    sum((l * t**2 - 1 - sp.log(l * t**2)) / 2 for l, t in ((l11, tau1), (l22, tau2)))
    + _mf_quadratic
    + _mf_floor
)

register(
    Derivation(
        id="D-mean-field-gaussian",
        title="The best mean-field Gaussian for a Gaussian: variances 1/Λ_jj, the mean",
        statement=(
            r"For a Gaussian target $p = \mathcal N(\nu, \Lambda^{-1})$ and a diagonal "
            r"$q = \mathcal N(m, \operatorname{diag}\tau^2)$, $\mathrm{KL}(q\,\|\,p) = "
            r"\tfrac12\sum_j\big(\Lambda_{jj}\tau_j^2 - 1 - \log(\Lambda_{jj}\tau_j^2)\big) + "
            r"\tfrac12(m - \nu)^\top\Lambda(m - \nu) + \tfrac12\big(\sum_j\log\Lambda_{jj} - "
            r"\log\det\Lambda\big)$. Since $y - 1 - \log y \ge 0$ with equality at $y = 1$, the "
            r"minimiser is $m = \nu$, $\tau_j^2 = 1/\Lambda_{jj}$ (the *precision's* diagonal, "
            r"not the covariance's), and the smallest gap is $\tfrac12\log(\prod_j\Lambda_{jj}/"
            r"\det\Lambda) \ge 0$, zero exactly when $\Lambda$ is diagonal. For a linear-Gaussian "
            r"VAE, $\Lambda = M/s^2$ (D-ppca-posterior): `LinearGaussianVAE.from_ppca` and "
            "`elbo_gap` are bound to it. Shown for two latent coordinates."
        ),
        start=E(_mf_log_q - _mf_log_p, u1, u2),
        steps=[
            Step(
                rhs=_mf_gap,
                reason=(
                    r"With $z_j = m_j + \tau_j u_j$: $\mathbb E_q[\log q] = -\sum_j \log\tau_j - 1 - "
                    r"\log 2\pi$ and $\mathbb E_q[(z - \nu)^\top\Lambda(z - \nu)] = \sum_j "
                    r"\Lambda_{jj}\tau_j^2 + (m - \nu)^\top\Lambda(m - \nu)$ (Gaussian moments); "
                    "regroup."
                ),
            ),
            Step(
                rhs=_mf_quadratic + _mf_floor,
                relation=">=",
                reason=(
                    r"Each $\Lambda_{jj}\tau_j^2 - 1 - \log(\Lambda_{jj}\tau_j^2) \ge 0$, with "
                    r"equality exactly at $\tau_j^2 = 1/\Lambda_{jj}$ (checked at random points)."
                ),
                tag=NUMERIC,
            ),
            Step(
                rhs=_mf_floor,
                relation=">=",
                reason=(
                    r"$\Lambda$ is positive definite, so the quadratic form is $\ge 0$, zero at "
                    r"$m = \nu$ (checked at random points)."
                ),
                tag=NUMERIC,
            ),
        ],
        symbols=(mf_m1, mf_m2, tau1, tau2, nu1, nu2, l11, l12, l22),
        domain={l11: (1.0, 3.0), l22: (1.0, 3.0), l12: (-0.9, 0.9)},
        references=("bishop2006pattern", "lucas2019dont"),
        code=(
            "genmath.families.vae.LinearGaussianVAE.from_ppca",
            "genmath.families.vae.LinearGaussianVAE.elbo_gap",
        ),
        tests=("tests/families/test_vae.py",),
    )
)

# --- bindings -----------------------------------------------------------------------------------
#
# The Monte-Carlo ELBO is exact over the two sigma points m -+ sqrt(v) of q (every term is a
# quadratic in z), so the bindings compare `genmath.elbo` with the closed forms above to
# round-off, for each way of computing the KL term.

_linear_domain = {
    x: Uniform(-4, 4),
    w: Uniform(-3, 3),
    b: Uniform(-3, 3),
    noise: LogUniform(1e-2, 1e2, ends=True),
    m: Uniform(-3, 3),
    v: LogUniform(1e-3, 1e2, ends=True),
}


def _linear_model(points):
    """(x, encoder, decoder, prior) of the linear-Gaussian model, one model per point: the
    decoder maps the flattened (S * B, 1) latents back to their points' parameters."""
    import torch

    from ._doubles import SigmaPointGaussian

    w_, b_, s_ = points[w], points[b], points[noise]

    def encoder(data):
        return SigmaPointGaussian(points[m][:, None], points[v].sqrt()[:, None])

    def decoder(latent):
        n = latent.shape[0] // w_.shape[0]
        loc = w_.repeat(n)[:, None] * latent + b_.repeat(n)[:, None]
        return torch.distributions.Independent(
            torch.distributions.Normal(loc, s_.repeat(n)[:, None]), 1
        )

    zero = torch.zeros(1, dtype=torch.float64)
    prior = torch.distributions.Independent(torch.distributions.Normal(zero, zero + 1), 1)
    return points[x][:, None], encoder, decoder, prior


def _elbo_by_code(kl):
    def evaluate(points):
        from ..core.elbo import elbo

        data, encoder, decoder, prior = _linear_model(points)
        return elbo(data, encoder, decoder, prior, n_samples=2, kl=kl)

    return evaluate


def _vae_elbo_by_code(points):
    from ..families.vae import VAE

    data, encoder, decoder, prior = _linear_model(points)
    return VAE(encoder, decoder, prior).elbo(data, n_samples=2, kl="analytic")


def _beta_vae_objective_by_code(points):
    """Minus `VAE.loss` (a batch mean), one input per call."""
    import torch

    from ..families.vae import VAE

    out = []
    for j in range(points[x].shape[0]):
        single = {key: value[j : j + 1] for key, value in points.items()}
        data, encoder, decoder, prior = _linear_model(single)
        model = VAE(encoder, decoder, prior, beta=float(single[beta]))
        out.append(-model.loss(data, n_samples=2))
    return torch.stack(out)


for _kl_method, _expression in (("mc", _reconstruction - _kl_prior), ("auto", _elbo_closed)):
    register(
        Binding(
            derivation="D-elbo-linear-gaussian",
            code=("genmath.core.elbo.elbo",),
            expression=_expression,
            evaluate=_elbo_by_code(_kl_method),
            domain=_linear_domain,
            samples=16,
            description=f"elbo(..., kl={_kl_method!r}) over the sigma points of q (exact)",
        )
    )
register(
    Binding(
        derivation="D-elbo-recon-kl",
        code=("genmath.core.elbo.elbo",),
        expression=_elbo_closed,
        evaluate=_elbo_by_code("analytic"),
        domain=_linear_domain,
        samples=16,
        description="elbo(..., kl='analytic'): the reconstruction term minus torch's closed-form KL",
    )
)
register(
    Binding(
        derivation="D-elbo-recon-kl",
        code=("genmath.families.vae.VAE.elbo",),
        expression=_elbo_closed,
        evaluate=_vae_elbo_by_code,
        domain=_linear_domain,
        samples=16,
        description="VAE.elbo of the linear-Gaussian model (decoder checked, analytic KL)",
    )
)
register(
    Binding(
        derivation="D-beta-vae",
        code=("genmath.families.vae.VAE.loss",),
        expression=_reconstruction - beta * _kl_prior,
        evaluate=_beta_vae_objective_by_code,
        domain={**_linear_domain, beta: Uniform(0, 8)},
        samples=12,
        description="minus VAE(beta).loss on one input: reconstruction minus beta KL",
    )
)


def _per_point_ppca(fn):
    """Evaluate ``fn(ppca, data)`` for the 1-D linear-Gaussian model of each point."""

    def evaluate(points):
        import torch

        from ..analytic import PPCA

        out = []
        variational = [points.get(m, points[x]), points.get(v, points[noise])]  # unused if absent
        for x_j, w_j, b_j, s_j, *rest in zip(
            points[x], points[w], points[b], points[noise], *variational, strict=True
        ):
            ppca = PPCA(w_j.reshape(1, 1), b_j.reshape(1), s_j)
            out.append(fn(ppca, x_j.reshape(1, 1), *rest).reshape(()))
        return torch.stack(out)

    return evaluate


def _exact_posterior_elbo(ppca, data, *_):
    import torch

    from ..core.elbo import elbo

    g = torch.Generator().manual_seed(0)
    return elbo(data, ppca.posterior_distribution, ppca.likelihood, ppca.prior, 3, g, kl="mc")


def _linear_vae_gap(ppca, data, m_j, v_j):
    import torch

    from ..families.vae import LinearGaussianVAE

    model = LinearGaussianVAE(1, 1, generator=torch.Generator().manual_seed(0)).double()
    with torch.no_grad():
        model.decoder.weight.copy_(ppca.W)
        model.decoder.bias.copy_(ppca.b)
        model.decoder.log_noise_std.copy_(ppca.noise_std.log())
        model.encoder.weight.zero_()
        model.encoder.bias.fill_(float(m_j))
        model.encoder.log_std.fill_(0.5 * float(v_j.log()))
    return model.elbo_gap(data)


_gap_domain = {**_linear_domain, noise: LogUniform(1e-2, 1e1, ends=True)}
register(
    Binding(
        derivation="D-elbo-gap",
        code=("genmath.analytic.PPCA.log_prob",),
        expression=_log_evidence,
        evaluate=_per_point_ppca(lambda ppca, data, *_: ppca.log_prob(data)),
        domain={s_: _gap_domain[s_] for s_ in (x, w, b, noise)},
        samples=16,
        description="PPCA.log_prob of the 1-D model: log N(x; b, w^2 + s^2)",
    )
)
register(
    Binding(
        derivation="D-elbo-gap",
        code=("genmath.core.elbo.elbo", "genmath.analytic.PPCA.posterior_distribution"),
        expression=_log_evidence,
        evaluate=_per_point_ppca(_exact_posterior_elbo),
        domain=_gap_domain,
        samples=16,
        description="elbo with the exact posterior as encoder (kl='mc', 3 random draws) is log p(x)",
    )
)
register(
    Binding(
        derivation="D-elbo-gap",
        code=("genmath.families.vae.LinearGaussianVAE.elbo_gap",),
        expression=_kl_posterior,
        evaluate=_per_point_ppca(_linear_vae_gap),
        domain=_gap_domain,
        samples=16,
        description="LinearGaussianVAE.elbo_gap with encoder N(m, v): KL to the exact posterior",
    )
)

_ppca_domain = {
    **{entry: Uniform(-2, 2) for entry in (*_W1, *_W3)},
    **{entry: Uniform(-2, 2) for entry in (*_b1, *_b3)},
    **{entry: Uniform(-4, 4) for entry in (*_x1, *_x3, *_z1, *_z3)},
    noise: LogUniform(5e-2, 5e0, ends=True),
}


def _ppca_by_code(W_sym, b_sym, x_sym, z_sym, what):
    def evaluate(points):
        import torch

        from ..analytic import PPCA

        def stacked(symbols):
            return torch.stack([points[s_] for s_ in symbols], -1)

        n = points[noise].shape[0]
        d, k = W_sym.shape
        Ws = stacked(list(W_sym)).reshape(n, d, k)
        bs, xs, zs = stacked(list(b_sym)), stacked(list(x_sym)), stacked(list(z_sym))
        out = []
        for j in range(n):
            ppca = PPCA(Ws[j], bs[j], points[noise][j])
            data, latent = xs[j : j + 1], zs[j : j + 1]
            if what == "joint":
                out.append(ppca.log_joint(data, latent))
            else:
                posterior = ppca.posterior_distribution(data).log_prob(latent)
                out.append(posterior + ppca.log_prob(data))
        return torch.cat(out)

    return evaluate


for _sides, _what, _samples in (
    ((_W3, _b3, _x3, _z3, _joint3), "joint", 12),
    ((_W3, _b3, _x3, _z3, _bayes3), "bayes", 16),
    ((_W1, _b1, _x1, _z1, _bayes1), "bayes", 12),
):
    _shape = f"d = {_sides[0].shape[0]}, k = {_sides[0].shape[1]}"
    register(
        Binding(
            derivation="D-ppca-posterior",
            code=(
                ("genmath.analytic.PPCA.log_joint",)
                if _what == "joint"
                else ("genmath.analytic.PPCA.posterior_distribution", "genmath.analytic.PPCA.log_prob")
            ),
            expression=_sides[4],
            evaluate=_ppca_by_code(*_sides[:4], _what),
            domain={s_: _ppca_domain[s_] for s_ in sp.sympify(_sides[4]).free_symbols},
            samples=_samples,
            description=(
                f"PPCA.log_joint ({_shape})"
                if _what == "joint"
                else f"log of the exact posterior at z plus PPCA.log_prob ({_shape})"
            ),
        )
    )

_precision = {  # the exact posterior of the d = 1, k = 2 model: precision M / s^2
    l11: _M1[0, 0] / noise**2,
    l12: _M1[0, 1] / noise**2,
    l22: _M1[1, 1] / noise**2,
    nu1: _mean1[0],
    nu2: _mean1[1],
}


def _linear_vae_by_code(fitted):
    def evaluate(points):
        import torch

        from ..analytic import PPCA
        from ..families.vae import LinearGaussianVAE

        def stacked(symbols):
            return torch.stack([points[s_] for s_ in symbols], -1)

        n = points[noise].shape[0]
        Ws = stacked(list(_W1)).reshape(n, 1, 2)
        if fitted:
            # the smallest gap depends on W and s only: any data point shows it. Points away
            # from b and from 0 test the encoder's matrix and its offset (at x = b = 0 a wrong
            # matrix would go unseen)
            bs = torch.linspace(-1.5, 2.0, n, dtype=torch.float64)[:, None]
            xs = torch.linspace(2.5, -0.5, n, dtype=torch.float64)[:, None]
        else:
            bs, xs = stacked(list(_b1)), stacked(list(_x1))
        out = []
        with torch.random.fork_rng(devices=[]):  # from_ppca draws (and overwrites) an init
            for j in range(n):
                ppca = PPCA(Ws[j], bs[j], points[noise][j])
                if fitted:
                    model = LinearGaussianVAE.from_ppca(ppca)
                else:
                    model = LinearGaussianVAE(1, 2, generator=torch.Generator().manual_seed(0))
                    model = model.double()
                    with torch.no_grad():
                        model.decoder.weight.copy_(ppca.W)
                        model.decoder.bias.copy_(ppca.b)
                        model.decoder.log_noise_std.copy_(ppca.noise_std.log())
                        model.encoder.weight.zero_()
                        model.encoder.bias.copy_(torch.stack([points[mf_m1][j], points[mf_m2][j]]))
                        model.encoder.log_std.copy_(
                            torch.stack([points[tau1][j], points[tau2][j]]).log()
                        )
                out.append(model.elbo_gap(xs[j : j + 1]))
        return torch.cat(out)

    return evaluate


register(
    Binding(
        derivation="D-mean-field-gaussian",
        code=("genmath.families.vae.LinearGaussianVAE.elbo_gap",),
        expression=_mf_gap,
        where=_precision,
        evaluate=_linear_vae_by_code(fitted=False),
        domain={
            **{s_: _ppca_domain[s_] for s_ in (*_W1, *_b1, *_x1, noise)},
            mf_m1: Uniform(-3, 3),
            mf_m2: Uniform(-3, 3),
            tau1: LogUniform(5e-2, 5e0),
            tau2: LogUniform(5e-2, 5e0),
        },
        samples=8,
        description="LinearGaussianVAE.elbo_gap of a mean-field encoder N(m, diag tau^2), d = 1, k = 2",
    )
)
register(
    Binding(
        derivation="D-mean-field-gaussian",
        code=("genmath.families.vae.LinearGaussianVAE.from_ppca",),
        expression=_mf_floor,
        where={key: value for key, value in _precision.items() if key in (l11, l12, l22)},
        evaluate=_linear_vae_by_code(fitted=True),
        domain={s_: _ppca_domain[s_] for s_ in (*_W1, noise)},
        samples=8,
        description="from_ppca's encoder attains the smallest mean-field gap, d = 1, k = 2",
    )
)

# --- sampling the model: x = W z + b + s eps ------------------------------------------------------

_eps = sp.Symbol("varepsilon", real=True)


def _sample_joint_by_code(points):
    """`PPCA.sample_joint` with its two standard-normal draws (z, then the noise) set to the
    point's: the log-joint of what it returns is the derivation's at x = W z + b + s eps,
    where W and b cancel (fixed here: a sample missing either would not cancel them)."""
    from unittest import mock

    import torch

    from ..analytic import PPCA

    out = []
    for j in range(points[noise].shape[0]):
        W = torch.tensor([[0.7, -1.2]], dtype=torch.float64)
        ppca = PPCA(W, torch.tensor([0.4], dtype=torch.float64), points[noise][j])
        draws = iter([torch.stack([points[_z1[0]][j], points[_z1[1]][j]]).reshape(1, 2),
                      points[_eps][j].reshape(1, 1)])
        with mock.patch.object(torch, "randn", lambda *args, draws=draws, **kwargs: next(draws)):
            x_j, z_j = ppca.sample_joint(1)
        out.append(ppca.log_joint(x_j, z_j))
    return torch.cat(out)


register(
    Binding(
        derivation="D-ppca-posterior",
        code=("genmath.analytic.PPCA.sample_joint",),
        expression=_joint1,
        where={x: _W1[0, 0] * _z1[0] + _W1[0, 1] * _z1[1] + b + noise * _eps},
        evaluate=_sample_joint_by_code,
        domain={**{s_: _ppca_domain[s_] for s_ in (*_z1, noise)}, _eps: Uniform(-3, 3)},
        samples=12,
        description="PPCA.sample_joint with preset standard-normal draws: the log-joint at x = W z + b + s eps",
    )
)

# --- PPCA by maximum likelihood ----------------------------------------------------------------

lam1, lam2, lam3 = sp.symbols("lambda_1 lambda_2 lambda_3", positive=True)
A_sq, V = sp.symbols("A V", positive=True)  # A = ||w||^2 of the one column, V = s^2


def _mean_log_likelihood(a_sq, var):
    """The average log-likelihood of PPCA with d = 3, k = 1, in the eigenbasis of the sample
    covariance diag(lambda) with the column along the top eigenvector: C = diag(A + V, V, V)."""
    return -(3 * sp.log(2 * sp.pi) + sp.log(a_sq + var) + 2 * sp.log(var)
             + lam1 / (a_sq + var) + (lam2 + lam3) / var) / 2


V_STAR = (lam2 + lam3) / 2
A_STAR = lam1 - V_STAR
_ell = _mean_log_likelihood(A_sq, V)
ML_VALUE = -(3 * sp.log(2 * sp.pi) + sp.log(lam1) + 2 * sp.log(V_STAR) + 3) / 2

register(
    Derivation(
        id="D-ppca-maximum-likelihood",
        title="Probabilistic PCA by maximum likelihood: noise = mean of the discarded eigenvalues",
        statement=(
            r"For data with sample covariance $S$ (eigenvalues $\lambda_1 \ge \dots \ge \lambda_d$), "
            r"the average PPCA log-likelihood $-\tfrac12[d\log 2\pi + \log\det C + "
            r"\operatorname{tr}(C^{-1}S)]$, $C = WW^\top + s^2 I$, is stationary at "
            r"$s^2 = \frac{1}{d - k}\sum_{j > k}\lambda_j$ and $W = U_k(\Lambda_k - s^2 I)^{1/2}$ "
            r"(Tipping & Bishop 1999), where it equals $-\tfrac12[d\log 2\pi + \sum_{j\le k}\log"
            r"\lambda_j + (d - k)\log s^2 + d]$. Shown for $d = 3$, $k = 1$ in the eigenbasis: "
            r"with $A = \|w\|^2$ and $V = s^2$ the two partial derivatives vanish at "
            r"$A = \lambda_1 - V$, $V = (\lambda_2 + \lambda_3)/2$ (rows 1–2), and the value there "
            r"is row 3 (rows 4–5 name the optimum). `ppca_maximum_likelihood` is bound on data whose sample covariance is "
            r"$\operatorname{diag}(\lambda)$."
        ),
        start=sp.ImmutableMatrix(
            [
                sp.diff(_ell, A_sq).subs({A_sq: A_STAR, V: V_STAR}),
                sp.diff(_ell, V).subs({A_sq: A_STAR, V: V_STAR}),
                _ell.subs({A_sq: A_STAR, V: V_STAR}),
                A_STAR,
                V_STAR,
            ]
        ),
        steps=[
            Step(
                rhs=sp.ImmutableMatrix([0, 0, ML_VALUE, A_STAR, V_STAR]),
                reason=(
                    r"At $A + V = \lambda_1$ the $A$-derivative $-\tfrac12[1/(A+V) - \lambda_1/"
                    r"(A+V)^2]$ vanishes, and the $V$-derivative reduces to $-\tfrac12[2/V - "
                    r"(\lambda_2 + \lambda_3)/V^2]$, zero at $V = (\lambda_2 + \lambda_3)/2$; the "
                    r"traces at the optimum are $1 + 2$."
                ),
                method=lambda e: sp.cancel(sp.expand_log(e, force=True)),
            ),
        ],
        symbols=(lam1, lam2, lam3, A_sq, V),
        references=("tipping1999probabilistic",),
        code=("genmath.families.vae.ppca_maximum_likelihood",),
        tests=("tests/families/test_vae.py",),
    )
)

_gap_top, _gap_mid = sp.symbols("g_1 g_2", positive=True)


def _ppca_ml_by_code(points):
    """Six points +-sqrt(3 lambda_j) e_j have mean 0 and sample covariance diag(lambda)."""
    import torch

    from ..families.vae import ppca_maximum_likelihood

    rows = []
    for j in range(points[lam3].shape[0]):
        l3 = points[lam3][j]
        l2 = l3 + points[_gap_mid][j]
        l1 = l2 + points[_gap_top][j]
        scales = (3 * torch.stack([l1, l2, l3])).sqrt()
        data = torch.cat([torch.diag(scales), -torch.diag(scales)])
        fitted = ppca_maximum_likelihood(data, 1)
        rows.append(
            torch.stack(
                [fitted.noise_std**2, (fitted.W**2).sum(), fitted.log_prob(data).mean()]
            )
        )
    return tuple(torch.stack(rows).T)


register(
    Binding(
        derivation="D-ppca-maximum-likelihood",
        code=("genmath.families.vae.ppca_maximum_likelihood",),
        expression=(V_STAR, A_STAR, ML_VALUE),
        where={lam2: lam3 + _gap_mid, lam1: lam3 + _gap_mid + _gap_top},
        evaluate=_ppca_ml_by_code,
        domain={lam3: LogUniform(1e-2, 1e1), _gap_mid: LogUniform(1e-2, 1e1), _gap_top: LogUniform(1e-2, 1e1)},
        samples=12,
        description="ppca_maximum_likelihood(k=1) on data of sample covariance diag(lambda): s^2, ||W||^2, mean log p",
    )
)
