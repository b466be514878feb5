#!/usr/bin/env bash
# The whole test suite: installs what it needs (idempotent), then runs every test and prints
# the totals as one line: "N passed, N failed".
set -uo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh test || exit 1
export NIX_CONFIG="${NIX_CONFIG:-$'sandbox = false\nsubstituters ='}"
report="$(mktemp -t nixos-desync-vitest-XXXXXX.json)"
trap 'rm -f "$report"' EXIT
node node_modules/vitest/vitest.mjs run --reporter=default --reporter=json --outputFile="$report" "$@"
status=$?
# One plain totals line; a test file that failed to load counts as a failure too.
node -e '
  const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
  const failed = r.numFailedTests + (Number(process.argv[2]) !== 0 && r.numFailedTests === 0 ? Math.max(1, r.numFailedTestSuites) : 0);
  console.log(`${r.numPassedTests} passed, ${failed} failed`);
' "$report" "$status" 2>/dev/null || echo "0 passed, 1 failed"
exit $status
