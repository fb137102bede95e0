#!/bin/sh
# Validate the configuration, then become socat (PID 1: it reaps its forked
# children and exits on SIGTERM). The values are spliced into socat address
# strings, where ',' ':' and spaces are syntax, so only plain host names, IPv4
# addresses and bracketed IPv6 addresses are accepted.
set -eu

fail() {
  echo "ingress: $*" >&2
  exit 64
}

check_port() { # name value
  case "$2" in
    '' | *[!0-9]*) fail "$1 must be a TCP port number (1-65535), got '$2'" ;;
  esac
  if [ "${#2}" -gt 5 ] || [ "$2" -lt 1 ] || [ "$2" -gt 65535 ]; then
    fail "$1 must be a TCP port number (1-65535), got '$2'"
  fi
}

target_host="${INGRESS_TARGET_HOST:-}"
target_port="${INGRESS_TARGET_PORT:-}"
listen_port="${INGRESS_LISTEN_PORT:-8080}"
max_children="${INGRESS_MAX_CHILDREN:-64}"

[ -n "$target_host" ] || fail "INGRESS_TARGET_HOST is not set (host name or IP of the service to forward to)"
host_rule="INGRESS_TARGET_HOST must be a host name, an IPv4 address or a [bracketed] IPv6 address, got '$target_host'"
# The case check sees the whole value (newlines included); grep then checks its shape.
case "$target_host" in
  *[!A-Za-z0-9._:\[\]-]*) fail "$host_rule" ;;
esac
printf '%s' "$target_host" | grep -Eqx '[A-Za-z0-9][A-Za-z0-9._-]{0,252}|\[[0-9A-Fa-f:.]{2,45}\]' || fail "$host_rule"
check_port INGRESS_TARGET_PORT "$target_port"
check_port INGRESS_LISTEN_PORT "$listen_port"
case "$max_children" in
  '' | 0 | *[!0-9]*) fail "INGRESS_MAX_CHILDREN must be a positive integer, got '$max_children'" ;;
esac
[ "${#max_children}" -le 6 ] || fail "INGRESS_MAX_CHILDREN is too large: '$max_children'"

# -d -d: log each accepted/closed connection (notices) besides errors.
exec socat -d -d \
  "TCP-LISTEN:${listen_port},fork,reuseaddr,max-children=${max_children}" \
  "TCP:${target_host}:${target_port}"
