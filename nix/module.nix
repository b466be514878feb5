# NixOS module: services.nixos-desync — the desync upgrade loop (root but sandboxed,
# oneshot + timer), the activation it hands the built system to (root, unconfined, its own
# oneshot unit) and the Prometheus exporter (unprivileged, hardened).
#
# Import it with the flake (`nixos-desync.nixosModules.default`) or from a checkout/channel
# (`imports = [ /path/to/nixos-desync/nix/module.nix ];`). Documentation: docs/nixos.md.
{
  config,
  lib,
  pkgs,
  ...
}:
let
  inherit (lib)
    mkEnableOption
    mkIf
    mkOption
    types
    literalExpression
    ;

  cfg = config.services.nixos-desync;
  jsonFormat = pkgs.formats.json { };

  # ---- types: what check-config would refuse, refused at evaluation time already ----------
  # The contract's desync name: it names pin files, GC roots and metric labels.
  desyncName = types.strMatching "^[a-z0-9][a-z0-9_-]{0,62}$";
  # Exactly the contract's duration syntax (src/util/duration.ts DURATION_RE).
  duration = types.strMatching "[1-9][0-9]{0,8}[smhdw]" // {
    description = "duration (1 to 999999999 followed by s, m, h, d or w: 30s 10m 3h 14d 2w)";
  };
  # A command is an argv list, never a shell string.
  argv = types.nonEmptyListOf types.str;
  # A secret's path, read at run time: a string, so that no path literal (./web.yml) is
  # copied into the world-readable store; store paths are refused by an assertion below.
  secretPath = lib.mkOptionType {
    name = "secretPath";
    description = "absolute path as a string (not a path literal: that would copy the file into the world-readable Nix store)";
    descriptionClass = "noun";
    check = x: builtins.isString x && lib.hasPrefix "/" x;
    merge = lib.mergeEqualOption;
  };
  inStore = p: lib.hasPrefix "${builtins.storeDir}/" (toString p);

  stateDir = cfg.settings.stateDir or "/var/lib/nixos-desync";

  # systemd ExecStart quoting, as nixpkgs' utils.escapeSystemdExecArg: every argument is a
  # JSON string (systemd understands C-style double quotes) with `%` and `$` doubled so that
  # systemd expands neither specifiers nor environment variables inside it.
  escapeExecArg =
    arg:
    lib.replaceStrings [ "%" "$" ] [ "%%" "$$" ] (builtins.toJSON (toString arg));
  escapeExecArgs = args: lib.concatStringsSep " " (map escapeExecArg args);

  # Pins are written by `nixos-desync upgrade` as
  #   { desyncAge = N; path = "/nix/store/…"; revision = "…"; storePath = "…"; pinnedAt = "…"; }
  # Before the first run there is no pin: the desync uses this configuration's own nixpkgs,
  # as the proposal's module did.
  readPin =
    name:
    let
      file = "${stateDir}/pins/${name}.nix";
    in
    if builtins.pathExists file then import file else null;

  # Flake mode (services.nixos-desync.flake): each desync's nixpkgs is an input of the host's
  # flake, locked by the loop in flake.lock. Nothing is read from the state directory at
  # evaluation time, so `nixos-rebuild --flake` and `nix build` need no --impure and give the
  # same system on any machine.
  flakeCfg = cfg.flake;
  flakeMode = flakeCfg.enable;
  flakeRef = "${flakeCfg.path}#${flakeCfg.host}";
  missingInputMessage =
    name: input:
    "services.nixos-desync.desyncs.${name}: flake input \"${input}\" is not in services.nixos-desync.flake.inputs "
    + "(inputs: ${lib.concatStringsSep ", " (builtins.attrNames flakeCfg.inputs)}); add `inputs.${input}.url` to the host's flake.nix and set flake.inputs = inputs";
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

  nixosRebuild = "${config.system.build.nixos-rebuild}/bin/nixos-rebuild";
  systemctl = "${config.systemd.package}/bin/systemctl";

  # The loop activates exactly the toplevel it built (`system.activate` = upgrade.operation,
  # "switch" or "boot": no second evaluation). Its privileged steps run as unconfined root in
  # the template unit nixos-desync-activate@<action>:<escaped toplevel>.service, which the
  # sandboxed loop starts with `systemctl start` (NIXOS_DESYNC_ACTIVATION_UNIT below) and
  # waits for: for a Type=oneshot unit `systemctl start` returns once ExecStart has finished
  # and exits non-zero when it failed. The unit accepts only two actions on a store path that
  # is a NixOS system: `test` (switch-to-configuration test: activate now, for the health gate;
  # also the rollback to the previous system) and `boot` (the healthy system becomes a profile
  # generation and the boot default).
  activateUnitName = "nixos-desync-activate";
  activateScript = pkgs.writeShellScript "nixos-desync-activate" ''
    set -euo pipefail
    instance="$1"                      # %i: <action>:<systemd-escape --path of the toplevel>
    action="''${instance%%:*}"
    toplevel="$(${config.systemd.package}/bin/systemd-escape --unescape --path -- "''${instance#*:}")"
    case "$toplevel" in
      ${builtins.storeDir}/*) ;;
      *) echo "nixos-desync-activate: $toplevel is not in ${builtins.storeDir}" >&2; exit 2 ;;
    esac
    if [ ! -x "$toplevel/bin/switch-to-configuration" ] || [ ! -e "$toplevel/nixos-version" ]; then
      echo "nixos-desync-activate: $toplevel is not a NixOS system" >&2; exit 2
    fi
    case "$action" in
      test) exec "$toplevel/bin/switch-to-configuration" test ;;
      boot)
        nix-env -p /nix/var/nix/profiles/system --set "$toplevel"
        exec "$toplevel/bin/switch-to-configuration" boot ;;
      *) echo "nixos-desync-activate: unknown action $action" >&2; exit 2 ;;
    esac
  '';

  # nixos-rebuild's flake arguments in flake mode (the build and the activation).
  flakeArgs = lib.optionals flakeMode [
    "--flake"
    flakeRef
  ];

  channelUpdate = !flakeMode && ((cfg.settings.channel or { }).update or true);

  # As nixos-upgrade.service (nixos/modules/tasks/auto-upgrade.nix): the environment and PATH
  # of both the loop and the activation.
  upgradeEnvironment =
    config.nix.envVars
    // lib.optionalAttrs (config.environment.sessionVariables ? NIX_PATH) {
      inherit (config.environment.sessionVariables) NIX_PATH;
    }
    // {
      HOME = "/root";
    }
    // config.networking.proxy.envVars;
  upgradePath = [
    config.nix.package.out
    pkgs.coreutils
    pkgs.gnutar
    pkgs.xz.bin
    pkgs.gzip
    pkgs.gitMinimal
    config.programs.ssh.package
    # systemctl: the health gate's failed units, and starting the activation unit.
    config.systemd.package
  ];

  # The loop's environment (also the boot-time recovery's).
  loopEnvironment = upgradeEnvironment // {
    # Store writes (.drv files from nix-instantiate --read-write-mode, nix-store --add,
    # builds, the channel's new user environment) and GC-root registrations
    # (--add-root --indirect: the link is made here, the daemon records it) all go
    # through nix-daemon. A root client would otherwise open the store directly, which
    # needs a writable /nix/store and /nix/var/nix/db.
    NIX_REMOTE = "daemon";
    # Nix's client-side caches (fetcher cache of fetchTarball/fetchGit and of
    # nix-channel's download, flake eval cache, git checkouts) live in
    # $XDG_CACHE_HOME/nix; /root/.cache is read-only here (ProtectHome=read-only).
    XDG_CACHE_HOME = "/var/cache/nixos-desync";
    # The privileged steps of an activation go through nixos-desync-activate@.service.
    NIXOS_DESYNC_ACTIVATION_UNIT = activateUnitName;
  };

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

  listenHost =
    if lib.hasInfix ":" cfg.exporter.listenAddress then
      "[${cfg.exporter.listenAddress}]"
    else
      cfg.exporter.listenAddress;
  listenAddress = "${listenHost}:${toString cfg.exporter.port}";

  desyncJson =
    d:
    {
      inherit (d)
        requireBuilds
        checks
        maxLagRebuilds
        maxBehind
        nixpkgsConfig
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

  # Sandboxing shared by the loop and the exporter (each adds its own on top).
  sandboxCommon = {
    PrivateDevices = true;
    DevicePolicy = "closed";
    PrivateIPC = true;
    PrivateMounts = true;
    ProtectHostname = true;
    ProtectClock = true;
    ProtectKernelTunables = true;
    ProtectKernelModules = true;
    ProtectKernelLogs = true;
    ProtectControlGroups = true;
  };
in
{
  options.services.nixos-desync = {
    enable = mkEnableOption "nixos-desync, the desync upgrade loop and its Prometheus exporter";

    package = mkOption {
      type = types.package;
      default = pkgs.callPackage ./package.nix { };
      defaultText = literalExpression "pkgs.callPackage ./nix/package.nix { }";
      description = "The nixos-desync package.";
    };

    desyncs = mkOption {
      type = types.attrsOf (types.submodule desyncModule);
      default = { };
      description = ''
        Desyncs: named copies of nixpkgs that follow the channel only when their gate passes.
        Names must match `^[a-z0-9][a-z0-9_-]{0,62}$` (see `desyncs.<name>.name`).
      '';
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
    };

    exporter = {
      enable = mkOption {
        type = types.bool;
        default = true;
        description = "Run the Prometheus exporter (`nixos-desync serve`), unprivileged and read-only.";
      };
      listenAddress = mkOption {
        type = types.str;
        default = "127.0.0.1";
        example = "0.0.0.0";
        description = "Address to listen on (an IPv6 address without brackets is accepted).";
      };
      port = mkOption {
        type = types.port;
        default = 9793;
        description = "Port to listen on.";
      };
      webConfigFile = mkOption {
        type = types.nullOr secretPath;
        default = null;
        example = "/run/secrets/nixos-desync-web.yml";
        description = ''
          exporter-toolkit web config (TLS, basic auth): the path of a file outside the Nix
          store, as a string (`"/run/secrets/web.yml"`, not `./web.yml`: a path literal would
          copy the TLS key and password hashes into the world-readable store; store paths
          are refused). Handed to the service as a systemd credential, so it may be readable
          by root only; files it names must be readable by the service's dynamic user.
        '';
      };
      openFirewall = mkOption {
        type = types.bool;
        default = false;
        description = "Open `port` in the firewall.";
      };
      prMaxDesyncAge = mkOption {
        type = types.nullOr (types.ints.between 0 1000000);
        default = 14;
        description = ''
          The proposal's `maxDesyncAge` for the files in `prDesyncDir`: their rebuild budget
          (breach at or above it, the same alerts as this module's desyncs); null = unlimited.
          Set it to the old module's value while migrating.
        '';
      };
      upgradeUnit = mkOption {
        type = types.nullOr types.str;
        default = if config.system.autoUpgrade.enable then "nixos-upgrade.service" else null;
        defaultText = literalExpression ''if config.system.autoUpgrade.enable then "nixos-upgrade.service" else null'';
        example = "nixos-upgrade.service";
        description = ''
          A systemd unit whose runs are exported (`nixos_desync_upgrade_unit_*`, alert
          NixosDesyncUpgradeFailing), read with `systemctl show`. Set to system.autoUpgrade's
          unit when that is on: the monitor-only first step (`upgrade.enable = false`).
        '';
      };
      flakeLock = mkOption {
        type = types.nullOr types.str;
        default = null;
        example = "/etc/nixos/flake.lock";
        description = ''
          A flake.lock whose direct inputs' ages are exported
          (`nixos_desync_flake_input_last_modified_timestamp_seconds`, alert
          NixosDesyncFlakeInputOutOfDate). It must be readable by the exporter's dynamic user.
          null: none, or in flake mode (`settings.flake`) `<flake.path>/flake.lock`.
        '';
      };
      prDesyncDir = mkOption {
        type = types.nullOr types.str;
        default = null;
        example = "/var/lib/nixos/desyncs";
        description = ''
          Also export the desync proposal's own state files (`<dir>/<name>.nix`), e.g. while
          migrating from that module.
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
            ++ flakeArgs;
            defaultText = literalExpression ''[ "''${config.system.build.nixos-rebuild}/bin/nixos-rebuild" "build" ] (flake mode: ++ [ "--flake" "<flake.path>#<flake.host>" ])'';
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

    systemSources = mkOption {
      type = types.attrs;
      readOnly = true;
      internal = true;
      default = systemSources;
      defaultText = lib.literalMD "the main nixpkgs and each desync's pin, read when the system is evaluated";
      description = "What this system is built from, as written into the toplevel (nixos-desync-sources.json).";
    };

    configFile = mkOption {
      type = types.path;
      readOnly = true;
      default = configFile;
      defaultText = lib.literalMD "generated from the options above";
      description = ''
        The generated JSON config (also installed as /etc/nixos-desync/config.json); with
        `checkConfig`, the file that passed `nixos-desync check-config`.
      '';
    };
  };

  config = lib.mkMerge [
  {
    warnings = lib.optionals (!flakeMode) (
      map (d: missingPinWarning d.name) (builtins.filter (d: readPin d.name == null) (builtins.attrValues cfg.desyncs))
    );
  }
  (mkIf cfg.enable {
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

    # Readable by the exporter's dynamic user (the tool itself refuses group/world-writable dirs).
    # /root/.nix-defexpr: `nix-channel --update` ends by replacing ~/.nix-defexpr/channels and
    # creates the directory if it is missing; inside the loop's sandbox /root is read-only, so
    # the directory must exist beforehand (ReadWritePaths= below makes it writable).
    systemd.tmpfiles.rules = [
      "d ${stateDir} 0755 root root - -"
    ]
    ++ lib.optional (cfg.upgrade.enable && channelUpdate) "d /root/.nix-defexpr 0755 root root - -";

    # The loop: root (it owns the state dir and the root channel profile) but sandboxed.
    # Everything that writes to the Nix store goes through nix-daemon (NIX_REMOTE=daemon), so
    # the unit needs no capability at all and sees the file system read-only except for the
    # few paths the loop itself writes. `systemd-analyze security --offline=yes`: 2.1 (was 9.6).
    # The only step that needs full root, the activation, is a separate unit started through
    # systemd (nixos-desync-activate.service below).
    systemd.services.nixos-desync-upgrade = mkIf cfg.upgrade.enable {
      description = "nixos-desync upgrade (desync upgrade loop)";
      # As system.autoUpgrade's nixos-upgrade.service: the switch the loop triggers must
      # neither restart nor stop the unit waiting for it.
      restartIfChanged = false;
      unitConfig.X-StopOnRemoval = false;
      # Every Nix command talks to the daemon (socket-activated). Wants=, not Requires=: with
      # nix.enable = false the commands fail with a clear "cannot connect to daemon" instead.
      wants = [
        "network-online.target"
        "nix-daemon.socket"
      ];
      after = [
        "network-online.target"
        "nix-daemon.socket"
      ];
      environment = loopEnvironment;
      path = upgradePath;
      serviceConfig = sandboxCommon // {
        Type = "oneshot";
        ExecStart = escapeExecArgs [
          "${cfg.package}/bin/nixos-desync"
          "upgrade"
          "--config"
          configFile
        ];
        # `nixos-rebuild build` leaves ./result here (a temporary GC root of the built
        # system). On the host's /run, not in PrivateTmp: nix-daemon's garbage collector
        # must be able to follow the indirect root.
        RuntimeDirectory = "nixos-desync-upgrade";
        WorkingDirectory = "/run/nixos-desync-upgrade";
        # /var/cache/nixos-desync, writable (XDG_CACHE_HOME above).
        CacheDirectory = "nixos-desync";
        # SIGTERM to the tool only: it stops its command tree and restores the committed pins.
        # An activation in progress is not interrupted: it runs in its own unit.
        KillMode = "mixed";
        TimeoutStopSec = "2min";

        # ---- sandbox -----------------------------------------------------------------
        # Root without capabilities: owner-based access to root's own files (state dir,
        # channel profile, ~/.nix-defexpr) works, everything that needs a capability
        # (overriding permissions, chown to others, mounts, modules, raw I/O, ptrace of
        # other processes…) does not. The Nix commands need none as daemon clients.
        CapabilityBoundingSet = "";
        AmbientCapabilities = "";
        NoNewPrivileges = true;
        # State and channel files must stay world-readable: the exporter reads the state dir
        # as a dynamic user, and profiles/defexpr are conventionally 0755/0644.
        UMask = "0022";
        # The whole file system read-only, except:
        ProtectSystem = "strict";
        ReadWritePaths = [
          # pins, sets (and their GC-root links), state.json, history.json, journal, lock
          stateDir
        ]
        # Flake mode: flake.lock is rewritten there (and committed with git: its .git too).
        ++ lib.optional flakeMode flakeCfg.path
        ++ lib.optionals channelUpdate [
          # nix-channel --update: the channels profile (channels-N-link, the channels
          # symlink, channels.lock). "-": no error if it does not exist yet.
          "-/nix/var/nix/profiles/per-user/root"
          # nix-channel --update replaces ~/.nix-defexpr/channels (created by tmpfiles).
          # ~/.nix-channels is only read by --update (written only by --add/--remove).
          "-/root/.nix-defexpr"
        ];
        # Read-only, not hidden: configurations import files from home directories, git
        # and ssh read /root/.gitconfig and /root/.ssh. The writable exception is above.
        ProtectHome = "read-only";
        # nixos-rebuild's and nix-channel's temp files, the gate's spec file.
        PrivateTmp = true;
        # Not ProtectProc=invisible: a capability-less root cannot see full-capability
        # root processes under hidepid, so the loop could no longer read the start time of
        # a lock holder or a stale process group started from a root shell (PID-reuse
        # check). Not ProcSubset=pid: Nix and Node read /proc/meminfo, /proc/cpuinfo.
        # Not PrivateUsers: other users' files (e.g. /etc/nixos) would appear as nobody's.
        # Not PrivateNetwork / IPAddressDeny: channel downloads, fetchTarball/fetchGit in the
        # evaluated configuration, and checks (e.g. a health probe) need the network.
        # AF_UNIX: nix-daemon's socket, systemd (systemctl start, below), nscd.
        # AF_INET/AF_INET6: downloads. No AF_NETLINK: glibc's getaddrinfo falls back.
        RestrictAddressFamilies = [
          "AF_UNIX"
          "AF_INET"
          "AF_INET6"
        ];
        # Builds run in nix-daemon's sandbox, not here: the clients need no namespaces.
        RestrictNamespaces = true;
        RestrictRealtime = true;
        RestrictSUIDSGID = true;
        LockPersonality = true;
        # Node's JIT needs writable+executable memory.
        MemoryDenyWriteExecute = false;
        SystemCallArchitectures = "native";
        # @system-service only (not ~@privileged or ~@resources as the exporter): Nix raises
        # its stack limit (setrlimit), and without capabilities the privileged calls fail
        # anyway. Node probes io_uring at start-up: refused calls fail with EPERM (Node
        # falls back) instead of killing the process.
        SystemCallFilter = [ "@system-service" ];
        SystemCallErrorNumber = "EPERM";
      };
    };

    # The activation: `nixos-rebuild switch|boot` as root, deliberately not sandboxed. It
    # parses no untrusted input (the system was built and its inputs gated by the loop); what
    # it does — set the system profile, install the boot loader, run the activation script,
    # restart services — needs the whole machine. Started only by the loop, through
    # `systemctl start` (the generated config's system.activate), and waited for.
    # No ordering against nixos-desync-upgrade.service: the loop's start job is still
    # running while it waits for this one, so After= would deadlock.
    systemd.services."${activateUnitName}@" = mkIf cfg.upgrade.enable {
      description = "nixos-desync activation of a built system (%i)";
      # Like nixos-upgrade.service: the switch must not restart or stop the unit doing it.
      restartIfChanged = false;
      unitConfig.X-StopOnRemoval = false;
      wants = [ "network-online.target" ];
      after = [ "network-online.target" ];
      # Exactly nixos-upgrade.service's environment: a root client of the local store.
      environment = upgradeEnvironment;
      path = upgradePath;
      serviceConfig = {
        # `systemctl start` returns when the oneshot has finished, non-zero if it failed.
        Type = "oneshot";
        # %i: <action>:<escaped toplevel>, parsed and checked by the script (argv, no shell
        # string: the instance is one argument).
        ExecStart = "${activateScript} %i";
        # switch-to-configuration exits 4 when some units failed to (re)start: the loop's
        # health gate decides about units (those failed before, health.ignoreUnits).
        SuccessExitStatus = "4";
        # Hardening that cannot get in the way of an activation. Deliberately absent:
        # - NoNewPrivileges: inherited by everything the activation executes directly
        #   (nixos-rebuild, local builds, and switch-to-configuration with its activation
        #   scripts when nixos-rebuild does not wrap it in systemd-run); setuid/setcap
        #   programs (/run/wrappers, sudo, su in third-party activation snippets) would run
        #   without their privileges and AppArmor/SELinux exec transitions would be blocked.
        # - PrivateTmp, ProtectSystem, ProtectHome, PrivateDevices, ProtectKernel*,
        #   ProtectControlGroups: each puts the unit in its own mount namespace; mounts made
        #   by the activation script (special file systems) would not reach the host, and
        #   /etc, /boot, /nix/var/nix/profiles, block devices (grub-install) must be writable.
        # - ProtectClock (adds a device allow-list: grub-install could no longer open the
        #   disk), ProtectHostname (activation sets the host name), RestrictSUIDSGID
        #   (activation creates the setuid wrappers), LockPersonality and
        #   SystemCallArchitectures=native (local i686 builds use PER_LINUX32 / the 32-bit
        #   ABI), RestrictNamespaces (the Nix build sandbox), CapabilityBoundingSet.
        # `systemd-analyze security` rates this unit UNSAFE (9.5); that is expected.
        UMask = "0022";
        RestrictRealtime = true;
      };
    };

    # At boot: a run interrupted while its new system was activated but not yet confirmed
    # healthy (a crash or a reboot during the health gate) is finished here — the pins are
    # restored and, unless the boot already brought the previous system back (nothing made the
    # candidate the boot default), the previous system is activated again — and recorded once.
    # Only when a run left its journal. Same sandbox and environment as the loop.
    systemd.services.nixos-desync-recover = mkIf cfg.upgrade.enable {
      description = "nixos-desync: finish or roll back an upgrade run interrupted by a crash or reboot";
      wantedBy = [ "multi-user.target" ];
      wants = [ "nix-daemon.socket" ];
      after = [ "nix-daemon.socket" ];
      restartIfChanged = false;
      unitConfig.ConditionPathExists = "${stateDir}/journal.json";
      environment = loopEnvironment;
      path = upgradePath;
      serviceConfig = config.systemd.services.nixos-desync-upgrade.serviceConfig // {
        ExecStart = escapeExecArgs [
          "${cfg.package}/bin/nixos-desync"
          "recover"
          "--config"
          configFile
        ];
        RuntimeDirectory = "nixos-desync-recover";
        WorkingDirectory = "/run/nixos-desync-recover";
      };
    };

    # Every system built with this module says what it was built from, even without the
    # state directory: <toplevel>/nixos-desync-sources.json (read by `nixos-desync
    # generations` and the exporter when the state has no record of that toplevel).
    system.systemBuilderCommands = ''
      cp ${sourcesFile} $out/nixos-desync-sources.json
    '';

    systemd.timers.nixos-desync-upgrade = mkIf cfg.upgrade.enable {
      description = "nixos-desync upgrade timer";
      wantedBy = [ "timers.target" ];
      timerConfig = {
        OnCalendar = cfg.upgrade.dates;
        RandomizedDelaySec = cfg.upgrade.randomizedDelaySec;
        FixedRandomDelay = cfg.upgrade.fixedRandomDelay;
        Persistent = cfg.upgrade.persistent;
        Unit = "nixos-desync-upgrade.service";
      };
    };

    systemd.services.nixos-desync-exporter = mkIf cfg.exporter.enable {
      description = "nixos-desync Prometheus exporter";
      wantedBy = [ "multi-user.target" ];
      after = [ "network.target" ];
      # A small V8 young generation keeps RSS under 100 MB under scrape load (docs/benchmarks.md).
      environment.NODE_OPTIONS = "--max-semi-space-size=2";
      # `systemctl show <upgradeUnit>` (read-only, over the system bus: no privilege needed).
      path = lib.optional (cfg.exporter.upgradeUnit != null) config.systemd.package;
      serviceConfig = sandboxCommon // {
        ExecStart =
          escapeExecArgs [
            "${cfg.package}/bin/nixos-desync"
            "serve"
            "--config"
            configFile
            "--web.listen-address"
            listenAddress
          ]
          # %d = $CREDENTIALS_DIRECTORY (a systemd specifier, so not escaped).
          + lib.optionalString (cfg.exporter.webConfigFile != null) " --web.config.file %d/web-config";
        LoadCredential = lib.optional (cfg.exporter.webConfigFile != null) "web-config:${cfg.exporter.webConfigFile}";
        Restart = "always";
        RestartSec = "5s";

        # Unprivileged and read-only: a transient user, the whole file system read-only.
        # The state dir, profiles and /run/*-system are world-readable; the exporter never writes.
        DynamicUser = true;
        # Not PrivateUsers: root-owned state would show as owned by `nobody` in the exporter's
        # view, which makes its log messages about state files misleading.
        PrivateUsers = false;
        UMask = "0077";
        ProtectSystem = "strict";
        ProtectHome = true;
        PrivateTmp = true;
        ProtectProc = "invisible";
        ProcSubset = "pid";
        NoNewPrivileges = true;
        CapabilityBoundingSet = "";
        AmbientCapabilities = "";
        RestrictAddressFamilies = [
          "AF_INET"
          "AF_INET6"
          "AF_UNIX"
        ];
        RestrictNamespaces = true;
        RestrictRealtime = true;
        RestrictSUIDSGID = true;
        RemoveIPC = true;
        LockPersonality = true;
        # Node's JIT needs writable+executable memory.
        MemoryDenyWriteExecute = false;
        SystemCallArchitectures = "native";
        SystemCallFilter = [
          "@system-service"
          "~@privileged"
        ];
        # Node raises RLIMIT_NOFILE and probes io_uring at start-up; refused calls must
        # fail with EPERM (Node falls back), not kill the process.
        SystemCallErrorNumber = "EPERM";
      };
    };

    networking.firewall.allowedTCPPorts = mkIf (cfg.exporter.enable && cfg.exporter.openFirewall) [ cfg.exporter.port ];
  })
  ];
}
