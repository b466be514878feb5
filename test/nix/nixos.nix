# The NixOS options nix/module.nix reads or sets, declared with the types NixOS gives them,
# plus the values NixOS sets for the ones the module reads. Evaluated with nixpkgs' real lib
# (test/fixtures/nixpkgs-lib), so merging, priorities, mkIf and type checks are NixOS's own;
# setting an option not declared here fails, so a misspelt NixOS option is caught.
# Only what the module uses is declared: add an option here when the module starts using it.
#
# Sources in nixpkgs: nixos/modules/misc/assertions.nix, system/etc/etc.nix,
# config/system-path.nix, config/shells-environment.nix (sessionVariables),
# nixos/lib/systemd-unit-options.nix + systemd-lib.nix (unitOption, unitNameType,
# checkService), system/boot/systemd/tmpfiles.nix, services/networking/firewall.nix,
# config/networking.nix (proxy.envVars), services/system/nix-daemon.nix (nix.envVars,
# nix.package), programs/ssh.nix, system/boot/systemd.nix (systemd.package),
# tasks/auto-upgrade.nix, system/activation/top-level.nix (system.build),
# installer/tools/tools.nix (system.build.nixos-rebuild).
{ lib, pkgs, ... }:
let
  inherit (lib) mkOption types;
  list = t: mkOption { type = types.listOf t; default = [ ]; };

  # systemd-unit-options.nix: lists concatenate (repeatable keys), scalars must agree.
  unitOption = lib.mkOptionType {
    name = "systemd option";
    merge =
      loc: defs:
      let
        defs' = lib.filterOverrides defs;
      in
      if lib.any (def: lib.isList def.value) defs' then
        lib.concatMap (def: lib.toList def.value) defs'
      else
        lib.mergeEqualOption loc defs';
  };
  # systemd-lib.nix
  unitNameType = types.strMatching "[a-zA-Z0-9@%:_.\\-]+[.](service|socket|device|mount|automount|swap|target|path|timer|scope|slice)";
  assertValueOneOf =
    name: values: group: attr:
    lib.optional (
      attr ? ${name} && !lib.elem attr.${name} values
    ) "Systemd ${group} field `${name}' cannot have value `${toString attr.${name}}'.";
  checkService =
    attrs:
    let
      errors = lib.concatMap (c: c "Service" attrs) [
        (assertValueOneOf "Type" [ "exec" "simple" "forking" "oneshot" "dbus" "notify" "notify-reload" "idle" ])
        (assertValueOneOf "Restart" [ "no" "on-success" "on-failure" "on-abnormal" "on-abort" "always" ])
      ];
    in
    if errors == [ ] then true else builtins.trace (lib.concatStringsSep "\n" errors) false;

  commonUnit = {
    description = mkOption { type = types.singleLineStr; default = ""; };
    wantedBy = list unitNameType;
    requiredBy = list unitNameType;
    wants = list unitNameType;
    requires = list unitNameType;
    after = list unitNameType;
    before = list unitNameType;
    unitConfig = mkOption { type = types.attrsOf unitOption; default = { }; };
  };
  serviceOptions = commonUnit // {
    restartIfChanged = mkOption { type = types.bool; default = true; };
    environment = mkOption {
      type = with types; attrsOf (nullOr (oneOf [ str path package ]));
      default = { };
    };
    path = list (types.oneOf [ types.package types.str ]);
    serviceConfig = mkOption { type = types.addCheck (types.attrsOf unitOption) checkService; default = { }; };
  };
  timerOptions = commonUnit // {
    timerConfig = mkOption { type = types.attrsOf unitOption; default = { }; };
  };
  socketOptions = commonUnit // {
    listenStreams = list types.str;
    socketConfig = mkOption { type = types.attrsOf unitOption; default = { }; };
  };
in
{
  options = {
    assertions = mkOption { type = types.listOf types.unspecified; internal = true; default = [ ]; };
    warnings = mkOption { type = types.listOf types.str; internal = true; default = [ ]; };
    environment.etc = mkOption {
      type = types.attrsOf (types.submodule { options.source = mkOption { type = types.path; }; });
      default = { };
    };
    environment.systemPackages = list types.package;
    environment.sessionVariables = mkOption {
      type = with types; attrsOf (oneOf [ (listOf (oneOf [ int str path ])) int str path ]);
      default = { };
      apply = lib.mapAttrs (_: v: if lib.isList v then lib.concatMapStringsSep ":" toString v else toString v);
    };
    systemd.services = mkOption { type = types.attrsOf (types.submodule { options = serviceOptions; }); default = { }; };
    systemd.timers = mkOption { type = types.attrsOf (types.submodule { options = timerOptions; }); default = { }; };
    systemd.sockets = mkOption { type = types.attrsOf (types.submodule { options = socketOptions; }); default = { }; };
    systemd.tmpfiles.rules = list types.str;
    systemd.package = mkOption { type = types.package; };
    networking.firewall.allowedTCPPorts = list types.port;
    # config/networking.nix (flake.host's default).
    networking.hostName = mkOption { type = types.str; default = "nixos"; };
    networking.proxy.envVars = mkOption { type = types.attrs; internal = true; default = { }; };
    nix.envVars = mkOption { type = types.attrs; internal = true; default = { }; };
    nix.package = mkOption { type = types.package; };
    programs.ssh.package = mkOption { type = types.package; };
    system.autoUpgrade.enable = mkOption { type = types.bool; default = false; };
    system.autoUpgrade.allowReboot = mkOption { type = types.bool; default = false; };
    system.autoUpgrade.rebootWindow = mkOption {
      type = types.nullOr (types.submodule {
        options.lower = mkOption { type = types.strMatching "[[:digit:]]{2}:[[:digit:]]{2}"; };
        options.upper = mkOption { type = types.strMatching "[[:digit:]]{2}:[[:digit:]]{2}"; };
      });
      default = null;
    };
    system.systemBuilderCommands = mkOption { type = types.lines; internal = true; default = ""; };
    system.build = mkOption {
      type = types.submoduleWith { modules = [ { freeformType = with types; lazyAttrsOf (uniq unspecified); } ]; };
      default = { };
    };
  };

  config = {
    # What NixOS sets (nix-channel.nix, nix-daemon.nix, ssh.nix, systemd.nix, tools.nix).
    environment.sessionVariables.NIX_PATH = [
      "nixpkgs=/nix/var/nix/profiles/per-user/root/channels/nixos"
      "nixos-config=/etc/nixos/configuration.nix"
      "/nix/var/nix/profiles/per-user/root/channels"
    ];
    nix.package = pkgs.nix;
    programs.ssh.package = pkgs.openssh;
    systemd.package = pkgs.systemd;
    system.build.nixos-rebuild = pkgs.nixos-rebuild;
  };
}
