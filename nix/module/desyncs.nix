# services.nixos-desync.desyncs: the per-desync options, and what each desync's nixpkgs is at
# evaluation time (channel mode: its pin file; flake mode: the host flake's input).
{
  config,
  lib,
  pkgs,
  ...
}:
let
  inherit (lib) mkOption types literalExpression;
  common = import ./common.nix { inherit config lib pkgs; };
  inherit (common)
    cfg
    jsonFormat
    desyncName
    duration
    argv
    unitGlob
    stateDir
    readPin
    flakeCfg
    flakeMode
    missingInputMessage
    ;

  flakeInput =
    name: input:
    flakeCfg.inputs.${input} or (throw (missingInputMessage name input));
  # Channel mode: a desync without a pin file at evaluation time uses the system's nixpkgs.
  # Never silently: expected before the loop's first run on this host, but on a machine that
  # evaluates for another host the pin files are simply absent.
  missingPinWarning =
    name:
    "services.nixos-desync.desyncs.${name}: no pin file ${stateDir}/pins/${name}.nix at evaluation time, "
    + "so desync ${name} uses the channel (this configuration's nixpkgs, pkgs.path), not its gated pin. "
    + "This is expected before the loop's first run on this host; on a machine that evaluates for another host "
    + "(nixos-rebuild --target-host, colmena, deploy-rs, Hydra) it deploys the revision the gate may have rejected: "
    + "use flake mode there (services.nixos-desync.flake, docs/nixos.md \"Flakes\").";

  # One nixpkgs instance per distinct (pinned path, nixpkgsConfig) across all desyncs.
  # An attribute name may not carry string context (a flake input's outPath has it): the key
  # is only a name, `import d.path` below keeps the context.
  desyncPkgsKey = d: builtins.unsafeDiscardStringContext "${toString d.path}\n${builtins.toJSON d.nixpkgsConfig}";
  sharedDesyncPkgs = builtins.listToAttrs (
    map (d: {
      name = desyncPkgsKey d;
      value = import d.path {
        system = pkgs.stdenv.hostPlatform.system;
        config = d.nixpkgsConfig;
        overlays = [ ];
      };
    }) (builtins.attrValues cfg.desyncs)
  );

  desyncModule =
    { name, config, ... }:
    let
      # Through the typed option: a bad name is refused before it reaches a file name.
      pin = readPin config.name;
      input = flakeInput name config.input;
    in
    {
      options = {
        input = mkOption {
          type = types.str;
          default = "nixpkgs-${name}";
          defaultText = literalExpression ''"nixpkgs-<name>"'';
          description = ''
            Flake mode: the input of the host's flake this desync's nixpkgs comes from (an
            input of its own, e.g. `inputs.nixpkgs-synapse.url = "github:NixOS/nixpkgs/nixos-unstable"`).
            The loop locks it to the new revision only when the desync's gate passes.
          '';
        };
        name = mkOption {
          type = desyncName;
          default = name;
          defaultText = literalExpression "<name>";
          readOnly = true;
          description = ''
            The desync's name: its attribute name under `desyncs`. It names the pin file,
            GC roots and the `desync` label of the metrics, so it must match
            `^[a-z0-9][a-z0-9_-]{0,62}$` (lowercase letters, digits, `-`, `_`).
          '';
        };
        requireBuilds = mkOption {
          type = types.listOf types.str;
          default = [ ];
          example = [
            "home-manager"
            "python3Packages.requests"
          ];
          description = ''
            nixpkgs attribute paths that must build on the new channel revision before this
            desync follows it.
          '';
        };
        checks = mkOption {
          type = types.listOf argv;
          default = [ ];
          example = [
            [
              "/run/current-system/sw/bin/my-check"
              "--quick"
            ]
          ];
          description = ''
            Commands (argv lists, no shell) run after the builds; exit 0 = pass. They see
            NIXOS_DESYNC_NAME, NIXOS_DESYNC_CANDIDATE and NIXOS_DESYNC_OUT_PATHS.
          '';
        };
        maxLagRebuilds = mkOption {
          type = types.nullOr (types.ints.between 0 1000000);
          default = 14;
          description = ''
            Rebuild budget (the proposal's maxDesyncAge): failing while this many rebuilds
            behind is a breach; 0 = never stay behind (breach on the first failure);
            null = unlimited.
          '';
        };
        maxBehind = mkOption {
          type = types.nullOr duration;
          default = null;
          example = "14d";
          description = "Time budget since the first failure after the last success (30s 10m 3h 14d 2w); null = none.";
        };
        units = mkOption {
          type = types.listOf unitGlob;
          default = [ ];
          example = [ "matrix-synapse.service" ];
          description = ''
            The systemd units (`*` wildcards allowed) that run this desync's packages. When the
            health gate fails only because such units failed after this desync moved to a new
            revision, the desync is held back at its pin and the rest of the system is still
            upgraded (runtime hold-back, `health.attribute`; docs/upgrade-loop.md).
          '';
        };
        healthChecks = mkOption {
          type = types.listOf argv;
          default = [ ];
          example = literalExpression ''[ [ "''${pkgs.curl}/bin/curl" "-fsS" "http://127.0.0.1:8008/health" ] ]'';
          description = ''
            Commands (argv lists, no shell) the health gate runs for this desync after the
            activation, like `health.checks`; a failing one is attributed to this desync
            (runtime hold-back, `health.attribute`).
          '';
        };
        nixpkgsConfig = mkOption {
          type = jsonFormat.type;
          default = { };
          example = {
            allowUnfree = true;
          };
          description = "nixpkgs `config` for this desync (JSON data); also used for `pkgs`.";
        };

        path = mkOption {
          type = types.path;
          readOnly = true;
          default =
            if flakeMode then
              input.outPath
            else if pin != null then
              pin.path
            else
              pkgs.path;
          defaultText = literalExpression ''(import "''${stateDir}/pins/<name>.nix").path, or pkgs.path before the first run'';
          description = ''
            The nixpkgs this desync is pinned to, read from `<stateDir>/pins/<name>.nix`;
            this configuration's nixpkgs (`pkgs.path`) until the first run has written a pin.
            Usable e.g. as `containers.<name>.nixpkgs`.
          '';
        };
        pkgs = mkOption {
          type = types.raw;
          readOnly = true;
          # Shared by every desync with the same pinned path and nixpkgsConfig (desyncs in sync
          # all point at the same revision): Nix does not memoise `import path { }`.
          default = builtins.getAttr (desyncPkgsKey config) sharedDesyncPkgs;
          defaultText = literalExpression "import path { system = …; config = nixpkgsConfig; }";
          description = "The package set of this desync's pinned nixpkgs, e.g. `.pkgs.matrix-synapse`.";
        };
        revision = mkOption {
          type = types.nullOr types.str;
          readOnly = true;
          default =
            if flakeMode then
              input.rev or null
            else if pin != null then
              pin.revision or null
            else
              null;
          defaultText = literalExpression ''flake mode: inputs.''${input}.rev; else (import "''${stateDir}/pins/<name>.nix").revision, or null before the first run'';
          description = "Revision of the pinned nixpkgs; null before the first run.";
        };
        desyncAge = mkOption {
          type = types.nullOr types.int;
          readOnly = true;
          # Not known at evaluation time in flake mode (pure): see `nixos-desync status`.
          default = if flakeMode then null else if pin != null then pin.desyncAge else null;
          defaultText = literalExpression ''flake mode: null; else (import "''${stateDir}/pins/<name>.nix").desyncAge, or null before the first run'';
          description = "Rebuilds since this desync last followed the channel; null before the first run.";
        };
      };
    };
in
{
  options.services.nixos-desync.desyncs = mkOption {
    type = types.attrsOf (types.submodule desyncModule);
    default = { };
    description = ''
      Desyncs: named copies of nixpkgs that follow the channel only when their gate passes.
      Names must match `^[a-z0-9][a-z0-9_-]{0,62}$` (see `desyncs.<name>.name`).
    '';
  };

  config.warnings = lib.optionals (!flakeMode) (
    map (d: missingPinWarning d.name) (builtins.filter (d: readPin d.name == null) (builtins.attrValues cfg.desyncs))
  );
}
