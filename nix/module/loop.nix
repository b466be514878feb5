# The upgrade loop: nixos-desync-upgrade.service (root, sandboxed, oneshot), its timer, and
# the directories it needs (tmpfiles).
{
  config,
  lib,
  pkgs,
  ...
}:
let
  inherit (lib) mkIf;
  common = import ./common.nix { inherit config lib pkgs; };
  inherit (common)
    cfg
    stateDir
    escapeExecArgs
    flakeCfg
    flakeMode
    channelUpdate
    loopEnvironment
    upgradePath
    sandboxCommon
    ;
  configFile = cfg.configFile;
in
{
  config = mkIf cfg.enable {
    # Readable by the exporter's dynamic user (the tool itself refuses group/world-writable dirs).
    # /root/.nix-defexpr: `nix-channel --update` ends by replacing ~/.nix-defexpr/channels and
    # creates the directory if it is missing; inside the loop's sandbox /root is read-only, so
    # the directory must exist beforehand (ReadWritePaths= below makes it writable).
    systemd.tmpfiles.rules = [
      "d ${stateDir} 0755 root root - -"
    ]
    ++ lib.optional (cfg.upgrade.enable && channelUpdate) "d /root/.nix-defexpr 0755 root root - -";

    # The loop: root (it owns the state dir and the root channel profile) but sandboxed.
    # Everything that writes to the Nix store goes through nix-daemon (NIX_REMOTE=daemon), so
    # the unit needs no capability at all and sees the file system read-only except for the
    # few paths the loop itself writes. `systemd-analyze security --offline=yes`: 2.1 (was 9.6).
    # The only step that needs full root, the activation, is a separate unit started through
    # systemd (nixos-desync-activate@.service, activation.nix).
    systemd.services.nixos-desync-upgrade = mkIf cfg.upgrade.enable {
      description = "nixos-desync upgrade (desync upgrade loop)";
      # As system.autoUpgrade's nixos-upgrade.service: the switch the loop triggers must
      # neither restart nor stop the unit waiting for it.
      restartIfChanged = false;
      unitConfig.X-StopOnRemoval = false;
      # A run that dies (kill -9, OOM, a timeout, a failed rollback) is recovered at once, not
      # at the next timer run or boot: recovery.nix (a no-op without the run's journal).
      unitConfig.OnFailure = "nixos-desync-recover.service";
      # Every Nix command talks to the daemon (socket-activated). Wants=, not Requires=: with
      # nix.enable = false the commands fail with a clear "cannot connect to daemon" instead.
      wants = [
        "network-online.target"
        "nix-daemon.socket"
      ];
      after = [
        "network-online.target"
        "nix-daemon.socket"
      ];
      environment = loopEnvironment;
      path = upgradePath;
      serviceConfig = sandboxCommon // {
        Type = "oneshot";
        ExecStart = escapeExecArgs [
          "${cfg.package}/bin/nixos-desync"
          "upgrade"
          "--config"
          configFile
        ];
        # `nixos-rebuild build` leaves ./result here (a temporary GC root of the built
        # system). On the host's /run, not in PrivateTmp: nix-daemon's garbage collector
        # must be able to follow the indirect root.
        RuntimeDirectory = "nixos-desync-upgrade";
        WorkingDirectory = "/run/nixos-desync-upgrade";
        # /var/cache/nixos-desync, writable (XDG_CACHE_HOME above).
        CacheDirectory = "nixos-desync";
        # SIGTERM to the tool only: it stops its command tree and restores the committed pins.
        # An activation in progress is not interrupted: it runs in its own unit.
        KillMode = "mixed";
        TimeoutStopSec = "2min";
        # Also after a clean stop (`systemctl stop`, which OnFailure= does not see) and after
        # every other end of a run: the recovery starts only when a journal was left. "-": at
        # shutdown the start is refused; the boot's recovery does it then.
        ExecStopPost =
          "-"
          + escapeExecArgs [
            "${config.systemd.package}/bin/systemctl"
            "start"
            "--no-block"
            "nixos-desync-recover.service"
          ];

        # ---- sandbox -----------------------------------------------------------------
        # Root without capabilities: owner-based access to root's own files (state dir,
        # channel profile, ~/.nix-defexpr) works, everything that needs a capability
        # (overriding permissions, chown to others, mounts, modules, raw I/O, ptrace of
        # other processes…) does not. The Nix commands need none as daemon clients.
        CapabilityBoundingSet = "";
        AmbientCapabilities = "";
        NoNewPrivileges = true;
        # State and channel files must stay world-readable: the exporter reads the state dir
        # as a dynamic user, and profiles/defexpr are conventionally 0755/0644.
        UMask = "0022";
        # The whole file system read-only, except:
        ProtectSystem = "strict";
        ReadWritePaths = [
          # pins, sets (and their GC-root links), state.json, history.json, journal, lock
          stateDir
        ]
        # Flake mode: flake.lock is rewritten there (and committed with git: its .git too).
        ++ lib.optional flakeMode flakeCfg.path
        ++ lib.optionals channelUpdate [
          # nix-channel --update: the channels profile (channels-N-link, the channels
          # symlink, channels.lock). "-": no error if it does not exist yet.
          "-/nix/var/nix/profiles/per-user/root"
          # nix-channel --update replaces ~/.nix-defexpr/channels (created by tmpfiles).
          # ~/.nix-channels is only read by --update (written only by --add/--remove).
          "-/root/.nix-defexpr"
        ];
        # Read-only, not hidden: configurations import files from home directories, git
        # and ssh read /root/.gitconfig and /root/.ssh. The writable exception is above.
        ProtectHome = "read-only";
        # nixos-rebuild's and nix-channel's temp files, the gate's spec file.
        PrivateTmp = true;
        # Not ProtectProc=invisible: a capability-less root cannot see full-capability
        # root processes under hidepid, so the loop could no longer read the start time of
        # a lock holder or a stale process group started from a root shell (PID-reuse
        # check). Not ProcSubset=pid: Nix and Node read /proc/meminfo, /proc/cpuinfo.
        # Not PrivateUsers: other users' files (e.g. /etc/nixos) would appear as nobody's.
        # Not PrivateNetwork / IPAddressDeny: channel downloads, fetchTarball/fetchGit in the
        # evaluated configuration, and checks (e.g. a health probe) need the network.
        # AF_UNIX: nix-daemon's socket, systemd (systemctl start, below), nscd.
        # AF_INET/AF_INET6: downloads. No AF_NETLINK: glibc's getaddrinfo falls back.
        RestrictAddressFamilies = [
          "AF_UNIX"
          "AF_INET"
          "AF_INET6"
        ];
        # Builds run in nix-daemon's sandbox, not here: the clients need no namespaces.
        RestrictNamespaces = true;
        RestrictRealtime = true;
        RestrictSUIDSGID = true;
        LockPersonality = true;
        # Node's JIT needs writable+executable memory.
        MemoryDenyWriteExecute = false;
        SystemCallArchitectures = "native";
        # @system-service only (not ~@privileged or ~@resources as the exporter): Nix raises
        # its stack limit (setrlimit), and without capabilities the privileged calls fail
        # anyway. Node probes io_uring at start-up: refused calls fail with EPERM (Node
        # falls back) instead of killing the process.
        SystemCallFilter = [ "@system-service" ];
        SystemCallErrorNumber = "EPERM";
      };
    };

    systemd.timers.nixos-desync-upgrade = mkIf cfg.upgrade.enable {
      description = "nixos-desync upgrade timer";
      wantedBy = [ "timers.target" ];
      timerConfig = {
        OnCalendar = cfg.upgrade.dates;
        RandomizedDelaySec = cfg.upgrade.randomizedDelaySec;
        FixedRandomDelay = cfg.upgrade.fixedRandomDelay;
        Persistent = cfg.upgrade.persistent;
        Unit = "nixos-desync-upgrade.service";
      };
    };
  };
}
