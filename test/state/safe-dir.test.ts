// One trust rule for <stateDir> (state/safe-dir.ts): the loop, `status` and the exporter refuse
// the same things for the same reason.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { chmod, chown, mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checkStateDir, stateDirProblem } from '../../src/state/safe-dir.js';
import { createStateStore } from '../../src/state/store.js';
import { stateTrustProblem } from '../../src/watch/state-trust.js';

let dir: string;
let state: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'desync-safedir-'));
  state = join(dir, 'state');
  await mkdir(join(state, 'sets'), { recursive: true, mode: 0o755 });
  await chmod(state, 0o755);
  await writeFile(join(state, 'state.json'), '{}', { mode: 0o644 });
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('the state directory trust rule', () => {
  it.each([
    ['a group-writable directory', () => chmod(state, 0o775), /state is group- or world-writable \(mode 775\); fix with chmod go-w /],
    ['a world-writable sets/', () => chmod(join(state, 'sets'), 0o757), /sets is group- or world-writable \(mode 757\)/],
    ['a world-writable state.json', () => chmod(join(state, 'state.json'), 0o666), /state\.json is group- or world-writable \(mode 666\)/],
    ['a symlinked journal.json', () => symlink('/etc/hostname', join(state, 'journal.json')), /journal\.json is a symlink; state files must be regular files/],
    ['history.json a directory', () => mkdir(join(state, 'history.json')), /history\.json is not a regular file/],
  ])('%s: the exporter and the loop give the same reason', async (_what, spoil, reason) => {
    expect(await stateDirProblem(state)).toBeNull();
    await spoil();
    const problem = await stateDirProblem(state);
    expect(problem).toMatch(reason);
    expect(await stateTrustProblem(state)).toContain(problem);
  });

  it('the loop refuses a state file anyone may write before it takes the lock (nothing is touched)', async () => {
    await chmod(join(state, 'state.json'), 0o666);
    await expect(createStateStore(state).prepareDir()).rejects.toMatchObject({ code: 'E_UNSAFE_PATH', message: expect.stringMatching(/state\.json is group- or world-writable/) });
    await expect(createStateStore(state).checkDir()).rejects.toMatchObject({ code: 'E_UNSAFE_PATH' });
    await expect(checkStateDir(state)).rejects.toMatchObject({ code: 'E_UNSAFE_PATH' });
  });

  it('a foreign owner names the uid and who may own it', async () => {
    const me = process.geteuid!();
    // As root: the directory goes to another uid; otherwise: the same rule as seen by another user.
    if (me === 0) await chown(state, 4241, 4241);
    const uid = me === 0 ? 0 : me + 1;
    expect(await stateDirProblem(state, { uid, who: 'this user' })).toMatch(new RegExp(`state is owned by uid ${me === 0 ? 4241 : me}, not by root or this user \\(uid ${uid}\\); fix with chown root `));
  });

  it('missing paths are fine (a fresh host)', async () => {
    expect(await stateDirProblem(join(dir, 'nothing-here'))).toBeNull();
  });
});
