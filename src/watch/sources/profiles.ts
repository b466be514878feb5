// The profiles source: <profilesDir>'s system-N-link generations (counted incrementally: an
// event names one link, re-checked with one lstat; a full read lists the directory) and the
// current generation.
import { lstat, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { Config } from '../../config/schema.js';
import { GENERATION_LINK_RE, readActivationPending, readCurrentGeneration } from '../../system/running.js';
import { dirProblem, type Source } from './source.js';
import { NO_REBOOT, readRebootSituation, type RebootSituation } from '../../reboot/triggers.js';

export interface ProfilesReading {
  generation: number | null;
  generationTimestamp: Date | null;
  generations: number;
  activationPending: boolean;
  /** As the run source reads it: a new generation changes the boot default. */
  reboot: RebootSituation;
  profilesError: string | null;
}

export function createProfilesSource(config: Config): Source<ProfilesReading> {
  const dir = config.profilesDir;
  const generations = new Set<number>();
  const touched = new Set<string>();

  return {
    name: 'profiles',
    root: dir,
    accept: (n) => n === 'system' || GENERATION_LINK_RE.test(n),
    // Generation links come from raw events; chokidar itself only tracks `system`.
    track: (n) => n === 'system',
    initial: { generation: null, generationTimestamp: null, generations: 0, activationPending: false, reboot: NO_REBOOT, profilesError: 'not read yet' },
    onEvent(name) {
      if (GENERATION_LINK_RE.test(name)) touched.add(name);
    },
    async read(full) {
      const profilesError = await dirProblem(dir);
      if (full || profilesError) {
        const names = profilesError ? [] : await readdir(dir).catch(() => [] as string[]);
        generations.clear();
        for (const n of names) {
          const m = GENERATION_LINK_RE.exec(n);
          if (m) generations.add(Number(m[1]));
        }
      }
      // Links touched before or during the readdir are re-checked after it, so none is lost.
      const names = [...touched];
      touched.clear();
      await Promise.all(names.map(async (name) => {
        const exists = await lstat(join(dir, name)).then(() => true, () => false);
        const n = Number(GENERATION_LINK_RE.exec(name)![1]);
        if (exists) generations.add(n);
        else generations.delete(n);
      }));
      const [gen, activationPending, reboot] = await Promise.all([readCurrentGeneration(dir), readActivationPending(dir, config.runDir), readRebootSituation(dir, config.runDir, config.reboot.triggers)]);
      const snapshot = { generation: gen.generation, generationTimestamp: gen.timestamp, generations: generations.size, activationPending, reboot, profilesError };
      return () => ({ snapshot, error: profilesError });
    },
  };
}
