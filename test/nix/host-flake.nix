# A flake-mode host: desyncs come from the host flake's inputs (given by the test, either as
# testArgs.inputs or — under pure evaluation — as the real inputs of a wrapping flake).
{ testArgs, lib, ... }:
{
  services.nixos-desync = {
    enable = true;
    flake = {
      enable = true;
      path = "/srv/host-flake";
      host = "web1";
      commitLockFile = true;
      inputs = lib.mkIf (testArgs ? inputs) (
        builtins.mapAttrs (_: i: {
          inherit (i) outPath rev;
        }) testArgs.inputs
      );
    };
    desyncs.synapse.requireBuilds = [ "matrix-synapse" ];
    desyncs.hm = {
      input = "nixpkgs-home-manager";
      requireBuilds = [ "home-manager" ];
    };
    settings = lib.optionalAttrs (testArgs ? stateDir) { inherit (testArgs) stateDir; };
  };
}
