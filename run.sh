#!/usr/bin/env bash
# Install DMP-XDS in a local virtualenv (first run only) and start the whole system on the
# embedded default: SQLite + a data folder under ./data. Extra arguments go to `xds serve`.
set -euo pipefail
cd "$(dirname "$0")"
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/xds ] || [ pyproject.toml -nt .venv/.installed ]; then
  "$PYTHON" -m venv .venv
  .venv/bin/pip install --quiet --upgrade pip
  .venv/bin/pip install --quiet -e .
  touch .venv/.installed
fi
export XDS_DATA_DIR=${XDS_DATA_DIR:-$PWD/data}
exec .venv/bin/xds serve "$@"
