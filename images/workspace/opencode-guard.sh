#!/bin/sh
# `opencode` in the workspace: starts the real binary only where no project configuration of
# OpenCode's own would be loaded. OpenCode 1.18.34 imports the `plugin` list of an opencode.json(c)
# found from its working directory upwards even with OPENCODE_DISABLE_PROJECT_CONFIG=1 (and the
# tools and plugins of a `.opencode/` there): code of the project run inside the agent's server.
# The sandbox generates OpenCode's whole configuration from the stack settings, so a project's own
# is refused (exit 78, EX_CONFIG), never read. The project's top `.opencode/` is the stack's empty,
# read-only mask and passes.
set -eu
real=${OPENCODE_SANDBOX_REAL_OPENCODE:-/usr/local/lib/opencode-sandbox/opencode}

refuse() {
  echo "opencode-sandbox: not starting OpenCode: $1 would be loaded into the agent as project" \
       "configuration (its plugins and tools run inside OpenCode). Fix: remove or rename it; the" \
       "sandbox's OpenCode configuration comes from the stack settings (Pulumi.<stack>.yaml)." >&2
  exit 78
}

dir=$(pwd -P)
while :; do
  for name in opencode.json opencode.jsonc; do
    if [ -e "$dir/$name" ] || [ -L "$dir/$name" ]; then refuse "$dir/$name"; fi
  done
  if [ -L "$dir/.opencode" ]; then refuse "$dir/.opencode"; fi
  if [ -d "$dir/.opencode" ]; then
    # Unreadable counts as not empty: what cannot be listed here might still be read by OpenCode.
    entries=$(ls -A "$dir/.opencode" 2>/dev/null) || refuse "$dir/.opencode"
    if [ -n "$entries" ]; then refuse "$dir/.opencode"; fi
  fi
  if [ "$dir" = / ]; then break; fi
  dir=$(dirname "$dir")
done
exec "$real" "$@"
