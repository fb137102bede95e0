#!/bin/sh
# Healthy (exit 0) when `opencode serve` on port 4096 answers /global/health with
# {"healthy":true}; otherwise exit 1 (Docker reserves other codes).
# OPENCODE_WEB_HOST is where the server listens: the stack binds it to the
# workspace's address on the ingress network only (default: loopback).
# The credentials reach curl as a header on stdin, never on its command line
# (readable in /proc), and base64 keeps any password character intact.
auth="$(printf 'opencode:%s' "${OPENCODE_SERVER_PASSWORD:-}" | base64 -w0)"
if ! body="$(printf 'Authorization: Basic %s\n' "$auth" \
  | curl --fail --silent --show-error --max-time 4 --header @- "http://${OPENCODE_WEB_HOST:-127.0.0.1}:4096/global/health")"; then
  exit 1
fi
case "$body" in
  *'"healthy":true'*) exit 0 ;;
  *) echo "unhealthy answer: $body" >&2; exit 1 ;;
esac
