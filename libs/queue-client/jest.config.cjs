const preset = require('../../jest.preset.cjs');

module.exports = {
  ...preset,
  displayName: 'queue-client',
  rootDir: __dirname,
};
