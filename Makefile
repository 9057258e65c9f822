# Every target installs what it needs, so each works on a fresh clone with only Python.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The CPU wheel of torch lies on the build machines' disk; users with a GPU keep their own build.
TORCH_PIN ?=

.PHONY: install test lint train clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(if $(TORCH_PIN),$(BIN)/pip install "torch==$(TORCH_PIN)",)
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
