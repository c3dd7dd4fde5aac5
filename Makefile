# One command per chore: `make run`, `make test`, `make lint`, `make bench`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test lint types unit bench protocol clean

# The venv is rebuilt when pyproject.toml changes.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,redis]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/python -m asgi_chat --host $(HOST) --port $(PORT)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: lint
	$(BIN)/pytest

bench: $(STAMP)
	$(BIN)/pip install --quiet -e '.[bench]'
	$(MAKE) -C bench
	$(BIN)/python bench/run.py

# docs/PROTOCOL.md from real runs of the app (tests/e2e/test_protocol_doc.py checks it is current).
protocol: $(STAMP)
	$(BIN)/python -m docs.generate_protocol

clean:
	rm -rf $(VENV) bench/build .mypy_cache .ruff_cache .pytest_cache
