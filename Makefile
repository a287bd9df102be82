# Every target creates or reuses .venv itself: a fresh clone needs Python 3.11+ and make.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: demo test lint format typecheck test-all bench bench-quick clean

$(PY):
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "asyncnet needs Python 3.11 or newer")'
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(PY)
	$(PY) -m pip install -q -e '.[speed]'
	@touch $@

$(VENV)/.installed-dev: pyproject.toml | $(PY)
	$(PY) -m pip install -q -e '.[dev,speed]'
	@touch $@ $(VENV)/.installed

demo: $(VENV)/.installed
	$(PY) -m asyncnet.demos.tour

test: $(VENV)/.installed-dev
	$(PY) -m pytest $(PYTEST_ARGS)

lint: $(VENV)/.installed-dev
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

format: $(VENV)/.installed-dev
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .

typecheck: $(VENV)/.installed-dev
	$(PY) -m mypy

# The suite on every Python the machine has (asyncio's shutdown differs per version).
test-all:
	@set -e; ran=0; for v in 3.11 3.12 3.13; do \
	  if command -v python$$v >/dev/null 2>&1 && python$$v -c 'import sys' >/dev/null 2>&1; then \
	    echo "=== Python $$v"; $(MAKE) --no-print-directory test PYTHON=python$$v VENV=.venv-$$v; ran=$$((ran+1)); \
	  else echo "=== Python $$v: not installed, skipped"; fi; \
	done; echo "test-all: ran on $$ran Python versions"

clean:
	rm -rf $(VENV) .venv-3.* build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache .hypothesis
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
