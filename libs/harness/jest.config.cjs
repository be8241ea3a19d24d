const preset = require('../../jest.preset.cjs');

module.exports = {
  ...preset,
  displayName: 'harness',
  rootDir: __dirname,
};
