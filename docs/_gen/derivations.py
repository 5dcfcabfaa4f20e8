"""Generate one page per registered derivation, and the index, from genmath's registry.

Runs inside `mkdocs build` (mkdocs-gen-files). Each derivation is verified at build time,
so every page states whether its steps passed; the math on the page is `sympy.latex` of
the verified expressions.
"""

import mkdocs_gen_files

from genmath import derivations as registry
from genmath.cli import _available_cores

# as `genmath verify` does: one process per available core (sympy is single-threaded)
_jobs = _available_cores()
_all = {r.id: r for r in registry.run([*registry.derivations(), *registry.checks()], jobs=_jobs)}
results = {d.id: _all[d.id] for d in registry.derivations()}
check_results = {c.id: _all[c.id] for c in registry.checks()}

index = [
    "# Derivations",
    "",
    "Every formula genmath relies on is derived here as a chain of steps that sympy checks "
    "(see [How verification works](../verification.md)). Cite a derivation by its id. "
    "These pages were generated, and every step re-verified, when this site was built; "
    "`genmath verify` runs the same checks.",
    "",
    "| id | title | steps | symbolic | numeric | cited | status |",
    "| --- | --- | ---: | ---: | ---: | ---: | --- |",
]
for d in registry.derivations():
    r = results[d.id]
    page = f"{d.id}.md"
    with mkdocs_gen_files.open(f"derivations/{page}", "w") as f:
        f.write(registry.render_markdown(d, r))
    status = "✅ verified" if r.ok else "❌ FAILED"
    index.append(
        f"| [`{d.id}`]({page}) | {d.title} | {len(r.steps)} | {r.count('symbolic')} | "
        f"{r.count('numeric')} | {r.count('cited')} | {status} |"
    )

if check_results:
    index += [
        "",
        "## Exact-numeric checks",
        "",
        "Torch code compared with a closed form to float64 round-off.",
        "",
        "| id | title | backs | result | status |",
        "| --- | --- | --- | --- | --- |",
    ]
    for c in registry.checks():
        r = check_results[c.id]
        backs = f"[`{c.derivation}`]({c.derivation}.md)" if c.derivation in results else "—"
        status = "✅" if r.ok else "❌ FAILED"
        index.append(f"| `{c.id}` | {c.title} | {backs} | {r.steps[0].method} | {status} |")

with mkdocs_gen_files.open("derivations/index.md", "w") as f:
    f.write("\n".join(index) + "\n")

failed = [r.id for r in (*results.values(), *check_results.values()) if not r.ok]
if failed:  # the pages above say which steps failed; a site claiming "verified" must not ship
    raise RuntimeError(f"derivations or checks failed verification: {', '.join(failed)}")
