"""Categorical data on short sequences: a probability table read in base K, its softmax
parameterization and its token marginals (the sum rule), bound to `genmath.analytic.Categorical`."""

import sympy as sp

from ._engine import NUMERIC, Binding, Derivation, Integers, Step, Uniform
from ._registry import register

K = 3  # vocabulary size of the case shown (sequences of length L = 2)
x1, x2 = sp.symbols("x_1 x_2", integer=True, nonnegative=True)
logits = sp.Matrix(3, 3, lambda i, j: sp.Symbol(f"l_{i}{j}", real=True))
_Z = sum(sp.exp(v) for v in logits)
_table = logits.applyfunc(lambda v: sp.exp(v) / _Z)
POSITION = K * x1 + x2
# unevaluated, so the position stays visible (sympy would reduce floor(x_1 + x_2/3) at once)
DECODED = (sp.floor(POSITION / K, evaluate=False), sp.Mod(POSITION, K, evaluate=False))
ROW_MARGINALS = [sum(_table[i, j] for j in range(K)) for i in range(K)]
COLUMN_MARGINALS = [sum(_table[i, j] for i in range(K)) for j in range(K)]

register(
    Derivation(
        id="D-categorical-table",
        title="A categorical law on sequences as a table: base-K positions, softmax, token marginals",
        statement=(
            r"A law on sequences $x = (x_1, \dots, x_L)$, $x_i \in \{0, \dots, K-1\}$, is a table of "
            r"$K^L$ probabilities read row-major: the sequence $x$ sits at position "
            r"$n = \sum_i x_i K^{L-i}$, and position $n$ holds $x_i = \lfloor n/K^{L-i}\rfloor \bmod K$ "
            r"(`index` and `enumerate` invert each other). `from_logits` normalises $e^{l}$ over the "
            r"whole table; the token marginal $p(x_i = j)$ sums the table over the other axes (the "
            r"sum rule), and the marginals sum to one. Shown for $K = 3$, $L = 2$."
        ),
        start=sp.ImmutableMatrix([*DECODED, sum(_table), sum(ROW_MARGINALS), sum(COLUMN_MARGINALS)]),
        steps=[
            Step(
                rhs=sp.ImmutableMatrix([*DECODED, 1, 1, 1]),
                reason=(
                    r"The softmax table sums to one, and so do the row sums (the marginal of $x_1$) "
                    r"and the column sums (that of $x_2$)."
                ),
                method=sp.cancel,
            ),
            Step(
                rhs=sp.ImmutableMatrix([x1, x2, 1, 1, 1]),
                reason=(
                    r"Decoding the position $n = Kx_1 + x_2$ returns the tokens for every "
                    r"$x_1, x_2 \in \{0, \dots, K-1\}$ (checked at sampled integers)."
                ),
                tag=NUMERIC,
            ),
        ],
        symbols=(x1, x2, *logits),
        references=("cover2006elements",),
        code=(
            "genmath.analytic.Categorical.index",
            "genmath.analytic.Categorical.enumerate",
            "genmath.analytic.Categorical.from_logits",
            "genmath.analytic.Categorical.log_prob",
            "genmath.analytic.Categorical.token_marginals",
            "genmath.analytic.Categorical.sample",
        ),
        tests=("tests/analytic/test_categorical.py",),
        domain={x1: Integers(0, K - 1), x2: Integers(0, K - 1)},
    )
)

_cells = [(i, j) for i in range(K) for j in range(K)]


def _table_by_code(points):
    import torch

    from ..analytic import Categorical

    n = points[logits[0, 0]].shape[0]
    out = torch.empty(2 * K + len(_cells), n, dtype=torch.float64)
    sequences = torch.tensor(_cells)
    for k in range(n):
        table = torch.stack([points[v][k] for v in logits]).reshape(K, K)
        law = Categorical.from_logits(table)
        out[: len(_cells), k] = law.log_prob(sequences).exp()
        marginals = law.token_marginals()
        out[len(_cells) :, k] = torch.cat([marginals[0], marginals[1]])
    return tuple(out)


register(
    Binding(
        derivation="D-categorical-table",
        code=(
            "genmath.analytic.Categorical.from_logits",
            "genmath.analytic.Categorical.log_prob",
            "genmath.analytic.Categorical.token_marginals",
        ),
        expression=(*(_table[i, j] for i, j in _cells), *ROW_MARGINALS, *COLUMN_MARGINALS),
        evaluate=_table_by_code,
        domain={v: Uniform(-3, 3) for v in logits},
        samples=6,
        description=(
            "Categorical.from_logits(l): the probability of each of the 9 sequences (exp of "
            "log_prob) and the token marginals"
        ),
    )
)


def _positions_by_code(points):
    import torch

    from ..analytic import Categorical

    n = points[x1].shape[0]
    out = torch.empty(5, n, dtype=torch.float64)
    for k in range(n):
        tokens = torch.stack([points[x1][k], points[x2][k]])
        # all mass on the sequence (x_1, x_2): every draw of `sample` is that sequence
        probs = torch.zeros(K, K, dtype=torch.float64)
        probs[tokens[0], tokens[1]] = 1.0
        law = Categorical(probs)
        position = law.index(tokens[None])[0]
        decoded = law.enumerate()[position]
        drawn = law.sample(3, generator=torch.Generator().manual_seed(k))[0]
        out[:, k] = torch.stack([position, decoded[0], decoded[1], drawn[0], drawn[1]]).to(torch.float64)
    return tuple(out)


register(
    Binding(
        derivation="D-categorical-table",
        code=(
            "genmath.analytic.Categorical.index",
            "genmath.analytic.Categorical.enumerate",
            "genmath.analytic.Categorical.sample",
        ),
        expression=(POSITION, *DECODED, *DECODED),
        evaluate=_positions_by_code,
        domain={x1: Integers(0, K - 1), x2: Integers(0, K - 1)},
        samples=9,
        description=(
            "index of (x_1, x_2), enumerate at that position, and a draw of sample from the table "
            "with all its mass there"
        ),
    )
)
