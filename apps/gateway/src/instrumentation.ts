// Loaded with `node --import` before main.js. It imports the telemetry module alone: http, undici
// and pg must not be loaded before the SDK patches them, or their calls go untraced.
import { startTelemetry } from '@gpu-telemetry/service-kit/telemetry';

// The proxy traces each hop itself with one server span (proxy.ts): automatic http and undici
// spans on that path would cost more CPU than the proxying. Its only outgoing node:http requests
// are the span exporter's, so the http instrumentation is not loaded at all.
startTelemetry('gateway', { incomingHttp: false, outgoingHttp: false, undici: false });
