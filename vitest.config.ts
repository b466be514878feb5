import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/helpers/global-setup.ts'],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    pool: 'forks',
    // Files run one at a time: the garbage-collection tests (nix-collect-garbage -d) would
    // otherwise delete another file's freshly built, not yet rooted store paths.
    fileParallelism: false,
  },
});
