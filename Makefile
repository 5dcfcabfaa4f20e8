# Two entry points do all the set-up themselves on a fresh machine:
#   make verify   install genmath and run `genmath verify`
#   make test     install everything, lint, build the docs (strict), run the whole test suite
# Everything lives in .venv. TORCH_SPEC pins the CPU build of torch found on this kind of
# machine; pyproject.toml itself stays loose (torch>=2.2) for users elsewhere.

export DISABLE_MKDOCS_2_WARNING := true
export NO_MKDOCS_2_WARNING := 1

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TORCH_SPEC ?= torch==2.13.0
# k-diffusion's requirements pull torchvision (which cannot import against this torch build)
# and its training stack; genmath.testing loads only its samplers, which need none of that.
K_DIFFUSION_SPEC ?= k-diffusion==0.1.1.post1
SITE_DIR ?= site
# pytest-xdist: one worker per core (tests/conftest.py keeps the tests that share an expensive
# session fixture on one worker); `make test PYTEST_WORKERS=` runs in one process.
PYTEST_WORKERS ?= -n auto --dist loadgroup

.PHONY: verify test lint docs dev bench mutation clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.core: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q "$(TORCH_SPEC)"
	$(BIN)/pip install -q -e .
	touch $@

# The conformance extra (diffusers, zuko, flow_matching, k-diffusion's sampler deps) is part of
# the dev set-up: genmath.testing's adapters are tested against the real packages. The torch
# constraint keeps pip from replacing the CPU build.
$(VENV)/.dev: pyproject.toml $(VENV)/.core
	echo "$(TORCH_SPEC)" > $(VENV)/torch-constraint.txt
	$(BIN)/pip install -q -e ".[test,docs,examples,conformance]" -c $(VENV)/torch-constraint.txt
	$(BIN)/pip install -q --no-deps "$(K_DIFFUSION_SPEC)"
	touch $@

node_modules/.package-lock.json: package.json package-lock.json
	npm ci --no-audit --no-fund

dev: $(VENV)/.dev node_modules/.package-lock.json

verify: $(VENV)/.core
	$(BIN)/genmath verify

lint: $(VENV)/.dev
	$(BIN)/ruff check genmath tests benchmarks docs tools

docs: dev
	$(BIN)/mkdocs build --strict --site-dir $(SITE_DIR)

# --durations: every run's log ends with its slowest tests, where the suite's time goes
test: dev lint docs
	GENMATH_SITE_DIR=$(SITE_DIR) $(BIN)/pytest -q $(PYTEST_WORKERS) --durations=25

# The anchors the benchmarks compare against; the constraint keeps the CPU build of torch.
# torchcfm and k-diffusion come without their declared dependencies (torchdyn, torchvision,
# wandb...: nothing their code used here needs, and torchvision cannot import against the CPU
# torch); the `bench` extra lists what they do need.
# `make bench` writes benchmarks/results/new/; `make bench UPDATE=1` rewrites the committed
# benchmarks/results/*.md that the docs show. `make bench QUICK=1` is a smoke run.
BENCH_FLAGS := $(if $(UPDATE),--update) $(if $(QUICK),--quick)

$(VENV)/.bench: pyproject.toml $(VENV)/.dev
	echo "$(TORCH_SPEC)" > $(VENV)/torch-constraint.txt
	$(BIN)/pip install -q -e ".[bench]" -c $(VENV)/torch-constraint.txt
	$(BIN)/pip install -q --no-deps torchcfm==1.0.7 k-diffusion==0.1.1.post1
	touch $@

bench: $(VENV)/.bench
	@for f in benchmarks/bench_*.py; do echo "== $$f"; $(BIN)/python $$f $(BENCH_FLAGS) || exit 1; done
	$(BIN)/python benchmarks/targets.py $(if $(UPDATE),--update)

# Plant formula bugs one at a time and report what `genmath verify` and the tests catch
# (tools/mutation.py; about an hour on 2 cores for the default sample).
mutation: dev
	$(BIN)/python tools/mutation.py map
	$(BIN)/python tools/mutation.py run --sample 200 --seed 0

clean:
	rm -rf $(SITE_DIR) .pytest_cache .ruff_cache
