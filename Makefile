# Every target creates or reuses .venv itself: a fresh clone needs Python 3.11+ and make.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=
PYTEST_WORKERS ?= 2

.PHONY: demo test test-quick lint format typecheck docs test-all bench bench-quick bench-micro \
	bench-transfers bench-http bench-http-client bench-pop3 bench-clients bench-imports clean

$(PY):
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "asyncnet needs Python 3.11 or newer")'
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(PY)
	$(PY) -m pip install -q -e '.[speed]'
	@touch $@

$(VENV)/.installed-dev: pyproject.toml | $(PY)
	$(PY) -m pip install -q -e '.[dev,docs,speed]'
	@touch $@ $(VENV)/.installed

$(VENV)/.installed-bench: pyproject.toml | $(PY)
	$(PY) -m pip install -q -e '.[bench,speed]'
	@touch $@ $(VENV)/.installed

$(VENV)/.installed-docs: pyproject.toml | $(PY)
	$(PY) -m pip install -q -e '.[docs,speed]'
	@touch $@ $(VENV)/.installed

demo: $(VENV)/.installed
	$(PY) -m asyncnet.demos.tour

# The suite in two parts: the tests that may share the machine in PYTEST_WORKERS
# processes (pytest-xdist), then those marked `serial` one at a time.  Exit status 5
# ("no tests") only means PYTEST_ARGS left one part empty.
test: $(VENV)/.installed-dev
	$(PY) -m pytest -n $(PYTEST_WORKERS) --dist loadgroup --part parallel $(PYTEST_ARGS) || [ $$? -eq 5 ]
	$(PY) -m pytest --part serial $(PYTEST_ARGS) || [ $$? -eq 5 ]

# Under a minute: what is neither slow nor serial, in parallel.
test-quick: $(VENV)/.installed-dev
	$(PY) -m pytest -n $(PYTEST_WORKERS) --dist loadgroup --part parallel -m "not slow" $(PYTEST_ARGS)

lint: $(VENV)/.installed-dev
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

format: $(VENV)/.installed-dev
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .

typecheck: $(VENV)/.installed-dev
	$(PY) -m mypy

# The API reference from the docstrings, with the pages in docs/, into site/.
# --strict turns every warning into an error; the build itself needs no network.
docs: $(VENV)/.installed-docs
	NO_MKDOCS_2_WARNING=1 $(PY) -m mkdocs build --strict --site-dir site

# The suite on every Python the machine has (asyncio's shutdown differs per version).
# pyenv's shims answer for versions that are installed but not selected, so fall
# back to the interpreters under $(pyenv root)/versions.
test-all:
	@set -e; ran=""; for v in 3.11 3.12 3.13; do \
	  py=""; \
	  if python$$v -c 'import sys' >/dev/null 2>&1; then py=python$$v; \
	  elif command -v pyenv >/dev/null 2>&1; then \
	    for d in "$$(pyenv root)"/versions/$$v.*; do [ -x "$$d/bin/python$$v" ] && py="$$d/bin/python$$v"; done; \
	  fi; \
	  if [ -n "$$py" ]; then \
	    echo "=== Python $$v ($$py)"; $(MAKE) --no-print-directory test PYTHON="$$py" VENV=.venv-$$v; ran="$$ran $$v"; \
	  else echo "=== Python $$v: not installed, skipped"; fi; \
	done; echo "test-all: passed on$$ran"

# Speed is measured here, never asserted in tests.  `make bench BENCH_ARGS=--quick`
# works too (make would take a bare --quick as its own option).  The benchmark lives in
# benchmarks/ (not in the wheel) and runs from the repository root; it judges each run
# by benchmarks/targets.toml.
# Then the transfer, static-file, HTTP-client, POP3 and import-time benchmarks, each its
# own table.
bench: $(VENV)/.installed-bench
	$(PY) -m benchmarks --json benchmarks/results/latest.json --plot benchmarks/results/latest.png --markdown $(BENCH_ARGS)
	$(PY) -m benchmarks.transfers --json benchmarks/results/transfers.json
	$(PY) -m benchmarks.http --json benchmarks/results/http.json
	$(PY) -m benchmarks.http_client --json benchmarks/results/http-client.json
	$(PY) -m benchmarks.pop3 --rtt 0,20,100 --json benchmarks/results/pop3.json
	$(PY) -m benchmarks.imports --json benchmarks/results/imports.json

bench-transfers: $(VENV)/.installed-bench
	$(PY) -m benchmarks.transfers $(BENCH_ARGS)

bench-http: $(VENV)/.installed-bench
	$(PY) -m benchmarks.http $(BENCH_ARGS)

bench-http-client: $(VENV)/.installed-bench
	$(PY) -m benchmarks.http_client $(BENCH_ARGS)

bench-pop3: $(VENV)/.installed-bench
	$(PY) -m benchmarks.pop3 $(BENCH_ARGS)

bench-clients: $(VENV)/.installed-bench
	$(PY) -m benchmarks.clients $(BENCH_ARGS)

bench-imports: $(VENV)/.installed-bench
	$(PY) -m benchmarks.imports $(BENCH_ARGS)

bench-quick: $(VENV)/.installed-bench
	$(PY) -m benchmarks --quick --json benchmarks/results/quick.json --plot benchmarks/results/quick.png $(BENCH_ARGS)

bench-micro: $(VENV)/.installed-bench
	$(PY) -m pytest benchmarks --benchmark-only -p no:cacheprovider

clean:
	rm -rf $(VENV) .venv-3.* build dist site *.egg-info .pytest_cache .mypy_cache .ruff_cache .hypothesis
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
