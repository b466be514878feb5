#!/bin/sh
# A command wrapper into a container booted by test/helpers/systemd.ts: installed (symlinked)
# as e.g. `systemctl` in a directory that also holds `leader` (the container's PID 1, a host
# PID) and `caps` (its capability bounding set as a setpriv list). A program on the host that
# has that directory first on PATH talks to the real systemd in the container. The command
# gets the container's namespaces and no capability the container's PID 1 lacks (plain nsenter
# would keep the host's: `date -s` would set the host clock).
set -eu
PATH=$PATH:/usr/sbin:/usr/bin:/sbin:/bin
dir=$(dirname "$0")
leader=$(cat "$dir/leader")
caps=$(cat "$dir/caps")
exec setpriv --bounding-set="$caps" --inh-caps=-all -- \
  nsenter -t "$leader" -m -u -i -n -p -C -- \
  env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 TERM=dumb \
  SYSTEMD_PAGER=cat SYSTEMD_COLORS=0 TZ="${TZ:-UTC}" LC_ALL="${LC_ALL:-C.UTF-8}" \
  "$(basename "$0")" "$@"
