# The two commands a newcomer needs: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint format install clean bench bench-scale openapi fuzz chaos

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/python -m services.devstack

test: $(STAMP) lint
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# The committed OpenAPI document (docs/openapi.json) from the app; a test keeps them equal.
openapi: $(STAMP)
	$(BIN)/python -m services.api.openapi

# The fuzz test of `make test` at length: random (not derandomised) cases, FUZZ_EXAMPLES of
# them per operation (thousands in all), against the in-process app.
FUZZ_EXAMPLES ?= 100
fuzz: $(STAMP)
	FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) FUZZ_RANDOM=1 $(BIN)/python -m pytest tests/api/test_fuzz.py -p no:cacheprovider

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: $(STAMP)
	$(BIN)/python -m bench.ledger
	$(BIN)/python -m bench.payments
	$(BIN)/python -m bench.calls
	$(BIN)/python -m bench.reads

# Not part of `make bench`: about 30 minutes. The ledger as its data grows (to 100,000
# wallets and 1,000,000 postings), then the whole journey and the periodic jobs on an
# empty stack and on one loaded with 100,000 users.
bench-scale: $(STAMP)
	$(BIN)/python -m bench.ledger_scale
	$(BIN)/python -m bench.scale

# Not part of `make test` or `make bench`: about 3 minutes. Fundings and calls while
# processes are killed and stalled; exits non-zero if money was lost or doubled.
# CHAOS_SECONDS sets the drive's length (default 90).
chaos: $(STAMP)
	$(BIN)/python -m bench.chaos

clean:
	rm -rf $(VENV) .pytest_cache
