# system.autoUpgrade and this module's upgrade timer both on: the assertion must fail.
{ ... }:
{
  system.autoUpgrade.enable = true;
  services.nixos-desync.enable = true;
}
