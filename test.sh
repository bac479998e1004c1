#!/usr/bin/env bash
# Install DMP-XDS with its test dependencies (first run only), lint (ruff) and type-check (mypy) it,
# and run the whole suite on SQLite and PostgreSQL (127.0.0.1:5432, user postgres, database test).
# Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")"
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/pytest ] || [ ! -x .venv/bin/mypy ] || [ ! -x .venv/bin/ruff ] || [ pyproject.toml -nt .venv/.installed-test ]; then
  "$PYTHON" -m venv .venv
  .venv/bin/pip install --quiet --upgrade pip
  .venv/bin/pip install --quiet -e '.[test]'
  touch .venv/.installed-test
fi
# Lint and type-check first (configuration in pyproject.toml): a failure stops the run.
.venv/bin/ruff check .
.venv/bin/mypy
# The portal's browser tests drive Debian's Chromium (never a downloaded browser).
if [ ! -x /usr/bin/chromium ]; then
  DEBIAN_FRONTEND=noninteractive apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium
fi
# PostgreSQL is a service of the machine; start it if it is installed but stopped.
if ! .venv/bin/python -c "import psycopg; psycopg.connect('host=127.0.0.1 port=5432 user=postgres dbname=test', connect_timeout=3).close()" 2>/dev/null; then
  if command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ]; then
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
    sleep 2
  fi
fi
exec .venv/bin/python -m pytest -n 2 -q "$@"
