r"""Change of variables: bijections with log-determinants, and flows as distributions.

If $f$ is a bijection with $z = f(x)$ and $Z \sim p_Z$, then $X = f^{-1}(Z)$ has density
$$
\log p_X(x) = \log p_Z(f(x)) + \log|\det J_f(x)|.
$$
Every [`Bijection`][genmath.core.change_of_variables.Bijection] returns its output together
with $\log|\det J|$ (shape `(B,)`) in both directions; a
[`Flow`][genmath.core.change_of_variables.Flow] turns one and any base
`torch.distributions.Distribution` into a distribution with `log_prob`, `sample` and
`rsample`. Adapters convert to and from `torch.distributions.Transform`.

Convention: a bijection's `forward` is the **density direction** (data $\to$ base noise),
`inverse` the sampling direction. The log-determinant formulas are derived in
`genmath.derivations.flows` (D-flow-coupling-logdet, D-flow-maf-logdet, D-flow-planar,
D-flow-lu-logdet, D-flow-sigmoid-logdet).
"""

from ._autoregressive import AffineCoupling, MaskedAutoregressive
from ._bijections import (
    ActNorm,
    Bijection,
    Compose,
    ElementwiseAffine,
    Inverse,
    Logit,
    Sigmoid,
)
from ._flow import BijectionTransform, Flow, TransformBijection, as_transform, from_transform
from ._matrix_bijections import Affine, Planar

__all__ = [
    "Bijection",
    "Compose",
    "Inverse",
    "Affine",
    "ElementwiseAffine",
    "ActNorm",
    "AffineCoupling",
    "MaskedAutoregressive",
    "Planar",
    "Sigmoid",
    "Logit",
    "Flow",
    "BijectionTransform",
    "TransformBijection",
    "as_transform",
    "from_transform",
]
