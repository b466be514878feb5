# nixos-desync as a Nix package (buildNpmPackage).
#
#   nix build .#default            (flake)
#   nix-build                      (default.nix, channel users)
#
# Output layout (what npmInstallHook produces):
#   $out/lib/node_modules/nixos-desync/{package.json,dist/src/…,alerts,dashboards/*.json,docs}
#   $out/lib/node_modules/nixos-desync/node_modules   production dependencies only
#                                                     (dev deps are pruned after `npm run build`)
#   $out/bin/nixos-desync      wrapper: node <the bin's shebang flags> …/dist/src/cli/main.js
#
# Node: nixpkgs' `nodejs`, which nixpkgs keeps on the current LTS line (22 or 24 today; the
# code runs on Node >= 20, see README "Node versions"). nodejs_20 reached end of life in
# April 2026 and newer nixpkgs drop it.
# dist/ is built here from src/ with `npm run build` (tsc); the "files" list of package.json
# decides what is copied, and the CLI reads ../../../package.json for its version.
#
# npm dependencies — two ways, pick with `npmDepsHash`:
#
# * npmDepsHash == null (default): `importNpmLock` fetches every tarball with its own
#   `integrity` hash from package-lock.json. Nothing to refresh when the lock file changes.
#   Needs nixpkgs >= 24.05 (importNpmLock).
#
# * npmDepsHash = "sha256-…": one fixed-output derivation (fetchNpmDeps), the usual nixpkgs
#   style. The hash covers the whole dependency cache and MUST be refreshed whenever
#   package-lock.json changes:
#     1. set `npmDepsHash = lib.fakeHash;` (e.g. `nixos-desync.override { npmDepsHash = lib.fakeHash; }`),
#     2. build; Nix fails with `hash mismatch … got: sha256-…`,
#     3. put the `got:` hash here and build again.
#   Or compute it directly: `nix-instantiate --eval --strict --json -E 'import ./nix/npm-lock.nix { }
#   (builtins.fromJSON (builtins.readFile ./package-lock.json))' > /tmp/package-lock.json &&
#   nix run nixpkgs#prefetch-npm-deps /tmp/package-lock.json` (the lock with resolved URLs,
#   see below — prefetch-npm-deps needs them).
#
# The lock file here is written without `resolved` URLs (npm's omit-lockfile-registry-resolved);
# ./npm-lock.nix adds the registry URL of each package and postPatch installs that lock, so
# both ways above see the same, fully resolved lock.
{
  lib,
  buildNpmPackage,
  nodejs,
  importNpmLock ? null,
  npmDepsHash ? null,
}:
let
  root = ../.;
  packageJson = lib.importJSON (root + "/package.json");
  resolvedLock = import ./npm-lock.nix { } (lib.importJSON (root + "/package-lock.json"));
  resolvedLockFile = builtins.toFile "package-lock.json" (builtins.toJSON resolvedLock);

  # The node flags in the first line of src/cli/main.ts (`#!/usr/bin/env -S node FLAGS…`).
  shebang = builtins.head (lib.splitString "\n" (builtins.readFile (root + "/src/cli/main.ts")));
  binNodeFlags = lib.drop 3 (lib.filter (w: w != "") (lib.splitString " " shebang));

  # Only what the build reads: no dist/, node_modules/, tests, CI files or .git.
  keep = [ "package.json" "package-lock.json" "tsconfig.json" "src" "alerts" "dashboards" "docs" ];
  src = lib.cleanSourceWith {
    name = "nixos-desync-source";
    src = root;
    filter = path: type:
      let rel = lib.removePrefix (toString root + "/") (toString path);
      in lib.any (k: rel == k || lib.hasPrefix (k + "/") rel) keep;
  };

  deps =
    if npmDepsHash != null then
      { inherit npmDepsHash; }
    else if importNpmLock != null then
      {
        npmDeps = importNpmLock {
          npmRoot = src;
          package = packageJson;
          packageLock = resolvedLock;
        };
        npmConfigHook = importNpmLock.npmConfigHook;
      }
    else
      throw "nixos-desync: this nixpkgs has no importNpmLock (added in 24.05); set npmDepsHash (see nix/package.nix)";
in
buildNpmPackage (
  {
    pname = "nixos-desync";
    inherit (packageJson) version;
    inherit src;
    inherit nodejs;

    postPatch = ''
      cp ${resolvedLockFile} package-lock.json
    '';

    # No dependency needs an install script (all pure JavaScript); skipping them keeps the
    # build offline-safe (esbuild's postinstall, pulled in by the dev-only vitest, is not needed).
    npmFlags = [ "--ignore-scripts" ];

    # `npm run build` = tsc -p tsconfig.json -> dist/; dev dependencies are pruned afterwards.
    npmBuildScript = "build";

    # npmInstallHook's wrapper runs `node main.js` and so drops the node flags of the bin's
    # shebang (`#!/usr/bin/env -S node --max-semi-space-size=2`: the exporter's small young
    # generation, docs/benchmarks.md); write the wrapper again with the same flags.
    postInstall = ''
      makeWrapper ${nodejs}/bin/node $out/bin/nixos-desync \
        --add-flags "${lib.concatStringsSep " " binNodeFlags} $out/lib/node_modules/nixos-desync/${packageJson.bin.nixos-desync}"
    '';

    doInstallCheck = true;
    installCheckPhase = ''
      runHook preInstallCheck
      $out/bin/nixos-desync --version | grep -F "nixos-desync ${packageJson.version}"
      runHook postInstallCheck
    '';

    passthru = { inherit resolvedLock; };

    meta = {
      description = packageJson.description;
      license = lib.licenses.mit;
      mainProgram = "nixos-desync";
      platforms = lib.platforms.linux;
    };
  }
  // deps
)
