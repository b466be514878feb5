// Builds dist/ once so tests that run the real CLI as a child process use current sources.
import { spawnSync } from 'node:child_process';

export default function setup(): void {
  const r = spawnSync(process.execPath, ['node_modules/typescript/bin/tsc', '-p', 'tsconfig.json'], { stdio: 'inherit' });
  if (r.status !== 0) throw new Error('tsc build failed');
}
