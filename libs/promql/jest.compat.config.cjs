const preset = require('../../jest.preset.cjs');

// A project of `npm run test:compat` (jest.compat.config.cjs at the root): the engine against a
// real Prometheus (Debian's `prometheus` package, or PROMETHEUS_BIN). Not part of `npm test`.
module.exports = {
  ...preset,
  displayName: 'promql-compat',
  rootDir: __dirname,
  testMatch: ['<rootDir>/src/compat/**/*.test.ts'],
  globalSetup: undefined,
  globalTeardown: undefined,
  testTimeout: 60_000,
};
