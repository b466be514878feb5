# Evaluates nix/module.nix with nixpkgs' real module system (lib.evalModules from the vendored
# test/fixtures/nixpkgs-lib) next to ./nixos.nix (the NixOS options it touches) and a host
# configuration module, with a small fake `pkgs` (there is no nixpkgs here).
#
#   inspect    what the tests check: the generated JSON config, and the systemd units rendered
#              from the merged options the way NixOS renders them (nixos/lib/systemd-lib.nix:
#              one `Key=value` line per list element, booleans as true/false, dependencies
#              joined by spaces).
#   toplevel   a stand-in for system.build.toplevel: NixOS's assertion/warning check
#              (lib.asserts.checkAssertWarn, as nixos/modules/system/activation/top-level.nix)
#              around a derivation holding the unit files and /etc/nixos-desync/config.json,
#              so `nix-build -A toplevel` fails where `nixos-rebuild build` would.
#
#   nix-instantiate --eval --strict --json --read-write-mode test/nix/eval.nix -A inspect \
#     --argstr nixpkgsLib /tmp/nixos-desync-nixpkgs-lib-… --argstr packageDir /tmp/pkg \
#     --argstr nixpkgsPath /tmp/nixpkgs --arg configModule ./test/nix/host-minimal.nix
{
  nixpkgsLib, # a directory holding nixpkgs' lib/ (test/helpers/nixpkgs-lib.ts unpacks it)
  packageDir, # outPath of services.nixos-desync.package (a directory with bin/nixos-desync)
  nixpkgsPath, # pkgs.path: the system's own nixpkgs, the fallback of desyncs.<name>.path
  configModule, # the host's configuration module; receives `testArgs` as a module argument
  testArgs ? "{}", # JSON: per-test values (temp dirs) for configModule
  probes ? ''{"names":[],"durations":[]}'', # JSON: strings for typeChecks
  fromFlake ? false, # take the module from flake.nix's nixosModules.default
  system ? builtins.currentSystem, # given explicitly under pure evaluation (flake tests)
}:
let
  lib = import (nixpkgsLib + "/lib");
  inherit (builtins) attrNames concatStringsSep concatMap filter isList mapAttrs toJSON;

  fake =
    name:
    let
      self = {
        type = "derivation";
        inherit name;
        outPath = "/nix/store/${builtins.substring 0 32 (builtins.hashString "sha256" name)}-${name}";
        out = self;
        bin = self;
      };
    in
    self;

  pkgs = {
    path = nixpkgsPath;
    stdenv.hostPlatform.system = system;
    # pkgs-lib/formats.nix: the real type; generate writes the same JSON without jq.
    formats.json =
      { }:
      {
        type =
          let
            valueType =
              with lib.types;
              nullOr (oneOf [
                bool
                int
                float
                str
                path
                (attrsOf valueType)
                (listOf valueType)
              ])
              // {
                description = "JSON value";
              };
          in
          valueType;
        generate = name: value: builtins.toFile name (toJSON value);
      };
    # build-support/trivial-builders: a derivation running buildCommand with the
    # nativeBuildInputs' bin/ on PATH (this machine's /bin stands in for stdenv), and with
    # `set -eu` as stdenv's setup.sh runs it.
    runCommandLocal =
      name: env: buildCommand:
      derivation (
        removeAttrs env [ "nativeBuildInputs" ]
        // {
          inherit name;
          system = builtins.currentSystem;
          builder = "/bin/sh";
          args = [
            "-c"
            ''
              set -eu
              export PATH=${lib.makeBinPath (env.nativeBuildInputs or [ ])}:/usr/bin:/bin
              ${buildCommand}
            ''
          ];
        }
      );
    # trivial-builders' writeText/writeShellScript: the same content, written at evaluation
    # time (builtins.toFile) so the tests can read it.
    writeText = name: text: builtins.toFile name text;
    writeShellScript = name: text: builtins.toFile name "#!/bin/sh\n${text}";
    callPackage = lib.callPackageWith pkgs;
    inherit lib;
    # buildNpmPackage is not run: its "output" is packageDir (this checkout's dist/ behind a
    # bin/nixos-desync link), and the arguments it got are kept for the tests.
    buildNpmPackage = args: {
      type = "derivation";
      name = "${args.pname}-${args.version}";
      outPath = packageDir;
      drvArgs = args;
    };
    importNpmLock = {
      __functor = _: args: { importNpmLockArgs = args; };
      npmConfigHook = fake "npm-config-hook";
    };
  }
  // lib.genAttrs [
    "nodejs"
    "nodejs_20"
    "coreutils"
    "gnutar"
    "xz"
    "gzip"
    "gitMinimal"
    "nix"
    "openssh"
    "nixos-rebuild"
    "systemd"
  ] fake;

  # flake.nix's outputs with a nixpkgs input that has only `lib` (enough for nixosModules).
  flakeOutputs = (import ../../flake.nix).outputs {
    self = flakeOutputs // {
      outPath = toString ../..;
    };
    nixpkgs = {
      inherit lib;
      legacyPackages = { };
    };
  };
  module = if fromFlake then flakeOutputs.nixosModules.default else ../../nix/module.nix;

  # As nixos/lib/eval-config.nix: `pkgs` is a module argument (_module.args), not a special one.
  eval = lib.evalModules {
    modules = [
      module
      ./nixos.nix
      configModule
      { _module.args.pkgs = pkgs; }
    ];
    specialArgs.testArgs = builtins.fromJSON testArgs;
  };
  cfg = eval.config;

  # ---- unit rendering (as nixos/lib/systemd-lib.nix) -------------------------------
  toOption =
    x:
    if x == true then
      "true"
    else if x == false then
      "false"
    else
      toString x;
  attrsToSection =
    as:
    concatStringsSep "" (
      concatMap (
        name:
        let
          v = as.${name};
        in
        map (x: "${name}=${toOption x}\n") (if isList v then v else [ v ])
      ) (attrNames as)
    );
  nonEmpty = n: l: if l == [ ] then { } else { ${n} = concatStringsSep " " l; };
  unitSection =
    u:
    {
      Description = u.description;
    }
    // nonEmpty "Wants" u.wants
    // nonEmpty "Requires" u.requires
    // nonEmpty "After" u.after
    // nonEmpty "Before" u.before
    // lib.optionalAttrs (!(u.restartIfChanged or true)) { X-RestartIfChanged = false; }
    // u.unitConfig;
  installSection =
    u:
    let
      s = nonEmpty "WantedBy" u.wantedBy // nonEmpty "RequiredBy" u.requiredBy;
    in
    if s == { } then "" else "\n[Install]\n${attrsToSection s}";
  envLines =
    s:
    let
      env = lib.optionalAttrs (s.path != [ ]) { PATH = lib.makeBinPath s.path + ":" + lib.makeSearchPathOutput "bin" "sbin" s.path; } // s.environment;
    in
    map (n: toJSON "${n}=${toString env.${n}}") (filter (n: env.${n} != null) (attrNames env));
  renderService =
    s:
    "[Unit]\n${attrsToSection (unitSection s)}\n[Service]\n"
    + attrsToSection ({ Environment = envLines s; } // s.serviceConfig)
    + installSection s;
  renderTimer =
    t: "[Unit]\n${attrsToSection (unitSection t)}\n[Timer]\n${attrsToSection t.timerConfig}" + installSection t;

  # NixOS renders listenStreams as one ListenStream= line each (systemd-unit-options.nix).
  renderSocket =
    k: "[Unit]\n${attrsToSection (unitSection k)}\n[Socket]\n${attrsToSection ({ ListenStream = k.listenStreams; } // k.socketConfig)}" + installSection k;

  units =
    lib.mapAttrs' (n: s: lib.nameValuePair "${n}.service" (renderService s)) cfg.systemd.services
    // lib.mapAttrs' (n: t: lib.nameValuePair "${n}.timer" (renderTimer t)) cfg.systemd.timers
    // lib.mapAttrs' (n: k: lib.nameValuePair "${n}.socket" (renderSocket k)) cfg.systemd.sockets;

  nd = cfg.services.nixos-desync;
  ndOptions = eval.options.services.nixos-desync;
  desyncOptions = ndOptions.desyncs.type.getSubOptions ndOptions.desyncs.loc;

  # The documentation, as nixosOptionsDoc builds it (optionAttrSetToDocList, then options.json),
  # from an evaluation whose pkgs only has what option *declarations* may use (formats): a
  # default computed from pkgs or config without a defaultText fails here, naming the option.
  docEval = lib.evalModules {
    modules = [
      module
      ./nixos.nix
      {
        _module.args.pkgs =
          lib.mapAttrs (n: _: throw "the documentation evaluated pkgs.${n}: give this option a defaultText") pkgs
          // {
            inherit (pkgs) formats;
          };
      }
    ];
  };
  docOptions = docEval.options.services.nixos-desync;
  docList = lib.optionAttrSetToDocList docOptions;
  # Every option, sub-options of submodules (desyncs.<name>.*, settings.*) included.
  allOptions =
    opts:
    lib.concatMap (o: [ o ] ++ allOptions (o.type.getSubOptions o.loc)) (lib.collect lib.isOption opts);
  defaultTextKind = o: if o ? defaultText then o.defaultText._type or (builtins.typeOf o.defaultText) else null;
  envName = n: "unit_" + lib.replaceStrings [ "-" "." "@" ] [ "_" "_" "_" ] n;
in
{
  inspect = {
    failedAssertions = map (a: a.message) (filter (a: !a.assertion) cfg.assertions);
    inherit (cfg) warnings;
    configFile = toString nd.configFile;
    configText = builtins.readFile nd.configFile;
    etc = mapAttrs (_: e: toString e.source) cfg.environment.etc;
    systemPackages = map toString cfg.environment.systemPackages;
    tmpfiles = cfg.systemd.tmpfiles.rules;
    firewallTCP = cfg.networking.firewall.allowedTCPPorts;
    systemSources = nd.systemSources;
    systemBuilderCommands = cfg.system.systemBuilderCommands;
    inherit units;
    desyncs = mapAttrs (_: d: {
      path = toString d.path;
      inherit (d) revision desyncAge;
      # Forces the desync's package set: imports the pinned (or fallback) nixpkgs for real.
      helloName = d.pkgs.hello.name;
    }) nd.desyncs;
  };

  # alerts.ruleFiles: each generated rule file's text (test/nix/module-alerts.test.ts).
  alerts = map (f: {
    path = toString f;
    text = builtins.readFile f;
  }) nd.alerts.ruleFiles;

  docs = {
    # Forces every description, type, default and example, as options.json does.
    json = toJSON docList;
    options = map (o: {
      inherit (o) name description type internal visible;
      default = o.default.text or null;
    }) docList;
    defaultTexts = map (o: {
      name = lib.showOption o.loc;
      kind = defaultTextKind o;
    }) (allOptions docOptions);
  };

  # docs/module-options.md (test/docs/module-options.test.ts): every visible option as
  # nixosOptionsDoc renders it (description, type, default, example).
  optionsDoc = map (o: {
    inherit (o) name description type;
    readOnly = o.readOnly or false;
    default = o.default.text or null;
    example = o.example.text or null;
  }) (filter (o: o.visible && !o.internal) docList);

  # The option types, to compare with the tool's own patterns (src/config, src/util/duration.ts).
  typeChecks = {
    name = map (desyncOptions.name.type.check) (builtins.fromJSON probes).names;
    duration = map (desyncOptions.maxBehind.type.nestedTypes.elemType.check) (builtins.fromJSON probes).durations;
  };

  toplevel = lib.asserts.checkAssertWarn cfg.assertions cfg.warnings (
    derivation (
      lib.mapAttrs' (n: text: lib.nameValuePair (envName n) text) units
      // {
        name = "nixos-system-test";
        system = builtins.currentSystem;
        builder = "/bin/sh";
        args = [
          "-c"
          (
            ''
              set -e
              PATH=/usr/bin:/bin
              mkdir -p $out/etc/systemd/system
            ''
            + concatStringsSep "" (
              map (n: ''printf '%s' "''$${envName n}" > "$out/etc/systemd/system/${n}"'' + "\n") (attrNames units)
            )
            + concatStringsSep "" (
              lib.mapAttrsToList (n: e: ''mkdir -p "$(dirname "$out/etc/${n}")"; ln -s ${e.source} "$out/etc/${n}"'' + "\n") cfg.environment.etc
            )
          )
        ];
      }
    )
  );
}
