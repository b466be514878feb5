// What the host runs: generations in <profilesDir>, current/booted system in <runDir>.
import { lstat, readdir, readFile, readlink, realpath } from 'node:fs/promises';
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

/** The running system's nixpkgs as its `nixos-version` names it. */
export interface NixpkgsVersion {
  /** The NixOS release, e.g. `24.05`. */
  version: string;
  /** The nixpkgs commit (usually 7 hex digits), `dirty`, or '' when the label has none. */
  revision: string;
  /** The nixpkgs commit's date (UTC midnight), or null when the label has none. */
  date: Date | null;
}

// `<toplevel>/nixos-version` holds system.nixos.label: optional tags joined by "-", then the
// version `YY.MM.YYYYMMDD.<rev>` (channels and flakes), `YY.MMpreNNNNNN.<rev>` (old
// channels) or `YY.MMpre-git` (a git checkout: no revision, no date).
const LABEL_RE = /(?:^|-)([0-9]{2}\.[0-9]{2})(?:pre[0-9]*)?(?:\.([0-9]{8}))?\.([0-9a-f]{7,40}|dirty)$/;
const RELEASE_ONLY_RE = /(?:^|-)([0-9]{2}\.[0-9]{2})(?:pre[-a-z0-9]*)?$/;

export function parseNixosVersion(label: string): NixpkgsVersion | null {
  const l = label.trim();
  const m = LABEL_RE.exec(l);
  if (m) return { version: m[1]!, revision: m[3]!, date: m[2] ? parseYmd(m[2]) : null };
  const r = RELEASE_ONLY_RE.exec(l);
  return r ? { version: r[1]!, revision: '', date: null } : null;
}

function parseYmd(ymd: string): Date | null {
  const [y, mo, d] = [Number(ymd.slice(0, 4)), Number(ymd.slice(4, 6)), Number(ymd.slice(6, 8))];
  const t = new Date(Date.UTC(y, mo - 1, d));
  return t.getUTCFullYear() === y && t.getUTCMonth() === mo - 1 && t.getUTCDate() === d ? t : null;
}

/** The running system's nixpkgs (`<runDir>/current-system/nixos-version`); null when unknown. */
export async function readRunningNixpkgs(runDir: string): Promise<NixpkgsVersion | null> {
  const text = await readFile(join(runDir, 'current-system', 'nixos-version'), 'utf8').catch(() => null);
  return text === null || text.length > 1024 ? null : parseNixosVersion(text);
}
