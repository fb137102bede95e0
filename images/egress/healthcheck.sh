#!/bin/sh
# Healthy when squid LISTENs on the http_port of the written configuration.
# Reading /proc/net/tcp{,6} proves the listener without connecting to it.
conf=/run/squid/squid.conf
port="$(awk '$1 == "http_port" { n = split($2, part, ":"); print part[n]; exit }' "$conf" 2>/dev/null)"
case "$port" in
  '' | *[!0-9]*) echo "no http_port in $conf" >&2; exit 1 ;;
esac
# A row is "sl: local_address rem_address st ..."; st 0A is LISTEN, the port is hex.
listening="^ *[0-9]+: [0-9A-F]+:$(printf '%04X' "$port") [0-9A-F]+:[0-9A-F]+ 0A "
grep -Eq "$listening" /proc/net/tcp /proc/net/tcp6 2>/dev/null && exit 0
echo "squid does not listen on port $port" >&2
exit 1
