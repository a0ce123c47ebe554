#!/usr/bin/env bash
# Idempotent set-up: Python deps into .venv and the real toxiproxy-server into .chaoskit/bin.
# Re-running it does nothing unless an input changed.
set -euo pipefail
cd "$(dirname "$0")/.."

TOXIPROXY_VERSION=v2.12.0
STATE=.chaoskit
mkdir -p "$STATE/bin"

# --- Python -----------------------------------------------------------------------
PYTHON=${PYTHON:-python3}
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "setup: Python >= 3.11 is required (found: $("$PYTHON" --version 2>&1)); set PYTHON=/path/to/python3.11" >&2
  exit 4
fi
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv"
  "$PYTHON" -m venv .venv
fi
stamp="$STATE/deps.stamp"
want=$(cat pyproject.toml targets/orderstack/pyproject.toml | sha256sum | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "setup: installing Python dependencies into .venv"
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet -e targets/orderstack -e '.[dev]'
  echo "$want" > "$stamp"
fi

# --- Toxiproxy ----------------------------------------------------------------------
if [ -x "$STATE/bin/toxiproxy-server" ]; then
  :
elif command -v toxiproxy-server >/dev/null 2>&1; then
  ln -sf "$(command -v toxiproxy-server)" "$STATE/bin/toxiproxy-server"
elif command -v go >/dev/null 2>&1; then
  echo "setup: building toxiproxy-server $TOXIPROXY_VERSION with go install"
  tmp=$(mktemp -d)
  GOBIN="$tmp" CGO_ENABLED=0 go install "github.com/Shopify/toxiproxy/v2/cmd/server@$TOXIPROXY_VERSION"
  mv "$tmp/server" "$STATE/bin/toxiproxy-server"
  rmdir "$tmp"
else
  echo "setup: toxiproxy-server not found and Go is not installed; install Go (https://go.dev/dl) or put toxiproxy-server $TOXIPROXY_VERSION on PATH, then run 'make setup' again" >&2
  exit 4
fi
