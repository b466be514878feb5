#!/usr/bin/env bash
# The benchmarks, side by side with the peers, in one command (see docs/benchmarks.md):
#   bench/run.sh [--quick]
# Installs what it needs idempotently (Nix and npm deps via scripts/setup.sh, wrk and
# prometheus-node-exporter from Debian), builds dist/, runs bench/loop.mjs,
# bench/holdback.mjs and bench/exporter.mjs, prints their tables and writes JSON to bench/results/.
# BENCH_SKIP_SETUP=1: skip scripts/setup.sh (no npm ci under a running test suite), only build.
# --quick: fewer trials/rounds and shorter load (a smoke run, not for the docs).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -z "${BENCH_SKIP_SETUP:-}" ]; then
  scripts/setup.sh bench   # nix-bin, promtool, wrk, node_exporter, npm ci (when the lockfile changed), tsc → dist/
else
  for t in wrk prometheus-node-exporter nix-build; do
    command -v "$t" >/dev/null 2>&1 || { echo "bench: $t is missing; run without BENCH_SKIP_SETUP to install it" >&2; exit 1; }
  done
  node node_modules/typescript/bin/tsc -p tsconfig.json   # deps already there: only build dist/
fi

export NIX_CONFIG="${NIX_CONFIG:-$'sandbox = false\nsubstituters ='}"
mkdir -p bench/results
if [ "${1:-}" = --quick ]; then
  loop_args=(--sizes 1,4 --trials 1); hold_args=(--desyncs 4 --trials 1); exp_args=(--duration 3 --rounds 1 --changes 30)
else
  loop_args=(--sizes 1,4,16 --trials 3); hold_args=(--desyncs 4 --trials 3); exp_args=(--duration 10 --rounds 2 --changes 200)
fi
echo "bench: $(date -u +%FT%TZ) · $(nproc) cores · $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //') · load $(cut -d' ' -f1-3 /proc/loadavg)"
node bench/loop.mjs "${loop_args[@]}" --json bench/results/loop.json
node bench/holdback.mjs "${hold_args[@]}" --json bench/results/holdback.json
node bench/exporter.mjs "${exp_args[@]}" --json bench/results/exporter.json
echo "bench: done · load $(cut -d' ' -f1-3 /proc/loadavg) · JSON in bench/results/"
