#!/usr/bin/env bash
# Builds the Debian bookworm rootfs that test/helpers/systemd.ts boots with systemd-nspawn
# ("Real systemd in tests", docs/development.md), once: later calls find it and return at once.
# Root only. The cache lives outside the repo and is never modified after it is built (the
# containers run on an overlay of it).
#   scripts/test-rootfs.sh            build if missing, print its path
# Env: NIXOS_DESYNC_TEST_CACHE (default /var/cache/nixos-desync-test),
#      NIXOS_DESYNC_TEST_MIRROR (default: the machine's own Debian source from apt's config).
set -euo pipefail

# Bump when the package list or the tweaks below change: a new version is a new directory.
VERSION=1
PACKAGES=systemd,systemd-sysv,dbus,dbus-broker,libnss-systemd,libpam-systemd,polkitd,procps
CACHE=${NIXOS_DESYNC_TEST_CACHE:-/var/cache/nixos-desync-test}
ROOTFS=$CACHE/bookworm-v$VERSION

die() { echo "test-rootfs: $*" >&2; exit 1; }
if [ -x "$ROOTFS/lib/systemd/systemd" ]; then echo "$ROOTFS"; exit 0; fi
[ "$(id -u)" = 0 ] || die "must run as root to build $ROOTFS"
command -v debootstrap >/dev/null || die "debootstrap is missing (scripts/setup.sh test installs it)"

mirror=${NIXOS_DESYNC_TEST_MIRROR:-}
if [ -z "$mirror" ]; then
  mirror=$(sed -n 's/^URIs: *\([^ ]*\).*/\1/p' /etc/apt/sources.list.d/*.sources 2>/dev/null | grep -v -- '-security' | head -1 || true)
fi
if [ -z "$mirror" ]; then
  mirror=$(awk '$1 == "deb" && $2 !~ /security/ { print $2; exit }' /etc/apt/sources.list 2>/dev/null || true)
fi
[ -n "$mirror" ] || die "no Debian mirror found in /etc/apt; set NIXOS_DESYNC_TEST_MIRROR"

mkdir -p "$CACHE"
tmp=$ROOTFS.tmp
rm -rf --one-file-system "$tmp"
start=$(date +%s)
echo "test-rootfs: debootstrap bookworm from $mirror into $ROOTFS (once, ~45 s)" >&2
# A private mount+pid namespace: debootstrap's /proc and /sys mounts and any daemon a
# postinst starts die with it instead of staying on the host.
if ! timeout -k 10 900 unshare --mount --propagation private --pid --fork --mount-proc -- \
  debootstrap --variant=minbase --include="$PACKAGES" bookworm "$tmp" "$mirror" > "$CACHE/debootstrap.log" 2>&1; then
  tail -20 "$CACHE/debootstrap.log" >&2
  die "debootstrap failed (full log: $CACHE/debootstrap.log)"
fi

: > "$tmp/etc/machine-id"                       # nspawn gives every boot a fresh machine id
ln -sf /etc/machine-id "$tmp/var/lib/dbus/machine-id"
rm -f "$tmp/etc/hostname"
rm -f "$tmp/etc/systemd/system/dbus.service"    # dbus-broker's postinst alias; the harness picks per boot
# Units that only cost boot time or fail in a container.
for u in apt-daily.timer apt-daily-upgrade.timer dpkg-db-backup.timer e2scrub_all.timer \
         e2scrub_reap.service fstrim.timer systemd-pstore.service console-getty.service \
         getty@tty1.service; do
  ln -sf /dev/null "$tmp/etc/systemd/system/$u"
done
mkdir -p "$tmp/etc/systemd/journald.conf.d"
printf '[Journal]\nStorage=volatile\n' > "$tmp/etc/systemd/journald.conf.d/volatile.conf"
rm -rf "$tmp/var/cache/apt/archives/"*.deb
mv "$tmp" "$ROOTFS"
echo "test-rootfs: ready in $(( $(date +%s) - start )) s: $ROOTFS ($(du -sh "$ROOTFS" | cut -f1))" >&2
echo "$ROOTFS"
