#!/bin/sh
# Write the squid.conf the stack rendered (components/egress_proxy.py) from
# $EGRESS_SQUID_CONF to /run/squid, then become squid in the foreground.
# -N: no daemon and no worker processes, so squid is PID 1 and Docker's restart
# policy (not squid's own restarter) handles a crash; the configuration starts
# no helper processes, so there is nothing to reap.
set -eu

CONF_DIR=/run/squid
CONF="$CONF_DIR/squid.conf"

fail() {
  echo "egress: $*" >&2
  exit 64
}

[ -n "${EGRESS_SQUID_CONF:-}" ] ||
  fail "EGRESS_SQUID_CONF is empty. Fix: pass the squid.conf rendered by components/egress_proxy.py (the stack does)"
{ [ -d "$CONF_DIR" ] && [ -w "$CONF_DIR" ]; } ||
  fail "$CONF_DIR is not a writable directory. Fix: mount a tmpfs there (the root filesystem is read-only)"

umask 077
printf '%s\n' "$EGRESS_SQUID_CONF" >"$CONF"
unset EGRESS_SQUID_CONF
exec squid -N -f "$CONF"
