# The README's commands. `make run` and `make test` set up everything they need on a fresh machine.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
TSTAMP  := $(VENV)/.installed-test
PIP     := $(BIN)/pip --disable-pip-version-check -q

.PHONY: run test check bench pcsc clean

$(BIN)/python:
	$(PY) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(PIP) install -e .
	touch $@

# pyscard builds from source: it needs libpcsclite-dev and gcc, which scripts/pcsc-up.sh installs
$(TSTAMP): pyproject.toml | $(BIN)/python
	bash scripts/pcsc-up.sh
	$(PIP) install -e '.[test]'
	touch $@ $(STAMP)

## run: the scripted terminal demo on the embedded default (in-process cards)
run: $(STAMP)
	$(BIN)/healthcard demo

## pcsc: install (as root) and start pcscd with the two vsmartcard-vpcd readers
pcsc:
	bash scripts/pcsc-up.sh

## test: everything — unit, then integration through a real pcscd + vpcd
test: $(TSTAMP)
	bash scripts/pcsc-up.sh
	$(BIN)/python -m pytest -p no:cacheprovider

## check: lint, format and types
check: $(TSTAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy

## bench: swipe and throughput figures (see docs/benchmarks.md)
bench: $(TSTAMP)
	bash scripts/pcsc-up.sh
	$(BIN)/python -m bench --write docs/benchmarks.md

clean:
	rm -rf $(VENV) data .pytest_cache .mypy_cache .ruff_cache .hypothesis
