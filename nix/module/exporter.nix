# The Prometheus exporter: its options (exporter.*), nixos-desync-exporter.service
# (`nixos-desync serve`: a dynamic user, read-only), its socket unit when socket-activated,
# and its firewall port.
{
  config,
  lib,
  pkgs,
  ...
}:
let
  inherit (lib) mkIf mkOption types literalExpression;
  common = import ./common.nix { inherit config lib pkgs; };
  inherit (common)
    cfg
    escapeExecArgs
    listenAddress
    sandboxCommon
    secretPath
    ;
  configFile = cfg.configFile;
  socketActivation = cfg.exporter.socketActivation;
in
{
  options.services.nixos-desync.exporter = {
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
    socketActivation = mkOption {
      type = types.bool;
      default = false;
      description = ''
        Socket activation: systemd listens on `listenAddress`:`port`
        (nixos-desync-exporter.socket) and starts the exporter with the socket
        (`serve --web.systemd-socket`) on the first connection; the exporter binds nothing itself.
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
        A systemd unit whose runs are exported (`nixos_desync_upgrade_unit_*`, alerts
        NixosDesyncUpgradeFailing and NixosDesyncUpgradeStale), read with `systemctl show`. Set to system.autoUpgrade's
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

  config = mkIf cfg.enable {
    # Socket activation: the socket unit owns the address; the service takes it as fd 3.
    systemd.sockets.nixos-desync-exporter = mkIf (cfg.exporter.enable && socketActivation) {
      description = "nixos-desync Prometheus exporter socket";
      wantedBy = [ "sockets.target" ];
      listenStreams = [ listenAddress ];
    };
    systemd.services.nixos-desync-exporter = mkIf cfg.exporter.enable {
      description = "nixos-desync Prometheus exporter";
      # Socket activation: started by its socket (on the first connection), not at boot.
      wantedBy = lib.optional (!socketActivation) "multi-user.target";
      requires = lib.optional socketActivation "nixos-desync-exporter.socket";
      after = [ "network.target" ] ++ lib.optional socketActivation "nixos-desync-exporter.socket";
      # A small V8 young generation keeps RSS under 100 MB under scrape load (docs/benchmarks.md).
      environment.NODE_OPTIONS = "--max-semi-space-size=2";
      # `systemctl show <upgradeUnit>` (read-only, over the system bus: no privilege needed).
      path = lib.optional (cfg.exporter.upgradeUnit != null) config.systemd.package;
      serviceConfig = sandboxCommon // {
        ExecStart =
          escapeExecArgs (
            [
              "${cfg.package}/bin/nixos-desync"
              "serve"
              "--config"
              configFile
            ]
            ++ (if socketActivation then [ "--web.systemd-socket" ] else [ "--web.listen-address" listenAddress ])
          )
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
  };
}
