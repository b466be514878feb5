# The smallest useful host: enable = true, nothing else.
{ ... }:
{
  services.nixos-desync.enable = true;
}
