# `make test` on a fresh Debian machine with only python3 and make; `make test-all` (what CI
# runs) the same suite on every supported CPython, each in its own venv (.ci/test-all).
PYTHON ?= python3
SUPPORTED_PYTHONS := 3.11 3.12 3.13
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: test test-all demo venv typecheck lint clean

$(STAMP): pyproject.toml setup.py
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip >/dev/null
	$(PY) -m pip install -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

# pytest exits 5 when it collected nothing: that is a failure here, and said so.
test: $(STAMP)
	@$(PY) -m pytest tests; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test: pytest collected no tests with $(PY)" >&2; fi; \
	exit $$rc

test-all:
	.ci/test-all $(SUPPORTED_PYTHONS)

# The whole story on one machine: sample services, the leak hunted in `leaky`, the fix measured.
demo: $(STAMP)
	$(VENV)/bin/leaktrace demo --duration 30 --json demo.json

# mypy --strict over the package ([tool.mypy] in pyproject.toml).
typecheck: $(STAMP)
	$(PY) -m mypy

# ruff's rules as selected in pyproject.toml, then the formatter's check on every file.
LINT_PATHS := instrumentation services tests bench grafana mixin setup.py
lint: $(STAMP)
	$(VENV)/bin/ruff check $(LINT_PATHS)
	$(VENV)/bin/ruff format --check $(LINT_PATHS)

clean:
	rm -rf $(VENV) build *.egg-info instrumentation/*.egg-info
