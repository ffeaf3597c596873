# The README's commands. `make run` and `make test` set up everything they need on a fresh machine.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
TSTAMP  := $(VENV)/.installed-test
PIP     := $(BIN)/pip --disable-pip-version-check -q
# SoftHSM2 config written by scripts/hsm-up.sh (its default HEALTHCARD_SOFTHSM_DIR)
HSM_DIR ?= /tmp/healthcard-softhsm
export HEALTHCARD_SOFTHSM_DIR := $(HSM_DIR)
export SOFTHSM2_CONF := $(HSM_DIR)/softhsm2.conf

.PHONY: run test check bench soak fuzz pcsc hsm clean

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

## run: the platform of a demo city (Zhengzhou) on the embedded default — SQLite, in-process
## cards — seeded on first run; prints how to log in, then serves http://127.0.0.1:8000/docs
## (the scripted card/terminal/card-centre walk-through is `.venv/bin/healthcard demo`)
run: $(STAMP)
	$(BIN)/healthcard serve --demo

## pcsc: install (as root) and start pcscd with the two vsmartcard-vpcd readers
pcsc:
	bash scripts/pcsc-up.sh

## hsm: install (as root) SoftHSM2 and initialise its "healthcard" token (PIN 1234)
hsm:
	bash scripts/hsm-up.sh

## test: everything — unit, then integration through PostgreSQL, NATS JetStream, a real pcscd + vpcd and SoftHSM2
test: $(TSTAMP)
	bash scripts/pg-up.sh
	bash scripts/nats-up.sh
	bash scripts/pcsc-up.sh
	bash scripts/hsm-up.sh
	bash scripts/browser-up.sh
	$(BIN)/python -m pytest -p no:cacheprovider

## check: lint, format and types
check: $(TSTAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy

## bench: swipe and throughput figures (see docs/benchmarks.md)
bench: $(TSTAMP)
	bash scripts/pg-up.sh
	bash scripts/nats-up.sh
	bash scripts/bench-up.sh
	bash scripts/pcsc-up.sh
	bash scripts/hsm-up.sh
	$(BIN)/python -m bench --write docs/benchmarks.md

## soak: 10 minutes of mixed load on 2 workers at 1M residents, PostgreSQL crashed and restarted
## in the middle (a private cluster; see docs/reliability.md)
soak: $(TSTAMP)
	bash scripts/pg-up.sh
	$(BIN)/python -m bench.soak --minutes 10 --residents 1000000 --write docs/reliability.md

## fuzz: the fuzzers of `make test`, longer — hypothesis 5,000 examples a property on the card's
## parsers and OS, atheris 10 minutes on the APDU dispatcher, schemathesis 200 requests an operation
fuzz: $(TSTAMP)
	bash scripts/pg-up.sh
	HEALTHCARD_FUZZ_EXAMPLES=5000 HEALTHCARD_ATHERIS_SECONDS=600 HEALTHCARD_API_FUZZ_EXAMPLES=200 \
	  $(BIN)/python -m pytest -p no:cacheprovider -q -s tests/unit/test_fuzz_card.py \
	  tests/unit/test_fuzz_atheris.py tests/unit/test_agent_fuzz.py tests/integration/test_api_fuzz.py

clean:
	rm -rf $(VENV) data .pytest_cache .mypy_cache .ruff_cache .hypothesis
