# The two commands a new user types: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# torch is pinned to the CPU build that lies on this machine's disk (a looser pin downloads
# several GB of CUDA); the [ai] extra declares the range.
TORCH ?= torch==2.13.0

.PHONY: demo test install install-dev web lint typecheck unit bench clean

# The browser front end (viewer/web): `npm ci` when the lock file changed, `npm run build` when a
# source changed. Needs Node.js >= 20.19 (Vite 8) and npm.
WEB := viewer/web
WEB_SOURCES := $(shell find $(WEB)/src -type f 2>/dev/null) $(addprefix $(WEB)/,index.html vite.config.ts tsconfig.json package.json scripts/compress.mjs)

$(WEB)/node_modules/.package-lock.json: $(WEB)/package-lock.json
	@command -v npm >/dev/null || { echo "npm is missing: Node.js >= 20.19 with npm builds viewer/web"; exit 1; }
	cd $(WEB) && npm ci --no-audit --no-fund --loglevel=error

$(WEB)/dist/index.html: $(WEB)/node_modules/.package-lock.json $(WEB_SOURCES)
	cd $(WEB) && npm run build
	touch $@

web: $(WEB)/dist/index.html

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

install: $(VENV)/.installed web

install-dev: $(VENV)/.installed-dev web

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
	rm -rf $(VENV) var $(WEB)/node_modules $(WEB)/dist
