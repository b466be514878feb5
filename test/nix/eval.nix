# Evaluates nix/module.nix with real Nix against ./stub-lib.nix and ./stub-nixos.nix and
# returns what the tests check: the generated JSON config and the systemd units rendered
# the way NixOS renders them (nixos/lib/systemd-lib.nix: one `Key=value` line per list
# element, booleans as true/false; unit dependencies joined by spaces).
#
#   nix-instantiate --eval --strict --json --read-write-mode test/nix/eval.nix \
#     --argstr packageDir /tmp/pkg --argstr nixpkgsPath /tmp/nixpkgs \
#     --arg configModule ./test/nix/example-config.nix
#
# --read-write-mode makes the generated config a real store file (pkgs.formats.json's
# generate is modelled with builtins.toFile), so the rendered ExecStart can be run as is.
{
  packageDir, # outPath of services.nixos-desync.package (a directory with bin/nixos-desync)
  nixpkgsPath, # pkgs.path: the system's own nixpkgs, the fallback of desyncs.<name>.path
  configModule, # the host's configuration module; receives `testArgs` as a module argument
  testArgs ? "{}", # JSON: per-test values (temp dirs) for configModule
}:
let
  lib = import ./stub-lib.nix;
  inherit (builtins) attrNames concatStringsSep concatMap filter isList isBool mapAttrs toJSON;

  fake = name: let self = { type = "derivation"; inherit name; outPath = "/nix/store/${builtins.substring 0 32 (builtins.hashString "sha256" name)}-${name}"; out = self; bin = self; }; in self;

  pkgs = {
    path = nixpkgsPath;
    stdenv.hostPlatform.system = builtins.currentSystem;
    formats.json = { }: {
      type = lib.jsonType;
      generate = name: value: builtins.toFile name (toJSON value);
    };
    callPackage = f: args:
      let fn = if builtins.isFunction f then f else import f;
      in fn (builtins.intersectAttrs (builtins.functionArgs fn) pkgs // args);
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
  } // lib.mapAttrs (n: _: fake n) {
    nodejs_20 = 1; coreutils = 1; gnutar = 1; xz = 1; gzip = 1; gitMinimal = 1; nix = 1; openssh = 1; nixos-rebuild = 1; systemd = 1;
  };

  eval = lib.evalModules {
    modules = [ ../../nix/module.nix ./stub-nixos.nix configModule ];
    specialArgs = { inherit pkgs; testArgs = builtins.fromJSON testArgs; };
  };
  cfg = eval.config;

  # ---- unit rendering (as nixos/lib/systemd-lib.nix) -------------------------------
  toOption = x: if x == true then "true" else if x == false then "false" else toString x;
  attrsToSection = as: concatStringsSep "" (concatMap (name:
    let v = as.${name}; in map (x: "${name}=${toOption x}\n") (if isList v then v else [ v ])) (attrNames as));
  nonEmpty = n: l: if l == [ ] then { } else { ${n} = concatStringsSep " " l; };
  unitSection = u:
    { Description = u.description; }
    // nonEmpty "Documentation" u.documentation
    // nonEmpty "Wants" u.wants // nonEmpty "Requires" u.requires
    // nonEmpty "After" u.after // nonEmpty "Before" u.before
    // lib.optionalAttrs (!u.restartIfChanged) { X-RestartIfChanged = false; }
    // u.unitConfig;
  installSection = u:
    let s = nonEmpty "WantedBy" u.wantedBy // nonEmpty "RequiredBy" u.requiredBy;
    in if s == { } then "" else "\n[Install]\n${attrsToSection s}";
  makePath = paths: concatStringsSep ":" (map (p: "${p}/bin") paths ++ map (p: "${p}/sbin") paths);
  envLines = s:
    let env = lib.optionalAttrs (s.path != [ ]) { PATH = makePath s.path; } // s.environment;
    in map (n: toJSON "${n}=${env.${n}}") (filter (n: env.${n} != null) (attrNames env));
  renderService = s:
    "[Unit]\n${attrsToSection (unitSection s)}\n[Service]\n"
    + attrsToSection ({ Environment = envLines s; } // s.serviceConfig)
    + installSection s;
  renderTimer = t:
    "[Unit]\n${attrsToSection (unitSection t)}\n[Timer]\n${attrsToSection t.timerConfig}" + installSection t;

  nd = cfg.services.nixos-desync;
in
{
  failedAssertions = map (a: a.message) (filter (a: !a.assertion) cfg.assertions);
  configFile = nd.configFile;
  configText = builtins.readFile nd.configFile;
  etc = mapAttrs (_: e: toString e.source) cfg.environment.etc;
  systemPackages = map toString cfg.environment.systemPackages;
  tmpfiles = cfg.systemd.tmpfiles.rules;
  firewallTCP = cfg.networking.firewall.allowedTCPPorts;
  units =
    builtins.listToAttrs (map (n: { name = "${n}.service"; value = renderService cfg.systemd.services.${n}; }) (attrNames cfg.systemd.services))
    // builtins.listToAttrs (map (n: { name = "${n}.timer"; value = renderTimer cfg.systemd.timers.${n}; }) (attrNames cfg.systemd.timers));
  desyncs = mapAttrs (_: d: {
    path = toString d.path;
    inherit (d) revision desyncAge;
    # Forces the desync's package set: imports the pinned (or fallback) nixpkgs for real.
    helloName = d.pkgs.hello.name;
  }) nd.desyncs;
}
