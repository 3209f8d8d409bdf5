# Two entry points for a fresh machine: `make demo` and `make test` (see README.md).
# One command per demo: make demo | demo-htmx | demo-starlette | demo-flask | demo-websocket |
# demo-django | demo-django-uvicorn (all on the embedded fake model; OPENAI_API_KEY for a real one).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: demo demo-htmx demo-resumable demo-starlette demo-flask demo-websocket demo-django demo-django-uvicorn \
	test docs docs-build setup system-deps bench

# The FastAPI chat (fetch + the shared page), with the htmx pages mounted at /htmx/.
demo: $(VENV)/.demo
	$(BIN)/uvicorn --app-dir examples/fastapi app:app --host $(HOST) --port $(PORT)

demo-htmx: $(VENV)/.demo
	$(BIN)/uvicorn --app-dir examples/fastapi htmx_app:app --host $(HOST) --port $(PORT)

# Answers that outlive a dropped connection (EventSource + Last-Event-ID); REDIS_URL=redis://...
# and --workers 2 for several workers.
demo-resumable: $(VENV)/.demos
	$(BIN)/uvicorn --app-dir examples/fastapi resumable:app --host $(HOST) --port $(PORT)

demo-starlette: $(VENV)/.demos
	$(BIN)/uvicorn --app-dir examples/starlette app:app --host $(HOST) --port $(PORT)

demo-flask: $(VENV)/.demos
	$(BIN)/flask --app examples/flask/app.py run --host $(HOST) --port $(PORT)

demo-websocket: $(VENV)/.demos
	$(BIN)/uvicorn --app-dir examples/websocket app:app --host $(HOST) --port $(PORT)

# Django's own runserver: daphne's (first in INSTALLED_APPS), an ASGI server.
demo-django: $(VENV)/.demos
	cd examples/django && ../../$(BIN)/python manage.py runserver $(HOST):$(PORT)

demo-django-uvicorn: $(VENV)/.demos
	$(BIN)/uvicorn --app-dir examples/django chatproject.asgi:application --host $(HOST) --port $(PORT)

test: $(VENV)/.dev system-deps
	$(BIN)/python -m pytest $(ARGS)

# The documentation site (MkDocs + Material + mkdocstrings), served with live reload.
docs: $(VENV)/.dev
	$(BIN)/mkdocs serve --dev-addr $(HOST):$(PORT)

docs-build: $(VENV)/.dev
	$(BIN)/mkdocs build --strict

bench: $(VENV)/.dev
	$(BIN)/python benchmarks/run_all.py

setup: $(VENV)/.dev

# Dependency groups (PEP 735, pyproject.toml) need pip >= 25.1: pip is upgraded first.
$(VENV)/.demo: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e . --group demo
	touch $@

$(VENV)/.demos: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e . --group demos
	touch $@ $(VENV)/.demo

$(VENV)/.dev: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e . --group dev
	touch $@ $(VENV)/.demo $(VENV)/.demos

# Debian packages the tests drive for real (headless Chromium, Node for the AI SDK reader).
system-deps:
	@bash scripts/system-deps.sh
