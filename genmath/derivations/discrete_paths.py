"""Discrete paths: the masking and uniform kernels compose, and their posteriors by Bayes.

Back `genmath.core.discrete` (`MaskPath`, `UniformPath`); the check at the end compares the
torch posterior with brute-force Bayes over the full kernel matrices.
"""

import functools
import itertools

import sympy as sp
import torch

from ._engine import Binding, Check, Derivation, Integers, Step, Uniform
from ._registry import register

a, b = sp.symbols("abar_s r", positive=True)  # keep-probability up to s, and from s to t
K = sp.Symbol("K", integer=True, positive=True)

# entries of the uniform kernel U(keep) = keep I + (1 - keep) 11^T / K: on and off the diagonal
def _on(keep):
    return keep + (1 - keep) / K


def _off(keep):
    return (1 - keep) / K


# Chapman–Kolmogorov entries (Q̄_s Q_{s→t})[i, k] = sum_j Q̄_s[i, j] Q_{s→t}[j, k], the sum
# over the intermediate state j written out: for the uniform kernel j = i = k and the K - 1
# others (diagonal), or j = i, j = k and the K - 2 others (off the diagonal); for the mask a
# data token i reaches itself only through j = i, and the mask m through j = i or j = m
_same = _on(a) * _on(b) + (K - 1) * _off(a) * _off(b)
_diff = _on(a) * _off(b) + _off(a) * _on(b) + (K - 2) * _off(a) * _off(b)
_mask_keep = a * b
_mask_lost = a * (1 - b) + (1 - a) * 1
COMPOSED = sp.ImmutableMatrix([_same, _diff, _mask_keep, _mask_lost])
CUMULATIVE = sp.ImmutableMatrix([a * b + (1 - a * b) / K, (1 - a * b) / K, a * b, 1 - a * b])

register(
    Derivation(
        id="D-discrete-kernels",
        title="Masking and uniform kernels compose: Q̄_t = Q̄_s Q_{s→t} with keep-probability ᾱ_t/ᾱ_s",
        statement=(
            r"Let $\bar\alpha_s$ be the keep-probability up to $s$ and $r = \bar\alpha_t/\bar\alpha_s$ "
            r"that from $s$ to $t$. The uniform kernel $\bar Q = \bar\alpha I + (1-\bar\alpha)\mathbf 1"
            r"\mathbf 1^\top/K$ and the masking kernel $\bar Q = \bar\alpha I + (1-\bar\alpha)\mathbf 1"
            r"e_m^\top$ (mask row $e_m^\top$) satisfy $\bar Q(\bar\alpha_s)\,Q(r) = \bar Q(\bar\alpha_s r)$, "
            "for every number $K$ of symbols. The chain starts from the entries of the product "
            r"as sums over the intermediate state (uniform: diagonal, off-diagonal; mask: a data "
            r"token kept, a data token masked; the other entries are $0$, and the mask row "
            r"$e_m^\top$ is absorbing) and arrives at the entries of $\bar Q(\bar\alpha_s r)$. "
            r"Equivalently, with $J = \mathbf 1\mathbf 1^\top$ and $J^2 = KJ$, the coefficient of "
            r"$J$ in $(aI + \frac{1-a}{K}J)(rI + \frac{1-r}{K}J)$ is $\frac{1-ar}{K}$."
        ),
        start=COMPOSED,
        steps=[
            Step(
                rhs=CUMULATIVE,
                reason=(
                    r"Expand the sums: uniform, the diagonal is $\bar\alpha_s r + (1 - \bar\alpha_s r)/K$ "
                    r"and every off-diagonal entry $(1 - \bar\alpha_s r)/K$; mask, a token survives "
                    r"both steps with probability $\bar\alpha_s r$ and otherwise is masked (once "
                    "masked it stays masked)."
                ),
            ),
        ],
        symbols=(a, b, K),
        references=("austin2021structured",),
        code=(
            "genmath.core.discrete.DiscretePath.cumulative_kernel",
            "genmath.core.discrete.DiscretePath.step_kernel",
            "genmath.core.discrete.DiscretePath.forward_probs",
            "genmath.core.discrete.DiscretePath.alpha_bar",
        ),
        tests=("tests/core/test_discrete.py",),
    )
)

# the posterior q(x_s | x_t, x_0) entries by Bayes: prior row times likelihood column over
# their sum over x_s (the Chapman–Kolmogorov entries above are those sums)
_BAYES = sp.ImmutableMatrix(
    [
        # mask, x_t = m: x_s = x_0 (kept to s, masked after) or x_s = m (masked by s)
        a * (1 - b) / _mask_lost,
        (1 - a) * 1 / _mask_lost,
        # uniform, x_t = x_0: x_s = x_0, or x_s = j another symbol
        _on(a) * _on(b) / _same,
        _off(a) * _off(b) / _same,
        # uniform, x_t != x_0: x_s = x_0, x_s = x_t, or x_s = j a third symbol
        _on(a) * _off(b) / _diff,
        _off(a) * _on(b) / _diff,
        _off(a) * _off(b) / _diff,
    ]
)
_EVIDENCE = {_mask_lost: 1 - a * b, _same: a * b + (1 - a * b) / K, _diff: (1 - a * b) / K}
POSTERIOR = sp.ImmutableMatrix(
    [
        (a - a * b) / (1 - a * b),
        (1 - a) / (1 - a * b),
        (K * a + 1 - a) * (K * b + 1 - b) / (K * (K * a * b + 1 - a * b)),
        (1 - a) * (1 - b) / (K * (K * a * b + 1 - a * b)),
        (K * a + 1 - a) * (1 - b) / (K * (1 - a * b)),
        (1 - a) * (K * b + 1 - b) / (K * (1 - a * b)),
        (1 - a) * (1 - b) / (K * (1 - a * b)),
    ]
)

register(
    Derivation(
        id="D-discrete-posterior",
        title="Posterior q(x_s | x_t, x_0) of the masking and uniform paths by Bayes' rule",
        statement=(
            r"$q(x_s \mid x_t, x_0) = \bar Q_s[x_0, x_s]\,Q_{s\to t}[x_s, x_t] / \bar Q_t[x_0, x_t]$: "
            r"the numerator is $q(x_s \mid x_0)\,q(x_t \mid x_s)$ (the path is Markov) and its sum "
            r"over $x_s$ is the evidence $\bar Q_t[x_0, x_t]$ (D-discrete-kernels). For the masking "
            r"path with $x_t$ masked this gives $q(x_s = x_0) = (\bar\alpha_s - \bar\alpha_t)/(1 - "
            r"\bar\alpha_t)$ and $q(x_s = m) = (1 - \bar\alpha_s)/(1 - \bar\alpha_t)$; with "
            r"$x_t = x_0$ unmasked, $x_s = x_0$. For the uniform path the evidence is "
            r"$\bar\alpha_t\delta_{x_0 x_t} + (1 - \bar\alpha_t)/K$ with $\bar\alpha_t = "
            r"\bar\alpha_s r$, and the chain arrives at every entry in closed form."
        ),
        start=_BAYES,
        steps=[
            Step(
                rhs=_BAYES.subs(_EVIDENCE),
                reason=(
                    r"The evidence, summed over $x_s$: mask, $x_t = m$: $\bar\alpha_s(1 - r) + "
                    r"(1 - \bar\alpha_s)\cdot 1 = 1 - \bar\alpha_t$; uniform, $x_t = x_0$: "
                    r"$\bar\alpha_t + (1 - \bar\alpha_t)/K$; uniform, $x_t \ne x_0$: "
                    r"$(1 - \bar\alpha_t)/K$ (the entries of $\bar Q_t$, D-discrete-kernels)."
                ),
            ),
            Step(
                rhs=POSTERIOR,
                reason=(
                    r"Multiply numerator and denominator by $K$ (uniform) and write "
                    r"$\bar\alpha_s r = \bar\alpha_t$: so $q(x_s = x_0 \mid x_t = m, x_0) = "
                    r"(\bar\alpha_s - \bar\alpha_t)/(1 - \bar\alpha_t)$."
                ),
            ),
        ],
        symbols=(a, b, K),
        references=("austin2021structured", "sahoo2024simple"),
        code=("genmath.core.discrete.DiscretePath.posterior_probs",),
        tests=("tests/core/test_discrete.py",),
    )
)


def _posterior_brute_force_error() -> float:
    """Largest gap between `posterior_probs` and Bayes over the full kernel matrices, for
    every (x_0, x_t) pair of small K at a few (s, t)."""
    from ..core.discrete import MaskPath, UniformPath

    worst = 0.0
    for path in (MaskPath(4, mask_id=6), UniformPath(4)):
        noisy_ids = list(range(4)) + ([path.mask_id] if isinstance(path, MaskPath) else [])
        for s, t in ((0.1, 0.4), (0.3, 0.95), (0.0, 1.0)):
            prior = path.cumulative_kernel(torch.tensor(s, dtype=torch.float64))
            step = path.step_kernel(
                torch.tensor(s, dtype=torch.float64), torch.tensor(t, dtype=torch.float64)
            )
            for x0, xt in itertools.product(range(4), noisy_ids):
                state = 4 if xt == getattr(path, "mask_id", None) else xt
                joint = prior[x0, :] * step[:, state]
                if joint.sum() == 0:
                    continue  # x_t impossible given x_0
                expected = joint / joint.sum()
                got = path.posterior_probs(
                    torch.tensor([xt]),
                    torch.tensor([x0]),
                    torch.tensor(s, dtype=torch.float64),
                    torch.tensor(t, dtype=torch.float64),
                )[0]
                worst = max(worst, float((got - expected).abs().max()))
    return worst


register(
    Check(
        id="C-discrete-posterior",
        title="Discrete posteriors equal brute-force Bayes over the kernel matrices",
        function=_posterior_brute_force_error,
        tolerance=1e-14,
        code=("genmath.core.discrete.DiscretePath.posterior_probs",),
        tests=("tests/core/test_discrete.py",),
        derivation="D-discrete-posterior",
    )
)


# ------------------------------------------------------------------------------ bindings
# times s < t drawn as s and the fraction u of the way from s to 1 (t = s + (1 - s) u); the
# keep-probabilities come from the path's own sympy schedule: a = abar(s), r = abar(t)/abar(s)
_s, _u = sp.symbols("s u", nonnegative=True)
_time = sp.Symbol("t", nonnegative=True)
_SCHEDULES = {"1 - t": 1 - _time, "cos(pi t/2)": sp.cos(sp.pi * _time / 2)}
_TIMES = {_s: Uniform(0, 0.98, ends=True), _u: Uniform(0.02, 1, ends=True)}


def _keep_where(label):
    abar = _SCHEDULES[label]
    at_s = abar.subs(_time, _s)
    return {a: at_s, b: abar.subs(_time, _s + (1 - _s) * _u) / at_s}


@functools.cache
def _path(kind, k, label):
    from ..core.discrete import MaskPath, UniformPath

    if kind == "mask":  # a mask id apart from K, so the id-to-state mapping is exercised
        return MaskPath(k, _SCHEDULES[label], _time, mask_id=k + 3)
    return UniformPath(k, _SCHEDULES[label], _time)


def _by_category_count(points, kind, label, compute):
    """``compute(path, s, t, rows)`` for the samples of each K at once (one path per K),
    stacked back in sample order; ``compute`` returns a tuple of ``(n_K,)`` tensors."""
    import torch

    s_, u_ = points[_s], points[_u]
    t_ = s_ + (1 - s_) * u_
    # the mask's entries do not depend on K, so the engine draws none: spread K over 2..12
    ks = points[K] if K in points else torch.arange(len(s_)) % 11 + 2
    out = None
    for k in sorted(set(ks.tolist())):
        rows = (ks == k).nonzero().squeeze(1)
        values = compute(_path(kind, k, label), s_[rows], t_[rows], len(rows))
        if out is None:
            out = [torch.empty(len(ks), dtype=torch.float64) for _ in values]
        for target, value in zip(out, values, strict=True):
            target[rows] = value
    return tuple(out)


def _kernels_by_code(kind, label):
    def compute(path, s, t, n):
        import torch

        composed = path.cumulative_kernel(s) @ path.step_kernel(s, t)
        direct = path.cumulative_kernel(t)
        first = torch.zeros(n, dtype=torch.long)
        if kind == "uniform":  # entries [0, 0] and [0, 1]; forward_probs' row 0, entry 1
            forward = path.forward_probs(first, t)[:, 1]
            return composed[:, 0, 0], composed[:, 0, 1], direct[:, 0, 0], direct[:, 0, 1], forward
        m = path.num_categories  # the mask's state index: data token 0 kept, or masked
        forward = path.forward_probs(first, t)[:, m]
        return (
            composed[:, 0, 0], composed[:, 0, m], direct[:, 0, 0], direct[:, 0, m], forward,
            path.alpha_bar(t),
        )

    return lambda points: _by_category_count(points, kind, label, compute)


def _posterior_by_code(kind, label):
    def compute(path, s, t, n):
        import torch

        zeros = torch.zeros(n, dtype=torch.long)
        if kind == "mask":  # token 0 masked at t, next to a masked token 1 (a decoy)
            x0 = torch.stack([zeros, zeros + 1], 1)
            xt = torch.full_like(x0, path.mask_id)
            q = path.posterior_probs(xt, x0, s, t)
            return q[:, 0, 0], q[:, 0, path.num_categories]
        # two positions: x_t = x_0 = 0, and x_0 = 0, x_t = 1; "another symbol" is K - 1 >= 2
        x0 = torch.stack([zeros, zeros], 1)
        xt = torch.stack([zeros, zeros + 1], 1)
        q = path.posterior_probs(xt, x0, s, t)
        other = path.num_categories - 1
        return q[:, 0, 0], q[:, 0, other], q[:, 1, 0], q[:, 1, 1], q[:, 1, other]

    return lambda points: _by_category_count(points, kind, label, compute)


for _label in _SCHEDULES:
    register(
        Binding(
            derivation="D-discrete-kernels",
            code=(
                "genmath.core.discrete.DiscretePath.cumulative_kernel",
                "genmath.core.discrete.DiscretePath.step_kernel",
                "genmath.core.discrete.DiscretePath.forward_probs",
            ),
            expression=(COMPOSED[0], COMPOSED[1], CUMULATIVE[0], CUMULATIVE[1], CUMULATIVE[1]),
            where=_keep_where(_label),
            evaluate=_kernels_by_code("uniform", _label),
            domain={**_TIMES, K: Integers(2, 12)},
            samples=16,
            description=(
                f"UniformPath(K, {_label}): Q̄_s Q_{{s→t}} and Q̄_t on and off the diagonal, and "
                "forward_probs, for K = 2..12 and 0 <= s < t <= 1"
            ),
        )
    )
    register(
        Binding(
            derivation="D-discrete-kernels",
            code=(
                "genmath.core.discrete.DiscretePath.cumulative_kernel",
                "genmath.core.discrete.DiscretePath.step_kernel",
                "genmath.core.discrete.DiscretePath.forward_probs",
                "genmath.core.discrete.DiscretePath.alpha_bar",
            ),
            expression=(
                COMPOSED[2], COMPOSED[3], CUMULATIVE[2], CUMULATIVE[3], CUMULATIVE[3], CUMULATIVE[2]
            ),
            where=_keep_where(_label),
            evaluate=_kernels_by_code("mask", _label),
            domain={**_TIMES, K: Integers(2, 12)},
            samples=16,
            generated=True,
            description=(
                f"MaskPath(K, {_label}, mask_id=K + 3): Q̄_s Q_{{s→t}} and Q̄_t (token kept, token "
                "masked), forward_probs and alpha_bar (compiled from the sympy schedule)"
            ),
        )
    )
    register(
        Binding(
            derivation="D-discrete-posterior",
            code=("genmath.core.discrete.DiscretePath.posterior_probs",),
            expression=(POSTERIOR[0], POSTERIOR[1]),
            where=_keep_where(_label),
            evaluate=_posterior_by_code("mask", _label),
            domain={**_TIMES, K: Integers(2, 12)},
            samples=16,
            description=(
                f"MaskPath(K, {_label}, mask_id=K + 3).posterior_probs of a masked token: "
                "q(x_s = x_0) and q(x_s = m)"
            ),
        )
    )
    register(
        Binding(
            derivation="D-discrete-posterior",
            code=("genmath.core.discrete.DiscretePath.posterior_probs",),
            expression=tuple(POSTERIOR[2:]),
            where=_keep_where(_label),
            evaluate=_posterior_by_code("uniform", _label),
            domain={**_TIMES, K: Integers(3, 12)},
            samples=16,
            description=(
                f"UniformPath(K, {_label}).posterior_probs for x_t = x_0 and x_t != x_0: every "
                "kind of entry (x_0, x_t, a third symbol), K = 3..12"
            ),
        )
    )
