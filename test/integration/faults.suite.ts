// Fault injection with real Nix: kill -9 at every step boundary and in the middle of builds,
// checks and the system build; hung commands; a full and a read-only state filesystem;
// unsafe state paths; corrupt state. Imported by real-nix.test.ts (one file for everything
// that touches the store, so garbage collection never races another test's build).
import { describe, it, expect } from 'vitest';
import { chown, chmod, lstat, mkdir, readdir, readFile, readlink, rm, symlink, writeFile, rename, statfs } from 'node:fs/promises';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { createDemoHost, FAKE_REBUILD, type DemoHost } from '../../src/demo/host.js';
import type { FakeRevision } from '../../src/demo/fake-nixpkgs.js';
import { parsePinFile } from '../../src/state/pinfile.js';
import { FAILPOINTS } from '../../src/util/failpoint.js';
import { NIX_ENV, runCli, startCli, waitUntil, gcRoots } from '../helpers/cli.js';
import { inCi } from '../helpers/tools.js';

const env = { ...process.env, ...NIX_ENV };
const DESYNCS = ['home-manager', 'synapse'];

export const FAULT_REVS: FakeRevision[] = [
  { label: 'rev1' },
  { label: 'rev2', broken: ['home-manager'] },
  { label: 'rev4' },
  { label: 'slowbuild', sleep: { 'matrix-synapse': 30 } },
  { label: 'hang', sleep: { 'matrix-synapse': 300 } },
];

/**
 * The argv escape hatch as the contract asks of it: it activates exactly the toplevel it is
 * given (`nixos-rebuild switch` would evaluate again, and its "rollback" would build the moved
 * channel instead of the previous system: an unconfirmed rollback).
 */
export const ACTIVATE_TOPLEVEL = ['/bin/sh', '-c', 'exec "$NIXOS_DESYNC_TOPLEVEL/bin/switch-to-configuration" switch'];

export async function faultHost(dir: string, extra: Record<string, unknown> = {}): Promise<DemoHost> {
  return createDemoHost(dir, {
    revisions: FAULT_REVS,
    desyncs: {
      'home-manager': { requireBuilds: ['home-manager'] },
      synapse: { requireBuilds: ['matrix-synapse', 'python3Packages.requests'], checks: [['/bin/sh', '-c', 'sleep "${SLOW_CHECK:-0}"']] },
    },
    systemPackages: { 'home-manager': 'home-manager', synapse: 'matrix-synapse' },
    extraConfig: extra,
  });
}

async function walk(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    out.push(p);
    if (e.isDirectory()) out.push(...(await walk(p)));
  }
  return out;
}

function valid(path: string): boolean {
  return spawnSync('nix-store', ['--check-validity', path], { env, stdio: 'ignore' }).status === 0;
}

/** pins/ shows one complete set (one of `allowed`), every pinned path valid and rooted. */
async function assertCompleteSet(host: DemoHost, allowed: string[]): Promise<string[]> {
  const link = await readlink(join(host.stateDir, 'pins'));
  expect(allowed).toContain(link);
  const names = (await readdir(join(host.stateDir, 'pins'))).sort();
  expect(names).toEqual(DESYNCS.map((d) => `${d}.nix`));
  const paths: string[] = [];
  for (const n of names) {
    const pin = parsePinFile(await readFile(join(host.stateDir, 'pins', n), 'utf8'));
    expect(pin, n).toBeDefined();
    expect(valid(pin!.storePath)).toBe(true);
    paths.push(pin!.storePath);
  }
  const roots = gcRoots();
  for (const p of paths) expect(roots).toContain(p);
  return paths;
}

/** After a clean run: one set, no lock, journal, temp files or stray roots. */
async function assertClean(host: DemoHost): Promise<void> {
  const entries = await walk(host.stateDir);
  expect(entries.filter((p) => p.includes('.tmp-'))).toEqual([]);
  expect(existsSync(join(host.stateDir, 'lock'))).toBe(false);
  expect(existsSync(join(host.stateDir, 'journal.json'))).toBe(false);
  const sets = await readdir(join(host.stateDir, 'sets'));
  expect(sets).toHaveLength(1);
  expect(await readlink(join(host.stateDir, 'pins'))).toBe(`sets/${sets[0]}/pins`);
  const roots = gcRoots()
    .split('\n')
    .filter((l) => l.startsWith(host.stateDir + '/'));
  for (const r of roots) expect(r.startsWith(join(host.stateDir, 'sets', sets[0]!, 'roots') + '/')).toBe(true);
  // One root per distinct pinned store path (pins that follow the candidate share its root),
  // plus the activated toplevel's: no duplicates, nothing else.
  const targets = roots.map((r) => r.split(' -> ')[1]);
  expect(new Set(targets).size).toBe(targets.length);
  const pinned = await Promise.all(DESYNCS.map(async (d) => parsePinFile(await readFile(join(host.stateDir, 'pins', `${d}.nix`), 'utf8'))!.storePath));
  for (const p of pinned) expect(targets).toContain(p);
  expect(roots.filter((r) => r.includes('/roots/toplevel ')).length).toBe(1);
  expect(roots.length).toBeLessThanOrEqual(new Set(pinned).size + 2);
}

/**
 * #11.6: the run counters and the history agree with what happened: the sum of runs_total is
 * the number of runs that took the lock, and every history id is unique.
 */
async function assertCounted(host: DemoHost, runsThatTookTheLock: number, what: string): Promise<void> {
  const state = JSON.parse(await readFile(join(host.stateDir, 'state.json'), 'utf8')) as { runs: { total: Record<string, number> } };
  const sum = Object.values(state.runs.total).reduce((a, b) => a + b, 0);
  expect(sum, `${what}: runs_total sum`).toBe(runsThatTookTheLock);
  const ids = (JSON.parse(await readFile(join(host.stateDir, 'history.json'), 'utf8')) as { runs: Array<{ id: string }> }).runs.map((r) => r.id);
  expect(ids.length - new Set(ids).size, `${what}: duplicate history ids ${ids.join(' ')}`).toBe(0);
}

/** Whether a killed run had taken the lock: it left the lock behind, or it recorded itself. */
async function tookTheLock(host: DemoHost, totalBefore: number): Promise<boolean> {
  if (existsSync(join(host.stateDir, 'lock'))) return true;
  try {
    const state = JSON.parse(await readFile(join(host.stateDir, 'state.json'), 'utf8')) as { runs: { total: Record<string, number> } };
    return Object.values(state.runs.total).reduce((a, b) => a + b, 0) > totalBefore;
  } catch {
    return false;
  }
}

async function runsTotal(host: DemoHost): Promise<number> {
  try {
    const state = JSON.parse(await readFile(join(host.stateDir, 'state.json'), 'utf8')) as { runs: { total: Record<string, number> } };
    return Object.values(state.runs.total).reduce((a, b) => a + b, 0);
  } catch {
    return 0;
  }
}

async function journalStage(host: DemoHost): Promise<{ stage: string; child: unknown } | null> {
  try {
    return JSON.parse(await readFile(join(host.stateDir, 'journal.json'), 'utf8'));
  } catch {
    return null;
  }
}

export function defineFaultSuite(root: () => string): void {
  describe('fault injection (kill -9, hung commands, full/read-only filesystems, unsafe state)', () => {
    const stats = { kills: 0 };

    it(`kill -9 at each of the ${FAILPOINTS.length} step boundaries: one complete set, roots survive GC, the next run recovers cleanly`, async () => {
      const host = await faultHost(join(root(), 'failpoints'));
      await host.useRevision('rev1');
      // The very first run killed while its candidate is visible: nothing was ever committed,
      // so the recovery must not promote the candidate.
      const first = await runCli(['upgrade', '--config', host.configPath], { NIXOS_DESYNC_FAILPOINT: 'after-pins-swap' });
      expect(first.signal).toBe('SIGKILL');
      stats.kills += 1;
      const st0 = await runCli(['status', '--config', host.configPath, '--json']);
      expect(st0.code).toBe(0);
      await host.writeConfig({ channel: { name: 'nixos', update: false }, system: { build: ['/bin/false'], activate: null } });
      const rec = await runCli(['upgrade', '--config', host.configPath]);
      expect(rec.stdout).toMatch(/recovered from an interrupted run/);
      expect(existsSync(join(host.stateDir, 'pins'))).toBe(false);
      expect(await readdir(join(host.stateDir, 'sets'))).toEqual([]);
      await host.writeConfig({ system: { build: [process.execPath, FAKE_REBUILD, 'build', '--host', host.dir], activate: ACTIVATE_TOPLEVEL } });
      expect((await runCli(['upgrade', '--config', host.configPath])).code).toBe(0);
      // Three runs took the lock so far: the killed first run, its recovery, the clean run.
      let tookLock = 3;
      await assertCounted(host, tookLock, 'before the failpoints');
      for (const [i, fp] of FAILPOINTS.entries()) {
        const before = await readlink(join(host.stateDir, 'pins'));
        await host.useRevision(i % 2 === 0 ? 'rev2' : 'rev4');
        const killed = await runCli(['upgrade', '--config', host.configPath], { NIXOS_DESYNC_FAILPOINT: fp });
        expect(killed.signal, `${fp}: ${killed.stdout}${killed.stderr}`).toBe('SIGKILL');
        stats.kills += 1;
        // Old committed set, or the complete candidate set (visible from the swap on).
        const sets = (await readdir(join(host.stateDir, 'sets'))).map((s) => `sets/${s}/pins`);
        const pinned = await assertCompleteSet(host, [before, ...sets]);
        execFileSync('nix-collect-garbage', ['-d'], { env, stdio: 'ignore' });
        for (const p of pinned) expect(valid(p), `${fp}: ${p} survives GC`).toBe(true);
        const st = await runCli(['status', '--config', host.configPath, '--json']);
        expect(st.code, `${fp}: status`).toBe(0);
        const next = await runCli(['upgrade', '--config', host.configPath]);
        expect(next.code, `${fp}: ${next.stdout}${next.stderr}`).toBe(0);
        tookLock += 2;
        // A run killed once it had recorded itself is completed, never counted twice; any other is recorded by the recovery.
        const recorded = ['after-record-state', 'after-history', 'after-journal-removed'].includes(fp);
        expect(next.stdout, fp).toMatch(recorded ? /already recorded itself before it died; not counted again/ : /recovered from an interrupted run/);
        await assertCounted(host, tookLock, fp);
        await assertClean(host);
        await assertCompleteSet(host, [await readlink(join(host.stateDir, 'pins'))]);
      }
    }, 240_000);

    it('kill -9 in the middle of a gate build, a check and the system build, and at random instants', async () => {
      const host = await faultHost(join(root(), 'midway'));
      await host.useRevision('rev1');
      expect((await runCli(['upgrade', '--config', host.configPath])).code).toBe(0);
      let tookLock = 1;
      const scenarios: Array<{ rev: string; env: NodeJS.ProcessEnv; stage: string }> = [
        { rev: 'slowbuild', env: {}, stage: 'gate' }, // nix-store --realise is sleeping in a builder
        { rev: 'rev4', env: { SLOW_CHECK: '30' }, stage: 'gate' }, // the check is sleeping
      ];
      for (const s of scenarios) {
        const committed = await readlink(join(host.stateDir, 'pins'));
        await host.useRevision(s.rev);
        const run = startCli(['upgrade', '--config', host.configPath], s.env);
        expect(await waitUntil(async () => { const j = await journalStage(host); return j?.stage === s.stage && j.child !== null; }, 20_000)).toBe(true);
        await new Promise((r) => setTimeout(r, 300));
        run.child.kill('SIGKILL');
        await run.done;
        stats.kills += 1;
        await assertCompleteSet(host, [committed]);
        await host.useRevision('rev4');
        const next = await runCli(['upgrade', '--config', host.configPath]);
        expect(next.code, next.stdout + next.stderr).toBe(0);
        expect(next.stdout).toMatch(/recovered from an interrupted run/);
        expect(next.stdout).toMatch(/killed process group/);
        tookLock += 2;
        await assertCounted(host, tookLock, `kill during ${s.stage}`);
        await assertClean(host);
      }
      // Random instants across whole runs (system build made slow so every stage is hit).
      await host.writeConfig({ system: { build: ['/bin/sh', '-c', 'sleep 0.4; exec "$@"', 'sh', ...(host.config.system as { build: string[] }).build], activate: (host.config.system as { activate: string[] }).activate } });
      let seed = 42;
      const rand = (): number => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648);
      for (let i = 0; i < 12; i++) {
        const before = await readlink(join(host.stateDir, 'pins'));
        await host.useRevision(i % 2 === 0 ? 'rev2' : 'rev4');
        const totalBefore = await runsTotal(host);
        const run = startCli(['upgrade', '--config', host.configPath]);
        await new Promise((r) => setTimeout(r, Math.floor(rand() * 1500)));
        run.child.kill('SIGKILL');
        await run.done;
        stats.kills += 1;
        if (await tookTheLock(host, totalBefore)) tookLock += 1;
        const sets = (await readdir(join(host.stateDir, 'sets'))).map((x) => `sets/${x}/pins`);
        await assertCompleteSet(host, [before, ...sets]);
        const next = await runCli(['upgrade', '--config', host.configPath]);
        expect(next.code, next.stdout + next.stderr).toBe(0);
        tookLock += 1;
        await assertCounted(host, tookLock, `random kill ${i}`);
        await assertClean(host);
      }
      console.log(`fault suite: ${stats.kills} kills survived so far`);
    }, 240_000);

    it('hung gate build, check and system build hit their timeouts and their process trees are gone', async () => {
      const host = await faultHost(join(root(), 'hung'), { timeouts: { channel: '1m', build: '2s', check: '1s', system: '1s' } });
      await host.useRevision('rev1');
      expect((await runCli(['upgrade', '--config', host.configPath])).code).toBe(0);
      // A builder that sleeps 300 s: the gate's build times out, synapse fails, the run goes on.
      await host.useRevision('hang');
      const r1 = await runCli(['upgrade', '--config', host.configPath]);
      expect(r1.code, r1.stdout + r1.stderr).toBe(0);
      expect(r1.stdout).toMatch(/synapse: FAILED — .*timed out after 2s \(process tree killed\)/);
      const orphans = () => spawnSync('pgrep', ['-f', 'matrix-synapse-hang'], { encoding: 'utf8' }).stdout.trim();
      expect(await waitUntil(async () => orphans() === '', 5000)).toBe(true);
      // A check that hangs (with a grandchild).
      await host.useRevision('rev4');
      // A duration no other test sleeps (an orphaned `sleep 300` of another file matched before).
      const r2 = await runCli(['upgrade', '--config', host.configPath], { SLOW_CHECK: '300.25' });
      expect(r2.stdout).toMatch(/synapse: FAILED — check .*timed out after 1s/);
      expect(await waitUntil(async () => spawnSync('pgrep', ['-f', 'sleep 300.25'], { encoding: 'utf8' }).stdout.trim() === '', 5000)).toBe(true);
      // A system build that hangs.
      const marker = join(host.dir, 'sys.pid');
      await host.writeConfig({ system: { build: ['/bin/sh', '-c', 'sleep 301 & echo $! > "$0"; wait', marker], activate: null } });
      const r3 = await runCli(['upgrade', '--config', host.configPath]);
      expect(r3.code).toBe(1);
      expect(r3.stdout).toMatch(/system build .* timed out after 1s \(process tree killed\); the previous pin set was restored/);
      const pid = Number((await readFile(marker, 'utf8')).trim());
      expect(await waitUntil(async () => { try { process.kill(pid, 0); const st = await readFile(`/proc/${pid}/stat`, 'utf8'); return st.slice(st.lastIndexOf(')') + 2).startsWith('Z'); } catch { return true; } }, 5000)).toBe(true);
    }, 120_000);

    it('a full state filesystem and a read-only one: clear error, exit 1, nothing lost', async (ctx) => {
      const mnt = join(root(), 'tmpfs');
      await mkdir(mnt, { recursive: true });
      const m = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=256k,mode=0755', 'tmpfs', mnt], { encoding: 'utf8' });
      if (m.status !== 0) {
        if (inCi()) throw new Error(`cannot mount a tmpfs for the ENOSPC test: ${m.stderr}`);
        ctx.skip();
      }
      try {
        const host = await faultHost(join(root(), 'full'), { stateDir: join(mnt, 'state') });
        host.stateDir = join(mnt, 'state');
        await host.useRevision('rev1');
        expect((await runCli(['upgrade', '--config', host.configPath])).code).toBe(0);
        const snapshot = async () => ({ link: await readlink(join(host.stateDir, 'pins')), state: await readFile(join(host.stateDir, 'state.json'), 'utf8'), pins: await Promise.all(DESYNCS.map((d) => readFile(join(host.stateDir, 'pins', `${d}.nix`), 'utf8'))) });
        // Fill the filesystem leaving 0, 4, 8 … 64 KiB free: each run either fails with a clear
        // error and changes nothing, or (with enough room) completes; never anything between.
        let failures = 0;
        for (const room of [0, 4, 8, 12, 16, 24, 32, 48, 64]) {
          const free = (await statfs(mnt)).bavail * (await statfs(mnt)).bsize;
          const fill = Math.max(0, free - room * 1024);
          spawnSync('dd', ['if=/dev/zero', `of=${join(mnt, 'filler')}`, 'bs=1024', `count=${Math.floor(fill / 1024)}`], { stdio: 'ignore' });
          const prev = await snapshot();
          await host.useRevision(room % 8 === 0 ? 'rev4' : 'rev2');
          const r = await runCli(['upgrade', '--config', host.configPath]);
          expect(r.stderr).not.toMatch(/\n\s+at /);
          // state.json is never torn and always agrees with pins/.
          const state = JSON.parse(await readFile(join(host.stateDir, 'state.json'), 'utf8'));
          const now = await snapshot();
          expect(`sets/${state.committed.setId}/pins`).toBe(now.link);
          if (r.code !== 0) {
            failures += 1;
            expect(r.code, r.stdout + r.stderr).toBe(1);
            expect(r.stderr + r.stdout).toMatch(/no space left on device|state filesystem is full/i);
            // Nothing committed unless the run got past its commit (then only the record failed).
            if (!/commit +pin set .* committed/.test(r.stdout)) expect({ link: now.link, pins: now.pins }).toEqual({ link: prev.link, pins: prev.pins });
          }
          await rm(join(mnt, 'filler'));
          const again = await runCli(['upgrade', '--config', host.configPath]);
          expect(again.code, again.stdout + again.stderr).toBe(0);
          await assertClean(host);
        }
        expect(failures).toBeGreaterThan(0);
        const before = await snapshot();
        // Read-only.
        expect(spawnSync('mount', ['-o', 'remount,ro', mnt]).status).toBe(0);
        const ro = await runCli(['upgrade', '--config', host.configPath]);
        expect(ro.code).toBe(1);
        expect(ro.stderr).toMatch(/read-only/);
        expect((await runCli(['status', '--config', host.configPath])).code).toBe(0);
        expect(spawnSync('mount', ['-o', 'remount,rw', mnt]).status).toBe(0);
        expect(await snapshot()).toEqual(before);
        const ok = await runCli(['upgrade', '--config', host.configPath]);
        expect(ok.code, ok.stdout + ok.stderr).toBe(0);
        await assertClean(host);
      } finally {
        spawnSync('umount', ['-l', mnt]);
      }
    }, 60_000);

    it('unsafe state is refused with a clear message: world-writable, foreign owner, symlinked dir, replaced pin file', async () => {
      const host = await faultHost(join(root(), 'unsafe'));
      await host.useRevision('rev1');
      expect((await runCli(['upgrade', '--config', host.configPath])).code).toBe(0);
      const expectRefused = async (re: RegExp) => {
        const r = await runCli(['upgrade', '--config', host.configPath]);
        expect(r.code).toBe(1);
        // Refused before the lock (an unsafe state directory) → stderr; after it (the run is recorded) → the run's log.
        expect(r.stderr + r.stdout).toMatch(re);
        return r;
      };
      await chmod(host.stateDir, 0o777);
      await expectRefused(/group- or world-writable \(mode 777\)/);
      await chmod(host.stateDir, 0o755);
      await chown(host.stateDir, 4242, 4242);
      await expectRefused(/owned by uid 4242/);
      await chown(host.stateDir, 0, 0);
      const real = `${host.stateDir}.real`;
      await rename(host.stateDir, real);
      await symlink(real, host.stateDir);
      await expectRefused(/is a symlink; the state directory must be a real directory/);
      await rm(host.stateDir);
      await rename(real, host.stateDir);
      const pinFile = join(host.stateDir, 'pins', 'synapse.nix');
      const target = join(host.stateDir, 'sets', (await readlink(join(host.stateDir, 'pins'))).split('/')[1]!, 'pins', 'synapse.nix');
      const content = await readFile(target, 'utf8');
      await rm(target);
      await symlink('/etc/hostname', target);
      const runsBefore = await runsTotal(host);
      await expectRefused(/synapse\.nix is not a regular file/);
      // #11.1: this run took the lock, so it is recorded (runs_total moves, last_run_success = 0).
      expect(await runsTotal(host)).toBe(runsBefore + 1);
      expect(JSON.parse(await readFile(join(host.stateDir, 'state.json'), 'utf8')).runs.last.error).toMatch(/not a regular file/);
      await rm(target);
      await writeFile(target, content);
      expect((await lstat(pinFile)).isFile()).toBe(true);
      const ok = await runCli(['upgrade', '--config', host.configPath]);
      expect(ok.code, ok.stderr).toBe(0);
    }, 60_000);

    it('corrupt state.json and history.json are moved aside and reported; pins stay usable', async () => {
      const host = await faultHost(join(root(), 'corrupt'));
      await host.useRevision('rev1');
      expect((await runCli(['upgrade', '--config', host.configPath])).code).toBe(0);
      await writeFile(join(host.stateDir, 'state.json'), '{"version": 1, "committed": {"setId": ');
      await writeFile(join(host.stateDir, 'history.json'), JSON.stringify({ version: 99, runs: [] }));
      const st = await runCli(['status', '--config', host.configPath, '--json']);
      expect(st.code).toBe(0);
      const doc = JSON.parse(st.stdout);
      expect(doc.stateProblems[0].message).toMatch(/not valid JSON/);
      expect(doc.desyncs.map((d: { revision: string | null }) => d.revision)).not.toContain(null);
      await host.useRevision('rev2');
      const r = await runCli(['upgrade', '--config', host.configPath]);
      expect(r.code, r.stdout + r.stderr).toBe(0);
      expect(r.stdout).toMatch(/state\.json was not valid JSON.*moved aside to .*state\.json\.corrupt-/);
      const names = await readdir(host.stateDir);
      expect(names.filter((n) => n.startsWith('state.json.corrupt-'))).toHaveLength(1);
      expect(names.filter((n) => n.startsWith('history.json.corrupt-'))).toHaveLength(1);
      // home-manager broke on rev2 and stays on its pin (re-read from the pin file).
      const pin = parsePinFile(await readFile(join(host.stateDir, 'pins', 'home-manager.nix'), 'utf8'))!;
      expect(pin.desyncAge).toBe(1);
    }, 60_000);
  });
}
