# The README's two commands: `make run` and `make test`. Both set up what they need first.
.PHONY: run test lint bench shell
VENV ?= .venv
PYTHON ?= python3

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e ".[test]"
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

test: lint
	$(VENV)/bin/pytest

bench: $(VENV)/.installed
	$(VENV)/bin/python ops/bench.py
