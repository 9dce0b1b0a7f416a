# `make test` is the one command CI and developers run. It builds .venv when missing,
# installs the CPU build of torch when no torch is importable (an unpinned torch would pull
# a multi-GB CUDA build), installs mixnas with its dev extras, and runs the whole suite.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TORCH_PIN ?= torch==2.13.0

.PHONY: test setup run bench clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

setup: $(BIN)/python
	@$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install --quiet $(TORCH_PIN)
	$(BIN)/python -m pip install --quiet -e ".[dev]"

test: setup
	$(BIN)/python -m pytest -q

# The default pipeline end to end (digits, embedded data; a few minutes on 2 cores) into runs/digits.
run: setup
	$(BIN)/mixnas run --preset digits

bench: setup
	$(BIN)/python benchmarks/attention.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
