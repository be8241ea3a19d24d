const preset = require('../../jest.preset.cjs');

module.exports = {
  ...preset,
  displayName: 'pipeline-e2e',
  rootDir: __dirname,
  // Browser tests need Chromium (`npm run test:e2e`, jest.browser.config.cjs), and the Prometheus
  // compatibility tests (remote write in, PromQL out) Prometheus (`npm run test:compat`,
  // jest.compat.config.cjs).
  testPathIgnorePatterns: ['\\.browser\\.test\\.ts$', '\\.compat\\.test\\.ts$'],
};
