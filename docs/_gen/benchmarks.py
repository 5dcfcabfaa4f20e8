"""Generate the benchmarks page from the tables the scripts in benchmarks/ wrote.

Each `benchmarks/bench_*.py` writes a Markdown table to `benchmarks/results/`; this page
collects them (headings demoted one level) so the site shows the figures that were measured,
not a copy typed by hand.
"""

import re
from pathlib import Path

import mkdocs_gen_files

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "benchmarks" / "results"

ORDER = [
    "paths", "samplers", "diffusion_samplers", "likelihood", "flows", "flows_cuda", "elbo",
    "flow_matching", "verify",
]

page = [
    "# Benchmarks",
    "",
    "genmath is measured side by side with the library a user would otherwise pick — Meta's "
    "`flow_matching`, diffusers, zuko, torchcfm, pyro — in one process, on the same inputs. "
    "Results are **ratios** (genmath / anchor; below 1 means genmath is faster) and **errors "
    "against exact answers**; absolute times on a shared machine are noise. Each table below "
    "was written by the script named in its section (`python benchmarks/bench_<name>.py`, "
    "after `make bench` installs the anchors); the machine, threads and repeats are stated in "
    "each table's preamble.",
    "",
]
files = sorted(RESULTS.glob("*.md"), key=lambda p: (ORDER.index(p.stem) if p.stem in ORDER else 99, p.stem))
for path in files:
    text = path.read_text(encoding="utf-8")
    text = re.sub(r"^(#+) ", lambda m: "#" + m.group(1) + " ", text, flags=re.M)
    if not text.lstrip().startswith("##"):
        page += [f"## {path.stem.replace('_', ' ')}", ""]
    page += [text.strip(), "", f"*Source: `benchmarks/results/{path.name}`.*", ""]

with mkdocs_gen_files.open("benchmarks.md", "w") as f:
    f.write("\n".join(page) + "\n")
