# Two entry points for a fresh machine: `make demo` and `make test` (see README.md).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: demo test setup system-deps bench

demo: $(VENV)/.demo
	$(BIN)/uvicorn --app-dir examples/fastapi app:app --host $(HOST) --port $(PORT)

test: $(VENV)/.dev system-deps
	$(BIN)/python -m pytest

bench: $(VENV)/.dev
	$(BIN)/python benchmarks/run_all.py

setup: $(VENV)/.dev

$(VENV)/.demo: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[demo]'
	touch $@

$(VENV)/.dev: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@ $(VENV)/.demo

# Debian packages the tests drive for real (headless Chromium, Node for the AI SDK reader).
system-deps:
	@bash scripts/system-deps.sh
