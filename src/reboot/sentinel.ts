// The reboot-required sentinel (`reboot.sentinel`, default /run/reboot-required: what kured and
// nixos-needsreboot watch): present with one reason per line while a reboot is required.
import { readFile, rm } from 'node:fs/promises';
import { writeFileAtomic } from '../util/fsatomic.js';
import { describeReason, type RebootReason } from './triggers.js';

const HEADER = '# nixos-desync: reboot required';

/** Writes or removes the sentinel; a file another tool wrote (not ours) is never removed. Returns what changed. */
export async function syncSentinel(path: string | null, reasons: RebootReason[]): Promise<'written' | 'removed' | 'unchanged'> {
  if (path === null) return 'unchanged';
  const old = await readFile(path, 'utf8').catch(() => null);
  if (reasons.length === 0) {
    if (old === null || !old.startsWith(HEADER)) return 'unchanged';
    await rm(path, { force: true });
    return 'removed';
  }
  const text = `${HEADER}\n${reasons.map(describeReason).join('\n')}\n`;
  if (old === text) return 'unchanged';
  await writeFileAtomic(path, text, 0o644);
  return 'written';
}
