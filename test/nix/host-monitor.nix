# Monitor first: the host keeps system.autoUpgrade and runs only the exporter, which watches
# nixos-upgrade.service and the running system's nixpkgs (docs/nixos.md, "Monitor first").
{ ... }:
{
  system.autoUpgrade.enable = true;
  services.nixos-desync = {
    enable = true;
    upgrade.enable = false;
    exporter.flakeLock = "/etc/nixos/flake.lock";
  };
}
