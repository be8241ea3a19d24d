const preset = require('../../jest.preset.cjs');

module.exports = {
  ...preset,
  displayName: 'pipeline-e2e',
  rootDir: __dirname,
  // Browser tests need Chromium: `npm run test:e2e` (jest.browser.config.cjs) runs them.
  testPathIgnorePatterns: ['\\.browser\\.test\\.ts$'],
};
