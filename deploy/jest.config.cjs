const preset = require('../jest.preset.cjs');

module.exports = {
  ...preset,
  displayName: 'deploy',
  rootDir: __dirname,
  testMatch: ['<rootDir>/tests/**/*.test.ts'],
  // The Grafana dashboard's queries run against the real, migrated schema.
  globalSetup: '<rootDir>/../tools/jest/global-setup.ts',
  globalTeardown: '<rootDir>/../tools/jest/global-teardown.ts',
};
