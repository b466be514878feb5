# NixOS VM test of services.nixos-desync, in the style of nixpkgs'
# nixos/tests/prometheus-exporters.nix: enable the module, run one upgrade with a desync,
# check the pin file, then wait for the exporter and grep /metrics.
#
#   nix build .#checks.x86_64-linux.vm-test          (flake)
#   nix-build -A tests.vm-test                        (default.nix)
#
# Needs nixpkgs and KVM; it cannot run on the machines this project is developed on (no
# nixpkgs there) — test/nix/module.test.ts covers what can be checked without NixOS.
#
# The VM is offline and must not evaluate a real nixpkgs (slow, and nothing to fetch), so
# the loop follows a tiny fake nixpkgs in the store (channel.update = false) and the
# system build links a fake toplevel (its switch-to-configuration only records what it was
# asked to do) as ./result — what this test checks is the module: the units, the generated
# config, the loop running as root inside its sandbox (store access through nix-daemon, GC
# roots, the health gate reading the real `systemctl list-units --failed`, starting
# nixos-desync-activate@<action>:<toplevel>.service through systemctl), the unprivileged
# exporter reading the state it wrote, the firewall and the pin files.
{
  pkgs ? import <nixpkgs> { },
  module ? ../module.nix,
}:
let
  # A nixpkgs-shaped directory whose packages are derivations built by busybox's sh.
  # builtins.storePath gives the builder string its store context, so the build also works
  # with the sandbox on.
  fakeNixpkgs = revision: broken:
    pkgs.runCommand "fake-nixpkgs-${revision}" { } ''
      mkdir -p $out
      echo ${revision} > $out/.git-revision
      cat > $out/default.nix <<'EOF'
      { config ? { }, ... }:
      let
        sh = "''${builtins.storePath "${pkgs.busybox}"}/bin/sh";
        mk = name: script: derivation {
          inherit name;
          system = builtins.currentSystem;
          builder = sh;
          args = [ "-c" script ];
        };
      in
      {
        hello = mk "hello-${revision}" "echo hello > $out";
        home-manager = mk "home-manager-${revision}" ${
          if broken then ''"echo home-manager is broken >&2; exit 1"'' else ''"echo home-manager > $out"''
        };
      }
      EOF
    '';
  # A toplevel the activation unit accepts (bin/switch-to-configuration, nixos-version) whose
  # switch-to-configuration records the action instead of activating anything.
  fakeToplevel = pkgs.runCommand "nixos-system-fake" { } ''
    mkdir -p $out/bin
    echo 99.99.20260101.0000000 > $out/nixos-version
    cat > $out/bin/switch-to-configuration <<EOF
    #!${pkgs.bash}/bin/bash
    echo "\$1" >> /run/nixos-desync-activated
    EOF
    chmod +x $out/bin/switch-to-configuration
  '';
  rev1 = fakeNixpkgs "1111111111111111111111111111111111111111" false;
  rev2 = fakeNixpkgs "2222222222222222222222222222222222222222" true;
in
pkgs.testers.runNixOSTest {
  name = "nixos-desync";

  nodes.machine =
    { pkgs, lib, ... }:
    {
      imports = [ module ];

      # Offline VM: no binary cache, builds run locally.
      nix.settings.substituters = lib.mkForce [ ];
      system.extraDependencies = [
        pkgs.busybox
        rev1
        rev2
        fakeToplevel
      ];
      environment.systemPackages = [ pkgs.curl ];

      services.nixos-desync = {
        enable = true;
        desyncs.home-manager = {
          requireBuilds = [ "home-manager" ];
          maxLagRebuilds = 2;
        };
        desyncs.hello.requireBuilds = [ "hello" ];
        upgrade.dates = "2000-01-01"; # never fires by itself during the test
        exporter = {
          listenAddress = "0.0.0.0";
          openFirewall = true;
        };
        settings = {
          # The "channel": a symlink the test script moves between the two revisions.
          nixpkgs = "/etc/fake-channel";
          channel.update = false;
          # system.activate keeps the module's default ("switch", through the activation unit).
          system.build = [ "${pkgs.coreutils}/bin/ln" "-s" "${fakeToplevel}" "result" ];
        };
        health.settle = "0s";
      };
    };

  testScript = ''
    import json

    machine.wait_for_unit("multi-user.target")

    with subtest("generated config is valid"):
        machine.succeed("nixos-desync check-config --config /etc/nixos-desync/config.json")

    with subtest("exporter runs unprivileged before the first run"):
        machine.wait_for_unit("nixos-desync-exporter.service")
        machine.wait_for_open_port(9793)
        dyn = machine.succeed("systemctl show -P DynamicUser nixos-desync-exporter.service").strip()
        assert dyn == "yes", f"DynamicUser={dyn}"
        machine.succeed("curl -sSf http://127.0.0.1:9793/metrics | grep -F nixos_desync_build_info")
        print(machine.succeed("systemd-analyze security nixos-desync-exporter.service | tail -n 1"))

    with subtest("the loop is sandboxed, the activation is not"):
        machine.succeed("systemctl show -P ProtectSystem nixos-desync-upgrade.service | grep -x strict")
        machine.succeed("systemctl show -P NoNewPrivileges nixos-desync-upgrade.service | grep -x yes")
        machine.succeed("test -z \"$(systemctl show -P CapabilityBoundingSet nixos-desync-upgrade.service)\"")
        machine.succeed("systemctl show -P Environment nixos-desync-upgrade.service | grep -F NIX_REMOTE=daemon")
        machine.succeed("systemctl show -P NoNewPrivileges nixos-desync-activate@test:x.service | grep -x no")
        print(machine.succeed("systemd-analyze security nixos-desync-upgrade.service | tail -n 1"))
        print(machine.succeed("systemd-analyze security nixos-desync-activate@test:x.service | tail -n 1"))

    with subtest("first run: both desyncs follow rev1; the built toplevel is test-activated, gated, then made the boot default"):
        machine.succeed("ln -sfn ${rev1} /etc/fake-channel")
        machine.succeed("systemctl start nixos-desync-upgrade.service")
        # From inside the sandbox: systemctl start (private socket) → nixos-desync-activate@….
        machine.succeed("test \"$(cat /run/nixos-desync-activated | tr '\\n' ' ')\" = 'test boot '")
        machine.succeed("test \"$(readlink -f /nix/var/nix/profiles/system)\" = ${fakeToplevel}")
        gens = json.loads(machine.succeed("nixos-desync generations --json"))
        assert gens[0]["toplevel"] == "${fakeToplevel}" and gens[0]["sources"]["nixpkgs"]["revision"].startswith("1111"), gens[0]
        # GC roots registered through the daemon survive a collection.
        machine.succeed("nix-store --gc --print-roots | grep -F /var/lib/nixos-desync/sets/")
        pin = json.loads(machine.succeed(
            "nix-instantiate --eval --strict --json /var/lib/nixos-desync/pins/home-manager.nix"))
        assert pin["desyncAge"] == 0, pin
        assert pin["revision"] == "1111111111111111111111111111111111111111", pin
        assert pin["path"].startswith("/nix/store/"), pin

    with subtest("second run: home-manager breaks and stays on rev1, hello follows rev2"):
        machine.succeed("ln -sfn ${rev2} /etc/fake-channel")
        machine.succeed("systemctl start nixos-desync-upgrade.service")
        hm = json.loads(machine.succeed(
            "nix-instantiate --eval --strict --json /var/lib/nixos-desync/pins/home-manager.nix"))
        hello = json.loads(machine.succeed(
            "nix-instantiate --eval --strict --json /var/lib/nixos-desync/pins/hello.nix"))
        assert hm["desyncAge"] == 1 and hm["revision"].startswith("1111"), hm
        assert hello["desyncAge"] == 0 and hello["revision"].startswith("2222"), hello
        # The same toplevel again: test-activated and confirmed once more.
        machine.succeed("test \"$(wc -l < /run/nixos-desync-activated)\" = 4")

    with subtest("metrics show the lag"):
        machine.wait_until_succeeds(
            "curl -sSf http://127.0.0.1:9793/metrics"
            " | grep -E '^nixos_desync_lag_rebuilds\\{desync=\"home-manager\"\\} 1$'")
        machine.succeed(
            "curl -sSf http://127.0.0.1:9793/metrics"
            " | grep -E '^nixos_desync_max_lag_rebuilds\\{desync=\"home-manager\"\\} 2$'")
        machine.succeed(
            "curl -sSf http://127.0.0.1:9793/metrics"
            " | grep -E '^nixos_desync_last_run_success 1$'")
        machine.succeed("nixos-desync status --config /etc/nixos-desync/config.json")

    with subtest("the exporter is sandboxed and the state dir belongs to root"):
        machine.succeed("systemctl show -P ProtectSystem nixos-desync-exporter.service | grep -x strict")
        machine.succeed("systemctl show -P MemoryDenyWriteExecute nixos-desync-exporter.service | grep -x no")
        machine.succeed("stat -c '%U %a' /var/lib/nixos-desync | grep -x 'root 755'")
  '';
}
