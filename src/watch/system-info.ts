// What the host runs: generations in <profilesDir>, current/booted system in <runDir>.
import { lstat, readdir, readlink, realpath } from 'node:fs/promises';
import { join } from 'node:path';

export interface SystemInfo {
  generation: number | null;
  generationTimestamp: Date | null;
  generations: number;
  /** Booted kernel, initrd or kernel modules differ from the current system's. */
  rebootRequired: boolean;
  /** The newest profile generation is not the running system. */
  activationPending: boolean;
}

export const GENERATION_LINK_RE = /^system-([0-9]+)-link$/;

const real = (p: string): Promise<string | null> => realpath(p).catch(() => null);

export async function readCurrentGeneration(profilesDir: string): Promise<{ generation: number | null; timestamp: Date | null }> {
  const target = await readlink(join(profilesDir, 'system')).catch(() => null);
  const m = target ? GENERATION_LINK_RE.exec(target.split('/').pop()!) : null;
  if (!m) return { generation: null, timestamp: null };
  const st = await lstat(join(profilesDir, `system-${m[1]}-link`)).catch(() => null);
  return { generation: Number(m[1]), timestamp: st ? st.mtime : null };
}

export async function countGenerations(profilesDir: string): Promise<number> {
  const names = await readdir(profilesDir).catch(() => [] as string[]);
  return names.reduce((n, x) => (GENERATION_LINK_RE.test(x) ? n + 1 : n), 0);
}

export async function readRebootRequired(runDir: string): Promise<boolean> {
  for (const part of ['kernel', 'initrd', 'kernel-modules']) {
    const [booted, current] = await Promise.all([real(join(runDir, 'booted-system', part)), real(join(runDir, 'current-system', part))]);
    if (booted !== current) return true;
  }
  return false;
}

export async function readActivationPending(profilesDir: string, runDir: string): Promise<boolean> {
  const [profile, current] = await Promise.all([real(join(profilesDir, 'system')), real(join(runDir, 'current-system'))]);
  return profile !== null && profile !== current;
}

export async function readSystemInfo(profilesDir: string, runDir: string): Promise<SystemInfo> {
  const [gen, generations, rebootRequired, activationPending] = await Promise.all([
    readCurrentGeneration(profilesDir),
    countGenerations(profilesDir),
    readRebootRequired(runDir),
    readActivationPending(profilesDir, runDir),
  ]);
  return { generation: gen.generation, generationTimestamp: gen.timestamp, generations, rebootRequired, activationPending };
}
