#!/bin/sh
# Sends SIGHUP (re-read the config) to the deployhook daemon with process id $1, once the
# daemon handles it: systemd's ExecReload (`systemctl reload deployhook`).
#
# Until node has loaded deployhook and set its handler, SIGHUP's default action applies,
# which ends the process; a reload just after a start or a restart would then stop the
# service instead of reloading it. So this waits (up to DEPLOYHOOK_RELOAD_WAIT tenths of a
# second, 300 by default) until the kernel shows a handler for SIGHUP, bit 0 of the
# process's SigCgt mask in /proc/PID/status, and only then signals.
set -u
pid=${1:-}
case $pid in
  '' | *[!0-9]*)
    echo "usage: reload.sh PID (the daemon's process id, \$MAINPID under systemd)" >&2
    exit 2
    ;;
esac
tries=${DEPLOYHOOK_RELOAD_WAIT:-300}
while :; do
  if ! mask=$(sed -n 's/^SigCgt:[[:space:]]*//p' "/proc/$pid/status" 2>/dev/null) || [ -z "$mask" ]; then
    echo "deployhook: no process $pid to reload" >&2
    exit 1
  fi
  case $mask in
    *[13579bdfBDF]) exec kill -HUP "$pid" ;;
  esac
  if [ "$tries" -le 0 ]; then
    echo "deployhook: process $pid does not handle SIGHUP yet (still starting?); not reloaded" >&2
    exit 1
  fi
  tries=$((tries - 1))
  sleep 0.1
done
