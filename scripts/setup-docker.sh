#!/usr/bin/env bash
# Docker engine for the docker backend and its tests; idempotent, works as root without a TTY.
#  1. dockerd missing     -> install Debian's docker.io (and debootstrap for offline images)
#  2. no engine answers   -> start dockerd in the background (log: .chaoskit/dockerd.log)
#  3. offline images      -> `chaoskit images build --offline` (a no-op while inputs are unchanged)
# Fails with one clear line and exit 4.
set -euo pipefail
cd "$(dirname "$0")/.."

STATE=.chaoskit
mkdir -p "$STATE"
LOG="$STATE/dockerd.log"

fail() {
  echo "setup-docker: $*" >&2
  exit 4
}

# Root does it directly; anyone else needs password-less sudo (no TTY to ask on).
SUDO=()
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    SUDO=(sudo -n)
  fi
fi
can_admin() { [ "$(id -u)" -eq 0 ] || [ "${#SUDO[@]}" -gt 0 ]; }

# --- 1. packages ----------------------------------------------------------------------------
missing=()
command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
command -v debootstrap >/dev/null 2>&1 || [ -x /usr/sbin/debootstrap ] || missing+=(debootstrap)
if [ "${#missing[@]}" -gt 0 ]; then
  command -v apt-get >/dev/null 2>&1 ||
    fail "missing ${missing[*]} and apt-get is not available; install Docker and debootstrap yourself"
  can_admin || fail "missing ${missing[*]}; installing needs root: run 'sudo make setup-docker'"
  echo "setup-docker: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # Try without refreshing the package lists first; refresh once only when that fails.
  if ! "${SUDO[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}" >"$STATE/apt.log" 2>&1; then
    "${SUDO[@]}" apt-get update -q >>"$STATE/apt.log" 2>&1 ||
      fail "apt-get update failed (see $STATE/apt.log)"
    "${SUDO[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}" >>"$STATE/apt.log" 2>&1 ||
      fail "apt-get install ${missing[*]} failed (see $STATE/apt.log)"
  fi
fi

# --- 2. engine ------------------------------------------------------------------------------
engine_answers() { timeout 10 docker info >/dev/null 2>&1; }

if ! engine_answers; then
  said=$(timeout 10 docker info 2>&1 || true)
  if printf '%s' "$said" | grep -qi "permission denied"; then
    fail "permission denied on the Docker socket: add $(id -un) to the 'docker' group (then log in again) or run as root"
  fi
  can_admin || fail "no Docker engine answers and starting dockerd needs root: run 'sudo dockerd &' or 'sudo make setup-docker'"
  echo "setup-docker: starting dockerd in the background (log: $LOG)"
  # setsid: the engine must outlive this script and a Ctrl-C in the terminal that ran make.
  "${SUDO[@]}" setsid nohup dockerd >"$LOG" 2>&1 </dev/null &
  for _ in $(seq 1 60); do
    engine_answers && break
    sleep 0.5
  done
  engine_answers || fail "dockerd did not answer within 30 s; last lines of $LOG: $(tail -n 3 "$LOG" 2>/dev/null | tr '\n' ' ')"
fi

# --- 3. offline images ----------------------------------------------------------------------
# The builder compares each image's chaoskit.inputs label with the hash of its inputs and
# rebuilds only what changed; the first build takes about a minute (debootstrap).
.venv/bin/python -m chaoskit images build --offline --quiet || exit 4
