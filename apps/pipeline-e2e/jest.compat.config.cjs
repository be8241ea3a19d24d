const preset = require('../../jest.preset.cjs');

// Part of `npm run test:compat`: the gateway's /prometheus API against a real Prometheus (Debian's
// `prometheus` package, or PROMETHEUS_BIN). Not part of `npm test`, which needs nothing but Node.
module.exports = {
  ...preset,
  displayName: 'prometheus-api-compat',
  rootDir: __dirname,
  testMatch: ['<rootDir>/src/**/*.compat.test.ts'],
  testTimeout: 60_000,
};
