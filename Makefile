# The README's two commands: `make run` and `make test`. Both set up what they need first.
.PHONY: run test lint bench bench-clusters shell chromium
VENV ?= .venv
PYTHON ?= python3

$(VENV)/.installed: pyproject.toml
	@echo "setting up: a virtualenv in $(VENV) with the ledger and its dependencies (first time: about a minute)"
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	@echo "setting up: installing the ledger and its dependencies"
	$(VENV)/bin/pip install -q -e ".[test]"
	@echo "setting up: done"
	touch $@

run: $(VENV)/.installed
	@echo "ledger is installed in $(VENV)/bin: 'make shell' opens a shell with it on PATH"
	$(VENV)/bin/ledger serve --demo

# A shell with the virtualenv's `ledger` on PATH (in the folder whose .ledger holds the data).
shell: $(VENV)/.installed
	@echo "'ledger' is on PATH in this shell; exit to leave it"
	@PATH="$(CURDIR)/$(VENV)/bin:$$PATH" VIRTUAL_ENV="$(CURDIR)/$(VENV)" $${SHELL:-/bin/sh}

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

# The console's browser tests drive Debian's chromium: installed here when missing (as root).
chromium:
	@test -x /usr/bin/chromium || { apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

test: lint chromium
	$(VENV)/bin/pytest

bench: $(VENV)/.installed
	$(VENV)/bin/python ops/bench.py

bench-clusters: $(VENV)/.installed
	$(VENV)/bin/python ops/bench_clusters.py
