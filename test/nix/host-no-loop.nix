# The exporter only (upgrade.enable = false), as during a migration: no loop unit, no
# activation unit; a manual `nixos-desync upgrade` from a root shell runs nixos-rebuild itself.
{ ... }:
{
  services.nixos-desync = {
    enable = true;
    upgrade.enable = false;
  };
}
