# The two commands a new user types: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# torch is pinned to the CPU build that lies on this machine's disk (a looser pin downloads
# several GB of CUDA); the [ai] extra declares the range.
TORCH ?= torch==2.13.0

.PHONY: demo test install install-dev lint typecheck unit bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# torch first, pinned: then the [ai] extra's range is already satisfied and pip fetches nothing.
$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet $(TORCH)
	$(BIN)/pip install --quiet -e '.[ai]'
	touch $@

$(VENV)/.installed-dev: $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet $(TORCH)
	$(BIN)/pip install --quiet -e '.[dev,ai]'
	touch $@

install: $(VENV)/.installed

install-dev: $(VENV)/.installed-dev

## demo: set up, migrate the embedded database, start the service and push demo studies (Ctrl-C stops)
demo: install
	$(BIN)/yunying db upgrade
	$(BIN)/yunying demo

lint: install-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

typecheck: install-dev
	$(BIN)/mypy

unit: install-dev
	$(BIN)/pytest

## test: install dev dependencies, then ruff, import contracts, mypy and pytest
test: lint typecheck unit

## bench: ingest throughput and memory (prints figures; see docs/performance.md)
bench: install-dev
	$(BIN)/python bench/ingest.py

clean:
	rm -rf $(VENV) var
