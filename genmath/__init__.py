"""genmath: the math of deep generative models, written once and checked.

The public, citable API is re-exported here explicitly; the modules behind it are
implementation detail. Five core abstractions (probability path, SDE/ODE, change of
variables, score, ELBO) live in `genmath.core`; exact oracles in `genmath.analytic`;
sympy-verified derivations in `genmath.derivations`.

Every name below is imported on first use (PEP 562), so `import genmath` and
`genmath --version` cost almost nothing and `genmath.GaussianPath` imports only what the
path needs. The imports in the `TYPE_CHECKING` block are the one list of re-exports: type
checkers and the API docs read them, and `__getattr__` resolves a name from them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

__version__ = "0.1.0"

if TYPE_CHECKING:
    # (`genmath.distributed`, like every name here, loads on first use: most programs never
    # touch torch.distributed; it is a module of the package, not a re-exported name)
    from . import (
        analytic,
        derivations,
        nn,
        ot,
        references,
        schedules,
        score_matching,
        testing,
    )
    from . import (
        distributed as distributed,
    )
    from .core.change_of_variables import (
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
    from .core.discrete import MaskPath, UniformPath
    from .core.divergence import FieldWithDivergence, VelocityWithDivergence, divergence
    from .core.dynamics import (
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
    from .core.elbo import (
        diagonal_gaussian_kl,
        elbo,
        elbo_weighting,
        gaussian_path_elbo,
        iwae,
        kl_divergence,
        reinforce_elbo,
        score_function_surrogate,
    )
    from .core.flow_map import (
        average_velocity_from_map,
        consistency_function_from_map,
        eulerian_residual,
        flow_map,
        lagrangian_residual,
        map_from_average_velocity,
        semigroup_residual,
    )
    from .core.grids import karras_grid, log_snr_grid, snr_focused_grid, uniform_grid
    from .core.likelihood import ODELikelihood, bits_per_dim, ode_log_likelihood
    from .core.path import PARAMETERIZATIONS, GaussianPath
    from .core.score import score_from_energy, score_from_log_prob, tweedie


def _lazy_table() -> dict[str, str]:
    """name -> module, read from the `TYPE_CHECKING` imports of this file (parsed once)."""
    global _TABLE
    if _TABLE is None:
        import ast
        import pathlib

        tree = ast.parse(pathlib.Path(__file__).read_text(encoding="utf-8"))
        table: dict[str, str] = {}
        for node in tree.body:
            if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
                for statement in node.body:
                    if isinstance(statement, ast.ImportFrom):
                        base = "genmath" + ("." + statement.module if statement.module else "")
                        for alias in statement.names:
                            name = alias.asname or alias.name
                            # `from . import analytic` names a submodule, not an attribute
                            table[name] = base if statement.module else f"genmath.{alias.name}"
        _TABLE = table
    return _TABLE


_TABLE: dict[str, str] | None = None


def __getattr__(name: str):
    import importlib

    module = _lazy_table().get(name)
    if module is None:
        raise AttributeError(f"module 'genmath' has no attribute {name!r}")
    imported = importlib.import_module(module)
    value = imported if module == f"genmath.{name}" else getattr(imported, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))

__all__ = [
    "__version__",
    # modules
    "analytic",
    "derivations",
    "nn",
    "ot",
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
    "flow_map",
    "average_velocity_from_map",
    "map_from_average_velocity",
    "consistency_function_from_map",
    "semigroup_residual",
    "lagrangian_residual",
    "eulerian_residual",
    "sample_sde",
    "uniform_grid",
    "karras_grid",
    "log_snr_grid",
    "snr_focused_grid",
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
