# Every target installs what it needs, so each works on a fresh clone with only Python.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# On a machine without an NVIDIA GPU, torch is pre-installed from this CPU build (its wheel
# lies on the build machines' disk) so that pyproject's range does not pull several GB of
# CUDA libraries. Machines with a GPU, or a venv that already has torch, keep their own.
CPU_TORCH ?= torch==2.13.0

.PHONY: install test lint train clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	@if ! $(BIN)/python -c "import torch" 2>/dev/null && ! command -v nvidia-smi >/dev/null 2>&1; then \
		$(BIN)/pip install "$(CPU_TORCH)" || echo "note: $(CPU_TORCH) unavailable; pip will pick torch from the range"; \
	fi
	$(BIN)/pip install -e ".[dev]"
	touch $@

install: $(VENV)/.installed

test: install
	$(BIN)/python -m pytest tests

lint: install
	$(BIN)/ruff check engine recipes tests bench
	$(BIN)/ruff format --check engine recipes tests bench

train: install
	$(BIN)/python recipes/train.py

clean:
	rm -rf $(VENV) work_dirs
