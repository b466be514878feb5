# Long file: the reboot options, the config keys they become and the units/timer derived from them
# share one set of window and delay derivations (minutes, OnCalendar, delay bounds); split they would
# repeat them.
# Reboots (docs/nixos.md "Reboots"): the options services.nixos-desync.reboot.* (named as
# system.autoUpgrade's where they mean the same), their config keys, the unit that runs the
# health gate of the booted system before boot-complete.target (nixos-desync-verify-boot), and
# the timer that reboots at the reboot window's start (nixos-desync-reboot).
{
  config,
  lib,
  pkgs,
  ...
}:
let
  inherit (lib)
    mkIf
    mkOption
    types
    literalExpression
    ;
  common = import ./common.nix { inherit config lib pkgs; };
  inherit (common)
    cfg
    prometheusOptions
    prometheusJson
    prometheusAssertions
    escapeExecArgs
    loopEnvironment
    upgradePath
    ;
  rcfg = cfg.reboot;
  window = rcfg.window;
  loop = cfg.upgrade.enable;

  weekdays = [ "Mon" "Tue" "Wed" "Thu" "Fri" "Sat" "Sun" ];
  # The tool's HH:MM (src/config/reboot-terms.ts HHMM_RE); rebootWindow's own type is looser.
  hhmm = types.strMatching "([01][0-9]|2[0-3]):[0-5][0-9]" // {
    description = "24-hour local time HH:MM";
  };
  # "0", or one number with systemd's second/minute/hour units (system.autoUpgrade's "45min"
  # carries over): one unit only, so its length can be checked against the window here.
  delayUnits = {
    s = 1;
    sec = 1;
    m = 60;
    min = 60;
    h = 3600;
    hr = 3600;
  };
  delayType = types.strMatching "0|[1-9][0-9]{0,8}(s|sec|m|min|h|hr)" // {
    description = "time span: 0, or a number followed by s, sec, m, min, h or hr (30m, 45min, 2h)";
  };
  minutesOf = t: lib.toIntBase10 (builtins.substring 0 2 t) * 60 + lib.toIntBase10 (builtins.substring 3 2 t);
  # An end at or before the start is the next day (the tool's rule).
  windowMinutes =
    w:
    let
      s = minutesOf w.lower;
      e = minutesOf w.upper;
    in
    if e > s then e - s else e + 1440 - s;
  delaySeconds =
    d:
    let
      m = builtins.match "([0-9]+)([a-z]+)" d;
    in
    if m == null then 0 else lib.toIntBase10 (builtins.elemAt m 0) * delayUnits.${builtins.elemAt m 1};

  # systemd.time(7): weekdays, the window's start and its time zone (a trailing zone is read by
  # systemd ≥ 235). Without a window a blocked reboot is tried again every hour.
  onCalendar =
    if window == null then
      "hourly"
    else
      lib.concatStringsSep " " (
        lib.optional (window.days != null) (lib.concatStringsSep "," window.days)
        ++ [ "*-*-* ${window.lower}:00" ]
        ++ lib.optional (window.timeZone != null) window.timeZone
      );

  # systemd-boot's boot counting (nixpkgs ≥ 26.05); absent from older nixpkgs: guarded.
  bootCounting =
    (config.boot.loader.systemd-boot.enable or false)
    && lib.attrByPath [ "boot" "loader" "systemd-boot" "bootCounting" "enable" ] false config;

  # The sentinel lives in a directory the sandboxed units may write; /run/reboot-required (what
  # kured and nixos-needsreboot test) is a link to it. Not /run itself: that would open all of it.
  sentinelDir = "/run/nixos-desync";

  # The config keys that have typed options above (docs/nixos.md "Reboots": the names' mapping).
  typedKeys = [ "enable" "window" "triggers" "blockOnAlerts" ];
  block = rcfg.blockOnAlerts;
  rebootJson = {
    inherit (rcfg) enable triggers;
    blockOnAlerts =
      if block == null then
        null
      else
        {
          inherit (block) alertFilter firingOnly;
          prometheus = prometheusJson block.prometheus;
        };
    window =
      if window == null then
        null
      else
        {
          inherit (window) days;
          start = window.lower;
          end = window.upper;
          timezone = window.timeZone;
        };
  };

  # A command of the loop's, in its sandbox and environment, without its stop hook (as recover).
  loopCommand = name: verb: {
    environment = loopEnvironment;
    path = upgradePath;
    serviceConfig = removeAttrs config.systemd.services.nixos-desync-upgrade.serviceConfig [ "ExecStopPost" ] // {
      ExecStart = escapeExecArgs [
        "${cfg.package}/bin/nixos-desync"
        verb
        "--config"
        cfg.configFile
      ];
      RuntimeDirectory = name;
      WorkingDirectory = "/run/${name}";
    };
  };
in
{
  options.services.nixos-desync.reboot = {
    enable = mkOption {
      type = types.bool;
      default = false;
      description = ''
        As system.autoUpgrade.allowReboot: reboot into the new system when it differs from the
        booted one in a reboot trigger (`triggers`) — right after an upgrade run inside `window`,
        otherwise at the window's start (nixos-desync-reboot.timer) — unless `blockOnAlerts`
        blocks it. Also the one reboot back into the last verified system when the health gate
        fails after a boot (nixos-desync-verify-boot.service). Config key `reboot.enable`.
      '';
    };
    window = mkOption {
      type = types.nullOr (
        types.submodule {
          options = {
            lower = mkOption {
              type = hhmm;
              example = "01:00";
              description = "As system.autoUpgrade.rebootWindow.lower: local time the window opens at (config key `reboot.window.start`).";
            };
            upper = mkOption {
              type = hhmm;
              example = "05:00";
              description = ''
                As system.autoUpgrade.rebootWindow.upper: local time it closes at; at or before
                `lower` means the next day (crossing midnight). Config key `reboot.window.end`.
              '';
            };
            days = mkOption {
              type = types.nullOr (types.nonEmptyListOf (types.enum weekdays));
              default = null;
              example = [ "Sat" "Sun" ];
              description = "Weekdays the window opens on (its start's local date); null: every day. Config key `reboot.window.days`.";
            };
            timeZone = mkOption {
              type = types.nullOr types.str;
              default = null;
              example = "Europe/Berlin";
              description = ''
                IANA time zone of `lower`/`upper` (DST-safe); null: the host's (time.timeZone).
                Config key `reboot.window.timezone`.
              '';
            };
          };
        }
      );
      default = null;
      example = literalExpression ''{ lower = "01:00"; upper = "05:00"; days = [ "Sat" "Sun" ]; timeZone = "Europe/Berlin"; }'';
      description = ''
        As system.autoUpgrade.rebootWindow (`{ lower; upper; }` carries over unchanged), plus
        `days` and `timeZone`: when a reboot may happen. null: any time (a reboot blocked by
        alerts is then tried again every hour).
      '';
    };
    randomizedDelaySec = mkOption {
      type = delayType;
      default = "0";
      example = "30m";
      description = ''
        As system.autoUpgrade.randomizedDelaySec, for the reboot timer: each host reboots at a
        random moment between the window's start and this long after it, so a fleet does not
        reboot at once. Must be shorter than the window.
      '';
    };
    fixedRandomDelay = mkOption {
      type = types.bool;
      default = false;
      description = "As system.autoUpgrade.fixedRandomDelay: the same random delay every time on this host (FixedRandomDelay= of the reboot timer).";
    };
    triggers = mkOption {
      type = types.listOf (
        types.enum [
          "kernel"
          "initrd"
          "kernel-modules"
          "firmware"
          "kernel-params"
          "switch-inhibitors"
        ]
      );
      default = [
        "kernel"
        "initrd"
        "kernel-modules"
        "firmware"
        "kernel-params"
      ];
      description = ''
        What of the new system, differing from the booted one, requires a reboot
        (system.autoUpgrade compares kernel, initrd and kernel-modules). Config key `reboot.triggers`.
      '';
    };
    blockOnAlerts = mkOption {
      type = types.nullOr (
        types.submodule {
          options = {
            prometheus = prometheusOptions "reboot.blockOnAlerts.prometheus" "The Prometheus whose firing alerts (`/api/v1/alerts`) block a reboot.";
            alertFilter = mkOption {
              type = types.str;
              default = ".+";
              example = "^(NodeDown|Backup.*)$";
              description = "Regular expression of the alert names that block a reboot while they fire.";
            };
            firingOnly = mkOption {
              type = types.bool;
              default = true;
              description = "Only firing alerts block; false: pending ones too.";
            };
          };
        }
      );
      default = null;
      description = ''
        No reboot while a matching alert fires in this Prometheus; Prometheus unreachable counts
        as blocked (kured's rule). Config key `reboot.blockOnAlerts`.
      '';
    };
  };

  config = mkIf cfg.enable {
    # Typed options only: a settings.reboot.<same key> conflicts here, with NixOS's message.
    # settings.reboot.command stays free (default `systemctl reboot`, from the unit's PATH).
    services.nixos-desync.settings.reboot = rebootJson // {
      sentinel = lib.mkDefault "${sentinelDir}/reboot-required";
    };

    assertions = [
      {
        # settings.reboot.triggers would be appended (JSON lists concatenate), not refused.
        assertion = lib.filterAttrs (k: _: lib.elem k typedKeys) cfg.settings.reboot == lib.filterAttrs (k: _: lib.elem k typedKeys) rebootJson;
        message = "services.nixos-desync.settings.reboot: set enable, window, triggers and blockOnAlerts through services.nixos-desync.reboot.* (only settings.reboot.command and settings.reboot.sentinel are free).";
      }
      {
        assertion = !(loop && (config.system.autoUpgrade.allowReboot || config.system.autoUpgrade.rebootWindow != null));
        message = "system.autoUpgrade.allowReboot/rebootWindow are set, but nixos-desync's loop does the upgrades (and system.autoUpgrade must stay off): set services.nixos-desync.reboot.enable = true instead of allowReboot, and services.nixos-desync.reboot.window = { lower; upper; } instead of rebootWindow (docs/nixos.md \"Migrating from system.autoUpgrade.allowReboot\").";
      }
      {
        assertion = !(rcfg.enable && !loop);
        message = "services.nixos-desync.reboot.enable needs services.nixos-desync.upgrade.enable: reboots follow the loop's upgrades (without the loop, keep system.autoUpgrade.allowReboot).";
      }
      {
        assertion = window == null || delaySeconds rcfg.randomizedDelaySec < windowMinutes window * 60;
        message = "services.nixos-desync.reboot.randomizedDelaySec = \"${rcfg.randomizedDelaySec}\" is not shorter than the reboot window (${if window == null then "" else "${window.lower}–${window.upper}, ${toString (windowMinutes window)} minutes"}): a delayed reboot would land outside it and be refused. Make it shorter than the window.";
      }
    ]
    ++ lib.optionals (block != null) (prometheusAssertions "reboot.blockOnAlerts.prometheus" block.prometheus);

    systemd.tmpfiles.rules = lib.optionals loop [
      "d ${sentinelDir} 0755 root root - -"
      # `L`, not `L+`: a /run/reboot-required another tool wrote stays.
      "L /run/reboot-required - - - - ${sentinelDir}/reboot-required"
    ];
    systemd.services.nixos-desync-upgrade = mkIf loop {
      serviceConfig.ReadWritePaths = [ sentinelDir ];
      # A run caught up at boot (Persistent=) waits for the boot's verdict on the booted system.
      after = [ "nixos-desync-verify-boot.service" ];
    };

    # The health gate of the booted system (DESIGN.md step 9c), at every boot, before
    # boot-complete.target: with systemd-boot's boot counting the entry is blessed only after it
    # passed (RequiredBy=); otherwise the target, when something pulls it in, still waits for it.
    # After the default target, as systemd-boot-check-no-failures.service: every unit of the
    # boot has had its chance to fail.
    systemd.services.nixos-desync-verify-boot = mkIf loop (
      lib.recursiveUpdate (loopCommand "nixos-desync-verify-boot" "verify-boot") {
        description = "nixos-desync: health gate of the booted system (before boot-complete.target)";
        wantedBy = [ "multi-user.target" ];
        requiredBy = lib.optional bootCounting "boot-complete.target";
        wants = [ "nix-daemon.socket" ];
        after = [
          "nix-daemon.socket"
          "default.target"
          "multi-user.target"
          "graphical.target"
          # An interrupted run is finished first (both take the loop's lock).
          "nixos-desync-recover.service"
        ];
        before = [ "boot-complete.target" ];
        # A switch must not run the gate of this boot again.
        restartIfChanged = false;
        serviceConfig = {
          Type = "oneshot";
          RemainAfterExit = true;
        };
      }
    );

    # Outside the window a required reboot waits for the next window's start, not for luck.
    systemd.services.nixos-desync-reboot = mkIf (loop && rcfg.enable) (
      lib.recursiveUpdate (loopCommand "nixos-desync-reboot" "reboot") {
        description = "nixos-desync: reboot if required and allowed (window, alerts), else say why";
        wants = [ "network-online.target" "nix-daemon.socket" ];
        after = [
          "network-online.target"
          "nix-daemon.socket"
          "nixos-desync-upgrade.service"
          "nixos-desync-verify-boot.service"
        ];
        restartIfChanged = false;
        # `nixos-desync reboot` exits 1 while an alert (or an unreachable Prometheus) blocks it
        # inside the window, or the lock is held (75): ask again later. Outside the window it
        # exits 0, so the retries end with the window (kured asks every hour).
        serviceConfig = {
          Restart = "on-failure";
          RestartSec = "15min";
        };
      }
    );
    systemd.timers.nixos-desync-reboot = mkIf (loop && rcfg.enable) {
      description = "nixos-desync reboot at the reboot window's start";
      wantedBy = [ "timers.target" ];
      timerConfig = {
        OnCalendar = onCalendar;
        RandomizedDelaySec = rcfg.randomizedDelaySec;
        FixedRandomDelay = rcfg.fixedRandomDelay;
        # A window missed while powered off needs no catch-up: that boot applied the system.
        Persistent = false;
        Unit = "nixos-desync-reboot.service";
      };
    };
  };
}
