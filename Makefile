# The README's two commands: `make run` and `make test`. Both set up what they need first.
.PHONY: run test lint bench
VENV ?= .venv
PYTHON ?= python3

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e ".[test]"
	touch $@

run: $(VENV)/.installed
	$(VENV)/bin/ledger serve --demo

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

test: lint
	$(VENV)/bin/pytest

bench: $(VENV)/.installed
	$(VENV)/bin/python ops/bench.py
