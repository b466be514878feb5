// The fake nixpkgs history both real-Nix scenarios walk through (channel and flake mode).
import type { FakeRevision } from '../../src/demo/fake-nixpkgs.js';

export const SCENARIO_REVS: FakeRevision[] = [
  { label: 'rev1' },
  { label: 'rev2', broken: ['home-manager'] },
  { label: 'rev3', broken: ['home-manager'] },
  { label: 'rev4' },
  { label: 'rev5', broken: ['hello'] }, // breaks the system itself
  { label: 'rev6', evalBroken: ['home-manager'] },
];
