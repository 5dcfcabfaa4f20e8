"""PPCA, the model whose ELBO is known exactly: its posterior, the best mean-field Gaussian
encoder and the gap it leaves, sampling the model, and the maximum-likelihood fit, bound to
`genmath.analytic.PPCA` and `genmath.families.vae.LinearGaussianVAE`. The general ELBO
identities these instantiate are in ``elbo_gap.py``.
"""

import sympy as sp

from ._engine import (
    NUMERIC,
    Binding,
    Derivation,
    LogUniform,
    Step,
    Uniform,
)
from ._gaussian import gaussian_identity, log_normal
from ._registry import register
from .elbo_gap import b, noise, x
from .score_matching import GaussianExpectation as E

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
