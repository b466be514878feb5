#!/usr/bin/env bash
# Runs the desync upgrade loop on the built-in demo host (real Nix, fake nixpkgs revisions).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh demo
# Offline-friendly Nix settings unless the caller set their own.
export NIX_CONFIG="${NIX_CONFIG:-$'sandbox = false\nsubstituters ='}"
# --flake: the same loop on a flake host (desyncs as flake inputs, flake.lock rewritten).
if [ "${1:-}" = "--flake" ]; then
  shift
  exec node dist/src/demo/flake-main.js "$@"
fi
exec node dist/src/demo/main.js "$@"
