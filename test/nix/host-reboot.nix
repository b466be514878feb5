# A host that reboots by itself: a weekend window crossing midnight in a named time zone, a
# random delay for the fleet, reboots blocked while an alert fires, and the loop on a channel.
{ ... }:
{
  services.nixos-desync = {
    enable = true;
    reboot = {
      enable = true;
      window = {
        lower = "22:30";
        upper = "01:00";
        days = [ "Sat" "Sun" ];
        timeZone = "Europe/Berlin";
      };
      randomizedDelaySec = "45min";
      fixedRandomDelay = true;
      triggers = [ "kernel" "initrd" "switch-inhibitors" ];
      blockOnAlerts = {
        prometheus = {
          url = "http://prometheus.example:9090";
          bearerTokenFile = "/run/secrets/prometheus-token";
        };
        alertFilter = "^(NodeDown|Backup.*)$";
      };
    };
    # Free keys of the tool's reboot config pass through.
    settings.reboot.command = [ "/run/current-system/sw/bin/systemctl" "reboot" ];
  };
}
