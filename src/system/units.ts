// Reading `systemctl list-units --failed --plain --no-legend` and matching ignoreUnits.

/**
 * Unit names from `systemctl list-units --plain --no-legend` output: one unit per line,
 * columns UNIT LOAD ACTIVE SUB DESCRIPTION separated by spaces. A leading status glyph
 * (● or ×, printed without --plain by some versions) is skipped.
 */
export function parseFailedUnits(stdout: string): string[] {
  const out: string[] = [];
  for (const line of stdout.split('\n')) {
    const cols = line.trim().split(/\s+/).filter((c) => c !== '');
    const unit = cols[0] === '●' || cols[0] === '×' || cols[0] === '*' ? cols[1] : cols[0];
    if (unit && /^[^\s]+\.[a-z]+$/.test(unit)) out.push(unit);
  }
  return [...new Set(out)].sort();
}

/** A predicate for `health.ignoreUnits`: exact names, `*` matching any run of characters. */
export function unitMatcher(patterns: string[]): (unit: string) => boolean {
  const res = patterns.map((p) => new RegExp('^' + p.split('*').map((s) => s.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('.*') + '$'));
  return (unit) => res.some((r) => r.test(unit));
}
