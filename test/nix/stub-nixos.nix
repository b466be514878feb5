# Stand-in for the few NixOS options nix/module.nix reads or sets, declared with the names
# and (simplified) types they have in nixpkgs/nixos, plus the values NixOS would give the
# ones the module reads. Setting an option not declared here fails the evaluation, so a
# misspelt NixOS option in the module is caught even without nixpkgs.
#
# Sources in nixpkgs: nixos/modules/misc/assertions.nix, system/etc/etc.nix,
# config/system-path.nix, config/system-environment.nix, system/boot/systemd.nix (+
# nixos/lib/systemd-unit-options.nix), system/boot/systemd/tmpfiles.nix,
# services/networking/firewall.nix, config/networking.nix (proxy.envVars),
# services/system/nix-daemon.nix (nix.envVars, nix.package), programs/ssh.nix,
# system/boot/systemd.nix (systemd.package),
# tasks/auto-upgrade.nix, installer/tools/tools.nix (system.build.nixos-rebuild).
{ lib, pkgs, ... }:
let
  inherit (lib) mkOption types;
  unitOption = lib.jsonType; # bool/int/str/path or lists of them; lists concatenate
  list = t: mkOption { type = types.listOf t; default = [ ]; };
  commonUnit = {
    description = mkOption { type = types.str; default = ""; };
    documentation = list types.str;
    wantedBy = list types.str;
    requiredBy = list types.str;
    wants = list types.str;
    requires = list types.str;
    after = list types.str;
    before = list types.str;
    unitConfig = mkOption { type = types.attrsOf unitOption; default = { }; };
    restartIfChanged = mkOption { type = types.bool; default = true; };
  };
  serviceOptions = commonUnit // {
    environment = mkOption { type = types.attrsOf (types.nullOr types.str); default = { }; };
    path = list types.package;
    serviceConfig = mkOption { type = types.attrsOf unitOption; default = { }; };
    script = mkOption { type = types.str; default = ""; };
    startAt = list types.str;
  };
  timerOptions = commonUnit // {
    timerConfig = mkOption { type = types.attrsOf unitOption; default = { }; };
  };
in
{
  options = {
    assertions = list types.raw;
    warnings = list types.str;
    environment.etc = mkOption {
      type = types.attrsOf (types.submodule {
        options.source = mkOption { type = types.path; };
        options.mode = mkOption { type = types.str; default = "symlink"; };
      });
      default = { };
    };
    environment.systemPackages = list types.package;
    environment.sessionVariables = mkOption { type = types.attrsOf types.str; default = { }; };
    systemd.services = mkOption { type = types.attrsOf (types.submodule { options = serviceOptions; }); default = { }; };
    systemd.timers = mkOption { type = types.attrsOf (types.submodule { options = timerOptions; }); default = { }; };
    systemd.tmpfiles.rules = list types.str;
    systemd.package = mkOption { type = types.package; };
    networking.firewall.allowedTCPPorts = list types.port;
    networking.proxy.envVars = mkOption { type = types.attrsOf types.str; default = { }; };
    nix.envVars = mkOption { type = types.attrsOf types.str; default = { }; };
    nix.package = mkOption { type = types.package; };
    programs.ssh.package = mkOption { type = types.package; };
    system.autoUpgrade.enable = mkOption { type = types.bool; default = false; };
    system.build = mkOption { type = types.attrsOf types.raw; default = { }; };
  };

  config = {
    # What NixOS sets (nix-channel.nix, nix-daemon.nix, ssh.nix, systemd.nix, tools.nix).
    environment.sessionVariables.NIX_PATH =
      "nixpkgs=/nix/var/nix/profiles/per-user/root/channels/nixos:nixos-config=/etc/nixos/configuration.nix:/nix/var/nix/profiles/per-user/root/channels";
    nix.package = pkgs.nix;
    programs.ssh.package = pkgs.openssh;
    systemd.package = pkgs.systemd;
    system.build.nixos-rebuild = pkgs.nixos-rebuild;
  };
}
