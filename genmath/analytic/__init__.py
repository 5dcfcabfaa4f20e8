"""Exact oracles: data laws whose densities, scores, denoisers, velocities and flow maps are
known in closed form along every Gaussian path, for testing samplers and estimators.

See the "Exact oracles" page of the documentation.
"""

from ._categorical import Categorical
from ._flow_map_oracle import ExactFlowMap
from ._gaussian import Gaussian, GaussianMarginal, MixtureMarginal
from ._mixture import GaussianMixture
from ._noise_unconditional import noise_unconditional_target, time_posterior
from ._ppca import PPCA

__all__ = [
    "PPCA",
    "Categorical",
    "ExactFlowMap",
    "Gaussian",
    "GaussianMarginal",
    "GaussianMixture",
    "MixtureMarginal",
    "noise_unconditional_target",
    "time_posterior",
]
