#!/usr/bin/env bash
# Sourced: makes sure .venv has the Python tools the tests use (schemathesis for the
# resilience suite, openapi-spec-validator for the OpenAPI documents), pinned in
# scripts/resilience/requirements.txt and installed from PyPI; exports VACANCY_PYTHON.
if [ ! -x .venv/bin/schemathesis ] || ! .venv/bin/python -c 'import psycopg2, openapi_spec_validator' 2>/dev/null; then
  echo "==> installing the test tools into .venv (PyPI)"
  python3 -m venv .venv && .venv/bin/pip install -q -r scripts/resilience/requirements.txt || {
    echo "could not install the Python test tools into .venv"; exit 1; }
fi
export VACANCY_PYTHON=$PWD/.venv/bin/python
