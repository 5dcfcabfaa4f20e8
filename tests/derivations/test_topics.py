"""Every derivation topic registers something, and everything it registers verifies.

This is `genmath verify`, run by pytest one topic at a time, so a failing derivation or
exact-numeric check fails CI and names its topic.
"""

import pkgutil

import pytest

import genmath.derivations
from genmath import derivations as registry

TOPICS = [
    "categorical",
    "change_of_variables_formula",
    "continuity_equation",
    "denoising_score_matching",
    "discrete_paths",
    "edm_preconditioning",
    "elbo",
    "elbo_gap",
    "families_cnf",
    "families_ddpm_decoder",
    "families_ddpm_schedule",
    "families_ddpm_variance",
    "families_dfm",
    "families_diffusion",
    "families_diffusion_samplers",
    "families_discrete",
    "families_distillation",
    "families_ebm",
    "families_ebm_training",
    "families_edm_sampler",
    "families_few_step",
    "families_fgan",
    "families_flow_matching",
    "families_flow_models",
    "families_flows",
    "families_gan",
    "families_gan_critics",
    "families_guidance",
    "families_guidance_gaussian",
    "families_latent",
    "families_mar",
    "families_masked_sampling",
    "families_rectified_flow",
    "families_residual",
    "families_residual_inverse",
    "families_schrodinger_bridge",
    "families_sedd",
    "flow_map_imm",
    "flow_map_losses",
    "flow_map_oracles",
    "flow_maps",
    "flows",
    "focused_grids",
    "forward_sde",
    "gaussian_flow_map",
    "gaussian_kl",
    "gaussian_marginals",
    "gaussian_mixtures",
    "grids",
    "instantaneous_change_of_variables",
    "likelihood",
    "multistep_solvers",
    "noise_unconditional",
    "optimal_discriminator",
    "optimal_transport",
    "parameterizations",
    "posterior",
    "ppca",
    "reverse_sde",
    "runge_kutta",
    "samplers",
    "schedule_sigma_min",
    "schedules",
    "score_matching",
    "sde_samplers",
    "tweedie",
]


def test_the_topic_list_is_complete():
    discovered = sorted(
        m.name for m in pkgutil.iter_modules(genmath.derivations.__path__) if not m.name.startswith("_")
    )
    assert discovered == sorted(TOPICS)


@pytest.mark.parametrize("topic", TOPICS)
def test_topic_registers_items_that_all_verify(topic, verified):
    items = registry.by_topic().get(f"genmath.derivations.{topic}", [])
    assert items, f"topic {topic} registers no derivation or check"
    results = [verified(item.id) for item in items]
    failures = {r.id: [(s.index, s.residual) for s in r.failures()] for r in results if not r.ok}
    assert not failures, f"{topic}: failed steps (index, residual): {failures}"


def test_no_binding_module_imports_another():
    # a topic imports its binding modules at its end; a binding module that imports another
    # one can then be entered first by name (a parallel worker, the mutation runner) and meet
    # the other half-initialised (seen: _consistency_bindings -> _few_step_bindings). Shared
    # helpers go in a module that imports no binding module (_few_step_common).
    import ast
    import pathlib

    folder = pathlib.Path(genmath.derivations.__file__).parent
    offenders = []
    for path in sorted(folder.glob("_*bindings*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.level == 1:
                names = [node.module or ""] + [a.name for a in node.names if not node.module]
                offenders += [f"{path.name} imports {n}" for n in names if "bindings" in n]
    assert not offenders, offenders
