"""MAR and Diffusion Forcing on a linear-Gaussian sequence: the AR(1) moments and Gaussian
conditioning (the exact context), and the exact per-token ε-prediction with the minimal value
of the ε-loss (the exact head and denoiser).

The bindings run `GaussianSequence`'s moments and conditionals, the exact head's coefficient
(`_gaussian_eps`) and the two losses with heads that are off by a known amount, at given
points: exactly, no Monte Carlo. The sample laws are checked in ``tests/families/test_mar.py``.
"""

import sympy as sp
import torch

from ._draws import in_float64
from ._engine import Binding, Derivation, LogUniform, Step, Uniform
from ._registry import register

# ------------------------------------------------------ the sequence and its conditionals
a, b = sp.symbols("a b", real=True)
nu, s1 = sp.symbols("nu s_1", positive=True)
m1 = sp.Symbol("m_1", real=True)
x0s, x2s = sp.symbols("x_0 x_2", real=True)  # the known tokens around the unknown middle one

# x = mu + M eta for three tokens: the loading of each token on the independent draws
_M = sp.Matrix([[s1, 0, 0], [a * s1, nu, 0], [a**2 * s1, a * nu, nu]])
_mu_rec = sp.Matrix([m1, a * m1 + b, a * (a * m1 + b) + b])
_v = [s1**2, a**2 * s1**2 + nu**2, a**2 * (a**2 * s1**2 + nu**2) + nu**2]
_Sigma = sp.Matrix(3, 3, lambda i, j: a ** abs(i - j) * _v[min(i, j)])
_mu = sp.Matrix([m1, a * m1 + b, a**2 * m1 + a * b + b])
# one scalar per matrix: a random linear functional of [Sigma | mu] (weights w_k) binds every entry
_w = sp.symbols("w_0:3", real=True)
_y = sp.Symbol("y", real=True)


def _functional(cov, mean):
    return sum(_w[i] * _w[j] * cov[i, j] for i in range(3) for j in range(3)) + sum(
        _w[k] * mean[k] for k in range(3)
    )


moments_rhs = _functional(_Sigma, _mu)

# the middle token given the two ends: precision form (the code) and Schur complement
_Lambda = _Sigma.inv()
_xK = sp.Matrix([x0s - _mu[0], x2s - _mu[2]])
_precision_form = 1 / _Lambda[1, 1] + _y * (
    _mu[1] - (_Lambda[1, 0] * _xK[0] + _Lambda[1, 2] * _xK[1]) / _Lambda[1, 1]
)
_SKK = _Sigma.extract([0, 2], [0, 2])
_S1K = _Sigma.extract([1], [0, 2])
_schur = (_Sigma[1, 1] - (_S1K * _SKK.inv() * _S1K.T)[0]) + _y * (_mu[1] + (_S1K * _SKK.inv() * _xK)[0])

register(
    Derivation(
        id="D-mar-gaussian-sequence",
        title="Linear-Gaussian sequence: AR(1) moments and the exact conditional of a token",
        statement=(
            r"The AR(1) sequence $x^1 = m_1 + s_1\eta^1$, $x^{k+1} = a x^k + b + \nu\eta^{k+1}$ is "
            r"$x = \mu + M\eta$ with $M$ lower triangular, so it is Gaussian with $\Sigma = MM^\top$: "
            r"$\Sigma_{jk} = a^{|k - j|}v_{\min(j,k)}$, $v_{k+1} = a^2v_k + \nu^2$, and "
            r"$\mu_{k+1} = a\mu_k + b$ (for three tokens, through $\sum_{jk} w_jw_k\Sigma_{jk} + \sum_k w_k\mu_k$ at any weights $w$). A token "
            r"given the known ones is Gaussian: in the precision $\Lambda = \Sigma^{-1}$, the "
            r"unknown block has covariance $\Lambda_{UU}^{-1}$ and mean $\mu_U - \Lambda_{UU}^{-1}"
            r"\Lambda_{UK}(x_K - \mu_K)$ — the Schur complement $\Sigma_{UU} - \Sigma_{UK}"
            r"\Sigma_{KK}^{-1}\Sigma_{KU}$ and the regression mean (shown for the middle of three "
            r"tokens given both ends, as variance $+\,y\,$mean for any $y$). This is the exact context of MAR."
        ),
        start=_functional(_M * _M.T, _mu_rec),
        steps=[
            Step(rhs=moments_rhs, reason=r"Multiply out $MM^\top$ and the mean recursion."),
            Step(
                lhs=_precision_form,
                rhs=_schur,
                reason=(
                    r"Block inversion: $(\Sigma^{-1})_{UU}^{-1}$ is the Schur complement, and "
                    r"$-\Lambda_{UU}^{-1}\Lambda_{UK} = \Sigma_{UK}\Sigma_{KK}^{-1}$."
                ),
                method=sp.simplify,
            ),
        ],
        symbols=(a, b, nu, s1, m1, x0s, x2s, _y, *_w),
        references=("li2024autoregressive", "bishop2006pattern"),
        code=(
            "genmath.families.mar.GaussianSequence.mean",
            "genmath.families.mar.GaussianSequence.covariance",
            "genmath.families.mar.GaussianSequence.conditional",
        ),
        tests=("tests/families/test_mar.py",),
        domain={a: (-0.95, 0.95), b: (-1.0, 1.0), nu: (0.2, 2.0), s1: (0.2, 2.0), m1: (-1.0, 1.0)},
    )
)


def _sequence(points, j):
    from ..families.mar import GaussianSequence

    def value(symbol, default):
        # a symbol the bound expression does not depend on is not sampled (the middle token
        # given both ends does not depend on the start's law): any value will do
        return float(points[symbol][j]) if symbol in points else default

    return GaussianSequence(3, 1, value(a, 0.7), value(b, 0.2), value(nu, 0.5), value(m1, 0.3), value(s1, 1.3))


def _moments(points):
    out = []
    for j in range(len(points[a])):
        seq = _sequence(points, j)
        w = torch.stack([points[_w[k]][j] for k in range(3)])
        out.append(w @ seq.covariance() @ w + w @ seq.mean())
    return torch.stack(out)


def _middle(points):
    out = []
    for j in range(len(points[a])):
        x = torch.tensor([[[float(points[x0s][j])], [123.0], [float(points[x2s][j])]]])
        mean, var = _sequence(points, j).conditional(x, torch.tensor([[True, False, True]]))
        out.append(var[0, 1] + points[_y][j] * mean[0, 1, 0])
    return torch.stack(out)


_seq_domain = {a: Uniform(-0.95, 0.95), b: Uniform(-1.0, 1.0), nu: LogUniform(0.2, 2.0),
               s1: LogUniform(0.2, 2.0), m1: Uniform(-1.0, 1.0)}
register(
    Binding(
        derivation="D-mar-gaussian-sequence",
        code=("genmath.families.mar.GaussianSequence.mean", "genmath.families.mar.GaussianSequence.covariance"),
        expression=moments_rhs,
        evaluate=in_float64(_moments),
        domain={**_seq_domain, **{w: Uniform(-1.0, 1.0) for w in _w}},
        samples=10,
        description="GaussianSequence.covariance and .mean of three tokens, through w'Sigma w + w'mu",
    )
)
register(
    Binding(
        derivation="D-mar-gaussian-sequence",
        code=("genmath.families.mar.GaussianSequence.conditional",),
        expression=_precision_form,
        evaluate=in_float64(_middle),
        domain={**_seq_domain, x0s: Uniform(-2.0, 2.0), x2s: Uniform(-2.0, 2.0), _y: Uniform(-2.0, 2.0)},
        samples=10,
        tolerance=1e-8,
        description="GaussianSequence.conditional: the middle token given both ends, variance + y mean",
    )
)

# ------------------------------------------------------- the exact eps and the eps-loss
al, sg, v = sp.symbols("alpha sigma v", positive=True)
m, xt, delta = sp.symbols("m x_t delta", real=True)
kappa = sg / (al**2 * v + sg**2)  # E[eps | x_t] = kappa (x_t - alpha m)
loss_start = 1 - 2 * kappa * sg + kappa**2 * (al**2 * v + sg**2) + delta**2
loss_min = al**2 * v / (al**2 * v + sg**2) + delta**2

register(
    Derivation(
        id="D-mar-eps-loss",
        title="Per-token eps-loss: minimised by the exact conditional eps, with the value in closed form",
        statement=(
            r"A token $x \sim \mathcal N(m, v)$ given its context, noised as $x_t = \alpha x + "
            r"\sigma\varepsilon$: $(\varepsilon, x_t)$ is Gaussian with $\mathrm{Cov}(\varepsilon, "
            r"x_t) = \sigma$, $\mathrm{Var}\,x_t = \alpha^2v + \sigma^2$, so $\mathbb E[\varepsilon "
            r"\mid x_t] = \kappa(x_t - \alpha m)$, $\kappa = \sigma/(\alpha^2v + \sigma^2)$ (MAR's "
            r"exact head). A head off by $\delta$, $\hat\varepsilon = \kappa(x_t - \alpha m) + "
            r"\delta$, has ε-loss $\mathbb E(\varepsilon - \hat\varepsilon)^2 = 1 - 2\kappa\sigma + "
            r"\kappa^2(\alpha^2v + \sigma^2) + \delta^2$ (the cross term with $\delta$ vanishes: "
            r"$\mathbb E[\varepsilon - \kappa(x_t - \alpha m)] = 0$) $= \alpha^2v/(\alpha^2v + "
            r"\sigma^2) + \delta^2$: least at $\delta = 0$, by $\delta^2$ per coordinate. For a "
            r"sequence with its own level per token (Diffusion Forcing), $x_t = Ax + S\varepsilon$ "
            r"gives in the same way $\mathbb E[\varepsilon \mid x_t] = S(A\Sigma A + S^2)^{-1}(x_t - "
            r"A\mu)$ and the minimal loss $\mathrm{tr}(I - S(A\Sigma A + S^2)^{-1}S)$ per coordinate."
        ),
        start=loss_start,
        steps=[
            Step(rhs=loss_min, reason=r"Substitute $\kappa$: $1 - \sigma^2/(\alpha^2 v + \sigma^2)$."),
        ],
        symbols=(al, sg, v, m, xt, delta),
        references=("li2024autoregressive", "chen2024diffusion", "ho2020denoising"),
        code=(
            "genmath.families.mar._gaussian_eps",
            "genmath.families.mar.mar_loss",
            "genmath.families.mar.diffusion_forcing_loss",
        ),
        tests=("tests/families/test_mar.py",),
    )
)


def _kappa(points):
    from ..families.mar import _gaussian_eps

    n = len(points[al])
    mean = torch.linspace(-2.0, 2.0, n, dtype=torch.float64).reshape(n, 1, 1)  # any mean m
    cov = points[v].reshape(n, 1, 1)
    x = mean * points[al].reshape(n, 1, 1) + 1.0  # x_t - alpha m = 1
    return _gaussian_eps(mean, cov, x, points[al].reshape(n, 1), points[sg].reshape(n, 1)).reshape(n)


register(
    Binding(
        derivation="D-mar-eps-loss",
        code=("genmath.families.mar._gaussian_eps",),
        expression=kappa,
        evaluate=in_float64(_kappa),
        domain={al: LogUniform(1e-3, 1.0), sg: LogUniform(1e-3, 1.0), v: LogUniform(1e-2, 10.0)},
        samples=16,
        description="_gaussian_eps of one token: the coefficient kappa of x_t - alpha m",
    )
)


def _offset_loss(which):
    """The loss of a head/denoiser that returns the drawn eps plus delta (recovered from x_t
    and the known x_0): exactly delta^2 per coordinate, whatever the draws."""

    def evaluate(points):
        from ..core.path import GaussianPath
        from ..core.schedules import CondOT
        from ..families.mar import diffusion_forcing_loss, mar_loss

        path = GaussianPath(CondOT())
        out = []
        for j in range(len(points[delta])):
            x0 = torch.randn(3, 4, 1, generator=torch.Generator().manual_seed(j))
            t = torch.rand(3, 4, generator=torch.Generator().manual_seed(100 + j)) * 0.9 + 0.05
            shift = points[delta][j]
            # the loss's own noise from a seed of its own: drawn from x0's seed, eps was x0
            # itself, and on CondOT x_t = (1 - t) x0 + t x0 = eps, so swapping them went unseen
            noise_draws = torch.Generator().manual_seed(1000 + j)

            def recovered(x, tt, x0_rows, shift=shift):
                alpha, sigma = path.alpha(tt)[:, None], path.sigma(tt)[:, None]
                return (x - alpha * x0_rows) / sigma + shift

            if which == "mar":
                known = torch.tensor([[True, False, False, True], [False] * 4, [True, True, True, False]])
                rows = (~known).nonzero(as_tuple=True)

                def head(x, tt, z, x0_rows=x0[rows]):
                    return recovered(x, tt, x0_rows)

                values = mar_loss(lambda x, k: x, head, path, x0, noise_draws, known=known, t=t)
            else:

                def denoiser(x, tt, x0=x0, recovered=recovered):
                    flat = recovered(x.reshape(-1, 1), tt.reshape(-1), x0.reshape(-1, 1))
                    return flat.reshape(x.shape)

                values = diffusion_forcing_loss(denoiser, path, x0, t, noise_draws)
            out.append(values.mean())
        return torch.stack(out)

    return evaluate


for _which, _name in (("mar", "mar_loss"), ("df", "diffusion_forcing_loss")):
    register(
        Binding(
            derivation="D-mar-eps-loss",
            code=(f"genmath.families.mar.{_name}",),
            expression=delta**2,
            evaluate=in_float64(_offset_loss(_which)),
            domain={delta: Uniform(-2.0, 2.0)},
            samples=6,
            tolerance=1e-9,
            description=f"{_name} of a head off by delta from the drawn eps: delta^2 per coordinate",
        )
    )
