# A host whose reboot units are booted in a real systemd (test/nix/module-reboot-systemd.test.ts):
# the loop goes the boot path (upgrade.operation = "boot": the health gate runs at the next boot,
# in verify-boot), systemd-boot's boot counting is on (its options are declared here: the NixOS
# stand-in has no boot loader), reboots are allowed all day, and the reboot command is a stand-in
# that records it was run (and reboots for real when the test asks). Debian's systemd and a tiny nix-store/nix-env stand
# in for pkgs.systemd and pkgs.nix, as in host-systemd.nix.
{ lib, testArgs, ... }:
{
  options.boot.loader.systemd-boot = {
    enable = lib.mkOption { type = lib.types.bool; default = false; };
    bootCounting.enable = lib.mkOption { type = lib.types.bool; default = false; };
  };
  config = {
    boot.loader.systemd-boot = {
      enable = true;
      bootCounting.enable = true;
    };
    systemd.package = lib.mkForce testArgs.systemdPackage;
    nix.package = lib.mkForce testArgs.nixPackage;
    services.nixos-desync = {
      enable = true;
      upgrade.operation = "boot";
      reboot = {
        enable = true;
        # Open all day (an end at the start is the next day): a reboot is always inside it.
        window = {
          lower = "00:00";
          upper = "00:00";
          timeZone = "Europe/Berlin";
        };
        randomizedDelaySec = "30m";
      };
      settings = {
        inherit (testArgs) nixpkgs;
        channel.update = false;
        system.build = testArgs.build;
        health.settle = "2s";
        timeouts.health = "1m";
        reboot.command = testArgs.rebootCommand;
      };
    };
  };
}
