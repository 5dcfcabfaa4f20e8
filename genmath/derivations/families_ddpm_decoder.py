"""DDPM's discretised decoder (Ho et al. 2020, eq. 13): the masses of a Gaussian on the bins of
$L$ levels in $[-1, 1]$, their logarithms in the forms that stay accurate in both tails, and
that they sum to one; bound to `discretized_gaussian_log_likelihood` and to `DDPM.elbo`'s
discretised decoder term."""

import sympy as sp
from sympy.utilities.lambdify import implemented_function

from ._engine import Binding, Derivation, Integers, LogUniform, Step, Uniform, sound_rewrite
from ._registry import register
from .families_diffusion import PARAMETERIZATIONS, _ddpm, _ddpm_points, abar_s

# --- D-ddpm-discretized-decoder -------------------------------------------------------------
mu = sp.Symbol("mu", real=True)
s_dec = sp.Symbol("s", positive=True)
L = sp.Symbol("L", integer=True, positive=True)
_j = sp.Symbol("k", integer=True, positive=True)
_w = sp.Symbol("w", real=True)


def _tail(z):
    """mpmath's Q(z) = P(N(0, 1) > z) = erfc(z / sqrt 2) / 2, accurate however small."""
    import mpmath

    return mpmath.erfc(z / mpmath.sqrt(2)) / 2


# Q as an opaque function: sympy rewrites erfc(-x) as 2 - erfc(x), which would evaluate a tiny
# tail mass as a difference of numbers near one; Q(z) keeps the form it is written in.
Q = implemented_function(sp.Function("Q", positive=True), _tail)


def _edge(index):
    """Standardised lower edge of bin ``index`` (the level -1 + 2 index / (L - 1))."""
    return (-1 + (2 * index - 1) / (L - 1) - mu) / s_dec


def _level(index):
    return -1 + 2 * index / (L - 1)


# Phi(z) = Q(-z)
_bottom = Q(-_edge(1))  # the value -1 owns (-inf, -1 + 1/(L-1)]
_top = Q(_edge(L - 1))  # the value +1 owns [1 - 1/(L-1), inf)
_middle_low = Q(-_edge(_j + 1)) - Q(-_edge(_j))  # Phi(b) - Phi(a): accurate below the mean
_middle_high = Q(_edge(_j)) - Q(_edge(_j + 1))  # Q(a) - Q(b): accurate above it
_log_likelihood = sp.log(_bottom) + sp.log(_middle_low) + sp.log(_top)
class _Sum(sp.Sum):
    """A sum shown as such but never handed to sympy's summation (which cannot close a sum of
    an opaque Q and tries hard): `_telescope` collapses it, mpmath adds it up term by term."""

    def doit(self, **hints):
        return self


_total_mass = _Sum(_middle_low, (_j, 1, L - 2)) + _bottom + _top


def _symmetric_tail(expr):
    """Q(z) -> 1 - Q(-z) for the one of z, -z whose expanded form sorts last, so that Q(z) and
    Q(-z) meet in one form (the arguments left expanded)."""

    def canonical(e):
        z = sp.expand(e.args[0])
        flipped = sp.expand(-z)
        if sp.default_sort_key(flipped) < sp.default_sort_key(z):
            return 1 - Q(flipped)
        return Q(z)

    return expr.replace(lambda e: isinstance(e, Q), canonical)


def _telescope(expr):
    """sum_{k=a}^{b} (g(k+1) - g(k)) -> g(b+1) - g(a), once the summand is checked to be
    exactly g(k+1) - g(k) for one of its negative terms g(k); any other Sum is left alone."""

    def collapse(total):
        (k, low, high), summand = total.limits[0], total.function
        for term in sp.Add.make_args(sp.expand(summand)):
            if term.could_extract_minus_sign():
                g = -term
                if sp.expand(summand - (g.subs(k, k + 1) - g)) == 0:
                    return g.subs(k, high + 1) - g.subs(k, low)
        return total

    return expr.replace(lambda e: isinstance(e, sp.Sum) and len(e.limits) == 1, collapse)


@sound_rewrite(
    "a telescoping sum collapses to its end terms (checked term by term), and the normal tail "
    "is symmetric, Q(z) = 1 - Q(-z)"
)
def _telescope_tails(expr):
    return sp.expand(_symmetric_tail(_telescope(expr)))


@sound_rewrite("the normal tail is symmetric: Q(z) = 1 - Q(-z)")
def _tails(expr):
    return sp.expand(_symmetric_tail(expr))


@sound_rewrite("the log of a product of positive masses is the sum of their logs")
def _expand_logs(expr):
    """log of a product of positive masses is the sum of their logs."""
    return sp.expand_log(expr, force=True)


register(
    Derivation(
        id="D-ddpm-discretized-decoder",
        title="DDPM's discretised decoder: bin masses of a Gaussian on 256 levels sum to one",
        statement=(
            r"Ho et al. (2020, eq. 13) decode data on $L$ levels $x_k = -1 + 2k/(L - 1)$ in "
            r"$[-1, 1]$ with the masses of $\mathcal N(\mu, s^2)$ on the bins $[x_k - \delta, x_k + "
            r"\delta]$, $\delta = 1/(L - 1)$, the end bins reaching to $\mp\infty$: "
            r"$P(x_k) = \Phi(\frac{x_k + \delta - \mu}{s}) - \Phi(\frac{x_k - \delta - \mu}{s})$, "
            r"$P(-1) = \Phi(\frac{-1 + \delta - \mu}{s})$, $P(1) = 1 - \Phi(\frac{1 - \delta - \mu}"
            r"{s})$. The masses telescope to one: a distribution over the levels, and the "
            r"log-likelihood of independent coordinates is the sum of their log-masses. Below, "
            r"$\Phi(z) = Q(-z)$ with $Q(z) = \tfrac12\operatorname{erfc}(z/\sqrt2)$ the normal "
            r"upper tail, evaluated as written; an interior mass is also $Q(a) - Q(b)$ for its "
            r"standardised edges $a < b$, the form that stays accurate above the mean, where both "
            r"CDFs are near one (the code evaluates the mirrored bin there)."
        ),
        start=sp.log(_bottom * _middle_low * _top),
        steps=[
            Step(
                rhs=_log_likelihood,
                reason=(
                    "Three coordinates, at the bottom level, an interior level $x_k$ and the top "
                    "level: the log of the product of positive masses."
                ),
                method=_expand_logs,
            ),
            Step(
                lhs=sp.log(_middle_low),
                rhs=sp.log(_middle_high),
                method=_tails,
                reason=(
                    r"$\Phi(z) = Q(-z) = 1 - Q(z)$ with $Q(z) = \tfrac12\operatorname{erfc}"
                    r"(z/\sqrt2)$, the normal upper tail: the interior mass in its upper-tail form "
                    r"$Q(a) - Q(b)$."
                ),
            ),
            Step(
                lhs=_total_mass,
                rhs=sp.Integer(1),
                method=_telescope_tails,
                reason=(
                    r"The bins tile the line: the interior masses telescope, "
                    r"$\sum_{k=1}^{L-2} = \Phi(u_{L-1}) - \Phi(u_1)$, and the end bins add "
                    r"$\Phi(u_1)$ and $1 - \Phi(u_{L-1})$."
                ),
            ),
        ],
        symbols=(mu, s_dec, L, _j),
        references=("ho2020denoising",),
        code=(
            "genmath.families.diffusion.discretized_gaussian_log_likelihood",
            "genmath.families.diffusion.DDPM.elbo",
        ),
        tests=("tests/families/test_diffusion.py",),
        domain={L: Integers(2, 300), mu: (-3.0, 3.0), s_dec: LogUniform(1e-2, 10.0), _j: Integers(1, 5)},
    )
)


def _decoder_values(which):
    """The code at one coordinate: the bottom level, the top level, or the interior level k."""

    def evaluate(points):
        import torch

        from ..families.diffusion import discretized_gaussian_log_likelihood

        out = []
        n = next(t.numel() for t in points.values())
        for j in range(n):
            levels = int(points[L][j]) if L in points else 256
            k = {"bottom": 0, "top": levels - 1}.get(which)
            if k is None:  # the interior mass depends on k only through mu - x_k (where w is)
                k = int(points[_j][j]) if _j in points else 1 + (37 * j) % (levels - 2)
            x = torch.tensor([[-1 + 2 * k / (levels - 1)]], dtype=torch.float64)
            mean = points[mu][j].reshape(1, 1) if mu in points else _mean_of(points, j, k, levels)
            std = points[s_dec][j].reshape(1, 1)
            out.append(discretized_gaussian_log_likelihood(x, mean, std, levels)[0])
        return torch.stack(out)

    return evaluate


def _mean_of(points, j, k, levels):
    """mu = x_k + s w: the mean w standard deviations above (w > 0) or below the level."""
    x = -1 + 2 * k / (levels - 1)
    return (x + points[s_dec][j] * points[_w][j]).reshape(1, 1)


_wide = {mu: Uniform(-3, 3), s_dec: LogUniform(1e-3, 10.0), L: Integers(2, 1000)}
for _which, _expression in (("bottom", sp.log(_bottom)), ("top", sp.log(_top))):
    register(
        Binding(
            derivation="D-ddpm-discretized-decoder",
            code=("genmath.families.diffusion.discretized_gaussian_log_likelihood",),
            expression=_expression,
            evaluate=_decoder_values(_which),
            domain=_wide,
            samples=16,
            description=f"discretized_gaussian_log_likelihood at the {_which} level, any L",
        )
    )

# interior levels of L = 256 (the default), the mean up to 40 standard deviations away: below
# the level (the upper-tail form is the accurate one there) and above it
for _side, _expression, _range in (
    ("below", sp.log(_middle_high), Uniform(-40, 0)),
    ("above", sp.log(_middle_low), Uniform(0, 40)),
):
    register(
        Binding(
            derivation="D-ddpm-discretized-decoder",
            code=("genmath.families.diffusion.discretized_gaussian_log_likelihood",),
            expression=_expression,
            where={L: 256, mu: _level(_j).subs(L, 256) + s_dec * _w},
            evaluate=_decoder_values("interior"),
            domain={_j: Integers(1, 254), s_dec: LogUniform(1e-3, 10.0), _w: _range},
            samples=16,
            description=(
                f"discretized_gaussian_log_likelihood at interior levels of L = 256, the mean "
                f"{_side} the level, up to 40 standard deviations"
            ),
        )
    )


def _total_of_code(points):
    import torch

    from ..families.diffusion import discretized_gaussian_log_likelihood

    out = []
    for j in range(points[L].numel()):
        levels = int(points[L][j])
        x = torch.linspace(-1, 1, levels, dtype=torch.float64)[:, None]
        mean = points[mu][j].expand(levels, 1)
        std = points[s_dec][j].expand(levels, 1)
        out.append(discretized_gaussian_log_likelihood(x, mean, std, levels).exp().sum())
    return torch.stack(out)


register(
    Binding(
        derivation="D-ddpm-discretized-decoder",
        code=("genmath.families.diffusion.discretized_gaussian_log_likelihood",),
        expression=_total_mass,
        evaluate=_total_of_code,
        domain={L: Integers(2, 100), mu: Uniform(-3, 3), s_dec: LogUniform(1e-3, 10.0)},
        samples=8,
        description="the masses the code gives the L levels, summed",
    )
)


def _elbo_decoder(points):
    """DDPM.elbo(decoder="discretized") on a two-step schedule, x0 = (-1, x_k, 1) on 256 levels
    and an x0 model predicting mu: the decoder's std is sqrt(beta_1)."""
    import torch

    out = []
    for j, schedule, _ in _ddpm_points(points):
        k = int(points[_j][j])
        level = -1 + 2 * k / 255
        x0_data = torch.tensor([[-1.0, level, 1.0]], dtype=torch.float64)
        mean = level + (1 - points[abar_s][j]).sqrt() * points[_w][j]
        ddpm = _ddpm(schedule, mean.reshape(1, 1), PARAMETERIZATIONS[j % 5], "beta_tilde", None)
        _, terms = ddpm.elbo(x0_data, decoder="discretized", terms=True,
                             generator=torch.Generator().manual_seed(j))
        out.append(-terms["decoder"][0])
    return torch.stack(out)


register(
    Binding(
        derivation="D-ddpm-discretized-decoder",
        code=("genmath.families.diffusion.DDPM.elbo",),
        expression=_log_likelihood,
        where={L: 256, s_dec: sp.sqrt(1 - abar_s), mu: _level(_j).subs(L, 256) + sp.sqrt(1 - abar_s) * _w},
        evaluate=_elbo_decoder,
        domain={_j: Integers(1, 254), abar_s: Uniform(0.5, 0.999), _w: Uniform(0, 6)},
        samples=12,
        description=(
            "DDPM.elbo's discretised decoder term: the model's x0 as the mean, sqrt(beta_1) as "
            "the std, 256 levels"
        ),
    )
)
