# Provenance: what this system is built from (the main nixpkgs and each desync's pin),
# written into the toplevel as nixos-desync-sources.json.
{
  config,
  lib,
  pkgs,
  ...
}:
let
  inherit (lib) mkIf mkOption types;
  common = import ./common.nix { inherit config lib pkgs; };
  inherit (common) cfg readPin;

  # What this system is built from (provenance), written into the toplevel. The pins are
  # those the loop exposed to this build; a desync without a pin uses the system's nixpkgs.
  systemNixpkgsRevision =
    let r = config.system.nixos.revision or null; in if r == null then lib.trivial.revisionWithDefault "unknown" else r;
  pinSetIds = lib.filter (x: x != null) (
    map (
      n:
      let
        p = readPin n;
      in
      if p == null then null else p.setId or null
    ) (lib.attrNames cfg.desyncs)
  );
  systemSources = {
    runId = if pinSetIds == [ ] then null else builtins.head pinSetIds;
    builtAt = null;
    nixpkgs = {
      revision = systemNixpkgsRevision;
      path = toString pkgs.path;
    };
    desyncs = lib.mapAttrs (
      name: _:
      let
        pin = readPin name;
      in
      if pin == null then
        { revision = systemNixpkgsRevision; desyncAge = 0; path = toString pkgs.path; }
      else
        { inherit (pin) revision desyncAge; path = toString pin.path; }
    ) cfg.desyncs;
  };
  sourcesFile = pkgs.writeText "nixos-desync-sources.json" (builtins.toJSON cfg.systemSources);
in
{
  options.services.nixos-desync.systemSources = mkOption {
    type = types.attrs;
    readOnly = true;
    internal = true;
    default = systemSources;
    defaultText = lib.literalMD "the main nixpkgs and each desync's pin, read when the system is evaluated";
    description = "What this system is built from, as written into the toplevel (nixos-desync-sources.json).";
  };

  config = mkIf cfg.enable {
    # Every system built with this module says what it was built from, even without the
    # state directory: <toplevel>/nixos-desync-sources.json (read by `nixos-desync
    # generations` and the exporter when the state has no record of that toplevel).
    system.systemBuilderCommands = ''
      cp ${sourcesFile} $out/nixos-desync-sources.json
    '';
  };
}
