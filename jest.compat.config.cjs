// `npm run test:compat`: the suites that need a real Prometheus (Debian's `prometheus`, or
// PROMETHEUS_BIN): the PromQL engine compared with it, it remote-writing to the system, and the
// gateway's /prometheus API over stored telemetry compared with it, in one run with one totals
// line. Not part of `npm test`, which needs nothing but Node.
module.exports = {
  projects: [
    '<rootDir>/libs/promql/jest.compat.config.cjs',
    '<rootDir>/apps/pipeline-e2e/jest.compat.config.cjs',
  ],
  testTimeout: 120_000,
  reporters: ['default', '<rootDir>/tools/jest/summary-reporter.cjs'],
};
