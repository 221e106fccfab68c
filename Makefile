# Two commands on a fresh machine with Python 3.11 and make:  make demo  /  make test
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
# Re-install only when the project's requirements change.
STAMP := $(VENV)/.installed

.PHONY: demo test quick check check-static lab lint types bench sample deploy-check clean

$(STAMP): pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e ".[lab,cluster,live,dev]"
	@touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/alphatrade-lab demo

test: $(STAMP)
	$(PY) -m pytest

# The quick loop: everything but the tests marked slow (under a minute).
quick: $(STAMP)
	$(PY) -m pytest -m "not slow"

lab: $(STAMP)
	$(VENV)/bin/jupyter lab notebooks/

lint: $(STAMP)
	$(VENV)/bin/ruff check .

types: $(STAMP)
	$(VENV)/bin/mypy alphatrade_lab

# Lint and types: fast, so CI runs them before the tests.
check-static: lint types

check: check-static test

bench: $(STAMP)
	@for b in benchmarks/*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

# The compose stack (docker-compose.yml) without Docker: the wheel in a fresh venv, as the
# Dockerfile builds it, and the engine and api services' commands and environment run as
# local processes against real PostgreSQL and Redis servers (deploy/check.py says what is
# and is not verified that way). make test runs it too (tests/test_deploy_check.py).
deploy-check: $(STAMP)
	$(PY) deploy/check.py

sample: $(STAMP)
	$(VENV)/bin/alphatrade-lab make-sample

clean:
	rm -rf $(VENV) runs .pytest_cache
