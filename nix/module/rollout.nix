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
    prometheusOptions
    prometheusJson
    prometheusAssertions
    ;
  rcfg = cfg.rollout;
  p = rcfg.prometheus;

  rolloutJson = {
    inherit (rcfg) ring minHosts soak onUnreachable;
    prometheus = prometheusJson p;
  };
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
    prometheus = prometheusOptions "rollout.prometheus" "The fleet's Prometheus (the loop queries `/api/v1/query` only).";
  };

  config = mkIf (cfg.enable && rcfg.enable) {
    services.nixos-desync.settings.rollout = rolloutJson;
    assertions = [
      {
        assertion = cfg.upgrade.enable;
        message = "services.nixos-desync.rollout.enable needs services.nixos-desync.upgrade.enable: the rollout gates the loop's upgrades.";
      }
    ]
    ++ prometheusAssertions "rollout.prometheus" p;
  };
}
