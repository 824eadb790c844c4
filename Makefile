# media-pipeline: `make test` and `make demo` work from a fresh clone with nothing but python3.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: test lint unit demo clean openapi

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	$(PY) -m functions.common.media_tools --check
	touch $(STAMP)

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(VENV)/bin/hadolint containers/*/Dockerfile
	$(VENV)/bin/actionlint

test: lint
	$(PY) -m pytest -n 2

# docs/openapi.json, generated from the api function's typed routes; tests/functions/api/test_openapi.py fails when stale.
openapi: $(STAMP)
	$(PY) -c 'from pathlib import Path; from functions.api.handler import openapi_json; Path("docs/openapi.json").write_text(openapi_json(), encoding="utf-8")'

demo: $(STAMP)
	$(PY) -m local demo

clean:
	rm -rf $(VENV) .local build .pytest_cache .ruff_cache .hypothesis
