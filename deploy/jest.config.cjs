const preset = require('../jest.preset.cjs');

module.exports = {
  ...preset,
  displayName: 'deploy',
  rootDir: __dirname,
  testMatch: ['<rootDir>/tests/**/*.test.ts'],
  globalSetup: undefined,
  globalTeardown: undefined,
};
