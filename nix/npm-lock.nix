# package-lock.json with a `resolved` URL for every registry package.
#
# This repository's lock file is written with npm's `omit-lockfile-registry-resolved=true`,
# so its entries carry `version` and `integrity` but no `resolved` URL. Nix fetchers need a
# URL; for packages from the public registry it is fully determined by name and version:
#   https://registry.npmjs.org/<name>/-/<basename>-<version>.tgz
# (<basename> is the name without its @scope/). Entries that already have `resolved`, and
# entries that are not registry packages (the root, links, bundled packages, entries
# without `integrity`), are left untouched. The integrity hash still pins every tarball.
#
# Only builtins are used, so this file is evaluated as is by the tests (test/nix/).
{ registry ? "https://registry.npmjs.org" }:
lock:
let
  inherit (builtins) mapAttrs match elemAt stringLength substring;

  # "node_modules/a/node_modules/@s/b" -> "@s/b"
  nameOfPath = path:
    let m = match "(.*/)?node_modules/((@[^/]+/)?[^/]+)" path;
    in if m == null then null else elemAt m 1;

  # "@s/b" -> "b", "b" -> "b"
  baseName = name:
    let m = match "@[^/]+/(.+)" name;
    in if m == null then name else elemAt m 0;

  resolve = path: entry:
    let name = entry.name or (nameOfPath path);
    in
    if path == "" || entry ? resolved || (entry.link or false) || (entry.inBundle or false)
      || !(entry ? integrity) || !(entry ? version) || name == null
    then entry
    else entry // {
      resolved = "${registry}/${name}/-/${baseName name}-${entry.version}.tgz";
    };
in
lock // { packages = mapAttrs resolve (lock.packages or { }); }
