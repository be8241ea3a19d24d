// Loaded with `node --import` before main.js, so http, undici and pg are instrumented.
import { startTelemetry } from '@gpu-telemetry/service-kit';

startTelemetry('collector');
