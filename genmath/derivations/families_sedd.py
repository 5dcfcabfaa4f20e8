"""SEDD (Lou et al. 2024): the concrete score from the posterior, and the score-entropy loss
(its Bregman term vanishes exactly at the ratio it regresses on, and is non-negative).

Bound to `concrete_score` (exact posterior, uniform and masking paths) and to
`score_entropy_loss` on the masking path at fixed times, per masked token of the code's draw.
"""

import functools

import sympy as sp
import torch

from ._chain import FromStep
from ._draws import in_float64, uniform_draw
from ._engine import NUMERIC, Binding, Derivation, Integers, LogUniform, Step, Uniform
from ._registry import register

# --- the concrete score ------------------------------------------------------------------
d0, d1 = sp.symbols("d_0 d_1", positive=True)  # the data law on three states
_data = [d0, d1, 1 - d0 - d1]
Q = sp.Matrix(3, 3, lambda i, j: sp.Symbol(f"Q_{i}{j}", positive=True))  # the kernel Q_t[x0, x]


def _marginal(state):
    return sum(_data[j] * Q[j, state] for j in range(3))


def _posterior(j, state):
    return _data[j] * Q[j, state] / _marginal(state)


def _ratios(state):
    return [_marginal(y) / _marginal(state) for y in range(3)]


def _from_posterior(state):
    return [sum(_posterior(j, state) * Q[j, y] / Q[j, state] for j in range(3)) for y in range(3)]


register(
    Derivation(
        id="D-sedd-concrete-score",
        title="SEDD's concrete score p_t(y)/p_t(x) from the posterior over the data",
        statement=(
            r"The concrete score of a token, $s(x)_y = p_t(y)/p_t(x)$ (Lou et al. 2024; Meng et al. "
            r"2022), is $\sum_j p(x_0 = j \mid x_t = x)\,\bar Q_t[j, y]/\bar Q_t[j, x]$: with "
            r"$p_t(y) = \sum_j p_0(j)\bar Q_t[j, y]$, divide and multiply each term by "
            r"$\bar Q_t[j, x]$ and recognise the posterior. So a denoiser's posterior gives the "
            r"score wherever $\bar Q_t[j, x] > 0$ for every $j$ (all of a uniform path before "
            r"$t = 1$, the masked positions of a masking path). Shown on three states, any data law "
            "and any kernel, for the ratios out of two states."
        ),
        start=sp.ImmutableMatrix(_ratios(0) + _ratios(2)),
        steps=[
            Step(
                rhs=sp.ImmutableMatrix(_from_posterior(0) + _from_posterior(2)),
                reason=(
                    r"$\frac{p_t(y)}{p_t(x)} = \sum_j \frac{p_0(j)\bar Q[j, x]}{p_t(x)}\,"
                    r"\frac{\bar Q[j, y]}{\bar Q[j, x]}$."
                ),
            ),
        ],
        symbols=(d0, d1, *Q),
        references=("lou2024discrete",),
        code=("genmath.families.discrete_diffusion.concrete_score",),
        tests=("tests/families/test_discrete_diffusion.py",),
    )
)

_tau = sp.Symbol("tau", real=True)
_t = sp.Symbol("t", positive=True)
_schedule = sp.cos(sp.pi * _tau / 2)


def _kernel(kind, keep):
    """The kernel's entries of a three-state path: UniformPath(3) or MaskPath(2) (mask last)."""
    if kind == "uniform":
        return sp.Matrix(3, 3, lambda i, j: keep * int(i == j) + (1 - keep) / 3)
    return sp.Matrix([[keep, 0, 1 - keep], [0, keep, 1 - keep], [0, 0, 1]])


def _case(kind):
    keep = _schedule.subs(_tau, _t)
    kernel = _kernel(kind, keep)
    where = {Q[i, j]: kernel[i, j] for i in range(3) for j in range(3)}
    if kind == "mask":
        where[d1] = 1 - d0  # no data on the mask state
    return where


@functools.cache
def _posterior_function(kind, state):
    columns = 3 if kind == "uniform" else 2
    values = [_posterior(j, state).subs(_case(kind)) for j in range(columns)]
    return sp.lambdify((_t, d0, d1), values, modules=[{"cos": torch.cos}, torch])


def _concrete_scores(kind):
    def evaluate(points):
        from ..core.discrete import MaskPath, UniformPath
        from ..families.discrete_diffusion import concrete_score

        path = UniformPath(3, _schedule, _tau) if kind == "uniform" else MaskPath(2, _schedule, _tau)
        first, mask = (0, path.mask_id) if kind == "mask" else (0, 2)
        out = []
        for j in range(points[_t].numel()):
            other = points[d1][j] if d1 in points else 1 - points[d0][j]
            row = []
            for state, token in ((0, first), (2, mask)):
                probs = torch.stack(
                    [torch.as_tensor(v, dtype=torch.float64) for v in _posterior_function(kind, state)(points[_t][j], points[d0][j], other)]
                )
                score = concrete_score(path, probs[None, None], torch.tensor([[token]]), points[_t][j])
                row.append(score[0, 0])
            out.append(torch.cat(row))
        values = torch.stack(out)
        # the masking path's ratios out of a visible token are not defined by the posterior
        # (NaN by design): only those out of the mask are compared there
        return tuple(values.T) if kind == "uniform" else tuple(values[:, 3:].T)

    return evaluate


for _kind in ("uniform", "mask"):
    _all = _from_posterior(0) + _from_posterior(2)
    register(
        Binding(
            derivation="D-sedd-concrete-score",
            code=("genmath.families.discrete_diffusion.concrete_score",),
            expression=tuple(_all if _kind == "uniform" else _all[3:]),
            where=_case(_kind),
            evaluate=in_float64(_concrete_scores(_kind)),
            domain={_t: Uniform(0.02, 0.98), d0: Uniform(0.05, 0.45), d1: Uniform(0.05, 0.45)},
            samples=6,
            description=(
                f"concrete_score with the exact posterior on a {_kind} path of three states: "
                + ("the ratios out of states 0 and 2" if _kind == "uniform" else "the ratios out of the mask")
            ),
        )
    )


# --- score entropy -----------------------------------------------------------------------
score, ratio = sp.symbols("s r", positive=True)
bregman = score - ratio * sp.log(score) + ratio * (sp.log(ratio) - 1)
s_data, s_a, s_b = sp.symbols(r"s_{x_0} s_a s_b", positive=True)
keep, d_keep = sp.symbols(r"\bar{alpha}_t \bar{alpha}'_t", real=True)
# a masked token of a masking path (K = 3): rates into the mask from each data symbol are
# -abar'/abar; the ratios are abar/(1 - abar) for x0 and 0 for the others
masked_token = (-d_keep / keep) * (s_a + s_b + bregman.subs({score: s_data, ratio: keep / (1 - keep)}))

register(
    Derivation(
        id="D-sedd-score-entropy",
        title="Score entropy: a Bregman divergence that vanishes exactly at the ratio",
        statement=(
            r"SEDD's loss (Lou et al. 2024) weighs, for each token and each state $y \ne x_t$, "
            r"the forward rate $F_t[y, x_t]$ into $x_t$ by $\ell(s, r) = s - r\log s + r(\log r - 1)$ "
            r"with $s$ the model's score and $r = \bar Q_t[x_0, y]/\bar Q_t[x_0, x_t]$. "
            r"$\ell(s, r) = r\,(x - 1 - \log x)$ for $x = s/r$: non-negative, zero only at $s = r$, so "
            r"the loss is minimised by the concrete score (D-sedd-concrete-score, its posterior "
            r"mean). On a masking path ($\bar Q_t = e^{\bar\sigma_t G}$, $\bar\sigma = -\log\bar"
            r"\alpha$, so $F_t = -\frac{\bar\alpha_t'}{\bar\alpha_t}G$) only masked tokens count, "
            r"each with $F = -\bar\alpha'/\bar\alpha$ from every data symbol, $r = \bar\alpha/(1 - "
            r"\bar\alpha)$ for $x_0$ and $0$ for the others: the last line."
        ),
        start=bregman,
        steps=[
            Step(
                rhs=ratio * (score / ratio - 1 - sp.log(score / ratio)),
                reason=r"Factor $r$; $\log s - \log r = \log(s/r)$ for positive $s, r$.",
            ),
            Step(
                rhs=sp.Integer(0),
                relation=">=",
                tag=NUMERIC,
                reason=r"$x - 1 \ge \log x$ for $x > 0$.",
            ),
            Step(
                lhs=FromStep("D-sedd-score-entropy", {score: ratio}, step=1),
                rhs=sp.Integer(0),
                reason=r"... with equality at $s = r$.",
            ),
            Step(
                lhs=masked_token,
                rhs=(-d_keep / keep)
                * (s_a + s_b + s_data - keep / (1 - keep) * (sp.log(s_data) - sp.log(keep / (1 - keep)) + 1)),
                reason=(
                    r"A masked token of a masking path: the terms of the other data symbols "
                    r"($r = 0$) are their scores; that of $x_0$ is $\ell(s, \bar\alpha/(1 - \bar"
                    r"\alpha))$."
                ),
            ),
        ],
        symbols=(score, ratio, s_data, s_a, s_b, keep, d_keep),
        references=("lou2024discrete",),
        code=("genmath.families.discrete_diffusion.score_entropy_loss",),
        tests=("tests/families/test_discrete_diffusion.py",),
        domain={keep: (0.05, 0.95), d_keep: (-3.0, -0.05)},
    )
)


def _score_entropy(points, own_time=False):
    """score_entropy_loss on MaskPath(3) (cosine schedule) at a given t (or, ``own_time``, at
    the t it draws itself) with the scores (s_x0, s_a, s_b) on the data symbols: per masked
    token of the code's draw."""
    from ..core.discrete import MaskPath
    from ..families.discrete_diffusion import score_entropy_loss
    from .families_discrete import _masked_count

    path = MaskPath(3, _schedule, _tau)
    x0 = torch.arange(48000 if own_time else 48)[None] % 3  # own t may be small: many tokens
    out = []
    for j in range(points[s_data].numel()):
        logs = torch.stack([points[s_data][j], points[s_a][j], points[s_b][j]]).log()
        recorded = []

        def model(xt, time, logs=logs, recorded=recorded):
            recorded.append(xt.clone())
            # the data token gets s_x0, the other two s_a then s_b, the mask state anything
            others = torch.stack([(x0 + 1) % 3, (x0 + 2) % 3], -1)
            order = torch.cat([x0[..., None], others.sort(-1).values], -1)
            values = torch.empty(*xt.shape, 4, dtype=torch.float64)
            values.scatter_(-1, order, logs.expand(*xt.shape, 3))
            values[..., 3] = 0.0
            return values

        if own_time:  # t=None: the loss draws t ~ U(0, 1) first from its generator
            seed = int(points[_seed][j])
            value = score_entropy_loss(model, path, x0, generator=torch.Generator().manual_seed(seed))
            count = _masked_count(path, recorded[-1])
            if not count:
                raise ValueError(f"seed {seed} masked no token: widen the sequence")
        else:
            for seed in range(j, j + 50):
                value = score_entropy_loss(model, path, x0, t=points[_t][j],
                                           generator=torch.Generator().manual_seed(seed))
                count = _masked_count(path, recorded[-1])
                if count:
                    break
        out.append(value[0] / count)
    return torch.stack(out)


_seed = sp.Symbol("seed", integer=True, nonnegative=True)


register(
    Binding(
        derivation="D-sedd-score-entropy",
        code=("genmath.families.discrete_diffusion.score_entropy_loss",),
        expression=masked_token,
        where={keep: _schedule.subs(_tau, _t), d_keep: sp.diff(_schedule, _tau).subs(_tau, _t)},
        evaluate=in_float64(_score_entropy),
        domain={_t: Uniform(0.05, 0.95), s_data: LogUniform(1e-2, 1e2), s_a: LogUniform(1e-2, 1e2), s_b: LogUniform(1e-2, 1e2)},
        samples=10,
        description=(
            "score_entropy_loss on a masking path at a given t, per masked token: the rate "
            "-abar'/abar times the scores of the other symbols plus the Bregman term of x0's"
        ),
    )
)
register(
    Binding(
        derivation="D-sedd-score-entropy",
        code=("genmath.families.discrete_diffusion.score_entropy_loss",),
        expression=masked_token,
        where={
            keep: _schedule.subs(_tau, uniform_draw(_seed)),
            d_keep: sp.diff(_schedule, _tau).subs(_tau, uniform_draw(_seed)),
        },
        evaluate=in_float64(lambda points: _score_entropy(points, own_time=True)),
        domain={_seed: Integers(0, 10**6), s_data: LogUniform(1e-2, 1e2), s_a: LogUniform(1e-2, 1e2),
                s_b: LogUniform(1e-2, 1e2)},
        samples=8,
        description=(
            "score_entropy_loss with its own time (t=None: t ~ U(0, 1), one per example, the "
            "generator's first draw) on a sequence of 48,000 tokens, per masked token"
        ),
    )
)
