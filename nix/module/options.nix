# The user-facing options of services.nixos-desync (desyncs.<name>.* are in desyncs.nix,
# exporter.* in exporter.nix, the read-only results in config-file.nix and provenance.nix).
{
  config,
  lib,
  pkgs,
  ...
}:
let
  inherit (lib)
    mkEnableOption
    mkOption
    types
    literalExpression
    ;
  common = import ./common.nix { inherit config lib pkgs; };
  inherit (common)
    jsonFormat
    duration
    argv
    flakeArgs
    ;

  nixosRebuild = "${config.system.build.nixos-rebuild}/bin/nixos-rebuild";
in
{
  options.services.nixos-desync = {
    enable = mkEnableOption "nixos-desync, the desync upgrade loop and its Prometheus exporter";

    package = mkOption {
      type = types.package;
      default = pkgs.callPackage ../package.nix { };
      defaultText = literalExpression "pkgs.callPackage ./nix/package.nix { }";
      description = "The nixos-desync package.";
    };


    upgrade = {
      enable = mkOption {
        type = types.bool;
        default = true;
        description = ''
          Run `nixos-desync upgrade` periodically (replaces system.autoUpgrade, which must be off).
        '';
      };
      operation = mkOption {
        type = types.enum [
          "switch"
          "boot"
        ];
        default = "switch";
        description = ''
          As system.autoUpgrade.operation: `switch` activates the new system at once,
          `boot` makes it the default for the next boot.
        '';
      };
      dates = mkOption {
        type = types.str;
        default = "04:40";
        example = "daily";
        description = "As system.autoUpgrade.dates: systemd.time(7) calendar event of the timer.";
      };
      randomizedDelaySec = mkOption {
        type = types.str;
        default = "0";
        example = "45min";
        description = "As system.autoUpgrade.randomizedDelaySec: RandomizedDelaySec= of the timer.";
      };
      fixedRandomDelay = mkOption {
        type = types.bool;
        default = false;
        description = "As system.autoUpgrade.fixedRandomDelay: FixedRandomDelay= of the timer.";
      };
      persistent = mkOption {
        type = types.bool;
        default = true;
        description = "As system.autoUpgrade.persistent: catch up a run missed while powered off (Persistent=).";
      };
    };

    health = {
      settle = mkOption {
        type = types.either (types.enum [ "0s" ]) duration;
        default = "10s";
        example = "30s";
        description = ''
          After activating a new system (`upgrade.operation = "switch"`), wait this long before
          the health gate looks at the host (`0s`, or a duration like `30s`, `2m`).
        '';
      };
      failedUnits = mkOption {
        type = types.bool;
        default = true;
        description = ''
          Fail the health gate when a systemd unit is in the failed state that was not failed
          before the activation. A failed gate rolls back to the previous system.
        '';
      };
      ignoreUnits = mkOption {
        type = types.listOf types.str;
        default = [ ];
        example = [ "flaky-backup.service" "user@*.service" ];
        description = "Units (`*` wildcards allowed) that never fail the health gate.";
      };
      checks = mkOption {
        type = types.listOf argv;
        default = [ ];
        example = literalExpression ''[ [ "''${pkgs.curl}/bin/curl" "-fsS" "http://127.0.0.1:8008/health" ] ]'';
        description = ''
          Commands (argv, no shell) run by the health gate after the settle time; a non-zero exit
          fails the gate and rolls back. Environment: `NIXOS_DESYNC_TOPLEVEL` (the new system),
          `NIXOS_DESYNC_PREVIOUS_TOPLEVEL` (the one before). They run inside the loop's sandbox.
        '';
      };
      attribute = mkOption {
        type = types.bool;
        default = true;
        description = ''
          Runtime hold-back: when every failure of the health gate is claimed by desyncs that
          moved in this run (`desyncs.<name>.units`, `desyncs.<name>.healthChecks`), roll back,
          keep those desyncs at their pins and upgrade the rest of the system (one more build and
          activation). false: any failure rolls back and rejects the whole candidate.
        '';
      };
      bisect = mkOption {
        type = types.bool;
        default = false;
        description = ''
          Also find a culprit among the desyncs that moved when no desync claims the failure, by
          halving them (each trial is one more activation of the live host, hence opt-in).
        '';
      };
      retryAfter = mkOption {
        type = duration;
        default = "24h";
        description = ''
          A desync held back at runtime is not activated at a newer revision again before this
          has passed (no rollback on every channel bump); then it is tried once more.
        '';
      };
    };

    flake = {
      enable = mkEnableOption ''
        flake mode: the system follows an input of the host's flake (`flake.input`) and each
        desync is an input of its own (`desyncs.<name>.input`), locked by the loop in
        `<flake.path>/flake.lock`. Evaluation is pure: no pin file is read (docs/nixos.md "Flakes")'';
      inputs = mkOption {
        type = types.attrsOf types.raw;
        default = { };
        example = literalExpression "inputs";
        description = ''
          The host flake's inputs (the `inputs` its `outputs` function receives, e.g. passed with
          `specialArgs = { inherit inputs; }`): each desync's `pkgs` is imported from
          `inputs.<desyncs.<name>.input>`.
        '';
      };
      path = mkOption {
        type = types.str;
        default = "/etc/nixos";
        description = "Absolute path of the host's flake (a checkout the loop writes flake.lock in; made writable for the loop unit).";
      };
      host = mkOption {
        type = types.str;
        default = config.networking.hostName;
        defaultText = literalExpression "config.networking.hostName";
        description = "The `nixosConfigurations` attribute of this host in the flake.";
      };
      input = mkOption {
        type = types.str;
        default = "nixpkgs";
        description = "The flake input the system follows.";
      };
      commitLockFile = mkOption {
        type = types.bool;
        default = false;
        description = "`git commit` flake.lock (alone) after each run that changed it, listing which desync followed and which stayed.";
      };
    };

    settings = mkOption {
      # Free-form JSON (new keys of the tool pass through); the keys below are typed.
      type = types.submodule {
        freeformType = jsonFormat.type;
        options = {
          timeouts = mkOption {
            type = types.attrsOf duration;
            default = { };
            example = {
              build = "6h";
              check = "30m";
            };
            description = ''
              Time limits of the run's steps (`channel`, `build`, `check`, `system`, …; see
              docs/configuration.md); steps not set keep the tool's defaults.
            '';
          };
          system.build = mkOption {
            type = argv;
            default = [
              nixosRebuild
              "build"
            ]
            # Channel mode: never a stray /etc/nixos/flake.nix, no config.nix.package evaluation.
            ++ (if flakeArgs != [ ] then flakeArgs else [ "--no-flake" "--no-build-nix" ]);
            defaultText = literalExpression ''[ "''${config.system.build.nixos-rebuild}/bin/nixos-rebuild" "build" "--no-flake" "--no-build-nix" ] (flake mode: [ … "build" "--flake" "<flake.path>#<flake.host>" "--no-update-lock-file" ])'';
            description = ''
              The system build command (argv, no shell). It runs in a fresh working
              directory, inside the loop's sandbox, and must leave the built system there
              as `./result`.
            '';
          };
        };
      };
      default = { };
      example = {
        onBreach = "continue";
        channel.name = "nixos";
        timeouts.build = "6h";
      };
      description = ''
        The remaining keys of the JSON config (docs/configuration.md): nixpkgs, channel,
        system, onBreach, stateDir, profilesDir, runDir, timeouts. `desyncs` and `exporter`
        come from the options above, `health` from `health.*`. `system.build` defaults to
        `nixos-rebuild build`; `system.activate` to `upgrade.operation`: exactly the built
        system is activated, through `nixos-desync-activate@.service` (outside the loop's
        sandbox). Note that a custom (argv) `system.activate` runs inside the loop's sandbox.
      '';
    };

    checkConfig = mkOption {
      type = types.bool;
      default = true;
      description = ''
        Validate the generated config with `nixos-desync check-config` when the system is
        built (like `services.prometheus.checkConfig`): a config the tool would refuse then
        fails `nixos-rebuild build` with the tool's message instead of failing the first
        timer run. The check runs in the Nix build sandbox, so files the config names (e.g.
        `exporter.webConfigFile`) are only checked when the service starts. Set to false to
        skip it, e.g. when cross-compiling (the check runs the package on the build machine).
      '';
    };
  };
}
