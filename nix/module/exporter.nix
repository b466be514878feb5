# The Prometheus exporter: nixos-desync-exporter.service (`nixos-desync serve`: a dynamic user,
# read-only) and its firewall port.
{
  config,
  lib,
  pkgs,
  ...
}:
let
  inherit (lib) mkIf;
  common = import ./common.nix { inherit config lib pkgs; };
  inherit (common)
    cfg
    escapeExecArgs
    listenAddress
    sandboxCommon
    ;
  configFile = cfg.configFile;
in
{
  config = mkIf cfg.enable {
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
  };
}
