const preset = require('../../jest.preset.cjs');

// A project of `npm run test:compat` (jest.compat.config.cjs at the root, which sets the reporters
// and timeout): the system against a real Prometheus (Debian's `prometheus`, or PROMETHEUS_BIN)
// remote-writing to it. Not part of `npm test`, which needs nothing but Node.
module.exports = {
  ...preset,
  displayName: 'remote-write-compat',
  rootDir: __dirname,
  testMatch: ['<rootDir>/src/**/*.compat.test.ts'],
};
