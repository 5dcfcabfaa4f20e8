"""The ELBO: its gap to the log-evidence, its reconstruction-minus-KL form, and Jensen's bound.

The general identities are checked on the integrands (densities are positive sympy functions,
integrals over the same variable are combined by linearity); the linear-Gaussian model, where
every term has a closed form, checks the same identities end to end.
"""

import mpmath
import sympy as sp
from sympy.core.function import AppliedUndef

from ._engine import CITED, NUMERIC, SYMBOLIC, Derivation, Step, sound_rewrite
from ._registry import register

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


def _register_elbo_gap(closed_form_steps):
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
                r"from the KL with Bayes' rule $p(z\mid x) = p(x,z)/p(x)$ written in; steps 4–7 "
                "check it, and the bound, in closed form for the linear-Gaussian model "
                r"$z \sim \mathcal N(0,1)$, $x\mid z \sim \mathcal N(wz + b, s^2)$ with "
                r"$q = \mathcal N(m, v)$."
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
                *closed_form_steps,
            ],
            symbols=(x, z, w, b, noise, m, v),
            references=("kingma2014auto", "blei2017variational", "tipping1999probabilistic"),
            code=("genmath.core.elbo.elbo", "genmath.core.elbo.iwae", "genmath.analytic.PPCA"),
            tests=("tests/core/test_elbo.py", "tests/analytic/test_ppca.py"),
        )
    )


# --- The linear-Gaussian model, where every term is closed form. ------------------------------
w, b, m = sp.symbols("w b m", real=True)
noise, v = sp.symbols("s v", positive=True)


def _log_normal(value, mean, var):
    return -sp.log(2 * sp.pi * var) / 2 - (value - mean) ** 2 / (2 * var)


def _kl_normal(m1, v1, m2, v2):
    """KL(N(m1, v1) || N(m2, v2)), the closed form of `D-kl-gaussian` written in variances."""
    return sp.log(v2 / v1) / 2 + (v1 + (m1 - m2) ** 2) / (2 * v2) - sp.Rational(1, 2)


_log_evidence = _log_normal(x, b, w**2 + noise**2)
_post_mean = w * (x - b) / (w**2 + noise**2)
_post_var = noise**2 / (w**2 + noise**2)
# E_q[log N(x; w z + b, s^2)] with E_q[(x - wz - b)^2] = (x - wm - b)^2 + w^2 v
_reconstruction = -sp.log(2 * sp.pi * noise**2) / 2 - ((x - w * m - b) ** 2 + w**2 * v) / (
    2 * noise**2
)
_kl_prior = _kl_normal(m, v, 0, 1)
_kl_posterior = _kl_normal(m, v, _post_mean, _post_var)


def _normal_pdf(value, mean, var):
    return sp.exp(_log_normal(value, mean, var))


_q_pdf = _normal_pdf(z, m, v)

_elbo_gap_steps = [
    Step(
        lhs=_Integral(
            _q_pdf * (_log_normal(x, w * z + b, noise**2) + _log_normal(z, 0, 1) - sp.log(_q_pdf)),
            (z, -sp.oo, sp.oo),
        ),
        rhs=_reconstruction - _kl_prior,
        reason=(
            r"The linear-Gaussian ELBO in closed form: the expected log-likelihood uses "
            r"$\mathbb E_q[(x - wz - b)^2] = (x - wm - b)^2 + w^2 v$, and the rest is "
            r"$-\mathrm{KL}(\mathcal N(m, v)\,\|\,\mathcal N(0, 1))$. Checked by quadrature."
        ),
        tag=NUMERIC,
        tolerance=1e-10,
        samples=3,
    ),
    Step(
        rhs=_log_evidence - _kl_posterior,
        reason=(
            r"The ELBO plus the KL to the exact posterior "
            r"$\mathcal N\big(w(x-b)/(w^2+s^2),\ s^2/(w^2+s^2)\big)$ is the log-evidence "
            r"$\log \mathcal N(x; b, w^2 + s^2)$, for every $m$ and $v$: the gap identity, "
            "end to end."
        ),
        tag=SYMBOLIC,
    ),
    Step(
        lhs=_log_evidence,
        rhs=_reconstruction - _kl_prior,
        relation=">=",
        reason=(
            r"Jensen's inequality for the concave logarithm: "
            r"$\log p(x) = \log \mathbb E_q[p(x,z)/q(z)] \ge \mathbb E_q[\log p(x,z)/q(z)]$."
        ),
        tag=CITED,
        theorem="Jensen's inequality",
        reference="cover2006elements",
    ),
    Step(
        lhs=_log_evidence,
        rhs=_reconstruction - _kl_prior,
        relation=">=",
        reason=(
            "The bound checked at random model and variational parameters of the "
            "linear-Gaussian model."
        ),
        tag=NUMERIC,
        samples=16,
    ),
]
_register_elbo_gap(_elbo_gap_steps)

register(
    Derivation(
        id="D-elbo-recon-kl",
        title="The ELBO as reconstruction minus KL to the prior",
        statement=(
            r"With $p(x, z) = p(x\mid z)\,p(z)$, "
            r"$\mathrm{ELBO}(q) = \mathbb E_q[\log p(x\mid z)] - \mathrm{KL}(q(z\mid x)\,\|\,p(z))$: "
            "a reconstruction term and a regulariser, the KL being closed form for Gaussians "
            "(`D-kl-vae`). Steps 2–4 give both terms in closed form for the linear-Gaussian "
            r"model $z \sim \mathcal N(0,1)$, $x\mid z \sim \mathcal N(wz + b, s^2)$, "
            r"$q = \mathcal N(m, v)$."
        ),
        start=_expectation(sp.log(p_cond(z) * p_prior(z)) - sp.log(q(z))),
        steps=[
            Step(
                rhs=_expectation(sp.log(p_cond(z)))
                - _expectation(sp.log(q(z)) - sp.log(p_prior(z))),
                reason=(
                    r"Factor the joint, split the logarithm and the integral: the second "
                    r"integral is $\mathrm{KL}(q\,\|\,p(z))$."
                ),
                method=_merge_integrals,
            ),
            Step(
                lhs=_Integral(_q_pdf * _log_normal(x, w * z + b, noise**2), (z, -sp.oo, sp.oo)),
                rhs=_reconstruction,
                reason=(
                    r"Linear-Gaussian model: the reconstruction term is closed form, since "
                    r"$\mathbb E_q[(x - wz - b)^2] = (x - wm - b)^2 + w^2 v$. Checked by quadrature."
                ),
                tag=NUMERIC,
                tolerance=1e-10,
                samples=3,
            ),
            Step(
                lhs=_Integral(_q_pdf * (sp.log(_q_pdf) - _log_normal(z, 0, 1)), (z, -sp.oo, sp.oo)),
                rhs=_kl_prior,
                reason=(
                    r"The KL term of the same model, $\mathrm{KL}(\mathcal N(m, v)\,\|\,"
                    r"\mathcal N(0, 1))$, by quadrature against `D-kl-gaussian`."
                ),
                tag=NUMERIC,
                tolerance=1e-10,
                samples=3,
            ),
            Step(
                rhs=-(1 + sp.log(v) - m**2 - v) / 2,
                reason=r"The VAE form of `D-kl-vae` with $\sigma^2 = v$.",
            ),
        ],
        symbols=(x, z, w, b, noise, m, v),
        references=("kingma2014auto", "blei2017variational"),
        code=("genmath.core.elbo.elbo", "genmath.core.elbo.diagonal_gaussian_kl"),
        tests=("tests/core/test_elbo.py", "tests/analytic/test_ppca.py"),
    )
)
