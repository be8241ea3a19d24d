const preset = require('../../jest.preset.cjs');
const otelTransform = require('../../tools/jest/otel-transform.cjs');

module.exports = {
  ...preset,
  ...otelTransform(preset),
  displayName: 'gateway',
  rootDir: __dirname,
};
