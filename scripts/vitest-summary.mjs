#!/usr/bin/env node
// Prints the one totals line of scripts/test.sh from vitest's JSON report:
// "N passed, N failed, N skipped". Skipped counts every test that did not run (skipped,
// todo), so a suite that silently skips shows up; a test file that failed to load (or a
// non-zero vitest exit with no failed test) counts as at least one failure.
// Usage: vitest-summary.mjs REPORT.json VITEST_EXIT_STATUS
import { readFileSync } from 'node:fs';

export function summarize(report, status) {
  const failedTests = report.numFailedTests ?? 0;
  const failed = failedTests + (status !== 0 && failedTests === 0 ? Math.max(1, report.numFailedTestSuites ?? 0) : 0);
  const skipped = (report.numPendingTests ?? 0) + (report.numTodoTests ?? 0);
  return `${report.numPassedTests ?? 0} passed, ${failed} failed, ${skipped} skipped`;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  try {
    const report = JSON.parse(readFileSync(process.argv[2], 'utf8'));
    console.log(summarize(report, Number(process.argv[3] ?? 0)));
  } catch {
    console.log('0 passed, 1 failed, 0 skipped');
  }
}
