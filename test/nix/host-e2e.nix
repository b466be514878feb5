# A host wired to the demo fixtures (fake nixpkgs revisions, fake nixos-rebuild, temp state
# and profile dirs) so the generated units can be run for real without NixOS.
{ testArgs, ... }:
{
  services.nixos-desync = {
    enable = true;
    desyncs.home-manager.requireBuilds = [ "home-manager" ];
    desyncs.matrix-synapse = {
      requireBuilds = [ "matrix-synapse" ];
      maxLagRebuilds = 2;
    };
    exporter.port = testArgs.port;
    settings = {
      inherit (testArgs) nixpkgs stateDir profilesDir runDir system;
      channel.update = false;
      timeouts = { channel = "2m"; build = "10m"; check = "2m"; system = "10m"; };
    };
  };
}
