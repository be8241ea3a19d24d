import { setupTestCluster, type TestCluster } from '../../libs/db/src/testing';

declare global {
  var __gpuTelemetryTestCluster: TestCluster | undefined;
}

/** Once per jest run, whichever project asks first: one Postgres and one migrated template for all. */
export default async function globalSetup(): Promise<void> {
  globalThis.__gpuTelemetryTestCluster ??= await setupTestCluster();
}
