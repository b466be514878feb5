#!/usr/bin/env bash
# Installs what nixos-desync's demo and tests need, idempotently, then builds dist/.
# Usage: scripts/setup.sh [demo|test|bench]   (demo needs only Nix; test also Prometheus tools;
#        bench also wrk and node_exporter, the peers of bench/exporter.mjs)
set -euo pipefail
cd "$(dirname "$0")/.."
mode="${1:-test}"

need=()
command -v nix-build >/dev/null 2>&1 || need+=(nix-bin)
if [ "$mode" = test ] || [ "$mode" = bench ]; then
  command -v promtool >/dev/null 2>&1 || need+=(prometheus)
  command -v amtool >/dev/null 2>&1 || need+=(prometheus-alertmanager)
  command -v xz >/dev/null 2>&1 || need+=(xz-utils)
  command -v systemd-analyze >/dev/null 2>&1 || need+=(systemd)
  # Real systemd in tests (docs/development.md): nspawn boots a debootstrapped Debian.
  command -v debootstrap >/dev/null 2>&1 || need+=(debootstrap)
  if ! command -v systemd-nspawn >/dev/null 2>&1; then
    # The installed systemd's own version, so that installing it upgrades nothing else.
    sysv="$(dpkg-query -W -f='${Version}' systemd 2>/dev/null || true)"
    need+=("systemd-container${sysv:+=$sysv}")
  fi
fi
if [ "$mode" = bench ]; then
  command -v wrk >/dev/null 2>&1 || need+=(wrk)
  command -v prometheus-node-exporter >/dev/null 2>&1 || need+=(prometheus-node-exporter)
fi
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "setup: installing Debian packages: ${need[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
  else
    echo "setup: missing Debian packages: ${need[*]}" >&2
    echo "setup: install them as root: apt-get install -y ${need[*]}" >&2
    exit 1
  fi
fi

# npm dependencies exactly as locked; skipped when node_modules matches the lockfile.
lock_hash="$(sha256sum package-lock.json | cut -d' ' -f1)"
if [ "$(cat node_modules/.nixos-desync-lock-hash 2>/dev/null)" != "$lock_hash" ]; then
  npm ci --no-audit --no-fund --loglevel=error
  echo "$lock_hash" > node_modules/.nixos-desync-lock-hash
fi
node node_modules/typescript/bin/tsc -p tsconfig.json

# The cached rootfs of the real-systemd tests (built once, outside the repo; root only).
if [ "$mode" = test ] && [ "$(id -u)" = 0 ]; then
  scripts/test-rootfs.sh >/dev/null
fi
