#!/usr/bin/env bash
# Install DMP-XDS in a local virtualenv (first run only) and start the whole system on the
# embedded default: SQLite + a data folder under ./data. On the first start of a fresh data
# folder it also loads the synthetic French demo record set (XDS_DEMO=0 to skip).
# Extra arguments go to `xds serve`.
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
if [ "${XDS_DEMO:-1}" = "0" ] || [ -e "$XDS_DATA_DIR/.demo-loaded" ]; then
  exec .venv/bin/xds serve "$@"
fi
.venv/bin/xds serve "$@" &
server=$!
trap 'kill -TERM "$server" 2>/dev/null' TERM INT
port=8080
args=("$@")
for i in "${!args[@]}"; do
  if [ "${args[$i]}" = "--port" ]; then port=${args[$((i + 1))]}; fi
done
for _ in $(seq 1 120); do
  if .venv/bin/python -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:$port/health', timeout=1)" 2>/dev/null; then
    break
  fi
  sleep 0.5
done
if .venv/bin/xds demo --data-dir "$XDS_DATA_DIR" --out "$XDS_DATA_DIR/demo-files" \
     --registry-url "http://127.0.0.1:$port/registry" --repository-url "http://127.0.0.1:$port/repository"; then
  touch "$XDS_DATA_DIR/.demo-loaded"
fi
wait "$server"
