"""The RBF-kernel MMD between two Gaussians in closed form, and the U-statistic that inductive
moment matching estimates it by (`genmath.families.flow_maps_imm`)."""

import sympy as sp

from ._engine import Binding, Derivation, LogUniform, Step, Uniform
from ._registry import register

_IMM = "genmath.families.flow_maps_imm"
_TESTS = ("tests/families/test_flow_maps_imm.py",)
d, delta, m1, m2 = sp.symbols("d delta mu_1 mu_2", real=True)
S, ell, s1, s2 = sp.symbols("S ell s_1 s_2", positive=True)
a1, a2, b1, b2 = sp.symbols("a_1 a_2 b_1 b_2", real=True)


def _kernel_mean(shift, spread):
    return ell / sp.sqrt(spread + ell**2) * sp.exp(-shift**2 / (2 * (spread + ell**2)))


def _k(u, v):
    return sp.exp(-((u - v) ** 2) / (2 * ell**2))


KERNEL_MEAN = _kernel_mean(delta, S)
MMD = _kernel_mean(0, 2 * s1**2) + _kernel_mean(0, 2 * s2**2) - 2 * _kernel_mean(m1 - m2, s1**2 + s2**2)
U_STAT = _k(a1, a2) + _k(b1, b2) - _k(a1, b2) - _k(b1, a2)

register(
    Derivation(
        id="D-gaussian-rbf-mmd",
        title="The RBF-kernel MMD between two Gaussians, and its U-statistic",
        statement=(
            r"For independent $X \sim \mathcal N(\mu_1, s_1^2)$, $Y \sim \mathcal N(\mu_2, s_2^2)$ "
            r"the difference $D = X - Y$ is $\mathcal N(\delta, S)$, $\delta = \mu_1 - \mu_2$, "
            r"$S = s_1^2 + s_2^2$, and $\mathbb E\,e^{-D^2/(2\ell^2)} = "
            r"\tfrac{\ell}{\sqrt{S + \ell^2}}e^{-\delta^2/(2(S + \ell^2))}$ (in $d$ dimensions, "
            r"per eigendirection: $\det(I + S/\ell^2)^{-1/2}e^{-\delta^\top(S + \ell^2 I)^{-1}\delta/2}$). "
            r"By bilinearity $\mathrm{MMD}^2 = \mathbb E k(X, X') + \mathbb E k(Y, Y') - "
            r"2\mathbb E k(X, Y)$; with two samples of each, "
            r"$k(a_1, a_2) + k(b_1, b_2) - k(a_1, b_2) - k(b_1, a_2)$ has exactly that "
            r"expectation (each term pairs independent draws): the U-statistic of IMM."
        ),
        start=sp.ImmutableMatrix([
            sp.Integral(sp.exp(-(d - delta) ** 2 / (2 * S)) / sp.sqrt(2 * sp.pi * S)
                        * sp.exp(-d**2 / (2 * ell**2)), (d, -sp.oo, sp.oo)),
            MMD,
            U_STAT,
        ]),
        steps=[
            Step(
                rhs=sp.ImmutableMatrix([KERNEL_MEAN, MMD, U_STAT]),
                reason=(
                    r"Complete the square in $d$ and integrate the Gaussian; the second and "
                    r"third rows are the definitions the code evaluates."
                ),
                method=lambda e: sp.simplify(sp.powsimp(sp.expand(sp.powsimp(e, combine="exp")), combine="exp")),
            ),
        ],
        symbols=(d, delta, S, ell, m1, m2, s1, s2, a1, a2, b1, b2),
        references=("gretton2012kernel", "zhou2025inductive"),
        code=(f"{_IMM}.gaussian_rbf_kernel_mean", f"{_IMM}.gaussian_rbf_mmd",
              f"{_IMM}.mmd_unbiased"),
        tests=_TESTS,
    )
)


def _by_code(points):
    import torch

    from ..families.flow_maps_imm import gaussian_rbf_kernel_mean, gaussian_rbf_mmd, mmd_unbiased

    rows = []
    for j in range(points[m1].shape[0]):
        mu1, mu2 = points[m1][j].reshape(1), points[m2][j].reshape(1)
        c1, c2 = points[s1][j].reshape(1, 1) ** 2, points[s2][j].reshape(1, 1) ** 2
        bw = float(points[ell][j])
        a = torch.stack([points[a1][j], points[a2][j]]).reshape(1, 2, 1)
        b = torch.stack([points[b1][j], points[b2][j]]).reshape(1, 2, 1)
        rows.append(torch.stack([
            gaussian_rbf_kernel_mean(mu1, c1, mu2, c2, bw),
            gaussian_rbf_mmd(mu1, c1, mu2, c2, bw),
            mmd_unbiased(a, b, bw)[0],  # the M(M - 1) = 2 ordered pairs, averaged
        ]))
    return tuple(torch.stack(rows).T)


register(
    Binding(
        derivation="D-gaussian-rbf-mmd",
        code=(f"{_IMM}.gaussian_rbf_kernel_mean", f"{_IMM}.gaussian_rbf_mmd",
              f"{_IMM}.mmd_unbiased"),
        expression=(KERNEL_MEAN, MMD, U_STAT),
        where={delta: m1 - m2, S: s1**2 + s2**2},
        evaluate=_by_code,
        domain={m1: Uniform(-2, 2), m2: Uniform(-2, 2), s1: LogUniform(0.1, 3),
                s2: LogUniform(0.1, 3), ell: LogUniform(0.2, 5), a1: Uniform(-3, 3),
                a2: Uniform(-3, 3), b1: Uniform(-3, 3), b2: Uniform(-3, 3)},
        samples=12,
        description=(
            "gaussian_rbf_kernel_mean and gaussian_rbf_mmd in one dimension, and mmd_unbiased "
            "on two samples of each"
        ),
    )
)
