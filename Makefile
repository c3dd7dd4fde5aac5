# One command per chore: `make run`, `make test`, `make lint`, `make bench`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Two stamps: `make run` installs what serving needs, `make test` adds the test toolchain
# (pytest, mypy, ruff, the other ASGI servers, Playwright). Each reinstalls when pyproject.toml changes.
RUN_STAMP := $(VENV)/.installed-run
TEST_STAMP := $(VENV)/.installed-test
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test lint types unit bench protocol clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(RUN_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[redis]'
	touch $@

$(TEST_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test,redis]'
	touch $@

run: $(RUN_STAMP)
	$(BIN)/python -m asgi_chat --host $(HOST) --port $(PORT)

lint: $(TEST_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: lint
	$(BIN)/pytest

bench: $(TEST_STAMP)
	$(BIN)/pip install --quiet -e '.[bench]'
	$(MAKE) -C bench
	$(BIN)/python bench/run.py

# docs/PROTOCOL.md from real runs of the app (tests/e2e/test_protocol_doc.py checks it is current).
protocol: $(TEST_STAMP)
	$(BIN)/python -m docs.generate_protocol

clean:
	rm -rf $(VENV) bench/build .mypy_cache .ruff_cache .pytest_cache
