"""genmath: the math of deep generative models, written once and checked.

The public, citable API is re-exported here explicitly; the modules behind it are
implementation detail. Five core abstractions (probability path, SDE/ODE, change of
variables, score, ELBO) live in `genmath.core`; exact oracles in `genmath.analytic`;
sympy-verified derivations in `genmath.derivations`.
"""

__version__ = "0.1.0"

from . import analytic, derivations, nn, references, schedules, score_matching, testing  # noqa: E402
from .core.change_of_variables import (  # noqa: E402
    ActNorm,
    Affine,
    AffineCoupling,
    Bijection,
    Compose,
    ElementwiseAffine,
    Flow,
    Inverse,
    Logit,
    MaskedAutoregressive,
    Planar,
    Sigmoid,
    as_transform,
    from_transform,
)
from .core.discrete import MaskPath, UniformPath  # noqa: E402
from .core.divergence import FieldWithDivergence, VelocityWithDivergence, divergence  # noqa: E402
from .core.dynamics import (  # noqa: E402
    ODE,
    SDE,
    ProbabilityFlowODE,
    ReverseSDE,
    SampleResult,
    forward_sde,
    probability_flow_ode,
    reparameterize,
    sample_ode,
    sample_sde,
)
from .core.elbo import (  # noqa: E402
    diagonal_gaussian_kl,
    elbo,
    elbo_weighting,
    gaussian_path_elbo,
    iwae,
    kl_divergence,
    reinforce_elbo,
    score_function_surrogate,
)
from .core.flow_map import (  # noqa: E402
    average_velocity_from_map,
    consistency_function_from_map,
    flow_map,
    map_from_average_velocity,
)
from .core.grids import karras_grid, log_snr_grid, uniform_grid  # noqa: E402
from .core.likelihood import ODELikelihood, bits_per_dim, ode_log_likelihood  # noqa: E402
from .core.path import PARAMETERIZATIONS, GaussianPath  # noqa: E402
from .core.score import score_from_energy, score_from_log_prob, tweedie  # noqa: E402

__all__ = [
    "__version__",
    # modules
    "analytic",
    "derivations",
    "nn",
    "references",
    "schedules",
    "score_matching",
    "testing",
    # probability paths
    "GaussianPath",
    "PARAMETERIZATIONS",
    "MaskPath",
    "UniformPath",
    # SDE / ODE
    "ODE",
    "SDE",
    "ReverseSDE",
    "ProbabilityFlowODE",
    "SampleResult",
    "forward_sde",
    "probability_flow_ode",
    "reparameterize",
    "sample_ode",
    "sample_sde",
    "uniform_grid",
    "karras_grid",
    "log_snr_grid",
    # flow maps
    "flow_map",
    "average_velocity_from_map",
    "map_from_average_velocity",
    "consistency_function_from_map",
    # change of variables and likelihood
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
    "as_transform",
    "from_transform",
    "divergence",
    "FieldWithDivergence",
    "VelocityWithDivergence",
    "ode_log_likelihood",
    "ODELikelihood",
    "bits_per_dim",
    # score
    "score_from_log_prob",
    "score_from_energy",
    "tweedie",
    # ELBO
    "elbo",
    "iwae",
    "kl_divergence",
    "diagonal_gaussian_kl",
    "score_function_surrogate",
    "reinforce_elbo",
    "gaussian_path_elbo",
    "elbo_weighting",
]


def __getattr__(name: str):
    # `genmath.distributed` loads on first use: most programs never touch torch.distributed.
    if name == "distributed":
        import importlib

        return importlib.import_module(".distributed", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
