// The loop's rule for the directories it keeps its state in (sshd's StrictModes): a real
// directory, owned by root or this user, not group- or world-writable. The exporter checks the
// same rule from outside (watch/state-trust.ts) and reports what the loop would refuse.
import { lstat } from 'node:fs/promises';
import { DesyncError } from '../util/errors.js';

export async function checkSafeDir(dir: string): Promise<void> {
  const st = await lstat(dir);
  if (st.isSymbolicLink()) {
    throw new DesyncError('E_UNSAFE_PATH', `${dir} is a symlink; the state directory must be a real directory`);
  }
  if (!st.isDirectory()) throw new DesyncError('E_UNSAFE_PATH', `${dir} is not a directory`);
  const uid = process.geteuid?.() ?? st.uid;
  if (st.uid !== uid && st.uid !== 0) {
    throw new DesyncError('E_UNSAFE_PATH', `${dir} is owned by uid ${st.uid}, not by this user (uid ${uid}) or root; fix with chown`);
  }
  if ((st.mode & 0o022) !== 0) {
    throw new DesyncError('E_UNSAFE_PATH', `${dir} is group- or world-writable (mode ${(st.mode & 0o777).toString(8)}); fix with chmod go-w`);
  }
}

