# Config generation: the options become the tool's JSON config (checked by `nixos-desync
# check-config` while the system is built), installed as /etc/nixos-desync/config.json; and
# the assertions on option combinations the config cannot express.
{
  config,
  lib,
  pkgs,
  ...
}:
let
  inherit (lib) mkIf mkOption types;
  common = import ./common.nix { inherit config lib pkgs; };
  inherit (common)
    cfg
    jsonFormat
    inStore
    flakeCfg
    flakeMode
    missingInputMessage
    listenAddress
    ;

  desyncJson =
    d:
    {
      inherit (d)
        requireBuilds
        checks
        maxLagRebuilds
        maxBehind
        nixpkgsConfig
        units
        healthChecks
        ;
    }
    // lib.optionalAttrs flakeMode { inherit (d) input; };

  # settings first (with our activation as default underneath), then the keys that have
  # typed options of their own.
  effectiveSettings =
    lib.recursiveUpdate {
      system.activate = cfg.upgrade.operation;
      health = {
        inherit (cfg.health)
          settle
          failedUnits
          ignoreUnits
          checks
          attribute
          bisect
          retryAfter
          ;
      };
    } cfg.settings
    // lib.optionalAttrs flakeMode {
      flake = {
        inherit (flakeCfg)
          path
          host
          input
          commitLockFile
          ;
      };
    }
    // {
      # Keyed by the typed `name`: generating the config checks every desync name.
      desyncs = lib.mapAttrs' (_: d: lib.nameValuePair d.name (desyncJson d)) cfg.desyncs;
      exporter = {
        inherit listenAddress;
        inherit (cfg.exporter) webConfigFile prDesyncDir prMaxDesyncAge upgradeUnit;
      }
      # Absent unless set: in flake mode the tool then defaults it to <flake.path>/flake.lock.
      // lib.optionalAttrs (cfg.exporter.flakeLock != null) { inherit (cfg.exporter) flakeLock; };
    };

  uncheckedConfigFile = jsonFormat.generate "nixos-desync-unchecked.json" effectiveSettings;
  # As the Prometheus/Alertmanager modules' checkConfig: the tool validates the config while
  # the system is built, so a config it would refuse fails `nixos-rebuild build`, not the
  # first timer run. The check runs in the build sandbox: files the config names (the web
  # config, a secret) are not readable there; check-config only warns about those.
  configFile =
    if cfg.checkConfig then
      pkgs.runCommandLocal "nixos-desync.json" { } ''
        ${cfg.package}/bin/nixos-desync check-config --config ${uncheckedConfigFile} >/dev/null
        ln -s ${uncheckedConfigFile} $out
      ''
    else
      uncheckedConfigFile;
in
{
  options.services.nixos-desync.configFile = mkOption {
    type = types.path;
    readOnly = true;
    default = configFile;
    defaultText = lib.literalMD "generated from the options above";
    description = ''
      The generated JSON config (also installed as /etc/nixos-desync/config.json); with
      `checkConfig`, the file that passed `nixos-desync check-config`.
    '';
  };

  config = mkIf cfg.enable {
    assertions = [
      {
        assertion = !flakeMode || !(cfg.settings ? nixpkgs || cfg.settings ? channel);
        message = "services.nixos-desync.flake.enable: settings.nixpkgs and settings.channel must be unset in flake mode (the system follows the flake input ${flakeCfg.input}).";
      }
    ]
    ++ lib.optionals flakeMode (
      lib.mapAttrsToList (name: d: {
        assertion = flakeCfg.inputs ? ${d.input};
        message = missingInputMessage name d.input;
      }) cfg.desyncs
    )
    ++ [
      {
        assertion = !(cfg.upgrade.enable && config.system.autoUpgrade.enable);
        message = "services.nixos-desync.upgrade.enable and system.autoUpgrade.enable are both true: two upgrade loops would fight over the channel and the system profile. Set system.autoUpgrade.enable = false (nixos-desync's loop does what it does, plus desyncs), or services.nixos-desync.upgrade.enable = false to keep system.autoUpgrade and run only the exporter.";
      }
      {
        assertion = cfg.exporter.webConfigFile == null || !inStore cfg.exporter.webConfigFile;
        message = "services.nixos-desync.exporter.webConfigFile = \"${toString cfg.exporter.webConfigFile}\" is in the Nix store, which every local user can read, and a web config holds TLS keys and password hashes. Keep the file outside the store (e.g. /run/secrets/… from agenix or sops-nix, or a root-only file under /etc) and give its path as a string.";
      }
      {
        assertion = !(cfg.settings ? desyncs) && !(cfg.settings ? exporter);
        message = "services.nixos-desync.settings: set desyncs and exporter through services.nixos-desync.desyncs / .exporter, not settings.";
      }
    ];

    environment.etc."nixos-desync/config.json".source = configFile;
    environment.systemPackages = [ cfg.package ];
  };
}
