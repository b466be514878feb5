#!/usr/bin/env bash
# The whole test suite: installs what it needs (idempotent), then runs every test and prints
# the totals as one line: "N passed, N failed, N skipped". Under CI (set by .ci/run), a test
# that needs a missing tool fails instead of skipping (test/helpers/tools.ts).
set -uo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh test || exit 1
export NIX_CONFIG="${NIX_CONFIG:-$'sandbox = false\nsubstituters ='}"
report="$(mktemp -t nixos-desync-vitest-XXXXXX.json)"
trap 'rm -f "$report"' EXIT
node node_modules/vitest/vitest.mjs run --reporter=default --reporter=json --outputFile="$report" "$@"
status=$?
# One plain totals line; a test file that failed to load counts as a failure too.
node scripts/vitest-summary.mjs "$report" "$status"
exit $status
