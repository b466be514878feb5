#!/usr/bin/env bash
# Runs the desync upgrade loop on the built-in demo host (real Nix, fake nixpkgs revisions).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh demo
# Offline-friendly Nix settings unless the caller set their own.
export NIX_CONFIG="${NIX_CONFIG:-$'sandbox = false\nsubstituters ='}"
exec node dist/src/demo/main.js "$@"
