# TokenHub's two everyday commands: `make run` and `make test`. Both set up what they need.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: install run test lint typecheck bench bench-quick wrk chromium clean

# The virtualenv is rebuilt whenever the dependency list changes.
$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "make: $(PYTHON) is required (set PYTHON=...)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@touch $(STAMP)

install: $(STAMP) chromium

# Creates the database in DATABASE_URL if needed, migrates, then runs all four services.
run: $(STAMP)
	$(BIN)/tokenhub up

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

test: lint typecheck chromium
	$(BIN)/pytest

# The benchmarks' load generator (C, from Debian's packages), installed when missing.
wrk:
	@command -v wrk >/dev/null || { apt-get install -y wrk >/dev/null || sudo apt-get install -y wrk; }

# Debian's chromium, which the console's browser tests drive (tests/browser/), installed when missing.
# Where it cannot be installed, those tests skip and say why; everything else still runs.
chromium:
	@test -x /usr/bin/chromium || apt-get install -y chromium >/dev/null 2>&1 \
		|| { apt-get update >/dev/null 2>&1 && apt-get install -y chromium >/dev/null 2>&1; } \
		|| sudo apt-get install -y chromium >/dev/null 2>&1 \
		|| echo "make: chromium could not be installed: the browser tests (tests/browser/) will skip"

# Speed on this machine: 1,000,000 tokens, every hot path, the same two with 2 workers of the gateway and
# the registry (and an on-paper projection to more cores), the sweeper; writes bench/results.json.
bench: $(STAMP) wrk
	$(BIN)/python -m bench.run

# The same in about a minute (100,000 tokens, short runs), for everyday use.
bench-quick: $(STAMP) wrk
	$(BIN)/python -m bench.run --quick

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
