# One command to run the daemon, one to run the tests; both set everything up first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: setup run test lint bench check clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

setup: $(BIN)/.installed

run: setup  ## the daemon on the embedded default config (Ctrl-C stops it cleanly)
	$(BIN)/ingestd run -c config/ingestd.toml

test: setup  ## ruff, mypy, then the whole pytest suite
	bash scripts/system-deps.sh
	$(BIN)/ruff check daemon tests benchmarks
	$(BIN)/ruff format --check daemon tests benchmarks
	$(BIN)/mypy
	$(BIN)/pytest

bench: setup
	$(BIN)/python -m benchmarks

check: setup  ## the black-box contract checks against this build
	INGESTD_BIN_DIR=$(BIN) ../shared/checks/run-all

clean:
	rm -rf $(VENV) data
