#!/bin/sh
# gpu-telemetry <service> [args]: runs one service of the image with `exec`, so node is PID 1 and
# receives SIGTERM directly. Services: gateway, queue, streamer, collector; also `simulator`
# (a simulated dcgm-exporter) and `migrate [up|down|status]` (the Helm hook job uses it).
# Installed as bin/gpu-telemetry of the tree that deploy/docker/assemble.mjs builds (/app in the
# image); it finds that tree from its own path, so the same tree also runs outside a container.
set -eu
app=$(CDPATH='' cd -- "$(dirname -- "$0")/.." && pwd)
# The services read any variable from a file named by <NAME>_FILE; the OpenTelemetry SDK reads its
# headers (which carry the span-export key) from the environment only, so they are exported here.
if [ -n "${OTEL_EXPORTER_OTLP_HEADERS_FILE:-}" ]; then
  if [ -n "${OTEL_EXPORTER_OTLP_HEADERS:-}" ]; then
    echo "gpu-telemetry: OTEL_EXPORTER_OTLP_HEADERS and OTEL_EXPORTER_OTLP_HEADERS_FILE are both set; set one" >&2
    exit 2
  fi
  OTEL_EXPORTER_OTLP_HEADERS=$(cat -- "$OTEL_EXPORTER_OTLP_HEADERS_FILE")
  export OTEL_EXPORTER_OTLP_HEADERS
  unset OTEL_EXPORTER_OTLP_HEADERS_FILE
fi
service="${1:-gateway}"
[ "$#" -gt 0 ] && shift
case "$service" in
  gateway|queue|streamer|collector)
    exec node --enable-source-maps --import "$app/apps/$service/dist/instrumentation.js" "$app/apps/$service/dist/main.js" "$@" ;;
  simulator)
    exec node "$app/libs/dcgm-simulator/dist/main.js" "$@" ;;
  migrate)
    [ "$#" -eq 0 ] && set -- up
    exec node "$app/libs/db/dist/bin/migrate.js" "$@" ;;
  *)
    exec "$service" "$@" ;;
esac
