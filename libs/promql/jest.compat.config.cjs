const preset = require('../../jest.preset.cjs');

// `npm run test:compat`: the engine against a real Prometheus (Debian's `prometheus` package, or
// PROMETHEUS_BIN). Not part of `npm test`, which needs nothing but Node.
module.exports = {
  ...preset,
  displayName: 'promql-compat',
  rootDir: __dirname,
  testMatch: ['<rootDir>/src/compat/**/*.test.ts'],
  globalSetup: undefined,
  globalTeardown: undefined,
  testTimeout: 60_000,
  reporters: ['default', '<rootDir>/../../tools/jest/summary-reporter.cjs'],
};
