const preset = require('../../jest.preset.cjs');

module.exports = {
  ...preset,
  displayName: 'dcgm-simulator',
  rootDir: __dirname,
};
