# The activation: the template unit nixos-desync-activate@.service (root, unconfined) that the
# sandboxed loop starts to activate exactly the system it built, and its script.
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
    activateUnitName
    upgradeEnvironment
    upgradePath
    ;

  # The loop activates exactly the toplevel it built (`system.activate` = upgrade.operation,
  # "switch" or "boot": no second evaluation). Its privileged steps run as unconfined root in
  # the template unit nixos-desync-activate@<action>:<escaped toplevel>.service, which the
  # sandboxed loop starts with `systemctl start` (NIXOS_DESYNC_ACTIVATION_UNIT, common.nix) and
  # waits for: for a Type=oneshot unit `systemctl start` returns once ExecStart has finished
  # and exits non-zero when it failed. The unit accepts only two actions on a store path that
  # is a NixOS system: `test` (switch-to-configuration test: activate now, for the health gate;
  # also the rollback to the previous system) and `boot` (the healthy system becomes a profile
  # generation and the boot default).
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
in
{
  config = mkIf cfg.enable {
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
  };
}
