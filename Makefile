# The project's commands. `make test` and `make demo` build what they need on first use.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
UV := $(VENV)/bin/uv
UV_VERSION := 0.13.8
# uv does not read pip's configuration; pass on pip's find-links so torch comes from the local CPU
# wheel this kind of machine carries instead of the multi-GB CUDA build.
FIND_LINKS := $(shell $(PYTHON) -m pip config get global.find-links 2>/dev/null)
UV_FIND_LINKS := $(foreach dir,$(FIND_LINKS),--find-links $(dir))

.PHONY: env demo test lint typecheck typecheck-examples imports unit bench lock clean

env: $(VENV)/.synced node_modules/.installed

$(VENV)/.synced: requirements.lock pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	test -x $(UV) || $(VENV)/bin/pip install --quiet uv==$(UV_VERSION)
	$(UV) pip sync --quiet --python $(PY) $(UV_FIND_LINKS) requirements.lock
	$(UV) pip install --quiet --python $(PY) --no-deps -e .
	touch $@

# Azurite (the Azure Blob Storage emulator) and the Node 22 it runs on, from the npm registry,
# into ./node_modules. Without npm the Azurite tests fail and say how to install Node.
node_modules/.installed: package.json package-lock.json
	@if command -v npm >/dev/null; then \
		npm ci --no-audit --no-fund --loglevel=error && touch $@; \
	else \
		echo "npm not found: tests that need Azurite will fail (install Node.js 20+ and npm)"; \
	fi

# The main job: the preprocess-then-train deployment, run on a local Prefect server and worker.
# `make demo DEMO_ARGS=--native-pipeline` runs the chain as one native pipeline run instead.
demo: env
	$(PY) -m scripts.demo $(DEMO_ARGS)

lint: env
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: env
	$(VENV)/bin/mypy

# examples/ holds user scripts, not a package: nine folders, each with its own sample.py, which
# one mypy run cannot tell apart. They are checked a folder at a time (about 40 s, so not part of
# `make test`, where ruff checks them); the tests run every one of them.
typecheck-examples: env
	for folder in examples/*/; do $(VENV)/bin/mypy $$folder*.py || exit 1; done

# The layering rules of DESIGN.md (contracts in .importlinter); the cycle test is in tests/.
imports: env
	$(VENV)/bin/lint-imports --no-cache

unit: env
	$(PY) -m pytest

test: lint typecheck imports unit

bench: env
	$(PY) -m benchmarks.transfer
	$(PY) -m benchmarks.local_runs
	$(PY) -m benchmarks.flow_overhead
	$(PY) -m benchmarks.preemption
	$(PY) -m benchmarks.queued_runs
	$(PY) -m benchmarks.himl_door

# Re-resolve requirements.lock after changing dependencies in pyproject.toml.
lock: $(VENV)/.synced
	$(UV) pip compile --quiet --python $(PY) $(UV_FIND_LINKS) --override overrides.txt \
		--extra dev --no-header -o requirements.lock pyproject.toml

clean:
	rm -rf $(VENV) node_modules .mypy_cache .ruff_cache .pytest_cache .himl-state
