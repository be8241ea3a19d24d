// Loaded with `node --import` before main.js. It imports the telemetry module alone: http, undici
// and pg must not be loaded before the SDK patches them, or their calls go untraced.
import { startTelemetry } from '@gpu-telemetry/service-kit/telemetry';

startTelemetry('collector');
