# NixOS module: services.nixos-desync — the desync upgrade loop (root but sandboxed,
# oneshot + timer), the activation it hands the built system to (root, unconfined, its own
# oneshot unit) and the Prometheus exporter (unprivileged, hardened).
#
# Import it with the flake (`nixos-desync.nixosModules.default`) or from a checkout/channel
# (`imports = [ /path/to/nixos-desync/nix/module.nix ];`). Documentation: docs/nixos.md.
#
# The module is in parts, one concern each (as nixpkgs does for its larger services); what
# two parts share is in module/common.nix. test/nix/module-golden.test.ts holds the evaluated
# result of every part still together: a change that is only a move leaves it unchanged.
{
  imports = [
    ./module/options.nix # the user-facing options
    ./module/desyncs.nix # desyncs.<name>.*: pins read at evaluation time, flake inputs
    ./module/config-file.nix # options -> /etc/nixos-desync/config.json, assertions
    ./module/provenance.nix # what the system is built from, written into the toplevel
    ./module/loop.nix # nixos-desync-upgrade.service + timer (root, sandboxed)
    ./module/activation.nix # nixos-desync-activate@.service (root, unconfined)
    ./module/recovery.nix # nixos-desync-recover.service (at boot)
    ./module/reboot.nix # reboot.* options, nixos-desync-verify-boot.service, nixos-desync-reboot.timer
    ./module/rollout.nix # rollout.* options: fleet rollouts in rings (config key `rollout`)
    ./module/exporter.nix # exporter.* options, nixos-desync-exporter.service (dynamic user, read-only)
    ./module/alerts.nix # alerts.*: the shipped rule files with your runbook links
  ];
}
