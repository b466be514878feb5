#!/usr/bin/env bash
# Boots the test rootfs with systemd-nspawn for test/helpers/systemd.ts (called with argv only;
# see "Real systemd in tests" in docs/development.md):
#   nspawn-launch.sh RUNDIR LOWER LIFETIME_S CGROUP_DIR... -- NSPAWN_ARG...
# Joins the given cgroups (nspawn builds the container's cgroup tree below its own), then
# under a hard lifetime cap, in a private mount namespace (nothing is mounted on the host):
# RUNDIR/root = overlay of LOWER (never written) + RUNDIR/upper, and a private /run/systemd
# for nspawn's own state; then execs nspawn on it.
set -euo pipefail
if [ "${1:-}" = --inner ]; then
  run=$2 lower=$3; shift 3
  mount -t overlay overlay -o "lowerdir=$lower,upperdir=$run/upper,workdir=$run/work" "$run/root"
  mkdir -p /run/systemd
  mount -t tmpfs -o mode=0755,size=16m nixos-desync-test /run/systemd
  exec env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin TERM=dumb systemd-nspawn --quiet --boot \
    --directory="$run/root" --private-network --register=no --keep-unit \
    --console=read-only --link-journal=no --resolv-conf=off --timezone=off "$@"
fi
run=$1 lower=$2 life=$3; shift 3
while [ $# -gt 0 ] && [ "$1" != -- ]; do echo $$ > "$1/cgroup.procs"; shift; done
[ "${1:-}" = -- ] && shift
exec timeout -s TERM -k 30 "$life" unshare --mount --propagation private -- "$0" --inner "$run" "$lower" "$@"
