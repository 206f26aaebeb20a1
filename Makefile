# `make test` on a fresh Debian machine with only python3 and make.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: test demo venv typecheck lint clean

$(STAMP): pyproject.toml setup.py
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip >/dev/null
	$(PY) -m pip install -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

test: $(STAMP)
	$(PY) -m pytest tests

# The whole story on one machine: sample services, the leak hunted in `leaky`, the fix measured.
demo: $(STAMP)
	$(VENV)/bin/leaktrace demo --duration 30 --json demo.json

typecheck: $(STAMP)
	$(PY) -m mypy

lint: $(STAMP)
	$(VENV)/bin/ruff check instrumentation services tests bench

clean:
	rm -rf $(VENV) build *.egg-info instrumentation/*.egg-info
