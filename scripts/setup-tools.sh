#!/usr/bin/env bash
# Debian tools the tests and benchmarks use for real: chromium (renders report.html),
# tmux (drives the live dashboard), nginx and wrk (benchmark baselines), prometheus (the
# team's metrics, scraped and queried) and postgresql (the team's ledger). Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
STATE=.chaoskit
mkdir -p "$STATE"

want=()
command -v chromium >/dev/null 2>&1 || want+=(chromium)
command -v tmux >/dev/null 2>&1 || want+=(tmux)
[ -x /usr/sbin/nginx ] || command -v nginx >/dev/null 2>&1 || want+=(nginx-light)
command -v wrk >/dev/null 2>&1 || want+=(wrk)
command -v prometheus >/dev/null 2>&1 || want+=(prometheus)
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || want+=(postgresql)
[ "${#want[@]}" -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
  echo "setup-tools: missing ${want[*]}; install them with: sudo apt-get install ${want[*]}" >&2
  exit 4
fi
echo "setup-tools: installing ${want[*]}"
export DEBIAN_FRONTEND=noninteractive
if ! apt-get install -y -q --no-install-recommends "${want[@]}" >"$STATE/apt-tools.log" 2>&1; then
  apt-get update -q >>"$STATE/apt-tools.log" 2>&1 ||
    { echo "setup-tools: apt-get update failed (see $STATE/apt-tools.log)" >&2; exit 4; }
  apt-get install -y -q --no-install-recommends "${want[@]}" >>"$STATE/apt-tools.log" 2>&1 ||
    { echo "setup-tools: apt-get install ${want[*]} failed (see $STATE/apt-tools.log)" >&2; exit 4; }
fi
# nginx-light may start a system nginx on port 80; the benches run their own on 127.0.0.1.
# prometheus and postgresql start system services too; the tests start their own on free
# loopback ports with data in temp folders.
if command -v systemctl >/dev/null 2>&1; then
  for unit in nginx prometheus postgresql; do systemctl disable --now "$unit" >/dev/null 2>&1 || true; done
fi
