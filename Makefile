# One command per chore: `make run`, `make test`, `make lint`, `make docs`, `make bench`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Two stamps: `make run` installs what serving needs, `make test` adds the test toolchain
# (pytest, mypy, ruff, the other ASGI servers, Playwright). Each reinstalls when pyproject.toml changes.
RUN_STAMP := $(VENV)/.installed-run
TEST_STAMP := $(VENV)/.installed-test
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test lint types unit bench protocol clean system-packages docs docs-check

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(RUN_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[redis]'
	touch $@

$(TEST_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test,redis]'
	touch $@

# The programs the suite drives, each as program:Debian package. The Redis tests start their own
# redis-server; the browser tests drive Debian's Chromium; tests/e2e/test_nginx.py runs
# docs/deploy/nginx.conf in an nginx of its own (own config, prefix and free ports), filled in by
# envsubst, with a Chromium that trusts its test CA through an NSS database made by certutil; the
# rediss:// test makes its certificate with openssl. `make test` installs what is missing (as root,
# with apt-get: a fresh machine, CI) rather than skipping tests, or names the command to run.
SYSTEM_PACKAGES := redis-server:redis-server chromium:chromium nginx:nginx certutil:libnss3-tools \
	envsubst:gettext-base openssl:openssl

system-packages:
	@missing=""; \
	for pair in $(SYSTEM_PACKAGES); do \
		program=$${pair%%:*}; package=$${pair#*:}; \
		command -v $$program >/dev/null || [ -x /usr/sbin/$$program ] || missing="$$missing $$package"; \
	done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "make test: installing the system packages its tests need:$$missing"; \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing; \
	else \
		echo "make test needs system packages it cannot install as this user: sudo apt-get install -y$$missing" >&2; \
		exit 1; \
	fi

run: $(RUN_STAMP)
	$(BIN)/python -m asgi_chat --host $(HOST) --port $(PORT)

lint: $(TEST_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: system-packages lint docs-check
	$(BIN)/pytest

bench: $(TEST_STAMP)
	$(BIN)/pip install --quiet -e '.[bench]'
	$(MAKE) -C bench
	$(BIN)/python bench/run.py

# docs/PROTOCOL.md from real runs of the app (tests/e2e/test_protocol_doc.py checks it is current).
protocol: $(TEST_STAMP)
	$(BIN)/python -m docs.generate_protocol

# The docs site (mkdocs.yml, docs/) into site/: docs/configuration.md regenerated from the settings,
# then a strict build, where a broken link or anchor, or a page missing from the nav, is an error.
docs: $(TEST_STAMP)
	$(BIN)/python -m docs.generate_config
	$(BIN)/mkdocs build --strict

# The same strict build for `make test`, into a temporary directory: it checks, and writes nothing.
docs-check: $(TEST_STAMP)
	@site=$$(mktemp -d) && $(BIN)/mkdocs build --strict --quiet --site-dir "$$site"; status=$$?; rm -rf "$$site"; exit $$status

clean:
	rm -rf $(VENV) bench/build .mypy_cache .ruff_cache .pytest_cache
