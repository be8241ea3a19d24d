const preset = require('../../jest.preset.cjs');

// A project of `npm run test:compat` (jest.compat.config.cjs at the root, which sets the reporters
// and timeout): the system against a real Prometheus (Debian's `prometheus`, or PROMETHEUS_BIN):
// Prometheus remote-writing to it, and its /prometheus API answering the PromQL compatibility
// table as Prometheus does. Not part of `npm test`, which needs nothing but Node.
module.exports = {
  ...preset,
  displayName: 'system-compat',
  rootDir: __dirname,
  testMatch: ['<rootDir>/src/**/*.compat.test.ts'],
};
