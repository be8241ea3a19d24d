export default async function globalTeardown(): Promise<void> {
  const cluster = globalThis.__gpuTelemetryTestCluster;
  globalThis.__gpuTelemetryTestCluster = undefined;
  await cluster?.stop();
}
