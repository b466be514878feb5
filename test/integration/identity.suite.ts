// Candidate identity with real Nix (issue 18 items 5, 6): a nixpkgs tree without
// `.git-revision` (a git checkout) is labelled by `.version` alone, so every tree says
// "26.05"; each is still its own candidate (its store path). Imported by real-nix.test.ts.
import { describe, it, expect } from 'vitest';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { createDemoHost, type DemoHost } from '../../src/demo/host.js';
import type { FakeRevision } from '../../src/demo/fake-nixpkgs.js';
import { runCli } from '../helpers/cli.js';
import { ACTIVATION_REVS } from './activation.suite.js';

const REVS: FakeRevision[] = [...ACTIVATION_REVS, { label: 'hm-broken', broken: ['home-manager'] }];

/** A demo host whose nixpkgs trees have no .git-revision: their revision is `.version` ("26.05"). */
async function checkoutHost(root: string, name: string, desyncs: Record<string, Record<string, unknown>>): Promise<DemoHost> {
  const host = await createDemoHost(join(root, name), {
    revisions: REVS,
    desyncs,
    systemPackages: Object.fromEntries(Object.keys(desyncs).map((d) => [d, d === 'synapse' ? 'matrix-synapse' : 'home-manager'])),
  });
  for (const r of REVS) await rm(join(host.dir, 'revs', r.label, '.git-revision'));
  return host;
}

async function upgrade(host: DemoHost, rev: string, ...flags: string[]) {
  await host.useRevision(rev);
  const r = await runCli(['upgrade', '--config', host.configPath, '--json', ...flags]);
  return { ...r, res: JSON.parse(r.stdout) as { exitCode: number; result: string; candidate: { path: string; revision: string } | null; error: { code: string; message: string } | null } };
}

export function defineIdentitySuite(root: () => string): void {
  describe('candidate identity (real Nix, trees without .git-revision)', () => {
    it('maxLagRebuilds 0: a desync failing on another tree with the same .version breaches (not "already the candidate")', async () => {
      const host = await checkoutHost(root(), 'identity-lag', { 'home-manager': { requireBuilds: ['home-manager'], maxLagRebuilds: 0 } });
      const r1 = await upgrade(host, 'rev1');
      expect(r1.code, r1.stderr).toBe(0);
      expect(r1.res.candidate!.revision).toBe('26.05');
      const r2 = await upgrade(host, 'hm-broken');
      expect(r2.res.candidate).toMatchObject({ revision: '26.05' });
      expect(r2.res.candidate!.path).not.toBe(r1.res.candidate!.path);
      expect(r2.code, r2.stderr).toBe(1);
      expect(r2.res.result).toBe('breach');
      expect(r2.stderr).toMatch(/BREACH: lag 0 ≥ maxLagRebuilds 0/);
    });

    it('rejections are per tree: a rejected tree does not block the next one with the same label; going back to it is refused without --retry', async () => {
      const host = await checkoutHost(root(), 'identity-reject', { 'home-manager': { requireBuilds: ['home-manager'] }, synapse: { requireBuilds: ['matrix-synapse'] } });
      expect((await upgrade(host, 'rev1')).code).toBe(0);
      const crash = await upgrade(host, 'crash');
      expect(crash.res.result).toBe('rolled_back');
      const next = await upgrade(host, 'rev2');
      expect(next.res.error, next.stderr).toBeNull();
      expect(next.res).toMatchObject({ exitCode: 0, result: 'success', candidate: { revision: '26.05' } });
      const back = await upgrade(host, 'crash');
      expect(back.code).toBe(1);
      expect(back.res.error).toMatchObject({ code: 'E_REJECTED', message: expect.stringMatching(/candidate 26\.05 \(\/nix\/store\/\S+\) was rejected/) });
      expect(back.res.candidate).toBeNull();
    });
  });
}
