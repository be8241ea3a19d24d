const preset = require('../../jest.preset.cjs');

module.exports = {
  ...preset,
  displayName: 'collector',
  rootDir: __dirname,
};
