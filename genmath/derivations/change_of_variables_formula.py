"""The change-of-variables formula in 1-D for a monotone map, worked on the logistic-normal
law (the `Logit` / `Sigmoid` bijections), and bound to `Flow.log_prob` and
`Flow.rsample_and_log_prob`. The log-determinants of the layers are in `flows`."""

import sympy as sp

from ._chain import Earlier
from ._engine import NUMERIC, Binding, Derivation, LogUniform, Step, Uniform
from ._registry import register

y = sp.Symbol("y", real=True)
u = sp.Symbol("u", real=True)
z = sp.Symbol("z", real=True)
mu = sp.Symbol("mu", real=True)
s = sp.Symbol("s", positive=True)
cdf_x = sp.Function("F_X")  # distribution function of X
inverse = sp.Function("h")  # h = g^{-1}, increasing


def _density_x_at(point):
    """$p_X$ at ``point``, written as the derivative of the distribution function there."""
    return sp.Subs(sp.Derivative(cdf_x(u), u), u, point)


def _normal_pdf(value, mean, sd):
    return sp.exp(-((value - mean) ** 2) / (2 * sd**2)) / (sd * sp.sqrt(2 * sp.pi))


# The concrete monotone map g = sigmoid: Y = sigmoid(X), X ~ N(mu, s^2), so h = logit.
_logit = sp.log(y / (1 - y))
_normal_cdf = sp.Lambda(u, (1 + sp.erf((u - mu) / (s * sp.sqrt(2)))) / 2)
P_Y = _normal_pdf(_logit, mu, s) / (y * (1 - y))
LOG_FORM = sp.exp(sp.log(_normal_pdf(_logit, mu, s)) - sp.log(y) - sp.log(1 - y))

register(
    Derivation(
        id="D-change-of-variables-1d",
        title="Change of variables in 1-D for a monotone map",
        statement=(
            r"If $X$ has density $p_X$ and $g$ is increasing and differentiable with inverse "
            r"$h = g^{-1}$, then $Y = g(X)$ has density $p_Y(y) = p_X(h(y))\, h'(y)$, i.e. "
            r"$\log p_Y(y) = \log p_X(h(y)) + \log h'(y)$ (for a decreasing $g$, $|h'|$). Step 1 "
            r"is the general argument; steps 2–3 work it for the logistic-normal law "
            r"$Y = \sigma(X)$, $X \sim \mathcal N(\mu, s^2)$, $h = \operatorname{logit}$, "
            r"$h'(y) = 1/(y(1 - y))$, to which `Flow(Logit(), Normal(mu, s))` is bound (its "
            "`log_prob`, and the density of its own samples)."
        ),
        start=sp.Derivative(cdf_x(inverse(y)), y),
        steps=[
            Step(
                rhs=_density_x_at(inverse(y)) * sp.Derivative(inverse(y), y),
                reason=(
                    r"$F_Y(y) = P(g(X) \le y) = P(X \le h(y)) = F_X(h(y))$ because $g$ is "
                    "increasing; differentiate by the chain rule."
                ),
            ),
            Step(
                lhs=Earlier(
                    "D-change-of-variables-1d",
                    {cdf_x: _normal_cdf, inverse: sp.Lambda(y, _logit)},
                    step=1,
                ),
                rhs=P_Y,
                reason=(
                    r"The logistic-normal case: $F_X$ the normal distribution function, "
                    r"$h = \operatorname{logit}$ and $h'(y) = 1/y + 1/(1-y) = 1/(y(1-y))$ "
                    r"(checked at random $y \in (0, 1)$)."
                ),
                tag=NUMERIC,
                samples=6,
                tolerance=1e-12,
            ),
            Step(
                rhs=LOG_FORM,
                reason=(
                    r"The log form: $\log p_Y(y) = \log p_X(\operatorname{logit} y) - \log y - "
                    r"\log(1 - y)$, the base log-density plus the log-determinant of `Logit`."
                ),
                tag=NUMERIC,
                samples=6,
                tolerance=1e-12,
            ),
        ],
        symbols=(y, mu, s),
        domain={y: (0.01, 0.99)},
        references=("papamakarios2021normalizing", "rezende2015variational"),
        code=(
            "genmath.core.change_of_variables.Flow.log_prob",
            "genmath.core.change_of_variables.Flow.rsample_and_log_prob",
            "genmath.core.change_of_variables.Logit",
        ),
        tests=("tests/core/test_change_of_variables.py",),
    )
)


def _flow_by_code(which):
    def evaluate(points):
        import torch

        from ..core.change_of_variables import Flow, Logit
        from ._doubles import PresetNormal

        loc, scale = points[mu][:, None], points[s][:, None]
        if which == "log_prob":
            flow = Flow(Logit(), torch.distributions.Normal(loc, scale))
            return flow.log_prob(points[y][:, None]).exp()
        draws = torch.logit(points[y])[None, :, None]  # base draws whose images are the points
        flow = Flow(Logit(), PresetNormal(loc, scale, draws))
        sample, log_prob = flow.rsample_and_log_prob((1,))
        again = flow.rsample((1,))
        # the density at the sample; both samples must be the point y for this to match
        miss = (sample[0, :, 0] - points[y]) ** 2 + (again[0, :, 0] - points[y]) ** 2
        return (log_prob[0] + 1e12 * miss).exp()

    return evaluate


_cov_domain = {y: Uniform(1e-4, 1 - 1e-4), mu: Uniform(-3, 3), s: LogUniform(0.05, 10)}
register(
    Binding(
        derivation="D-change-of-variables-1d",
        code=("genmath.core.change_of_variables.Flow.log_prob",),
        expression=P_Y,
        evaluate=_flow_by_code("log_prob"),
        domain=_cov_domain,
        description="exp Flow(Logit(), Normal(mu, s)).log_prob(y): the logistic-normal density",
    )
)
register(
    Binding(
        derivation="D-change-of-variables-1d",
        code=(
            "genmath.core.change_of_variables.Flow.rsample_and_log_prob",
            "genmath.core.change_of_variables.Flow.rsample",
        ),
        expression=LOG_FORM,
        evaluate=_flow_by_code("sample"),
        domain=_cov_domain,
        description=(
            "Flow.rsample_and_log_prob at the base draw logit(y): the density of its sample "
            "(and rsample's sample, both y, or the density misses)"
        ),
    )
)
