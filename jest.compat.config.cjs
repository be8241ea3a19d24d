// `npm run test:compat`: PromQL against a real Prometheus, the engine itself (libs/promql) and the
// gateway's /prometheus API over stored telemetry (apps/pipeline-e2e), in one run with one totals line.
module.exports = {
  projects: [
    '<rootDir>/libs/promql/jest.compat.config.cjs',
    '<rootDir>/apps/pipeline-e2e/jest.compat.config.cjs',
  ],
  testTimeout: 60_000,
  reporters: ['default', '<rootDir>/tools/jest/summary-reporter.cjs'],
};
