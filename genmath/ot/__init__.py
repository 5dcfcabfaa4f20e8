r"""Optimal transport: exact discrete OT with its Kantorovich dual, entropic OT by Sinkhorn,
Wasserstein distances between point clouds, and OT between Gaussians in closed form.

| name | what | derivation |
| --- | --- | --- |
| `discrete_ot` | the exact plan, primal cost and dual potentials of $\min_{P \in \Pi(a, b)}\langle P, C\rangle$ | D-ot-duality |
| `sinkhorn` | entropic OT, log-domain Sinkhorn, primal and dual values | D-entropic-ot-duality |
| `wasserstein` | $W_p$ between weighted point clouds | D-ot-duality |
| `assignment` | the optimal permutation of a square cost (scipy, or POT's network simplex) | — |
| `gaussian_w2`, `gaussian_ot_map` | Bures–Wasserstein distance and affine Monge map between Gaussians | D-gaussian-w2, D-gaussian-ot-map |
| `psd_sqrt` | the symmetric PSD square root, used by the above and the Schrödinger bridge | D-psd-sqrt |

Conventions: weights are ``(n,)`` and ``(m,)`` tensors of one total mass, a cost is an
``(n, m)`` tensor in their dtype; everything is returned in that dtype. The minibatch OT
coupling of flow matching (`genmath.families.flow_matching.ot_coupling`) is `assignment` of
the squared distances.
"""

from ._discrete import ASSIGNMENT_BACKENDS, OTPlan, assignment, discrete_ot, wasserstein
from ._entropic import SinkhornResult, sinkhorn
from ._gaussian import AffineMap, gaussian_ot_map, gaussian_w2
from ._linalg import psd_sqrt

__all__ = [
    "ASSIGNMENT_BACKENDS",
    "OTPlan",
    "SinkhornResult",
    "AffineMap",
    "discrete_ot",
    "sinkhorn",
    "wasserstein",
    "assignment",
    "gaussian_w2",
    "gaussian_ot_map",
    "psd_sqrt",
]
