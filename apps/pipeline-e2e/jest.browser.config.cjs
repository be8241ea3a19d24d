const preset = require('../../jest.preset.cjs');

// `npm run test:e2e`: the system driven from a real browser (Debian's `chromium`, or
// CHROMIUM_PATH, through playwright-core). Not part of `npm test`, which needs nothing but Node.
module.exports = {
  ...preset,
  displayName: 'browser-e2e',
  rootDir: __dirname,
  testMatch: ['<rootDir>/src/**/*.browser.test.ts'],
  testTimeout: 60_000,
  reporters: ['default', '<rootDir>/../../tools/jest/summary-reporter.cjs'],
};
