# Recovery at boot: nixos-desync-recover.service finishes or rolls back a run that a crash or
# a reboot interrupted.
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
    stateDir
    escapeExecArgs
    loopEnvironment
    upgradePath
    ;
  configFile = cfg.configFile;
in
{
  config = mkIf cfg.enable {
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
  };
}
