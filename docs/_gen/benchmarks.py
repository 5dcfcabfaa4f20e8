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
    "targets", "harness", "samplers", "likelihood", "flow_matching", "flows", "flows_cuda",
    "paths", "elbo", "diffusion_samplers", "verify", "conformance",
]

page = [
    "# Benchmarks",
    "",
    "genmath is measured side by side with the library a user would otherwise pick — Meta's "
    "`flow_matching`, diffusers, k-diffusion, zuko, torchcfm, POT, pyro — in one process, on "
    "the same inputs. Results are **ratios** (genmath / anchor; below 1 means genmath is "
    "faster) and **errors against exact answers**; absolute times on a shared machine are "
    "noise. Every timing comes from one harness (`benchmarks/_harness.py`): CPU time of the "
    "benchmarking thread with torch on one thread, freed memory kept warm, the contenders "
    "alternated in interleaved rounds, and the median of the per-round ratios reported with "
    "its interquartile range in brackets; the harness's own section shows identical work "
    "timed against itself. Each table was written by the script named in its section "
    "(`make bench` installs the anchors and writes `benchmarks/results/new/`; "
    "`make bench UPDATE=1` rewrites the committed tables shown here).",
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
