# `make run` and `make test` set everything up on a fresh machine; a second call is quick.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PLUGINS := $(wildcard plugins/*/pyproject.toml)

.PHONY: run test docs bench clean

run: $(VENV)/.installed
	$(BIN)/rnnsim run configs/quickstart.yaml
	@echo
	@echo "# The same weights (same sha256) on 200-word inputs: timesteps are not units."
	$(BIN)/rnnsim run configs/quickstart.yaml --timesteps 200

test: $(VENV)/.installed-test
	$(BIN)/python -m pytest -q

# The documentation site (site/): mkdocs --strict, notebooks executed, figures drawn (docs/hooks.py).
# mkdocs-jupyter caches executed notebooks by their text only: start afresh, so that a change to
# rnnsim shows in the notebooks' outputs.
docs: $(VENV)/.installed-docs
	rm -rf .cache/mkdocs-jupyter
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

# The peers: torch pinned to the CPU build (an unpinned torch pulls gigabytes of CUDA).
bench: $(VENV)/.installed
	$(BIN)/python -m pip install -q torch==2.13.0 onnxruntime onnx reservoirpy==0.4.2
	$(BIN)/python benchmarks/bench_cpu.py --cold-start --json benchmarks/cpu.json
	$(BIN)/python benchmarks/bench_onnx.py

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e .
	touch $@

# torch, pinned as for bench: the backend the Keras tests run on (KERAS_BACKEND=torch), and the
# exporter of the models tests/test_onnx_exports.py runs.
$(VENV)/.installed-test: $(VENV)/.installed $(PLUGINS)
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e '.[test]' $(foreach p,$(PLUGINS),-e $(dir $(p)))
	touch $@

$(VENV)/.installed-docs: $(VENV)/.installed
	$(BIN)/python -m pip install -q -e '.[docs]'
	touch $@

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis site .cache
