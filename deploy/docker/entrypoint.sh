#!/bin/sh
# gpu-telemetry <service> [args]: runs one service of the image with `exec`, so node is PID 1 and
# receives SIGTERM directly. Services: gateway, queue, streamer, collector; also `simulator`
# (a simulated dcgm-exporter) and `migrate [up|down|status]` (the Helm hook job uses it).
# Installed as bin/gpu-telemetry of the tree that deploy/docker/assemble.mjs builds (/app in the
# image); it finds that tree from its own path, so the same tree also runs outside a container.
set -eu
app=$(CDPATH='' cd -- "$(dirname -- "$0")/.." && pwd)
service="${1:-gateway}"
[ "$#" -gt 0 ] && shift
case "$service" in
  gateway|queue|streamer|collector)
    exec node --enable-source-maps --import "$app/apps/$service/dist/instrumentation.js" "$app/apps/$service/dist/main.js" "$@" ;;
  simulator)
    exec node "$app/apps/collector/dist/simulator/main.js" "$@" ;;
  migrate)
    [ "$#" -eq 0 ] && set -- up
    exec node "$app/libs/db/dist/bin/migrate.js" "$@" ;;
  *)
    exec "$service" "$@" ;;
esac
