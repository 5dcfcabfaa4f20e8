"""Shared pieces of the residual-flow topics (`families_residual`, `families_residual_inverse`):
the symbols, a non-normal $2\\times2$ Jacobian $J = V\\operatorname{diag}(\\lambda_1,
\\lambda_2)V^{-1}$ ($V = RS$, a rotation $R$ and a shear $S$) with its functions of the
eigenvalues, Mercator's partial sums with their integral remainders, and the binding helpers
that build a linear `InvertibleResidualBlock` ($g(x) = Wx + b$, ``hidden=()``) with a given
weight."""

import sympy as sp

from ._engine import Uniform
from .elbo_gap import _Integral

_RESIDUAL = "genmath.families.residual"
_TESTS = ("tests/families/test_residual.py",)

lam1, lam2 = sp.symbols("lambda_1 lambda_2", real=True)
s = sp.Symbol("s", real=True)  # the shear: how far W is from normal
k, m = sp.symbols("k m", integer=True, positive=True)  # summation indices
n = sp.Symbol("n", integer=True, positive=True)  # terms of the series
t = sp.Symbol("t", real=True)

_R = sp.Matrix([[sp.Rational(3, 5), -sp.Rational(4, 5)], [sp.Rational(4, 5), sp.Rational(3, 5)]])
_V = _R * sp.Matrix([[1, s], [0, 1]])
_V_inv = _V.inv()
_J = _V * sp.diag(lam1, lam2) * _V_inv


def _through_eigenvalues(f1, f2):
    """$V\\operatorname{diag}(f_1, f_2)V^{-1}$: a function of $W$ given by its eigenvalues."""
    return _V * sp.diag(f1, f2) * _V_inv


def _partial_sum(lam, terms):
    return sp.Sum((-1) ** (k + 1) * lam**k / k, (k, 1, terms))


def _remainder(lam, terms):
    # log(1 + lam) minus its partial sum: integrate 1/(1+t) = sum_{k<n} (-t)^k + (-t)^n/(1+t)
    return (-1) ** terms * _Integral(t**terms / (1 + t), (t, 0, lam))


_series = sp.Sum((-1) ** (k + 1) * (lam1**k + lam2**k) / k, (k, 1, n))


def _factor_logs(expr):
    """Each logarithm's argument factored (the determinant of I + J as a product)."""
    return expr.replace(lambda e: isinstance(e, sp.log), lambda e: sp.log(sp.factor(e.args[0])))



q = sp.Symbol("q", positive=True)  # roulette_continue: P(one more term)
n0 = sp.Symbol("n_0", integer=True, positive=True)  # terms always computed
j = sp.Symbol("j", integer=True, nonnegative=True)  # the extra terms drawn, G
M = sp.Symbol("M", integer=True, nonnegative=True)  # a cap on G

w11, w12, w21, w22 = sp.symbols("w_11 w_12 w_21 w_22", real=True)
_W = sp.Matrix([[w11, w12], [w21, w22]])
_entries = ((0, 0), (0, 1), (1, 0), (1, 1))


def _weight(l1, l2, shear=None):
    """W = V diag(l1, l2) V^{-1} as a float64 tensor (the bindings' Jacobian); without a
    shear, diag(l1, l2) itself."""
    import torch

    if shear is None:
        return torch.diag(torch.stack([l1, l2]))
    rotation = torch.tensor([[0.6, -0.8], [0.8, 0.6]], dtype=torch.float64)
    one = torch.ones((), dtype=torch.float64)
    basis = rotation @ torch.stack([torch.stack([one, shear]), torch.stack([0 * one, one])])
    return basis @ torch.diag(torch.stack([l1, l2])) @ torch.linalg.inv(basis)


def _block(weight, bias=(0.3, -0.2), **options):
    """A linear residual block with the given weight, its Lipschitz bound just above ||W||_2
    so that the spectral normalisation leaves W as it is."""
    import torch

    from ..families.residual import InvertibleResidualBlock

    norm = float(torch.linalg.matrix_norm(weight, ord=2))
    block = InvertibleResidualBlock(2, (), lipschitz=(1 + norm) / 2, **options).double()
    with torch.no_grad():
        block.layers[0].weight.copy_(weight)
        block.layers[0].bias.copy_(torch.as_tensor(bias, dtype=torch.float64))
    return block


def _shear(points, j):
    """A shear in [-0.1, 0.1] that varies with the point (the expressions do not depend on it:
    a code that did would fail), keeping ||W||_2 < 1 for |lambda| <= 0.9."""
    import torch

    return 0.1 * torch.cos(7 * points[lam1][j] + 3 * points[lam2][j])


_POINT = ((0.4, -1.1),)


def _point():
    import torch

    return torch.tensor(_POINT, dtype=torch.float64)


def _series_by_code(points, trace="exact", inverse=False, diagonal=False):
    import torch

    values = []
    for j in range(len(points[lam1])):
        weight = _weight(points[lam1][j], points[lam2][j], None if diagonal else _shear(points, j))
        options = {"logdet": "series", "trace": trace, "terms": int(points[n][j])}
        if trace == "hutchinson":
            options.update(noise="rademacher", probes=1 + j % 3)
        block = _block(weight, **options)
        generator = torch.Generator().manual_seed(j)
        with torch.no_grad():
            if inverse:
                _, logdet = block.inverse(_point())
                values.append(-logdet[0])
            else:
                values.append(block.forward_with_generator(_point(), generator)[1][0])
    return torch.stack(values)


def _exact_logdet_by_code(points):
    import torch

    values = []
    for j in range(len(points[lam1])):
        block = _block(_weight(points[lam1][j], points[lam2][j], _shear(points, j)), logdet="exact")
        with torch.no_grad():
            values.append(block(_point())[1][0])
    return torch.stack(values)


_eigen_domain = {lam1: Uniform(-0.9, 0.9), lam2: Uniform(-0.9, 0.9)}
_small_domain = {lam1: Uniform(-0.5, 0.5), lam2: Uniform(-0.5, 0.5)}
_CLASS = f"{_RESIDUAL}.InvertibleResidualBlock"


def _generator_for_extra(extra, continue_probability):
    """A generator whose first draw makes the code take ``extra`` roulette terms, found by
    replaying seeds through the law the derivation states, G = floor(log U / log q)."""
    import math

    import torch

    for seed in range(100_000):
        u = 1 - torch.rand(1, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
        if math.floor(math.log(float(u)) / math.log(continue_probability)) == extra:
            return torch.Generator().manual_seed(seed)
    raise RuntimeError(f"no seed draws {extra} extra terms at q = {continue_probability}")
