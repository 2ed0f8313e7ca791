# Two commands matter on a fresh machine: `make demo` and `make test` (see README.md).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The embedded default: SQLite run/event storage under a git-ignored home, DuckDB file warehouse.
export DAGSTER_HOME ?= $(CURDIR)/.dagster_home
INSTANCE_TEMPLATE ?= deploy/dagster.yaml
# Playwright drives the system's Chromium (/usr/bin/chromium); it must never fetch a browser of its own.
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD = 1

.PHONY: install instance demo test lint ui review bench clean

$(BIN)/dagster: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $@

install: $(BIN)/dagster

instance:
	@mkdir -p $(DAGSTER_HOME)
	@cp -n $(INSTANCE_TEMPLATE) $(DAGSTER_HOME)/dagster.yaml 2>/dev/null || true

demo: install instance
	$(BIN)/orchestration-pipelines demo

# One test worker per core (TEST_WORKERS=0 runs them in this process, e.g. to use a debugger), each
# with single-threaded BLAS/OpenMP: two workers whose model fits each spin a thread per core fight
# over both cores (on 2 cores the suite ran about four times slower that way: 8.5 minutes without).
TEST_WORKERS ?= auto
test: install
	$(BIN)/ruff check .
	OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1 $(BIN)/pytest -q -n $(TEST_WORKERS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

ui: install instance
	$(BIN)/dagster dev -h 127.0.0.1 -p 3000 -w workspace.yaml

# The reviewer inbox on http://127.0.0.1:8765 (REVIEW_HOST / REVIEW_PORT; loopback unless REVIEW_ALLOW_REMOTE=1).
review: install
	$(BIN)/python -m orchestration_pipelines.review.web

bench: install
	$(BIN)/python -m benchmarks.run

clean:
	rm -rf $(VENV) .dagster_home data
