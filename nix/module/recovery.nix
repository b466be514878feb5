# Recovery: nixos-desync-recover.service finishes or rolls back a run that died (kill -9, OOM,
# `systemctl stop`, a crash or a reboot), at once and at boot.
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
    # A run that left its journal (it died, was stopped, or its rollback failed) is finished
    # here: the pins are restored and, unless the boot already brought the previous system back
    # (nothing made the candidate the boot default), the previous system is activated again —
    # after the dead run's own activation unit is done — and the run is recorded once. Started
    # by the loop's unit when it ends (OnFailure=, ExecStopPost=: loop.nix) and at boot; only
    # when a run left its journal. Same sandbox and environment as the loop.
    systemd.services.nixos-desync-recover = mkIf cfg.upgrade.enable {
      description = "nixos-desync: finish or roll back an interrupted upgrade run";
      wantedBy = [ "multi-user.target" ];
      wants = [ "nix-daemon.socket" ];
      # Not After= the loop's unit (verify-boot orders the loop after itself, itself after this):
      # started by a stopping loop, it kills what the dead run left and takes over its lock.
      after = [ "nix-daemon.socket" ];
      restartIfChanged = false;
      unitConfig.ConditionPathExists = "${stateDir}/journal.json";
      environment = loopEnvironment;
      path = upgradePath;
      # The loop's sandbox without its hook (the recovery does not start itself).
      serviceConfig = removeAttrs config.systemd.services.nixos-desync-upgrade.serviceConfig [ "ExecStopPost" ] // {
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
