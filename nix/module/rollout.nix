# Fleet rollouts in rings (docs/nixos.md "Fleet rollouts"): the options
# services.nixos-desync.rollout.*, typed, and the config key `rollout` they become. The
# credentials for Prometheus are paths of files read by the loop at run time: no secret is in
# the Nix store or in the generated config.
{
  config,
  lib,
  pkgs,
  ...
}:
let
  inherit (lib) mkIf mkOption types;
  common = import ./common.nix { inherit config lib pkgs; };
  inherit (common)
    cfg
    duration
    inStore
    secretPath
    ;
  rcfg = cfg.rollout;
  p = rcfg.prometheus;

  # What the tool accepts (src/config/schema.ts prometheusEndpoint): http(s), no credentials,
  # no query or fragment (a path prefix is fine).
  url = types.strMatching "https?://[^@?#[:space:]]+" // {
    description = "http:// or https:// URL without credentials, query or fragment";
  };

  rolloutJson = {
    inherit (rcfg) ring minHosts soak onUnreachable;
    prometheus = {
      inherit (p) url bearerTokenFile timeout;
      basicAuth = if p.basicAuth == null then null else { inherit (p.basicAuth) username passwordFile; };
      caFile = if p.caFile == null then null else toString p.caFile;
    };
  };
  secrets = lib.filter (s: s != null) [
    p.bearerTokenFile
    (if p.basicAuth == null then null else p.basicAuth.passwordFile)
  ];
in
{
  options.services.nixos-desync.rollout = {
    enable = mkOption {
      type = types.bool;
      default = false;
      description = ''
        Take part in a fleet rollout in rings: a host of ring r > 0 adopts a new channel
        revision only once `minHosts` hosts of ring r−1 ran it healthy for `soak`, as the
        fleet's Prometheus sees it; otherwise the run is `held` (nothing changes, exit 0). A
        revision any host rejected is rejected here too. Config key `rollout`.
      '';
    };
    ring = mkOption {
      type = types.ints.between 0 1000;
      default = 1;
      example = 0;
      description = "This host's ring: 0 = canaries (wait for nobody), r > 0 waits for ring r−1. Config key `rollout.ring`.";
    };
    minHosts = mkOption {
      type = types.ints.between 1 1000000;
      default = 1;
      description = "How many hosts of ring r−1 must have run the revision healthy for `soak`. Config key `rollout.minHosts`.";
    };
    soak = mkOption {
      type = types.either (types.enum [ "0s" ]) duration;
      default = "6h";
      example = "1d";
      description = "How long those hosts must have run it healthy (`0s`: as soon as they run it). Config key `rollout.soak`.";
    };
    onUnreachable = mkOption {
      type = types.enum [ "hold" "proceed" ];
      default = "hold";
      description = ''
        When Prometheus cannot answer (connection, TLS, timeout, HTTP 5xx): `hold` the run, or
        `proceed` without the fleet's word. Config key `rollout.onUnreachable`.
      '';
    };
    prometheus = {
      url = mkOption {
        type = url;
        example = "https://prometheus.example:9090";
        description = "The fleet's Prometheus (the loop queries `/api/v1/query` only). Config key `rollout.prometheus.url`.";
      };
      bearerTokenFile = mkOption {
        type = types.nullOr secretPath;
        default = null;
        example = "/run/secrets/prometheus-token";
        description = ''
          A file holding a bearer token, read by the loop (root) at each run; outside the Nix
          store, given as a string. Config key `rollout.prometheus.bearerTokenFile`.
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
        description = "Basic auth for Prometheus (exclusive with `bearerTokenFile`). Config key `rollout.prometheus.basicAuth`.";
      };
      caFile = mkOption {
        type = types.nullOr types.path;
        default = null;
        example = "/etc/ssl/fleet-ca.pem";
        description = "CA certificate(s) to verify Prometheus' TLS certificate with, instead of the system's. Config key `rollout.prometheus.caFile`.";
      };
      timeout = mkOption {
        type = duration;
        default = "30s";
        description = "Time limit of the query. Config key `rollout.prometheus.timeout`.";
      };
    };
  };

  config = mkIf (cfg.enable && rcfg.enable) {
    services.nixos-desync.settings.rollout = rolloutJson;
    assertions = [
      {
        assertion = cfg.upgrade.enable;
        message = "services.nixos-desync.rollout.enable needs services.nixos-desync.upgrade.enable: the rollout gates the loop's upgrades.";
      }
      {
        assertion = p.bearerTokenFile == null || p.basicAuth == null;
        message = "services.nixos-desync.rollout.prometheus: set bearerTokenFile or basicAuth, not both (one Authorization header).";
      }
      {
        assertion = !lib.any inStore secrets;
        message = "services.nixos-desync.rollout.prometheus: a credential file is in the Nix store, which every local user can read. Keep it outside the store (e.g. /run/secrets/… from agenix or sops-nix) and give its path as a string.";
      }
    ];
  };
}
