#!/bin/sh
# Healthy when a TCP socket is LISTENing on $INGRESS_LISTEN_PORT in this
# container's network namespace. Reading /proc/net/tcp{,6} proves the listener
# without opening a connection, which socat would forward to the upstream.
port="${INGRESS_LISTEN_PORT:-8080}"
port_hex="$(printf '%04X' "$port" 2>/dev/null)" || exit 1
for table in /proc/net/tcp /proc/net/tcp6; do
  [ -r "$table" ] || continue
  # Columns: sl local_address rem_address st ...; st 0A is LISTEN.
  if awk -v port="$port_hex" '$2 ~ (":" port "$") && $4 == "0A" { found = 1 } END { exit !found }' "$table"; then
    exit 0
  fi
done
echo "nothing listens on port $port" >&2
exit 1
