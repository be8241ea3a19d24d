const preset = require('../../jest.preset.cjs');

module.exports = {
  ...preset,
  displayName: 'pipeline-e2e',
  rootDir: __dirname,
};
