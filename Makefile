# Conveyor: the two commands of the README, and the developer's others.
#
#   make up      install, then run the whole platform on the embedded defaults (Ctrl-C stops it)
#   make test    install, make sure PostgreSQL answers, run the whole test suite
#   make lint    ruff check + ruff format --check, the import layers (import-linter), mypy
#   make bench   the pipeline benchmark (bench/)
#
# Variables: PYTHON (the interpreter that creates .venv, default python3), PLATFORM_ARGS
# (e.g. "--port 8001 --no-example"), PYTEST_ARGS (e.g. "-k reaper -x"), TEST_WORKERS
# (pytest-xdist processes, default 2; 0 runs the suite in one process), BENCH_ARGS.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.requirements-installed
TEST_WORKERS ?= 2

.DEFAULT_GOAL := help
.PHONY: help install up test lint bench

help:
	@sed -n '3,6p' Makefile | sed 's/^# //'

$(PY):
	$(PYTHON) -m venv $(VENV)

# Reinstalled whenever requirements.txt changes.
$(STAMP): requirements.txt | $(PY)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	@touch $(STAMP)

install: $(STAMP)

# exec: Ctrl-C and SIGTERM reach the platform itself, which stops its processes in order.
up: install
	exec env CONVEYOR_EMBEDDED=$${CONVEYOR_EMBEDDED:-1} $(PY) manage.py platform $(PLATFORM_ARGS)

test: install
	@bash scripts/ensure-postgres.sh
	@bash scripts/install-test-deps.sh
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadgroup $(PYTEST_ARGS)

# The layers and the types are checked on the embedded defaults (no secret key needed).
lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports
	CONVEYOR_EMBEDDED=1 $(VENV)/bin/mypy

# The pipeline against bare Celery no-op tasks, same broker and worker (bench/README.md);
# e.g. make bench BENCH_ARGS="-n 500 --isolated-n 100".
bench: install
	$(PY) bench/bench_pipeline.py $(BENCH_ARGS)
