# What the parts of the module share (not a module itself: each part imports it with its own
# `config`, `lib` and `pkgs`). Only what two or more parts use lives here; everything else
# stays in the part that owns it.
{
  config,
  lib,
  pkgs,
}:
let
  inherit (lib) mkOption types;
  cfg = config.services.nixos-desync;
in
rec {
  inherit cfg;
  jsonFormat = pkgs.formats.json { };

  # ---- types: what check-config would refuse, refused at evaluation time already ----------
  # The contract's desync name: it names pin files, GC roots and metric labels.
  desyncName = types.strMatching "^[a-z0-9][a-z0-9_-]{0,62}$";
  # Exactly the contract's duration syntax (src/util/duration.ts DURATION_RE).
  duration = types.strMatching "[1-9][0-9]{0,8}[smhdw]" // {
    description = "duration (1 to 999999999 followed by s, m, h, d or w: 30s 10m 3h 14d 2w)";
  };
  # A command is an argv list, never a shell string.
  argv = types.nonEmptyListOf types.str;
  # A systemd unit name or glob (`*` only), as the tool's config accepts (src/config/schema.ts unitName).
  unitGlob = types.strMatching "[A-Za-z0-9:_.@\\*-]{1,256}" // {
    description = "systemd unit name (`*` allowed as a wildcard)";
  };
  # A secret's path, read at run time: a string, so that no path literal (./web.yml) is
  # copied into the world-readable store; store paths are refused by an assertion (config-file.nix).
  secretPath = lib.mkOptionType {
    name = "secretPath";
    description = "absolute path as a string (not a path literal: that would copy the file into the world-readable Nix store)";
    descriptionClass = "noun";
    check = x: builtins.isString x && lib.hasPrefix "/" x;
    merge = lib.mergeEqualOption;
  };
  inStore = p: lib.hasPrefix "${builtins.storeDir}/" (toString p);

  # ---- Prometheus, as the loop asks it (`rollout.prometheus`, `reboot.blockOnAlerts.prometheus`:
  # src/config/schema.ts prometheusEndpoint); credentials are files read at run time, never in
  # the store or the generated config. `key` is the config key, `what` leads the URL's text.
  # http(s), no credentials, no query or fragment (a path prefix is fine).
  prometheusUrl = types.strMatching "https?://[^@?#[:space:]]+" // {
    description = "http:// or https:// URL without credentials, query or fragment";
  };
  prometheusOptions = key: what: {
    url = mkOption {
      type = prometheusUrl;
      example = "https://prometheus.example:9090";
      description = "${what} Config key `${key}.url`.";
    };
    bearerTokenFile = mkOption {
      type = types.nullOr secretPath;
      default = null;
      example = "/run/secrets/prometheus-token";
      description = ''
        A file holding a bearer token, read by the loop (root) at each run; outside the Nix
        store, given as a string. Config key `${key}.bearerTokenFile`.
      '';
    };
    basicAuth = mkOption {
      type = types.nullOr (
        types.submodule {
          options = {
            username = mkOption {
              type = types.strMatching "[^:[:cntrl:]]+";
              description = "Basic auth user name.";
            };
            passwordFile = mkOption {
              type = secretPath;
              example = "/run/secrets/prometheus-password";
              description = "A file holding the password, read at each run; outside the Nix store, given as a string.";
            };
          };
        }
      );
      default = null;
      description = "Basic auth for Prometheus (exclusive with `bearerTokenFile`). Config key `${key}.basicAuth`.";
    };
    caFile = mkOption {
      type = types.nullOr types.path;
      default = null;
      example = "/etc/ssl/fleet-ca.pem";
      description = "CA certificate(s) to verify Prometheus' TLS certificate with, instead of the system's. Config key `${key}.caFile`.";
    };
    timeout = mkOption {
      type = duration;
      default = "30s";
      description = "Time limit of the query. Config key `${key}.timeout`.";
    };
  };
  prometheusJson = p: {
    inherit (p) url bearerTokenFile timeout;
    basicAuth = if p.basicAuth == null then null else { inherit (p.basicAuth) username passwordFile; };
    caFile = if p.caFile == null then null else toString p.caFile;
  };
  prometheusAssertions =
    key: p:
    let
      secrets = lib.filter (s: s != null) [
        p.bearerTokenFile
        (if p.basicAuth == null then null else p.basicAuth.passwordFile)
      ];
    in
    [
      {
        assertion = p.bearerTokenFile == null || p.basicAuth == null;
        message = "services.nixos-desync.${key}: set bearerTokenFile or basicAuth, not both (one Authorization header).";
      }
      {
        assertion = !lib.any inStore secrets;
        message = "services.nixos-desync.${key}: a credential file is in the Nix store, which every local user can read. Keep it outside the store (e.g. /run/secrets/… from agenix or sops-nix) and give its path as a string.";
      }
    ];

  stateDir = cfg.settings.stateDir or "/var/lib/nixos-desync";

  # systemd ExecStart quoting, as nixpkgs' utils.escapeSystemdExecArg: every argument is a
  # JSON string (systemd understands C-style double quotes) with `%` and `$` doubled so that
  # systemd expands neither specifiers nor environment variables inside it.
  escapeExecArg =
    arg:
    lib.replaceStrings [ "%" "$" ] [ "%%" "$$" ] (builtins.toJSON (toString arg));
  escapeExecArgs = args: lib.concatStringsSep " " (map escapeExecArg args);

  # Pins are written by `nixos-desync upgrade` as
  #   { desyncAge = N; path = "/nix/store/…"; revision = "…"; storePath = "…"; pinnedAt = "…"; }
  # Before the first run there is no pin: the desync uses this configuration's own nixpkgs,
  # as the proposal's module did.
  readPin =
    name:
    let
      file = "${stateDir}/pins/${name}.nix";
    in
    if builtins.pathExists file then import file else null;

  # Flake mode (services.nixos-desync.flake): each desync's nixpkgs is an input of the host's
  # flake, locked by the loop in flake.lock. Nothing is read from the state directory at
  # evaluation time, so `nixos-rebuild --flake` and `nix build` need no --impure and give the
  # same system on any machine.
  flakeCfg = cfg.flake;
  flakeMode = flakeCfg.enable;
  flakeRef = "${flakeCfg.path}#${flakeCfg.host}";
  missingInputMessage =
    name: input:
    "services.nixos-desync.desyncs.${name}: flake input \"${input}\" is not in services.nixos-desync.flake.inputs "
    + "(inputs: ${lib.concatStringsSep ", " (builtins.attrNames flakeCfg.inputs)}); add `inputs.${input}.url` to the host's flake.nix and set flake.inputs = inputs";

  # nixos-rebuild's flake arguments in flake mode (the build and the activation); Nix may not
  # re-lock anything (with --no-write-lock-file, Nix 2.8 would re-lock in memory).
  flakeArgs = lib.optionals flakeMode [
    "--flake"
    flakeRef
    "--no-update-lock-file"
  ];

  channelUpdate = !flakeMode && ((cfg.settings.channel or { }).update or true);

  # The template unit of the activation (activation.nix); the loop starts its instances.
  activateUnitName = "nixos-desync-activate";

  # As nixos-upgrade.service (nixos/modules/tasks/auto-upgrade.nix): the environment and PATH
  # of both the loop and the activation.
  upgradeEnvironment =
    config.nix.envVars
    // lib.optionalAttrs (config.environment.sessionVariables ? NIX_PATH) {
      inherit (config.environment.sessionVariables) NIX_PATH;
    }
    // {
      HOME = "/root";
    }
    // config.networking.proxy.envVars;
  upgradePath = [
    config.nix.package.out
    pkgs.coreutils
    pkgs.gnutar
    pkgs.xz.bin
    pkgs.gzip
    pkgs.gitMinimal
    config.programs.ssh.package
    # systemctl: the health gate's failed units, and starting the activation unit.
    config.systemd.package
  ];

  # The loop's environment (also the boot-time recovery's).
  loopEnvironment = upgradeEnvironment // {
    # Store writes (.drv files from nix-instantiate --read-write-mode, nix-store --add,
    # builds, the channel's new user environment) and GC-root registrations
    # (--add-root --indirect: the link is made here, the daemon records it) all go
    # through nix-daemon. A root client would otherwise open the store directly, which
    # needs a writable /nix/store and /nix/var/nix/db.
    NIX_REMOTE = "daemon";
    # Nix's client-side caches (fetcher cache of fetchTarball/fetchGit and of
    # nix-channel's download, flake eval cache, git checkouts) live in
    # $XDG_CACHE_HOME/nix; /root/.cache is read-only here (ProtectHome=read-only).
    XDG_CACHE_HOME = "/var/cache/nixos-desync";
    # The privileged steps of an activation go through nixos-desync-activate@.service.
    NIXOS_DESYNC_ACTIVATION_UNIT = activateUnitName;
  };

  listenHost =
    if lib.hasInfix ":" cfg.exporter.listenAddress then
      "[${cfg.exporter.listenAddress}]"
    else
      cfg.exporter.listenAddress;
  listenAddress = "${listenHost}:${toString cfg.exporter.port}";

  # Sandboxing shared by the loop and the exporter (each adds its own on top).
  sandboxCommon = {
    PrivateDevices = true;
    DevicePolicy = "closed";
    PrivateIPC = true;
    PrivateMounts = true;
    ProtectHostname = true;
    ProtectClock = true;
    ProtectKernelTunables = true;
    ProtectKernelModules = true;
    ProtectKernelLogs = true;
    ProtectControlGroups = true;
  };
}
