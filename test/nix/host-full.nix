# A host using every option group: three desyncs (one with a pin, one without, one with runtime
# claims for the hold-back), the health gate's hold-back options, the upgrade
# timer with non-default timing, the exporter on all addresses with the firewall open,
# the proposal's state dir exported, and settings passed through.
{ testArgs, ... }:
{
  services.nixos-desync = {
    enable = true;
    desyncs.home-manager = {
      requireBuilds = [ "home-manager" "python3Packages.requests" ];
      checks = [ [ "/run/current-system/sw/bin/true" "--quick" ] ];
      maxBehind = "14d";
    };
    # 0: never stay behind (breach on the first failure).
    desyncs.strict.maxLagRebuilds = 0;
    desyncs.matrix-synapse = {
      requireBuilds = [ "matrix-synapse" ];
      maxLagRebuilds = 3;
      nixpkgsConfig.allowUnfree = true;
      # Runtime hold-back: what of the running system belongs to this desync.
      units = [ "matrix-synapse.service" "matrix-synapse-*.timer" ];
      healthChecks = [ [ "/run/current-system/sw/bin/curl" "-fsS" "http://127.0.0.1:8008/health" ] ];
    };
    health = {
      bisect = true;
      retryAfter = "12h";
    };
    upgrade = {
      operation = "boot";
      dates = "Mon..Fri 03:00";
      randomizedDelaySec = "45min";
      fixedRandomDelay = true;
      persistent = false;
    };
    exporter = {
      listenAddress = "0.0.0.0";
      port = 9799;
      openFirewall = true;
      prDesyncDir = "/var/lib/nixos/desyncs";
      prMaxDesyncAge = 5;
      webConfigFile = "/etc/nixos-desync/web.yml";
    };
    settings = {
      stateDir = testArgs.stateDir;
      onBreach = "continue";
      timeouts.build = "6h";
    };
  };
}
