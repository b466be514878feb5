# A host whose generated units are booted in a real systemd (test/nix/module-systemd.test.ts):
# the loop with a stand-in system build, and the exporter watching an upgrade unit. Debian's
# systemd and a tiny nix-store/nix-env stand in for pkgs.systemd and pkgs.nix (store paths
# the test adds): the container has no Nix, and the fake pkgs' paths do not exist.
{ lib, testArgs, ... }:
{
  systemd.package = lib.mkForce testArgs.systemdPackage;
  nix.package = lib.mkForce testArgs.nixPackage;
  services.nixos-desync = {
    enable = true;
    exporter.upgradeUnit = "nixos-upgrade.service";
    # Runtime hold-back: matrix-synapse.service is this desync's (no requireBuilds: no Nix needed).
    desyncs.synapse.units = [ "matrix-synapse.service" ];
    settings = {
      inherit (testArgs) nixpkgs;
      channel.update = false;
      system.build = testArgs.build;
      health.settle = "2s";
      timeouts.health = "1m";
    };
  };
}
