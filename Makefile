# The two commands: `make run` (the whole product) and `make test` (the whole test suite).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test bench install clean-dev

# The development run: DEBUG is on unless DEBUG is set (everything else defaults to production).
run: $(VENV)/.installed
	DEBUG=$${DEBUG:-true} $(BIN)/python manage.py run

# Tests run in TEST_WORKERS processes (pytest-xdist; 0 runs them in this one; tests/scheduling.py shares them
# out). Much of a test's time is waiting on servers and subprocesses: with three workers two cores were idle 20%
# of a run, with four 8%. Measured on 2 cores: 91-108 s with three (14 runs), 89-102 s with four (12 runs; in
# alternating runs 4 s faster); with a busy process beside the run, 117-120 s with three, 106-120 s with four.
TEST_WORKERS ?= 4

# PYTHONDONTWRITEBYTECODE is cleared so that pytest keeps its rewritten test modules in __pycache__ (ignored by
# git), which every worker would otherwise rewrite again at each run (~3 s of CPU a worker).
test: $(VENV)/.installed
	PYTHONDONTWRITEBYTECODE= $(BIN)/python -m pytest -n $(TEST_WORKERS)

bench: $(VENV)/.installed
	$(BIN)/python -m bench

install: $(VENV)/.installed

# Reinstalled whenever requirements.txt changes.
$(VENV)/.installed: requirements.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.txt
	touch $@

# Stops nothing: removes the embedded database, Redis data and uploaded files of development runs.
clean-dev:
	rm -rf .dev
